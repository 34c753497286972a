//! Offsite repository targets: where the encrypted tier sends each PVC's newest version, and
//! what `backupctl` reads back from one — its listing, a check of its data, a PVC restored whole
//! or a sample of its files, and the record a snapshot was sent with. One adapter crate per kind
//! (`backup-restic` today) implements [`RepositoryTarget`]; `backup_run::Context::repositories`
//! builds one per `[[offsite.repository]]`, and the offsite job and `backupctl` see only the
//! trait.

use backup_core::{FileEntry, IsoWeek, TierState};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;

/// One offsite repository, as the offsite job and `backupctl` use it.
pub trait RepositoryTarget {
    /// Its `name` in the config.
    fn name(&self) -> &str;

    /// Where it is, for people (no secret in it).
    fn shown(&self) -> String;

    /// Sends each PVC's newest complete version (and the other trees) not sent yet, forgets
    /// what the policy no longer keeps; `known` is what the last run left, `adopt` accepts a
    /// repository whose identity changed. What it did goes to `result`.
    ///
    /// # Errors
    /// A repository that cannot be used or was replaced, a failed send.
    fn send(&self, known: &TierState, adopt: bool, result: &mut TierResult) -> Result<TierState>;

    /// Every snapshot, by PVC then time.
    ///
    /// # Errors
    /// A repository that cannot be read.
    fn listing(&self) -> Result<TierListing>;

    /// Reads back `percent` of its data and checks it.
    ///
    /// # Errors
    /// What the check found, or a repository that cannot be read.
    fn check(&self, percent: f64) -> Result<()>;

    /// Restores the snapshot of `namespace/pvc` (the newest, or that of `week`) into `to`.
    ///
    /// # Errors
    /// No such snapshot (not found), a failed restore, a target that cannot be used.
    fn restore(&self, pvc: (&str, &str), week: Option<IsoWeek>, to: &Utf8Path) -> Result<Restored>;

    /// Restores the listed `files` (paths inside the PVC) of the snapshot of `namespace/pvc` and
    /// `week` into `to`, only reading the repository.
    ///
    /// # Errors
    /// No such snapshot, a failed restore.
    fn restore_files(
        &self,
        pvc: (&str, &str),
        week: IsoWeek,
        files: &[&[u8]],
        to: &Utf8Path,
    ) -> Result<SampleRestored>;

    /// The record a snapshot of `(week, namespace, pvc)` was sent with (`record`: its digest, as
    /// [`Restored::record`] gives it), when it is still known.
    fn sent_record(
        &self,
        record: Option<&str>,
        version: (IsoWeek, &str, &str),
    ) -> Option<Vec<FileEntry>>;
}

/// What the tier did for one repository.
#[derive(Debug, Clone, Serialize)]
pub struct TierResult {
    /// The repository's `name`.
    pub name: String,
    /// Its id (`restic cat config`), when it could be read.
    pub repository_id: Option<String>,
    /// One snapshot per PVC sent.
    pub snapshots: Vec<TierSnapshot>,
    /// Snapshots the policy no longer keeps, forgotten (and pruned).
    pub forgotten: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// `--dry-run`: what would be sent.
    pub planned: Vec<String>,
    /// What the repository holds, in bytes (measured after a prune, counted up since by what each run added).
    pub repository_bytes: Option<u64>,
}

/// One PVC's snapshot in a repository.
#[derive(Debug, Clone, Serialize)]
pub struct TierSnapshot {
    /// `namespace/pvc`, or the tree's name (`sqlite-backup`, `pfsense`, `pve-config`,
    /// `dumps:<folder>`).
    pub pvc: String,
    /// The week of the version sent.
    pub week: String,
    /// The snapshot's id.
    pub snapshot_id: String,
    /// Files restic read (new or changed).
    pub files_read: u64,
    /// Files it found unchanged against the parent snapshot.
    pub files_unmodified: u64,
    /// Bytes added to the repository (after deduplication and compression).
    pub bytes_added: u64,
    /// The version's tree is the one its last snapshot holds (the records say so): that
    /// snapshot was tagged with this week instead of a new backup.
    #[serde(default)]
    pub retagged: bool,
}

impl TierResult {
    /// An empty result for the repository `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            repository_id: None,
            snapshots: Vec::new(),
            forgotten: 0,
            error: None,
            planned: Vec::new(),
            repository_bytes: None,
        }
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        let r = self;
        if !r.planned.is_empty() {
            return format!("would send {}", r.planned.join(", "));
        }
        let read: u64 = r.snapshots.iter().map(|s| s.files_read).sum();
        let same: u64 = r.snapshots.iter().map(|s| s.files_unmodified).sum();
        let added: u64 = r.snapshots.iter().map(|s| s.bytes_added).sum();
        format!(
            "{}: {} read, {} unchanged, {} added; {} forgotten",
            crate::human::plural(r.snapshots.len() as u64, "PVC"),
            crate::human::plural(read, "file"),
            crate::human::count(same),
            crate::human::bytes(added),
            r.forgotten
        )
    }
}

/// A repository's snapshots, for `backupctl list --tier`.
#[derive(Debug, Clone, Serialize)]
pub struct TierListing {
    /// The repository's `name`.
    pub repository: String,
    /// Its snapshots, by PVC then time.
    pub snapshots: Vec<TierListed>,
}

/// One snapshot of a [`TierListing`].
#[derive(Debug, Clone, Serialize)]
pub struct TierListed {
    /// `namespace/pvc` (from its tags), or the tree's name (`pfsense`, `dumps:<folder>`).
    pub pvc: String,
    /// The week of the version it holds (its `week=` tag).
    pub week: String,
    /// When restic took it.
    pub time: DateTime<Utc>,
    /// The snapshot's id.
    pub id: String,
}

/// What [`RepositoryTarget::restore`] brought back.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The snapshot's id.
    pub snapshot_id: String,
    /// The digest of the record the snapshot was sent with (its `record=` tag).
    pub record: Option<String>,
    /// The week of the version that snapshot holds (its `week=` tag).
    pub week: Option<IsoWeek>,
}

/// What [`RepositoryTarget::restore_files`] brought back.
#[derive(Debug, Clone)]
pub struct SampleRestored {
    /// The folder that holds the PVC's root, as restored.
    pub root: Utf8PathBuf,
    /// The snapshot's id.
    pub snapshot_id: String,
    /// The digest of the record the snapshot was sent with (its `record=` tag).
    pub record: Option<String>,
    /// Files whose name is not UTF-8: restic cannot be asked for them one by one, so they are
    /// not in the sample (unless the whole snapshot was restored).
    pub unnamed: u64,
}

/// A repository in memory for tests: its snapshots as `listing` gives them, and a send that
/// succeeds (the state given back with its id) or fails as told. Restores are not faked.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default)]
pub struct FakeRepository {
    /// Its name.
    pub name: String,
    /// What `listing` gives; `None`: listing fails.
    pub snapshots: Option<Vec<TierListed>>,
    /// `send` fails with this refusal.
    pub send_fails: Option<String>,
}

#[cfg(any(test, feature = "testing"))]
impl RepositoryTarget for FakeRepository {
    fn name(&self) -> &str {
        &self.name
    }

    fn shown(&self) -> String {
        format!("fake:{}", self.name)
    }

    fn send(&self, known: &TierState, _adopt: bool, result: &mut TierResult) -> Result<TierState> {
        if let Some(why) = &self.send_fails {
            return Err(crate::error::Error::Refused(why.clone()));
        }
        result.forgotten = 2;
        Ok(TierState {
            repository_id: Some(format!("{}-id", self.name)),
            ..known.clone()
        })
    }

    fn listing(&self) -> Result<TierListing> {
        let snapshots = self.snapshots.clone().ok_or_else(|| {
            crate::error::Error::Refused(format!("{}: the repository cannot be read", self.name))
        })?;
        Ok(TierListing {
            repository: self.name.clone(),
            snapshots,
        })
    }

    fn check(&self, _percent: f64) -> Result<()> {
        self.listing().map(|_| ())
    }

    fn restore(&self, _: (&str, &str), _: Option<IsoWeek>, _: &Utf8Path) -> Result<Restored> {
        Err(crate::error::Error::Internal(
            "FakeRepository does not restore".into(),
        ))
    }

    fn restore_files(
        &self,
        _: (&str, &str),
        _: IsoWeek,
        _: &[&[u8]],
        _: &Utf8Path,
    ) -> Result<SampleRestored> {
        Err(crate::error::Error::Internal(
            "FakeRepository does not restore".into(),
        ))
    }

    fn sent_record(&self, _: Option<&str>, _: (IsoWeek, &str, &str)) -> Option<Vec<FileEntry>> {
        None
    }
}
