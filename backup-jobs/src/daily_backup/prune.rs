//! The prune stage: what [`backup_core::plan_prune`] removes, carried out. Every removal that
//! fails is reported and fails the run (a stuck snapshot slowly fills the thin pool).

use backup_core::{removals, PrunePlan, Series};

use crate::outcome::PruneReport;

use super::DailyDeps;

/// Removes what `plan` says; never stops at a failure.
pub(super) fn carry_out(deps: &DailyDeps<'_>, plan: &PrunePlan) -> PruneReport {
    let mut report = PruneReport::default();
    for (series, decisions) in [
        (Series::Pvc, &plan.versions),
        (Series::Pfsense, &plan.pfsense),
        (Series::PveConfig, &plan.pve_config),
    ] {
        for v in removals(decisions) {
            let name = match series {
                Series::Pvc => format!("{} {}/{}", v.week, v.namespace, v.pvc),
                Series::Pfsense | Series::PveConfig => format!("{} {}", v.week, v.namespace),
            };
            match deps.store.remove_version(series, v) {
                Ok(()) => report.removed_versions.push(name),
                Err(e) => report.errors.push(format!("remove version {name}: {e}")),
            }
        }
    }
    for s in removals(&plan.snapshots) {
        match deps.volumes.remove_snapshot(&s.name) {
            Ok(()) => report.removed_snapshots.push(s.name.clone()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    report
}
