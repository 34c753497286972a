//! What runs did, as values: the report every output (text, `--json`, metrics) is rendered
//! from. Job code fills these; it never prints.

use backup_core::{DatabaseCopy, IsoWeek, SelectedVolume, SyncStats};
use camino::Utf8PathBuf;
use serde::Serialize;

use backup_host::exit::Exit;

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Done.
    Ok,
    /// Failed; the error says why.
    Failed,
    /// Not started: the run was interrupted.
    Skipped,
    /// `--dry-run`: planned, not carried out.
    Planned,
    /// Stopped at the configured time (`offsite.stop-at`): what was done stays, the next run
    /// goes on from there.
    Stopped,
}

impl Status {
    /// The word in text output.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
            Status::Planned => "would",
            Status::Stopped => "stopped",
        }
    }

    /// True unless it failed or was skipped (stopped at its configured time is not a failure).
    pub fn is_good(self) -> bool {
        matches!(self, Status::Ok | Status::Planned | Status::Stopped)
    }
}

/// The result of one volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeResult {
    /// LV name.
    pub lv: String,
    /// Namespace.
    pub namespace: String,
    /// PVC.
    pub pvc: String,
    /// How it ended.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// The snapshot copied.
    pub snapshot: String,
    /// The week linked against.
    pub link_week: Option<IsoWeek>,
    /// rsync's numbers.
    pub stats: Option<SyncStats>,
    /// Warnings that did not fail it.
    pub warnings: Vec<String>,
    /// The SQLite databases found in the snapshot and what became of each.
    pub sqlite: Vec<DatabaseCopy>,
    /// Wall time.
    pub seconds: f64,
}

/// The result of one other item (a PVE config path, pfSense).
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// What it was.
    pub item: String,
    /// How it ended.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
}

impl ItemResult {
    /// An item from the outcome of doing it.
    pub fn from_result<E: std::fmt::Display>(item: String, result: Result<(), E>) -> Self {
        Self {
            item,
            status: if result.is_ok() {
                Status::Ok
            } else {
                Status::Failed
            },
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// What pruning did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Versions removed (`<week> <namespace>/<pvc>`, `<week> pfsense`, `<week> pve-config`).
    pub removed_versions: Vec<String>,
    /// Snapshots removed.
    pub removed_snapshots: Vec<String>,
    /// Removals that failed.
    pub errors: Vec<String>,
}

/// Everything a daily run did.
#[derive(Debug, Clone, Serialize)]
pub struct DailyReport {
    /// The plan the run carried out (and, under `--dry-run`, the prune plan with it).
    pub plan: Option<backup_core::DailyPlan>,
    /// The prune plan a dry run shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_plan: Option<backup_core::PrunePlan>,
    /// The week written.
    pub week: IsoWeek,
    /// The backup root.
    pub backup_root: Utf8PathBuf,
    /// One entry per selected volume.
    pub volumes: Vec<VolumeResult>,
    /// Volumes skipped for their namespace.
    pub excluded: Vec<SelectedVolume>,
    /// One entry per PVE config path.
    pub pve_config: Vec<ItemResult>,
    /// The pfSense copy; `None` without `[pfsense]`.
    pub pfsense: Option<ItemResult>,
    /// Pruning.
    pub prune: PruneReport,
    /// Warnings about the run as a whole (unresolved volumes, an interrupted run).
    pub warnings: Vec<String>,
    /// Percent of the backup disk in use after the run.
    pub disk_usage_percent: Option<f64>,
    /// The run's time (unix seconds), for the metrics.
    pub now_unix: i64,
    /// Wall time.
    pub seconds: f64,
    /// The exit code.
    pub exit: Exit,
}

impl DailyReport {
    /// SQLite databases that could not be copied, as (volume, database).
    pub fn sqlite_failures(&self) -> impl Iterator<Item = (&VolumeResult, &DatabaseCopy)> {
        self.volumes.iter().flat_map(|v| {
            v.sqlite
                .iter()
                .filter(|s| s.error.is_some())
                .map(move |s| (v, s))
        })
    }

    /// (good, failed) counts over volumes, SQLite copies, PVE config, pfSense and removals.
    pub fn counts(&self) -> (usize, usize) {
        let statuses = self
            .volumes
            .iter()
            .map(|v| v.status)
            .chain(
                self.pve_config
                    .iter()
                    .chain(&self.pfsense)
                    .map(|i| i.status),
            )
            .chain(self.sqlite_failures().map(|_| Status::Failed))
            // a version or snapshot that cannot be removed fills the disk or the thin pool
            .chain(self.prune.errors.iter().map(|_| Status::Failed));
        statuses.fold((0, 0), |(ok, bad), s| {
            if s.is_good() {
                (ok + 1, bad)
            } else {
                (ok, bad + 1)
            }
        })
    }
}

/// One snapshot taken (or not).
#[derive(Debug, Clone, Serialize)]
pub struct TakeResult {
    /// The volume and its PVC.
    #[serde(flatten)]
    pub volume: SelectedVolume,
    /// The snapshot's name.
    pub snapshot: String,
    /// How it ended.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
}

/// What `lvm-pvc-snapshot create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    /// Snapshots and set-aside volumes removed first.
    pub pruned: Vec<String>,
    /// Prune failures.
    pub prune_errors: Vec<String>,
    /// One entry per selected volume.
    pub taken: Vec<TakeResult>,
    /// Volumes skipped for their namespace.
    pub excluded: Vec<SelectedVolume>,
    /// Pool free percent, when the backend has a pool.
    pub pool_free_percent: Option<f64>,
    /// Set when the pool guard refused to snapshot.
    pub refused: Option<String>,
    /// Snapshots after the run.
    pub snapshot_count: usize,
    /// The run's time (unix seconds), for the metrics.
    pub now_unix: i64,
    /// The exit code.
    pub exit: Exit,
}
