//! `rag-guard keys`: edits the `keys` of a plugin configuration file in
//! place, safely.
//!
//! Every command reads the file, changes the JSON, checks the result with
//! the filter's own parser (what `check-config` and `on_configure` run), and
//! only then replaces the file: written to a temporary file in the same
//! directory, flushed to disk, renamed over the original (a reader sees the
//! old file or the new one, never half of one). A key is printed once, when
//! it is created; an existing key cannot be printed (only its digest is
//! stored). The file is rewritten with 2-space indentation and its object
//! fields in alphabetical order.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use rag_guard::auth::digest::sha256_hex;
use rag_guard::config;

use super::{expiry_in, parse_flags};

/// Longest grace period of a rotation.
const MAX_GRACE: Duration = Duration::from_secs(366 * 24 * 3600);

pub const USAGE: &str = "  rag-guard keys list FILE
  rag-guard keys add FILE --name NAME [--tier TIER] [--expires-in DURATION]
  rag-guard keys rotate FILE NAME [--grace 7d] [--expires-in DURATION]
  rag-guard keys disable FILE NAME
  rag-guard keys enable FILE NAME
  rag-guard keys remove FILE NAME";

/// Runs `rag-guard keys ARGS`.
pub fn run(args: &[String], new_key: impl Fn() -> Result<String, String>) -> Result<(), String> {
    let (command, path, rest) = match args {
        [command, path, rest @ ..] => (command.as_str(), Path::new(path), rest),
        _ => return Err(format!("usage:\n{USAGE}")),
    };
    let now = SystemTime::now();
    match command {
        "list" => list(path, now),
        "add" => {
            let mut flags = parse_flags(rest, &["--name", "--tier", "--expires-in"], &[])?;
            let name = flags.remove("--name").ok_or("--name is required")?;
            let tier = flags.remove("--tier");
            let expires = expires_at(flags.remove("--expires-in"), now)?;
            let key = new_key()?;
            edit(path, |keys| {
                if find(keys, &name).is_some() {
                    return Err(format!("a key named {name:?} exists (rotate it instead)"));
                }
                let mut record = Map::new();
                record.insert("name".into(), json!(name));
                record.insert("sha256".into(), json!(sha256_hex(key.as_bytes())));
                if let Some(tier) = &tier {
                    record.insert("tier".into(), json!(tier));
                }
                if let Some(at) = &expires {
                    record.insert("expires_at".into(), json!(at));
                }
                keys.push(Value::Object(record));
                Ok(())
            })?;
            print_key(&name, &key);
            Ok(())
        }
        "rotate" => {
            let [name, rest @ ..] = rest else {
                return Err(format!("usage:\n{USAGE}"));
            };
            let mut flags = parse_flags(rest, &["--grace", "--expires-in"], &[])?;
            let grace = match flags.remove("--grace") {
                None => Duration::from_secs(7 * 24 * 3600),
                Some(text) => humantime::parse_duration(&text)
                    .map_err(|e| format!("--grace {text:?}: {e} (try 7d or 12h)"))?,
            };
            if grace > MAX_GRACE {
                return Err("--grace: at most 366 days".into());
            }
            let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let grace_end = now_secs.saturating_add(grace.as_secs());
            let expires = expires_at(flags.remove("--expires-in"), now)?;
            let key = new_key()?;
            let mut accepted = None;
            let accepted_until = &mut accepted;
            edit(path, |keys| {
                let record = find(keys, name)
                    .and_then(Value::as_object_mut)
                    .ok_or(format!("no key named {name:?}"))?;
                let old = record
                    .get("sha256")
                    .cloned()
                    .ok_or(format!("key {name:?} has no sha256"))?;
                // Replaced keys whose grace is over are dropped.
                let mut previous: Vec<Value> = record
                    .get("previous")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| still_accepted(p, now))
                    .collect();
                // The replaced key never outlives its own expiry: an expired
                // key stays refused.
                let old_expiry = record
                    .get("expires_at")
                    .and_then(Value::as_str)
                    .and_then(|t| config::parse_timestamp(t).ok());
                let until_secs = grace_end.min(old_expiry.unwrap_or(u64::MAX));
                if until_secs > now_secs {
                    let until = rfc3339(until_secs);
                    previous.push(json!({"sha256": old, "until": until}));
                    *accepted_until = Some(until);
                }
                record.insert("previous".into(), Value::Array(previous));
                // A key with an expiry is often rotated because of it: the
                // new key's lifetime is asked for, not copied.
                match (&expires, record.get("expires_at")) {
                    (Some(at), _) => {
                        record.insert("expires_at".into(), json!(at));
                    }
                    (None, Some(Value::String(at))) => {
                        return Err(format!(
                            "key {name:?} expires at {at}: give the new key a lifetime with --expires-in (e.g. 90d)"
                        ))
                    }
                    (None, _) => {}
                }
                record.insert("sha256".into(), json!(sha256_hex(key.as_bytes())));
                Ok(())
            })?;
            print_key(name, &key);
            match accepted {
                Some(until) => println!("The replaced key is accepted until {until}."),
                None => println!("The replaced key had expired: it stays refused."),
            }
            Ok(())
        }
        "disable" | "enable" => {
            let [name] = rest else {
                return Err(format!("usage:\n{USAGE}"));
            };
            let enabled = command == "enable";
            edit(path, |keys| {
                let record = find(keys, name)
                    .and_then(Value::as_object_mut)
                    .ok_or(format!("no key named {name:?}"))?;
                record.insert("enabled".into(), json!(enabled));
                Ok(())
            })?;
            println!("{name}: {}", if enabled { "enabled" } else { "disabled" });
            Ok(())
        }
        "remove" => {
            let [name] = rest else {
                return Err(format!("usage:\n{USAGE}"));
            };
            edit(path, |keys| {
                let before = keys.len();
                keys.retain(|k| k.get("name").and_then(Value::as_str) != Some(name.as_str()));
                if keys.len() == before {
                    return Err(format!("no key named {name:?}"));
                }
                Ok(())
            })?;
            println!("{name}: removed");
            Ok(())
        }
        _ => Err(format!("usage:\n{USAGE}")),
    }
}

/// RFC 3339 UTC text of Unix seconds.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn expires_at(text: Option<String>, now: SystemTime) -> Result<Option<String>, String> {
    text.map(|t| expiry_in(&t, now)).transpose()
}

/// Whether a `previous` record's grace is not over at `now`.
fn still_accepted(previous: &Value, now: SystemTime) -> bool {
    let until = previous.get("until").and_then(Value::as_str);
    let Some(until) = until.and_then(|u| config::parse_timestamp(u).ok()) else {
        return false;
    };
    now.duration_since(UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() < until)
}

fn find<'a>(keys: &'a mut [Value], name: &str) -> Option<&'a mut Value> {
    keys.iter_mut()
        .find(|k| k.get("name").and_then(Value::as_str) == Some(name))
}

fn print_key(name: &str, key: &str) {
    println!("API key for {name} (shown once; give it to the client, it is not stored anywhere):");
    println!("  {key}");
}

/// Reads `path`, lets `change` edit its `keys`, checks the result with the
/// filter's parser and replaces the file atomically.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut Vec<Value>) -> Result<(), String>,
) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{shown}: not JSON: {e}"))?;
    let root = doc
        .as_object_mut()
        .ok_or(format!("{shown}: not a JSON object"))?;
    let keys = root
        .entry("keys")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or(format!("{shown}: \"keys\" is not a list"))?;
    change(keys)?;
    let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    text.push('\n');
    config::parse(text.as_bytes())
        .map_err(|e| format!("{shown} left unchanged: the result would be refused: {e}"))?;
    write_atomically(path, text.as_bytes()).map_err(|e| format!("{shown}: {e}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.rag-guard-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn list(path: &Path, now: SystemTime) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let c = config::parse(&bytes).map_err(|e| format!("configuration refused: {e}"))?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = |at: u64| (at as i64 - now as i64).div_euclid(86_400);
    let mut keys: Vec<_> = c.keys.iter().collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    println!(
        "{:<24} {:<12} {:<9} {:<22} days left  replaced keys",
        "name", "tier", "state", "expires"
    );
    for k in keys {
        let state = match (k.enabled, k.expires_at) {
            (false, _) => "disabled",
            (true, Some(at)) if at <= now => "expired",
            _ => "active",
        };
        let expires = k.expires_at.map_or("never".to_string(), rfc3339);
        let left = k
            .expires_at
            .map_or("-".to_string(), |at| days(at).to_string());
        let previous: Vec<String> = k
            .previous
            .iter()
            .map(|p| {
                let when = rfc3339(p.until);
                if p.until <= now {
                    format!("grace over since {when}")
                } else {
                    format!("accepted until {when}")
                }
            })
            .collect();
        println!(
            "{:<24} {:<12} {:<9} {:<22} {:<10} {}",
            k.name,
            k.tier,
            state,
            expires,
            left,
            if previous.is_empty() {
                "-".to_string()
            } else {
                previous.join(", ")
            }
        );
    }
    Ok(())
}
