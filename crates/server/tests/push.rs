//! Web Push and the webhook against an independent decoder: a push service's stand-in on
//! loopback (tests/support/push_service.py) that checks the VAPID JWT with `py_vapid` and
//! decrypts the body with `http_ece`, and a webhook receiver that checks the HMAC.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sshield_server::push::notice::{Payload, PendingLogin};
use sshield_server::push::webhook::Webhook;
use sshield_server::push::webpush::{VapidKey, VAPID_KEY_FILE};
use sshield_server::push::{Delivery, Notifier, Urgency};
use support::push_service::PushService;

fn vapid(dir: &Path) -> VapidKey {
    VapidKey::load_or_create(&dir.join(VAPID_KEY_FILE)).expect("a VAPID key")
}

fn notifier(key: VapidKey, timeout: Duration) -> Notifier {
    Notifier::new(key, "mailto:admin@example.org".to_owned(), timeout).expect("a notifier")
}

fn login() -> PendingLogin {
    PendingLogin {
        id: "req-42".into(),
        host: "db1".into(),
        user: "alice".into(),
        source: Some("203.0.113.9".into()),
        service: "sshd".into(),
        command: Some("git-upload-pack 'repo.git'".into()),
        created_at: 1_800_000_000,
        expires_at: 1_800_000_060,
    }
}

#[tokio::test]
async fn a_push_is_decrypted_and_its_vapid_jwt_verified_by_an_independent_decoder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = vapid(dir.path());
    let service = PushService::start(&key.public_key_base64(), "ok", None);
    let notifier = notifier(key, Duration::from_secs(10));
    let payload = Payload::login(&login(), "https://sshield.example");

    let delivery = notifier
        .push(
            &service.subscription(),
            &payload.to_json(),
            Duration::from_secs(60),
            Urgency::High,
        )
        .await
        .expect("encrypts");
    assert!(delivery.delivered(), "{delivery}");

    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let seen = &requests[0];
    assert_eq!(seen["ok"], true, "the decoder refused it: {seen}");
    assert_eq!(seen["payload"]["host"], "db1");
    assert_eq!(seen["payload"]["source"], "203.0.113.9");
    assert_eq!(
        seen["payload"]["url"],
        "https://sshield.example/approve/req-42"
    );
    assert_eq!(seen["payload"]["command"], "git-upload-pack 'repo.git'");
    assert_eq!(seen["claims"]["aud"], service.url(""));
    assert_eq!(seen["claims"]["sub"], "mailto:admin@example.org");
    assert_eq!(seen["headers"]["ttl"], "60");
    assert_eq!(seen["headers"]["urgency"], "high");
}

#[tokio::test]
async fn a_push_for_another_servers_key_is_refused_by_the_decoder() {
    // The stand-in expects a different VAPID key, as a push service does for a subscription
    // made with another server's key: the JWT must not pass.
    let dir = tempfile::tempdir().expect("temp dir");
    let other = tempfile::tempdir().expect("temp dir");
    let service = PushService::start(&vapid(other.path()).public_key_base64(), "ok", None);
    let notifier = notifier(vapid(dir.path()), Duration::from_secs(10));
    let delivery = notifier
        .push(
            &service.subscription(),
            b"{}",
            Duration::from_secs(60),
            Urgency::Normal,
        )
        .await
        .expect("encrypts");
    assert!(
        matches!(delivery, Delivery::Refused { status: 400, .. }),
        "{delivery}"
    );
    let requests = service.requests();
    assert_eq!(requests[0]["ok"], false, "{requests:?}");
}

#[tokio::test]
async fn a_gone_subscription_and_a_silent_service_are_told_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = vapid(dir.path());
    let public = key.public_key_base64();
    let gone = PushService::start(&public, "gone", None);
    let slow = PushService::start(&public, "slow", None);
    let notifier = notifier(key, Duration::from_millis(500));

    let delivery = notifier
        .push(
            &gone.subscription(),
            b"{}",
            Duration::from_secs(60),
            Urgency::High,
        )
        .await
        .expect("encrypts");
    assert!(
        matches!(delivery, Delivery::Gone { status: 410 }),
        "{delivery}"
    );

    let delivery = notifier
        .push(
            &slow.subscription(),
            b"{}",
            Duration::from_secs(60),
            Urgency::High,
        )
        .await
        .expect("encrypts");
    assert!(matches!(delivery, Delivery::TimedOut { .. }), "{delivery}");
}

#[tokio::test]
async fn a_webhook_carries_the_notice_and_a_signature_the_receiver_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = Webhook::new_secret().expect("a secret");
    let receiver = PushService::start("unused", "webhook", Some(&secret));
    let notifier = notifier(vapid(dir.path()), Duration::from_secs(10));
    let hook = Webhook::new(&receiver.url("/hook"), secret.as_bytes().to_vec()).expect("a URL");
    let body = Payload::login(&login(), "https://sshield.example").to_json();

    let delivery = notifier.webhook(&hook, &body).await;
    assert!(delivery.delivered(), "{delivery}");

    // The same body under another secret: the receiver refuses it.
    let forged = Webhook::new(&receiver.url("/hook"), b"not the secret".to_vec()).expect("a URL");
    let delivery = notifier.webhook(&forged, &body).await;
    assert!(
        matches!(delivery, Delivery::Refused { status: 400, .. }),
        "{delivery}"
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["ok"], true, "{}", requests[0]);
    assert_eq!(requests[0]["payload"]["title"], "Log in to db1 as alice?");
    assert_eq!(requests[0]["headers"]["content-type"], "application/json");
    assert_eq!(requests[1]["ok"], false, "{}", requests[1]);
}

#[test]
fn the_vapid_key_is_made_once_owner_only_and_refused_when_others_may_read_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(VAPID_KEY_FILE);
    let first = vapid(dir.path()).public_key_base64();
    let mode = fs::metadata(&path).expect("made").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        vapid(dir.path()).public_key_base64(),
        first,
        "the same key on the next start"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = VapidKey::load_or_create(&path)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("chmod 600"), "{error}");
    assert_eq!(
        fs::read(&path).expect("kept").len(),
        32,
        "the key is left as it was"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(&path, [7u8; 31]).expect("truncate");
    let error = VapidKey::load(&path).expect_err("refused").to_string();
    assert!(error.contains("not a 32-byte P-256 private key"), "{error}");
}
