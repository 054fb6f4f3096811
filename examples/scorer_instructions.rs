//! Runs the prompt-injection scorer a given number of times, for counting
//! its instructions under valgrind (`make bench-scorer`,
//! bench/scorer_instructions.py): instruction counts repeat exactly on a
//! shared machine where timings vary by a third.
//!
//! `scorer_instructions question N`: `Scorer::logit` on a 2,000-character
//! question, N times; `scorer_instructions document N`: `screen_document`
//! on 1 MB of prose, N times. The text is built before the first run; the
//! difference between two counts is the cost of the extra runs.

use std::hint::black_box;

use rag_guard::inspection::forms::Forms;
use rag_guard::inspection::scorer::{embedded, Scorer};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("question");
    let runs: u32 = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .ok_or("usage: scorer_instructions question|document RUNS")?;
    let model = embedded()?;
    let scorer = Scorer::new(model, model.threshold, model.document_threshold, 0.3);
    let paragraphs =
        std::fs::read_to_string("tests/data/train_documents.txt").map_err(|e| e.to_string())?;
    let prose = paragraphs.replace('\n', " ").repeat(8);
    match what {
        "question" => {
            let forms = Forms::of(prose.get(..2000).unwrap_or(&prose));
            for _ in 0..runs {
                black_box(scorer.logit(black_box(&forms).all()));
            }
        }
        "cold" | "pollute" => {
            // Between questions, 4 MiB written (what else a proxy touches
            // between two requests): the scorer's tables start cold.
            let forms = Forms::of(prose.get(..2000).unwrap_or(&prose));
            let mut other = vec![0u8; 4 << 20];
            for i in 0..runs {
                other
                    .iter_mut()
                    .step_by(64)
                    .for_each(|b| *b = b.wrapping_add(i as u8));
                black_box(&other);
                if what == "cold" {
                    black_box(scorer.logit(black_box(&forms).all()));
                }
            }
        }
        "document" => {
            // The paragraphs separated by blank lines, as a document has
            // them (and the clean-document integration test sends them). A
            // flagged document's screening stops at its finding: not counted.
            let text = paragraphs.replace('\n', "\n\n");
            let doc = text.repeat(1 + (1 << 20) / text.len().max(1));
            let doc = doc.get(..1 << 20).unwrap_or(&doc);
            if let Some(found) = scorer.screen_document(doc) {
                return Err(format!(
                    "the benchmark document is flagged at offset {}: not a whole screening",
                    found.offset
                ));
            }
            for _ in 0..runs {
                black_box(scorer.screen_document(black_box(doc)));
            }
        }
        other => return Err(format!("unknown {other}")),
    }
    Ok(())
}
