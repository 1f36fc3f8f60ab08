//! The OpenAPI document: served as committed, and true to the server it describes (its
//! routes exist, its request schemas accept and refuse what the server does, its response
//! schema has the fields the server sends).

mod support;

use serde_json::Value;
use support::server::{enroll_confirmed, oathtool, state_dir, Server, TestHost};

fn committed() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    std::fs::read_to_string(path).expect("docs/openapi.json")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out
}

#[test]
fn the_served_document_is_the_committed_one_and_matches_the_server() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let (status, served) = server.request("GET", "/v1/openapi.json", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(
        served,
        committed(),
        "the server serves docs/openapi.json as committed"
    );
    let doc: Value = serde_json::from_str(&served).expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));

    // Every documented path answers its method (not 404 or 405).
    assert_eq!(
        names(&doc["paths"]),
        [
            "/healthz",
            "/metrics",
            "/v1/audit",
            "/v1/enroll",
            "/v1/enroll/passkey",
            "/v1/join",
            "/v1/me/approvals",
            "/v1/me/approvals/{id}",
            "/v1/me/approvals/{id}/challenge",
            "/v1/me/authenticator",
            "/v1/me/authenticator/confirm",
            "/v1/me/subscription",
            "/v1/offline",
            "/v1/openapi.json",
            "/v1/push",
            "/v1/push/key",
            "/v1/push/wait",
            "/v1/report",
            "/v1/verify"
        ]
    );
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            let (status, body) = server.request(&method.to_uppercase(), path, &[], b"");
            assert!(
                ![404, 405].contains(&status),
                "{method} {path}: {status} {body}"
            );
        }
    }

    // VerifyRequest: the required fields alone are a request the server takes, and so are
    // all the documented fields; one more is refused, as additionalProperties says.
    let secret = enroll_confirmed(&state, &[], "alice");
    let host = TestHost::new("web1", 1);
    host.join(&server, &state, &[]);
    let request = schema(&doc, "VerifyRequest");
    assert_eq!(names(&request["required"]), ["code", "service", "user"]);
    assert_eq!(
        names(&request["properties"]),
        ["code", "service", "source", "split", "user"]
    );
    assert_eq!(request["additionalProperties"], Value::Bool(false));
    let minimal =
        serde_json::json!({"user": "alice", "code": oathtool(&secret, 30), "service": "sshd"});
    let (status, answer) = host.post(&server, "/v1/verify", &minimal.to_string());
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    let response = schema(&doc, "VerifyResponse");
    // An allowed answer carries what is required; `delay_ms` comes with denials only.
    assert_eq!(names(&answer), names(&response["required"]));
    assert_eq!(
        names(&response["properties"]),
        ["code_digits", "delay_ms", "method", "outcome", "reason"]
    );
    assert_eq!(answer["outcome"], "allowed");
    let outcomes = &response["properties"]["outcome"]["enum"];
    assert!(outcomes
        .as_array()
        .expect("enum")
        .contains(&answer["outcome"]));
    let full = serde_json::json!({
        "user": "alice", "code": "1", "service": "sshd", "source": "192.0.2.1", "split": true
    });
    let (status, answer) = host.post(&server, "/v1/verify", &full.to_string());
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    // A split request's answer says how many digits the code was.
    assert_eq!(answer["code_digits"], 6, "{answer}");
    let reasons = &response["properties"]["reason"]["enum"];
    assert!(
        reasons
            .as_array()
            .expect("enum")
            .contains(&answer["reason"]),
        "{answer}"
    );
    let extra = serde_json::json!({"user": "alice", "code": "1", "service": "sshd", "x": 1});
    assert_eq!(host.post(&server, "/v1/verify", &extra.to_string()).0, 422);

    // Offline logins: the material after the allowed login above, a report, the audit.
    let offline = schema(&doc, "OfflineRequest");
    assert_eq!(names(&offline["required"]), ["user", "window_secs"]);
    assert_eq!(names(&offline["properties"]), names(&offline["required"]));
    let ask = serde_json::json!({"user": "alice", "window_secs": 600});
    let (status, material) = host.post(&server, "/v1/offline", &ask.to_string());
    assert_eq!(status, 200, "{material}");
    let material: Value = serde_json::from_str(&material).expect("JSON");
    let documented = schema(&doc, "OfflineMaterial");
    assert_eq!(names(&material), names(&documented["required"]));
    assert_eq!(names(&material), names(&documented["properties"]));
    assert_eq!(
        names(&material["tokens"][0]),
        names(&schema(&doc, "OfflineToken")["properties"])
    );
    let report = schema(&doc, "Report");
    assert_eq!(
        names(&report["required"]),
        ["id", "outcome", "service", "time", "user"]
    );
    let sent = serde_json::json!({"reports": [{"id": "0123456789abcdef", "time": 1, "user": "alice",
        "service": "sshd", "outcome": "failmode", "reason": "unreachable", "source": null,
        "method": null, "authenticator": null, "counter": null, "backup": null}]});
    assert_eq!(
        names(&sent["reports"][0]),
        names(&report["properties"]),
        "every documented field"
    );
    let (status, answer) = host.post(&server, "/v1/report", &sent.to_string());
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        names(&answer),
        names(&schema(&doc, "ReportResponse")["required"])
    );
    let extra = serde_json::json!({"reports": [], "x": 1});
    assert_eq!(host.post(&server, "/v1/report", &extra.to_string()).0, 422);
    let headers = host.headers(
        "GET",
        "/v1/audit?limit=5",
        b"",
        support::server::now(),
        &support::server::fresh_nonce(),
    );
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, listed) = server.request("GET", "/v1/audit?limit=5", &refs, b"");
    assert_eq!(status, 200, "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let lines = &schema(&doc, "AuditLines")["properties"]["entries"]["items"];
    assert_eq!(names(&listed["entries"][0]), names(&lines["required"]));
    let documented: Vec<&str> = doc["paths"]["/v1/audit"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(documented, ["user", "since", "failed", "limit"]);

    let join = schema(&doc, "JoinRequest");
    assert_eq!(names(&join["required"]), ["name", "public_key", "token"]);
    assert_eq!(names(&join["properties"]), names(&join["required"]));

    // Push approval: what the server takes and answers has the documented fields.
    let push = schema(&doc, "PushRequest");
    assert_eq!(names(&push["required"]), ["service", "user"]);
    assert_eq!(
        names(&push["properties"]),
        ["command", "service", "source", "user", "without_number"]
    );
    let ask = serde_json::json!({"user": "alice", "service": "sshd"});
    let (status, created) = host.post(&server, "/v1/push", &ask.to_string());
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(
        names(&created),
        names(&schema(&doc, "PushCreated")["required"])
    );
    let extra = serde_json::json!({"user": "alice", "service": "sshd", "x": 1});
    assert_eq!(host.post(&server, "/v1/push", &extra.to_string()).0, 422);
    let (ok, out, err) = support::server::cli(&state, &[], &["push", "add-device", "alice", "p"]);
    assert!(ok, "{err}");
    let auth = format!("Bearer {}", out.lines().next().expect("token"));
    let (status, list) =
        server.request("GET", "/v1/me/approvals", &[("authorization", &auth)], b"");
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).expect("JSON");
    assert_eq!(
        names(&list),
        names(&schema(&doc, "PendingList")["required"])
    );
    assert_eq!(
        names(&list["approvals"][0]),
        names(&schema(&doc, "PendingView")["properties"])
    );
    let enroll = schema(&doc, "EnrollRequest");
    assert_eq!(names(&enroll["required"]), ["name", "token"]);
    assert_eq!(names(&enroll["properties"]), ["name", "passkey", "token"]);
    let (ok, out, err) = support::server::cli(&state, &[], &["push", "enroll-link", "alice"]);
    assert!(ok, "{err}");
    let link_token = out
        .lines()
        .next()
        .and_then(|l| l.rsplit('#').next())
        .expect("link");
    let body = serde_json::json!({"token": link_token, "name": "phone"});
    let (status, enrolled) = server.post_json("/v1/enroll", &body.to_string());
    assert_eq!(status, 201, "{enrolled}");
    let enrolled: Value = serde_json::from_str(&enrolled).expect("JSON");
    assert_eq!(
        names(&enrolled),
        names(&schema(&doc, "Enrolled")["required"])
    );
    let decision = schema(&doc, "DecisionRequest");
    assert_eq!(
        names(&decision["properties"]),
        ["assertion", "decision", "number"]
    );
    let id = created["id"].as_str().expect("id");
    let (status, state) = server.request(
        "POST",
        &format!("/v1/me/approvals/{id}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        br#"{"decision": "deny"}"#,
    );
    assert_eq!(status, 200, "{state}");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(
        names(&state),
        names(&schema(&doc, "PushState")["properties"])
    );
    let states = &schema(&doc, "PushState")["properties"]["state"]["enum"];
    assert!(states.as_array().expect("enum").contains(&state["state"]));
}
