//! `sshield join URL TOKEN`: makes this host a member of a fleet. It makes the host's key pair
//! (root-only file), pins the server's certificate (or trusts the admin's CA), registers the
//! public key with the one-time token (`POST /v1/join`), and writes the config's `[server]`
//! section, keeping the file's comments and layout.

use std::io::{self, BufRead};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sshield_core::fleet::{format_pin, parse_pin, valid_host_name, ServerUrl, DEFAULT_TIMEOUT};
use sshield_core::{Config, ConfigError};
use sshield_wire::api::{JoinRequest, JoinResponse, JOIN_PATH};
use toml_edit::{value, Array, DocumentMut, Item, Table};
use zeroize::Zeroizing;

use crate::cli::JoinArgs;
use crate::commands::setup::files::write_atomically;
use crate::failure::Failure;
use crate::fleet::{client, key, tls};

/// How long the join waits to connect, and again for the answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the host key goes unless `--key` says otherwise: beside the store, in the state dir.
fn default_key_path(config: &Config) -> PathBuf {
    config
        .store
        .parent()
        .unwrap_or(Path::new("/var/lib/sshield"))
        .join("host.key")
}

/// How the certificate is trusted, as the `[server]` section will say.
enum Trusted {
    Pin([u8; 32]),
    Ca(PathBuf),
    Plain,
}

pub(crate) fn run(config_path: &Path, args: &JoinArgs) -> Result<(), Failure> {
    // The config as it is (missing: a new one is written), checked before anything changes.
    let text = match std::fs::read_to_string(config_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::Error(format!(
                "cannot read {}: {e}",
                config_path.display()
            )))
        }
    };
    let config = match &text {
        Some(_) => Config::load(config_path)?,
        None => Config::default(),
    };
    if let Some(server) = &config.server {
        return Err(Failure::Refused(format!(
            "{}: this host has joined already, as {:?} with {}; to join again, remove the \
             [server] section and {}",
            config_path.display(),
            server.host,
            server
                .urls
                .iter()
                .map(|u| u.base.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            server.key_file.display()
        )));
    }
    let url = ServerUrl::parse(&args.url).map_err(Failure::Error)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    if !valid_host_name(&name) {
        return Err(Failure::Error(format!(
            "host name {name:?}: use 1 to 253 letters, digits, '.', '-' or '_' (--name NAME)"
        )));
    }
    let token = if args.token == "-" {
        let mut line = Zeroizing::new(String::new());
        io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::Error(format!("cannot read the token from standard input: {e}"))
        })?;
        Zeroizing::new(line.trim().to_owned())
    } else {
        Zeroizing::new(args.token.clone())
    };
    let pin = args
        .fingerprint
        .as_deref()
        .map(|f| {
            let f = f.trim();
            let f = if f.starts_with("sha256:") {
                f.to_owned()
            } else {
                format!("sha256:{f}")
            };
            parse_pin(&f).map_err(|_| {
                Failure::Error(format!(
                    "--fingerprint {f:?}: give the SHA-256 of the server's certificate, 64 hex \
                     digits (colons allowed), e.g. from `openssl x509 -noout -fingerprint -sha256 \
                     -in cert.pem`"
                ))
            })
        })
        .transpose()?;
    let ca = match &args.ca {
        Some(ca) => Some(
            std::path::absolute(ca)
                .map_err(|e| Failure::Error(format!("--ca {}: {e}", ca.display())))?,
        ),
        None => None,
    };
    let (tls_config, verifier) = match &ca {
        Some(ca) => (tls::with_ca(ca).map_err(Failure::Error)?, None),
        None => {
            let (config, verifier) = tls::pinned(pin);
            (config, Some(verifier))
        }
    };
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| default_key_path(&config));
    let host_key = key::generate().map_err(Failure::Error)?;
    key::write_new(&key_path, &host_key).map_err(Failure::Error)?;
    let joined = register(&url, &token, &name, &host_key, tls_config);
    let joined = match joined {
        Ok(joined) => joined,
        Err(failure) => {
            // Nothing was registered: the key would only be in the way of the next try.
            let _ = std::fs::remove_file(&key_path);
            return Err(failure);
        }
    };
    let trusted = match (url.tls, ca, verifier.and_then(|v| v.seen())) {
        (false, _, _) => Trusted::Plain,
        (true, Some(ca), _) => Trusted::Ca(ca),
        (true, None, Some(seen)) => Trusted::Pin(seen),
        (true, None, None) => {
            return Err(Failure::Error(
                "the server answered over TLS without a certificate to pin".to_owned(),
            ))
        }
    };
    let new_text = with_server_section(
        text.as_deref().unwrap_or(""),
        &url,
        &joined.host,
        &key_path,
        &trusted,
    )
    .map_err(|e| Failure::Error(format!("{}: {e}", config_path.display())))?;
    // What is written must load: checked as the daemon will read it.
    Config::parse(&new_text, config_path).map_err(|e: ConfigError| {
        Failure::Error(format!(
            "{e} (host {:?} has joined; fix the config by hand, keeping key {})",
            joined.host,
            key_path.display()
        ))
    })?;
    let (mode, uid, gid) = match std::fs::metadata(config_path) {
        Ok(meta) => (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        Err(_) => (0o644, 0, 0),
    };
    write_atomically(config_path, &new_text, mode, uid, gid).map_err(Failure::Error)?;
    println!("joined {} as host {:?}", url.base, joined.host);
    match &trusted {
        Trusted::Pin(pin) if args.fingerprint.is_some() => {
            println!(
                "server certificate {} (as given with --fingerprint)",
                format_pin(pin)
            )
        }
        Trusted::Pin(pin) => println!(
            "server certificate pinned: {}\n  compare it with the server's: openssl x509 -noout \
             -fingerprint -sha256 -in CERT",
            format_pin(pin)
        ),
        Trusted::Ca(ca) => println!("server certificate: any issued by {}", ca.display()),
        Trusted::Plain => println!("plain http on loopback: no certificate"),
    }
    println!("host key: {}", key_path.display());
    println!(
        "config: {} ([server] section written)",
        config_path.display()
    );
    println!("restart the daemon to use the server: systemctl restart sshield");
    Ok(())
}

/// `POST /v1/join` with the token: the server's answer, or why not.
fn register(
    url: &ServerUrl,
    token: &str,
    name: &str,
    host_key: &ed25519_dalek::SigningKey,
    tls_config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<JoinResponse, Failure> {
    let body = serde_json::to_string(&JoinRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        public_key: key::public_base64(host_key),
    })
    .map_err(Failure::error)?;
    let agent = client::agent(JOIN_TIMEOUT, tls_config);
    let answer = agent
        .post(&format!("{}{JOIN_PATH}", url.base))
        .set("content-type", "application/json")
        .send_string(&body);
    match answer {
        Ok(reply) => {
            let text = reply.into_string().map_err(|e| {
                Failure::Error(format!("{}: the answer could not be read: {e}", url.base))
            })?;
            serde_json::from_str(&text).map_err(|e| {
                Failure::Error(format!(
                    "{}: the answer is not a join reply ({e}): {text}",
                    url.base
                ))
            })
        }
        Err(ureq::Error::Status(status, reply)) if status < 500 => Err(Failure::Refused(format!(
            "{} refused the join ({status}): {}",
            url.base,
            client::error_of(reply)
        ))),
        Err(ureq::Error::Status(status, reply)) => Err(Failure::Error(format!(
            "{} failed ({status}): {}; try again later",
            url.base,
            client::error_of(reply)
        ))),
        Err(ureq::Error::Transport(e)) => {
            Err(Failure::Error(format!("cannot reach {}: {e}", url.base)))
        }
    }
}

/// The config text with a `[server]` section (replacing none: the caller checked there is
/// none), the rest of the file as it was.
fn with_server_section(
    text: &str,
    url: &ServerUrl,
    host: &str,
    key_path: &Path,
    trusted: &Trusted,
) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let mut table = Table::new();
    table.decor_mut().set_prefix(
        "\n# The fleet server, written by `sshield join` (docs/config.md, \"[server]\"). Users \
         with no\n# record in the local store are checked by the server; `failmode` applies only \
         when no URL\n# answers. More URLs may be listed: they are tried in order.\n",
    );
    let mut urls = Array::new();
    urls.push(url.base.as_str());
    table.insert("urls", value(urls));
    table.insert("host", value(host));
    table.insert("key_file", value(key_path.display().to_string()));
    match trusted {
        Trusted::Pin(pin) => {
            table.insert("pinned_cert", value(format_pin(pin)));
        }
        Trusted::Ca(ca) => {
            table.insert("ca_file", value(ca.display().to_string()));
        }
        Trusted::Plain => {}
    }
    table.insert(
        "timeout",
        value(humantime::format_duration(DEFAULT_TIMEOUT).to_string()),
    );
    doc.insert("server", Item::Table(table));
    Ok(doc.to_string())
}
