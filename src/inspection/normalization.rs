//! The text the injection screening looks at.
//!
//! Steps, in order:
//! 1. NFKD: compatibility decomposition, so fullwidth `ｓｃｒｉｐｔ`, ligatures
//!    and circled or styled letters become plain letters plus marks;
//! 2. drop control characters (Cc), format characters (Cf: zero-width
//!    joiners and spaces, bidi controls, soft hyphens, tag characters, the
//!    BOM), unassigned code points and noncharacters (Cn), private-use
//!    characters (Co), combining marks (so `é` screens as `e`), and blank
//!    fillers (Hangul fillers, the blank Braille pattern), using the
//!    Unicode general-category table of `unicode-properties`;
//! 3. lower-case (full Unicode case mapping);
//! 4. collapse every run of whitespace to one space, and trim.
//!
//! The original text is kept for length checks; only the screening sees
//! this form. A second form, [`normalize_spaced`], reads each dropped
//! character that stood between two visible ones as a space instead (words
//! glued by U+2060 WORD JOINER and the like); the screening looks at both.
//! Homoglyphs across scripts (Cyrillic `а` for Latin `a`) are not
//! mapped.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Characters that render as blank but are letters or symbols in Unicode's
/// tables (Hangul fillers, the blank Braille pattern): used to split key
/// words invisibly.
const BLANK_FILLERS: [char; 5] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'];

/// Whether the screening drops this character: controls other than
/// whitespace (Cc), format characters (Cf), unassigned code points and
/// noncharacters (Cn), private use (Co), combining marks (Mn, Mc, Me), and
/// blank fillers.
fn is_invisible(c: char) -> bool {
    if c.is_whitespace() {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    ) || BLANK_FILLERS.contains(&c)
}

/// A dropped character that can stand for a space between two words: the
/// invisible ones except combining marks (NFKD puts those inside words).
fn is_glue(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control() && !c.is_whitespace();
    }
    is_invisible(c)
        && !matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        )
}

/// The screening form of `text` with every run of glue characters (see
/// [`is_glue`]) between two visible characters read as one space:
/// `ignore\u{2060}previous` is `ignore previous` here and `ignoreprevious`
/// in [`normalize`] (which in turn catches a key word split by a zero-width
/// space). None when the text has no glue character, the common case.
pub fn normalize_spaced(text: &str) -> Option<String> {
    let any_glue = if text.is_ascii() {
        text.bytes()
            .any(|b| b.is_ascii_control() && !is_ascii_space(b))
    } else {
        text.chars().any(is_glue)
    };
    if !any_glue {
        return None;
    }
    #[derive(PartialEq)]
    enum Gap {
        None,
        Space,
        Glue,
    }
    let mut out = String::with_capacity(text.len());
    let (mut gap, mut glued) = (Gap::None, false);
    for c in text.nfkd() {
        if c.is_whitespace() {
            gap = if out.is_empty() {
                Gap::None
            } else {
                Gap::Space
            };
            continue;
        }
        if is_glue(c) {
            if !out.is_empty() && gap == Gap::None {
                gap = Gap::Glue;
            }
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        if gap != Gap::None {
            glued |= gap == Gap::Glue;
            out.push(' ');
            gap = Gap::None;
        }
        out.extend(c.to_lowercase());
    }
    glued.then_some(out)
}

/// The screening form of `text` (see the module documentation).
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        return normalize_ascii(text.as_bytes());
    }
    normalize_unicode(text)
}

/// Whitespace as `char::is_whitespace` has it, within ASCII: tab, line
/// feed, vertical tab, form feed, carriage return, space.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// [`normalize`] of ASCII text, byte by byte: NFKD leaves ASCII alone, the
/// only invisible ASCII characters are the controls that are not
/// whitespace, and lower-casing is ASCII's. Most questions are ASCII; this
/// path skips the decomposition and the Unicode tables (the tests check it
/// gives what the general path gives).
fn normalize_ascii(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for &b in text {
        if is_ascii_space(b) {
            pending_space = !out.is_empty();
            continue;
        }
        if b < 0x20 || b == 0x7f {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(char::from(b.to_ascii_lowercase()));
    }
    out
}

fn normalize_unicode(text: &str) -> String {
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

/// The characters of `normalize(text)` one at a time, without building
/// the string: each whitespace character comes as one `' '` (runs are not
/// collapsed, ends not trimmed: a reader that treats `' '` as a separator
/// sees the same words). ASCII goes byte by byte; any other character is
/// decomposed alone, which gives what decomposing the whole text gives once
/// combining marks are dropped (canonical reordering only moves marks).
/// The reference for `scorer::features::feed_raw`, which reads the same
/// characters its own way (ASCII bytes in its loop, the others through
/// [`screened_chars_of`]): the tests check this one against `normalize`,
/// and the features of `feed_raw` against those of `normalize`.
#[cfg(test)]
pub fn for_each_screened_char(text: &str, mut f: impl FnMut(char)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            if is_ascii_space(b) {
                f(' ');
            } else if b >= 0x20 && b != 0x7f {
                f(char::from(b.to_ascii_lowercase()));
            }
            i += 1;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        i += c.len_utf8();
        screened_chars_of(c, &mut f);
    }
}

/// The characters of `normalize` for one character of a text that is not
/// ASCII, decomposed alone (see `for_each_screened_char`).
#[inline]
pub fn screened_chars_of(c: char, mut f: impl FnMut(char)) {
    for d in std::iter::once(c).nfkd() {
        if d.is_whitespace() {
            f(' ');
        } else if !is_invisible(d) {
            d.to_lowercase().for_each(&mut f);
        }
    }
}

/// Characters of `text` after collapsing whitespace (for length limits that
/// should not count padding): leading and trailing whitespace left out, each
/// inner run of it counted as one character. One pass, eight bytes at a time
/// over printable ASCII (a 1 MB document field is measured on every upload).
pub fn collapsed_len(text: &str) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = text.as_bytes();
    let mut count = 0usize;
    // A non-whitespace character was seen; whitespace followed the last one.
    let (mut started, mut gap) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes
            .get(i..i + 8)
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
        {
            let x = u64::from_le_bytes(chunk);
            // No byte below 0x21 (ASCII whitespace is) and none above 0x7f.
            if (x.wrapping_sub(ONES * 0x21) | x) & HIGH == 0 {
                count += 8 + usize::from(gap);
                (started, gap) = (true, false);
                i += 8;
                continue;
            }
        }
        let (white, len) = match bytes[i] {
            b if b < 0x80 => (matches!(b, b'\t'..=b'\r' | b' '), 1),
            _ => match text.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) => (c.is_whitespace(), c.len_utf8()),
                None => (false, 1),
            },
        };
        if white {
            gap = started;
        } else {
            count += 1 + usize::from(gap);
            (started, gap) = (true, false);
        }
        i += len;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` texts of fewer than `most` pieces each, chosen by a
    /// xorshift from `seed`: the same texts on every run.
    fn random_texts<'a>(
        pieces: &'a [&'a str],
        mut seed: u64,
        most: u64,
        count: usize,
    ) -> impl Iterator<Item = String> + 'a {
        (0..count).map(move |_| {
            let mut text = String::new();
            for _ in 0..(seed % most) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(1);
            text
        })
    }

    #[test]
    fn the_ascii_path_gives_what_the_unicode_path_gives() {
        // Every ASCII byte alone, between letters, and doubled.
        for b in 0u8..=0x7f {
            let c = char::from(b);
            for text in [c.to_string(), format!("aB{c}Cd"), format!("{c}{c} x {c}")] {
                assert_eq!(
                    normalize_ascii(text.as_bytes()),
                    normalize_unicode(&text),
                    "{b:#x}"
                );
            }
        }
        // Random ASCII strings.
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let text: String = (0..len)
                .map(|i| char::from(((seed >> (i % 8 * 8)) as u8 ^ i as u8) & 0x7f))
                .collect();
            assert_eq!(
                normalize_ascii(text.as_bytes()),
                normalize_unicode(&text),
                "{text:?}"
            );
        }
        // Non-ASCII text takes the general path.
        assert_eq!(normalize("Ｉgnore\u{200b}  ME"), "ignore me");
    }

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
        // Unassigned, private-use and blank filler characters split nothing.
        assert_eq!(normalize("instruc\u{0378}tions"), "instructions");
        assert_eq!(normalize("instruc\u{E000}tions"), "instructions");
        assert_eq!(normalize("instruc\u{3164}tions"), "instructions");
        assert_eq!(normalize("instruc\u{2800}tions"), "instructions");
        assert_eq!(normalize("instruc\u{FFFE}tions"), "instructions");
    }

    #[test]
    fn ordinary_text_only_changes_case_and_spacing() {
        assert_eq!(
            normalize("What is our refund policy?"),
            "what is our refund policy?"
        );
        assert_eq!(normalize("Straße"), "straße");
        // Voiced kana decompose and lose their marks: screening only.
        assert_eq!(normalize("ガ"), "カ");
    }

    #[test]
    fn collapsed_length_is_what_splitting_on_whitespace_gives() {
        let reference = |t: &str| {
            t.split_whitespace()
                .map(|w| w.chars().count())
                .sum::<usize>()
                + t.split_whitespace().count().saturating_sub(1)
        };
        let pieces = [
            "a",
            "word",
            "\t",
            "\n",
            "\u{b}",
            " ",
            "  ",
            "\u{85}",
            "\u{a0}",
            "\u{3000}",
            "é",
            "日本",
            "\u{1f600}",
            "\u{200b}",
            "\r\n",
            "12345678",
            "abcdefghij",
            "\u{2028}",
        ];
        for text in random_texts(&pieces, 0x9e37_79b9_7f4a_7c15, 12, 5000) {
            assert_eq!(collapsed_len(&text), reference(&text), "{text:?}");
        }
        let long = "x".repeat(1 << 20);
        assert_eq!(collapsed_len(&long), 1 << 20);
    }

    #[test]
    fn glue_characters_read_as_spaces_in_the_second_form() {
        for glue in [
            '\u{2060}', '\u{200b}', '\u{180e}', '\u{feff}', '\u{2061}', '\u{0}', '\u{3164}',
        ] {
            let text = format!("Ignore{glue}previous{glue}{glue}instructions");
            assert_eq!(normalize(&text), "ignorepreviousinstructions");
            assert_eq!(
                normalize_spaced(&text).as_deref(),
                Some("ignore previous instructions"),
                "{glue:?}"
            );
        }
        // Nothing to read as a space: no second form.
        assert_eq!(normalize_spaced("plain text"), None);
        assert_eq!(normalize_spaced("caf\u{e9} cr\u{e8}me"), None);
        // Glue next to a space or at an end changes nothing either.
        assert_eq!(normalize_spaced("\u{2060}word \u{2060}word\u{2060}"), None);
    }

    #[test]
    fn screened_chars_spell_the_normalized_text() {
        let words = |t: String| {
            t.split(' ')
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let pieces = [
            "Word",
            " ",
            "\t\n",
            "\u{a0}",
            "\u{2003}",
            "\u{e9}",
            "e\u{301}",
            "\u{fb01}",
            "\u{ff33}",
            "\u{200b}",
            "\u{2060}",
            "\u{0}",
            "\u{7f}",
            "\u{3164}",
            "\u{5f3}",
            "\u{1e9e}",
            "\u{130}",
            "\u{65e5}\u{672c}",
            "\u{1f600}",
            "<",
            "ﬃ",
            "\u{2460}",
            "A\u{308}\u{323}",
        ];
        for text in random_texts(&pieces, 0x2545_f491_4f6c_dd1d, 10, 5000) {
            let mut streamed = String::new();
            for_each_screened_char(&text, |c| streamed.push(c));
            assert_eq!(words(streamed), words(normalize(&text)), "{text:?}");
        }
    }

    #[test]
    fn collapsed_length_ignores_padding() {
        assert_eq!(collapsed_len("  a   b  "), 3);
        assert_eq!(collapsed_len("héllo"), 5);
        assert_eq!(collapsed_len(""), 0);
    }
}
