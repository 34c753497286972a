//! The one error type of `backup-rsync`.

/// What can go wrong building, checking or reading an rsync transfer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path that is not absolute: rsync would take `name:with/colon` for a remote host.
    #[error("use `{path}` as the rsync {role}: expected an absolute path")]
    RelativePath {
        /// `source`, `destination` or `link-dest`.
        role: &'static str,
        /// The path given.
        path: String,
    },

    /// The planned link-dest folder is missing: rsync would only warn and copy everything.
    #[error(
        "link against `{path}`: the folder does not exist (rsync would silently copy everything)"
    )]
    MissingLinkDest {
        /// The missing folder.
        path: String,
    },

    /// rsync ended with a status that fails the transfer.
    #[error("run `{command}`: {meaning} (rsync exit {code}){stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// rsync's exit code, or -1 when a signal ended it.
        code: i32,
        /// What the code means.
        meaning: String,
        /// rsync's last words, prefixed with ": " when there are any.
        stderr: String,
    },

    /// `--stats` output that does not read as expected.
    #[error("read rsync --stats: {0}")]
    Stats(String),

    /// rsync could not be started.
    #[error(transparent)]
    Core(#[from] backup_core::Error),
}

impl From<Error> for backup_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(inner) => inner,
            Error::Failed {
                command,
                code,
                meaning,
                stderr,
            } => backup_core::CommandError::Failed {
                argv: command,
                status: Some(code),
                stderr_tail: format!("{meaning}{stderr}"),
            }
            .into(),
            Error::Stats(reason) => backup_core::CommandError::Output {
                argv: "rsync --stats".to_owned(),
                reason,
            }
            .into(),
            other => backup_core::Error::adapter("rsync", other),
        }
    }
}
