//! How config values are read: durations as `"30s"`, `"15m"`, `"1h 30m"`; dates as `2026-12-31` or `"2026-12-31"`.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. \"30s\", \"15m\" or \"12h\""
        ))
    })
}

pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// CIDRs (`192.168.0.0/16`, `fd00::/8`) or single addresses (`10.0.0.7`).
pub(crate) fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a network; write e.g. \"192.168.1.0/24\", \"fd00::/8\" or \"10.0.0.7\""
                    ))
                })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DateValue {
    Text(String),
    Toml(toml::value::Datetime),
}

/// The end of the given day, UTC, as Unix seconds.
pub(crate) fn optional_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = match DateValue::deserialize(d)? {
        DateValue::Text(t) => t,
        DateValue::Toml(t) => t.to_string(),
    };
    let day = text.get(..10).unwrap_or(&text);
    let start = humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not a date; write it as YYYY-MM-DD"))
    })?;
    let secs = start
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| serde::de::Error::custom("the date is before 1970"))?
        .as_secs();
    Ok(Some(secs + 86_400 - 1))
}
