//! The one error type of `backup-bins`, and its exit code.

use camino::Utf8PathBuf;

use crate::exit::Exit;

/// Errors that end a run before or outside its per-item work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] backup_core::ConfigError),

    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),

    /// A safety check refused the work (an empty source, two volumes for one copy).
    #[error("{0}")]
    Refused(String),

    /// Another run holds the lock.
    #[error("another run holds the lock on {path}: not starting a second one")]
    Locked {
        /// The lock file.
        path: Utf8PathBuf,
    },

    /// File I/O failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done ("read", "create folder").
        action: &'static str,
        /// The path.
        path: Utf8PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A backend operation failed.
    #[error(transparent)]
    Core(#[from] backup_core::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<Utf8PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The exit code this error ends the run with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Usage(_) => Exit::Usage,
            Error::Locked { .. } => Exit::Locked,
            Error::Refused(_) | Error::Io { .. } | Error::Core(_) => Exit::Failed,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
