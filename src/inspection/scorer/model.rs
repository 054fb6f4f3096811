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
//! distinct table entries `f`: a binary feature vector scaled to unit
//! length, so a repeated sentence scores as once, and long and short texts
//! are on one scale. Its score is the logit's sigmoid, between 0 and 1.

use super::features::{feed, feed_raw, Sink};

const MAGIC: &[u8; 4] = b"RGPI";
const VERSION: u8 = 1;
const HEADER: usize = 24;
/// The table has 2^BITS weights (the filter's one size; train/train.py
/// writes the same).
pub const BITS: u8 = 15;
const TABLE: usize = 1 << BITS;
// The stamps are renumbered four entries at a time (`Stamps::start`).
const _: () = assert!(TABLE % 4 == 0);

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

/// The weight sum and distinct-feature count of part of a text.
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

    pub fn minus(self, other: Partial) -> Partial {
        Partial {
            sum: self.sum.saturating_sub(other.sum),
            count: self.count.saturating_sub(other.count),
        }
    }
}

/// The weights next to the number of the chunk of text that last used
/// each entry, one `u16` per entry (the weight in the low byte): reading a
/// feature's weight and whether this chunk has it already is one memory
/// access. A chunk counts each distinct feature once (so repeating a
/// sentence does not raise its score), and a window of two chunks
/// subtracts the entries both used. One table per thread (64 KiB), kept
/// between texts: a new chunk takes the next number (a new text the one
/// after, so that no entry holds the number before its first chunk); when
/// the numbers wrap the older stamps are cleared and the previous chunk's
/// renumbered. Number 0 is "never".
pub struct Stamps {
    chunk: u8,
    /// The weights it holds (the model's table address).
    of: usize,
    table: Box<[u16; TABLE]>,
}

impl Stamps {
    fn new() -> Self {
        Stamps {
            chunk: 0,
            of: 0,
            table: Box::new([0; TABLE]),
        }
    }

    /// Starts a chunk scored with `weights` and gives its number. The
    /// number before it is the chunk before it in the same text when
    /// `continues` (the caller's word: it is the previous chunk scored),
    /// and a number no entry holds when not: a new text skips one.
    fn start(&mut self, weights: &[u8; TABLE], mut continues: bool) -> u8 {
        let of = weights.as_ptr() as usize;
        if self.of != of {
            continues = false;
            for (t, w) in self.table.iter_mut().zip(weights.iter()) {
                *t = u16::from(*w);
            }
            (self.of, self.chunk) = (of, 0);
        }
        let step = if continues { 1 } else { 2 };
        match self.chunk.checked_add(step) {
            Some(next) => self.chunk = next,
            None => {
                // Numbers wrap: the previous chunk becomes 1, every older
                // stamp is forgotten (0: never), and this chunk is 1 + step.
                // Four entries at a time (the module has no SIMD: one at
                // a time, this loop was 6% of a question in V8).
                const LOW: u64 = 0x00ff_00ff_00ff_00ff;
                const SIGN: u64 = 0x0080_0080_0080_0080;
                let last = u64::from(self.chunk) * 0x0001_0001_0001_0001;
                for four in self.table.chunks_exact_mut(4) {
                    let x = four
                        .iter()
                        .rev()
                        .fold(0u64, |acc, t| acc << 16 | u64::from(*t));
                    // Each stamp xor `last`, in its lane's low byte, and
                    // 0x80 in each lane where that is not 0.
                    let diff = (x >> 8 & LOW) ^ last;
                    let other = ((diff + 0x007f_007f_007f_007f) | diff) & SIGN;
                    let y = ((!other & SIGN) << 1) | (x & LOW);
                    for (i, t) in four.iter_mut().enumerate() {
                        *t = (y >> (16 * i)) as u16;
                    }
                }
                self.chunk = 1 + step;
            }
        }
        self.chunk
    }
}

/// The sink of one chunk's features: each table entry counted once per
/// chunk (its stamp), and the entries the chunk before used too.
struct Dedupe<'a> {
    table: &'a mut [u16; TABLE],
    /// This chunk's stamp and the one before it (in the high byte); no
    /// entry holds `before` unless the chunk continues a text.
    now: u16,
    before: u16,
    /// The fresh entries' weight sum and count as `sum << 32 | count`
    /// (one add per feature for both), and the same for the entries the
    /// chunk before used too.
    fresh: i64,
    shared: i64,
}

impl Dedupe<'_> {
    fn unpack(packed: i64) -> Partial {
        Partial {
            sum: i32::try_from(packed >> 32).unwrap_or(i32::MAX),
            count: packed as u32,
        }
    }
}

impl Sink for Dedupe<'_> {
    #[inline(always)]
    fn feature(&mut self, f: u32) {
        let entry = &mut self.table[f as usize & (TABLE - 1)];
        let (last, weight) = (*entry & 0xff00, *entry & 0xff);
        *entry = self.now | weight;
        // Branch-free: about half of a text's features repeat one seen
        // earlier in the chunk, too many for a branch to predict.
        let unit = i64::from(weight as u8 as i8) << 32 | 1;
        self.fresh += unit & -i64::from(last != self.now);
        self.shared += unit & -i64::from(last == self.before);
    }
}

thread_local! {
    static STAMPS: std::cell::RefCell<Stamps> = std::cell::RefCell::new(Stamps::new());
}

/// Runs `f` with this thread's stamps (a fresh table if they are in use,
/// which the scorer never does: it does not call itself).
pub(super) fn with_stamps<R>(f: impl FnOnce(&mut Stamps) -> R) -> R {
    STAMPS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut stamps) => f(&mut stamps),
        Err(_) => f(&mut Stamps::new()),
    })
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

    /// The weight sum of a normalized text (each distinct feature once).
    pub fn partial(&self, normalized: &str) -> Partial {
        with_stamps(|stamps| self.chunk_partial(normalized, true, stamps, false).0)
    }

    /// The weight sum of one chunk of text (`normalized`: already in
    /// screening form, else normalized as it is read), and the part of it
    /// that the chunk before used too when `continues`: a window of two
    /// chunks is `a + b - overlap`, each distinct feature once.
    pub fn chunk_partial(
        &self,
        text: &str,
        normalized: bool,
        stamps: &mut Stamps,
        continues: bool,
    ) -> (Partial, Partial) {
        let chunk = stamps.start(self.weights, continues);
        let sink = Dedupe {
            table: &mut stamps.table,
            now: u16::from(chunk) << 8,
            before: u16::from(chunk.wrapping_sub(1)) << 8,
            fresh: 0,
            shared: 0,
        };
        let done = if normalized {
            feed(text, sink)
        } else {
            feed_raw(text, sink)
        };
        (Dedupe::unpack(done.fresh), Dedupe::unpack(done.shared))
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
    fn windows_are_the_same_whatever_came_before() {
        // Weights that vary by entry, and a text of many chunks: its window
        // logits must not depend on how many chunks were scored before it
        // (the chunk numbers wrap every 127 to 254 chunks).
        let weights: Vec<i8> = (0..TABLE).map(|i| ((i % 201) as i32 - 100) as i8).collect();
        let m = Model::parse(file(BITS, &weights, 0.0)).unwrap();
        let text: String = (0..600)
            .map(|i| format!("word{} other{} ", i % 37, i % 11))
            .collect();
        let windows = || {
            let mut out = Vec::new();
            super::super::document::for_each_window(&m, &text, true, |z, _| {
                out.push(z);
                true
            });
            out
        };
        let first = windows();
        assert!(first.len() > 20);
        for skip in 0..300 {
            let _ = m.partial("padding text");
            if skip % 37 == 0 {
                assert_eq!(windows(), first, "{skip}");
            }
        }
    }

    #[test]
    fn chunk_sums_are_those_of_the_sets_of_entries() {
        // Each chunk's sum against its set of entries, and the part the
        // chunk before used too against the sets' intersection: 3,000
        // chunks of a few words (the chunk numbers wrap many times), a new
        // text one time in five.
        use super::super::features::for_each_feature_of_raw;
        use std::collections::HashSet;
        let weights: Vec<i8> = (0..TABLE).map(|i| (i * 7919 % 255) as i8).collect();
        let m = Model::parse(file(BITS, &weights, 0.0)).unwrap();
        let entries = |text: &str| {
            let mut set = HashSet::new();
            for_each_feature_of_raw(text, |f| {
                set.insert(f as usize & (TABLE - 1));
            });
            set
        };
        let sum = |set: &HashSet<usize>| Partial {
            sum: set.iter().map(|&e| i32::from(weights[e])).sum(),
            count: set.len() as u32,
        };
        let words = [
            "ignore",
            "all",
            "previous",
            "Rules",
            "r\u{e9}sum\u{e9}",
            "<b>",
            "42",
        ];
        let mut stamps = Stamps::new();
        let mut before: Option<HashSet<usize>> = None;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3_000 {
            let mut text = String::new();
            for _ in 0..next() % 9 {
                text.push_str(words[(next() % words.len() as u64) as usize]);
                text.push(' ');
            }
            let continues = before.is_some() && next() % 5 != 0;
            let (part, overlap) = m.chunk_partial(&text, false, &mut stamps, continues);
            let set = entries(&text);
            assert_eq!(part, sum(&set), "{text:?}");
            let expected = match &before {
                Some(b) if continues => sum(&set.intersection(b).copied().collect()),
                _ => Partial::default(),
            };
            assert_eq!(overlap, expected, "{text:?}");
            before = Some(set);
        }
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
