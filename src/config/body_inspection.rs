//! The `body_inspection` section: inspected routes and their fields,
//! category actions, extra rules and the special-character threshold.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::inspection::routes::{
    default_routes, Action, BodyInspection, FieldKind, FieldRule, OtherMethods, RouteRule,
    MAX_ROUTE_BODY_BYTES,
};
use crate::inspection::rules::{Category, RuleSet};
use crate::inspection::scorer::{self, Scorer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBodyInspection {
    #[serde(default)]
    routes: Option<Vec<RawRoute>>,
    #[serde(default)]
    categories: BTreeMap<String, Action>,
    #[serde(default)]
    extra_rules: Vec<RawRule>,
    #[serde(default = "default_ratio")]
    special_char_ratio: f64,
    #[serde(default = "default_other_methods")]
    other_methods: OtherMethods,
    #[serde(default)]
    injection_model: RawInjectionModel,
}

/// `body_inspection.injection_model`: the prompt-injection scorer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInjectionModel {
    #[serde(default = "default_model_mode")]
    mode: Action,
    /// Defaults: the thresholds the training chose (in the model file).
    #[serde(default)]
    threshold: Option<f32>,
    #[serde(default)]
    document_threshold: Option<f32>,
    /// Default: [`DEFAULT_VETO_BELOW`], or the threshold if lower.
    #[serde(default)]
    veto_below: Option<f32>,
}

impl Default for RawInjectionModel {
    fn default() -> Self {
        RawInjectionModel {
            mode: default_model_mode(),
            threshold: None,
            document_threshold: None,
            veto_below: None,
        }
    }
}

fn default_model_mode() -> Action {
    Action::Block
}

/// See docs/detection.md for the measurement behind it.
pub const DEFAULT_VETO_BELOW: f32 = 0.3;

impl Default for RawBodyInspection {
    fn default() -> Self {
        RawBodyInspection {
            routes: None,
            categories: BTreeMap::new(),
            extra_rules: Vec::new(),
            special_char_ratio: default_ratio(),
            other_methods: default_other_methods(),
            injection_model: RawInjectionModel::default(),
        }
    }
}

fn default_ratio() -> f64 {
    0.3
}

fn default_other_methods() -> OtherMethods {
    OtherMethods::Refuse
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    category: String,
    id: String,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    allow_methods: Vec<String>,
    max_body_bytes: usize,
    #[serde(default)]
    allow_unknown_fields: bool,
    fields: BTreeMap<String, RawField>,
}

fn default_method() -> String {
    "POST".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    min_chars: Option<usize>,
    #[serde(default)]
    max_chars: Option<usize>,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default)]
    screen: Option<Vec<String>>,
    #[serde(default)]
    extensions: Option<Vec<String>>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

pub(super) fn parse_config(raw: RawBodyInspection) -> Result<BodyInspection, (String, String)> {
    let err = |f: String, m: String| (f, m);
    let mut actions = BTreeMap::new();
    for (name, action) in raw.categories {
        let category = Category::parse(&name).ok_or_else(|| {
            err(
                format!("body_inspection.categories.{name}"),
                "unknown category".into(),
            )
        })?;
        actions.insert(category, action);
    }
    let mut extra = Vec::new();
    for (i, r) in raw.extra_rules.into_iter().enumerate() {
        let category = Category::parse(&r.category).ok_or_else(|| {
            err(
                format!("body_inspection.extra_rules[{i}].category"),
                format!("unknown category {:?}", r.category),
            )
        })?;
        if category == Category::DocumentInjection {
            return Err(err(
                format!("body_inspection.extra_rules[{i}].category"),
                "document_injection is found by the scorer, not by rules".into(),
            ));
        }
        extra.push((category, r.id, r.pattern));
    }
    if !(0.0..=1.0).contains(&raw.special_char_ratio) {
        return Err(err(
            "body_inspection.special_char_ratio".into(),
            "must be between 0 and 1".into(),
        ));
    }
    let disabled: Vec<Category> = actions
        .iter()
        .filter(|(_, a)| **a == Action::Off)
        .map(|(c, _)| *c)
        .collect();
    let rules = RuleSet::new(&extra, &disabled, raw.special_char_ratio)
        .map_err(|m| err("body_inspection.extra_rules".into(), m))?;
    let routes = match raw.routes {
        None => default_routes(),
        Some(routes) => {
            let routes: Vec<RouteRule> = routes
                .into_iter()
                .enumerate()
                .map(|(i, r)| parse_route(i, r))
                .collect::<Result<_, _>>()?;
            for (i, r) in routes.iter().enumerate() {
                if routes[..i]
                    .iter()
                    .any(|o| o.path == r.path && o.method == r.method)
                {
                    return Err((
                        format!("body_inspection.routes[{i}]"),
                        format!(
                            "{} {} is already inspected by an earlier route",
                            r.method, r.path
                        ),
                    ));
                }
            }
            routes
        }
    };
    let scorer = parse_scorer(&raw.injection_model)?;
    if scorer.is_none() {
        let screened = routes.iter().enumerate().find_map(|(i, r)| {
            r.fields
                .iter()
                .find(|(_, f)| match &f.kind {
                    FieldKind::String { screen, .. } => {
                        screen.contains(&Category::DocumentInjection)
                    }
                    _ => false,
                })
                .map(|(name, _)| format!("body_inspection.routes[{i}].fields.{name}.screen"))
        });
        if let Some(path) = screened {
            return Err((
                path,
                "document_injection needs the scorer (injection_model.mode block or report)".into(),
            ));
        }
    }
    Ok(BodyInspection {
        routes,
        actions,
        rules,
        other_methods: raw.other_methods,
        scorer,
        model_action: raw.injection_model.mode,
    })
}

fn parse_scorer(raw: &RawInjectionModel) -> Result<Option<Scorer>, (String, String)> {
    let field = |f: &str| format!("body_inspection.injection_model.{f}");
    let probability = |name: &str, value: Option<f32>| match value {
        Some(v) if !(v > 0.0 && v < 1.0) => Err((
            field(name),
            "must be between 0 and 1 (exclusive)".to_string(),
        )),
        _ => Ok(()),
    };
    probability("threshold", raw.threshold)?;
    probability("document_threshold", raw.document_threshold)?;
    let model = scorer::embedded().map_err(|m| (field("mode"), format!("embedded model: {m}")))?;
    let threshold = raw.threshold.unwrap_or(model.threshold);
    let document_threshold = raw.document_threshold.unwrap_or(model.document_threshold);
    let veto_below = raw.veto_below.unwrap_or(DEFAULT_VETO_BELOW.min(threshold));
    if !(veto_below >= 0.0 && veto_below <= threshold) {
        return Err((
            field("veto_below"),
            format!("must be between 0 and the threshold ({threshold})"),
        ));
    }
    if raw.mode == Action::Off {
        return Ok(None);
    }
    Ok(Some(Scorer::new(
        model,
        threshold,
        document_threshold,
        veto_below,
    )))
}

fn parse_route(i: usize, r: RawRoute) -> Result<RouteRule, (String, String)> {
    let field = |f: &str| format!("body_inspection.routes[{i}].{f}");
    if !r.path.starts_with('/') || r.path.len() < 2 || r.path.contains(['?', '#', '*']) {
        return Err((
            field("path"),
            "must be a path starting with '/' (not '/' alone)".into(),
        ));
    }
    if r.method.is_empty() || !r.method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err((field("method"), "must be an upper-case HTTP method".into()));
    }
    if r.allow_methods
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) || *m == r.method)
    {
        return Err((
            field("allow_methods"),
            "must be upper-case HTTP methods other than the route's own method".into(),
        ));
    }
    if r.max_body_bytes == 0 || r.max_body_bytes > MAX_ROUTE_BODY_BYTES {
        return Err((
            field("max_body_bytes"),
            format!("must be 1..={MAX_ROUTE_BODY_BYTES}"),
        ));
    }
    let mut fields = BTreeMap::new();
    for (name, f) in r.fields {
        let ff = |x: &str| format!("body_inspection.routes[{i}].fields.{name}.{x}");
        let screen = match &f.screen {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .map(|c| {
                    Category::parse(c).ok_or((ff("screen"), format!("unknown category {c:?}")))
                })
                .collect::<Result<_, _>>()?,
        };
        let kind = match f.kind.as_str() {
            "string" => FieldKind::String {
                min_chars: f.min_chars.unwrap_or(0),
                max_chars: f.max_chars.unwrap_or(usize::MAX),
                max_bytes: f.max_bytes.unwrap_or(r.max_body_bytes),
                screen,
            },
            "filename" => {
                let extensions: Vec<String> = f
                    .extensions
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.to_lowercase())
                    .collect();
                if extensions.is_empty()
                    || extensions
                        .iter()
                        .any(|e| !e.starts_with('.') || e.len() < 2)
                {
                    return Err((
                        ff("extensions"),
                        "must list extensions starting with '.' (e.g. [\".txt\"])".into(),
                    ));
                }
                if screen.contains(&Category::DocumentInjection) {
                    return Err((
                        ff("screen"),
                        "document_injection applies to string fields only".into(),
                    ));
                }
                FieldKind::Filename {
                    max_chars: f.max_chars.unwrap_or(255),
                    extensions,
                    screen: if f.screen.is_some() {
                        screen
                    } else {
                        vec![Category::Xss, Category::PathTraversal]
                    },
                }
            }
            "integer" => {
                if [f.min, f.max].iter().flatten().any(|v| v.fract() != 0.0) {
                    return Err((ff("min"), "integer bounds must be whole numbers".into()));
                }
                FieldKind::Integer {
                    min: f.min.map_or(i64::MIN, |v| v as i64),
                    max: f.max.map_or(i64::MAX, |v| v as i64),
                }
            }
            "number" => FieldKind::Number {
                min: f.min.unwrap_or(f64::MIN),
                max: f.max.unwrap_or(f64::MAX),
            },
            "boolean" => FieldKind::Boolean,
            other => {
                return Err((
                    ff("type"),
                    format!("unknown type {other:?} (string, filename, integer, number, boolean)"),
                ))
            }
        };
        if f.min.zip(f.max).is_some_and(|(lo, hi)| lo > hi)
            || f.min_chars.zip(f.max_chars).is_some_and(|(lo, hi)| lo > hi)
        {
            return Err((ff("min"), "minimum above maximum".into()));
        }
        fields.insert(
            name,
            FieldRule {
                kind,
                required: f.required,
            },
        );
    }
    Ok(RouteRule {
        path: r.path.trim_end_matches('/').to_string(),
        method: r.method,
        allow_methods: r.allow_methods,
        max_body_bytes: r.max_body_bytes,
        allow_unknown_fields: r.allow_unknown_fields,
        fields,
    })
}
