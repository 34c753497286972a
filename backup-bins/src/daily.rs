//! `daily-backup`: every selected volume's newest snapshot, mounted read-only, copied into this
//! ISO week's folder with `--link-dest`; the PVE config; pruning; metrics.
//!
//! Planning and doing are separate: [`plan_daily`] decides everything from what it lists (no
//! change anywhere), `--dry-run` prints that plan, and [`run_daily`] carries it out.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use backup_core::{
    plan_link_dest, plan_snapshots, plan_versions, select_volumes, snapshot_name, BackupRoot,
    Config, Decision, FileSync, IsoWeek, Metric, MetricGroup, MetricsSink, Mounter, PvClaim,
    Runner, SelectedVolume, SnapshotInfo, SourceKind, SyncRequest, SyncStats, VolumeManager,
    WeekVersion,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::linkguard::unshare_changed;
use crate::mounts::mount_point_options;
use backup_sqlite::{copy_database, find_databases};

use crate::pfsense::{backup_pfsense, CONFIG_XML, FULL_TAR};
use crate::store::{has_entries, mark_complete, mark_incomplete, remove_version, scan_versions};

/// The job name: Pushgateway job and textfile name.
pub const JOB: &str = "daily-backup";

/// The outside world of a run.
pub struct DailyDeps<'a> {
    /// Snapshots.
    pub volumes: &'a dyn VolumeManager,
    /// Read-only mounts.
    pub mounter: &'a dyn Mounter,
    /// rsync.
    pub sync: &'a dyn FileSync,
    /// Metrics.
    pub metrics: &'a dyn MetricsSink,
    /// Other commands (curl and ssh for pfSense).
    pub runner: &'a dyn Runner,
    /// PV → PVC resolution (API answer or cache, then the static map).
    pub claims: &'a [PvClaim],
    /// Set by SIGTERM/SIGINT: start nothing new.
    pub stop: &'a AtomicBool,
}

/// Which snapshot a volume is copied from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum SnapshotChoice {
    /// The newest snapshot, young enough.
    Use {
        /// Its name.
        name: String,
        /// When it was taken.
        created: DateTime<Utc>,
    },
    /// No snapshot young enough: take one now.
    Take {
        /// The name it will have.
        name: String,
        /// Why.
        reason: String,
    },
}

impl SnapshotChoice {
    fn name(&self) -> &str {
        match self {
            SnapshotChoice::Use { name, .. } | SnapshotChoice::Take { name, .. } => name,
        }
    }
}

/// What will happen to one volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumePlan {
    /// The volume and its (namespace, pvc).
    #[serde(flatten)]
    pub volume: SelectedVolume,
    /// The snapshot to copy from.
    pub snapshot: SnapshotChoice,
    /// Where the copy goes.
    pub dest: Utf8PathBuf,
    /// The earlier complete week it hardlinks against.
    pub link_week: Option<IsoWeek>,
    /// Why it cannot be backed up, when it cannot (two LVs claiming one PVC, a name that cannot
    /// be a folder).
    pub refused: Option<String>,
    /// `--allow-empty NS/PVC`: an empty source replaces this volume's copy in this run.
    pub allow_empty: bool,
}

/// The whole plan of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DailyPlan {
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// This run's week folder.
    pub week: IsoWeek,
    /// The backup root.
    pub backup_root: Utf8PathBuf,
    /// Volumes to copy.
    pub volumes: Vec<VolumePlan>,
    /// Volumes skipped: excluded namespace.
    pub excluded: Vec<SelectedVolume>,
    /// PVE config paths and where each goes (in `pve-config/<week>/`).
    pub pve_config: Vec<(Utf8PathBuf, Utf8PathBuf)>,
    /// The earlier complete PVE config week the copy hardlinks against.
    pub pve_config_link: Option<IsoWeek>,
    /// The pfSense copy: where from, where to.
    pub pfsense: Option<String>,
}

/// Plans a run: selection, snapshot choice, destinations and link-dest. Changes nothing.
/// `allow_empty` holds `namespace/pvc` names whose empty source is accepted in this run.
///
/// # Errors
/// When volumes, snapshots or the backup root cannot be listed; when no volume matches
/// `lv-pattern`; when the clock is behind what the backup root already holds; when an
/// `allow_empty` name is no selected volume.
pub fn plan_daily(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    now: DateTime<Utc>,
    allow_empty: &[String],
) -> Result<DailyPlan> {
    let root = BackupRoot::new(&cfg.backup_root);
    let week = IsoWeek::from_date(now.date_naive());
    let names: Vec<String> = deps
        .volumes
        .list_volumes()?
        .into_iter()
        .map(|v| v.name)
        .collect();
    let selection = select_volumes(
        &names,
        &cfg.snapshots.lv_pattern,
        deps.claims,
        &cfg.snapshots.exclude_namespaces,
    );
    require_matches(cfg, &selection, names.len())?;
    let snapshots = deps.volumes.list_snapshots()?;
    let versions = scan_versions(&root)?;
    let pve_versions = scan_pve_config_weeks(&root)?;
    require_clock_ahead(now, week, versions.iter().chain(&pve_versions))?;
    for name in allow_empty {
        if !selection
            .selected
            .iter()
            .any(|v| format!("{}/{}", v.namespace, v.pvc) == *name)
        {
            return Err(Error::Usage(format!(
                "--allow-empty {name}: no selected volume is {name} (expected NAMESPACE/PVC as \
                 the output names it)"
            )));
        }
    }
    let refused = selection
        .refused
        .iter()
        .map(|r| (r.volume.clone(), Some(r.reason.clone())));
    let max_age = Duration::hours(i64::from(cfg.pvc_backup.max_snapshot_age_hours));
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let volumes = selection
        .selected
        .into_iter()
        .map(|v| (v, None))
        .chain(refused)
        .map(|(volume, name_refused)| {
            let newest = snapshots
                .iter()
                .filter(|s| s.volume == volume.lv && s.created <= now)
                .max_by_key(|s| s.created);
            let snapshot = match newest {
                Some(s) if now - s.created <= max_age => SnapshotChoice::Use { name: s.name.clone(), created: s.created },
                Some(s) => SnapshotChoice::Take {
                    name: snapshot_name(&volume.lv, now),
                    reason: format!(
                        "newest snapshot {} is {} h old (max-snapshot-age-hours = {})",
                        s.name,
                        (now - s.created).num_hours(),
                        cfg.pvc_backup.max_snapshot_age_hours
                    ),
                },
                None => SnapshotChoice::Take { name: snapshot_name(&volume.lv, now), reason: "no snapshot yet".to_owned() },
            };
            let refused = name_refused.or_else(|| seen
                .iter()
                .find(|(_, ns, pvc)| *ns == volume.namespace && *pvc == volume.pvc)
                .map(|(lv, ns, pvc)| format!("{lv} is also {ns}/{pvc}: two volumes cannot share one copy; fix the PV map")));
            seen.push((volume.lv.clone(), volume.namespace.clone(), volume.pvc.clone()));
            let allow_empty = allow_empty.contains(&format!("{}/{}", volume.namespace, volume.pvc));
            VolumePlan {
                allow_empty,
                dest: root.pvc_copy(week, &volume.namespace, &volume.pvc),
                link_week: plan_link_dest(&versions, &volume.namespace, &volume.pvc, week).map(|v| v.week),
                snapshot,
                refused,
                volume,
            }
        })
        .collect();
    let pve_config = cfg
        .pve_config
        .paths
        .iter()
        .map(|p| {
            (
                p.clone(),
                root.pve_config_week(week)
                    .join(p.as_str().trim_start_matches('/')),
            )
        })
        .collect();
    let pve_config_link =
        plan_link_dest(&pve_versions, PVE_CONFIG, PVE_CONFIG, week).map(|v| v.week);
    Ok(DailyPlan {
        now,
        week,
        backup_root: cfg.backup_root.clone(),
        volumes,
        excluded: selection.excluded,
        pve_config,
        pve_config_link,
        pfsense: cfg.pfsense.as_ref().map(|p| {
            format!(
                "{} and ssh {}@{}:{} tar of {} -> {}",
                p.api_url,
                p.ssh_user,
                p.ssh_host,
                p.ssh_port,
                p.tar_paths.join(" "),
                root.pfsense_week(week)
            )
        }),
    })
}

/// Nothing to back up is not success: a typo in `lv-pattern`, the wrong volume group or an empty
/// volumes folder would otherwise report "0 of 0 volumes ok" every night. Volumes that all sit
/// in excluded namespaces are fine (the report says so).
///
/// # Errors
/// [`Error::Refused`] naming the pattern, where volumes were listed and how many were seen.
pub fn require_matches(
    cfg: &Config,
    selection: &backup_core::Selection,
    listed: usize,
) -> Result<()> {
    if selection.matched() > 0 {
        return Ok(());
    }
    let mut seen: Vec<&str> = selection
        .not_matching
        .iter()
        .map(String::as_str)
        .take(5)
        .collect();
    if selection.not_matching.len() > 5 {
        seen.push("...");
    }
    Err(Error::Refused(format!(
        "no volume matches lv-pattern `{}` in {}: {listed} volumes there{}{} (`snapshots.lv-pattern` in {})",
        cfg.snapshots.lv_pattern.as_str(),
        cfg.snapshots.backend.volume_source(),
        if seen.is_empty() { "" } else { ": " },
        seen.join(", "),
        cfg.file,
    )))
}

/// A clock that went backwards (an RTC reset, an NTP step at boot) must not write into an older
/// week (whose copy the run's own prune then deletes) or rewrite a finished week with later
/// data: the run refuses, and says what the clock says and what is newer.
///
/// # Errors
/// [`Error::Refused`] when `week` is older than the newest complete version, or `now` is earlier
/// than the newest completion marker.
fn require_clock_ahead<'a>(
    now: DateTime<Utc>,
    week: IsoWeek,
    versions: impl Iterator<Item = &'a WeekVersion>,
) -> Result<()> {
    let complete: Vec<&WeekVersion> = versions.filter(|v| v.is_complete()).collect();
    let newest_week = complete.iter().max_by_key(|v| v.week);
    let newest_mark = complete.iter().max_by_key(|v| v.completed_at);
    let why = match (newest_week, newest_mark) {
        (Some(v), _) if v.week > week => format!(
            "this run's week {week} is older than week {} of {}/{}, already complete",
            v.week, v.namespace, v.pvc
        ),
        (_, Some(v)) if v.completed_at.is_some_and(|t| t > now) => format!(
            "{}/{} of week {} was completed at {}, later than now",
            v.namespace,
            v.pvc,
            v.week,
            v.completed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
        _ => return Ok(()),
    };
    Err(Error::Refused(format!(
        "the clock says {} (week {week}), but {why}: refusing to write or prune anything. Is the \
         clock wrong (RTC reset, NTP step)? Check `timedatectl`; `--now` replays a day on purpose",
        now.to_rfc3339()
    )))
}

/// Namespace and name of the PVE config in version listings.
const PVE_CONFIG: &str = "pve-config";

/// PVE config week folders, complete when their marker is there.
fn scan_pve_config_weeks(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for name in crate::store::subdirs(&root.pve_config())? {
        let Ok(week) = name.parse::<IsoWeek>() else {
            continue; // the single mirror of earlier releases (`pve-config/etc/...`) stays
        };
        let completed_at = std::fs::read_to_string(root.pve_config_marker(week))
            .ok()
            .and_then(|t| backup_core::parse_marker(&t));
        out.push(WeekVersion {
            namespace: PVE_CONFIG.to_owned(),
            pvc: PVE_CONFIG.to_owned(),
            week,
            completed_at,
        });
    }
    Ok(out)
}

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
    pub sqlite: Vec<SqliteResult>,
    /// Wall time.
    pub seconds: f64,
}

/// One SQLite database found in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SqliteResult {
    /// Its path inside the volume (lossy for names that are not UTF-8).
    pub path: String,
    /// Bytes of the stored copy.
    pub bytes: Option<u64>,
    /// Why it was not stored (not a usable database, failed integrity check).
    pub error: Option<String>,
}

/// The result of one other item (a PVE config path, a removal).
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// What it was.
    pub item: String,
    /// How it ended.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
}

/// What pruning did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Versions removed (`<week> <namespace>/<pvc>`).
    pub removed_versions: Vec<String>,
    /// Snapshots removed.
    pub removed_snapshots: Vec<String>,
    /// Removals that failed.
    pub errors: Vec<String>,
}

/// Everything a run did.
#[derive(Debug, Clone, Serialize)]
pub struct DailyReport {
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
    /// Warnings about the run as a whole (metrics not published, unresolved volumes).
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// The exit code.
    pub exit: Exit,
}

impl DailyReport {
    /// SQLite databases that could not be copied, as (volume, database).
    pub fn sqlite_failures(&self) -> impl Iterator<Item = (&VolumeResult, &SqliteResult)> {
        self.volumes.iter().flat_map(|v| {
            v.sqlite
                .iter()
                .filter(|s| s.error.is_some())
                .map(move |s| (v, s))
        })
    }

    /// (ok, failed) counts over volumes, SQLite copies, PVE config and pfSense items.
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
            if s == Status::Ok {
                (ok + 1, bad)
            } else {
                (ok, bad + 1)
            }
        })
    }
}

/// Runs the plan: volumes (`parallel` at a time), PVE config, pruning, metrics. Calls `progress`
/// as each volume finishes. One volume failing never stops the others.
///
/// # Errors
/// Only when the run cannot start at all; per-item failures are in the report.
pub fn run_daily(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    progress: &(dyn Fn(&VolumeResult) + Sync),
) -> Result<DailyReport> {
    let started = Instant::now();
    let root = BackupRoot::new(&cfg.backup_root);
    let mount_root = mount_root(cfg)?;

    let n = plan.volumes.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<VolumeResult>>> = Mutex::new(vec![None; n]);
    let workers = (cfg.pvc_backup.parallel as usize).clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(vp) = plan.volumes.get(i) else { break };
                let r = if deps.stop.load(Ordering::SeqCst) {
                    volume_result(
                        vp,
                        Status::Skipped,
                        Some("the run was interrupted before this volume".to_owned()),
                    )
                } else {
                    backup_volume(cfg, deps, &root, &mount_root, plan, vp)
                };
                progress(&r);
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    let volumes: Vec<VolumeResult> = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect();

    let pve_config = copy_pve_config(deps, &root, plan);

    let pfsense = cfg.pfsense.as_ref().map(|pf| {
        let result = backup_pfsense(pf, deps.runner, &root, plan.week);
        ItemResult {
            item: match &result {
                Ok(r) => format!(
                    "{}/{{{CONFIG_XML} {}, {FULL_TAR} {}}}",
                    root.pfsense_week(plan.week),
                    crate::report::bytes(r.config_bytes as u64),
                    crate::report::bytes(r.tar_bytes as u64)
                ),
                Err(_) => format!("{} from {}", root.pfsense_week(plan.week), pf.ssh_host),
            },
            status: if result.is_ok() {
                Status::Ok
            } else {
                Status::Failed
            },
            error: result.err().map(|e| e.to_string()),
        }
    });

    let mut warnings = Vec::new();
    let prune = if deps.stop.load(Ordering::SeqCst) {
        warnings.push("interrupted: pruning skipped".to_owned());
        PruneReport::default()
    } else {
        prune(cfg, deps, &root, plan.now)?
    };

    let mut report = DailyReport {
        week: plan.week,
        backup_root: cfg.backup_root.clone(),
        volumes,
        excluded: plan.excluded.clone(),
        pve_config,
        pfsense,
        prune,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
        exit: Exit::Success,
    };
    let (ok, failed) = report.counts();
    report.exit = if deps.stop.load(Ordering::SeqCst) {
        Exit::Failed
    } else {
        Exit::from_counts(ok, failed)
    };
    if let Err(e) = publish_metrics(cfg, deps.metrics, &report, plan.now) {
        report.warnings.push(format!("metrics not published: {e}"));
    }
    Ok(report)
}

fn volume_result(vp: &VolumePlan, status: Status, error: Option<String>) -> VolumeResult {
    VolumeResult {
        lv: vp.volume.lv.clone(),
        namespace: vp.volume.namespace.clone(),
        pvc: vp.volume.pvc.clone(),
        status,
        error,
        snapshot: vp.snapshot.name().to_owned(),
        link_week: vp.link_week,
        stats: None,
        warnings: Vec::new(),
        sqlite: Vec::new(),
        seconds: 0.0,
    }
}

/// `mount-dir`, created when missing, as its canonical path: mountinfo shows canonical paths,
/// so a mount-dir through a symlink (`/var/run` on Debian) or with `//` would never be found
/// mounted, and every run would stack another mount.
///
/// # Errors
/// When it cannot be created or resolved; the error names the key.
pub fn mount_root(cfg: &Config) -> Result<Utf8PathBuf> {
    let dir = &cfg.pvc_backup.mount_dir;
    let key = |action: &str, e: std::io::Error| {
        Error::Refused(format!(
            "{action} `{dir}` (`pvc-backup.mount-dir` in {}): {e}",
            cfg.file
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| key("create the mount folder", e))?;
    let canonical = dir
        .canonicalize_utf8()
        .map_err(|e| key("resolve the mount folder", e))?;
    Ok(canonical)
}

/// Makes `mount_root/<lv>` a mount point: creates it when missing, and refuses anything that is
/// not a real folder. A symlink there (`<lv> -> /etc`) would mount the snapshot over its target.
///
/// # Errors
/// [`Error::Refused`] for a symlink or a file; I/O errors naming the path.
fn mount_point(mount_root: &Utf8Path, lv: &str) -> Result<Utf8PathBuf> {
    backup_core::check_folder_name(lv).map_err(Error::Refused)?;
    let target = mount_root.join(lv);
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(m) => {
            return Err(Error::Refused(format!(
                "mount point {target} is {}, not a folder: refusing to mount there (remove it)",
                if m.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "a file"
                }
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&target)
                .map_err(|e| Error::io("create the mount point", &target, e))?;
        }
        Err(e) => return Err(Error::io("stat the mount point", &target, e)),
    }
    Ok(target)
}

fn backup_volume(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    root: &BackupRoot,
    mount_root: &Utf8Path,
    plan: &DailyPlan,
    vp: &VolumePlan,
) -> VolumeResult {
    let started = Instant::now();
    let mut r = volume_result(vp, Status::Ok, None);
    let outcome = match &vp.refused {
        Some(why) => Err(Error::Refused(why.clone())),
        None => copy_volume(cfg, deps, root, mount_root, plan, vp),
    };
    match outcome {
        Ok(copied) => {
            r.stats = Some(copied.stats);
            r.warnings = copied.warnings;
            r.sqlite = copied.sqlite;
        }
        Err(e) => {
            r.status = Status::Failed;
            r.error = Some(e.to_string());
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// What copying one mounted snapshot produced.
struct Copied {
    stats: SyncStats,
    warnings: Vec<String>,
    sqlite: Vec<SqliteResult>,
}

fn copy_volume(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    root: &BackupRoot,
    mount_root: &Utf8Path,
    plan: &DailyPlan,
    vp: &VolumePlan,
) -> Result<Copied> {
    let v = &vp.volume;
    let mut warnings = Vec::new();
    if let SnapshotChoice::Take { name, reason } = &vp.snapshot {
        // the same guard as lvm-pvc-snapshot: a full thin pool turns every volume read-only
        if let Some(pool) = deps.volumes.pool_usage()? {
            if pool.free_percent() < cfg.snapshots.min_pool_free_percent {
                return Err(Error::Refused(format!(
                    "{reason}, and the thin pool has {:.1}% free (below min-pool-free-percent = {}): \
                     no fresh snapshot taken, and stale data is not copied as this week's",
                    pool.free_percent(),
                    cfg.snapshots.min_pool_free_percent
                )));
            }
        }
        deps.volumes.create_snapshot(&v.lv, name, plan.now)?;
        warnings.push(format!("took snapshot {name}: {reason}"));
    }
    let snap = vp.snapshot.name();
    let source = deps.volumes.activate(snap)?;
    let copied = (|| -> Result<Copied> {
        let target = mount_point(mount_root, &v.lv)?;
        if mount_point_options(&target)?.is_some() {
            // we hold the run lock: a mount here was left by a run that was killed
            deps.mounter.unmount(&target)?;
            warnings.push(format!(
                "unmounted {target}, left mounted by an interrupted run"
            ));
        }
        // checked again right before mounting: nothing may have put a symlink there since
        let target = mount_point(mount_root, &v.lv)?;
        let read_root = deps.mounter.mount_ro(&source, &target)?;
        let copied = copy_mounted(deps, root, plan, vp, &read_root);
        let unmounted = deps.mounter.unmount(&target).map_err(Error::from);
        let copied = copied?;
        unmounted?;
        Ok(copied)
    })();
    let deactivated = deps.volumes.deactivate(snap).map_err(Error::from);
    let mut copied = copied?;
    deactivated?;
    // complete only once the copy, the unmount and the deactivation all succeeded
    mark_complete(root, plan.week, &v.namespace, &v.pvc, plan.now)?;
    warnings.append(&mut copied.warnings);
    copied.warnings = warnings;
    Ok(copied)
}

fn copy_mounted(
    deps: &DailyDeps<'_>,
    root: &BackupRoot,
    plan: &DailyPlan,
    vp: &VolumePlan,
    read_root: &Utf8Path,
) -> Result<Copied> {
    let v = &vp.volume;
    if !read_root.is_dir() {
        return Err(Error::Refused(format!(
            "snapshot mounted at {read_root} is not a readable folder"
        )));
    }
    let link_dest = vp.link_week.map(|w| root.pvc_copy(w, &v.namespace, &v.pvc));
    let mut warnings = Vec::new();
    if !has_entries(read_root)? && vp.allow_empty {
        warnings.push(format!(
            "source {read_root} is empty: accepted by --allow-empty {}/{}, the copy of this week \
             is emptied",
            v.namespace, v.pvc
        ));
    } else if !has_entries(read_root)? {
        // An empty source with `rsync --delete` empties the copy and exits 0. A failed mount or a
        // wiped PVC must not replace the backup: refuse when the last copy had files.
        for earlier in [Some(vp.dest.clone()), link_dest.clone()]
            .into_iter()
            .flatten()
        {
            if earlier.is_dir() && has_entries(&earlier)? {
                return Err(Error::Refused(format!(
                    "source {read_root} is empty but the last copy {earlier} has files: refusing to replace \
                     the backup with nothing (failed mount or wiped PVC?); the copy is kept. If the PVC \
                     was emptied on purpose, run once with --allow-empty {}/{}",
                    v.namespace, v.pvc
                )));
            }
        }
    }
    // the week folder is rewritten from here on: it is not a complete version until it is done
    mark_incomplete(root, plan.week, &v.namespace, &v.pvc)?;
    if vp.dest.is_dir() {
        // a later run of this week: rsync would chmod/chown shared inodes of older weeks in place
        unshare_changed(read_root.as_std_path(), vp.dest.as_std_path())?;
    }
    std::fs::create_dir_all(&vp.dest).map_err(|e| Error::io("create folder", &vp.dest, e))?;
    let outcome = deps.sync.sync(&SyncRequest {
        source: read_root.to_owned(),
        dest: vp.dest.clone(),
        link_dest,
        source_kind: SourceKind::Snapshot,
    })?;
    let sqlite = copy_sqlite(root, plan.week, v, read_root);
    warnings.extend(outcome.warnings);
    Ok(Copied {
        stats: outcome.stats,
        warnings,
        sqlite,
    })
}

/// Every SQLite database in the mounted snapshot, copied WAL-correctly into
/// `sqlite-backup/<week>/<namespace>/<pvc>/<path inside the volume>`. A broken one is reported
/// and stored nowhere; the others still go.
fn copy_sqlite(
    root: &BackupRoot,
    week: IsoWeek,
    v: &SelectedVolume,
    read_root: &Utf8Path,
) -> Vec<SqliteResult> {
    let found = find_databases(read_root.as_std_path());
    let dest_root = root.sqlite_copy(week, &v.namespace, &v.pvc);
    // a run killed mid-copy leaves its scratch behind; we hold the lock, so none is in use
    remove_sqlite_scratch(dest_root.as_std_path());
    let mut out: Vec<SqliteResult> = found
        .databases
        .iter()
        .map(|rel| {
            let result = copy_database(
                &read_root.as_std_path().join(rel),
                &dest_root.as_std_path().join(rel),
            );
            SqliteResult {
                path: rel.to_string_lossy().into_owned(),
                bytes: result.as_ref().ok().map(|r| r.bytes),
                error: result.err().map(|e| e.to_string()),
            }
        })
        .collect();
    out.extend(found.damaged.into_iter().map(|(path, why)| SqliteResult {
        path: path.to_string_lossy().into_owned(),
        bytes: None,
        error: Some(format!("not a usable database: {why}")),
    }));
    out.extend(
        found
            .unreadable
            .into_iter()
            .map(|(path, why)| SqliteResult {
                path: path.to_string_lossy().into_owned(),
                bytes: None,
                error: Some(format!(
                    "could not be read while looking for databases: {why}"
                )),
            }),
    );
    out
}

/// The PVE config paths into `pve-config/<week>/`, hardlinked against the newest complete
/// earlier week, so a VM config deleted by mistake is still in last week's version. The week is
/// marked complete when every path was copied.
fn copy_pve_config(deps: &DailyDeps<'_>, root: &BackupRoot, plan: &DailyPlan) -> Vec<ItemResult> {
    if plan.pve_config.is_empty() {
        return Vec::new();
    }
    let marker = root.pve_config_marker(plan.week);
    if let Err(e) = crate::store::remove_file_if_present(&marker) {
        return vec![ItemResult {
            item: format!("{}", root.pve_config_week(plan.week)),
            status: Status::Failed,
            error: Some(e.to_string()),
        }];
    }
    let link_week = plan.pve_config_link.map(|w| root.pve_config_week(w));
    let items: Vec<ItemResult> = plan
        .pve_config
        .iter()
        .map(|(src, dest)| {
            let link = link_week
                .as_ref()
                .map(|w| w.join(src.as_str().trim_start_matches('/')))
                .filter(|l| l.is_dir());
            copy_pve_path(deps, src, dest, link)
        })
        .collect();
    if items.iter().all(|i| i.status == Status::Ok) {
        if let Err(e) =
            crate::store::write_atomic(&marker, backup_core::format_marker(plan.now).as_bytes())
        {
            return vec![ItemResult {
                item: marker.to_string(),
                status: Status::Failed,
                error: Some(e.to_string()),
            }];
        }
    }
    items
}

fn copy_pve_path(
    deps: &DailyDeps<'_>,
    src: &Utf8Path,
    dest: &Utf8Path,
    link_dest: Option<Utf8PathBuf>,
) -> ItemResult {
    let result = (|| -> Result<()> {
        if !src.is_dir() {
            return Err(Error::Refused(format!("{src} is not a folder")));
        }
        if dest.is_dir() {
            // a later run of this week: never chmod an inode shared with an older week
            unshare_changed(src.as_std_path(), dest.as_std_path())?;
        }
        std::fs::create_dir_all(dest).map_err(|e| Error::io("create folder", dest, e))?;
        deps.sync.sync(&SyncRequest {
            source: src.to_owned(),
            dest: dest.to_owned(),
            link_dest,
            source_kind: SourceKind::Live,
        })?;
        Ok(())
    })();
    ItemResult {
        item: format!("{src} -> {dest}"),
        status: if result.is_ok() {
            Status::Ok
        } else {
            Status::Failed
        },
        error: result.err().map(|e| e.to_string()),
    }
}

/// The prune plan: weekly versions and snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    /// Weekly versions.
    pub versions: Vec<Decision<WeekVersion>>,
    /// Snapshots.
    pub snapshots: Vec<Decision<SnapshotInfo>>,
    /// pfSense week folders (namespace `pfsense`).
    pub pfsense: Vec<Decision<WeekVersion>>,
    /// PVE config week folders (namespace `pve-config`).
    pub pve_config: Vec<Decision<WeekVersion>>,
}

/// Plans pruning from what is on disk now.
///
/// # Errors
/// When the backup root or the snapshots cannot be listed.
pub fn plan_prune(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    now: DateTime<Utc>,
) -> Result<PrunePlan> {
    let root = BackupRoot::new(&cfg.backup_root);
    Ok(PrunePlan {
        versions: plan_versions(&cfg.pvc_backup.policy, now, &scan_versions(&root)?)?,
        snapshots: plan_snapshots(cfg.snapshots.retention, now, &volumes.list_snapshots()?)?,
        pfsense: plan_versions(&cfg.pvc_backup.policy, now, &scan_pfsense_weeks(&root)?)?,
        pve_config: plan_versions(&cfg.pvc_backup.policy, now, &scan_pve_config_weeks(&root)?)?,
    })
}

/// Removes `.sqlite-recover-*` folders and `.sqlite-copy-*` files under `dir` (never anything else).
fn remove_sqlite_scratch(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if name.starts_with(b".sqlite-recover-") && is_dir {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if name.starts_with(b".sqlite-copy-") && !is_dir {
            let _ = std::fs::remove_file(entry.path());
        } else if is_dir {
            remove_sqlite_scratch(&entry.path());
        }
    }
}

/// pfSense week folders: complete when both files are there, as of `config.xml`'s mtime.
fn scan_pfsense_weeks(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for name in crate::store::subdirs(&root.pfsense())? {
        let Ok(week) = name.parse::<IsoWeek>() else {
            continue;
        };
        let dir = root.pfsense_week(week);
        let completed_at = match (
            std::fs::metadata(dir.join(CONFIG_XML)),
            dir.join(FULL_TAR).is_file(),
        ) {
            (Ok(m), true) => m.modified().ok().map(DateTime::<Utc>::from),
            _ => None,
        };
        out.push(WeekVersion {
            namespace: "pfsense".to_owned(),
            pvc: "pfsense".to_owned(),
            week,
            completed_at,
        });
    }
    Ok(out)
}

fn prune(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    root: &BackupRoot,
    now: DateTime<Utc>,
) -> Result<PruneReport> {
    let plan = plan_prune(cfg, deps.volumes, now)?;
    let mut report = PruneReport::default();
    // never what this run wrote: a week at or after the run's own is not pruned by it, whatever
    // the policy says (the clock rule refuses such runs first; this holds even without it)
    let this_week = IsoWeek::from_date(now.date_naive());
    for v in backup_core::removals(&plan.versions).filter(|v| v.week < this_week) {
        let name = format!("{} {}/{}", v.week, v.namespace, v.pvc);
        let sqlite = root.sqlite_copy(v.week, &v.namespace, &v.pvc);
        match remove_version(root, v).and_then(|()| crate::store::remove_tree(&sqlite)) {
            Ok(()) => report.removed_versions.push(name),
            Err(e) => report.errors.push(format!("remove version {name}: {e}")),
        }
    }
    for v in backup_core::removals(&plan.pfsense).filter(|v| v.week < this_week) {
        let dir = root.pfsense_week(v.week);
        match crate::store::remove_tree(&dir) {
            Ok(()) => report.removed_versions.push(format!("{} pfsense", v.week)),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    for v in backup_core::removals(&plan.pve_config).filter(|v| v.week < this_week) {
        // the marker first: a removal cut short reads as incomplete, never as complete
        let removed = crate::store::remove_file_if_present(&root.pve_config_marker(v.week))
            .and_then(|()| crate::store::remove_tree(&root.pve_config_week(v.week)));
        match removed {
            Ok(()) => report
                .removed_versions
                .push(format!("{} pve-config", v.week)),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    for s in backup_core::removals(&plan.snapshots) {
        match deps.volumes.remove_snapshot(&s.name) {
            Ok(()) => report.removed_snapshots.push(s.name.clone()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    Ok(report)
}

fn publish_metrics(
    cfg: &Config,
    sink: &dyn MetricsSink,
    report: &DailyReport,
    now: DateTime<Utc>,
) -> Result<()> {
    let ok = report.exit == Exit::Success;
    let mut metrics = vec![
        Metric::gauge(
            "daily_backup_last_run_success",
            "1 when the last daily-backup run succeeded",
            f64::from(u8::from(ok)),
        ),
        Metric::gauge(
            "daily_backup_duration_seconds",
            "duration of the last daily-backup run",
            report.seconds,
        ),
    ];
    if ok {
        metrics.push(Metric::gauge(
            "daily_backup_last_success_timestamp",
            "unix time of the last successful daily-backup run",
            now.timestamp() as f64,
        ));
    }
    let sqlite_ok = report
        .volumes
        .iter()
        .flat_map(|v| &v.sqlite)
        .filter(|s| s.error.is_none())
        .count();
    metrics.push(Metric::gauge(
        "daily_backup_sqlite_copied",
        "SQLite databases copied by the last daily-backup run",
        sqlite_ok as f64,
    ));
    metrics.push(Metric::gauge(
        "daily_backup_sqlite_failed",
        "SQLite databases found by the last daily-backup run that could not be copied (corrupt, truncated)",
        report.sqlite_failures().count() as f64,
    ));
    if let Ok(pct) = crate::store::disk_usage_percent(&cfg.backup_root) {
        metrics.push(Metric::gauge(
            "backup_disk_usage_percent",
            "percent of the backup disk in use",
            pct,
        ));
    }
    let mut errors = Vec::new();
    if let Err(e) = sink.publish(&MetricGroup::new(JOB, metrics)) {
        errors.push(e.to_string());
    }
    for v in report.volumes.iter().filter(|v| v.status == Status::Ok) {
        let mut g = MetricGroup::new(
            JOB,
            vec![Metric::gauge(
                "daily_backup_pvc_last_success_timestamp",
                "unix time of the last complete copy of this PVC",
                now.timestamp() as f64,
            )],
        );
        g.grouping = vec![
            ("namespace".to_owned(), v.namespace.clone()),
            ("pvc".to_owned(), v.pvc.clone()),
        ];
        if let Err(e) = sink.publish(&g) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.dedup();
        Err(Error::Refused(errors.join("; ")))
    }
}
