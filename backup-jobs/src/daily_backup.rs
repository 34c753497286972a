//! `daily-backup`: every selected volume's newest snapshot, mounted read-only, copied into this
//! ISO week's folder with `--link-dest`; its SQLite databases; the PVE config; pfSense; pruning.
//!
//! Planning is backup-core's ([`backup_core::plan_daily`], [`backup_core::plan_prune`]) from what
//! [`list`] reads; [`run_daily`] carries a plan out, one stage per file: `copy` (the volumes, with `backup_host::sqlite_stage` through the store),
//! `pve_config`, pfSense (`crate::daily_backup::pfsense`), `prune`; `metrics` turns the report into gauges.
//! Under `--dry-run` the same code runs on decorated backends that change nothing.

mod copy;
pub(crate) mod incremental;
mod metrics;
pub mod pfsense;
mod prune;
mod pve_config;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use backup_core::{
    plan_daily, plan_prune, BackupStore, Config, CopyStages, DailyInput, DailyPlan, FileSync,
    Mounter, PruneInput, PrunePlan, PvClaim, Runner, Series, VolumeManager,
};
use chrono::{DateTime, Utc};

use crate::daily_backup::pfsense::{backup_pfsense, CONFIG_XML, FULL_TAR};
use crate::outcome::{DailyReport, ItemResult, Status, VolumeResult};
use backup_host::error::Result;
use backup_host::exit::Exit;
use backup_run::Outcome;

/// The outside world of a run.
pub struct DailyDeps<'a> {
    /// Snapshots.
    pub volumes: &'a dyn VolumeManager,
    /// Read-only mounts.
    pub mounter: &'a dyn Mounter,
    /// rsync.
    pub sync: &'a dyn FileSync,
    /// Other commands (curl and ssh for pfSense).
    pub runner: &'a dyn Runner,
    /// The backup root.
    pub store: &'a dyn BackupStore,
    /// The hardlink guard before a copy, the SQLite stage after it.
    pub stages: &'a dyn CopyStages,
    /// PV → PVC resolution (API answer or cache, then the static map).
    pub claims: &'a [PvClaim],
    /// Set by SIGTERM/SIGINT: start nothing new.
    pub stop: &'a AtomicBool,
    /// The snapshots keep inodes and change times (LVM): "unchanged" can check them.
    pub trust_ctime: bool,
    /// `--full`: copy every volume in full, whatever the records say.
    pub force_full: bool,
    /// `pvc-backup.monthly-full-pass`: the first run of each month copies in full.
    pub monthly_full_pass: bool,
}

/// Lists what planning needs and plans the run. Changes nothing.
///
/// # Errors
/// When a listing fails, or planning refuses (no volume matches, the clock is behind, an
/// `--allow-empty` name that is no volume).
pub fn plan(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    now: DateTime<Utc>,
    allow_empty: &[String],
) -> Result<DailyPlan> {
    let volumes: Vec<String> = deps
        .volumes
        .list_volumes()?
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok(plan_daily(&DailyInput {
        config: cfg,
        volumes: &volumes,
        snapshots: &deps.volumes.list_snapshots()?,
        versions: &deps.store.list_versions(Series::Pvc)?,
        pve_config_versions: &deps.store.list_versions(Series::PveConfig)?,
        claims: deps.claims,
        now,
        allow_empty,
    })?)
}

/// Plans pruning from what is on the backup root and in the pool now.
///
/// # Errors
/// When a listing fails.
pub fn plan_pruning(cfg: &Config, deps: &DailyDeps<'_>, now: DateTime<Utc>) -> Result<PrunePlan> {
    Ok(plan_prune(&PruneInput {
        config: cfg,
        now,
        versions: &deps.store.list_versions(Series::Pvc)?,
        snapshots: &deps.volumes.list_snapshots()?,
        pfsense: &deps.store.list_versions(Series::Pfsense)?,
        pve_config: &deps.store.list_versions(Series::PveConfig)?,
    })?)
}

/// Runs the plan: volumes (`parallel` at a time), PVE config, pfSense, pruning. Calls
/// `progress` as each volume finishes. One volume failing never stops the others.
///
/// # Errors
/// Only when pruning cannot be planned; per-item failures are in the report.
pub fn run_daily(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    progress: &(dyn Fn(&VolumeResult) + Sync),
) -> Result<DailyReport> {
    let started = Instant::now();
    let volumes = copy_volumes(cfg, deps, plan, progress);
    let pve_config = pve_config::copy_pve_config(deps, plan);
    let pfsense = cfg.pfsense.as_ref().map(|pf| {
        let result = backup_pfsense(pf, deps.runner, deps.store, plan.week);
        let dir = deps.store.root().pfsense_week(plan.week);
        let item = match &result {
            Ok(r) => format!(
                "{dir}/{{{CONFIG_XML} {}, {FULL_TAR} {}}}",
                backup_host::human::bytes(r.config_bytes as u64),
                backup_host::human::bytes(r.tar_bytes as u64)
            ),
            Err(_) => format!("{dir} from {}", pf.ssh_host),
        };
        ItemResult::from_result(item, result.map(|_| ()))
    });
    let mut warnings = Vec::new();
    let interrupted = deps.stop.load(Ordering::SeqCst);
    let prune = if interrupted {
        warnings.push("interrupted: pruning skipped".to_owned());
        Default::default()
    } else {
        // planned after the copies: what they completed counts
        prune::carry_out(deps, &plan_pruning(cfg, deps, plan.now)?)
    };
    let mut report = DailyReport {
        plan: Some(plan.clone()),
        prune_plan: None,
        week: plan.week,
        backup_root: cfg.backup_root.clone(),
        volumes,
        excluded: plan.excluded.clone(),
        pve_config,
        pfsense,
        prune,
        warnings,
        disk_usage_percent: deps.store.disk_usage_percent(),
        now_unix: plan.now.timestamp(),
        seconds: started.elapsed().as_secs_f64(),
        exit: Exit::Success,
    };
    let (ok, failed) = report.counts();
    report.exit = if interrupted {
        Exit::Failed
    } else {
        Exit::from_counts(ok, failed)
    };
    Ok(report)
}

/// The volume stage, `pvc-backup.parallel` volumes at a time.
fn copy_volumes(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    progress: &(dyn Fn(&VolumeResult) + Sync),
) -> Vec<VolumeResult> {
    let n = plan.volumes.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<VolumeResult>>> = Mutex::new(vec![None; n]);
    let wanted = match cfg.pvc_backup.parallel {
        0 => std::thread::available_parallelism().map_or(1, |c| c.get()),
        p => p as usize,
    };
    let workers = wanted.clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(vp) = plan.volumes.get(i) else { break };
                let r = if deps.stop.load(Ordering::SeqCst) {
                    copy::volume_result(
                        vp,
                        Status::Skipped,
                        Some("the run was interrupted before this volume".to_owned()),
                    )
                } else {
                    copy::backup_volume(cfg, deps, plan, vp)
                };
                progress(&r);
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

impl Outcome for DailyReport {
    fn exit(&self) -> Exit {
        self.exit
    }

    fn text(&self, dry_run: bool) -> String {
        crate::report::daily_summary(self, dry_run)
    }

    fn metrics(&self) -> Vec<backup_core::MetricGroup> {
        metrics::groups(self)
    }

    /// A warning anywhere: the run's, a volume's, a volume backed up under `_unresolved`.
    fn needs_attention(&self) -> bool {
        !self.warnings.is_empty()
            || self
                .volumes
                .iter()
                .any(|v| !v.warnings.is_empty() || v.namespace == backup_core::UNRESOLVED_NAMESPACE)
    }
}

/// The whole `daily-backup` job on the context's backends: plan (printed first under
/// `--dry-run`), a header, one line per volume as it finishes (a progress bar on a terminal),
/// then the report for the wrapper to render and publish.
///
/// # Errors
/// See [`plan`] and [`run_daily`].
pub fn job(
    ctx: &backup_run::Context<'_>,
    allow_empty: &[String],
    force_full: bool,
) -> Result<DailyReport> {
    let cfg = ctx.cfg()?;
    let runner = ctx.runner();
    let volumes = ctx.volumes()?;
    let (claims, claim_warnings) = backup_host::setup::claims(cfg, runner.as_ref());
    for w in &claim_warnings {
        backup_host::out::eprintln_fit(&format!("daily-backup: warning: {w}"));
    }
    let (mounter, sync, store) = (ctx.mounter(), ctx.file_sync(), ctx.store()?);
    let stages = ctx.copy_stages();
    let deps = DailyDeps {
        volumes: volumes.as_ref(),
        mounter: mounter.as_ref(),
        sync: sync.as_ref(),
        runner: runner.as_ref(),
        store: store.as_ref(),
        stages: stages.as_ref(),
        claims: &claims,
        stop: &ctx.stop,
        trust_ctime: matches!(cfg.snapshots.backend, backup_core::Backend::Lvm { .. }),
        force_full,
        monthly_full_pass: cfg.pvc_backup.monthly_full_pass,
    };
    let plan = plan(cfg, &deps, ctx.now, allow_empty)?;
    if !ctx.dry_run() {
        // the disk's identity, written on its first use: offsite step 1 compares it
        backup_host::root_id::ensure(&cfg.backup_root)?;
        // a killed run's half-made update is finished or dropped in every week, not only in
        // the ones this run copies
        let root = backup_core::BackupRoot::new(&cfg.backup_root);
        let recovered = backup_host::version_commit::recover_all(&root);
        for said in &recovered.said {
            backup_host::out::eprintln_fit(&format!("daily-backup: {said}"));
        }
        for (week, ns, pvc, why) in &recovered.failed {
            backup_host::out::eprintln_fit(&format!(
                "daily-backup: warning: {ns}/{pvc} week {week}: {why}"
            ));
        }
    }
    let json = ctx.global.json;
    let prune_plan = if ctx.dry_run() {
        Some(plan_pruning(cfg, &deps, ctx.now)?)
    } else {
        None
    };
    if let (false, Some(p)) = (json, &prune_plan) {
        backup_host::out::println_fit(crate::report::daily_plan(&plan, p).trim_end());
    } else if !json {
        // as the volumes' lines: not under --quiet
        backup_host::progress::println(&crate::report::daily_header(&plan));
    }
    // a bar on a terminal, a line a minute in the journal: volumes done, bytes read for digests
    let total = plan.volumes.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let phase = (!ctx.dry_run()).then(|| {
        let p =
            backup_host::progress::start("daily-backup", backup_host::progress::Totals::default());
        backup_host::progress::message(&format!("0 of {total} volumes done"));
        p
    });
    let report = run_daily(cfg, &deps, &plan, &|v| {
        if !json {
            backup_host::progress::println(&crate::report::volume_line(v));
        }
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        backup_host::progress::message(&format!("{n} of {total} volumes done"));
    });
    drop(phase);
    report.map(|r| DailyReport { prune_plan, ..r })
}
