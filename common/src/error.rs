//! Errors of the contract: what is wrong with a request or a message, and where.

use std::fmt;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One thing wrong with one field, named by its path (`recipients.inline[3].address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: a dotted path with indexes.
    pub path: String,
    /// What: lower case, no trailing period.
    pub message: String,
}

impl FieldError {
    /// A problem `message` at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }

    /// The same problem seen from a parent: `inner` under `prefix`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Errors of the `fanout-common` crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request or message field is invalid.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// A document is not valid JSON or does not have the expected shape.
    #[error("{0}")]
    Decode(String),
    /// The message declares a wire format version this build does not know.
    #[error("v: unsupported message version {0}")]
    UnsupportedVersion(u64),
}

impl Error {
    /// Turns a located serde error into an error naming the field.
    pub fn from_path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::Decode(inner.to_string())
        } else {
            Error::Decode(format!("{path}: {}", strip_position(&inner.to_string())))
        }
    }
}

/// serde_json appends " at line L column C"; keep it only where no path says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_owned(),
        _ => msg.to_owned(),
    }
}
