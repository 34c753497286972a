//! The one error type of the jobs and `backupctl`, and its exit code.
//!
//! # Rules
//!
//! - **A variant is a kind.** What went wrong is told by the variant (usage, not found, refused,
//!   locked, interrupted, internal, an I/O call, a secret, a dump step, …); the exit code comes
//!   from the variant alone ([`Error::exit`], one table: [`Exit`]), never from a message.
//! - **The message names the input at fault** — the file and key of a config value, the path of
//!   an I/O call, the argv of a command — and says what was expected; it reads after "failed
//!   to …" in lower case, and an operator can act on it at 5 a.m. without the source code.
//! - **A source is kept, not retold.** An OS error stays the `source` of [`Error::Io`] (its kind
//!   and errno intact); a core error stays [`Error::Core`]; a SQLite error stays
//!   [`Error::Sqlite`]. Text is made only when the error is shown.
//! - **No secret in any message**: a bad line of a secret file is named by its number, never
//!   shown; a command's environment is never part of its argv or its error.
//! - **Across a trait of `backup-core`** ([`Error::into_core`]): an I/O error keeps its source,
//!   a core error stays itself, and any other kind travels whole inside
//!   `backup_core::Error::Adapter`; when it comes back as [`Error::Core`], [`Error::exit`] looks
//!   inside, so the kind still decides the exit code.
//! - **A new failure gets a kind** when an operator would act differently on it (another exit
//!   code, another runbook); otherwise it is one of the kinds here with a message that says
//!   what happened.

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

    /// What the command line asks for does not exist (a version, a copy, a snapshot, a volume).
    #[error("{0}")]
    NotFound(String),

    /// A guard refused: what was asked for exists but cannot be done safely.
    #[error("{0}")]
    Refused(String),

    /// Run by a user other than root where only root can do the work whole (owners kept,
    /// every file read, volumes and mounts): refused before anything is read or written.
    #[error("{0}")]
    NotRoot(String),

    /// The run was told to stop (SIGTERM, SIGINT) while doing what this says.
    #[error("stopped while {0}: the run was interrupted (SIGTERM/SIGINT)")]
    Interrupted(String),

    /// A bug: a worker thread panicked, an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),

    /// A file or folder the configuration names could not be used; the message names the key.
    #[error("{action} `{path}` (`{key}` in {file}): {source}")]
    ConfiguredPath {
        /// The configuration key.
        key: &'static str,
        /// The configuration file.
        file: Utf8PathBuf,
        /// What was being done.
        action: &'static str,
        /// The path.
        path: Utf8PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A secret file does not hold what it should (one line with the key).
    #[error("{path}: {reason}")]
    Secret {
        /// The file.
        path: Utf8PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The live database failed its integrity check: no backup is taken from it.
    #[error("live database failed its check, no backup taken: {0}")]
    LiveCheck(#[source] backup_sqlite::Error),

    /// A database could not be checked or copied.
    #[error(transparent)]
    Sqlite(#[from] backup_sqlite::Error),

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

    /// A `backup-dump` step failed; nothing in the destination changed.
    #[error("dump {name} failed at step `{step}`: {reason}\n  nothing in {dest} was changed")]
    Dump {
        /// The dump's name.
        name: String,
        /// The step ("run the dump command", "check the output", "read the dump back").
        step: String,
        /// Why, with the command's stderr tail where there is one.
        reason: String,
        /// The destination folder.
        dest: Utf8PathBuf,
    },
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

    /// This error through a `backup-core` trait: a file system failure keeps its OS error as
    /// the source, a core error stays itself, anything else travels whole as the source of
    /// `backup_core::Error::Adapter` for `operation` ([`Error::exit`] still sees its kind).
    pub fn into_core(self, operation: &str) -> backup_core::Error {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => backup_core::Error::io(format!("{action} `{path}`"), source),
            Error::Core(e) => e,
            other => backup_core::Error::Adapter {
                operation: operation.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// The exit code this error ends the run with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Usage(_) => Exit::Usage,
            Error::Locked { .. } => Exit::Locked,
            Error::NotRoot(_) => Exit::NotRoot,
            Error::NotFound(_) => Exit::NotFound,
            Error::Internal(_) => Exit::Internal,
            Error::Core(backup_core::Error::InvalidArgument { .. }) => Exit::Usage,
            // this crate's error carried through a trait: its own kind
            Error::Core(backup_core::Error::Adapter { source, .. }) => source
                .downcast_ref::<Error>()
                .map_or(Exit::Failed, Error::exit),
            Error::ConfiguredPath { .. }
            | Error::Refused(_)
            | Error::Secret { .. }
            | Error::Sqlite(_)
            | Error::LiveCheck(_)
            | Error::Io { .. }
            | Error::Dump { .. }
            | Error::Interrupted(_)
            | Error::Core(_) => Exit::Failed,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicked worker or a refusal is not a usage error: exit 2 tells the operator to fix the
    /// command line or the config, which would send them the wrong way (issue 22, item 3).
    #[test]
    fn each_kind_has_its_exit_code() {
        let cases = [
            (Error::Usage("x".into()), 2),
            (Error::NotFound("x".into()), 66),
            (Error::Refused("x".into()), 1),
            (Error::Internal("an md5 worker panicked".into()), 70),
            (Error::Locked { path: "/l".into() }, 75),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit().code(), code, "{e}");
        }
        assert!(
            Exit::help().contains("70  internal error"),
            "{}",
            Exit::help()
        );
    }

    #[test]
    fn a_kind_carried_through_a_trait_keeps_its_exit_code_and_its_words() {
        let cases = [
            (Error::NotFound("no such snapshot".into()), 66),
            (Error::Usage("--sample 101".into()), 2),
            (Error::Internal("a worker panicked".into()), 70),
            (Error::Refused("the disk is another".into()), 1),
        ];
        for (e, code) in cases {
            let text = format!("mount x: {e}");
            let back = Error::Core(e.into_core("mount x"));
            assert_eq!(back.exit().code(), code, "{back}");
            assert_eq!(back.to_string(), text);
        }
    }
}
