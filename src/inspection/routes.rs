//! Which requests are inspected: the routes, their JSON schema (one rule
//! per field) and the action of each screening category.
//!
//! Route matching uses the normalized path (Envoy's `normalize_path` and
//! `merge_slashes`) without its query string and without a trailing `/`,
//! and the method: `/query`, `/query/`, `//query` and `/query?x=1` are all
//! the route `/query`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::http::path_only;
use crate::inspection::rules::{Category, RuleSet};
use crate::inspection::scorer::Scorer;

/// What to do when a category matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the request with 400.
    Block,
    /// Log, count, and tell the upstream in `x-rag-guard-flags`; forward.
    Report,
    /// Do not check this category.
    Off,
}

/// How a field is validated.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// A string: character limits on the whitespace-collapsed text, a byte
    /// limit on the raw text, and the categories it is screened for.
    String {
        min_chars: usize,
        max_chars: usize,
        max_bytes: usize,
        screen: Vec<Category>,
    },
    /// A file name: no path components (also after NFKC, so fullwidth or
    /// look-alike slashes count), no `:` (drive letters, NTFS streams), no
    /// control or format characters, not a Windows device name, and an
    /// allowed extension; then screened for `screen`.
    Filename {
        max_chars: usize,
        extensions: Vec<String>,
        screen: Vec<Category>,
    },
    Integer {
        min: i64,
        max: i64,
    },
    Number {
        min: f64,
        max: f64,
    },
    Boolean,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    pub kind: FieldKind,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    /// Without a trailing slash.
    pub path: String,
    pub method: String,
    /// Other methods the path takes without a body (`GET /documents` to
    /// list); forwarded uninspected only when they carry no body.
    pub allow_methods: Vec<String>,
    pub max_body_bytes: usize,
    pub allow_unknown_fields: bool,
    pub fields: BTreeMap<String, FieldRule>,
}

#[derive(Debug, Clone)]
pub struct BodyInspection {
    pub routes: Vec<RouteRule>,
    pub actions: BTreeMap<Category, Action>,
    pub rules: RuleSet,
    pub other_methods: OtherMethods,
    /// The prompt-injection scorer; None when `injection_model.mode` is
    /// `off`.
    pub scorer: Option<Scorer>,
    /// What a score at or above the threshold does to a question (never
    /// more than the `prompt_injection` category's own action).
    pub model_action: Action,
}

/// What happens to a request on an inspected path with a method that no
/// route of that path names (`PUT /query` when only `POST /query` is
/// inspected): without this, a malicious body could reach the upstream
/// uninspected under another method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherMethods {
    /// 405 with `Allow` naming the path's inspected methods (the default).
    Refuse,
    /// A request that carries a body is inspected by the path's first
    /// route; one without a body is forwarded (`GET /documents` to list).
    Inspect,
}

/// How a request's method and path meet the inspected routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Not an inspected path: forwarded as it is.
    NotInspected,
    /// Inspect the body against `routes[index]`.
    Inspect(usize),
    /// An inspected path with another method: 405, with this `Allow` value.
    WrongMethod(String),
}

impl BodyInspection {
    /// The inspected route for this method and path, if any.
    pub fn route(&self, method: &[u8], path: &[u8]) -> Option<&RouteRule> {
        self.route_index(method, path)
            .and_then(|i| self.routes.get(i))
    }

    /// The index in `routes` of the inspected route, if any.
    pub fn route_index(&self, method: &[u8], path: &[u8]) -> Option<usize> {
        let path = route_path(path);
        self.routes
            .iter()
            .position(|r| r.path.as_bytes() == path && r.method.as_bytes() == method)
    }

    /// What to do with a request of `method` on `path`; `has_body`: the
    /// request carries a body (its headers did not end the stream).
    pub fn match_request(&self, method: &[u8], path: &[u8], has_body: bool) -> RouteMatch {
        let path = route_path(path);
        let mut first = None;
        let mut bodiless_ok = false;
        let mut allow: Vec<&str> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if r.path.as_bytes() != path {
                continue;
            }
            if r.method.as_bytes() == method {
                return RouteMatch::Inspect(i);
            }
            first.get_or_insert(i);
            bodiless_ok |= r.allow_methods.iter().any(|m| m.as_bytes() == method);
            for m in std::iter::once(&r.method).chain(&r.allow_methods) {
                if !allow.contains(&m.as_str()) {
                    allow.push(m);
                }
            }
        }
        let Some(first) = first else {
            return RouteMatch::NotInspected;
        };
        match (has_body, bodiless_ok, self.other_methods) {
            (false, true, _) | (false, false, OtherMethods::Inspect) => RouteMatch::NotInspected,
            (true, _, OtherMethods::Inspect) => RouteMatch::Inspect(first),
            _ => RouteMatch::WrongMethod(allow.join(", ")),
        }
    }

    /// What to do when `category` matches (default: block, and report for
    /// `document_injection`).
    pub fn action(&self, category: Category) -> Action {
        let default = match category {
            Category::DocumentInjection => Action::Report,
            _ => Action::Block,
        };
        self.actions.get(&category).copied().unwrap_or(default)
    }
}

/// The path routes are matched on: without query string and fragment, and
/// without a trailing `/`.
fn route_path(raw: &[u8]) -> &[u8] {
    match path_only(raw) {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        p => p,
    }
}

/// Largest body a route may declare: the shipped Envoy buffer limit
/// (`per_connection_buffer_limit_bytes`) must be at least this.
pub const MAX_ROUTE_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The default routes of a typical RAG API.
pub fn default_routes() -> Vec<RouteRule> {
    let all = Category::TEXT.to_vec();
    let mut query = BTreeMap::new();
    query.insert(
        "question".to_string(),
        FieldRule {
            kind: FieldKind::String {
                min_chars: 1,
                max_chars: 2000,
                max_bytes: 16 * 1024,
                screen: all,
            },
            required: true,
        },
    );
    query.insert(
        "max_sources".to_string(),
        FieldRule {
            kind: FieldKind::Integer { min: 1, max: 10 },
            required: false,
        },
    );
    query.insert(
        "temperature".to_string(),
        FieldRule {
            kind: FieldKind::Number { min: 0.0, max: 2.0 },
            required: false,
        },
    );
    let mut documents = BTreeMap::new();
    documents.insert(
        "filename".to_string(),
        FieldRule {
            kind: FieldKind::Filename {
                max_chars: 255,
                extensions: [".txt", ".pdf", ".docx", ".md"].map(String::from).to_vec(),
                screen: vec![Category::Xss, Category::PathTraversal],
            },
            required: true,
        },
    );
    // Document content is size-checked, not screened, by default: it
    // legitimately contains code, SQL and markup. Indirect prompt injection
    // screening is opt-in: `"screen": ["document_injection"]` on the field
    // runs the scorer's windows over it (report-only unless the category's
    // action says block); the rules' categories cost far more per MB.
    documents.insert(
        "content".to_string(),
        FieldRule {
            kind: FieldKind::String {
                min_chars: 0,
                max_chars: usize::MAX,
                max_bytes: 10 * 1024 * 1024,
                screen: Vec::new(),
            },
            required: true,
        },
    );
    vec![
        RouteRule {
            path: "/query".into(),
            method: "POST".into(),
            allow_methods: Vec::new(),
            max_body_bytes: 64 * 1024,
            allow_unknown_fields: false,
            fields: query,
        },
        RouteRule {
            path: "/documents".into(),
            method: "POST".into(),
            // Listing the documents.
            allow_methods: vec!["GET".into(), "HEAD".into()],
            // 10 MiB of content, JSON-escaped, plus the envelope.
            max_body_bytes: 10 * 1024 * 1024 + 64 * 1024,
            allow_unknown_fields: false,
            fields: documents,
        },
    ]
}
