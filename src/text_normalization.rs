//! The text the injection screening looks at.
//!
//! Steps, in order:
//! 1. NFKD: compatibility decomposition, so fullwidth `ｓｃｒｉｐｔ`, ligatures
//!    and circled or styled letters become plain letters plus marks;
//! 2. drop control characters (Cc), format characters (Cf: zero-width
//!    joiners and spaces, bidi controls, soft hyphens, tag characters, the
//!    BOM), combining marks (so `é` screens as `e`), and noncharacters
//!    (the part of Cn that can be listed without tables; other unassigned
//!    code points are kept);
//! 3. lower-case (full Unicode case mapping);
//! 4. collapse every run of whitespace to one space, and trim.
//!
//! The original text is kept for length checks; only the screening sees
//! this form. Homoglyphs across scripts (Cyrillic `а` for Latin `a`) are not
//! mapped.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Unicode format characters (general category Cf).
const FORMAT_RANGES: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || (c & 0xFFFE) == 0xFFFE
}

/// Whether the screening drops this character.
fn is_invisible(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || is_format(c)
        || is_combining_mark(c)
        || is_noncharacter(c)
}

/// The screening form of `text` (see the module documentation).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfkd().filter(|c| !is_invisible(*c)) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Characters of `text` after collapsing whitespace (for length limits that
/// should not count padding).
pub fn collapsed_len(text: &str) -> usize {
    text.split_whitespace()
        .map(|w| w.chars().count())
        .sum::<usize>()
        + text.split_whitespace().count().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defeats_the_usual_unicode_tricks() {
        assert_eq!(
            normalize("ignore previous instruc\u{200D}tions"),
            "ignore previous instructions"
        );
        assert_eq!(
            normalize("\u{FF53}\u{FF43}\u{FF52}\u{FF49}\u{FF50}\u{FF54}"),
            "script"
        );
        assert_eq!(
            normalize("IGNORE\u{00A0}\u{2003}Previous\t\n INSTRUCTIONS "),
            "ignore previous instructions"
        );
        assert_eq!(normalize("dr\u{00AD}op ta\u{202E}ble"), "drop table");
        assert_eq!(
            normalize("Cre\u{0300}me bru\u{0302}le\u{0301}e"),
            "creme brulee"
        );
        assert_eq!(normalize("é"), "e");
        assert_eq!(normalize("\u{FB01}le"), "file");
        assert_eq!(normalize("a\u{0000}b\u{0007}c"), "abc");
        assert_eq!(normalize("tag\u{E0041}\u{E0042}s"), "tags");
        assert_eq!(normalize("\u{FEFF}bom"), "bom");
        assert_eq!(normalize("   "), "");
    }

    #[test]
    fn ordinary_text_only_changes_case_and_spacing() {
        assert_eq!(
            normalize("What is our refund policy?"),
            "what is our refund policy?"
        );
        assert_eq!(normalize("Straße"), "straße");
        assert_eq!(normalize("日本語のテキスト"), normalize("日本語のテキスト"));
    }

    #[test]
    fn collapsed_length_ignores_padding() {
        assert_eq!(collapsed_len("  a   b  "), 3);
        assert_eq!(collapsed_len("héllo"), 5);
        assert_eq!(collapsed_len(""), 0);
    }
}
