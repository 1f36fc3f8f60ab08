//! Notifications without a vendor account: Web Push to a user's browsers and a webhook.
//!
//! - [`app`]: the authenticator app added from the enrollment page, as a fallback.
//! - [`approval`]: the API of pending approvals, for hosts and for the user's devices.
//! - [`webpush`]: the VAPID key, subscriptions, RFC 8291 encryption, the VAPID JWT.
//! - [`webhook`]: a JSON POST signed with HMAC-SHA256, for ntfy, Gotify, Matrix or Slack bridges.
//! - [`passkey`]: passkeys (WebAuthn, user verification required) for Approve.
//! - [`notice`]: what a pending login says and where opening it leads.
//! - [`Notifier`]: sends both over one HTTP client, with a timeout, following no redirect.

pub mod app;
pub mod approval;
pub mod notice;
pub mod passkey;
pub mod webhook;
pub mod webpush;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use self::webhook::Webhook;
use self::webpush::{Subscription, VapidKey, WebPushError};

/// How long one push or webhook may take, connect to last byte, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How urgent a push is (RFC 8030 §5.3): a phone in power saving delivers `high` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A login waiting for approval.
    High,
    /// A test or an informational message.
    Normal,
}

impl Urgency {
    fn header(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
        }
    }
}

/// What became of one push or webhook call.
#[derive(Debug)]
pub enum Delivery {
    /// The push service took it (201) or the webhook answered 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// The push service says the subscription is gone (404 or 410, RFC 8030 §7.3): the
    /// caller deletes it, as the browser unsubscribed or the user cleared its data.
    Gone {
        /// The status.
        status: u16,
    },
    /// Any other answer: kept, reported (413 too big, 429 slow down, 401/403 a VAPID key the
    /// subscription was not made with, a redirect, which is not followed).
    Refused {
        /// The status.
        status: u16,
        /// The first bytes of the answer, for the operator.
        body: String,
    },
    /// No answer within the timeout.
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// Could not connect or send (DNS, refused connection, TLS).
    Failed {
        /// Why.
        error: String,
    },
}

impl Delivery {
    /// True if the message arrived.
    pub fn delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delivered { status } => write!(f, "delivered ({status})"),
            Self::Gone { status } => write!(f, "subscription gone ({status}), removed"),
            Self::Refused { status, body } => write!(f, "refused ({status}): {body}"),
            Self::TimedOut { after } => {
                write!(f, "no answer within {}", humantime::format_duration(*after))
            }
            Self::Failed { error } => write!(f, "not sent: {error}"),
        }
    }
}

/// Sends pushes and webhooks for this server.
pub struct Notifier {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    vapid: VapidKey,
    subject: String,
    timeout: Duration,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("vapid", &self.vapid)
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier signing with `vapid`, naming `subject` (`mailto:` or `https:` contact) in
    /// its JWTs, giving each call `timeout`. TLS trusts the system's roots.
    pub fn new(vapid: VapidKey, subject: String, timeout: Duration) -> Result<Self, String> {
        crate::serve::install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default()
            .ok_or("no TLS crypto provider is installed")?
            .clone();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            vapid,
            subject,
            timeout,
        })
    }

    /// The VAPID public key browsers subscribe with.
    pub fn vapid_public_key(&self) -> String {
        self.vapid.public_key_base64()
    }

    /// Encrypts `payload` for `subscription` and POSTs it (RFC 8030 §5). `ttl` is how long
    /// the push service keeps it for an offline phone: a login request is useless after it
    /// expires, so it should not arrive later.
    pub async fn push(
        &self,
        subscription: &Subscription,
        payload: &[u8],
        ttl: Duration,
        urgency: Urgency,
    ) -> Result<Delivery, WebPushError> {
        let body = webpush::encrypt(payload, subscription)?;
        let authorization =
            self.vapid
                .authorization(&subscription.endpoint, &self.subject, unix_now())?;
        let request = Request::post(subscription.endpoint.as_str())
            .header("ttl", ttl.as_secs().to_string())
            .header("urgency", urgency.header())
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)));
        Ok(match request {
            Ok(request) => self.send(request, true).await,
            Err(e) => Delivery::Failed {
                error: e.to_string(),
            },
        })
    }

    /// POSTs `body` (JSON) to `hook`, signed (see [`webhook`]).
    pub async fn webhook(&self, hook: &Webhook, body: &[u8]) -> Delivery {
        match hook.request(body, unix_now()) {
            Ok(request) => self.send(request, false).await,
            Err(error) => Delivery::Failed { error },
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>, push: bool) -> Delivery {
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read a little of the answer for the operator; bounded by the same timeout.
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            Ok::<_, hyper_util::client::legacy::Error>((status, body.unwrap_or_default()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Delivery::TimedOut {
                after: self.timeout,
            },
            Ok(Err(e)) => Delivery::Failed {
                error: error_chain(&e),
            },
            Ok(Ok((status, body))) => classify(status, &body, push),
        }
    }
}

fn classify(status: StatusCode, body: &[u8], push: bool) -> Delivery {
    let code = status.as_u16();
    if status.is_success() {
        Delivery::Delivered { status: code }
    } else if push && (status == StatusCode::NOT_FOUND || status == StatusCode::GONE) {
        Delivery::Gone { status: code }
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        Delivery::Refused {
            status: code,
            body: text.chars().filter(|c| !c.is_control()).collect(),
        }
    }
}

/// The error and its causes on one line: hyper's top error alone says only "client error".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
