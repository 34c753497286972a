//! `restore <pvc-lv> <snapshot-lv>`: swap a PVC's volume for a snapshot, with undo.
//!
//! Steps: scale the workloads using the PVC to 0 and wait for their pods to be gone, deactivate
//! the live volume, rename it aside to `<pvc-lv>-pre-restore-<time>`, create a writable thin
//! snapshot of the snapshot named `<pvc-lv>` (the snapshot itself stays), activate it, scale the
//! workloads back to their old replica counts. On any failure the steps done are undone in
//! reverse, and the report says what state that left.

use backup_core::{run_with_undo, Cluster, OnFailure, PvClaim, UndoableSteps, Workload};
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

/// The LVM swap's steps on a volume manager and a cluster.
struct Swap<'a, 'l> {
    lvm: &'a LvmVolumeManager<'l>,
    cluster: &'a dyn Cluster,
}

impl UndoableSteps<Step> for Swap<'_, '_> {
    fn describe(&self, step: &Step) -> String {
        step.describe(self.lvm.vg())
    }

    fn run(&mut self, step: &Step) -> Result<(), String> {
        let (lvm, vg) = (self.lvm, self.lvm.vg());
        match step {
            Step::ScaleDown { workload } => self.cluster.scale(workload, 0),
            Step::WaitPodsGone { workload } => self.cluster.wait_pods_gone(workload, POD_WAIT_SECS),
            Step::Deactivate { lv } => lvm.run(&commands::deactivate(vg, lv)),
            Step::RenameAside { lv, aside } => lvm.run(&commands::rename(vg, lv, aside)),
            Step::CreateFromSnapshot { snapshot, lv } => {
                lvm.run(&commands::restored_volume(vg, snapshot, lv))
            }
            Step::Activate { lv } => lvm.run(&commands::activate(vg, lv)),
            Step::ScaleUp { workload } => self.cluster.scale(workload, workload.replicas),
        }
        .map_err(|e| e.to_string())
    }

    fn undo(&mut self, step: &Step) -> Option<(String, Result<(), String>)> {
        let (lvm, vg) = (self.lvm, self.lvm.vg());
        let (what, result) = match step {
            Step::ScaleDown { workload: w } => (
                format!("scale {}/{} back to {}", w.namespace, w.name, w.replicas),
                self.cluster.scale(w, w.replicas),
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
        Some((what, result.map_err(|e| e.to_string())))
    }

    fn on_failure(&self, step: &Step) -> OnFailure {
        match step {
            // a failed scale-up leaves the volume restored: nothing to undo but that workload
            Step::ScaleUp { .. } => OnFailure::Stop,
            _ => OnFailure::Undo,
        }
    }
}

/// Carries out `steps`; on a failure undoes what was done, in reverse.
pub fn run_restore(
    lvm: &LvmVolumeManager<'_>,
    cluster: &dyn Cluster,
    steps: &[Step],
) -> RestoreReport {
    let run = run_with_undo(&mut Swap { lvm, cluster }, steps);
    let state = match run.ended_at {
        None => "restored".to_owned(),
        Some((_, OnFailure::Stop)) => {
            "the volume is restored; a workload did not scale back up: scale it by hand".to_owned()
        }
        Some(_) if run.undo_ok() => {
            "everything was put back as it was before the restore".to_owned()
        }
        Some(_) => {
            "an undo step failed: the volume and workloads are in between; see the steps above"
                .to_owned()
        }
    };
    RestoreReport {
        done: run.done,
        failed: run.failed,
        undone: run.undone,
        state,
    }
}
