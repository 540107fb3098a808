//! Stream keys: `app/stream`, validated so a key is always safe to use in a
//! URL path or a log line.

use std::fmt;

use thiserror::Error;

const MAX_PART: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    app: String,
    stream: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("stream key part {0:?} is empty")]
    Empty(&'static str),
    #[error("stream key part is longer than {MAX_PART} bytes")]
    TooLong,
    #[error("stream key {0:?} has characters other than letters, digits, '-', '_' and '.'")]
    BadChars(String),
    #[error("stream key part may not be '.' or '..'")]
    Dots,
}

impl StreamKey {
    pub fn new(app: &str, stream: &str) -> Result<StreamKey, KeyError> {
        check(app, "app")?;
        check(stream, "stream")?;
        Ok(StreamKey {
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    /// Parses `app/stream`.
    pub fn parse(s: &str) -> Result<StreamKey, KeyError> {
        let (app, stream) = s.split_once('/').ok_or(KeyError::Empty("stream"))?;
        StreamKey::new(app, stream)
    }

    /// The key of this stream's bridged twin, `app/stream~suffix` (see the
    /// server's bridges). `~` is not allowed in keys clients give, so a
    /// twin never collides with a published stream.
    pub fn bridged(&self, suffix: &str) -> StreamKey {
        StreamKey {
            app: self.app.clone(),
            stream: format!("{}~{suffix}", self.stream),
        }
    }

    /// Whether this is a bridged twin (see [`StreamKey::bridged`]).
    pub fn is_bridged(&self) -> bool {
        self.stream.contains('~')
    }

    pub fn app(&self) -> &str {
        &self.app
    }
    pub fn stream(&self) -> &str {
        &self.stream
    }
}

fn check(part: &str, what: &'static str) -> Result<(), KeyError> {
    if part.is_empty() {
        return Err(KeyError::Empty(what));
    }
    if part.len() > MAX_PART {
        return Err(KeyError::TooLong);
    }
    if part == "." || part == ".." {
        return Err(KeyError::Dots);
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(KeyError::BadChars(part.chars().take(MAX_PART).collect()));
    }
    Ok(())
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            StreamKey::parse("live/cam-1").unwrap().to_string(),
            "live/cam-1"
        );
        assert_eq!(StreamKey::new("live", ".."), Err(KeyError::Dots));
        assert!(StreamKey::parse("live/../etc").is_err());
        assert!(StreamKey::parse("live/a/b").is_err());
        assert!(StreamKey::new("live", "a%2f").is_err());
        assert!(StreamKey::new("", "a").is_err());
        assert!(StreamKey::new("live", &"x".repeat(200)).is_err());
        let twin = StreamKey::parse("live/cam").unwrap().bridged("aac");
        assert_eq!(twin.to_string(), "live/cam~aac");
        assert!(twin.is_bridged());
        assert!(
            StreamKey::parse("live/cam~aac").is_err(),
            "clients cannot name twins"
        );
    }
}
