//! [`backup_core::OffsiteCopy`] with rsync: the NAS, a local or mounted folder or a host over
//! ssh. Every command line is built by the functions of [`crate::offsite`]; under `--dry-run` a
//! transfer that would change something is handed to the runner (which records it) and not
//! read, and the read-only ones (step 1's read, the counts, the comparisons) run.

use backup_core::{
    Compared, Invocation, MirrorRead, OffsiteConfig, OffsiteCopy, Runner, Sent, SourceKind, Tree,
    TreeSend,
};
use camino::Utf8Path;

use crate::offsite::{
    backup_root_copy, compare_copy, compared, dest_folder, mirror_offsite, resend_files,
    tree_folders, tree_full_pass, tree_incremental,
};
use crate::{execute, meaning, SshOptions};

/// The NAS of `[offsite]`, reached by rsync through a runner.
pub struct RsyncOffsite<'r> {
    runner: Box<dyn Runner + 'r>,
    program: String,
    destination: String,
    ssh: Option<SshOptions>,
    bwlimit_kib: Option<u64>,
    dry_run: bool,
}

impl<'r> RsyncOffsite<'r> {
    /// The NAS of `offsite` (its destination, ssh key, pinned host keys, port and `bwlimit`),
    /// with the rsync `program`, through `runner`; `dry_run`: transfers are recorded, not made.
    pub fn new(
        runner: Box<dyn Runner + 'r>,
        program: impl Into<String>,
        offsite: &OffsiteConfig,
        dry_run: bool,
    ) -> Self {
        Self {
            runner,
            program: program.into(),
            destination: offsite.destination.clone(),
            ssh: SshOptions::for_offsite(offsite),
            bwlimit_kib: offsite.bwlimit_kib,
            dry_run,
        }
    }

    /// Runs a transfer that sends (`offsite.bwlimit` applied): recorded only under `--dry-run`.
    fn transfer(&self, inv: &Invocation) -> backup_core::Result<Sent> {
        let mut inv = inv.clone();
        if let Some(kib) = self.bwlimit_kib {
            // an option like the others, before `--` and the paths
            inv.args.insert(0, format!("--bwlimit={kib}"));
        }
        let inv = &inv;
        if self.dry_run && !inv.read_only {
            self.runner.run(inv)?;
            return Ok(None);
        }
        let out = execute(self.runner.as_ref(), inv, SourceKind::Live)?;
        Ok(Some(out.stats))
    }

    fn tree_invocation(
        &self,
        tree: &Tree,
        how: TreeSend<'_>,
        preview: bool,
    ) -> backup_core::Result<Invocation> {
        let (program, ssh) = (self.program.as_str(), self.ssh.as_ref());
        let dest = self.folder(&tree.name);
        Ok(match how {
            TreeSend::Full { max_delete } => {
                tree_full_pass(program, &tree.source, &dest, max_delete, preview, ssh)?
            }
            TreeSend::Listed { list } => tree_incremental(program, &tree.source, &dest, list, ssh)?,
            TreeSend::Folders { list, max_delete } => {
                tree_folders(program, &tree.source, &dest, list, max_delete, preview, ssh)?
            }
        })
    }
}

/// rsync's exit status and last words, for a person.
pub fn rsync_failure(out: &backup_core::Output) -> String {
    let code = out.status.map_or_else(
        || "killed by a signal".to_owned(),
        |c| format!("exit {c}, {}", meaning(c)),
    );
    format!("rsync {code}: {}", backup_core::stderr_tail(&out.stderr, 8))
}

impl OffsiteCopy for RsyncOffsite<'_> {
    fn folder(&self, folder: &str) -> String {
        dest_folder(&self.destination, folder)
    }

    fn read_root(&self, into: &Utf8Path, records: bool) -> backup_core::Result<MirrorRead> {
        let pve_backup = self.folder("pve-backup");
        let inv = mirror_offsite(&self.program, &pve_backup, into, records, self.ssh.as_ref())?;
        let out = self.runner.run(&inv)?;
        Ok(if out.status == Some(0) {
            MirrorRead::Read
        } else if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
            // rsync's word for a source that is not there (exit 23): nothing was synced yet
            MirrorRead::Nothing
        } else {
            MirrorRead::Failed(rsync_failure(&out))
        })
    }

    fn send_root(
        &self,
        root: &Utf8Path,
        filters: &[String],
        excludes: &[String],
    ) -> backup_core::Result<Sent> {
        let dest = self.folder("pve-backup");
        let inv = backup_root_copy(
            &self.program,
            root,
            &dest,
            filters,
            excludes,
            self.ssh.as_ref(),
        )?;
        self.transfer(&inv)
    }

    fn resend(&self, root: &Utf8Path, list: &Utf8Path) -> backup_core::Result<Sent> {
        let dest = self.folder("pve-backup");
        let inv = resend_files(&self.program, root, &dest, list, self.ssh.as_ref())?;
        self.transfer(&inv)
    }

    fn send_tree(&self, tree: &Tree, how: TreeSend<'_>) -> backup_core::Result<Sent> {
        let inv = self.tree_invocation(tree, how, false)?;
        self.transfer(&inv)
    }

    fn count_deletions(&self, tree: &Tree, how: TreeSend<'_>) -> backup_core::Result<u64> {
        if matches!(how, TreeSend::Listed { .. }) {
            // the listed send has no dry run of its own; its deletions are counted by the
            // folders pass that goes with it
            return Err(backup_core::Error::Unsupported {
                operation: format!(
                    "count what sending the listed paths of {} deletes",
                    tree.name
                ),
                reason: "a listed send is counted through its folders pass".to_owned(),
            });
        }
        let inv = self.tree_invocation(tree, how, true)?;
        Ok(execute(self.runner.as_ref(), &inv, SourceKind::Live)?
            .stats
            .deleted_files)
    }

    fn fetch(&self, folder: &str, into: &Utf8Path) -> backup_core::Result<()> {
        let source = self.folder(folder);
        crate::restore_copy_from(
            &self.program,
            self.ssh.as_ref(),
            source.trim_end_matches('/'),
            into,
            false,
            None,
            &[],
        )?
        .read_only()
        .run_checked(self.runner.as_ref())?;
        Ok(())
    }

    fn compare(
        &self,
        local: &Utf8Path,
        rel: &str,
        sample: Option<&Utf8Path>,
    ) -> backup_core::Result<Compared> {
        let dest = self.folder(&format!("pve-backup/{rel}"));
        let inv = compare_copy(&self.program, self.ssh.as_ref(), local, &dest, sample)?;
        let out = self.runner.run(&inv)?;
        Ok(Compared {
            differences: compared(&String::from_utf8_lossy(&out.stdout)),
            failed: (!out.success()).then(|| {
                format!(
                    "the offsite copy could not be compared (rsync exit {}): {}",
                    out.status.map_or(-1, |c| c),
                    backup_core::stderr_tail(&out.stderr, 3)
                )
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::{RecordingRunner, Transcript};
    use backup_core::{Config, Output};

    fn nas(runner: &RecordingRunner, dry_run: bool) -> (Config, RsyncOffsite<'_>) {
        let cfg = Config::from_toml(
            "/etc/hb/config.toml".into(),
            "backup-root = \"/srv/backup\"\n[offsite]\ndestination = \"backup@nas:/vol/hl\"\n\
             [[offsite.tree]]\nname = \"media\"\nsource = \"/srv/media\"\n",
        )
        .unwrap();
        let n = RsyncOffsite::new(
            Box::new(runner),
            "rsync",
            cfg.offsite.as_ref().unwrap(),
            dry_run,
        );
        (cfg, n)
    }

    /// Under `--dry-run` what would change offsite is handed to the runner (which records it)
    /// and gives no numbers; what only reads (step 1's read, a count) runs and is read.
    #[test]
    fn a_dry_run_records_what_would_change_and_runs_what_only_reads() {
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);
        let stats =
            std::fs::read_to_string(fixtures::data_dir().join("rsync/stats-with-deletions.txt"))
                .unwrap();
        runner.answer(&["rsync"], Output::ok(stats));
        let (cfg, n) = nas(&runner, true);
        let tree = &cfg.offsite.as_ref().unwrap().trees[0];
        assert_eq!(n.send_root("/srv/backup".into(), &[], &[]).unwrap(), None);
        assert_eq!(
            n.send_tree(
                tree,
                TreeSend::Full {
                    max_delete: Some(5)
                }
            )
            .unwrap(),
            None
        );
        assert_eq!(
            n.count_deletions(tree, TreeSend::Full { max_delete: None })
                .unwrap(),
            1
        );
        assert_eq!(
            n.read_root("/tmp/m".into(), false).unwrap(),
            MirrorRead::Read
        );
        // a listed send has no dry run: it is never run to count
        let list = Utf8Path::new("/tmp/list");
        assert!(n.count_deletions(tree, TreeSend::Listed { list }).is_err());
        let lines = t.lines();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].ends_with("-- /srv/backup/ backup@nas:/vol/hl/pve-backup/"),
            "{}",
            lines[0]
        );
        assert!(lines[2].contains(" --dry-run "), "{}", lines[2]);
    }

    /// `offsite.bwlimit`: every send carries `--bwlimit`, what only reads or counts does not.
    #[test]
    fn the_limit_holds_every_send_and_nothing_that_only_reads() {
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);
        let stats =
            std::fs::read_to_string(fixtures::data_dir().join("rsync/stats-nothing.txt")).unwrap();
        runner.answer(&["rsync"], Output::ok(stats));
        let cfg = Config::from_toml(
            "/etc/hb/config.toml".into(),
            "backup-root = \"/srv/backup\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = \"2M\"\n\
             [[offsite.tree]]\nname = \"media\"\nsource = \"/srv/media\"\n",
        )
        .unwrap();
        let o = cfg.offsite.as_ref().unwrap();
        let n = RsyncOffsite::new(Box::new(&runner), "rsync", o, false);
        let tree = &o.trees[0];
        n.send_root("/srv/backup".into(), &[], &[]).unwrap();
        n.resend("/srv/backup".into(), "/tmp/list".into()).unwrap();
        n.send_tree(tree, TreeSend::Full { max_delete: None })
            .unwrap();
        n.count_deletions(tree, TreeSend::Full { max_delete: None })
            .unwrap();
        n.read_root("/tmp/m".into(), true).unwrap();
        let limited: Vec<bool> = t
            .lines()
            .iter()
            .map(|l| l.starts_with("$ rsync --bwlimit=2048 "))
            .collect();
        assert_eq!(
            limited,
            [true, true, true, false, false],
            "{:#?}",
            t.lines()
        );
    }

    /// Step 1's read tells "nothing there yet" (rsync's missing-source words) from a failure,
    /// which keeps rsync's exit code, its meaning and its last words.
    #[test]
    fn the_read_of_step_one_tells_nothing_yet_from_a_failure() {
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);
        let (_cfg, n) = nas(&runner, false);
        runner.answer(
            &["rsync"],
            Output::failed(
                23,
                "rsync: change_dir \"/vol/hl/pve-backup\" failed: No such file or directory (2)",
            ),
        );
        assert_eq!(
            n.read_root("/tmp/m".into(), true).unwrap(),
            MirrorRead::Nothing
        );
        runner.answer(
            &["rsync"],
            Output::failed(255, "Host key verification failed."),
        );
        let MirrorRead::Failed(why) = n.read_root("/tmp/m".into(), true).unwrap() else {
            panic!("a failed read must say so");
        };
        assert!(why.starts_with("rsync exit 255, "), "{why}");
        assert!(why.ends_with("Host key verification failed."), "{why}");
    }
}
