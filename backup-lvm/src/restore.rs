//! `restore <pvc-lv> <snapshot-lv>`: swap a PVC's volume for a snapshot, with undo.
//!
//! Steps: scale the workloads using the PVC to 0 and wait for their pods to be gone, deactivate
//! the live volume, rename it aside to `<pvc-lv>-pre-restore-<time>`, create a writable thin
//! snapshot of the snapshot named `<pvc-lv>` (the snapshot itself stays), activate it, scale the
//! workloads back to their old replica counts. On any failure the steps done are undone in
//! reverse, and the report says what state that left.

use backup_core::{Cluster, PvClaim, Workload};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::commands;
use crate::manager::LvmVolumeManager;
use crate::naming::pre_restore_name;

/// How long to wait for the pods of a workload to be gone.
pub const POD_WAIT_SECS: u64 = 300;

/// One step of a restore, as data: `--dry-run` prints them, the transcript pins them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum Step {
    /// Scale a workload to 0.
    ScaleDown {
        /// The workload, with its old replica count.
        workload: Workload,
    },
    /// Wait for its pods to be gone.
    WaitPodsGone {
        /// The workload.
        workload: Workload,
    },
    /// Deactivate the live volume.
    Deactivate {
        /// The LV.
        lv: String,
    },
    /// Rename the live volume aside.
    RenameAside {
        /// The live LV.
        lv: String,
        /// Its new name.
        aside: String,
    },
    /// Create the new live volume from the snapshot.
    CreateFromSnapshot {
        /// The snapshot.
        snapshot: String,
        /// The new LV (the PVC's name).
        lv: String,
    },
    /// Activate the new live volume.
    Activate {
        /// The LV.
        lv: String,
    },
    /// Scale a workload back up.
    ScaleUp {
        /// The workload, with the replica count to restore.
        workload: Workload,
    },
}

impl Step {
    /// What the step does, for people.
    pub fn describe(&self, vg: &str) -> String {
        match self {
            Step::ScaleDown { workload: w } => format!(
                "scale {} {}/{} from {} to 0",
                w.kind, w.namespace, w.name, w.replicas
            ),
            Step::WaitPodsGone { workload: w } => format!(
                "wait for the pods of {}/{} ({}) to be gone",
                w.namespace, w.name, w.selector
            ),
            Step::Deactivate { lv } => format!("deactivate {vg}/{lv}"),
            Step::RenameAside { lv, aside } => {
                format!("rename {vg}/{lv} to {aside} (kept, listed, pruned after keep-days)")
            }
            Step::CreateFromSnapshot { snapshot, lv } => format!(
                "create {vg}/{lv} as a writable thin snapshot of {snapshot} (the snapshot stays)"
            ),
            Step::Activate { lv } => format!("activate {vg}/{lv}"),
            Step::ScaleUp { workload: w } => format!(
                "scale {} {}/{} back to {}",
                w.kind, w.namespace, w.name, w.replicas
            ),
        }
    }
}

/// The steps of a restore of `lv` (claimed as `claim`) from `snapshot` at `now`.
///
/// # Errors
/// When the workloads cannot be listed.
pub fn plan_restore(
    cluster: &dyn Cluster,
    claim: Option<&PvClaim>,
    lv: &str,
    snapshot: &str,
    now: DateTime<Utc>,
) -> backup_core::Result<Vec<Step>> {
    let workloads = match claim {
        Some(c) => cluster.workloads_using(&c.namespace, &c.pvc)?,
        None => Vec::new(),
    };
    let mut steps: Vec<Step> = workloads
        .iter()
        .map(|w| Step::ScaleDown {
            workload: w.clone(),
        })
        .collect();
    steps.extend(workloads.iter().map(|w| Step::WaitPodsGone {
        workload: w.clone(),
    }));
    steps.push(Step::Deactivate { lv: lv.to_owned() });
    steps.push(Step::RenameAside {
        lv: lv.to_owned(),
        aside: pre_restore_name(lv, now),
    });
    steps.push(Step::CreateFromSnapshot {
        snapshot: snapshot.to_owned(),
        lv: lv.to_owned(),
    });
    steps.push(Step::Activate { lv: lv.to_owned() });
    steps.extend(workloads.iter().map(|w| Step::ScaleUp {
        workload: w.clone(),
    }));
    Ok(steps)
}

/// How a restore ended.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Steps done, in order.
    pub done: Vec<String>,
    /// The step that failed and why.
    pub failed: Option<(String, String)>,
    /// Undo steps run after the failure, with their outcome.
    pub undone: Vec<(String, Result<(), String>)>,
    /// The state the volume and workloads are in now, in words.
    pub state: String,
}

fn run_step(
    lvm: &LvmVolumeManager<'_>,
    cluster: &dyn Cluster,
    step: &Step,
) -> backup_core::Result<()> {
    let vg = lvm.vg();
    match step {
        Step::ScaleDown { workload } => cluster.scale(workload, 0),
        Step::WaitPodsGone { workload } => cluster.wait_pods_gone(workload, POD_WAIT_SECS),
        Step::Deactivate { lv } => lvm.run(&commands::deactivate(vg, lv)),
        Step::RenameAside { lv, aside } => lvm.run(&commands::rename(vg, lv, aside)),
        Step::CreateFromSnapshot { snapshot, lv } => {
            lvm.run(&commands::restored_volume(vg, snapshot, lv))
        }
        Step::Activate { lv } => lvm.run(&commands::activate(vg, lv)),
        Step::ScaleUp { workload } => cluster.scale(workload, workload.replicas),
    }
}

/// The undo of a step that was done, if it has one.
fn undo(
    lvm: &LvmVolumeManager<'_>,
    cluster: &dyn Cluster,
    step: &Step,
) -> Option<(String, backup_core::Result<()>)> {
    let vg = lvm.vg();
    let (what, result) = match step {
        Step::ScaleDown { workload: w } => (
            format!("scale {}/{} back to {}", w.namespace, w.name, w.replicas),
            cluster.scale(w, w.replicas),
        ),
        Step::WaitPodsGone { .. } | Step::ScaleUp { .. } => return None,
        Step::Deactivate { lv } => (
            format!("activate {vg}/{lv}"),
            lvm.run(&commands::activate(vg, lv)),
        ),
        Step::RenameAside { lv, aside } => (
            format!("rename {aside} back to {lv}"),
            lvm.run(&commands::rename(vg, aside, lv)),
        ),
        Step::CreateFromSnapshot { lv, .. } => (
            format!("remove the new {vg}/{lv}"),
            lvm.run(&commands::remove(vg, lv)),
        ),
        Step::Activate { lv } => (
            format!("deactivate {vg}/{lv}"),
            lvm.run(&commands::deactivate(vg, lv)),
        ),
    };
    Some((what, result))
}

/// Carries out `steps`; on a failure undoes what was done, in reverse.
pub fn run_restore(
    lvm: &LvmVolumeManager<'_>,
    cluster: &dyn Cluster,
    steps: &[Step],
) -> RestoreReport {
    let vg = lvm.vg();
    let mut report = RestoreReport {
        done: Vec::new(),
        failed: None,
        undone: Vec::new(),
        state: String::new(),
    };
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = run_step(lvm, cluster, step) {
            report.failed = Some((step.describe(vg), e.to_string()));
            // a failed scale-up leaves the volume restored: nothing to undo but that workload
            if matches!(step, Step::ScaleUp { .. }) {
                report.state =
                    "the volume is restored; a workload did not scale back up: scale it by hand"
                        .to_owned();
                return report;
            }
            for done in steps[..i].iter().rev() {
                if let Some((what, result)) = undo(lvm, cluster, done) {
                    report
                        .undone
                        .push((what, result.map_err(|e| e.to_string())));
                }
            }
            report.state = if report.undone.iter().all(|(_, r)| r.is_ok()) {
                "everything was put back as it was before the restore".to_owned()
            } else {
                "an undo step failed: the volume and workloads are in between; see the steps above"
                    .to_owned()
            };
            return report;
        }
        report.done.push(step.describe(vg));
    }
    report.state = "restored".to_owned();
    report
}
