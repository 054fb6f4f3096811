//! The prompt-injection model: a logistic regression over hashed features
//! (see `features`), with 8-bit weights.
//!
//! File format (little-endian), written by `train/train.py`:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `RGPI` |
//! | 4 | format version, 1 |
//! | 5 | `bits`: the table has `2^bits` weights (15, [`BITS`]) |
//! | 6..8 | reserved, 0 |
//! | 8..12 | `scale` (f32): a weight is `scale * q` for its byte `q` (i8) |
//! | 12..16 | `bias` (f32) |
//! | 16..20 | `threshold` (f32): the trained probability threshold for a text |
//! | 20..24 | `document_threshold` (f32): the same for a document window |
//! | 24.. | `2^bits` weights, one i8 each |
//!
//! A text's logit is `bias + scale * sum(q[f]) / sqrt(n)` over its `n`
//! features `f` (repeats included): the features are counted, then the
//! vector is scaled to unit length as if each feature were counted once,
//! so long and short texts are on one scale. Its score is the logit's
//! sigmoid, between 0 and 1.

use super::features::{for_each_feature, for_each_feature_of_raw};

const MAGIC: &[u8; 4] = b"RGPI";
const VERSION: u8 = 1;
const HEADER: usize = 24;
/// The table has 2^BITS weights (the filter's one size; train/train.py
/// writes the same).
pub const BITS: u8 = 15;
const TABLE: usize = 1 << BITS;

/// A parsed model, borrowing its weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// One i8 per weight, stored as its byte (a fixed size: indexing
    /// with a masked feature needs no bounds check).
    weights: &'static [u8; TABLE],
    scale: f32,
    bias: f32,
    /// The threshold the training chose for a question (a probability).
    pub threshold: f32,
    /// The threshold the training chose for a document window.
    pub document_threshold: f32,
}

/// The weight sum and feature count of part of a text; two parts add up to
/// the whole (less the features that span their boundary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partial {
    pub sum: i32,
    pub count: u32,
}

impl Partial {
    pub fn plus(self, other: Partial) -> Partial {
        Partial {
            sum: self.sum.saturating_add(other.sum),
            count: self.count.saturating_add(other.count),
        }
    }
}

fn f32_at(bytes: &[u8], at: usize) -> Option<f32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(f32::from_le_bytes(b))
}

impl Model {
    /// Reads a model file; an error says what is wrong with it.
    pub fn parse(bytes: &'static [u8]) -> Result<Model, String> {
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err("not a rag-guard model (magic)".into());
        }
        if bytes.get(4) != Some(&VERSION) {
            return Err(format!(
                "model format version {:?}, expected {VERSION}",
                bytes.get(4)
            ));
        }
        let bits = bytes.get(5).copied().unwrap_or(0);
        if bits != BITS {
            return Err(format!(
                "model table of 2^{bits} weights, expected 2^{BITS}"
            ));
        }
        let table: &'static [u8; TABLE] = bytes
            .get(HEADER..)
            .and_then(|t| t.try_into().ok())
            .ok_or(format!("model table is not {TABLE} bytes"))?;
        let header = |at| f32_at(bytes, at).filter(|v| v.is_finite());
        let (Some(scale), Some(bias), Some(threshold), Some(document_threshold)) =
            (header(8), header(12), header(16), header(20))
        else {
            return Err("model header has a value that is not a finite number".into());
        };
        if !(0.0..1.0).contains(&threshold) || !(0.0..1.0).contains(&document_threshold) {
            return Err("model thresholds must be in [0, 1)".into());
        }
        Ok(Model {
            weights: table,
            scale,
            bias,
            threshold,
            document_threshold,
        })
    }

    /// Number of weights.
    pub fn size(&self) -> usize {
        self.weights.len()
    }

    #[inline(always)]
    fn weight(&self, feature: u32) -> i32 {
        i32::from(self.weights[feature as usize & (TABLE - 1)] as i8)
    }

    /// The weight sum of a normalized text.
    pub fn partial(&self, normalized: &str) -> Partial {
        let mut p = Partial::default();
        for_each_feature(normalized, |f| {
            p.sum += self.weight(f);
            p.count += 1;
        });
        p
    }

    /// The weight sum of `normalize(raw)`.
    pub fn partial_of_raw(&self, raw: &str) -> Partial {
        let mut p = Partial::default();
        for_each_feature_of_raw(raw, |f| {
            p.sum += self.weight(f);
            p.count += 1;
        });
        p
    }

    /// The logit of a weight sum.
    pub fn logit(&self, p: Partial) -> f32 {
        if p.count == 0 {
            return self.bias;
        }
        self.bias + self.scale * p.sum as f32 / (p.count as f32).sqrt()
    }

    /// The score (probability of an injection) of a normalized text.
    pub fn score(&self, normalized: &str) -> f32 {
        sigmoid(self.logit(self.partial(normalized)))
    }
}

/// `1 / (1 + e^-z)`.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The logit of probability `p` (0 < p < 1): thresholds are compared on
/// logits, so a text is scored without an exponential.
pub fn logit_of(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bits: u8, weights: &[i8], bias: f32) -> &'static [u8] {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&[VERSION, bits, 0, 0]);
        for v in [0.5f32, bias, 0.8, 0.9] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut table = vec![0u8; 1 << bits];
        for (t, w) in table.iter_mut().zip(weights) {
            *t = *w as u8;
        }
        b.extend_from_slice(&table);
        Box::leak(b.into_boxed_slice())
    }

    #[test]
    fn parses_and_scores() {
        let m = Model::parse(file(BITS, &[1; TABLE], -1.0)).unwrap();
        assert_eq!(m.size(), TABLE);
        assert_eq!(m.threshold, 0.8);
        // Every weight is 1: sum = n, logit = -1 + 0.5 * n / sqrt(n).
        let p = m.partial("ab cd");
        assert_eq!(p, Partial { sum: 7, count: 7 });
        let expected = -1.0 + 0.5 * 7f32.sqrt();
        assert!((m.logit(p) - expected).abs() < 1e-5);
        assert!((m.score("") - sigmoid(-1.0)).abs() < 1e-6);
        assert!((logit_of(sigmoid(1.5)) - 1.5).abs() < 1e-4);
    }

    #[test]
    fn refuses_bad_files() {
        assert!(Model::parse(b"XXXX").is_err());
        let good = file(BITS, &[], 0.0);
        assert!(Model::parse(&good[..good.len() - 1]).is_err());
        let mut bad = good.to_vec();
        bad[5] = 30;
        assert!(Model::parse(Box::leak(bad.into_boxed_slice())).is_err());
        let mut nan = good.to_vec();
        nan[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Model::parse(Box::leak(nan.into_boxed_slice())).is_err());
    }
}
