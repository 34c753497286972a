//! `lvm-pvc-snapshot`: take, prune and list the snapshots of every selected volume; restore one.
//!
//! Planning is backup-core's ([`backup_core::plan_snapshot_run`]: selection, the pool guard, the
//! prune decisions); these functions carry a plan out and report. Under `--dry-run` they run on
//! decorated backends that change nothing.

pub mod restore;

use backup_core::metric_names::{self as names, JobMetrics};
use backup_core::{
    plan_snapshot_run, plan_snapshots, removals, Config, Decision, MetricGroup, PvClaim,
    SnapshotInfo, VolumeManager,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::outcome::{CreateReport, Status, TakeResult};
use backup_host::error::Result;
use backup_host::exit::Exit;
use backup_run::Outcome;

/// Removes what a prune plan says; returns (removed, errors).
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

/// `create`: prune first, refuse when the pool is too full, then one snapshot per selected volume.
///
/// # Errors
/// When listing fails, or no volume matches `lv-pattern`; per-volume failures are in the report.
pub fn create(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    claims: &[PvClaim],
    now: DateTime<Utc>,
) -> Result<CreateReport> {
    let names: Vec<String> = volumes
        .list_volumes()?
        .into_iter()
        .map(|v| v.name)
        .collect();
    let plan = plan_snapshot_run(
        cfg,
        &names,
        &volumes.list_snapshots()?,
        claims,
        volumes.pool_usage()?,
        now,
    )?;
    let (mut pruned, mut prune_errors) = prune(volumes, &plan.prune);
    let (aside, aside_errors) = prune_set_aside(cfg, volumes, now);
    pruned.extend(aside);
    prune_errors.extend(aside_errors);
    let taken: Vec<TakeResult> = plan
        .take
        .into_iter()
        .map(|(volume, name)| {
            let result = volumes.create_snapshot(&volume.lv, &name, now);
            TakeResult {
                volume,
                snapshot: name,
                status: if result.is_ok() {
                    Status::Ok
                } else {
                    Status::Failed
                },
                error: result.err().map(|e| e.to_string()),
            }
        })
        .collect();
    let ok = taken.iter().filter(|t| t.status == Status::Ok).count();
    let failed = taken.len() - ok + prune_errors.len();
    let exit = if plan.refused.is_some() {
        Exit::Failed
    } else {
        Exit::from_counts(ok, failed)
    };
    Ok(CreateReport {
        pruned,
        prune_errors,
        taken,
        excluded: plan.excluded,
        pool_free_percent: plan.pool_free_percent,
        refused: plan.refused.map(|r| r.to_string()),
        snapshot_count: volumes.list_snapshots().map(|s| s.len()).unwrap_or(0),
        now_unix: now.timestamp(),
        exit,
    })
}

impl Outcome for CreateReport {
    fn exit(&self) -> Exit {
        self.exit
    }

    fn text(&self, dry_run: bool) -> String {
        crate::report::create_report(self, dry_run)
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = JobMetrics::lvm_snapshot();
        let mut m = job.outcome(self.exit == Exit::Success, self.now_unix);
        m.push(names::LVM_SNAPSHOT_COUNT.gauge(self.snapshot_count as f64));
        if let Some(free) = self.pool_free_percent {
            m.push(names::LVM_THIN_POOL_FREE_PERCENT.gauge(free));
        }
        vec![MetricGroup::new(&job.job, m)]
    }
}

/// What `prune` did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    /// Snapshots and set-aside volumes removed.
    pub removed: Vec<String>,
    /// Removals that failed.
    pub errors: Vec<String>,
}

/// `prune`: snapshots older than `keep-days` (never the newest of a volume), and volumes set
/// aside by restores.
///
/// # Errors
/// When snapshots cannot be listed.
pub fn prune_run(
    cfg: &Config,
    volumes: &dyn VolumeManager,
    now: DateTime<Utc>,
) -> Result<PruneOutcome> {
    let plan = plan_snapshots(cfg.snapshots.retention, now, &volumes.list_snapshots()?)?;
    let (mut removed, mut errors) = prune(volumes, &plan);
    let (aside, aside_errors) = prune_set_aside(cfg, volumes, now);
    removed.extend(aside);
    errors.extend(aside_errors);
    Ok(PruneOutcome { removed, errors })
}

impl Outcome for PruneOutcome {
    fn exit(&self) -> Exit {
        Exit::from_counts(self.removed.len(), self.errors.len())
    }

    fn text(&self, dry_run: bool) -> String {
        let mut out = String::new();
        let removed = if dry_run { "would remove" } else { "removed" };
        for r in &self.removed {
            out.push_str(&format!("  {removed} {r}\n"));
        }
        for e in &self.errors {
            out.push_str(&format!("  FAILED  {e}\n"));
        }
        out.push_str(&format!(
            "lvm-pvc-snapshot: {removed}: {}, failed: {}",
            self.removed.len(),
            self.errors.len()
        ));
        out
    }
}

/// What `list` shows (as JSON: the array of snapshots).
#[derive(Debug, Clone)]
pub struct Listing {
    /// Snapshots, newest first per volume.
    pub snapshots: Vec<SnapshotInfo>,
    /// Volumes set aside by restores, with when.
    pub set_aside: Vec<(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
}

impl Serialize for Listing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.snapshots.serialize(s)
    }
}

/// `list`.
///
/// # Errors
/// When listing fails.
pub fn list(volumes: &dyn VolumeManager, now: DateTime<Utc>) -> Result<Listing> {
    let mut snapshots = volumes.list_snapshots()?;
    snapshots.sort_by(|a, b| (&a.volume, b.created).cmp(&(&b.volume, a.created)));
    Ok(Listing {
        snapshots,
        set_aside: volumes.set_aside_volumes()?,
        now,
    })
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    backup_host::human::old(now, then)
}

impl Outcome for Listing {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        // the snapshot's name holds its volume and time: the name, then its age
        let mut out = String::new();
        let w = self
            .snapshots
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        for s in &self.snapshots {
            out.push_str(&format!(
                "{:<w$}  {}  {}\n",
                s.name,
                s.created.format("%Y-%m-%d %H:%M"),
                age(self.now, s.created)
            ));
        }
        out.push_str(&backup_host::human::plural(
            self.snapshots.len() as u64,
            "snapshot",
        ));
        for (name, at) in &self.set_aside {
            out.push_str(&format!(
                "\nset aside by a restore: {name} ({})",
                age(self.now, *at)
            ));
        }
        out
    }
}
