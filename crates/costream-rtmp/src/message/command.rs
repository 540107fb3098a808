//! Command messages: `name, transaction id, command object, args...` in
//! AMF0, plus the NetStream/NetConnection status object helper.

use bytes::BytesMut;

use crate::amf0::{self, Amf0Value};
use crate::error::MessageError;

/// A decoded command message.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// e.g. `connect`, `createStream`, `publish`, `play`, `_result`, `onStatus`.
    pub name: String,
    /// Matches a `_result`/`_error` to its request; 0 when no reply is
    /// expected.
    pub transaction_id: f64,
    /// The command object (`connect` properties), usually `Null`.
    pub object: Amf0Value,
    /// The remaining arguments.
    pub args: Vec<Amf0Value>,
}

impl Command {
    pub fn new(
        name: impl Into<String>,
        transaction_id: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Self {
        Self {
            name: name.into(),
            transaction_id,
            object,
            args,
        }
    }

    /// Builds a command from decoded values. Only the name is mandatory:
    /// a missing transaction id is 0 and a missing object is `Null`, which
    /// is how sloppy encoders are treated by other servers too.
    pub fn from_values(values: Vec<Amf0Value>) -> Result<Self, MessageError> {
        let mut values = values.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => s,
            _ => return Err(MessageError::MissingCommandName),
        };
        let transaction_id = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Self {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// The `index`-th argument after the command object.
    pub fn arg(&self, index: usize) -> Option<&Amf0Value> {
        self.args.get(index)
    }

    /// The `index`-th argument as a string.
    pub fn arg_str(&self, index: usize) -> Option<&str> {
        self.arg(index).and_then(Amf0Value::as_str)
    }

    /// Appends the AMF0 payload to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        amf0::encode_value(&Amf0Value::String(self.name.clone()), out);
        amf0::encode_value(&Amf0Value::Number(self.transaction_id), out);
        amf0::encode_value(&self.object, out);
        amf0::encode(&self.args, out);
    }

    /// An `onStatus` command (transaction 0, null object) carrying a
    /// [`status_object`].
    pub fn on_status(level: &str, code: &str, description: &str) -> Self {
        Self::new(
            "onStatus",
            0.0,
            Amf0Value::Null,
            vec![status_object(level, code, description)],
        )
    }
}

/// `{ level, code, description }`, the info object of `onStatus`,
/// `_result` and `_error`. `level` is `"status"` or `"error"`.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::from(level)),
        ("code", Amf0Value::from(code)),
        ("description", Amf0Value::from(description)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_from_values() {
        let cmd = Command::from_values(vec!["closeStream".into()]).unwrap();
        assert_eq!(cmd.transaction_id, 0.0);
        assert_eq!(cmd.object, Amf0Value::Null);
        assert!(cmd.args.is_empty());

        let cmd = Command::from_values(vec![
            "publish".into(),
            5.0.into(),
            Amf0Value::Null,
            "stream".into(),
            "live".into(),
        ])
        .unwrap();
        assert_eq!(cmd.arg_str(0), Some("stream"));
        assert_eq!(cmd.arg_str(1), Some("live"));
        assert_eq!(cmd.arg(2), None);

        assert_eq!(
            Command::from_values(vec![1.0.into()]),
            Err(MessageError::MissingCommandName)
        );
        assert_eq!(
            Command::from_values(vec![]),
            Err(MessageError::MissingCommandName)
        );
    }

    #[test]
    fn on_status_shape() {
        let cmd = Command::on_status("error", "NetStream.Play.StreamNotFound", "nope");
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let values = amf0::decode_all(&out).unwrap();
        assert_eq!(values[0].as_str(), Some("onStatus"));
        assert_eq!(values[1].as_f64(), Some(0.0));
        assert_eq!(values[2], Amf0Value::Null);
        assert_eq!(
            values[3].get("code").and_then(Amf0Value::as_str),
            Some("NetStream.Play.StreamNotFound")
        );
        assert_eq!(
            values[3].get("level").and_then(Amf0Value::as_str),
            Some("error")
        );
    }
}
