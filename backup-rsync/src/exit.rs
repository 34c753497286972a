//! What rsync's exit code means for the transfer.

use backup_core::SourceKind;

/// The verdict on one exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitVerdict {
    /// The transfer is good.
    Ok,
    /// The transfer is good, with a warning worth showing.
    Warning(String),
    /// The transfer failed.
    Failed(String),
}

use ExitVerdict as Verdict;

/// Classifies rsync's exit `code` (`None`: killed by a signal) for a transfer from `source`.
///
/// - 24 (some files vanished before they could be transferred) is normal on a live tree, but a
///   read-only snapshot cannot change: there it means the mount went away under us.
/// - 23 (partial transfer due to error) is a failure: some files of this copy are missing.
/// - everything else non-zero fails.
pub fn classify(code: Option<i32>, source: SourceKind) -> Verdict {
    let Some(code) = code else {
        return Verdict::Failed("killed by a signal".to_owned());
    };
    match (code, source) {
        (0, _) => Verdict::Ok,
        (24, SourceKind::Live) => {
            Verdict::Warning("some files vanished while they were copied".to_owned())
        }
        (24, SourceKind::Snapshot) => Verdict::Failed(
            "files vanished from a read-only snapshot (was it unmounted?)".to_owned(),
        ),
        (c, _) => Verdict::Failed(meaning(c).to_owned()),
    }
}

/// rsync's own words for its exit codes (rsync(1), EXIT VALUES).
pub fn meaning(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        4 => "requested action not supported",
        5 => "error starting client-server protocol",
        6 => "daemon unable to append to log-file",
        10 => "error in socket I/O",
        11 => "error in file I/O",
        12 => "error in rsync protocol data stream",
        13 => "errors with program diagnostics",
        14 => "error in IPC code",
        20 => "received SIGUSR1 or SIGINT",
        21 => "some error returned by waitpid()",
        22 => "error allocating core memory buffers",
        23 => "partial transfer due to error",
        24 => "partial transfer due to vanished source files",
        25 => "the --max-delete limit stopped deletions",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        255 => "the remote shell failed (ssh: host key changed or unknown, key refused, host unreachable)",
        _ => "unknown rsync exit code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_files_depend_on_the_source() {
        assert_eq!(classify(Some(0), SourceKind::Snapshot), Verdict::Ok);
        assert!(matches!(
            classify(Some(24), SourceKind::Live),
            Verdict::Warning(_)
        ));
        assert!(matches!(
            classify(Some(24), SourceKind::Snapshot),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(Some(23), SourceKind::Live),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(Some(23), SourceKind::Snapshot),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(Some(12), SourceKind::Live),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            classify(None, SourceKind::Live),
            Verdict::Failed(_)
        ));
    }
}
