//! `--dry-run` as decorators (rustic_core's `DryRunBackend`): each wraps a real backend, passes
//! reads through, and records every change it would make instead of making it. A preview runs
//! the same planner and job code as the real run, so it says what the real run would do,
//! refusals included.
//!
//! What cannot be previewed without changing something stops there and says so: a snapshot is
//! not activated or mounted, so its copy shows as planned, not as files counted.

use std::sync::{Arc, Mutex};

use backup_core::{
    exposition, BackupRoot, BackupStore, CopyStages, DatabaseCopy, Error, FileSync, Invocation,
    IsoWeek, MetricGroup, MetricsSink, Mounter, Output, PoolUsage, Result, Runner, Series,
    SnapshotInfo, SnapshotSource, StoreFile, SyncOutcome, SyncRequest, SyncStats, Volume,
    VolumeManager, WeekVersion,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

/// The changes a dry run would have made, in order.
#[derive(Debug, Clone, Default)]
pub struct Would(Arc<Mutex<Vec<String>>>);

impl Would {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one thing a real run would have done.
    pub fn push(&self, line: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line.into());
    }

    /// Everything recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The error of a step a dry run cannot carry out without changing something; the job reports
/// the item as planned.
fn not_carried_out(what: impl Into<String>) -> Error {
    Error::NotCarriedOut { what: what.into() }
}

/// Lists for real; takes, removes and activates nothing.
pub struct DryRunVolumes<'a> {
    inner: Box<dyn VolumeManager + 'a>,
    would: Would,
}

impl<'a> DryRunVolumes<'a> {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn VolumeManager + 'a>, would: &Would) -> Self {
        Self {
            inner,
            would: would.clone(),
        }
    }
}

impl VolumeManager for DryRunVolumes<'_> {
    fn list_volumes(&self) -> Result<Vec<Volume>> {
        self.inner.list_volumes()
    }
    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        self.inner.list_snapshots()
    }
    fn create_snapshot(&self, volume: &str, name: &str, at: DateTime<Utc>) -> Result<SnapshotInfo> {
        self.would.push(format!("take snapshot {name} of {volume}"));
        Ok(SnapshotInfo {
            name: name.to_owned(),
            volume: volume.to_owned(),
            created: at,
        })
    }
    fn remove_snapshot(&self, name: &str) -> Result<()> {
        self.would.push(format!("remove snapshot {name}"));
        Ok(())
    }
    fn activate(&self, name: &str) -> Result<SnapshotSource> {
        self.would
            .push(format!("activate and mount {name} read-only, then copy it"));
        Err(not_carried_out(format!("activate {name}")))
    }
    fn activate_volume(&self, lv: &str) -> Result<SnapshotSource> {
        self.would.push(format!("activate {lv} read-write"));
        Err(not_carried_out(format!("activate {lv}")))
    }
    fn deactivate(&self, _name: &str) -> Result<()> {
        Ok(())
    }
    fn set_aside_volumes(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.inner.set_aside_volumes()
    }
    fn remove_set_aside(&self, name: &str) -> Result<()> {
        self.would.push(format!("remove set-aside volume {name}"));
        Ok(())
    }
    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        self.inner.pool_usage()
    }
}

/// Mounts nothing.
pub struct DryRunMounter {
    would: Would,
}

impl DryRunMounter {
    /// A mounter recording into `would`.
    pub fn new(would: &Would) -> Self {
        Self {
            would: would.clone(),
        }
    }
}

impl Mounter for DryRunMounter {
    fn mount_ro(&self, _source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        self.would.push(format!("mount read-only on {target}"));
        Err(not_carried_out(format!("mount on {target}")))
    }
    fn mount_rw(&self, _source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        self.would.push(format!("mount read-write on {target}"));
        Err(not_carried_out(format!("mount on {target}")))
    }
    fn unmount(&self, _target: &Utf8Path) -> Result<()> {
        Ok(())
    }
}

/// Copies nothing; says what it would copy.
pub struct DryRunSync {
    would: Would,
}

impl DryRunSync {
    /// A sync recording into `would`.
    pub fn new(would: &Would) -> Self {
        Self {
            would: would.clone(),
        }
    }
}

impl FileSync for DryRunSync {
    fn sync(&self, request: &SyncRequest) -> Result<SyncOutcome> {
        let link = request
            .link_dest
            .as_ref()
            .map(|l| format!(" (link-dest {l})"))
            .unwrap_or_default();
        self.would.push(format!(
            "rsync {}/ -> {}/{link}",
            request.source, request.dest
        ));
        Ok(SyncOutcome {
            stats: SyncStats::default(),
            warnings: Vec::new(),
        })
    }
}

/// Runs the commands marked read-only for real (`lvs`, `kubectl get`, a fetch); records the
/// others and answers them with an empty success.
pub struct DryRunRunner<'a> {
    inner: Box<dyn Runner + 'a>,
    would: Would,
}

impl<'a> DryRunRunner<'a> {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Runner + 'a>, would: &Would) -> Self {
        Self {
            inner,
            would: would.clone(),
        }
    }
}

impl Runner for DryRunRunner<'_> {
    fn run(&self, invocation: &Invocation) -> Result<Output> {
        if invocation.read_only {
            return self.inner.run(invocation);
        }
        self.would.push(format!("run {}", invocation.display()));
        Ok(Output::ok(Vec::new()))
    }
}

/// Reads the backup root for real; writes and removes nothing.
pub struct DryRunStore<'a> {
    inner: Box<dyn BackupStore + 'a>,
    would: Would,
}

impl<'a> DryRunStore<'a> {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn BackupStore + 'a>, would: &Would) -> Self {
        Self {
            inner,
            would: would.clone(),
        }
    }
}

impl BackupStore for DryRunStore<'_> {
    fn root(&self) -> &BackupRoot {
        self.inner.root()
    }
    fn list_versions(&self, series: Series) -> Result<Vec<WeekVersion>> {
        self.inner.list_versions(series)
    }
    fn mark_complete(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        _at: DateTime<Utc>,
    ) -> Result<()> {
        let what = match series {
            Series::Pvc => format!("{namespace}/{pvc}"),
            Series::PveConfig | Series::Pfsense => namespace.to_owned(),
        };
        self.would
            .push(format!("mark week {week} of {what} complete"));
        Ok(())
    }
    fn mark_incomplete(&self, _: Series, _: IsoWeek, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    fn remove_version(&self, series: Series, v: &WeekVersion) -> Result<()> {
        let what = match series {
            Series::Pvc => format!("{}/{}", v.namespace, v.pvc),
            Series::PveConfig | Series::Pfsense => v.namespace.clone(),
        };
        self.would.push(format!("remove week {} of {what}", v.week));
        Ok(())
    }
    fn read(&self, file: StoreFile<'_>) -> Result<Option<Vec<u8>>> {
        self.inner.read(file)
    }
    fn staging_tree(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Result<Utf8PathBuf> {
        Err(not_carried_out(format!(
            "stage week {week} of {namespace}/{pvc}"
        )))
    }
    fn commit_version(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        _record: &[u8],
        _at: DateTime<Utc>,
    ) -> Result<()> {
        self.would.push(format!(
            "swap in week {week} of {namespace}/{pvc} and mark it complete"
        ));
        Ok(())
    }
    fn recover_version(&self, _: IsoWeek, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
    fn write(&self, file: StoreFile<'_>, bytes: &[u8]) -> Result<()> {
        self.would.push(format!(
            "write {} ({})",
            file.path(self.inner.root()),
            crate::human::bytes(bytes.len() as u64)
        ));
        Ok(())
    }
    fn disk_usage_percent(&self) -> Option<f64> {
        self.inner.disk_usage_percent()
    }
}

/// Prepares and copies nothing: says what it would copy.
pub struct DryRunStages {
    would: Would,
}

impl DryRunStages {
    /// Records into `would`.
    pub fn new(would: &Would) -> Self {
        Self {
            would: would.clone(),
        }
    }
}

impl CopyStages for DryRunStages {
    fn has_entries(&self, dir: &Utf8Path) -> Result<bool> {
        crate::fsutil::has_entries(dir).map_err(|e| e.into_core("backup root"))
    }
    fn prepare_copy(&self, _source: &Utf8Path, _dest: &Utf8Path) -> Result<()> {
        Ok(())
    }
    fn copy_databases(
        &self,
        source: &Utf8Path,
        _found: Option<&backup_core::Discovery>,
        dest: &Utf8Path,
        _previous: Option<&Utf8Path>,
    ) -> Vec<DatabaseCopy> {
        self.would
            .push(format!("copy the SQLite databases of {source} into {dest}"));
        Vec::new()
    }
}

/// Publishes nothing; records what it would publish.
pub struct DryRunSink {
    would: Would,
}

impl DryRunSink {
    /// A sink recording into `would`.
    pub fn new(would: &Would) -> Self {
        Self {
            would: would.clone(),
        }
    }
}

impl MetricsSink for DryRunSink {
    fn publish(&self, group: &MetricGroup) -> Result<()> {
        for line in exposition(&group.labelled_metrics())
            .lines()
            .filter(|l| !l.starts_with('#'))
        {
            self.would
                .push(format!("publish {line} (job {})", group.job));
        }
        Ok(())
    }
}
