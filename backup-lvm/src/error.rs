//! The one error type of `backup-lvm`.

/// What can go wrong reading `lvs` output or driving LVM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `lvs` output that does not read as expected.
    #[error("read lvs output: {0}")]
    Lvs(String),

    /// A command or backend operation failed.
    #[error(transparent)]
    Core(#[from] backup_core::Error),
}

impl From<Error> for backup_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(inner) => inner,
            Error::Lvs(reason) => backup_core::CommandError::Output {
                argv: "lvs".to_owned(),
                reason,
            }
            .into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
