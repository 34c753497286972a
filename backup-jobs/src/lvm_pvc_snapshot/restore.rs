//! `lvm-pvc-snapshot restore`: swap a PVC's volume for one of its snapshots, with undo. The steps
//! are planned by [`backup_lvm::plan_restore`]; under `--dry-run` they are listed, not run (a
//! dry run cannot wait for pods that a scale it did not make would have stopped).

use backup_core::{Backend, Cluster, Config, PvClaim, VolumeManager};
use chrono::{DateTime, Utc};
use serde::Serialize;

use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_run::{Context, Outcome};

/// What a restore did, or would do.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    /// The steps, in order (what a dry run would do).
    pub steps: Vec<String>,
    /// What running them did; `None` in a dry run.
    pub report: Option<backup_lvm::RestoreReport>,
}

/// The ports of a restore from a snapshot: the LVM volume group (through a runner that is never
/// cut short), the cluster that scales the PVC's workloads, the PV map.
pub struct RestoreDeps<'a> {
    /// The volume group and thin pool of `snapshots.backend`.
    pub lvm: &'a backup_lvm::LvmVolumeManager<'a>,
    /// Scales the workloads that mount the PVC down and back up.
    pub cluster: &'a dyn Cluster,
    /// Which claim each volume belongs to, and what could not be read of the map (asked only
    /// once the snapshot and the volume are known to exist).
    pub claims: &'a dyn Fn() -> (Vec<PvClaim>, Vec<String>),
    /// The run's time: the name of the volume set aside.
    pub now: DateTime<Utc>,
    /// `--dry-run`: the steps are listed, not run.
    pub dry_run: bool,
}

/// Plans, and unless `--dry-run` runs, the restore of `pvc_lv` from `snapshot_lv`.
///
/// # Errors
/// A backend other than LVM, an unknown snapshot or volume, a snapshot of another volume.
pub fn restore(ctx: &Context<'_>, pvc_lv: &str, snapshot_lv: &str) -> Result<RestoreOutcome> {
    let cfg: &Config = ctx.cfg()?;
    let Backend::Lvm {
        volume_group,
        thin_pool,
    } = &cfg.snapshots.backend
    else {
        return Err(Error::Usage(format!(
            "restore needs `snapshots.backend` = \"lvm\" in {}",
            cfg.file
        )));
    };
    // a restore is never killed half-way by SIGTERM: its undo must be able to run
    let runner = ctx.steady_runner();
    let lvm = backup_lvm::LvmVolumeManager::new(volume_group, thin_pool, runner.as_ref());
    let cluster = backup_kubectl::KubectlCluster::new(
        runner.as_ref(),
        cfg.kubernetes.kubeconfig.as_ref().map(ToString::to_string),
    );
    let deps = RestoreDeps {
        lvm: &lvm,
        cluster: &cluster,
        claims: &|| backup_host::setup::claims(cfg, runner.as_ref()),
        now: ctx.now,
        dry_run: ctx.dry_run(),
    };
    restore_of(&deps, pvc_lv, snapshot_lv)
}

/// [`restore`] from `deps`.
///
/// # Errors
/// An unknown snapshot or volume, a snapshot of another volume, a cluster that cannot say
/// which workloads mount the PVC.
pub fn restore_of(
    deps: &RestoreDeps<'_>,
    pvc_lv: &str,
    snapshot_lv: &str,
) -> Result<RestoreOutcome> {
    let lvm = deps.lvm;
    let (volume_group, thin_pool) = (lvm.vg(), lvm.pool());
    let snap = lvm
        .list_snapshots()?
        .into_iter()
        .find(|s| s.name == snapshot_lv)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no snapshot named {snapshot_lv} in {volume_group}/{thin_pool}: `lvm-pvc-snapshot list` shows them"
            ))
        })?;
    if snap.volume != pvc_lv {
        return Err(Error::Usage(format!(
            "{snapshot_lv} is a snapshot of {}, not of {pvc_lv}",
            snap.volume
        )));
    }
    if !lvm.list_volumes()?.iter().any(|v| v.name == pvc_lv) {
        return Err(Error::NotFound(format!(
            "{pvc_lv} is not a volume in {volume_group}/{thin_pool}"
        )));
    }
    let (claims, warnings) = (deps.claims)();
    for w in &warnings {
        backup_host::out::eprintln_fit(&format!("lvm-pvc-snapshot: warning: {w}"));
    }
    let claim = claims.iter().find(|c| c.is_for_lv(pvc_lv));
    if claim.is_none() {
        backup_host::out::eprintln_fit(&format!("lvm-pvc-snapshot: warning: no PV maps to {pvc_lv}: no workload will be scaled; make sure nothing uses it"));
    }
    let steps = backup_lvm::plan_restore(deps.cluster, claim, pvc_lv, snapshot_lv, deps.now)?;
    let described = steps.iter().map(|s| s.describe(volume_group)).collect();
    let report = (!deps.dry_run).then(|| backup_lvm::run_restore(lvm, deps.cluster, &steps));
    Ok(RestoreOutcome {
        steps: described,
        report,
    })
}

impl Outcome for RestoreOutcome {
    fn exit(&self) -> Exit {
        match &self.report {
            Some(r) if r.failed.is_some() => Exit::Failed,
            _ => Exit::Success,
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let Some(report) = &self.report else {
            let mut out = String::from("restore steps (dry run: nothing is changed):");
            for (i, s) in self.steps.iter().enumerate() {
                out.push_str(&format!("\n  {}. {s}", i + 1));
            }
            return out;
        };
        let mut out = String::new();
        for d in &report.done {
            out.push_str(&format!("  done    {d}\n"));
        }
        if let Some((step, why)) = &report.failed {
            out.push_str(&format!("  FAILED  {step}: {why}\n"));
        }
        for (what, r) in &report.undone {
            match r {
                Ok(()) => out.push_str(&format!("  undone  {what}\n")),
                Err(e) => out.push_str(&format!("  UNDO FAILED {what}: {e}\n")),
            }
        }
        out.push_str(&format!("lvm-pvc-snapshot restore: {}", report.state));
        out
    }
}
