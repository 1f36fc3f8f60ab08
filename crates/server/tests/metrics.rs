//! `GET /metrics` after real requests: each counted by route and status, timed, verifications
//! by outcome, nothing that names a user; and the log lines as JSON with `--log-format json`.

mod support;

use std::fs;

use support::server::{enroll_confirmed, oathtool, state_dir, verify_body, Server, TestHost};

/// The value of the sample line `name{labels}` in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn requests_latency_and_verifications_are_counted() {
    let (tmp, state) = state_dir();
    let logs = fs::File::create(tmp.path().join("server.log")).expect("log file");
    let server = Server::start_logging(
        &state,
        &["--log-format", "json"],
        &["--listen", "127.0.0.1:0"],
        "sshield_server=debug",
        logs,
    );
    let secret = enroll_confirmed(&state, &[], "alice");
    let host = TestHost::new("web1", 1);
    host.join(&server, &state, &[]);
    assert_eq!(server.request("GET", "/healthz", &[], b"").0, 200);
    assert_eq!(server.request("GET", "/wp-login.php", &[], b"").0, 404);
    let ask = |code: &str| host.post(&server, "/v1/verify", &verify_body("alice", code));
    assert!(ask(&oathtool(&secret, 30)).1.contains("allowed"));
    assert!(ask(&oathtool(&secret, 900)).1.contains("wrong-code"));
    assert!(ask(&oathtool(&secret, 30)).1.contains("replayed"));
    assert_eq!(host.post(&server, "/v1/verify", "{}").0, 422);

    let (status, text) = server.request("GET", "/metrics", &[], b"");
    assert_eq!(status, 200, "{text}");
    let expect = [
        (
            r#"sshield_server_http_requests_total{method="GET",route="/healthz",status="200"}"#,
            1.0,
        ),
        (
            r#"sshield_server_http_requests_total{method="GET",route="unmatched",status="404"}"#,
            1.0,
        ),
        (
            r#"sshield_server_http_requests_total{method="POST",route="/v1/join",status="200"}"#,
            1.0,
        ),
        (
            r#"sshield_server_http_requests_total{method="POST",route="/v1/verify",status="200"}"#,
            3.0,
        ),
        (
            r#"sshield_server_http_requests_total{method="POST",route="/v1/verify",status="422"}"#,
            1.0,
        ),
        (
            r#"sshield_server_http_request_duration_seconds_count{method="POST",route="/v1/verify"}"#,
            4.0,
        ),
        (
            r#"sshield_server_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/verify"}"#,
            4.0,
        ),
        (
            r#"sshield_server_verifications_total{outcome="allowed",reason="none"}"#,
            1.0,
        ),
        (
            r#"sshield_server_verifications_total{outcome="denied",reason="wrong-code"}"#,
            1.0,
        ),
        (
            r#"sshield_server_verifications_total{outcome="denied",reason="replayed"}"#,
            1.0,
        ),
        ("sshield_server_database_errors_total", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    let sum = sample(
        &text,
        r#"sshield_server_http_request_duration_seconds_sum{method="POST",route="/v1/verify"}"#,
    )
    .expect("a sum");
    assert!(sum > 0.0, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    for private in ["alice", "web1", "192.0.2.9", &secret] {
        assert!(!text.contains(private), "{private} in the metrics:\n{text}");
    }
    drop(server);

    // Every log line is one JSON object; each request has one, with its route and status.
    let logs = fs::read_to_string(tmp.path().join("server.log")).expect("logs");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let requests: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l["fields"]["route"] == "/v1/verify" && l["fields"]["status"] == 422),
        "{logs}"
    );
    assert!(requests
        .iter()
        .all(|l| l["level"] == "DEBUG" && l["timestamp"].is_string()));
    assert!(!logs.contains(&secret), "the secret is not logged");
}
