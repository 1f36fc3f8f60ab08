//! Push approval through the API as hosts and devices meet it, on a SQLite file and on
//! PostgreSQL: a host asks, the user's browser is notified (checked by the independent
//! decoder), the device lists the request and decides; the host's wait returns the outcome,
//! and the audit log has it. Two replicas on one PostgreSQL: asked on one, decided on the
//! other, the waiting host is woken.

mod support;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::passkey::{challenge, enroll_with, SoftPasskey};
use support::push_service::PushService;
use support::server::{cli, enroll_confirmed, state_dir, wait_in_background, Server, TestHost};

/// One test's world: a backend, a server's state dir and config, a joined host.
struct World {
    global: Vec<String>,
    state: PathBuf,
    _tmp: tempfile::TempDir,
    _pg: Option<support::pg::PgDatabase>,
}

impl World {
    fn new(postgres: bool, push_config: &str) -> Self {
        let (tmp, state) = state_dir();
        let config = tmp.path().join("server.toml");
        // The push service's stand-in is plain HTTP on loopback, unless a test says otherwise.
        let http = if push_config.contains("allow_http_endpoints") {
            ""
        } else {
            "allow_http_endpoints = true\n"
        };
        // Passkeys need a host name: the tests' soft passkey reports this origin.
        let url = if push_config.contains("public_url") {
            String::new()
        } else {
            format!("public_url = \"{ORIGIN}\"\n")
        };
        let config_text = format!("[push]\n{http}{url}{push_config}\n");
        std::fs::write(&config, config_text).expect("config");
        let mut global = vec!["--config".to_owned(), config.display().to_string()];
        let pg = postgres.then(|| {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(support::pg::database())
        });
        if let Some(pg) = &pg {
            global.extend(["--database".to_owned(), pg.url.clone()]);
        }
        Self {
            global,
            state,
            _tmp: tmp,
            _pg: pg,
        }
    }

    fn args(&self) -> Vec<&str> {
        self.global.iter().map(String::as_str).collect()
    }

    fn start(&self) -> Server {
        Server::start(&self.state, &self.args(), &["--listen", "127.0.0.1:0"])
    }

    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        cli(&self.state, &self.args(), args)
    }

    /// A phone enrolled for `user` by link, with a passkey made from `seed`.
    fn phone(&self, server: &Server, user: &str, seed: u8) -> Phone {
        let (ok, out, err) = self.cli(&["push", "enroll-link", user]);
        assert!(ok, "{err}");
        let link = out.lines().next().expect("the link");
        let token = link.rsplit('#').next().expect("token");
        let mut passkey = SoftPasskey::new(seed, ORIGIN);
        let (token, device) = enroll_with(server, token, &mut passkey);
        Phone {
            token,
            device,
            passkey,
        }
    }

    /// A device for `user` added from the CLI, without a passkey: its token.
    fn device(&self, user: &str) -> String {
        let (ok, out, err) = self.cli(&["push", "add-device", user, "phone"]);
        assert!(ok, "{err}");
        out.lines().next().expect("a token").to_owned()
    }

    fn audit(&self, user: &str) -> Vec<Value> {
        let (ok, out, err) = self.cli(&["audit", "--user", user, "--json"]);
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

/// The origin the tests' server calls itself by (`public_url`), and its soft passkeys use.
const ORIGIN: &str = "https://sshield.test";

/// An enrolled phone: its sign-in and its passkey.
struct Phone {
    token: String,
    device: String,
    passkey: SoftPasskey,
}

/// Approves request `id` with `number` from `phone`: a challenge for it, the passkey's
/// assertion, the decision.
fn approve(server: &Server, phone: &mut Phone, id: &str, number: i64) -> (u16, Value) {
    let (status, options) = challenge(server, &phone.token, id);
    if status != 200 {
        return (status, options);
    }
    let assertion = phone.passkey.assert(&options);
    decide(
        server,
        &phone.token,
        id,
        json!({"decision": "approve", "number": number, "assertion": assertion}),
    )
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn ask(host: &TestHost, server: &Server, user: &str) -> (u16, Value) {
    let body = json!({"user": user, "source": "203.0.113.9", "service": "sshd"}).to_string();
    let (status, answer) = host.post(server, "/v1/push", &body);
    (status, json_of(&answer))
}

fn wait(host: &TestHost, server: &Server, id: &str) -> (u16, Value) {
    let (status, answer) = host.post(server, "/v1/push/wait", &json!({"id": id}).to_string());
    (status, json_of(&answer))
}

/// Host web1 waits on `wait_on` for request `id` while the device approves it on
/// `decide_on`; the wait must end `approved`. Its bound is 20 s in these tests, so an
/// `approved` answer (not `pending`) shows the wait was woken by the decision.
fn approve_while_host_waits(
    wait_on: &Server,
    decide_on: &Server,
    phone: &mut Phone,
    id: &str,
    number: i64,
) {
    let waiting = wait_in_background(wait_on.addr, TestHost::new("web1", 7), id);
    // Let the wait begin first (were it later, it would find the request decided at once
    // and prove no waking, though still pass: the bound case is what this guards).
    thread::sleep(Duration::from_millis(300));
    // The challenge is asked of `wait_on`, answered on `decide_on`: it is in the database.
    let (status, options) = challenge(wait_on, &phone.token, id);
    assert_eq!(status, 200, "{options}");
    let assertion = phone.passkey.assert(&options);
    let (status, decided) = decide(
        decide_on,
        &phone.token,
        id,
        json!({"decision": "approve", "number": number, "assertion": assertion}),
    );
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("approved")),
        "{decided}"
    );
    let ((status, body), _) = waiting.join().expect("the waiting host");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["state"], "approved", "{body}");
}

fn pending(server: &Server, token: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) =
        server.request("GET", "/v1/me/approvals", &[("authorization", &auth)], b"");
    (status, json_of(&body))
}

fn decide(server: &Server, token: &str, id: &str, decision: Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = server.request(
        "POST",
        &format!("/v1/me/approvals/{id}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        decision.to_string().as_bytes(),
    );
    (status, json_of(&body))
}

fn vapid_key(server: &Server) -> String {
    let (status, body) = server.request("GET", "/v1/push/key", &[], b"");
    assert_eq!(status, 200, "{body}");
    json_of(&body)["vapid_public_key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// Waits (bounded) until the stand-in has seen `n` requests.
fn received(service: &PushService, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let seen = service.requests();
        if seen.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return seen;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn the_right_number_approves_and_the_waiting_host_hears_it(postgres: bool) {
    let world = World::new(postgres, "max_wait = \"20s\"");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 7);
    host.join(&server, &world.state, &world.args());
    let mut alice = world.phone(&server, "alice", 1);
    let token = alice.token.clone();
    let phone = PushService::start(&vapid_key(&server), "ok", None);
    phone.subscribe(&server, &token);
    // The webhook's receiver learns the secret `set-webhook` prints once, from a file.
    let secret_file = world.state.with_file_name("webhook.secret");
    let receiver = PushService::webhook_receiver(&secret_file);
    let (ok, out, err) = world.cli(&["push", "set-webhook", "alice", &receiver.url("/hook")]);
    assert!(ok, "{err}");
    std::fs::write(&secret_file, out.lines().next().expect("the secret")).expect("write");

    // The admin's test notification reaches both, and says what each answered.
    let (ok, out, err) = world.cli(&["push", "test", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("delivered").count(), 2, "{out}");
    assert_eq!(received(&phone, 1)[0]["payload"]["kind"], "test");
    assert_eq!(received(&receiver, 1)[0]["payload"]["kind"], "test");

    let (status, created) = ask(&host, &server, "alice");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let number = created["number"].as_i64().expect("number");
    assert!((10..100).contains(&number), "{created}");
    assert_eq!(created["notified"], 2, "{created}");

    // The phone's push arrives, decrypted by the independent decoder, naming host and address.
    let seen = received(&phone, 2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["ok"], true, "{}", seen[1]);
    assert_eq!(seen[1]["payload"]["id"], id.as_str());
    assert_eq!(seen[1]["payload"]["host"], "web1");
    assert_eq!(seen[1]["payload"]["source"], "203.0.113.9");
    let hooked = received(&receiver, 2);
    assert_eq!(hooked.len(), 2, "{hooked:?}");
    assert_eq!(hooked[1]["ok"], true, "the HMAC checks out: {}", hooked[1]);
    assert_eq!(hooked[1]["payload"]["id"], id.as_str());

    // The page lists it with three numbers, the right one among them, and never says which.
    let (status, list) = pending(&server, &token);
    assert_eq!(status, 200, "{list}");
    let shown = &list["approvals"][0];
    assert_eq!(shown["id"], id.as_str());
    let choices: Vec<i64> = shown["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|n| n.as_i64().expect("n"))
        .collect();
    assert_eq!(choices.len(), 3);
    assert!(choices.contains(&number));
    assert!(shown.get("number").is_none(), "{shown}");

    // The host waits; the approval wakes it.
    approve_while_host_waits(&server, &server, &mut alice, &id, number);

    // Decided once: a second decision finds nothing pending.
    let (status, _) = decide(&server, &token, &id, json!({"decision": "deny"}));
    assert_eq!(status, 404);
    let audit = world.audit("alice");
    assert_eq!(audit[0]["method"], "push", "{audit:?}");
    assert_eq!(audit[0]["outcome"], "allowed", "{audit:?}");
    assert_eq!(audit[0]["host"], "web1", "{audit:?}");
}

fn a_wrong_number_denies_and_this_wasnt_me_blocks(postgres: bool) {
    // The admins' webhook: its receiver checks the HMAC with the key the server makes.
    let keep = tempfile::tempdir().expect("tempdir");
    let admin_key = keep.path().join("admin-webhook.key");
    let admins = PushService::webhook_receiver(&admin_key);
    let world = World::new(
        postgres,
        &format!("admin_webhook = \"{}\"", admins.url("/admins")),
    );
    let server = world.start();
    std::fs::copy(world.state.join("admin-webhook.key"), &admin_key).expect("the admins' key");
    enroll_confirmed(&world.state, &world.args(), "alice");
    enroll_confirmed(&world.state, &world.args(), "bob");
    let host = TestHost::new("web1", 7);
    host.join(&server, &world.state, &world.args());
    let mut alice = world.phone(&server, "alice", 1);
    let mut bob = world.phone(&server, "bob", 2);
    let headless = world.device("alice");

    let (status, created) = ask(&host, &server, "alice");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let number = created["number"].as_i64().expect("number");
    // One pending at a time.
    let (status, again) = ask(&host, &server, "alice");
    assert_eq!(status, 409, "{again}");
    // Bob's device cannot decide alice's request, nor see it, nor get a challenge for it.
    assert_eq!(approve(&server, &mut bob, &id, number).0, 404);
    assert_eq!(
        decide(&server, &bob.token, &id, json!({"decision": "deny"})).0,
        404
    );
    assert_eq!(pending(&server, &bob.token).1["approvals"], json!([]));
    // A device without a passkey cannot approve (it may deny).
    let (status, body) = challenge(&server, &headless, &id);
    assert_eq!(status, 409, "{body}");
    // A tap alone never approves: no assertion, 422; an assertion without a challenge, 403.
    let (status, body) = decide(
        &server,
        &alice.token,
        &id,
        json!({"decision": "approve", "number": number}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        pending(&server, &alice.token).1["approvals"][0]["id"],
        id.as_str()
    );
    // No token, a wrong token: 401.
    let (status, _) = server.request("GET", "/v1/me/approvals", &[], b"");
    assert_eq!(status, 401);
    let (status, _) = pending(&server, "not-a-token");
    assert_eq!(status, 401);
    // Approve without a number is refused, and decides nothing.
    let (status, body) = decide(&server, &alice.token, &id, json!({"decision": "approve"}));
    assert_eq!(status, 422, "{body}");

    let wrong = if number == 99 { 98 } else { number + 1 };
    let (status, decided) = approve(&server, &mut alice, &id, wrong);
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("denied")),
        "{decided}"
    );
    let (status, outcome) = wait(&host, &server, &id);
    assert_eq!(
        (status, outcome["state"].as_str()),
        (200, Some("denied")),
        "{outcome}"
    );
    assert_eq!(world.audit("alice")[0]["reason"], "push-wrong-number");

    let (status, created) = ask(&host, &server, "alice");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, decided) = decide(&server, &alice.token, &id, json!({"decision": "report"}));
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("reported")),
        "{decided}"
    );
    assert_eq!(world.audit("alice")[0]["reason"], "push-not-me");
    // The admins hear of it, signed, naming who, where and how to lift the block.
    let told = received(&admins, 1);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["ok"], true, "the HMAC checks out: {}", told[0]);
    let notice = &told[0]["payload"];
    assert_eq!(notice["kind"], "not-me", "{notice}");
    assert_eq!(notice["user"], "alice", "{notice}");
    assert_eq!(notice["host"], "web1", "{notice}");
    assert_eq!(notice["source"], "203.0.113.9", "{notice}");
    assert!(
        notice["body"]
            .as_str()
            .is_some_and(|b| b.contains("push unblock alice")),
        "{notice}"
    );
    let (status, refused) = ask(&host, &server, "alice");
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("push unblock alice")),
        "{refused}"
    );
    let (ok, _, err) = world.cli(&["push", "unblock", "alice"]);
    assert!(ok, "{err}");
    let (status, created) = ask(&host, &server, "alice");
    assert_eq!(status, 201, "{created}");

    // A revoked device can no longer sign in, so no longer approve; a second phone can.
    let mut second = world.phone(&server, "alice", 3);
    let (ok, _, err) = world.cli(&["push", "revoke-device", "alice", &alice.device]);
    assert!(ok, "{err}");
    let id = created["id"].as_str().expect("id");
    let number = created["number"].as_i64().expect("number");
    assert_eq!(approve(&server, &mut alice, id, number).0, 401);
    let (status, decided) = approve(&server, &mut second, id, number);
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("approved")),
        "{decided}"
    );
}

fn an_unanswered_request_expires_and_the_host_is_told(postgres: bool) {
    let world = World::new(postgres, "approval_ttl = \"2s\"\nmax_wait = \"20s\"");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 7);
    host.join(&server, &world.state, &world.args());
    let token = world.phone(&server, "alice", 1).token;
    // This browser unsubscribed: its push service answers 410, and the server forgets the
    // subscription (the device keeps its sign-in).
    let gone = PushService::start(&vapid_key(&server), "gone", None);
    gone.subscribe(&server, &token);
    let (status, created) = ask(&host, &server, "alice");
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["notified"], 1, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(received(&gone, 1).len(), 1);
    let start = Instant::now();
    while !world
        .cli(&["push", "devices", "alice"])
        .1
        .contains("\tno subscription\t")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the gone subscription is kept"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let (status, outcome) = wait(&host, &server, &id);
    assert_eq!(
        (status, outcome["state"].as_str()),
        (200, Some("expired")),
        "{outcome}"
    );
    let (status, _) = challenge(&server, &token, &id);
    assert_eq!(status, 404, "an expired request is not approved");
    let (status, _) = decide(&server, &token, &id, json!({"decision": "deny"}));
    assert_eq!(status, 404, "an expired request is not decided");
    // Asked again, the host hears the same; the expiry is audited once.
    assert_eq!(wait(&host, &server, &id).1["state"], "expired");
    let expiries = world
        .audit("alice")
        .iter()
        .filter(|e| e["reason"] == "push-expired")
        .count();
    assert_eq!(expiries, 1);
    // Another host cannot wait on (or learn of) web1's request.
    let other = TestHost::new("web2", 8);
    other.join(&server, &world.state, &world.args());
    assert_eq!(wait(&other, &server, &id).0, 404);
}

fn enroll(server: &Server, token: &str, name: &str) -> (u16, Value) {
    let body = json!({"token": token, "name": name}).to_string();
    let (status, answer) = server.post_json("/v1/enroll", &body);
    (status, json_of(&answer))
}

fn an_enrollment_link_makes_one_device_once(postgres: bool) {
    let world = World::new(
        postgres,
        "enroll_link_ttl = \"2s\"\npublic_url = \"https://sshield.example/\"",
    );
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let (ok, _, err) = world.cli(&["push", "enroll-link", "nobody"]);
    assert!(!ok && err.contains("enroll them first"), "{err}");
    let (ok, out, err) = world.cli(&["push", "enroll-link", "alice"]);
    assert!(ok, "{err}");
    let link = out.lines().next().expect("the link");
    assert!(
        link.starts_with("https://sshield.example/enroll#"),
        "{link}"
    );
    let token = link.rsplit('#').next().expect("token");

    // A bad name is refused before the link is spent.
    assert_eq!(enroll(&server, token, "").0, 422);
    let (status, enrolled) = enroll(&server, token, "alice's phone");
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["user"], "alice");
    // Without a passkey; with a new set of ten backup codes, shown once.
    assert_eq!(enrolled["passkey"], false, "{enrolled}");
    assert_eq!(enrolled["backup_codes"].as_array().map(Vec::len), Some(10));
    let device_token = enrolled["token"].as_str().expect("token");
    assert_eq!(
        pending(&server, device_token).0,
        200,
        "the new device signs in"
    );
    let (_, devices, _) = world.cli(&["push", "devices", "alice"]);
    assert!(devices.contains("alice's phone"), "{devices}");

    // Used twice: refused, and no second device.
    let (status, refused) = enroll(&server, token, "another");
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("push enroll-link")),
        "{refused}"
    );
    assert_eq!(
        world.cli(&["push", "devices", "alice"]).1.lines().count(),
        1
    );

    // Expired: refused.
    let (_, out, _) = world.cli(&["push", "enroll-link", "alice"]);
    let late = out
        .lines()
        .next()
        .expect("link")
        .rsplit('#')
        .next()
        .expect("token")
        .to_owned();
    thread::sleep(Duration::from_millis(2_100));
    assert_eq!(enroll(&server, &late, "late").0, 401);
    assert_eq!(enroll(&server, "forged", "x").0, 401);
    assert_eq!(
        world.cli(&["push", "devices", "alice"]).1.lines().count(),
        1
    );
}

fn a_passkey_registers_once_per_link(postgres: bool) {
    let world = World::new(postgres, "");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let (_, out, _) = world.cli(&["push", "enroll-link", "alice"]);
    let token = out
        .lines()
        .next()
        .expect("link")
        .rsplit('#')
        .next()
        .expect("token");
    let begin = || {
        let (status, body) =
            server.post_json("/v1/enroll/passkey", &json!({"token": token}).to_string());
        (status, json_of(&body))
    };
    let finish = |credential: &Value| {
        let body = json!({"token": token, "name": "phone", "passkey": credential});
        let (status, body) = server.post_json("/v1/enroll", &body.to_string());
        (status, json_of(&body))
    };
    let devices = || world.cli(&["push", "devices", "alice"]).1.lines().count();

    // A passkey made for another site is refused, and the link stays usable.
    let (status, options) = begin();
    assert_eq!(status, 200, "{options}");
    assert_eq!(
        options["publicKey"]["rp"]["id"], "sshield.test",
        "{options}"
    );
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"], "required",
        "{options}"
    );
    let mut phishing = SoftPasskey::new(9, "https://sshield.test.evil.example");
    let (status, refused) = finish(&phishing.register(&options));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(devices(), 0);
    // The challenge was taken by that try: finishing again without beginning is refused.
    let mut phone = SoftPasskey::new(1, ORIGIN);
    assert_eq!(finish(&phone.register(&options)).0, 403);
    // A passkey that skipped user verification is refused.
    let mut lazy = SoftPasskey::new(5, ORIGIN);
    lazy.verified = false;
    assert_eq!(finish(&lazy.register(&begin().1)).0, 403);
    assert_eq!(devices(), 0);

    let (status, options) = begin();
    assert_eq!(status, 200, "{options}");
    let credential = phone.register(&options);
    let (status, enrolled) = finish(&credential);
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["passkey"], true);
    assert_eq!(devices(), 1);
    // The link is spent: the same answer again, or a new beginning, is refused.
    assert_eq!(finish(&credential).0, 401);
    assert_eq!(begin().0, 401);

    // The same credential on a new link is refused (one credential, one device): the user's
    // own passkeys are excluded in the options and refused by webauthn-rs (the link stays
    // usable); another user's by the database's unique credential id.
    let twin = |user: &str| {
        let (_, out, _) = world.cli(&["push", "enroll-link", user]);
        let again = out
            .lines()
            .next()
            .expect("link")
            .rsplit('#')
            .next()
            .expect("token");
        let (status, options) =
            server.post_json("/v1/enroll/passkey", &json!({"token": again}).to_string());
        let options = json_of(&options);
        assert_eq!(status, 200, "{options}");
        let mut same = SoftPasskey::new(1, ORIGIN);
        same.counter = 100;
        let body = json!({"token": again, "name": "twin", "passkey": same.register(&options)});
        let (status, body) = server.post_json("/v1/enroll", &body.to_string());
        (status, json_of(&body), options)
    };
    let (status, body, options) = twin("alice");
    assert_eq!(status, 403, "{body}");
    let excluded = &options["publicKey"]["excludeCredentials"];
    assert_eq!(excluded.as_array().map(Vec::len), Some(1), "{options}");
    enroll_confirmed(&world.state, &world.args(), "bob");
    let (status, body, _) = twin("bob");
    assert_eq!(status, 409, "{body}");
    assert_eq!(devices(), 1);
    assert_eq!(world.cli(&["push", "devices", "bob"]).1.lines().count(), 0);
}

/// A device's holder must not make the server POST to plain-HTTP services inside its network:
/// only https:// push endpoints are taken, unless the admin allows http for a test service.
#[test]
fn a_plain_http_push_endpoint_is_refused_by_default() {
    let world = World::new(false, "allow_http_endpoints = false");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let auth = format!("Bearer {}", world.device("alice"));
    let subscribe = |endpoint: &str| {
        let body = json!({
            "endpoint": endpoint,
            "keys": {
                "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                "auth": "BTBZMqHH6r4Tts7J_aSIgg"
            },
        });
        server.request(
            "PUT",
            "/v1/me/subscription",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let (status, body) = subscribe("http://127.0.0.1:5432/x");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("not https://"), "{body}");
    assert!(world
        .cli(&["push", "devices", "alice"])
        .1
        .contains("\tno subscription\t"));
    let (status, body) = subscribe("https://push.example.net/push/abc");
    assert_eq!(status, 204, "{body}");
    assert!(world
        .cli(&["push", "devices", "alice"])
        .1
        .contains("\tsubscribed\t"));
}

/// A push without a number (a host's client with no terminal, where its admin allows it): no
/// choices for the phone, `approve` without a number approves it; a number on it is a wrong
/// number. A numbered push still refuses `approve` without one (above).
fn a_push_without_a_number_is_approved_without_one(postgres: bool) {
    let world = World::new(postgres, "");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 7);
    host.join(&server, &world.state, &world.args());
    let mut phone = world.phone(&server, "alice", 3);
    let body = json!({"user": "alice", "service": "sshield-login", "command": "scp -t /srv",
                      "without_number": true})
    .to_string();
    let numberless = || {
        let (status, created) = host.post(&server, "/v1/push", &body);
        assert_eq!(status, 201, "{created}");
        let created = json_of(&created);
        assert_eq!(created["number"], 0, "{created}");
        created["id"].as_str().expect("id").to_owned()
    };
    // An approval still needs the passkey; only the number is left out.
    let answer = |phone: &mut Phone, id: &str, number: Option<i64>| {
        let (status, options) = challenge(&server, &phone.token, id);
        assert_eq!(status, 200, "{options}");
        let mut body = json!({"decision": "approve", "assertion": phone.passkey.assert(&options)});
        if let Some(number) = number {
            body["number"] = json!(number);
        }
        decide(&server, &phone.token, id, body)
    };
    let id = numberless();
    let (_, list) = pending(&server, &phone.token);
    assert_eq!(list["approvals"][0]["choices"], json!([]), "{list}");
    assert_eq!(list["approvals"][0]["command"], "scp -t /srv", "{list}");
    let (status, decided) = answer(&mut phone, &id, None);
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("approved")),
        "{decided}"
    );
    assert_eq!(wait(&host, &server, &id).1["state"], "approved");
    // A number picked on a push that has none: denied.
    let id = numberless();
    let (status, decided) = answer(&mut phone, &id, Some(47));
    assert_eq!(
        (status, decided["state"].as_str()),
        (200, Some("denied")),
        "{decided}"
    );
}

/// The enrollment page's authenticator app, through the API on each backend: a device added
/// by the CLI never gets a secret; a phone just enrolled by link does, as often as it asks
/// until it confirms (each answer replacing the pending authenticator, so the first secret no
/// longer confirms), and once confirmed no more. The confirmed authenticator from `user
/// enroll` is untouched: both its codes and the app's pass a host's verification after.
fn an_authenticator_app_is_added_once_from_a_fresh_enrollment(postgres: bool) {
    let world = World::new(postgres, "enroll_link_ttl = \"10m\"");
    let server = world.start();
    let first = enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 1);
    host.join(&server, &world.state, &world.args());
    let post = |token: &str, path: &str, body: &str| -> (u16, Value) {
        let (status, answer) = server.post_as(token, path, body);
        (status, json_of(&answer))
    };
    let begin = |token: &str| post(token, "/v1/me/authenticator", "{}");
    let confirm = |token: &str, code: &str| {
        post(
            token,
            "/v1/me/authenticator/confirm",
            &json!({ "code": code }).to_string(),
        )
    };

    let cli_device = world.device("alice");
    let (status, answer) = begin(&cli_device);
    assert_eq!(status, 403, "a device added by the CLI: {answer}");

    let phone = world.phone(&server, "alice", 1);
    let (status, replaced) = begin(&phone.token);
    assert_eq!(status, 201, "{replaced}");
    let (status, offer) = begin(&phone.token);
    assert_eq!(status, 201, "{offer}");
    let secret = offer["secret"].as_str().expect("secret");
    let old = replaced["secret"].as_str().expect("secret");
    assert_ne!(secret, old, "a new secret each time");
    let name = format!("app-{}", phone.device);
    assert_eq!(offer["authenticator"], name.as_str(), "{offer}");
    assert!(
        offer["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("otpauth://totp/sshield:alice?")
                && u.contains(&format!("secret={secret}"))),
        "{offer}"
    );
    assert!(
        offer["qr_svg"].as_str().is_some_and(|s| s.contains("<svg")),
        "{offer}"
    );

    let (status, answer) = confirm(&phone.token, &support::server::oathtool(old, 0));
    assert_eq!(
        status, 403,
        "the replaced secret no longer confirms: {answer}"
    );
    let (status, answer) = confirm(&phone.token, &support::server::oathtool(secret, 0));
    assert_eq!(
        (status, answer["authenticator"].as_str()),
        (200, Some(name.as_str())),
        "{answer}"
    );
    let (status, answer) = begin(&phone.token);
    assert_eq!(status, 403, "once confirmed, no more: {answer}");

    for (which, secret) in [("user enroll's", first.as_str()), ("the app's", secret)] {
        let body = support::server::verify_body("alice", &support::server::oathtool(secret, 30));
        let (status, answer) = host.post(&server, "/v1/verify", &body);
        assert!(
            status == 200 && json_of(&answer)["outcome"] == "allowed",
            "{which} code: {status} {answer}"
        );
    }
    let audit = world.audit("alice");
    let tries: Vec<(&str, Option<&str>)> = audit
        .iter()
        .filter(|e| e["service"] == "enroll")
        .map(|e| (e["outcome"].as_str().unwrap_or(""), e["reason"].as_str()))
        .collect();
    assert_eq!(
        tries,
        [("allowed", None), ("denied", Some("wrong-code"))],
        "{audit:?}"
    );
}

/// Guessing the app's first code is guessing a login's: five wrong codes (the default
/// `[rate_limit]`) lock the user's unfamiliar bucket, after which even the right code is 429
/// and the app stays pending, and a login from an unfamiliar address is locked too.
#[test]
fn guessing_the_apps_first_code_locks_like_wrong_logins() {
    let world = World::new(false, "enroll_link_ttl = \"10m\"");
    let server = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 1);
    host.join(&server, &world.state, &world.args());
    let phone = world.phone(&server, "alice", 1);
    let (status, offer) = server.post_as(&phone.token, "/v1/me/authenticator", "{}");
    assert_eq!(status, 201, "{offer}");
    let secret = json_of(&offer)["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let near: Vec<String> = [-60, -30, 0, 30, 60]
        .iter()
        .map(|s| support::server::oathtool(&secret, *s))
        .collect();
    let wrong: Vec<String> = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .filter(|c| !near.contains(c))
        .take(5)
        .collect();
    let confirm = |code: &str| {
        let body = json!({ "code": code }).to_string();
        server.post_as(&phone.token, "/v1/me/authenticator/confirm", &body)
    };
    for code in &wrong {
        let (status, answer) = confirm(code);
        assert_eq!(status, 403, "{answer}");
    }
    let (status, answer) = confirm(&support::server::oathtool(&secret, 0));
    assert!(
        status == 429 && answer.contains("(locked)"),
        "the right code after five wrong ones: {status} {answer}"
    );
    let body = support::server::verify_body("alice", &support::server::oathtool(&secret, 0));
    let (status, answer) = host.post(&server, "/v1/verify", &body);
    let answer = json_of(&answer);
    assert!(
        status == 200 && answer["outcome"] == "denied" && answer["reason"] == "locked",
        "{answer}"
    );
}

macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $check() { super::$check(false) } )*
        }
        mod postgres {
            $( #[test] fn $check() { super::$check(true) } )*
        }
    };
}

both_backends!(
    the_right_number_approves_and_the_waiting_host_hears_it,
    a_wrong_number_denies_and_this_wasnt_me_blocks,
    an_unanswered_request_expires_and_the_host_is_told,
    an_enrollment_link_makes_one_device_once,
    a_passkey_registers_once_per_link,
    a_push_without_a_number_is_approved_without_one,
    an_authenticator_app_is_added_once_from_a_fresh_enrollment,
);

/// Replicas share nothing but PostgreSQL: a request asked on one and approved on the other
/// wakes the host waiting on the first (LISTEN/NOTIFY), well before the wait's 20 s bound.
#[test]
fn a_decision_on_one_replica_wakes_the_host_waiting_on_another() {
    let world = World::new(true, "max_wait = \"20s\"");
    let first = world.start();
    let second = world.start();
    enroll_confirmed(&world.state, &world.args(), "alice");
    let host = TestHost::new("web1", 7);
    host.join(&first, &world.state, &world.args());
    let mut phone = world.phone(&first, "alice", 1);
    let (status, created) = ask(&host, &first, "alice");
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let number = created["number"].as_i64().expect("number");
    approve_while_host_waits(&first, &second, &mut phone, &id, number);
}
