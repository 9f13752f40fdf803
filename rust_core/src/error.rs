//! The one error type of the pure Rust core.
//!
//! No PyO3 here: `lib.rs` maps every variant to a Python exception in a single function
//! (`Invalid`/`Format` become `ValueError`, `Io` becomes `OSError`).

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the core.
#[derive(Debug)]
pub enum CoreError {
    /// A caller-supplied argument is invalid (lengths, ordering, ranges, non-finite values).
    Invalid(String),
    /// An on-disk file has the wrong format, dtype, shape or content; the message names the file.
    Format { file: PathBuf, msg: String },
    /// The operating system refused a file operation.
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// Shorthand used throughout the core.
pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    /// Builds an [`CoreError::Invalid`] from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }

    /// Builds a [`CoreError::Format`] for `file`.
    pub fn format(file: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Format {
            file: file.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(msg) => f.write_str(msg),
            Self::Format { file, msg } => write!(f, "{}: {msg}", file.display()),
            Self::Io { file, source } => write!(f, "{}: {source}", file.display()),
        }
    }
}

impl std::error::Error for CoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_file() {
        let e = CoreError::format("/x/kw_data.npy", "dtype is <f8, expected <f4");
        assert_eq!(e.to_string(), "/x/kw_data.npy: dtype is <f8, expected <f4");
        let e = CoreError::invalid("k must be >= 0");
        assert_eq!(e.to_string(), "k must be >= 0");
    }
}
