use super::*;
use crate::auth::digest::sha256_hex;
use crate::config;
use crate::key_state;
use crate::ops::usage;
use crate::ops::usage::{Accumulator, Kind};
use crate::shared_store::MemoryStore;
use serde_json::{json, Value};

const SEC: u64 = 1_000_000_000;
// 2027-01-15T08:00:00Z
const NOW_SECS: u64 = 1_799_999_999 - 1_799_999_999 % 86_400 + 8 * 3600;
const NOW: u64 = NOW_SECS * SEC;

fn cfg(admin: bool) -> Config {
    let admin = if admin {
        format!(
            r#", "admin": {{"secret_sha256": "{}"}}"#,
            sha256_hex(b"s3cret")
        )
    } else {
        String::new()
    };
    let soon = rfc3339(NOW_SECS + 3 * 86_400);
    let later = rfc3339(NOW_SECS + 30 * 86_400);
    let text = format!(
        r#"{{"keys": [
            {{"name": "alpha", "sha256": "{}", "tier": "pro", "expires_at": "{soon}"}},
            {{"name": "beta", "sha256": "{}", "expires_at": "{later}"}},
            {{"name": "off", "sha256": "{}", "enabled": false}}
          ]{admin}}}"#,
        sha256_hex(b"ka"),
        sha256_hex(b"kb"),
        sha256_hex(b"ko"),
    );
    config::parse(text.as_bytes()).unwrap()
}

fn store_for(c: &Config) -> MemoryStore {
    let store = MemoryStore::new();
    key_state::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
    usage::ensure_entries(&store, c.keys.iter().map(|k| &k.sha256)).unwrap();
    store
}

fn call(
    c: &Config,
    store: &MemoryStore,
    method: &str,
    path: &str,
    secret: Option<&str>,
) -> AdminAnswer {
    let secrets: Vec<&[u8]> = secret.map(str::as_bytes).into_iter().collect();
    let req = AdminRequest {
        method: method.as_bytes(),
        path: path.as_bytes(),
        secrets: &secrets,
        client_ip: Some("127.0.0.1".parse().unwrap()),
        by_role: false,
    };
    handle(c, &req, store, NOW)
}

fn body(a: &AdminAnswer) -> Value {
    serde_json::from_slice(&a.reply.body).unwrap()
}

const P: &str = "/rag-guard/admin/";

#[test]
fn access_needs_the_secret_in_the_header() {
    let c = cfg(true);
    let s = store_for(&c);
    let keys = format!("{P}keys");
    assert_eq!(call(&c, &s, "GET", &keys, Some("s3cret")).reply.status, 200);
    for secret in [None, Some("wrong"), Some("")] {
        let a = call(&c, &s, "GET", &keys, secret);
        assert_eq!(
            (a.status, a.reply.status),
            (AdminStatus::Denied, 403),
            "{secret:?}"
        );
    }
    let secrets: Vec<&[u8]> = vec![b"s3cret", b"s3cret"];
    let req = AdminRequest {
        method: b"GET",
        path: keys.as_bytes(),
        secrets: &secrets,
        client_ip: None,
        by_role: false,
    };
    assert_eq!(handle(&c, &req, &s, NOW).status, AdminStatus::Denied);
    // In the query string: refused even with the right header, under any name.
    for q in [
        "?secret=s3cret",
        "?x-admin-secret=nope",
        "?ADMIN_SECRET=x",
        "?token=s3cret",
        "?t=s3%63ret",
    ] {
        let a = call(&c, &s, "GET", &format!("{keys}{q}"), Some("s3cret"));
        assert_eq!(
            (a.status, a.reply.status),
            (AdminStatus::QuerySecret, 400),
            "{q}"
        );
    }
    assert!(AdminStatus::QuerySecret.is_auth_failure() && AdminStatus::Denied.is_auth_failure());
}

#[test]
fn without_an_admin_section_everything_is_404() {
    let c = cfg(false);
    let s = store_for(&c);
    assert!(is_admin_path(&c, b"/rag-guard/admin/keys?x=1"));
    assert!(is_admin_path(&c, b"/rag-guard/admin"));
    assert!(!is_admin_path(&c, b"/rag-guard/administrator"));
    let a = call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret"));
    assert_eq!((a.status, a.reply.status), (AdminStatus::Disabled, 404));
}

#[test]
fn lists_keys_with_status_and_usage() {
    let c = cfg(true);
    let s = store_for(&c);
    let mut acc = Accumulator::default();
    let alpha = &c.keys.iter().find(|k| k.name == "alpha").unwrap().sha256;
    acc.record(alpha, Kind::Admitted, NOW_SECS - 10);
    acc.record(alpha, Kind::RateLimited, NOW_SECS - 5);
    usage::flush(&s, &mut acc);
    let a = call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret"));
    let v = body(&a);
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0]["name"], "alpha");
    assert_eq!(keys[0]["status"], "active");
    assert_eq!(keys[0]["request_count"], 2);
    assert_eq!(keys[0]["last_used"], rfc3339(NOW_SECS - 5));
    assert_eq!(keys[0]["key_id"], &sha256_hex(b"ka")[..16]);
    assert_eq!(keys[2]["status"], "revoked");
    assert_eq!(keys[2]["revoked_by"], "config");
    let text = String::from_utf8(a.reply.body.clone()).unwrap();
    assert!(!text.contains(&sha256_hex(b"ka")), "no full digests");
    assert_eq!(
        a.reply.headers,
        vec![("cache-control", "no-store".to_string())]
    );
}

#[test]
fn expiring_keys_within_n_days() {
    let c = cfg(true);
    let s = store_for(&c);
    let names = |path: &str| -> Vec<String> {
        body(&call(&c, &s, "GET", path, Some("s3cret")))["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&format!("{P}keys/expiring")), vec!["alpha"]);
    assert_eq!(
        names(&format!("{P}keys/expiring?days=31")),
        vec!["alpha", "beta"]
    );
    assert_eq!(
        names(&format!("{P}keys/expiring?days=2")),
        Vec::<String>::new()
    );
    for bad in ["0", "x", "99999"] {
        let a = call(
            &c,
            &s,
            "GET",
            &format!("{P}keys/expiring?days={bad}"),
            Some("s3cret"),
        );
        assert_eq!((a.status, a.reply.status), (AdminStatus::Error, 400));
    }
}

#[test]
fn revoke_and_restore() {
    let c = cfg(true);
    let s = store_for(&c);
    let a = call(
        &c,
        &s,
        "POST",
        &format!("{P}keys/beta/revoke"),
        Some("s3cret"),
    );
    assert_eq!(a.reply.status, 200);
    let v = body(&a);
    assert_eq!(v["runtime_override"], true);
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["config_change"],
        json!({"keys": [{"name": "beta", "enabled": false}]})
    );
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.events[0].1.event, "key_revoked");
    let listed = body(&call(&c, &s, "GET", &format!("{P}keys"), Some("s3cret")));
    assert_eq!(listed["keys"][1]["status"], "revoked");
    assert_eq!(listed["keys"][1]["revoked_by"], "admin");
    // Again: no change, no event.
    let again = call(
        &c,
        &s,
        "POST",
        &format!("{P}keys/beta/revoke"),
        Some("s3cret"),
    );
    assert_eq!(body(&again)["changed"], false);
    assert!(again.events.is_empty());
    let r = call(
        &c,
        &s,
        "POST",
        &format!("{P}keys/beta/restore"),
        Some("s3cret"),
    );
    assert_eq!(body(&r)["status"], "active");
    assert_eq!(r.events[0].1.event, "key_restored");
    // A key disabled in the configuration cannot be restored at runtime.
    let off = call(
        &c,
        &s,
        "POST",
        &format!("{P}keys/off/restore"),
        Some("s3cret"),
    );
    assert_eq!(off.reply.status, 409);
    let unknown = call(
        &c,
        &s,
        "POST",
        &format!("{P}keys/nope/revoke"),
        Some("s3cret"),
    );
    assert_eq!(unknown.reply.status, 404);
    let get = call(
        &c,
        &s,
        "GET",
        &format!("{P}keys/beta/revoke"),
        Some("s3cret"),
    );
    assert_eq!(get.reply.status, 405);
    assert!(get.reply.headers.contains(&("allow", "POST".to_string())));
}

#[test]
fn usage_per_day_per_key_and_tier() {
    let c = cfg(true);
    let s = store_for(&c);
    let mut acc = Accumulator::default();
    let key = |n: &str| c.keys.iter().find(|k| k.name == n).unwrap().sha256;
    for _ in 0..3 {
        acc.record(&key("alpha"), Kind::Admitted, NOW_SECS);
    }
    acc.record(&key("alpha"), Kind::Rejected, NOW_SECS - 86_400);
    acc.record(&key("beta"), Kind::RateLimited, NOW_SECS);
    usage::flush(&s, &mut acc);
    let v = body(&call(
        &c,
        &s,
        "GET",
        &format!("{P}usage?days=2"),
        Some("s3cret"),
    ));
    let alpha = &v["keys"][0];
    assert_eq!(alpha["days"].as_array().unwrap().len(), 2);
    assert_eq!(alpha["days"][1]["admitted"], 3);
    assert_eq!(alpha["days"][0]["rejected"], 1);
    assert_eq!(
        alpha["totals"],
        json!({"admitted": 3, "rate_limited": 0, "rejected": 1})
    );
    let tiers = v["tiers"].as_array().unwrap();
    let free = tiers.iter().find(|t| t["tier"] == "free").unwrap();
    assert_eq!(free["totals"]["rate_limited"], 1);
    assert_eq!(v["to"], rfc3339(NOW_SECS)[..10]);
    let too_many = call(&c, &s, "GET", &format!("{P}usage?days=33"), Some("s3cret"));
    assert_eq!(too_many.reply.status, 400);
}

#[test]
fn unknown_paths_are_404_after_authentication() {
    let c = cfg(true);
    let s = store_for(&c);
    for path in ["", "keys/", "nope", "keys/alpha", "keys/alpha/revoke/x"] {
        let a = call(&c, &s, "GET", &format!("{P}{path}"), Some("s3cret"));
        assert_eq!(a.reply.status, 404, "{path}");
    }
}
