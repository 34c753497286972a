//! The backup root as a trait: everything a job reads from or writes to the backup disk goes
//! through [`BackupStore`], so planning reads the same listing everywhere, a `--dry-run` wraps it
//! to change nothing, and transcript tests run against the state-based fake in `testing`.
//! What daily-backup does around a copy that is not storage (the hardlink guard, the SQLite
//! stage) is [`CopyStages`].

use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::layout::BackupRoot;
use crate::retention::WeekVersion;
use crate::week::IsoWeek;

/// Which weekly series of the backup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Series {
    /// `pvc-data/<week>/<namespace>/<pvc>` (with its `sqlite-backup/` copies).
    Pvc,
    /// `pve-config/<week>/` (namespace and pvc `pve-config`).
    PveConfig,
    /// `pfsense/<week>/` (namespace and pvc `pfsense`): complete when both files are there.
    Pfsense,
}

/// One database found in a snapshot and what became of its copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCopy {
    /// Its path inside the volume (lossy for names that are not UTF-8).
    pub path: String,
    /// Bytes of the stored copy.
    pub bytes: Option<u64>,
    /// Why it was not stored (a damaged header, a failed integrity check, a FIFO beside it).
    pub error: Option<String>,
    /// True when the database and its side files were unchanged since an earlier checked copy,
    /// which was hardlinked (or kept) instead of copied again.
    #[serde(default)]
    pub reused: bool,
}

/// A file the store keeps beside the versions, named by what it is: a caller never makes up a
/// path into the backup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile<'a> {
    /// A PVC version's record (week, namespace, pvc): while a commit is half done, the one that
    /// goes with the copy as it is now.
    Record(IsoWeek, &'a str, &'a str),
    /// A PVC version's completion marker (its text is the completion time).
    Marker(IsoWeek, &'a str, &'a str),
    /// A PVC version's damage list: files `backupctl verify` found differing from the record.
    Damaged(IsoWeek, &'a str, &'a str),
    /// A file of a pfSense week (`config.xml`, the full backup).
    Pfsense(IsoWeek, &'a str),
    /// What offsite-sync-backup remembers of its runs (`.offsite-state.json`).
    OffsiteState,
    /// A record the encrypted tier sent, kept by its digest: (repository, digest).
    TierRecord(&'a str, &'a str),
}

impl StoreFile<'_> {
    /// Where the file is under `root` (a record's own place: see [`StoreFile::Record`]).
    pub fn path(&self, root: &BackupRoot) -> Utf8PathBuf {
        match *self {
            StoreFile::Record(w, ns, pvc) => root.pvc_record(w, ns, pvc),
            StoreFile::Marker(w, ns, pvc) => root.pvc_complete_marker(w, ns, pvc),
            StoreFile::Damaged(w, ns, pvc) => root.pvc_damaged(w, ns, pvc),
            StoreFile::Pfsense(w, name) => root.pfsense_week(w).join(name),
            StoreFile::OffsiteState => root.root().join(crate::offsite_state::STATE_FILE),
            StoreFile::TierRecord(repo, digest) => {
                root.root().join(".tier-records").join(repo).join(digest)
            }
        }
    }
}

/// The backup disk.
pub trait BackupStore: Send + Sync {
    /// The root and its layout.
    fn root(&self) -> &BackupRoot;

    /// Every version of `series`, with its completion time; folders that are not week ids are
    /// not versions.
    ///
    /// # Errors
    /// When a folder cannot be read.
    fn list_versions(&self, series: Series) -> Result<Vec<WeekVersion>>;

    /// Marks a version complete (`namespace`/`pvc` as in [`Series`]).
    ///
    /// # Errors
    /// When the marker cannot be written.
    fn mark_complete(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Marks a version incomplete: before it is written again, or removed.
    ///
    /// # Errors
    /// When the marker exists and cannot be removed.
    fn mark_incomplete(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> Result<()>;

    /// Removes a version: its marker first (a removal cut short reads as incomplete, never as a
    /// complete version with files missing), then its folders.
    ///
    /// # Errors
    /// When a removal fails.
    fn remove_version(&self, series: Series, version: &WeekVersion) -> Result<()>;

    /// A fresh, empty place to build the update of a PVC's version of `week` in (what a killed
    /// run left there is removed first): the returned folder does not exist, its parent does.
    /// The complete version is never written into; [`BackupStore::commit_version`] swaps the
    /// update in.
    ///
    /// # Errors
    /// When a leftover cannot be removed or the parent created.
    fn staging_tree(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Result<Utf8PathBuf>;

    /// [`BackupStore::staging_tree`], except that the folder may already hold (then `true`) the
    /// copy the version's last commit replaced, or on a week's first run the one of the
    /// `earlier` week's version: the caller brings it up to date, trusting none of it, instead
    /// of building the update from nothing.
    ///
    /// # Errors
    /// As [`BackupStore::staging_tree`].
    fn staging_tree_from_spare(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        _earlier: Option<IsoWeek>,
    ) -> Result<(Utf8PathBuf, bool)> {
        Ok((self.staging_tree(week, namespace, pvc)?, false))
    }

    /// Makes the update built in [`BackupStore::staging_tree`] (when one was built; otherwise
    /// the copy as it is) the complete version of `namespace/pvc` in `week`, with `record` as
    /// its record, completed `at`: after a flush of the disk, in one swap, so that the version
    /// is at every moment either the old complete one or the new one. Clears the version's
    /// damage list.
    ///
    /// # Errors
    /// When a step fails: the version is then the old one, or is finished or undone by the next
    /// run's [`BackupStore::recover_version`].
    fn commit_version(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        record: &[u8],
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Finishes or undoes a commit a killed run left half done, and removes what it staged;
    /// says what it did, when it did something.
    ///
    /// # Errors
    /// When a leftover cannot be removed or a marker written.
    fn recover_version(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Result<Option<String>>;

    /// Reads one of the files the store keeps beside the versions; `None` when there is none.
    ///
    /// # Errors
    /// When it exists and cannot be read.
    fn read(&self, file: StoreFile<'_>) -> Result<Option<Vec<u8>>>;

    /// Writes one of them atomically (temp file, fsync, rename).
    ///
    /// # Errors
    /// When any step fails; nothing is left half written.
    fn write(&self, file: StoreFile<'_>, bytes: &[u8]) -> Result<()>;

    /// Percent of the backup disk in use, as `df` shows it.
    fn disk_usage_percent(&self) -> Option<f64>;
}

/// The two steps around a copy that are not storage: the hardlink guard before rsync writes
/// into a week folder, and the SQLite stage after it. daily-backup calls them itself; the store
/// keeps only storage verbs.
pub trait CopyStages: Send + Sync {
    /// True when `dir` holds anything but `lost+found` (a mounted snapshot, an earlier copy).
    ///
    /// # Errors
    /// When `dir` cannot be read.
    fn has_entries(&self, dir: &Utf8Path) -> Result<bool>;

    /// Gets `dest` ready for an rsync of `source`: on a later run of its week, files whose
    /// content is unchanged but whose metadata changed are unlinked from `dest` when they share
    /// an inode with an older week (rsync would change that older week through the hardlink);
    /// then the folder is created.
    ///
    /// # Errors
    /// I/O errors naming the path.
    fn prepare_copy(&self, source: &Utf8Path, dest: &Utf8Path) -> Result<()>;

    /// Copies every SQLite database under `source` (a mounted snapshot) into `dest` (the same
    /// relative paths), WAL-correctly; one result per database found, damaged ones included.
    /// A database whose file and side files are unchanged since the checked copy in `previous`
    /// (the copies of the version this one builds on) is hardlinked from there. `found`: what a
    /// walk of `source` already found (daily-backup's one walk); `None` walks it here.
    fn copy_databases(
        &self,
        source: &Utf8Path,
        found: Option<&crate::Discovery>,
        dest: &Utf8Path,
        previous: Option<&Utf8Path>,
    ) -> Vec<DatabaseCopy>;
}
