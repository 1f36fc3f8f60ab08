//! The push service's stand-in (push_service.py), run from Rust: an independent decoder of
//! what the server sends by Web Push, and a webhook receiver that checks the HMAC.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sshield_server::push::webpush::Subscription;

use super::server::Server;

/// The stand-in, running; stopped by its PID when dropped.
pub(crate) struct PushService {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The subscriber's public key, base64url.
    pub p256dh: String,
    /// The subscriber's auth secret, base64url.
    pub auth: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PushService {
    /// Starts the stand-in in `mode` (`ok`, `gone`, `slow`, `webhook`) for `vapid`'s key.
    pub(crate) fn start(vapid_public: &str, mode: &str, webhook_secret: Option<&str>) -> Self {
        Self::spawn(vapid_public, mode, |command| {
            if let Some(secret) = webhook_secret {
                command.env("WEBHOOK_SECRET", secret);
            }
        })
    }

    /// A webhook receiver that reads the secret from `secret_file` at each request (the
    /// server prints it only once the receiver's URL is set).
    pub(crate) fn webhook_receiver(secret_file: &Path) -> Self {
        Self::spawn("unused", "webhook", |command| {
            command.env("WEBHOOK_SECRET_FILE", secret_file);
        })
    }

    fn spawn(vapid_public: &str, mode: &str, set_env: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/push_service.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(vapid_public)
            .arg(mode)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        set_env(&mut command);
        let mut child = command
            .spawn()
            .expect("python3 runs (scripts/install-test-deps installs http_ece and py_vapid)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the stand-in's first line");
        let hello: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the stand-in did not start ({e}): {line:?}"));
        Self {
            child,
            port: u16::try_from(hello["port"].as_u64().expect("port")).expect("port"),
            p256dh: hello["p256dh"].as_str().expect("p256dh").to_owned(),
            auth: hello["auth"].as_str().expect("auth").to_owned(),
            log,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn subscription(&self) -> Subscription {
        Subscription::parse(&self.url("/push/sub-1"), &self.p256dh, &self.auth)
            .expect("the stand-in's subscription is valid")
    }

    /// Subscribes the device signed in with `token` on `server` to this stand-in, as its
    /// browser's `PushSubscription.toJSON()` would.
    pub(crate) fn subscribe(&self, server: &Server, token: &str) {
        let auth = format!("Bearer {token}");
        let body = serde_json::json!({
            "endpoint": self.url("/push/phone"),
            "expirationTime": null,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        });
        let (status, answer) = server.request(
            "PUT",
            "/v1/me/subscription",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 204, "{answer}");
    }

    /// Every request the stand-in saw, as it judged it.
    pub(crate) fn requests(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
