//! The client that asks the fleet server: signs each request with the host's key, tries the
//! config's URLs in order, and tells "no server answered" (where `failmode` decides) from "a
//! server refused" (which denies).
//!
//! Blocking (ureq), because the daemon runs one thread per connection and a login waits for
//! its answer anyway; each URL gets the config's timeout to connect and again to answer.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sshield_core::fleet::{ServerConfig, ServerUrl, Trust};
use sshield_core::push::{Approval, PushAnswer, PushAsk};
use sshield_core::{Caller, RemoteAnswer, Response};
use sshield_wire::api::{ErrorBody, VerifyRequest, VerifyResponse, VERIFY_PATH};
use sshield_wire::signed;
use zeroize::{Zeroize, Zeroizing};

use crate::fleet::{key, tls};

/// Why the server gave no answer to go by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failed {
    /// No URL answered (connection refused, timeout, TLS failure, a 5xx): one line per URL.
    /// Only here does `failmode` decide.
    Unreachable(String),
    /// A server answered and refused the request (a 4xx: a bad signature, a revoked host...)
    /// or answered nonsense: the login is denied.
    Refused(String),
}

/// A host's client for its server.
#[derive(Debug)]
pub(crate) struct ServerClient {
    agent: ureq::Agent,
    /// For `/v1/push/wait`, which the server holds open up to its `max_wait` (25 s).
    wait_agent: ureq::Agent,
    urls: Vec<ServerUrl>,
    host: String,
    key: SigningKey,
}

/// An agent with `timeout` to connect, read and write, no redirects, and TLS by `config`.
pub(crate) fn agent(timeout: Duration, config: Arc<rustls::ClientConfig>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .redirects(0)
        .tls_config(config)
        .build()
}

impl ServerClient {
    /// The client for `server`, its key read from the key file.
    pub(crate) fn new(server: &ServerConfig) -> Result<Self, String> {
        let tls = match &server.trust {
            Trust::Pinned(pin) => tls::pinned(Some(*pin)).0,
            Trust::Ca(ca) => tls::with_ca(ca)?,
            // Plain http on loopback only; no https URL will be asked.
            Trust::PlainLoopback => tls::pinned(Some([0; 32])).0,
        };
        let wait_agent = ureq::AgentBuilder::new()
            .timeout_connect(server.timeout)
            .timeout_read(super::push::WAIT_READ_TIMEOUT)
            .timeout_write(server.timeout)
            .redirects(0)
            .tls_config(Arc::clone(&tls))
            .build();
        Ok(Self {
            wait_agent,
            agent: agent(server.timeout, tls),
            urls: server.urls.clone(),
            host: server.host.clone(),
            key: key::read(&server.key_file)?,
        })
    }

    /// POSTs `body` as JSON to `path`, signed, on each URL in turn until one answers; the
    /// reply's body on a 2xx.
    pub(crate) fn post(&self, path: &str, body: &[u8]) -> Result<String, Failed> {
        self.post_with(&self.agent, path, body)
            .map_err(|(_, failed)| failed)
    }

    /// GETs `path` (with its query), signed, as [`ServerClient::post`] does.
    pub(crate) fn get(&self, path: &str) -> Result<String, Failed> {
        self.send(&self.agent, "GET", path, b"")
            .map_err(|(_, failed)| failed)
    }

    /// As [`ServerClient::post`], with `agent`; a refusal comes with its status.
    pub(crate) fn post_with(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &[u8],
    ) -> Result<String, (Option<u16>, Failed)> {
        self.send(agent, "POST", path, body)
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<String, (Option<u16>, Failed)> {
        let mut failures = Vec::new();
        for url in &self.urls {
            let nonce = signed::new_nonce().map_err(|e| {
                (
                    None,
                    Failed::Refused(format!("no nonce: the random number generator failed: {e}")),
                )
            })?;
            let timestamp = i64::try_from(sshield_core::UnixTime::now().0).unwrap_or(i64::MAX);
            let mut request = agent.request(method, &format!("{}{path}", url.base));
            for (name, value) in
                signed::sign(&self.key, &self.host, method, path, body, timestamp, &nonce)
            {
                request = request.set(name, &value);
            }
            let sent = if method == "GET" {
                request.call()
            } else {
                request
                    .set("content-type", "application/json")
                    .send_bytes(body)
            };
            match sent {
                Ok(reply) => {
                    return reply.into_string().map_err(|e| {
                        (
                            None,
                            Failed::Refused(format!(
                                "{}: the answer could not be read: {e}",
                                url.base
                            )),
                        )
                    })
                }
                Err(ureq::Error::Status(status, reply)) if status < 500 => {
                    return Err((
                        Some(status),
                        Failed::Refused(format!(
                            "{} refused the request ({status}): {}",
                            url.base,
                            error_of(reply)
                        )),
                    ))
                }
                Err(ureq::Error::Status(status, reply)) => {
                    failures.push(format!("{}: {status} {}", url.base, error_of(reply)))
                }
                Err(ureq::Error::Transport(e)) => failures.push(format!("{}: {e}", url.base)),
            }
        }
        Err((None, Failed::Unreachable(failures.join("; "))))
    }

    /// The agent for every request but `/v1/push/wait`: the config's timeout.
    pub(crate) fn short_agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The agent for `/v1/push/wait`.
    pub(crate) fn wait_agent(&self) -> &ureq::Agent {
        &self.wait_agent
    }
}

/// The message of an error reply, or its status line.
pub(crate) fn error_of(reply: ureq::Response) -> String {
    let status = reply.status_text().to_owned();
    reply
        .into_string()
        .ok()
        .and_then(|text| serde_json::from_str::<ErrorBody>(&text).ok())
        .map_or(status, |body| body.error)
}

impl sshield_core::Remote for ServerClient {
    fn verify(&self, caller: &Caller, code: &Response) -> RemoteAnswer {
        self.ask(caller, code, false).0
    }

    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        self.ask(caller, trailing, true)
    }

    fn push(&self, caller: &Caller, ask: &PushAsk) -> PushAnswer {
        super::push::push(self, caller, ask)
    }

    fn wait(&self, _caller: &Caller, id: &str) -> Approval {
        super::push::wait(self, id)
    }
}

impl ServerClient {
    /// `POST /v1/verify` of `code` (with `split`, the trailing digits of a password typed with
    /// the code after it): the answer, and for `split` how many of them were the code.
    fn ask(&self, caller: &Caller, code: &Response, split: bool) -> (RemoteAnswer, Option<usize>) {
        let source = caller
            .source
            .map(|a| a.to_string())
            .or_else(|| caller.source_name.clone());
        let request = VerifyRequest {
            user: caller.user.name().to_owned(),
            code: code.expose_secret().to_owned(),
            source,
            service: caller.service.clone(),
            split,
        };
        // The body holds the code: wiped once sent.
        let body = Zeroizing::new(serde_json::to_vec(&request).unwrap_or_default());
        let mut request = request;
        request.code.zeroize();
        match self.post(VERIFY_PATH, &body) {
            Ok(text) => match serde_json::from_str::<VerifyResponse>(&text) {
                Ok(answer) if answer.outcome == "allowed" => (
                    RemoteAnswer::Allowed {
                        method: answer.method.unwrap_or_default(),
                    },
                    answer.code_digits.map(usize::from),
                ),
                Ok(answer) if answer.outcome == "denied" => (
                    RemoteAnswer::Denied {
                        reason: answer.reason.unwrap_or_default(),
                        delay: answer.delay_ms.map(Duration::from_millis),
                    },
                    answer.code_digits.map(usize::from),
                ),
                _ => {
                    let what = format!(
                        "the server's answer is not a verification: {}",
                        text.chars().take(200).collect::<String>()
                    );
                    (RemoteAnswer::Refused(what), None)
                }
            },
            Err(Failed::Unreachable(what)) => (RemoteAnswer::Unreachable(what), None),
            Err(Failed::Refused(what)) => (RemoteAnswer::Refused(what), None),
        }
    }
}

/// The remote of a host whose `[server]` side cannot be used (its key unreadable): every
/// user it would ask about is denied, with the reason in the log. Never `failmode`: a broken
/// host must not let anyone in.
#[derive(Debug)]
pub(crate) struct BrokenClient(pub String);

impl sshield_core::Remote for BrokenClient {
    fn verify(&self, _caller: &Caller, _code: &Response) -> RemoteAnswer {
        RemoteAnswer::Refused(self.0.clone())
    }

    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        (self.verify(caller, trailing), None)
    }

    fn push(&self, _caller: &Caller, _ask: &PushAsk) -> PushAnswer {
        PushAnswer::Refused(self.0.clone())
    }

    fn wait(&self, _caller: &Caller, _id: &str) -> Approval {
        Approval::Refused(self.0.clone())
    }
}

/// The remote for the config's `[server]` section (the server, then this host's offline
/// material: [`crate::fleet::offline`]), and what to log about it at start.
pub(crate) fn remote_of(
    server: &ServerConfig,
    failmode: sshield_core::config::Failmode,
    log: crate::fleet::offline::LogTo,
) -> (Arc<dyn sshield_core::Remote>, Result<String, String>) {
    let urls = server
        .urls
        .iter()
        .map(|u| u.base.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match ServerClient::new(server) {
        Ok(client) => (
            crate::fleet::offline::OfflineRemote::start(
                client,
                server
                    .key_file
                    .parent()
                    .unwrap_or(std::path::Path::new("/var/lib/sshield")),
                server.offline_window,
                failmode,
                log,
            ),
            Ok(format!(
                "fleet host {:?}: users with no local record are checked by {urls}",
                server.host
            )),
        ),
        Err(why) => (
            Arc::new(BrokenClient(why.clone())),
            Err(format!(
                "fleet host {:?}: cannot use the [server] section ({why}); users with no local \
                 record are denied until it is fixed and the daemon restarted",
                server.host
            )),
        ),
    }
}
