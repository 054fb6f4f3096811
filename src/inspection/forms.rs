//! The forms of one text that the screening reads: its normalized form,
//! the form with glue characters read as spaces when it has any, and the
//! normalized forms of its escapes decoded once and twice when it has
//! escapes. Built once per field and shared by the rules and the scorer.

use crate::inspection::escapes::decode_escapes;
use crate::inspection::normalization::{normalize, normalize_spaced};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forms {
    /// `normalize(text)`: what length and character-ratio checks read.
    pub normalized: String,
    /// Words glued by invisible characters, read apart (None: no glue).
    pub spaced: Option<String>,
    /// Up to two layers of escaping decoded (`%253C` is `<` encoded
    /// twice), normalized; empty when the text has no escapes.
    pub decoded: Vec<String>,
}

impl Forms {
    pub fn of(text: &str) -> Forms {
        let mut decoded = Vec::new();
        if let Some(once) = decode_escapes(text) {
            if let Some(twice) = decode_escapes(&once) {
                decoded.push(normalize(&twice));
            }
            decoded.push(normalize(&once));
        }
        Forms {
            normalized: normalize(text),
            spaced: normalize_spaced(text),
            decoded,
        }
    }

    /// Every form, the normalized one first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.normalized.as_str())
            .chain(self.spaced.as_deref())
            .chain(self.decoded.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_one_form() {
        let f = Forms::of("What is our refund policy?");
        assert_eq!(f.all().collect::<Vec<_>>(), ["what is our refund policy?"]);
    }

    #[test]
    fn glue_and_escapes_add_forms() {
        let f = Forms::of("Ignore\u{2060}previous %253Cscript");
        assert_eq!(f.normalized, "ignoreprevious %253cscript");
        assert_eq!(f.spaced.as_deref(), Some("ignore previous %253cscript"));
        assert_eq!(
            f.decoded,
            ["ignoreprevious <script", "ignoreprevious %3cscript"]
        );
        assert_eq!(f.all().count(), 4);
    }
}
