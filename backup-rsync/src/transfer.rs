//! `FileSync` over a `Runner`: the checks around one rsync run.

use backup_core::{FileSync, Runner, SyncOutcome, SyncRequest};

use crate::command::weekly_copy;
use crate::error::Error;
use crate::exit::{classify, ExitVerdict};
use crate::stats::parse_stats;

/// Runs transfers with the real rsync through `runner`.
pub struct RsyncFileSync<'r> {
    runner: &'r dyn Runner,
    program: String,
}

impl<'r> RsyncFileSync<'r> {
    /// Transfers with `program` (`rsync`, or a wrapper) through `runner`.
    pub fn new(runner: &'r dyn Runner, program: impl Into<String>) -> Self {
        Self {
            runner,
            program: program.into(),
        }
    }

    /// Runs one transfer, with this crate's error type.
    ///
    /// # Errors
    /// A relative path, a missing link-dest folder, a failing exit status, unreadable stats.
    pub fn transfer(&self, request: &SyncRequest) -> Result<SyncOutcome, Error> {
        if let Some(link) = &request.link_dest {
            // rsync only warns about a missing --link-dest folder and then copies every file:
            // the week would be whole, but no longer deduplicated, and nobody would notice.
            if !link.is_dir() {
                return Err(Error::MissingLinkDest {
                    path: link.to_string(),
                });
            }
        }
        // the same flags either way; the source kind only decides what exit 24 means
        let inv = match &request.files_from {
            Some(list) => {
                crate::command::changed_copy(&self.program, &request.source, &request.dest, list)?
            }
            None => weekly_copy(
                &self.program,
                &request.source,
                &request.dest,
                request.link_dest.as_deref(),
                request.checksum,
            )?,
        };
        execute(self.runner, &inv, request.source_kind)
    }
}

/// Runs one rsync command line and reads its outcome: the exit code classified for the source
/// kind (24 is a warning on a live tree), `--stats` parsed.
///
/// # Errors
/// [`Error::Failed`] with the command, the code's meaning and the tail of stderr;
/// [`Error::Stats`] when the numbers cannot be read.
pub fn execute(
    runner: &dyn Runner,
    inv: &backup_core::Invocation,
    source_kind: backup_core::SourceKind,
) -> Result<SyncOutcome, Error> {
    {
        let out = runner.run(inv)?;
        let mut warnings = Vec::new();
        match classify(out.status, source_kind) {
            ExitVerdict::Ok => {}
            ExitVerdict::Warning(w) => warnings.push(w),
            ExitVerdict::Failed(meaning) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = last[last.len().saturating_sub(3)..].join(" | ");
                return Err(Error::Failed {
                    command: inv.display(),
                    code: out.status.unwrap_or(-1),
                    meaning,
                    stderr: if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {tail}")
                    },
                });
            }
        }
        let stats = parse_stats(&String::from_utf8_lossy(&out.stdout))?;
        Ok(SyncOutcome { stats, warnings })
    }
}

impl FileSync for RsyncFileSync<'_> {
    fn sync(&self, request: &SyncRequest) -> backup_core::Result<SyncOutcome> {
        self.transfer(request).map_err(Into::into)
    }
}

/// The offsite copy standing in for the backup root (`--from-offsite` over ssh): a folder under
/// `local` (the view) is read from the same place under `remote`.
#[derive(Debug, Clone)]
pub struct RemoteRoot {
    /// The view's folder: the run's backup root.
    pub local: camino::Utf8PathBuf,
    /// `host:/path/pve-backup`.
    pub remote: String,
    /// ssh with the config's key and pinned host keys.
    pub ssh: Option<crate::SshOptions>,
}

impl RemoteRoot {
    /// Where rsync reads `local` from: the same place on the remote when `local` is under the
    /// view, with the ssh to reach it; else `local` itself.
    pub fn source_of(&self, local: &camino::Utf8Path) -> (String, Option<&crate::SshOptions>) {
        match local.strip_prefix(&self.local) {
            Ok(rel) => (
                format!("{}/{rel}", self.remote.trim_end_matches('/')),
                self.ssh.as_ref(),
            ),
            Err(_) => (local.to_string(), None),
        }
    }
}

/// [`backup_core::TreeCopier`] with rsync ([`crate::restore_copy_from`]): from the backup disk,
/// or from the offsite copy over ssh when `remote` is set.
pub struct RsyncTreeCopier<'r> {
    runner: Box<dyn Runner + 'r>,
    program: String,
    remote: Option<RemoteRoot>,
}

impl<'r> RsyncTreeCopier<'r> {
    /// Copies with `program` through `runner` (a restore's: never cut short), reading from
    /// `remote` when the backup root is a view of it.
    pub fn new(
        runner: Box<dyn Runner + 'r>,
        program: impl Into<String>,
        remote: Option<RemoteRoot>,
    ) -> Self {
        Self {
            runner,
            program: program.into(),
            remote,
        }
    }
}

impl backup_core::TreeCopier for RsyncTreeCopier<'_> {
    fn copy_tree(
        &self,
        from: &camino::Utf8Path,
        to: &camino::Utf8Path,
        how: &backup_core::TreeCopy<'_>,
    ) -> backup_core::Result<()> {
        let (source, ssh) = match &self.remote {
            Some(r) => r.source_of(from),
            None => (from.to_string(), None),
        };
        crate::restore_copy_from(
            &self.program,
            ssh,
            &source,
            to,
            how.delete,
            how.files_from,
            how.exclude,
        )?
        .run_checked(self.runner.as_ref())?;
        Ok(())
    }
}
