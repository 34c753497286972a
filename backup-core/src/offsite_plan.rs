//! What offsite step 1 may delete: a version leaves the offsite copy only because the backup
//! disk's own retention removed it, never because it is missing from an empty, wiped or foreign
//! disk; and an incomplete version is never sent over a complete one.
//!
//! Step 1 mirrors the backup root with `rsync --delete`. Alone, that makes the offsite copy as
//! empty as the backup disk: a disk swap or a reformat followed by one daily run deleted every
//! offsite week. Here each version offsite that the backup disk does not hold complete is looked
//! at: it stays (is *protected*) when the backup disk's policy, given the disk's complete versions
//! and this one, would keep it (the disk has not yet the newer versions that would push it out),
//! or when it is among the newest `offsite.weekly-versions` of that PVC (offsite may keep more
//! history than the disk). A version the disk holds incomplete but offsite holds complete is
//! *withheld*: not sent, and protected.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::retention::{plan_versions, VersionPolicy, WeekVersion};

/// What step 1 must leave alone offsite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOnePlan {
    /// Complete offsite versions the backup disk lacks that stay offsite.
    pub protect: Vec<WeekVersion>,
    /// Versions incomplete on the backup disk and complete offsite: not sent, kept offsite.
    pub withhold: Vec<WeekVersion>,
}

fn key(v: &WeekVersion) -> (crate::week::IsoWeek, &str, &str) {
    (v.week, v.namespace.as_str(), v.pvc.as_str())
}

/// Plans step 1's protections from the backup disk's versions (`local`, complete or not) and
/// the complete versions offsite (`offsite`).
///
/// # Errors
/// When `policy` keeps nothing.
pub fn plan_step_one(
    policy: &VersionPolicy,
    offsite_keep: Option<u32>,
    local: &[WeekVersion],
    offsite: &[WeekVersion],
    now: DateTime<Utc>,
) -> Result<StepOnePlan> {
    let complete_here: BTreeSet<_> = local.iter().filter(|v| v.is_complete()).map(key).collect();
    let here: BTreeSet<_> = local.iter().map(key).collect();
    let mut plan = StepOnePlan::default();
    for v in offsite.iter().filter(|v| v.is_complete()) {
        if complete_here.contains(&key(v)) {
            continue; // sent from the disk as it is
        }
        if here.contains(&key(v)) {
            plan.withhold.push(v.clone());
            continue;
        }
        // would the disk's own policy keep it, next to what the disk holds complete?
        let mut group: Vec<WeekVersion> = local
            .iter()
            .filter(|l| l.is_complete() && l.namespace == v.namespace && l.pvc == v.pvc)
            .cloned()
            .collect();
        group.push(v.clone());
        let kept_by_disk = plan_versions(policy, now, &group)?
            .iter()
            .any(|d| !d.is_remove() && key(&d.item) == key(v));
        // or is it among the newest `offsite_keep` of everything complete, here or there?
        let kept_offsite = offsite_keep.is_some_and(|n| {
            let mut weeks: Vec<_> = local
                .iter()
                .chain(offsite)
                .filter(|x| x.is_complete() && x.namespace == v.namespace && x.pvc == v.pvc)
                .map(|x| x.week)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            weeks.reverse();
            weeks.iter().take(n as usize).any(|w| *w == v.week)
        });
        if kept_by_disk || kept_offsite {
            plan.protect.push(v.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(week: &str, complete: bool) -> WeekVersion {
        WeekVersion {
            namespace: "ns".to_owned(),
            pvc: "p".to_owned(),
            week: week.parse().unwrap(),
            completed_at: complete.then(|| "2026-01-05T05:00:00Z".parse().unwrap()),
        }
    }

    fn weeks(vs: &[WeekVersion]) -> Vec<String> {
        vs.iter().map(|v| v.week.to_string()).collect()
    }

    const NOW: &str = "2026-03-01T00:00:00Z";

    #[test]
    fn a_wiped_disk_with_one_new_week_deletes_nothing_offsite() {
        let offsite = [
            v("2026-02", true),
            v("2026-03", true),
            v("2026-04", true),
            v("2026-05", true),
        ];
        let local = [v("2026-09", true)];
        let p = plan_step_one(
            &VersionPolicy::Newest(4),
            None,
            &local,
            &offsite,
            NOW.parse().unwrap(),
        )
        .unwrap();
        // the disk does not hold 4 complete versions newer than any of them: all stay
        assert_eq!(
            weeks(&p.protect),
            ["2026-02", "2026-03", "2026-04", "2026-05"]
        );
        // four new weeks later the disk's retention would have removed them: they go
        let local: Vec<_> = ["2026-09", "2026-10", "2026-11", "2026-12"]
            .iter()
            .map(|w| v(w, true))
            .collect();
        let p = plan_step_one(
            &VersionPolicy::Newest(4),
            None,
            &local,
            &offsite,
            NOW.parse().unwrap(),
        )
        .unwrap();
        assert!(p.protect.is_empty(), "{p:?}");
    }

    #[test]
    fn normal_pruning_propagates_and_longer_offsite_retention_keeps_more() {
        let offsite = [
            v("2026-01", true),
            v("2026-02", true),
            v("2026-03", true),
            v("2026-04", true),
        ];
        let local = [
            v("2026-02", true),
            v("2026-03", true),
            v("2026-04", true),
            v("2026-05", true),
        ];
        let now = NOW.parse().unwrap();
        let p = plan_step_one(&VersionPolicy::Newest(4), None, &local, &offsite, now).unwrap();
        assert!(p.protect.is_empty(), "{p:?}");
        let p = plan_step_one(&VersionPolicy::Newest(4), Some(6), &local, &offsite, now).unwrap();
        assert_eq!(weeks(&p.protect), ["2026-01"]);
    }

    #[test]
    fn an_incomplete_week_is_never_sent_over_a_complete_one() {
        let offsite = [v("2026-04", true)];
        let local = [v("2026-04", false)];
        let p = plan_step_one(
            &VersionPolicy::Newest(4),
            None,
            &local,
            &offsite,
            NOW.parse().unwrap(),
        )
        .unwrap();
        assert_eq!(weeks(&p.withhold), ["2026-04"]);
        assert!(p.protect.is_empty());
    }
}
