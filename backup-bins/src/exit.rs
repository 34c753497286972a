//! The exit codes of every binary: one table, documented in README.

/// How a run ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// 0: everything was done.
    Success,
    /// 1: the run failed.
    Failed,
    /// 2: usage or configuration error.
    Usage,
    /// 3: some items failed, the rest were done.
    Partial,
    /// 75: another run holds the lock (`EX_TEMPFAIL`).
    Locked,
}

impl Exit {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::Locked => 75,
        }
    }

    /// Success when nothing failed, partial when some failed, failed when all did.
    pub fn from_counts(ok: usize, failed: usize) -> Self {
        match (ok, failed) {
            (_, 0) => Exit::Success,
            (0, _) => Exit::Failed,
            _ => Exit::Partial,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
