//! `rag-guard`: operator commands that share the filter's code.
//!
//! - `rag-guard keygen --name NAME [--tier T] [--expires-in 90d] [--json]`
//! - `rag-guard hash KEY` (or `rag-guard hash -` to read the key from stdin)
//! - `rag-guard check-config FILE`
//! - `rag-guard keys list|add|rotate|disable|enable|remove FILE ...` (`keys.rs`)
//! - `rag-guard scan ... [--scores] < texts`: the screening's verdict per line
//! - `rag-guard features [--bits N] < texts`: the scorer's features per line
//!   (what `make train` learns from)
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[path = "rag-guard/keys.rs"]
mod keys;

use base64::Engine as _;
use rag_guard::auth::digest::sha256_hex;
use rag_guard::config::{self, is_plain_name};
use rag_guard::inspection::forms::Forms;
use rag_guard::inspection::normalization::normalize;
use rag_guard::inspection::routes::FieldKind;
use rag_guard::inspection::rules::Category;
use rag_guard::inspection::scorer::{self, features::for_each_feature, model::sigmoid};
use rag_guard::inspection::verdict::{flag_categories, forwarded, BodyVerdict};

/// Longest `--expires-in` accepted.
const MAX_KEY_LIFETIME: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

const USAGE: &str = "usage:
  rag-guard keygen --name NAME [--tier TIER] [--expires-in DURATION] [--json]
  rag-guard hash KEY|-
  rag-guard check-config FILE
  rag-guard keys ... (rag-guard keys help)
  rag-guard scan [--config FILE] [--route PATH] [--method METHOD] [--field NAME] [--scores] < texts
  rag-guard features [--bits N] < texts";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("keygen") => keygen(&args[1..]),
        Some("hash") => hash(&args[1..]),
        Some("check-config") => check_config(&args[1..]),
        Some("scan") => scan(&args[1..]),
        Some("features") => features(&args[1..]),
        Some("keys") => keys::run(&args[1..], new_key),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rag-guard: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A new key: `rag_` + 43 URL-safe base64 characters of 32 bytes from the
/// OS CSPRNG (256 bits of entropy).
fn new_key() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("OS random source failed: {e}"))?;
    Ok(format!(
        "rag_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A `keys` entry, fields in the documented order.
#[derive(serde::Serialize)]
struct KeyRecordJson<'a> {
    name: &'a str,
    sha256: String,
    tier: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    enabled: bool,
}

/// `--flag value` and `--switch` options: valued flags in `valued`,
/// switches in `switches`; anything else is an error with the usage text.
fn parse_flags(
    args: &[String],
    valued: &[&str],
    switches: &[&str],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if switches.contains(&flag.as_str()) {
            out.insert(flag.clone(), String::new());
        } else if valued.contains(&flag.as_str()) {
            let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
            out.insert(flag.clone(), value.clone());
        } else {
            return Err(format!("unknown option {flag}\n{USAGE}"));
        }
    }
    Ok(out)
}

/// The RFC 3339 expiry (whole seconds) of a key created at `now` that lives
/// `--expires-in` `text` (at most 100 years): `keygen` and `keys`.
fn expiry_in(text: &str, now: SystemTime) -> Result<String, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("--expires-in {text:?}: {e} (try 90d or 12h)"))?;
    if d > MAX_KEY_LIFETIME {
        return Err(format!(
            "--expires-in {text:?}: more than 100 years; omit it for a key that never expires"
        ));
    }
    let at = now
        .checked_add(Duration::from_secs(d.as_secs()))
        .ok_or(format!("--expires-in {text:?} is out of range"))?;
    Ok(humantime::format_rfc3339_seconds(at).to_string())
}

fn keygen(args: &[String]) -> Result<(), String> {
    let mut flags = parse_flags(args, &["--name", "--tier", "--expires-in"], &["--json"])?;
    let name = flags.remove("--name");
    let tier = flags.remove("--tier").unwrap_or_else(|| "free".to_string());
    let expires_in = flags.remove("--expires-in");
    let json = flags.contains_key("--json");
    let name = name.ok_or(format!("--name is required\n{USAGE}"))?;
    if !is_plain_name(&name) || !is_plain_name(&tier) {
        return Err(
            "--name and --tier must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'".into(),
        );
    }
    let expires_at = expires_in
        .map(|text| expiry_in(&text, SystemTime::now()))
        .transpose()?;
    let key = new_key()?;
    let record = KeyRecordJson {
        name: &name,
        sha256: sha256_hex(key.as_bytes()),
        tier: &tier,
        expires_at,
        enabled: true,
    };
    let record_json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    if json {
        let key_json = serde_json::to_string(&key).map_err(|e| e.to_string())?;
        println!("{{\"key\":{key_json},\"record\":{record_json}}}");
    } else {
        println!("API key (shown once; give it to the client, it is not stored anywhere):");
        println!("  {key}");
        println!("Add this record to \"keys\" in the plugin configuration:");
        println!("  {record_json}");
    }
    Ok(())
}

fn hash(args: &[String]) -> Result<(), String> {
    let key = match args {
        [k] if k == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading stdin: {e}"))?;
            text.trim_end_matches(['\r', '\n']).to_string()
        }
        [k] => k.clone(),
        _ => return Err(USAGE.to_string()),
    };
    println!("{}", sha256_hex(key.as_bytes()));
    Ok(())
}

fn check_config(args: &[String]) -> Result<(), String> {
    let [path] = args else {
        return Err(USAGE.to_string());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let c = config::parse(&bytes).map_err(|e| format!("configuration refused: {e}"))?;
    println!("{path}: ok ({} keys)", c.keys.len());
    Ok(())
}

/// Undoes the corpus escaping: `\\` -> `\`, `\r` -> CR, `\n` -> LF.
fn unescape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Screens one text per stdin line as field NAME of route PATH, with the
/// filter's own code, and prints one JSON verdict per line (never the text).
fn scan(args: &[String]) -> Result<(), String> {
    let mut flags = parse_flags(
        args,
        &["--config", "--route", "--method", "--field"],
        &["--scores"],
    )?;
    let with_scores = flags.contains_key("--scores");
    let config_path = flags.remove("--config");
    let route = flags
        .remove("--route")
        .unwrap_or_else(|| "/query".to_string());
    let method = flags
        .remove("--method")
        .unwrap_or_else(|| "POST".to_string());
    let field = flags
        .remove("--field")
        .unwrap_or_else(|| "question".to_string());
    let text = match &config_path {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
        None => br#"{"keys": []}"#.to_vec(),
    };
    let cfg = config::parse(&text).map_err(|e| format!("configuration refused: {e}"))?;
    let inspection = &cfg.body_inspection;
    let rule = inspection
        .route(method.as_bytes(), route.as_bytes())
        .ok_or(format!(
            "no inspected route {method} {route} in the configuration"
        ))?;
    let document_field = matches!(
        rule.fields.get(&field).map(|f| &f.kind),
        Some(FieldKind::String { screen, .. }) if screen.contains(&Category::DocumentInjection)
    );
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let text = unescape_line(&line);
        let value = serde_json::Value::String(text.clone());
        let mut verdict = match inspection.inspect_field(rule, &field, &value) {
            BodyVerdict::Pass { flags } => {
                let vetoed: Vec<&str> = flags
                    .iter()
                    .filter(|f| f.vetoed)
                    .map(|f| f.rule_id.as_str())
                    .collect();
                if forwarded(&flags).next().is_some() {
                    serde_json::json!({
                        "verdict": "report",
                        "categories": flag_categories(&flags).iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                        "rules": forwarded(&flags).map(|f| f.rule_id.as_str()).collect::<Vec<_>>(),
                        "offset": forwarded(&flags).find_map(|f| f.offset),
                        "vetoed": vetoed,
                    })
                } else if vetoed.is_empty() {
                    serde_json::json!({"verdict": "pass"})
                } else {
                    serde_json::json!({"verdict": "pass", "vetoed": vetoed})
                }
            }
            BodyVerdict::Reject(r) => serde_json::json!({
                "verdict": "block",
                "status": r.status,
                "reason": r.reason,
                "category": r.category.map(|c| c.as_str()),
                "rule": r.rule_id,
                "field": r.field,
                "offset": r.offset,
            }),
        };
        if with_scores {
            if let Some(scorer) = &inspection.scorer {
                // A document field: its best window, as the document
                // screening reads it; else the question's score.
                let logit = if document_field {
                    scorer.best_document_logit(&text)
                } else {
                    scorer.logit(Forms::of(&text).all())
                };
                let score = sigmoid(logit);
                verdict["score"] = serde_json::json!((f64::from(score) * 1e4).round() / 1e4);
            }
        }
        writeln!(out, "{verdict}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// Prints, for each line of stdin (corpus escaping undone), the scorer's
/// feature indices in a table of `2^bits` (default: the filter's, 2^15),
/// space-separated, repeats included: the input of train/train.py.
fn features(args: &[String]) -> Result<(), String> {
    let mut flags = parse_flags(args, &["--bits"], &[])?;
    let bits: u32 = match flags.remove("--bits") {
        Some(b) => b
            .parse()
            .ok()
            .filter(|b| (10..=20).contains(b))
            .ok_or("--bits must be 10..=20")?,
        None => u32::from(scorer::model::BITS),
    };
    let mask = (1u32 << bits) - 1;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line_out = String::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        line_out.clear();
        for_each_feature(&normalize(&unescape_line(&line)), |f| {
            if !line_out.is_empty() {
                line_out.push(' ');
            }
            line_out.push_str(&(f & mask).to_string());
        });
        writeln!(out, "{line_out}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_escaping_is_undone() {
        assert_eq!(unescape_line(r"a\\b\nc\rd"), "a\\b\nc\rd");
        assert_eq!(unescape_line(r"\x3c"), r"\x3c");
        assert_eq!(unescape_line("end\\"), "end\\");
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 43);
        assert!(a.starts_with("rag_"));
        assert!(a[4..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
