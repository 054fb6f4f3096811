//! The `leak_detection` section: threshold, window, action and allowlist.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::auth::leak_detection::{LeakAction, LeakDetection, SLOTS};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLeakDetection {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_max")]
    max_addresses: u32,
    #[serde(default = "default_window")]
    window: String,
    #[serde(default = "default_action")]
    action: String,
    #[serde(default)]
    allowlist: Vec<String>,
}

impl Default for RawLeakDetection {
    fn default() -> Self {
        RawLeakDetection {
            enabled: true,
            max_addresses: default_max(),
            window: default_window(),
            action: default_action(),
            allowlist: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max() -> u32 {
    10
}
fn default_window() -> String {
    "5m".to_string()
}
fn default_action() -> String {
    "revoke".to_string()
}

/// Validates the `leak_detection` section; errors name the field.
pub(super) fn parse_config(raw: RawLeakDetection) -> Result<LeakDetection, (String, String)> {
    let field = |f: &str| format!("leak_detection.{f}");
    let max = u32::try_from(SLOTS - 1).unwrap_or(u32::MAX);
    if !(1..=max).contains(&raw.max_addresses) {
        return Err((
            field("max_addresses"),
            format!("must be 1..={max} (each key tracks {SLOTS} addresses)"),
        ));
    }
    let window = humantime::parse_duration(&raw.window)
        .map_err(|e| (field("window"), format!("{:?}: {e}", raw.window)))?;
    let window_secs = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
    if !(10..=86_400).contains(&window_secs) {
        return Err((field("window"), "must be between 10s and 24h".to_string()));
    }
    let action = match raw.action.as_str() {
        "revoke" => LeakAction::Revoke,
        "report" => LeakAction::Report,
        other => {
            return Err((
                field("action"),
                format!("{other:?} is not one of revoke, report"),
            ))
        }
    };
    let allowlist = raw
        .allowlist
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    (
                        format!("leak_detection.allowlist[{i}]"),
                        format!("{text:?} is not an address or CIDR range"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LeakDetection {
        enabled: raw.enabled,
        max_addresses: raw.max_addresses,
        window_secs,
        action,
        allowlist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse(json: &str) -> Result<LeakDetection, (String, String)> {
        parse_config(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn config_defaults_and_allowlist() {
        let d = parse("{}").unwrap();
        assert_eq!(d, LeakDetection::default());
        let c = parse(
            r#"{"max_addresses": 3, "window": "1m", "action": "report",
                "allowlist": ["127.0.0.0/24", "2001:db8::/32", "198.51.100.7", "10.1.2.3/8"]}"#,
        )
        .unwrap();
        assert_eq!((c.max_addresses, c.window_secs), (3, 60));
        assert_eq!(c.action, LeakAction::Report);
        assert!(!c.counts(ip("127.0.0.200")));
        assert!(c.counts(ip("127.0.1.1")));
        assert!(!c.counts(ip("::ffff:127.0.0.5")));
        assert!(!c.counts(ip("2001:db8:1::1")));
        assert!(!c.counts(ip("198.51.100.7")));
        assert!(!c.counts(ip("10.200.0.1")), "host bits are truncated");
    }

    #[test]
    fn config_errors_name_the_field() {
        for (json, field) in [
            (r#"{"max_addresses": 0}"#, "leak_detection.max_addresses"),
            (r#"{"max_addresses": 32}"#, "leak_detection.max_addresses"),
            (r#"{"window": "2s"}"#, "leak_detection.window"),
            (r#"{"window": "soon"}"#, "leak_detection.window"),
            (r#"{"action": "ban"}"#, "leak_detection.action"),
            (
                r#"{"allowlist": ["10.0.0.0/33"]}"#,
                "leak_detection.allowlist[0]",
            ),
        ] {
            assert_eq!(parse(json).unwrap_err().0, field, "{json}");
        }
    }
}
