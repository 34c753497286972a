//! The one error type of `backup-core`.

use camino::Utf8PathBuf;

/// Everything `backup-core` can fail at. Messages are lowercase fragments that read after
/// "failed to …" and name the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A week id that is not `YYYY-WW` or names a week its year does not have.
    #[error("invalid ISO week `{input}`: {reason}")]
    InvalidWeek {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A retention policy that keeps nothing: applying it would delete every version.
    #[error("empty retention policy ({what}): refusing to plan, it would remove every version")]
    EmptyPolicy {
        /// Which policy.
        what: &'static str,
    },

    /// A glob pattern that cannot be used.
    #[error("invalid pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The configuration file is wrong; the inner error names the file and key.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// An outside-world operation behind one of the traits failed.
    #[error("{operation}: {message}")]
    Backend {
        /// What was being done ("snapshot vm-100-pvc-a", "mount /dev/pve/x").
        operation: String,
        /// Why it failed, with whatever the backend knows (argv, status, stderr).
        message: String,
    },
}

impl Error {
    /// A backend failure: `operation` says what was attempted, `message` why it failed.
    pub fn backend(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Backend {
            operation: operation.into(),
            message: message.into(),
        }
    }
}

/// A configuration error that names the file, the key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: `{key}`: {message}")]
pub struct ConfigError {
    /// The configuration file.
    pub file: Utf8PathBuf,
    /// The dotted key at fault (`snapshots.keep-days`), or `(file)` for the whole file.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
