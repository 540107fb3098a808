//! AMF0, the serialisation used by RTMP command and data messages.
//!
//! Only the value model lives here; see [`decode_all`] and [`encode`].

mod decode;
mod encode;

pub use decode::{decode_all, decode_value, MAX_DEPTH, MAX_VALUES};
pub use encode::{encode, encode_value};

/// One AMF0 value.
///
/// Objects and ECMA arrays keep their properties in wire order (a `Vec`, not
/// a map) so that re-encoding is faithful and duplicate keys from a peer do
/// not matter.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch (the time-zone field is dropped).
    Date(f64),
    LongString(String),
}

impl Amf0Value {
    /// Builds an `Object` from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds an `EcmaArray` from `(key, value)` pairs.
    pub fn ecma_array<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::EcmaArray(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The text of a `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The value of a `Boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The properties of an `Object` or `EcmaArray`.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an `Object` or `EcmaArray`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `true` for `Null` and `Undefined`.
    pub fn is_null(&self) -> bool {
        matches!(self, Amf0Value::Null | Amf0Value::Undefined)
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let obj = Amf0Value::object([
            ("app", Amf0Value::from("live")),
            ("n", Amf0Value::from(3.0)),
            ("b", Amf0Value::from(true)),
        ]);
        assert_eq!(obj.get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(obj.get("n").and_then(Amf0Value::as_f64), Some(3.0));
        assert_eq!(obj.get("b").and_then(Amf0Value::as_bool), Some(true));
        assert!(obj.get("missing").is_none());
        assert!(Amf0Value::Null.get("x").is_none());
        assert_eq!(
            Amf0Value::LongString("x".into()).as_str(),
            Some("x"),
            "long strings are strings too"
        );
        assert!(Amf0Value::Undefined.is_null());
        let arr = Amf0Value::ecma_array([("k", Amf0Value::Null)]);
        assert_eq!(arr.get("k"), Some(&Amf0Value::Null));
        assert_eq!(arr.properties().map(<[_]>::len), Some(1));
    }
}
