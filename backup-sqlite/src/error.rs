//! The one error type of `backup-sqlite`.

use std::path::PathBuf;

/// What can go wrong finding, checking or copying a database. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O failed.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// SQLite refused the file (not a database, truncated, locked).
    #[error("{action} `{}`: {source}", path.display())]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// The database.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// `PRAGMA integrity_check` did not answer `ok`.
    #[error(
        "check `{}`: integrity_check failed: {}{}",
        path.display(),
        problems.join("; "),
        match total.saturating_sub(problems.len()) {
            0 => String::new(),
            more => format!(" (and {more} more; {total} problems in all)"),
        }
    )]
    Integrity {
        /// The database.
        path: PathBuf,
        /// What SQLite reported (the first few lines).
        problems: Vec<String>,
        /// How many lines SQLite reported in all.
        total: usize,
    },

    /// A database or one of its side files is not a regular file (a FIFO would block the run
    /// forever, a symlink could point anywhere on the host): it is never opened or followed.
    #[error("copy `{}`: {what}: only regular files are read", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead (`a FIFO`, `a symlink`).
        what: String,
    },

    /// The live database stayed busy past the bound.
    #[error("copy `{}`: still busy after {seconds} s of retries", path.display())]
    Busy {
        /// The database.
        path: PathBuf,
        /// How long it tried.
        seconds: u64,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sqlite(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: rusqlite::Error,
    ) -> Self {
        Self::Sqlite {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_failures_show_the_first_few_and_a_count() {
        let e = Error::Integrity {
            path: "/v/app.db".into(),
            problems: (1..=5).map(|i| format!("row {i} missing")).collect(),
            total: 300,
        };
        assert_eq!(
            e.to_string(),
            "check `/v/app.db`: integrity_check failed: row 1 missing; row 2 missing; row 3 missing; \
             row 4 missing; row 5 missing (and 295 more; 300 problems in all)"
        );
        let one = Error::Integrity {
            path: "/v/app.db".into(),
            problems: vec!["bad".into()],
            total: 1,
        };
        assert_eq!(
            one.to_string(),
            "check `/v/app.db`: integrity_check failed: bad"
        );
    }
}
