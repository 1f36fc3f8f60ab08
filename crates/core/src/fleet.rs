//! The `[server]` section: how a host that joined a fleet (`sshield join`) reaches its server.
//!
//! Read and checked here, once, when the config loads, so the daemon (the host's one network
//! client) and the front ends that only need to know "this host is in a fleet" take it as
//! typed values: the URLs in failover order, each known to be `https://`, or `http://` to a
//! loopback address; how the server's certificate is trusted; the host's name and key file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::de;

/// How long the daemon waits to connect to one server URL, and again for its answer, unless
/// the config's `server.timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The `[server]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    urls: Vec<String>,
    host: String,
    key_file: PathBuf,
    #[serde(default)]
    pinned_cert: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de::optional_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "offline_window")]
    offline_window: Option<Duration>,
}

/// The longest `offline_window` a host may ask for: a week of coming codes on one host is
/// already more than a careful admin would keep there.
pub const MAX_OFFLINE_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// `offline_window`: a duration, or `"off"` (as `0`).
fn offline_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(Some(Duration::ZERO));
    }
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. \"12h\", or \"off\" for no offline logins"
        ))
    })
}

/// The fleet server this host asks, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The server's base URLs, tried in this order (failover).
    pub urls: Vec<ServerUrl>,
    /// The name this host joined as (it signs every request with it).
    pub host: String,
    /// The host's ed25519 key (root-only, 0600), absolute.
    pub key_file: PathBuf,
    /// How the server's certificate is trusted, for `https://` URLs.
    pub trust: Trust,
    /// The connect timeout, and again the read timeout, per URL.
    pub timeout: Duration,
    /// How far ahead the daemon keeps hashes of a user's coming codes after the server let
    /// them in here, for logins while no server answers; zero: none (docs/server.md, "Offline
    /// logins").
    pub offline_window: Duration,
}

/// One server URL: `https://HOST[:PORT]`, or `http://` to a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// As written, without a trailing `/`.
    pub base: String,
    /// Whether it is `https://`.
    pub tls: bool,
}

/// How a host trusts its server's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Only the certificate whose DER has this SHA-256 (saved by `sshield join`).
    Pinned([u8; 32]),
    /// Any certificate for the URL's name issued by the CA(s) in this PEM file.
    Ca(PathBuf),
    /// No `https://` URL is listed (a server on loopback only).
    PlainLoopback,
}

impl ServerUrl {
    /// Parses `text`: an error says what is wrong and what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let base = text.trim_end_matches('/');
        let (tls, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!(
                "{text:?} is not a server URL; write e.g. \"https://auth.example.org:8443\""
            ));
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        if host.is_empty() || authority.contains('@') || base.contains(['?', '#', ' ']) {
            return Err(format!(
                "{text:?} is not a server URL; write e.g. \"https://auth.example.org:8443\""
            ));
        }
        let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
        if !tls && !loopback {
            return Err(format!(
                "{text:?}: plain http would send codes and signatures in the clear; use https:// \
                 (http:// only to a loopback address such as 127.0.0.1)"
            ));
        }
        Ok(Self {
            base: base.to_owned(),
            tls,
        })
    }
}

/// Host names: what a hostname may hold, so they read well in logs and cannot inject lines.
/// The server takes the same names (`sshield-server host add`) as a host's config.
pub fn valid_host_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A certificate pin as written: `sha256:` and 64 hex digits.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    text.strip_prefix("sha256:")
        // `openssl x509 -fingerprint -sha256` writes the digits in pairs between colons.
        .map(|hex| hex.replace(':', ""))
        .and_then(|hex| {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .ok()
        })
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            format!(
                "pinned_cert = {text:?} is not a certificate pin; write \"sha256:\" and the 64 hex \
                 digits of the SHA-256 of the server's certificate (sshield join saves it)"
            )
        })
}

/// Writes a pin as `parse_pin` reads it.
pub fn format_pin(pin: &[u8; 32]) -> String {
    format!("sha256:{}", data_encoding::HEXLOWER.encode(pin))
}

impl ServerSection {
    /// Checks the section; `base` is the config's directory (relative paths are relative to
    /// it). An error names the key (`Err((key, message))`).
    pub(crate) fn check(
        self,
        base: &std::path::Path,
    ) -> Result<ServerConfig, (&'static str, String)> {
        if self.urls.is_empty() {
            return Err((
                "urls",
                "server.urls is empty; list the server's URL(s), e.g. urls = [\"https://auth.example.org:8443\"]"
                    .to_owned(),
            ));
        }
        let urls = self
            .urls
            .iter()
            .map(|u| ServerUrl::parse(u).map_err(|m| ("urls", format!("server.urls: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if !valid_host_name(&self.host) {
            return Err((
                "host",
                format!(
                    "server.host = {:?}: use the name the host joined as (1 to 253 letters, \
                     digits, '.', '-' or '_')",
                    self.host
                ),
            ));
        }
        let trust = match (self.pinned_cert, self.ca_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "ca_file",
                    "server: pinned_cert and ca_file both set; keep one (the pin trusts one \
                     certificate, the CA file any it issued)"
                        .to_owned(),
                ))
            }
            (Some(pin), None) => {
                Trust::Pinned(parse_pin(&pin).map_err(|m| ("pinned_cert", format!("server.{m}")))?)
            }
            (None, Some(ca)) => Trust::Ca(base.join(ca)),
            (None, None) if urls.iter().any(|u| u.tls) => {
                return Err((
                    "urls",
                    "server: an https:// URL needs pinned_cert (run sshield join again) or \
                     ca_file = \"/path/to/ca.pem\""
                        .to_owned(),
                ))
            }
            (None, None) => Trust::PlainLoopback,
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > Duration::from_secs(60) {
            return Err((
                "timeout",
                "server.timeout: use 100ms to 60s (2s is usual; every login of a user the \
                 server knows can wait this long per URL)"
                    .to_owned(),
            ));
        }
        let offline_window = self.offline_window.unwrap_or(Duration::ZERO);
        if offline_window > MAX_OFFLINE_WINDOW {
            return Err((
                "offline_window",
                "server.offline_window: at most 7d (every hour kept is an hour of coming codes a \
                 root attacker on this host could use across the fleet); \"12h\" is usual, \
                 \"off\" keeps none"
                    .to_owned(),
            ));
        }
        Ok(ServerConfig {
            urls,
            host: self.host,
            key_file: base.join(self.key_file),
            trust,
            timeout,
            offline_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_plain_http_only_to_loopback() {
        for ok in [
            "https://auth.example.org:8443",
            "https://10.0.0.1/",
            "http://127.0.0.1:8080",
            "http://[::1]:80",
            "http://localhost:9",
        ] {
            assert!(ServerUrl::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            ServerUrl::parse("https://a.example/").map(|u| u.base),
            Ok("https://a.example".to_owned())
        );
        for (bad, says) in [
            ("http://auth.example.org", "plain http"),
            ("http://10.0.0.1:80", "plain http"),
            ("ftp://x", "not a server URL"),
            ("https://", "not a server URL"),
            ("https://user@host", "not a server URL"),
        ] {
            let e = ServerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn offline_window_is_a_duration_up_to_a_week_or_off() {
        let check = |window: &str| {
            let text = format!(
                "urls = [\"http://127.0.0.1:8740\"]\nhost = \"web1\"\nkey_file = \"k\"\n{window}"
            );
            toml::from_str::<ServerSection>(&text)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    s.check(std::path::Path::new("/etc"))
                        .map_err(|(key, m)| format!("{key}: {m}"))
                })
                .map(|c| c.offline_window)
        };
        assert_eq!(check(""), Ok(Duration::ZERO));
        assert_eq!(check("offline_window = \"off\""), Ok(Duration::ZERO));
        assert_eq!(
            check("offline_window = \"12h\""),
            Ok(Duration::from_secs(12 * 3600))
        );
        assert_eq!(check("offline_window = \"7d\""), Ok(MAX_OFFLINE_WINDOW));
        let e = check("offline_window = \"8d\"").expect_err("8d");
        assert!(
            e.starts_with("offline_window: ") && e.contains("at most 7d"),
            "{e}"
        );
        let e = check("offline_window = \"soon\"").expect_err("soon");
        assert!(e.contains("\"off\""), "{e}");
    }

    #[test]
    fn pins_round_trip() {
        let pin = [0xab; 32];
        assert_eq!(parse_pin(&format_pin(&pin)), Ok(pin));
        assert!(parse_pin("sha256:abcd").is_err());
        let colons = format!("sha256:{}AB", "AB:".repeat(31));
        assert_eq!(parse_pin(&colons), Ok(pin));
        assert!(parse_pin(&format_pin(&pin).replace("sha256:", "md5:")).is_err());
    }
}
