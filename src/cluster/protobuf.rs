//! Protobuf wire format, the few pieces the cluster messages need: varints,
//! length-delimited fields, and a reader that walks one message's fields.
//! Written here rather than through a protobuf library so that the wasm
//! module carries a few hundred bytes of codec instead of a code generator's
//! output; the cluster service's tests check every message against a real
//! protobuf implementation (prost).

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// A length-delimited field (string, bytes, embedded message).
pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A varint field; zero is the default and is not written (proto3).
pub(crate) fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, 0);
        put_varint(out, v);
    }
}

/// A field's value.
pub(crate) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// A protobuf reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    /// The next field, or Some(None) at the end of the message.
    fn field(&mut self) -> Option<Option<(u64, Value<'a>)>> {
        if self.buf.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Other
            }
            _ => return None,
        };
        Some(Some((key >> 3, value)))
    }
}

/// Calls `each(field, value)` for every field of `buf`; None if malformed
/// or if `each` refuses a field.
pub(crate) fn fields<'a>(
    buf: &'a [u8],
    mut each: impl FnMut(u64, Value<'a>) -> Option<()>,
) -> Option<()> {
    let mut r = Reader { buf };
    while let Some((field, value)) = r.field()? {
        each(field, value)?;
    }
    Some(())
}
