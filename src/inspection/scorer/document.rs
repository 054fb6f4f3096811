//! Screening a long text (an ingested document, or a long question) in
//! windows, in bounded memory.
//!
//! The text is cut into chunks of about [`CHUNK_BYTES`] at whitespace;
//! each chunk is read once, normalized character by character as it is
//! hashed (`features::feed_raw`), into a weight sum, and
//! each window of two neighbouring chunks is scored from the two sums.
//! The first window at or above the threshold is the finding; its offset
//! is the start of the window's chunk that scores higher alone. Nothing is
//! copied: memory is constant whatever the document's size, time is
//! linear in it.

use super::model::{sigmoid, with_stamps, Model, Partial};

/// Target chunk size in bytes; a chunk ends at the first ASCII whitespace
/// at or after it (within [`CHUNK_SLACK`] bytes), else at a character
/// boundary.
pub const CHUNK_BYTES: usize = 256;
pub const CHUNK_SLACK: usize = 64;

/// A window that scored at or above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DocumentFinding {
    /// Byte offset, in the field's text, of the chunk the injection is in.
    pub offset: usize,
    /// The window's score (0..1).
    pub score: f32,
}

/// The end of the chunk that starts at `start`.
fn chunk_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let target = start + CHUNK_BYTES;
    if target >= bytes.len() {
        return bytes.len();
    }
    let slack = bytes.len().min(target + CHUNK_SLACK);
    if let Some(i) = bytes
        .get(target..slack)
        .and_then(|s| s.iter().position(|b| b.is_ascii_whitespace()))
    {
        return target + i + 1;
    }
    let mut end = target;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

/// Calls `visit(logit, offset)` for each window of `text` (two
/// neighbouring chunks; a text of one chunk is one window), in order, until
/// it returns false; `offset` is the start of the window's chunk that
/// scores higher alone. `normalized`: the text is already in screening form
/// (a question's forms), else it is normalized as it is read (a document).
pub fn for_each_window(
    model: &Model,
    text: &str,
    normalized: bool,
    mut visit: impl FnMut(f32, usize) -> bool,
) {
    with_stamps(|stamps| {
        // The previous chunk: its start, weight sum and logit alone.
        let mut prev: Option<(usize, Partial, f32)> = None;
        let mut start = 0;
        while start < text.len() {
            let end = chunk_end(text, start);
            let chunk = text.get(start..end).unwrap_or("");
            let (part, overlap) = model.chunk_partial(chunk, normalized, stamps, prev.is_some());
            let alone = model.logit(part);
            match prev {
                Some((prev_start, prev_part, prev_alone)) => {
                    let offset = if prev_alone >= alone {
                        prev_start
                    } else {
                        start
                    };
                    if !visit(model.logit(prev_part.plus(part).minus(overlap)), offset) {
                        return;
                    }
                }
                None if end == text.len() => {
                    visit(alone, 0);
                    return;
                }
                None => {}
            }
            prev = Some((start, part, alone));
            start = end;
        }
    });
}

/// The first window of a document whose logit is at least
/// `threshold_logit`.
pub fn screen(model: &Model, text: &str, threshold_logit: f32) -> Option<DocumentFinding> {
    let mut found = None;
    for_each_window(model, text, false, |z, offset| {
        if z >= threshold_logit {
            found = Some(DocumentFinding {
                offset,
                score: sigmoid(z),
            });
        }
        found.is_none()
    });
    found
}

/// The highest window logit of a text (`normalized`: as in
/// [`for_each_window`]).
pub fn max_window_logit(model: &Model, text: &str, normalized: bool) -> f32 {
    let mut best = f32::NEG_INFINITY;
    for_each_window(model, text, normalized, |z, _| {
        best = best.max(z);
        true
    });
    best
}

/// Texts up to this many bytes are scored whole; longer ones by their
/// best window, so that a long text does not score higher for its length
/// alone (the logit of a whole text grows with the square root of its
/// length when its features lean one way).
pub const WHOLE_TEXT_BYTES: usize = 2 * CHUNK_BYTES + CHUNK_SLACK;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_whitespace_or_a_char_boundary() {
        let text = format!("{} tail", "a".repeat(400));
        // No whitespace within the slack after 256: a boundary at 256.
        assert_eq!(chunk_end(&text, 0), 256);
        let spaced = "word ".repeat(100);
        let end = chunk_end(&spaced, 0);
        assert!(end > 256 && end <= 256 + CHUNK_SLACK && spaced.as_bytes()[end - 1] == b' ');
        let wide = "\u{e9}".repeat(200);
        assert!(wide.is_char_boundary(chunk_end(&wide, 0)));
        assert_eq!(chunk_end("short", 0), 5);
    }
}
