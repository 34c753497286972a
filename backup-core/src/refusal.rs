//! Why a run or one item of it refused to act: a guard held, not a command that failed. Each
//! reason has one message, here, with what was found and what to do about it.

use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::week::IsoWeek;

/// A guard that stopped a run, or one volume of it.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "kebab-case")]
pub enum Refusal {
    /// The thin pool is too full to take snapshots: a full thin pool turns every volume in it
    /// read-only.
    #[error(
        "thin pool has {free_percent:.1}% free, below min-pool-free-percent = {min_percent}: no snapshot taken"
    )]
    PoolLow {
        /// Free data or metadata, whichever is less.
        free_percent: f64,
        /// `snapshots.min-pool-free-percent`.
        min_percent: f64,
    },

    /// A volume's newest snapshot is too old and the pool too full to take a fresh one.
    #[error(
        "{stale}, and the thin pool has {free_percent:.1}% free (below min-pool-free-percent = \
         {min_percent}): no fresh snapshot taken, and stale data is not copied as this week's"
    )]
    StaleSnapshotPoolLow {
        /// Why the newest snapshot cannot be used.
        stale: String,
        /// Free data or metadata, whichever is less.
        free_percent: f64,
        /// `snapshots.min-pool-free-percent`.
        min_percent: f64,
    },

    /// An empty source would replace a copy that has files (a failed mount, a wiped PVC).
    #[error(
        "source {source_dir} is empty but the last copy {copy} has files: refusing to replace the \
         backup with nothing (failed mount or wiped PVC?); the copy is kept. If the PVC was \
         emptied on purpose, run once with --allow-empty {namespace}/{pvc}"
    )]
    EmptySource {
        /// The mounted snapshot.
        source_dir: Utf8PathBuf,
        /// The copy that has files.
        copy: Utf8PathBuf,
        /// Its namespace.
        namespace: String,
        /// Its PVC.
        pvc: String,
    },

    /// The backup root is not there: the backup disk is not mounted.
    #[error(
        "backup-root {path} is not a folder: is the backup disk mounted? (`backup-root` in {file})"
    )]
    BackupRootMissing {
        /// `backup-root`.
        path: Utf8PathBuf,
        /// The configuration file.
        file: Utf8PathBuf,
    },

    /// No volume matches the pattern: a typo, the wrong volume group, an empty folder.
    #[error(
        "no volume matches lv-pattern `{pattern}` in {place}: {listed} volumes there{sample} \
         (`snapshots.lv-pattern` in {file})"
    )]
    NoVolumeMatches {
        /// `snapshots.lv-pattern`.
        pattern: String,
        /// Where volumes were listed.
        place: String,
        /// How many volumes were listed.
        listed: usize,
        /// `: a, b, c` (the first few names), or nothing.
        sample: String,
        /// The configuration file.
        file: Utf8PathBuf,
    },

    /// The clock is behind what the backup root already holds.
    #[error(
        "the clock says {} (week {week}), but {newer}: refusing to write or prune anything. Is \
         the clock wrong (RTC reset, NTP step)? Check `timedatectl`; `--now` replays a day on \
         purpose", now.to_rfc3339()
    )]
    ClockBehind {
        /// The run's time.
        now: DateTime<Utc>,
        /// The run's week.
        week: IsoWeek,
        /// What on the backup root is newer.
        newer: String,
    },

    /// Something other than a folder sits where a mount point goes.
    #[error("mount point {path} is {what}, not a folder: refusing to mount there (remove it)")]
    MountPointNotFolder {
        /// The mount point.
        path: Utf8PathBuf,
        /// `a symlink`, `a file`.
        what: String,
    },

    /// A name that cannot be a folder name (not a Kubernetes name, not UTF-8).
    #[error("{reason}")]
    BadName {
        /// What is wrong with which name.
        reason: String,
    },

    /// Two volumes resolve to one (namespace, pvc): their copies would overwrite each other.
    #[error("{lv} is also {namespace}/{pvc}: two volumes cannot share one copy; fix the PV map")]
    SharedCopy {
        /// The volume that claimed it first.
        lv: String,
        /// The namespace.
        namespace: String,
        /// The PVC.
        pvc: String,
    },

    /// A source that must be a folder is not.
    #[error("{path} is not a folder")]
    NotAFolder {
        /// The path.
        path: Utf8PathBuf,
    },

    /// The backup root is not the backup disk: `--delete` from it would wipe the copy offsite.
    #[error("backup-root {path} does not look like the backup disk: {why}; nothing is sent (an unmounted disk would wipe pve-backup/ offsite)")]
    NotTheBackupDisk {
        /// `backup-root`.
        path: Utf8PathBuf,
        /// What is missing.
        why: String,
    },

    /// A tree's source is empty: a full pass with `--delete` would wipe its copy offsite.
    #[error("tree {tree}: source {source_dir} is empty: refusing a full pass that would delete everything offsite (unmounted NFS export?); --force sends it anyway")]
    EmptyTree {
        /// The tree's name.
        tree: String,
        /// Its source.
        source_dir: Utf8PathBuf,
    },

    /// A pass (full, or the deletions of an incremental one) would delete more offsite than
    /// `offsite.max-delete` allows.
    #[error("tree {tree}: {pass} would delete {count} paths offsite, more than max-delete = {max}: nothing was deleted; check the source, then run once with --force")]
    TooManyDeletions {
        /// The tree's name.
        tree: String,
        /// "a full pass", "the incremental pass".
        pass: &'static str,
        /// Deletions the pass would make.
        count: u64,
        /// `offsite.max-delete`.
        max: u64,
    },
}
