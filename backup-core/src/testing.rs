//! State-based fakes of every trait, and a shared transcript that `insta` can pin.
//!
//! The fakes enforce what the real thing enforces: the fake volume manager refuses to snapshot a
//! missing volume or reuse a name, the fake mounter refuses a double mount and an unmount of what
//! is not mounted. Each records what it was asked into a [`Transcript`], which several fakes can
//! share so a whole run reads as one ordered list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

use crate::cluster::{Cluster, PvClaim, Workload};
use crate::error::{Error, Result};
use crate::metrics::{exposition, MetricGroup, MetricsSink};
use crate::mount::Mounter;
use crate::retention::SnapshotInfo;
use crate::runner::{Invocation, Output, Runner};
use crate::sync::{FileSync, SyncOutcome, SyncRequest, SyncStats};
use crate::volume::{PoolUsage, SnapshotSource, Volume, VolumeManager};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An ordered, shareable log of what fakes were asked to do.
#[derive(Debug, Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    /// A new, empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one line.
    pub fn push(&self, line: impl Into<String>) {
        lock(&self.0).push(line.into());
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.0).clone()
    }

    /// The lines joined with newlines, for `insta::assert_snapshot!`.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct VolumeState {
    volumes: BTreeSet<String>,
    snapshots: BTreeMap<String, SnapshotInfo>,
    active: BTreeSet<String>,
    pool: Option<PoolUsage>,
    failing: BTreeSet<String>,
}

/// A volume manager holding volumes and snapshots in memory.
#[derive(Debug, Default)]
pub struct FakeVolumeManager {
    state: Mutex<VolumeState>,
    transcript: Transcript,
}

impl FakeVolumeManager {
    /// A manager with these volumes and no snapshots, logging into `transcript`.
    pub fn new(volumes: &[&str], transcript: &Transcript) -> Self {
        let fake = Self {
            state: Mutex::default(),
            transcript: transcript.clone(),
        };
        lock(&fake.state).volumes = volumes.iter().map(|v| (*v).to_owned()).collect();
        fake
    }

    /// Adds an existing snapshot.
    pub fn add_snapshot(&self, volume: &str, name: &str, created: DateTime<Utc>) {
        lock(&self.state).snapshots.insert(
            name.to_owned(),
            SnapshotInfo {
                name: name.to_owned(),
                volume: volume.to_owned(),
                created,
            },
        );
    }

    /// Sets the pool usage the manager reports.
    pub fn set_pool(&self, usage: PoolUsage) {
        lock(&self.state).pool = Some(usage);
    }

    /// Makes every operation on `name` (a volume or snapshot) fail.
    pub fn fail_on(&self, name: &str) {
        lock(&self.state).failing.insert(name.to_owned());
    }

    /// Names of the snapshots that exist now.
    pub fn snapshot_names(&self) -> Vec<String> {
        lock(&self.state).snapshots.keys().cloned().collect()
    }

    /// Names of the snapshots activated and not yet deactivated.
    pub fn active(&self) -> Vec<String> {
        lock(&self.state).active.iter().cloned().collect()
    }

    fn check_failing(state: &VolumeState, name: &str, op: &str) -> Result<()> {
        if state.failing.contains(name) {
            return Err(Error::io(
                format!("{op} {name}"),
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(())
    }
}

impl VolumeManager for FakeVolumeManager {
    fn list_volumes(&self) -> Result<Vec<Volume>> {
        Ok(lock(&self.state)
            .volumes
            .iter()
            .map(|name| Volume { name: name.clone() })
            .collect())
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(lock(&self.state).snapshots.values().cloned().collect())
    }

    fn create_snapshot(&self, volume: &str, name: &str, at: DateTime<Utc>) -> Result<SnapshotInfo> {
        let mut st = lock(&self.state);
        self.transcript.push(format!("snapshot {volume} -> {name}"));
        Self::check_failing(&st, volume, "snapshot")?;
        if !st.volumes.contains(volume) {
            return Err(Error::missing(
                format!("snapshot {volume}"),
                "no such volume",
            ));
        }
        if st.snapshots.contains_key(name) || st.volumes.contains(name) {
            return Err(Error::occupied(
                format!("snapshot {volume}"),
                format!("`{name}` already exists"),
            ));
        }
        let info = SnapshotInfo {
            name: name.to_owned(),
            volume: volume.to_owned(),
            created: at,
        };
        st.snapshots.insert(name.to_owned(), info.clone());
        Ok(info)
    }

    fn remove_snapshot(&self, name: &str) -> Result<()> {
        let mut st = lock(&self.state);
        self.transcript.push(format!("remove snapshot {name}"));
        Self::check_failing(&st, name, "remove")?;
        if st.active.contains(name) {
            return Err(Error::occupied(
                format!("remove {name}"),
                "snapshot is active",
            ));
        }
        st.snapshots
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::missing(format!("remove {name}"), "no such snapshot"))
    }

    fn activate_volume(&self, lv: &str) -> Result<SnapshotSource> {
        let st = lock(&self.state);
        self.transcript.push(format!("activate {lv} read-write"));
        Self::check_failing(&st, lv, "activate")?;
        if !st.volumes.contains(lv) {
            return Err(Error::missing(format!("activate {lv}"), "no such volume"));
        }
        Ok(SnapshotSource::Device(Utf8PathBuf::from(format!(
            "/dev/fake/{lv}"
        ))))
    }

    fn activate(&self, name: &str) -> Result<SnapshotSource> {
        let mut st = lock(&self.state);
        self.transcript.push(format!("activate {name}"));
        Self::check_failing(&st, name, "activate")?;
        if !st.snapshots.contains_key(name) {
            return Err(Error::missing(
                format!("activate {name}"),
                "no such snapshot",
            ));
        }
        st.active.insert(name.to_owned());
        Ok(SnapshotSource::Device(Utf8PathBuf::from(format!(
            "/dev/fake/{name}"
        ))))
    }

    fn deactivate(&self, name: &str) -> Result<()> {
        let mut st = lock(&self.state);
        self.transcript.push(format!("deactivate {name}"));
        if !st.active.remove(name) {
            return Err(Error::missing(format!("deactivate {name}"), "not active"));
        }
        Ok(())
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(lock(&self.state).pool)
    }
}

// ---------------------------------------------------------------------------------------------

/// A mounter that tracks mount points in memory.
#[derive(Debug, Default)]
pub struct FakeMounter {
    mounted: Mutex<BTreeMap<Utf8PathBuf, SnapshotSource>>,
    failing: Mutex<BTreeSet<String>>,
    transcript: Transcript,
}

impl FakeMounter {
    /// A mounter with nothing mounted, logging into `transcript`.
    pub fn new(transcript: &Transcript) -> Self {
        Self {
            transcript: transcript.clone(),
            ..Self::default()
        }
    }

    /// Mount points in use now.
    pub fn mounted(&self) -> Vec<Utf8PathBuf> {
        lock(&self.mounted).keys().cloned().collect()
    }

    /// Makes mounting any source whose path contains `needle` fail.
    pub fn fail_on(&self, needle: &str) {
        lock(&self.failing).insert(needle.to_owned());
    }
}

impl Mounter for FakeMounter {
    fn mount_ro(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        let path = match source {
            SnapshotSource::Device(p) | SnapshotSource::Dir(p) => p,
        };
        self.transcript.push(format!("mount -o ro {path} {target}"));
        if lock(&self.failing)
            .iter()
            .any(|n| path.as_str().contains(n.as_str()))
        {
            return Err(Error::io(
                format!("mount {path}"),
                std::io::Error::other("injected failure"),
            ));
        }
        let mut m = lock(&self.mounted);
        if m.contains_key(target) {
            return Err(Error::occupied(
                format!("mount {path} on {target}"),
                "already a mount point",
            ));
        }
        m.insert(target.to_owned(), source.clone());
        Ok(target.to_owned())
    }

    fn mount_rw(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        let path = match source {
            SnapshotSource::Device(p) | SnapshotSource::Dir(p) => p,
        };
        self.transcript.push(format!("mount -o rw {path} {target}"));
        if lock(&self.failing)
            .iter()
            .any(|n| path.as_str().contains(n.as_str()) || target.as_str().contains(n.as_str()))
        {
            return Err(Error::io(
                format!("mount {path}"),
                std::io::Error::other("injected failure"),
            ));
        }
        lock(&self.mounted).insert(target.to_owned(), source.clone());
        Ok(target.to_owned())
    }

    fn unmount(&self, target: &Utf8Path) -> Result<()> {
        self.transcript.push(format!("umount {target}"));
        lock(&self.mounted)
            .remove(target)
            .map(|_| ())
            .ok_or_else(|| Error::missing(format!("unmount {target}"), "not mounted"))
    }
}

// ---------------------------------------------------------------------------------------------

/// A file sync that records requests and returns canned stats.
#[derive(Debug, Default)]
pub struct FakeFileSync {
    requests: Mutex<Vec<SyncRequest>>,
    failing: Mutex<BTreeSet<String>>,
    transcript: Transcript,
}

impl FakeFileSync {
    /// A sync logging into `transcript`.
    pub fn new(transcript: &Transcript) -> Self {
        Self {
            transcript: transcript.clone(),
            ..Self::default()
        }
    }

    /// Makes every transfer whose destination contains `needle` fail.
    pub fn fail_on(&self, needle: &str) {
        lock(&self.failing).insert(needle.to_owned());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SyncRequest> {
        lock(&self.requests).clone()
    }
}

impl FileSync for FakeFileSync {
    fn sync(&self, request: &SyncRequest) -> Result<SyncOutcome> {
        let link = request
            .link_dest
            .as_ref()
            .map(|l| format!(" --link-dest={l}"))
            .unwrap_or_default();
        let link = if request.checksum {
            format!(" --checksum{link}")
        } else {
            link
        };
        self.transcript.push(format!(
            "sync {}/ -> {}/{link}",
            request.source, request.dest
        ));
        lock(&self.requests).push(request.clone());
        if lock(&self.failing)
            .iter()
            .any(|n| request.dest.as_str().contains(n.as_str()))
        {
            return Err(Error::io(
                format!("sync into {}", request.dest),
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(SyncOutcome {
            stats: SyncStats {
                files: 3,
                transferred_files: 1,
                total_bytes: 300,
                transferred_bytes: 100,
                deleted_files: 0,
            },
            warnings: Vec::new(),
        })
    }
}

// ---------------------------------------------------------------------------------------------

/// A runner that answers from a script and records every command line.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    answers: Mutex<Vec<(Vec<String>, Output)>>,
    transcript: Transcript,
}

impl RecordingRunner {
    /// A runner that answers every command with success and no output, logging into `transcript`.
    pub fn new(transcript: &Transcript) -> Self {
        Self {
            answers: Mutex::default(),
            transcript: transcript.clone(),
        }
    }

    /// Answers commands whose program and first arguments are `prefix` with `output`. Later
    /// answers win over earlier ones for the same command.
    pub fn answer(&self, prefix: &[&str], output: Output) {
        lock(&self.answers).push((prefix.iter().map(|s| (*s).to_owned()).collect(), output));
    }
}

impl Runner for RecordingRunner {
    fn run(&self, invocation: &Invocation) -> Result<Output> {
        self.transcript.push(format!("$ {}", invocation.display()));
        let words: Vec<&str> = std::iter::once(invocation.program.as_str())
            .chain(invocation.args.iter().map(String::as_str))
            .collect();
        let answers = lock(&self.answers);
        let hit = answers.iter().rev().find(|(prefix, _)| {
            prefix.len() <= words.len() && prefix.iter().zip(&words).all(|(a, b)| a == b)
        });
        Ok(hit.map_or_else(|| Output::ok(""), |(_, out)| out.clone()))
    }
}

// ---------------------------------------------------------------------------------------------

/// A metrics sink that keeps what it was given.
#[derive(Debug, Default)]
pub struct FakeMetricsSink {
    groups: Mutex<Vec<MetricGroup>>,
}

impl FakeMetricsSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every group published so far.
    pub fn groups(&self) -> Vec<MetricGroup> {
        lock(&self.groups).clone()
    }

    /// The exposition text of every group, each under a `# job` line.
    pub fn text(&self) -> String {
        self.groups()
            .iter()
            .map(|g| format!("# job {}\n{}", g.job, exposition(&g.labelled_metrics())))
            .collect()
    }
}

impl MetricsSink for FakeMetricsSink {
    fn publish(&self, group: &MetricGroup) -> Result<()> {
        lock(&self.groups).push(group.clone());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ClusterState {
    claims: Vec<PvClaim>,
    workloads: BTreeMap<(String, String), Vec<Workload>>,
    pods: BTreeMap<(String, String), u32>,
    unreachable: bool,
    failing: BTreeSet<String>,
    stuck: BTreeSet<String>,
    failing_up: BTreeSet<String>,
}

/// A cluster with PVs and workloads in memory; scaling to 0 removes the pods.
#[derive(Debug, Default)]
pub struct FakeCluster {
    state: Mutex<ClusterState>,
    transcript: Transcript,
}

impl FakeCluster {
    /// A cluster with these PV claims, logging into `transcript`.
    pub fn new(claims: Vec<PvClaim>, transcript: &Transcript) -> Self {
        let fake = Self {
            state: Mutex::default(),
            transcript: transcript.clone(),
        };
        lock(&fake.state).claims = claims;
        fake
    }

    /// Adds a workload mounting `pvc`, with `replicas` pods running.
    pub fn add_workload(&self, pvc: &str, workload: Workload) {
        let mut st = lock(&self.state);
        st.pods.insert(
            (workload.namespace.clone(), workload.name.clone()),
            workload.replicas,
        );
        st.workloads
            .entry((workload.namespace.clone(), pvc.to_owned()))
            .or_default()
            .push(workload);
    }

    /// Makes the API unreachable.
    pub fn set_unreachable(&self) {
        lock(&self.state).unreachable = true;
    }

    /// Makes scaling the workload `name` up (to more than 0) fail.
    pub fn fail_scale_up_on(&self, name: &str) {
        lock(&self.state).failing_up.insert(name.to_owned());
    }

    /// Makes scaling the workload `name` down to 0 fail.
    pub fn fail_on(&self, name: &str) {
        lock(&self.state).failing.insert(name.to_owned());
    }

    /// Makes the pods of workload `name` stay after it is scaled to 0 (a stuck terminating pod).
    pub fn keep_pods(&self, name: &str) {
        lock(&self.state).stuck.insert(name.to_owned());
    }

    /// Pods of (namespace, name) running now.
    pub fn pods(&self, namespace: &str, name: &str) -> u32 {
        lock(&self.state)
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn reachable(st: &ClusterState, op: &str) -> Result<()> {
        if st.unreachable {
            // what the real adapter reports: kubectl ran and failed
            return Err(crate::CommandError::Failed {
                argv: format!("kubectl ({op})"),
                status: Some(1),
                stderr_tail: "the API server did not answer".to_owned(),
            }
            .into());
        }
        Ok(())
    }
}

impl Cluster for FakeCluster {
    fn pv_claims(&self) -> Result<Vec<PvClaim>> {
        let st = lock(&self.state);
        self.transcript.push("kubectl get pv");
        Self::reachable(&st, "list persistent volumes")?;
        Ok(st.claims.clone())
    }

    fn workloads_using(&self, namespace: &str, pvc: &str) -> Result<Vec<Workload>> {
        let st = lock(&self.state);
        self.transcript
            .push(format!("kubectl find workloads using {namespace}/{pvc}"));
        Self::reachable(&st, "list workloads")?;
        Ok(st
            .workloads
            .get(&(namespace.to_owned(), pvc.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    fn scale(&self, workload: &Workload, replicas: u32) -> Result<()> {
        let mut st = lock(&self.state);
        self.transcript.push(format!(
            "kubectl scale {}/{} -n {} --replicas={replicas}",
            workload.kind.to_lowercase(),
            workload.name,
            workload.namespace
        ));
        Self::reachable(&st, "scale")?;
        let refused = if replicas == 0 {
            &st.failing
        } else {
            &st.failing_up
        };
        if refused.contains(&workload.name) {
            return Err(Error::io(
                format!("scale {}", workload.name),
                std::io::Error::other("injected failure"),
            ));
        }
        if !(replicas == 0 && st.stuck.contains(&workload.name)) {
            st.pods.insert(
                (workload.namespace.clone(), workload.name.clone()),
                replicas,
            );
        }
        Ok(())
    }

    fn wait_pods_gone(&self, workload: &Workload, timeout_secs: u64) -> Result<()> {
        let st = lock(&self.state);
        self.transcript.push(format!(
            "wait for pods of {}/{} to be gone",
            workload.namespace, workload.name
        ));
        let left = st
            .pods
            .get(&(workload.namespace.clone(), workload.name.clone()))
            .copied()
            .unwrap_or(0);
        if left > 0 {
            return Err(Error::occupied(
                format!("wait for pods of {}", workload.name),
                format!("{left} pods still running after {timeout_secs} s"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 3, 0, 0).unwrap()
    }

    #[test]
    fn the_fake_volume_manager_behaves_like_lvm() {
        let t = Transcript::new();
        let vm = FakeVolumeManager::new(&["vm-1-pvc-a"], &t);
        assert!(
            vm.create_snapshot("vm-9-pvc-z", "s0", at()).is_err(),
            "snapshot of a missing volume"
        );
        vm.create_snapshot("vm-1-pvc-a", "s1", at()).unwrap();
        assert!(
            vm.create_snapshot("vm-1-pvc-a", "s1", at()).is_err(),
            "name reused"
        );
        vm.activate("s1").unwrap();
        assert!(vm.remove_snapshot("s1").is_err(), "removed while active");
        vm.deactivate("s1").unwrap();
        assert!(vm.deactivate("s1").is_err(), "deactivated twice");
        vm.remove_snapshot("s1").unwrap();
        assert!(vm.remove_snapshot("s1").is_err(), "removed twice");
        assert!(vm.activate("s1").is_err());
    }

    #[test]
    fn the_fake_mounter_refuses_double_mounts() {
        let t = Transcript::new();
        let m = FakeMounter::new(&t);
        let src = SnapshotSource::Device("/dev/x".into());
        m.mount_ro(&src, Utf8Path::new("/mnt/a")).unwrap();
        assert!(m.mount_ro(&src, Utf8Path::new("/mnt/a")).is_err());
        m.unmount(Utf8Path::new("/mnt/a")).unwrap();
        assert!(m.unmount(Utf8Path::new("/mnt/a")).is_err());
        assert_eq!(
            t.lines(),
            [
                "mount -o ro /dev/x /mnt/a",
                "mount -o ro /dev/x /mnt/a",
                "umount /mnt/a",
                "umount /mnt/a"
            ]
        );
    }

    #[test]
    fn the_recording_runner_answers_by_prefix() {
        let t = Transcript::new();
        let r = RecordingRunner::new(&t);
        r.answer(&["lvs"], Output::ok("all"));
        r.answer(&["lvs", "pve"], Output::failed(5, "no vg"));
        assert_eq!(
            r.run(&Invocation::new("lvs", ["pve", "-o", "x"]))
                .unwrap()
                .status,
            Some(5)
        );
        assert_eq!(
            r.run(&Invocation::new("lvs", ["other"])).unwrap().stdout,
            b"all"
        );
        assert!(r
            .run(&Invocation::new("true", Vec::<String>::new()))
            .unwrap()
            .success());
        assert_eq!(t.lines(), ["$ lvs pve -o x", "$ lvs other", "$ true"]);
    }

    #[test]
    fn the_fake_cluster_scales_pods() {
        let t = Transcript::new();
        let c = FakeCluster::new(Vec::new(), &t);
        let w = Workload {
            kind: "Deployment".into(),
            namespace: "vw".into(),
            name: "vaultwarden".into(),
            replicas: 1,
            selector: "app=vaultwarden".into(),
        };
        c.add_workload("data", w.clone());
        assert!(c.wait_pods_gone(&w, 5).is_err());
        c.scale(&w, 0).unwrap();
        c.wait_pods_gone(&w, 5).unwrap();
        c.set_unreachable();
        assert!(c.pv_claims().is_err());
    }
}

// ---------------------------------------------------------------------------------------------

/// A backup root in memory: versions with their markers, written files, and which folders are
/// empty. It enforces what the disk does: a version must exist to be removed, and removals can
/// be made to fail.
#[derive(Debug)]
pub struct FakeStore {
    root: crate::layout::BackupRoot,
    versions: Mutex<BTreeMap<VersionKey, Option<DateTime<Utc>>>>,
    empty: Mutex<BTreeSet<Utf8PathBuf>>,
    databases: Mutex<BTreeMap<Utf8PathBuf, Vec<crate::store::DatabaseCopy>>>,
    files: Mutex<BTreeMap<Utf8PathBuf, Vec<u8>>>,
    failing: Mutex<BTreeSet<String>>,
    transcript: Transcript,
}

/// (series, week, namespace, pvc).
type VersionKey = (u8, crate::week::IsoWeek, String, String);

fn series_key(series: crate::store::Series) -> u8 {
    match series {
        crate::store::Series::Pvc => 0,
        crate::store::Series::PveConfig => 1,
        crate::store::Series::Pfsense => 2,
    }
}

impl FakeStore {
    /// An empty backup root at `root`, logging into `transcript`.
    pub fn new(root: &Utf8Path, transcript: &Transcript) -> Self {
        Self {
            root: crate::layout::BackupRoot::new(root),
            versions: Mutex::default(),
            empty: Mutex::default(),
            databases: Mutex::default(),
            files: Mutex::default(),
            failing: Mutex::default(),
            transcript: transcript.clone(),
        }
    }

    /// Puts a version there (complete when `completed_at` is set).
    pub fn add_version(
        &self,
        series: crate::store::Series,
        week: crate::week::IsoWeek,
        namespace: &str,
        pvc: &str,
        completed_at: Option<DateTime<Utc>>,
    ) {
        lock(&self.versions).insert(
            (
                series_key(series),
                week,
                namespace.to_owned(),
                pvc.to_owned(),
            ),
            completed_at,
        );
    }

    /// Makes `dir` read as empty (a failed mount, a wiped PVC).
    pub fn set_empty(&self, dir: &Utf8Path) {
        lock(&self.empty).insert(dir.to_owned());
    }

    /// The databases `copy_databases` finds under `source`.
    pub fn set_databases(&self, source: &Utf8Path, found: Vec<crate::store::DatabaseCopy>) {
        lock(&self.databases).insert(source.to_owned(), found);
    }

    /// Makes every removal or write whose description contains `needle` fail.
    pub fn fail_on(&self, needle: &str) {
        lock(&self.failing).insert(needle.to_owned());
    }

    /// The files written so far.
    pub fn files(&self) -> BTreeMap<Utf8PathBuf, Vec<u8>> {
        lock(&self.files).clone()
    }

    fn check(&self, what: &str) -> Result<()> {
        if lock(&self.failing)
            .iter()
            .any(|n| what.contains(n.as_str()))
        {
            return Err(Error::io(
                what.to_owned(),
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(())
    }
}

impl crate::store::BackupStore for FakeStore {
    fn root(&self) -> &crate::layout::BackupRoot {
        &self.root
    }

    fn list_versions(
        &self,
        series: crate::store::Series,
    ) -> Result<Vec<crate::retention::WeekVersion>> {
        Ok(lock(&self.versions)
            .iter()
            .filter(|((s, ..), _)| *s == series_key(series))
            .map(|((_, week, ns, pvc), at)| crate::retention::WeekVersion {
                namespace: ns.clone(),
                pvc: pvc.clone(),
                week: *week,
                completed_at: *at,
            })
            .collect())
    }

    fn mark_complete(
        &self,
        series: crate::store::Series,
        week: crate::week::IsoWeek,
        namespace: &str,
        pvc: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let what = format!("mark complete {series:?} {week} {namespace}/{pvc}");
        self.check(&what)?;
        self.transcript.push(what);
        self.add_version(series, week, namespace, pvc, Some(at));
        Ok(())
    }

    fn mark_incomplete(
        &self,
        series: crate::store::Series,
        week: crate::week::IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> Result<()> {
        self.add_version(series, week, namespace, pvc, None);
        Ok(())
    }

    fn remove_version(
        &self,
        series: crate::store::Series,
        v: &crate::retention::WeekVersion,
    ) -> Result<()> {
        let what = format!(
            "remove version {series:?} {} {}/{}",
            v.week, v.namespace, v.pvc
        );
        self.check(&what)?;
        let key = (
            series_key(series),
            v.week,
            v.namespace.clone(),
            v.pvc.clone(),
        );
        if lock(&self.versions).remove(&key).is_none() {
            return Err(Error::missing(what, "no such version"));
        }
        self.transcript.push(what);
        Ok(())
    }

    fn staging_tree(
        &self,
        week: crate::week::IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> Result<Utf8PathBuf> {
        Ok(self
            .root
            .pvc_staging(crate::layout::StagingPart::Tree, week, namespace, pvc))
    }

    fn commit_version(
        &self,
        week: crate::week::IsoWeek,
        namespace: &str,
        pvc: &str,
        record: &[u8],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let what = format!("commit Pvc {week} {namespace}/{pvc}");
        self.check(&what)?;
        self.transcript
            .push(format!("{what} (record {} bytes)", record.len()));
        lock(&self.files).insert(self.root.pvc_record(week, namespace, pvc), record.to_vec());
        self.add_version(crate::store::Series::Pvc, week, namespace, pvc, Some(at));
        Ok(())
    }

    fn recover_version(
        &self,
        _week: crate::week::IsoWeek,
        _namespace: &str,
        _pvc: &str,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    fn read(&self, file: crate::store::StoreFile<'_>) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.files).get(&file.path(&self.root)).cloned())
    }

    fn write(&self, file: crate::store::StoreFile<'_>, bytes: &[u8]) -> Result<()> {
        let path = file.path(&self.root);
        let what = format!("write {path}");
        self.check(&what)?;
        self.transcript
            .push(format!("{what} ({} bytes)", bytes.len()));
        lock(&self.files).insert(path, bytes.to_vec());
        Ok(())
    }

    fn disk_usage_percent(&self) -> Option<f64> {
        Some(42.0)
    }
}

/// The fake's stages write to the same transcript as its storage verbs.
impl crate::store::CopyStages for FakeStore {
    fn has_entries(&self, dir: &Utf8Path) -> Result<bool> {
        Ok(!lock(&self.empty).contains(dir))
    }

    fn prepare_copy(&self, _source: &Utf8Path, dest: &Utf8Path) -> Result<()> {
        let what = format!("prepare {dest}");
        self.check(&what)?;
        lock(&self.empty).remove(dest);
        Ok(())
    }

    fn copy_databases(
        &self,
        source: &Utf8Path,
        _found: Option<&crate::Discovery>,
        dest: &Utf8Path,
        _previous: Option<&Utf8Path>,
    ) -> Vec<crate::store::DatabaseCopy> {
        let found = lock(&self.databases)
            .get(source)
            .cloned()
            .unwrap_or_default();
        for db in &found {
            self.transcript.push(format!(
                "copy database {source}/{} -> {dest}/{}",
                db.path, db.path
            ));
        }
        found
    }
}

pub use crate::record::file_entry;
