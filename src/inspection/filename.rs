//! File names in request bodies: a bare name with an allowed extension,
//! also after Unicode compatibility folding.

/// Why a file name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilenameProblem {
    Length,
    PathComponents,
    Extension,
}

impl FilenameProblem {
    pub(super) fn message(self, max_chars: usize) -> String {
        match self {
            FilenameProblem::Length => format!("must be 1-{max_chars} characters"),
            FilenameProblem::PathComponents => {
                "must be a file name without path components".to_string()
            }
            FilenameProblem::Extension => "has an extension that is not allowed".to_string(),
        }
    }
}

/// Windows device names, refused with any extension (`CON.txt` opens the
/// console).
const RESERVED_NAMES: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// A bare file name with an allowed extension (see `routes::FieldKind::Filename`).
pub fn check_filename(
    name: &str,
    max_chars: usize,
    extensions: &[String],
) -> Result<(), FilenameProblem> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

    let chars = name.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(FilenameProblem::Length);
    }
    let folded: String = name.nfkc().collect();
    let bad_char = |c: char| {
        matches!(
            c,
            '/' | '\\'
                | ':'
                | '\0'
                | '\u{2215}'
                | '\u{2044}'
                | '\u{29F5}'
                | '\u{FF3C}'
                | '\u{FF0F}'
        ) || c.is_control()
            || c.general_category() == GeneralCategory::Format
    };
    let stem = folded
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_lowercase();
    if [name, folded.as_str()]
        .iter()
        .any(|n| n.chars().any(bad_char) || n.contains("..") || *n == ".")
        || RESERVED_NAMES.contains(&stem.as_str())
    {
        return Err(FilenameProblem::PathComponents);
    }
    let lower = folded.to_lowercase();
    if !extensions
        .iter()
        .any(|e| lower.ends_with(e.as_str()) && lower.len() > e.len())
    {
        return Err(FilenameProblem::Extension);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        let ext: Vec<String> = [".txt", ".md"].map(String::from).to_vec();
        assert!(check_filename("notes.md", 255, &ext).is_ok());
        assert!(check_filename("Report.TXT", 255, &ext).is_ok());
        assert!(check_filename("Project compile (final).md", 255, &ext).is_ok());
        assert!(check_filename("system(1).txt", 255, &ext).is_ok());
        for bad in [
            "../x.md",
            "a/b.md",
            "a\\b.md",
            "C:x.md",
            "a\0.md",
            "..md",
            "a\u{FF3C}b.md",
            "a\u{2215}b.md",
            "evil.exe:x.md",
            "x\u{202E}gpj.md",
            "CON.txt",
            "nul.md",
        ] {
            assert_eq!(
                check_filename(bad, 255, &ext).err(),
                Some(FilenameProblem::PathComponents),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_filename("", 255, &ext).err(),
            Some(FilenameProblem::Length)
        );
        for no_ext in ["x.exe", ".md", "notes"] {
            assert_eq!(
                check_filename(no_ext, 255, &ext).err(),
                Some(FilenameProblem::Extension),
                "{no_ext:?}"
            );
        }
        assert!(check_filename(&format!("{}.md", "a".repeat(300)), 255, &ext).is_err());
    }
}
