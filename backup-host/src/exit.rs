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
    /// 66: what was asked for does not exist (`EX_NOINPUT`): no such version, copy, snapshot or
    /// volume.
    NotFound,
    /// 75: another run holds the lock (`EX_TEMPFAIL`).
    Locked,
    /// 77: it must run as root (`EX_NOPERM`): nothing was done.
    NotRoot,
    /// 70: an internal error (`EX_SOFTWARE`): a bug, not the operator's doing.
    Internal,
}

impl Exit {
    /// Every exit code, in the order of the table.
    pub const ALL: [Exit; 8] = [
        Exit::Success,
        Exit::Failed,
        Exit::Usage,
        Exit::Partial,
        Exit::NotFound,
        Exit::Internal,
        Exit::Locked,
        Exit::NotRoot,
    ];

    /// What the code means, in the words of `--help` and README.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "everything was done",
            Exit::Failed => "the run failed (nothing could be done, or a guard refused)",
            Exit::Usage => "usage or configuration error (the message names the file and key)",
            Exit::Partial => {
                "partial: some items failed, the rest were done (the output names them)"
            }
            Exit::NotFound => {
                "not found: no such version, copy, snapshot or volume (EX_NOINPUT: `backupctl list`)"
            }
            Exit::Internal => "internal error (EX_SOFTWARE): a bug; please report it with the output",
            Exit::Locked => "another run holds the lock (EX_TEMPFAIL: try again later, or --wait)",
            Exit::NotRoot => "must run as root (EX_NOPERM): nothing was done",
        }
    }

    /// The exit-code table for `--help`, generated from [`Exit::ALL`] so it never disagrees.
    pub fn help() -> String {
        let mut out = String::from("Exit codes:");
        for e in Exit::ALL {
            out.push_str(&format!("\n  {:>2}  {}", e.code(), e.meaning()));
        }
        out
    }

    /// `examples`, then the exit codes: the end of a binary's `--help`.
    pub fn help_with(examples: &str) -> String {
        format!("{examples}\n\n{}", Self::help())
    }

    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::NotFound => 66,
            Exit::Internal => 70,
            Exit::Locked => 75,
            Exit::NotRoot => 77,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_code_once() {
        let help = Exit::help();
        for e in Exit::ALL {
            assert_eq!(
                help.matches(&format!(" {:>2}  ", e.code())).count(),
                1,
                "{help}"
            );
        }
    }
}
