//! AMF0 decoding of untrusted bytes: every read is bounds-checked, nesting
//! and the total number of values are capped so a small hostile message
//! cannot cause deep recursion or a large memory blow-up.

use super::Amf0Value;
use crate::error::AmfError;

/// Maximum nesting of objects / arrays.
pub const MAX_DEPTH: usize = 32;

/// Maximum number of values (at any depth) in one decode call. An
/// `Amf0Value` is ~50 bytes in memory but can be a single byte on the wire,
/// so without this cap a 16 MiB message could expand to ~800 MB.
pub const MAX_VALUES: usize = 65_536;

const OBJECT_END: u8 = 0x09;

/// Decodes a whole buffer as a sequence of AMF0 values.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut reader = Reader {
        buf,
        pos: 0,
        count: 0,
    };
    let mut out = Vec::new();
    while reader.pos < buf.len() {
        out.push(reader.value(0)?);
    }
    Ok(out)
}

/// Decodes one value from the start of `buf`; returns it and the number of
/// bytes it used.
pub fn decode_value(buf: &[u8]) -> Result<(Amf0Value, usize), AmfError> {
    let mut reader = Reader {
        buf,
        pos: 0,
        count: 0,
    };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    count: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        let end = self.pos.checked_add(n).ok_or(AmfError::UnexpectedEof)?;
        let bytes = self.buf.get(self.pos..end).ok_or(AmfError::UnexpectedEof)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AmfError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// Invalid UTF-8 is replaced rather than rejected: peers (old Flash
    /// encoders) sometimes send Latin-1 titles in metadata.
    fn text(&mut self, len: usize) -> Result<String, AmfError> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        self.count += 1;
        if self.count > MAX_VALUES {
            return Err(AmfError::TooManyValues(MAX_VALUES));
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Amf0Value::Number(self.f64()?),
            0x01 => Amf0Value::Boolean(self.u8()? != 0),
            0x02 => {
                let len = self.u16()?;
                Amf0Value::String(self.text(len.into())?)
            }
            0x03 => Amf0Value::Object(self.properties(depth + 1)?),
            0x05 => Amf0Value::Null,
            // 0x0d is the "unsupported" type: a value without payload.
            0x06 | 0x0d => Amf0Value::Undefined,
            0x08 => {
                // The count is advisory (many encoders write 0); the
                // object-end marker is what terminates the array.
                let _count = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth + 1)?)
            }
            OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            0x0a => self.strict_array(depth + 1)?,
            0x0b => {
                let millis = self.f64()?;
                let _time_zone = self.u16()?;
                Amf0Value::Date(millis)
            }
            // 0x0f is an XML document, carried like a long string.
            0x0c | 0x0f => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| AmfError::UnexpectedEof)?;
                Amf0Value::LongString(self.text(len)?)
            }
            0x10 => {
                // Typed object: the class name is dropped.
                let len = self.u16()?;
                self.take(len.into())?;
                Amf0Value::Object(self.properties(depth + 1)?)
            }
            // Movie clip, reference, record set, AVM+ (AMF3) switch.
            0x04 | 0x07 | 0x0e | 0x11 => return Err(AmfError::UnsupportedMarker(marker)),
            other => return Err(AmfError::UnknownMarker(other)),
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep(MAX_DEPTH));
        }
        let mut props = Vec::new();
        loop {
            let key_len = self.u16()?;
            if key_len == 0 && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.text(key_len.into())?;
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }

    fn strict_array(&mut self, depth: usize) -> Result<Amf0Value, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep(MAX_DEPTH));
        }
        let count = self.u32()?;
        let count = usize::try_from(count).map_err(|_| AmfError::UnexpectedEof)?;
        // Every element takes at least one byte, so the remaining input
        // bounds a sane pre-allocation.
        let mut items = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            items.push(self.value(depth)?);
        }
        Ok(Amf0Value::StrictArray(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        let mut buf = vec![0x00];
        buf.extend_from_slice(&1.5f64.to_be_bytes());
        buf.extend_from_slice(&[0x01, 0x01, 0x02, 0x00, 0x02, b'h', b'i', 0x05, 0x06, 0x0d]);
        buf.extend_from_slice(&[0x0c, 0, 0, 0, 1, b'x']);
        buf.push(0x0b);
        buf.extend_from_slice(&2.0f64.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        let values = decode_all(&buf).unwrap();
        assert_eq!(
            values,
            vec![
                Amf0Value::Number(1.5),
                Amf0Value::Boolean(true),
                Amf0Value::String("hi".into()),
                Amf0Value::Null,
                Amf0Value::Undefined,
                Amf0Value::Undefined,
                Amf0Value::LongString("x".into()),
                Amf0Value::Date(2.0),
            ]
        );
    }

    #[test]
    fn decodes_containers() {
        // { a: null, "": null } then ecma [k: true] then strict [null, null]
        let buf = [
            0x03, 0, 1, b'a', 0x05, 0, 0, 0x05, 0, 0, 0x09, //
            0x08, 0, 0, 0, 0, 0, 1, b'k', 0x01, 1, 0, 0, 0x09, //
            0x0a, 0, 0, 0, 2, 0x05, 0x05,
        ];
        let values = decode_all(&buf).unwrap();
        assert_eq!(
            values,
            vec![
                Amf0Value::object([("a", Amf0Value::Null), ("", Amf0Value::Null)]),
                Amf0Value::ecma_array([("k", Amf0Value::Boolean(true))]),
                Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Null]),
            ]
        );
    }

    #[test]
    fn typed_object_drops_class_name() {
        let buf = [0x10, 0, 1, b'C', 0, 1, b'x', 0x05, 0, 0, 0x09];
        assert_eq!(
            decode_all(&buf).unwrap(),
            vec![Amf0Value::object([("x", Amf0Value::Null)])]
        );
    }

    #[test]
    fn decode_value_reports_length() {
        let buf = [0x05, 0x02, 0, 0];
        assert_eq!(decode_value(&buf).unwrap(), (Amf0Value::Null, 1));
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(&[u8], AmfError)] = &[
            (&[0x00, 1, 2], AmfError::UnexpectedEof),
            (&[0x02, 0, 5, b'a'], AmfError::UnexpectedEof),
            (&[0x0c, 0xff, 0xff, 0xff, 0xff], AmfError::UnexpectedEof),
            (&[0x03, 0, 1, b'a', 0x05], AmfError::UnexpectedEof),
            (&[0x03, 0, 0], AmfError::UnexpectedEof),
            (&[0x09], AmfError::UnexpectedObjectEnd),
            (&[0x03, 0, 1, b'a', 0x09], AmfError::UnexpectedObjectEnd),
            (&[0x07, 0, 1], AmfError::UnsupportedMarker(0x07)),
            (&[0x11, 0x01], AmfError::UnsupportedMarker(0x11)),
            (&[0x42], AmfError::UnknownMarker(0x42)),
            (
                &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05],
                AmfError::UnexpectedEof,
            ),
        ];
        for (buf, err) in cases {
            assert_eq!(decode_all(buf).as_ref(), Err(err), "input {buf:02x?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| {
            let mut buf = Vec::new();
            for _ in 0..depth {
                buf.extend_from_slice(&[0x03, 0, 1, b'x']);
            }
            buf.push(0x05);
            for _ in 0..depth {
                buf.extend_from_slice(&[0, 0, 0x09]);
            }
            buf
        };
        assert!(decode_all(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(
            decode_all(&nested(MAX_DEPTH + 1)),
            Err(AmfError::TooDeep(MAX_DEPTH))
        );
        let mut arrays = Vec::new();
        for _ in 0..=MAX_DEPTH {
            arrays.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        arrays.push(0x05);
        assert_eq!(decode_all(&arrays), Err(AmfError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn value_count_is_bounded() {
        let buf = vec![0x05; MAX_VALUES + 1];
        assert_eq!(decode_all(&buf), Err(AmfError::TooManyValues(MAX_VALUES)));
        assert_eq!(decode_all(&buf[1..]).map(|v| v.len()), Ok(MAX_VALUES));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            // Bias towards valid markers so decoding goes deeper.
            let buf: Vec<u8> = (0..len).map(|_| (next() % 20) as u8).collect();
            let _ = decode_all(&buf);
        }
    }
}
