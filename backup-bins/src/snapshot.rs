//! `lvm-pvc-snapshot`: take, prune and list the snapshots of every selected volume.

use backup_core::{
    plan_snapshots, removals, select_volumes, snapshot_name, Config, Decision, Metric, MetricGroup,
    MetricsSink, PvClaim, SelectedVolume, SnapshotInfo, VolumeManager,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::daily::Status;
use crate::error::Result;
use crate::exit::Exit;

/// The job name: Pushgateway job and textfile name.
pub const JOB: &str = "lvm-pvc-snapshot";

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

/// What `create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    /// Snapshots removed first, with failures.
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
    /// Warnings that did not fail the run (metrics not published).
    pub warnings: Vec<String>,
    /// The exit code.
    pub exit: Exit,
}

/// Plans which snapshots to remove.
///
/// # Errors
/// When snapshots cannot be listed or the policy is empty.
pub fn plan_prune(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    now: DateTime<Utc>,
) -> Result<Vec<Decision<SnapshotInfo>>> {
    Ok(plan_snapshots(
        cfg.snapshots.retention,
        now,
        &volumes.list_snapshots()?,
    )?)
}

/// Removes what [`plan_prune`] says; returns (removed, errors).
pub fn prune(
    volumes: &dyn VolumeManager,
    plan: &[Decision<SnapshotInfo>],
) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for s in removals(plan) {
        match volumes.remove_snapshot(&s.name) {
            Ok(()) => removed.push(s.name.clone()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (removed, errors)
}

/// Removes the volumes a restore set aside once they are older than `keep-days`; returns
/// (removed, errors).
pub fn prune_set_aside(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    now: DateTime<Utc>,
) -> (Vec<String>, Vec<String>) {
    let cutoff = now - chrono::Duration::days(i64::from(cfg.snapshots.retention.keep_days));
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    match volumes.set_aside_volumes() {
        Ok(list) => {
            for (name, _) in list.into_iter().filter(|(_, at)| *at < cutoff) {
                match volumes.remove_set_aside(&name) {
                    Ok(()) => removed.push(name),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    (removed, errors)
}

/// The volumes `create` snapshots.
///
/// # Errors
/// When volumes cannot be listed.
pub fn selection(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    claims: &[PvClaim],
) -> Result<backup_core::Selection> {
    let names: Vec<String> = volumes
        .list_volumes()?
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok(select_volumes(
        &names,
        &cfg.snapshots.lv_pattern,
        claims,
        &cfg.snapshots.exclude_namespaces,
    ))
}

/// `create`: prune first, refuse when the pool is too full, then one snapshot per selected volume.
///
/// # Errors
/// When listing fails; per-volume failures are in the report.
pub fn create(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    claims: &[PvClaim],
    metrics: &dyn MetricsSink,
    now: DateTime<Utc>,
) -> Result<CreateReport> {
    let (mut pruned, mut prune_errors) = prune(volumes, &plan_prune(cfg, volumes, now)?);
    let (aside, aside_errors) = prune_set_aside(cfg, volumes, now);
    pruned.extend(aside);
    prune_errors.extend(aside_errors);
    let sel = selection(cfg, volumes, claims)?;
    let listed = sel.matched() + sel.not_matching.len();
    crate::daily::require_matches(cfg, &sel, listed)?;
    let pool_free_percent = volumes.pool_usage()?.map(|p| p.free_percent());
    let mut refused = None;
    let mut taken = Vec::new();
    match pool_free_percent {
        Some(free) if free < cfg.snapshots.min_pool_free_percent => {
            // a full thin pool turns every volume in it read-only: better no snapshot than that
            refused = Some(format!(
                "thin pool has {free:.1}% free, below min-pool-free-percent = {}: no snapshot taken",
                cfg.snapshots.min_pool_free_percent
            ));
        }
        _ => {
            // a volume whose PVC name cannot be a folder is still snapshotted: the snapshot is
            // named after the LV, and daily-backup refuses and names it
            for volume in sel
                .selected
                .into_iter()
                .chain(sel.refused.into_iter().map(|r| r.volume))
            {
                let name = snapshot_name(&volume.lv, now);
                let result = volumes.create_snapshot(&volume.lv, &name, now);
                taken.push(TakeResult {
                    volume,
                    snapshot: name,
                    status: if result.is_ok() {
                        Status::Ok
                    } else {
                        Status::Failed
                    },
                    error: result.err().map(|e| e.to_string()),
                });
            }
        }
    }
    let ok = taken.iter().filter(|t| t.status == Status::Ok).count();
    let failed = taken.len() - ok + prune_errors.len();
    let exit = if refused.is_some() {
        Exit::Failed
    } else {
        Exit::from_counts(ok, failed)
    };
    let snapshot_count = volumes.list_snapshots().map(|s| s.len()).unwrap_or(0);
    let mut report = CreateReport {
        pruned,
        prune_errors,
        taken,
        excluded: sel.excluded,
        pool_free_percent,
        refused,
        snapshot_count,
        warnings: Vec::new(),
        exit,
    };
    let mut m = vec![
        Metric::gauge(
            "lvm_snapshot_last_run_success",
            "1 when the last snapshot run succeeded",
            f64::from(u8::from(exit == Exit::Success)),
        ),
        Metric::gauge(
            "lvm_snapshot_count",
            "snapshots that exist after the last run",
            snapshot_count as f64,
        ),
    ];
    if exit == Exit::Success {
        m.push(Metric::gauge(
            "lvm_snapshot_last_success_timestamp",
            "unix time of the last successful snapshot run",
            now.timestamp() as f64,
        ));
    }
    if let Some(free) = pool_free_percent {
        m.push(Metric::gauge(
            "lvm_thin_pool_free_percent",
            "free space of the thin pool, data or metadata, whichever is less",
            free,
        ));
    }
    if let Err(e) = metrics.publish(&MetricGroup::new(JOB, m)) {
        report.warnings.push(format!("metrics not published: {e}"));
    }
    Ok(report)
}
