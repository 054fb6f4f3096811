//! The learned prompt-injection scorer: hashed n-gram features
//! (`features`), a logistic-regression model with 8-bit weights
//! (`model`), and the windowed screening of long documents (`document`).
//!
//! The model is trained by `make train` (train/train.py) from the data in
//! tests/data and the development corpus, and embedded in the module at
//! build time from model/prompt_injection.bin.

pub mod document;
pub mod features;
pub mod model;

use model::{logit_of, Model};

/// The trained model, as built into the module.
static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../model/prompt_injection.bin");

/// The embedded model.
pub fn embedded() -> Result<Model, String> {
    Model::parse(EMBEDDED_MODEL)
}

/// The model with the thresholds a configuration chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scorer {
    pub model: Model,
    /// A question scoring at or above this is a prompt injection.
    pub threshold: f32,
    /// A document window scoring at or above this is an indirect injection.
    pub document_threshold: f32,
    /// A prompt-injection rule match on a question scoring below this is
    /// dropped (a question *about* injection), 0 to keep every match.
    pub veto_below: f32,
    threshold_logit: f32,
    document_logit: f32,
    veto_logit: f32,
}

impl Scorer {
    /// Thresholds are probabilities in (0, 1), `veto_below` in [0,
    /// threshold].
    pub fn new(model: Model, threshold: f32, document_threshold: f32, veto_below: f32) -> Self {
        Scorer {
            model,
            threshold,
            document_threshold,
            veto_below,
            threshold_logit: logit_of(threshold),
            document_logit: logit_of(document_threshold),
            veto_logit: if veto_below <= 0.0 {
                f32::NEG_INFINITY
            } else {
                logit_of(veto_below)
            },
        }
    }

    /// The highest logit among the forms of a text: each scored whole
    /// when short, by its best window when long
    /// ([`document::WHOLE_TEXT_BYTES`]).
    pub fn logit<'a>(&self, forms: impl Iterator<Item = &'a str>) -> f32 {
        forms
            .map(|f| {
                if f.len() <= document::WHOLE_TEXT_BYTES {
                    self.model.logit(self.model.partial(f))
                } else {
                    document::max_window_logit(&self.model, f, true)
                }
            })
            .fold(f32::NEG_INFINITY, f32::max)
    }

    pub fn is_injection(&self, logit: f32) -> bool {
        logit >= self.threshold_logit
    }

    pub fn vetoes(&self, logit: f32) -> bool {
        logit < self.veto_logit
    }

    /// The highest window logit of a document, as its screening reads it
    /// (for calibrating `document_threshold`: `rag-guard scan --scores`).
    pub fn best_document_logit(&self, text: &str) -> f32 {
        document::max_window_logit(&self.model, text, false)
    }

    /// The first window of a document at or above the document threshold.
    pub fn screen_document(&self, text: &str) -> Option<document::DocumentFinding> {
        document::screen(&self.model, text, self.document_logit)
    }
}
