//! AMF0 encoding. Values come from our own code, so encoding cannot fail;
//! lengths that do not fit their wire field are clamped rather than
//! corrupting the framing.

use bytes::{BufMut, BytesMut};

use super::Amf0Value;

/// Appends every value to `out`.
pub fn encode(values: &[Amf0Value], out: &mut BytesMut) {
    for value in values {
        encode_value(value, out);
    }
}

/// Appends one value to `out`.
pub fn encode_value(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(0x00);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(0x01);
            out.put_u8(u8::from(*b));
        }
        // A string too long for the 16-bit length becomes a long string.
        Amf0Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.put_u8(0x02);
            put_short_str(s, out);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.put_u8(0x0c);
            let bytes = clamp(s, u32::MAX as usize);
            out.put_u32(bytes.len() as u32);
            out.put_slice(bytes);
        }
        Amf0Value::Object(props) => {
            out.put_u8(0x03);
            put_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(0x05),
        Amf0Value::Undefined => out.put_u8(0x06),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(0x08);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(0x0a);
            let count = items.len().min(u32::MAX as usize);
            out.put_u32(count as u32);
            for item in items.iter().take(count) {
                encode_value(item, out);
            }
        }
        Amf0Value::Date(millis) => {
            out.put_u8(0x0b);
            out.put_f64(*millis);
            out.put_i16(0);
        }
    }
}

fn put_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        put_short_str(key, out);
        encode_value(value, out);
    }
    out.put_slice(&[0x00, 0x00, 0x09]);
}

fn put_short_str(s: &str, out: &mut BytesMut) {
    let bytes = clamp(s, usize::from(u16::MAX));
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a
/// character boundary.
fn clamp(s: &str, max: usize) -> &[u8] {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amf0::decode_all;

    fn roundtrip(values: Vec<Amf0Value>) {
        let mut out = BytesMut::new();
        encode(&values, &mut out);
        assert_eq!(decode_all(&out).unwrap(), values);
    }

    #[test]
    fn roundtrips_every_type() {
        roundtrip(vec![
            Amf0Value::Number(-0.25),
            Amf0Value::Boolean(false),
            Amf0Value::String("héllo".into()),
            Amf0Value::object([
                ("a", Amf0Value::Null),
                ("b", Amf0Value::StrictArray(vec![Amf0Value::Undefined])),
            ]),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::ecma_array([("duration", Amf0Value::Number(0.0))]),
            Amf0Value::Date(1_700_000_000_000.0),
            Amf0Value::LongString("long".into()),
        ]);
    }

    #[test]
    fn object_end_marker() {
        let mut out = BytesMut::new();
        encode_value(&Amf0Value::object(Vec::<(String, _)>::new()), &mut out);
        assert_eq!(&out[..], &[0x03, 0x00, 0x00, 0x09]);
    }

    #[test]
    fn huge_string_becomes_long_string() {
        let s = "x".repeat(70_000);
        let mut out = BytesMut::new();
        encode_value(&Amf0Value::String(s.clone()), &mut out);
        assert_eq!(out[0], 0x0c);
        assert_eq!(decode_all(&out).unwrap(), vec![Amf0Value::LongString(s)]);
    }

    #[test]
    fn huge_key_is_clamped_on_a_char_boundary() {
        let key = "é".repeat(40_000); // 80 000 bytes
        let mut out = BytesMut::new();
        encode_value(&Amf0Value::object([(key, Amf0Value::Null)]), &mut out);
        let decoded = decode_all(&out).unwrap();
        let props = decoded[0].properties().unwrap();
        assert_eq!(props[0].0.len(), 65_534);
    }
}
