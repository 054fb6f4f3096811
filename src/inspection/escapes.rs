//! Escapes an attacker may wrap a payload in: percent escapes, HTML
//! character references and `\xNN` / `\uNNNN`, decoded one layer at a
//! time.

/// `text` with percent escapes, HTML character references and `\xNN` /
/// `\uNNNN` escapes decoded once; None when there is nothing to decode.
pub fn decode_escapes(text: &str) -> Option<String> {
    if !text.contains(['%', '&', '\\']) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut changed = false;
    let hex = |b: u8| (b as char).to_digit(16);
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                changed = true;
                continue;
            }
        }
        if b == b'\\' && i + 3 < bytes.len() && (bytes[i + 1] == b'x' || bytes[i + 1] == b'X') {
            if let (Some(h), Some(l)) = (hex(bytes[i + 2]), hex(bytes[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                changed = true;
                continue;
            }
        }
        if b == b'\\' && i + 5 < bytes.len() && bytes[i + 1] == b'u' {
            let code = text
                .get(i + 2..i + 6)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32);
            if let Some(c) = code {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
        }
        if b == b'&' {
            if let Some((c, len)) = html_reference(&text[i..]) {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += len;
                changed = true;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// An HTML character reference at the start of `s` (`&#60;`, `&#x3c;`,
/// `&lt;`, with or without the `;`): the character and its length.
fn html_reference(s: &str) -> Option<(char, usize)> {
    let rest = s.get(1..)?;
    if let Some(num) = rest.strip_prefix('#') {
        let (radix, digits_start) = match num.as_bytes().first() {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        // Browsers accept any number of leading zeros (`&#0000060;`).
        let rest = s.get(digits_start + 1..)?;
        let zeros = rest.chars().take_while(|c| *c == '0').count();
        let digits: String = rest[zeros..]
            .chars()
            .take_while(|c| c.is_digit(radix))
            .take(8)
            .collect();
        if digits.is_empty() && zeros == 0 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(&digits, radix).ok()?
        };
        let c = char::from_u32(value)?;
        let mut len = 1 + digits_start + zeros + digits.len();
        if s.as_bytes().get(len) == Some(&b';') {
            len += 1;
        }
        return Some((c, len));
    }
    for (name, c) in [
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("apos", '\''),
        ("amp", '&'),
        ("colon", ':'),
        ("lpar", '('),
        ("rpar", ')'),
        ("sol", '/'),
        ("tab", '\t'),
        ("newline", '\n'),
    ] {
        if let Some(after) = rest.strip_prefix(name) {
            let len = 1 + name.len() + usize::from(after.starts_with(';'));
            return Some((c, len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_single_pass_and_bounded() {
        assert_eq!(decode_escapes("plain"), None);
        assert_eq!(decode_escapes("%253C").as_deref(), Some("%3C"));
        assert_eq!(decode_escapes("&lt;b&gt;").as_deref(), Some("<b>"));
        assert_eq!(decode_escapes("&#0000000060;").as_deref(), Some("<"));
        assert_eq!(decode_escapes("100%").as_deref(), None);
        assert_eq!(decode_escapes("%zz & \\q").as_deref(), None);
        assert_eq!(decode_escapes("&#99999999999;"), None);
        assert_eq!(decode_escapes("\\u0041\\u"), Some("A\\u".to_string()));
    }
}
