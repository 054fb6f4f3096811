//! What inspecting a body decides: pass (with report-only and vetoed flags) or a
//! rejection that names the field and category, never the payload.

use serde_json::Value;

use crate::inspection::routes::RouteRule;
use crate::inspection::rules::Category;

/// The outcome of inspecting one body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyVerdict {
    /// Forward; `flags` are the report-only matches and the vetoed ones.
    Pass {
        flags: Vec<Flag>,
    },
    Reject(Rejection),
}

/// A report-only (or vetoed) match: which configured field, category and rule, the
/// scorer's score when it had one, and for a document the byte offset of
/// the chunk it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub field: String,
    pub category: Category,
    pub rule_id: String,
    pub score: Option<f32>,
    pub offset: Option<u32>,
    /// A prompt-injection rule's match that the scorer vetoed (the text
    /// scored below `veto_below`: a question about injection). The request
    /// passes and the upstream is not told (no `x-rag-guard-flags`); the
    /// filter counts and logs it, so that an operator can audit what the
    /// veto let through.
    pub vetoed: bool,
}

/// The flags the upstream is told about (all but the vetoed).
pub fn forwarded(flags: &[Flag]) -> impl Iterator<Item = &Flag> {
    flags.iter().filter(|f| !f.vetoed)
}

/// The value of `x-rag-guard-flags`: each flagged category once, in
/// category order, comma-separated, with the highest score among its flags
/// (three decimals) and, for a document, the first offset:
/// `prompt_injection;score=0.963,document_injection;score=0.981;offset=5120`.
pub fn flags_header(flags: &[Flag]) -> String {
    let mut out = String::new();
    for category in flag_categories(flags) {
        let mine = || forwarded(flags).filter(move |f| f.category == category);
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(category.as_str());
        if let Some(score) = mine().filter_map(|f| f.score).reduce(f32::max) {
            out.push_str(&format!(";score={score:.3}"));
        }
        if let Some(offset) = mine().find_map(|f| f.offset) {
            out.push_str(&format!(";offset={offset}"));
        }
    }
    out
}

/// The distinct categories of the forwarded `flags`, in category order
/// (the value of `x-rag-guard-flags`).
pub fn flag_categories(flags: &[Flag]) -> Vec<Category> {
    let mut out: Vec<Category> = forwarded(flags).map(|f| f.category).collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u32,
    pub detail: String,
    pub field: Option<String>,
    pub category: Option<Category>,
    pub rule_id: Option<Box<str>>,
    /// The scorer's score of the field, when it decided or had one.
    pub score: Option<f32>,
    /// For a document: the byte offset of the chunk the injection is in.
    pub offset: Option<u32>,
    /// Short machine reason for events and metrics.
    pub reason: &'static str,
    /// For a 405: the `Allow` header.
    pub allow: Option<Box<str>>,
}

impl Rejection {
    pub(super) fn new(status: u32, reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            status,
            detail: detail.into(),
            field: None,
            category: None,
            rule_id: None,
            score: None,
            offset: None,
            reason,
            allow: None,
        }
    }

    /// A method the inspected path does not take (see
    /// `routes::OtherMethods::Refuse`).
    pub fn method_not_allowed(allow: String) -> Self {
        Rejection {
            allow: Some(allow.into()),
            ..Rejection::new(405, "method_not_allowed", "Method Not Allowed")
        }
    }

    pub(super) fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// The JSON reply body: `detail`, and `field` / `category` when known.
    /// Never the payload.
    pub fn body(&self) -> Vec<u8> {
        let mut v = serde_json::json!({ "detail": self.detail });
        if let Some(f) = &self.field {
            v["field"] = Value::String(f.clone());
        }
        if let Some(c) = self.category {
            v["category"] = Value::String(c.as_str().to_string());
        }
        v.to_string().into_bytes()
    }
}

/// Every `Rejection::reason`, for metrics.
pub const REJECTION_REASONS: [&str; 11] = [
    "method_not_allowed",
    "unsupported_media_type",
    "body_too_large",
    "bad_content_length",
    "invalid_json",
    "duplicate_key",
    "unknown_field",
    "missing_field",
    "invalid_field",
    "path_traversal",
    "malicious_pattern",
];

pub const BLOCKED_DETAIL: &str = "Invalid input detected: potentially malicious pattern";

pub(super) fn too_large(route: &RouteRule) -> Rejection {
    Rejection::new(
        413,
        "body_too_large",
        format!(
            "Request body too large (limit {} bytes)",
            route.max_body_bytes
        ),
    )
}
