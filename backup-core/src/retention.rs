//! Retention planners: which versions, snapshots and dumps to keep, each decision with its reasons.
//!
//! Every planner takes `now` and the list as it was found, and returns one [`Decision`] per item,
//! newest first, whatever the input order. None of them removes the newest complete item of a
//! group; none of them accepts a policy that keeps nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::week::IsoWeek;

/// Keep it or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Keep the item.
    Keep,
    /// Remove the item.
    Remove,
}

/// The planner's verdict on one item, with the reasons behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision<T> {
    /// The item the decision is about.
    pub item: T,
    /// What to do with it.
    pub action: Action,
    /// Why: every rule that kept it, or why none did.
    pub reasons: Vec<String>,
}

impl<T> Decision<T> {
    /// True when the item is to be removed.
    pub fn is_remove(&self) -> bool {
        self.action == Action::Remove
    }
}

/// Items the plan removes.
pub fn removals<T>(decisions: &[Decision<T>]) -> impl Iterator<Item = &T> {
    decisions.iter().filter(|d| d.is_remove()).map(|d| &d.item)
}

/// Items the plan keeps.
pub fn kept<T: Clone>(decisions: &[Decision<T>]) -> Vec<T> {
    decisions
        .iter()
        .filter(|d| !d.is_remove())
        .map(|d| d.item.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Weekly versions of a PVC copy

/// One week folder of one (namespace, pvc): `pvc-data/<week>/<namespace>/<pvc>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WeekVersion {
    /// Kubernetes namespace.
    pub namespace: String,
    /// PVC name.
    pub pvc: String,
    /// The ISO week of the folder.
    pub week: IsoWeek,
    /// When a run last finished this version cleanly; `None` while it is incomplete.
    pub completed_at: Option<DateTime<Utc>>,
}

impl WeekVersion {
    /// A version is complete once one run of its week finished it cleanly.
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }
}

/// Of `items`, the one holding the newest complete version of each PVC (by `version`), in
/// `(namespace, pvc)` order: what the tier sends and the drill restores.
pub fn newest_complete<T>(items: Vec<T>, version: impl Fn(&T) -> &WeekVersion) -> Vec<T> {
    let mut by: std::collections::BTreeMap<(String, String), T> = Default::default();
    for item in items {
        let v = version(&item);
        if !v.is_complete() {
            continue;
        }
        let k = (v.namespace.clone(), v.pvc.clone());
        if by.get(&k).is_none_or(|o| version(o).week < v.week) {
            by.insert(k, item);
        }
    }
    by.into_values().collect()
}

/// How many weekly versions of each PVC to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionPolicy {
    /// The newest N complete versions (`pvc-backup.weekly-versions`).
    Newest(u32),
    /// A grandfather-father-son policy over the versions' completion times
    /// (`[pvc-backup.retention]`).
    Gfs(GfsPolicy),
}

/// Plans which weekly versions to keep, per (namespace, pvc).
///
/// Complete versions are chosen by `policy`; the newest complete version is always kept.
/// Incomplete versions never count towards the policy: one newer than the oldest kept complete
/// version is kept (it is this week's copy in progress, or the partial copy of a failed week),
/// an older one is removed, and when a PVC has no complete version at all nothing of it is removed.
///
/// # Errors
/// [`Error::EmptyPolicy`] when the policy keeps nothing.
pub fn plan_versions(
    policy: &VersionPolicy,
    now: DateTime<Utc>,
    versions: &[WeekVersion],
) -> Result<Vec<Decision<WeekVersion>>> {
    match policy {
        VersionPolicy::Newest(0) => {
            return Err(Error::EmptyPolicy {
                what: "weekly-versions = 0",
            })
        }
        VersionPolicy::Gfs(gfs) => gfs.check()?,
        VersionPolicy::Newest(_) => {}
    }
    let _ = now; // versions are counted, not aged; `now` keeps the planners' shape uniform
    let mut groups: BTreeMap<(&str, &str), Vec<&WeekVersion>> = BTreeMap::new();
    for v in versions {
        groups.entry((&v.namespace, &v.pvc)).or_default().push(v);
    }
    let mut out = Vec::with_capacity(versions.len());
    for (_, mut group) in groups {
        // newest first; a week appears once per pvc, ties broken on completion for determinism
        group.sort_by(|a, b| {
            b.week
                .cmp(&a.week)
                .then(b.completed_at.cmp(&a.completed_at))
        });
        let complete: Vec<&WeekVersion> =
            group.iter().copied().filter(|v| v.is_complete()).collect();
        let mut complete_reasons = policy_reasons(policy, &complete);
        if let Some(first) = complete_reasons.first_mut() {
            first.insert(0, "newest complete version: never removed".to_owned());
        }
        let oldest_kept = complete
            .iter()
            .zip(&complete_reasons)
            .filter(|(_, r)| !r.is_empty())
            .map(|(v, _)| v.week)
            .min();
        let mut complete_iter = complete_reasons.into_iter();
        for v in group {
            let (action, reasons) = if v.is_complete() {
                let reasons = complete_iter
                    .next()
                    .expect("one entry per complete version");
                if reasons.is_empty() {
                    (
                        Action::Remove,
                        vec!["complete, beyond what the policy keeps".to_owned()],
                    )
                } else {
                    (Action::Keep, reasons)
                }
            } else {
                incomplete_decision(oldest_kept, v.week)
            };
            out.push(Decision {
                item: v.clone(),
                action,
                reasons,
            });
        }
    }
    Ok(out)
}

/// Why `policy` keeps each of `complete` (newest first); an empty list: it does not.
fn policy_reasons(policy: &VersionPolicy, complete: &[&WeekVersion]) -> Vec<Vec<String>> {
    match policy {
        VersionPolicy::Newest(n) => (0..complete.len())
            .map(|i| {
                if i < *n as usize {
                    vec![format!(
                        "one of the newest {n} complete versions (#{})",
                        i + 1
                    )]
                } else {
                    Vec::new()
                }
            })
            .collect(),
        VersionPolicy::Gfs(gfs) => {
            let times: Vec<DateTime<Utc>> = complete
                .iter()
                .map(|v| v.completed_at.expect("complete"))
                .collect();
            gfs.reasons_newest_first(&times)
        }
    }
}

/// An incomplete version of `week`: kept while its PVC has no complete version or when newer
/// than the oldest kept one (this week's copy in progress, a failed week's partial copy).
fn incomplete_decision(oldest_kept: Option<IsoWeek>, week: IsoWeek) -> (Action, Vec<String>) {
    match oldest_kept {
        None => (
            Action::Keep,
            vec!["incomplete; kept while the pvc has no complete version".to_owned()],
        ),
        Some(oldest) if week > oldest => (
            Action::Keep,
            vec!["incomplete; newer than the oldest kept version".to_owned()],
        ),
        Some(_) => (
            Action::Remove,
            vec!["incomplete; older than every kept version".to_owned()],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// One snapshot of a volume (an LVM thin snapshot, or a directory copy on the `dir` backend).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The snapshot's own name (`vm-100-pvc-a-snap-20260105T030000Z`).
    pub name: String,
    /// The volume it is a snapshot of.
    pub volume: String,
    /// When it was taken.
    pub created: DateTime<Utc>,
}

/// Snapshot retention: `snapshots.keep-days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPolicy {
    /// Snapshots older than this many days are removed.
    pub keep_days: u32,
}

/// Plans which snapshots to remove: those older than `keep-days`, but never the newest snapshot
/// of a volume (when the 03:00 job has failed for a week, the last snapshot is all there is).
///
/// # Errors
/// [`Error::EmptyPolicy`] when `keep_days` is 0.
pub fn plan_snapshots(
    policy: SnapshotPolicy,
    now: DateTime<Utc>,
    snapshots: &[SnapshotInfo],
) -> Result<Vec<Decision<SnapshotInfo>>> {
    if policy.keep_days == 0 {
        return Err(Error::EmptyPolicy {
            what: "snapshots keep-days = 0",
        });
    }
    let cutoff = now - Duration::days(i64::from(policy.keep_days));
    let mut sorted: Vec<&SnapshotInfo> = snapshots.iter().collect();
    sorted.sort_by(|a, b| (&a.volume, b.created, &a.name).cmp(&(&b.volume, a.created, &b.name)));
    let mut out = Vec::with_capacity(sorted.len());
    let mut previous_volume: Option<&str> = None;
    for s in sorted {
        let newest = previous_volume != Some(s.volume.as_str());
        previous_volume = Some(&s.volume);
        let (action, reason) = if newest {
            (
                Action::Keep,
                "newest snapshot of the volume: never removed".to_owned(),
            )
        } else if s.created >= cutoff {
            (
                Action::Keep,
                format!("within keep-days = {}", policy.keep_days),
            )
        } else {
            (
                Action::Remove,
                format!("older than keep-days = {}", policy.keep_days),
            )
        };
        out.push(Decision {
            item: s.clone(),
            action,
            reasons: vec![reason],
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Dumps

/// One stored dump (a `pg_dumpall` file, a SQLite copy folder, an etcd snapshot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DumpInfo {
    /// Its file or folder name.
    pub name: String,
    /// When it was taken.
    pub created: DateTime<Utc>,
}

/// Dump retention: `keep-days`, but never fewer than `min-keep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpPolicy {
    /// Dumps older than this many days are removed...
    pub keep_days: u32,
    /// ...except the newest `min_keep`, whatever their age (two weeks of failed dumps must not
    /// leave zero dumps, as `find -mtime +14 -delete` does).
    pub min_keep: u32,
}

/// Plans which dumps to remove.
///
/// # Errors
/// [`Error::EmptyPolicy`] when both `keep_days` and `min_keep` are 0.
pub fn plan_dumps(
    policy: DumpPolicy,
    now: DateTime<Utc>,
    dumps: &[DumpInfo],
) -> Result<Vec<Decision<DumpInfo>>> {
    if policy.keep_days == 0 && policy.min_keep == 0 {
        return Err(Error::EmptyPolicy {
            what: "dumps keep-days = 0 and min-keep = 0",
        });
    }
    let cutoff = now - Duration::days(i64::from(policy.keep_days));
    let mut sorted: Vec<&DumpInfo> = dumps.iter().collect();
    sorted.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let min_keep = policy.min_keep.max(1) as usize;
    Ok(sorted
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut reasons = Vec::new();
            if i == 0 {
                reasons.push("newest dump: never removed".to_owned());
            }
            if i < min_keep && policy.min_keep > 0 {
                reasons.push(format!("one of the newest min-keep = {}", policy.min_keep));
            }
            if policy.keep_days > 0 && d.created >= cutoff {
                reasons.push(format!("within keep-days = {}", policy.keep_days));
            }
            let action = if reasons.is_empty() {
                reasons.push(format!(
                    "older than keep-days = {} and beyond min-keep = {}",
                    policy.keep_days, policy.min_keep
                ));
                Action::Remove
            } else {
                Action::Keep
            };
            Decision {
                item: d.clone(),
                action,
                reasons,
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// GFS

/// A grandfather-father-son policy with restic's `forget` semantics.
///
/// Each rule counts on its own: walking from the newest item to the oldest, a rule keeps an item
/// when the item falls in a different bucket (hour, day, ISO week, month, year) than the last item
/// *that rule* kept, until its count is used up. A bucket with no item (a week without backups)
/// consumes nothing. `within` keeps everything newer than the newest item minus that duration
/// (measured from the newest item, as restic does, so a stopped backup does not age everything
/// out). Buckets are taken in UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GfsPolicy {
    /// Keep the newest N.
    #[serde(default)]
    pub keep_last: u32,
    /// Keep the newest of each of the last N hours that have one.
    #[serde(default)]
    pub hourly: u32,
    /// ... days.
    #[serde(default)]
    pub daily: u32,
    /// ... ISO weeks.
    #[serde(default)]
    pub weekly: u32,
    /// ... months.
    #[serde(default)]
    pub monthly: u32,
    /// ... years.
    #[serde(default)]
    pub yearly: u32,
    /// Keep all within this many days of the newest.
    #[serde(default)]
    pub within_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Last(usize),
    Hour(i32, u32, u32, u32),
    Day(i32, u32, u32),
    Week(IsoWeek),
    Month(i32, u32),
    Year(i32),
}

impl GfsPolicy {
    /// # Errors
    /// [`Error::EmptyPolicy`] when every rule is 0.
    pub fn check(&self) -> Result<()> {
        let counts = [
            self.keep_last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
            self.within_days,
        ];
        if counts.iter().all(|c| *c == 0) {
            return Err(Error::EmptyPolicy {
                what: "every GFS rule is 0",
            });
        }
        Ok(())
    }

    /// Reasons to keep each of `times` (sorted newest first); an empty list means remove.
    fn reasons_newest_first(&self, times: &[DateTime<Utc>]) -> Vec<Vec<String>> {
        type Rule = (&'static str, u32, fn(usize, DateTime<Utc>) -> Bucket);
        let rules: [Rule; 6] = [
            ("last", self.keep_last, |i, _| Bucket::Last(i)),
            ("hourly", self.hourly, |_, t| {
                Bucket::Hour(t.year(), t.month(), t.day(), t.hour())
            }),
            ("daily", self.daily, |_, t| {
                Bucket::Day(t.year(), t.month(), t.day())
            }),
            ("weekly", self.weekly, |_, t| {
                Bucket::Week(IsoWeek::from_date(t.date_naive()))
            }),
            ("monthly", self.monthly, |_, t| {
                Bucket::Month(t.year(), t.month())
            }),
            ("yearly", self.yearly, |_, t| Bucket::Year(t.year())),
        ];
        let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
        let mut last: Vec<Option<Bucket>> = vec![None; rules.len()];
        let within_from = times
            .first()
            .map(|newest| *newest - Duration::days(i64::from(self.within_days)));
        times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut reasons = Vec::new();
                if self.within_days > 0 && within_from.is_some_and(|from| *t > from) {
                    reasons.push(format!("within {} days of the newest", self.within_days));
                }
                for (r, (name, count, bucket_of)) in rules.iter().enumerate() {
                    if left[r] == 0 {
                        continue;
                    }
                    let bucket = bucket_of(i, *t);
                    if last[r] != Some(bucket) {
                        last[r] = Some(bucket);
                        left[r] -= 1;
                        reasons.push(format!("{name} #{} of {count}", count - left[r]));
                    }
                }
                reasons
            })
            .collect()
    }
}

/// An item with a timestamp, for [`plan_gfs`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timed {
    /// The item's name.
    pub name: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
}

/// Plans a GFS policy over timestamped items; the newest is always kept.
///
/// # Errors
/// [`Error::EmptyPolicy`] when every rule is 0.
pub fn plan_gfs(
    policy: &GfsPolicy,
    now: DateTime<Utc>,
    items: &[Timed],
) -> Result<Vec<Decision<Timed>>> {
    policy.check()?;
    let _ = now;
    let mut sorted: Vec<&Timed> = items.iter().collect();
    sorted.sort_by(|a, b| (b.time, &b.name).cmp(&(a.time, &a.name)));
    let times: Vec<DateTime<Utc>> = sorted.iter().map(|t| t.time).collect();
    let mut reasons = policy.reasons_newest_first(&times);
    if let Some(first) = reasons.first_mut() {
        first.insert(0, "newest: never removed".to_owned());
    }
    Ok(sorted
        .into_iter()
        .zip(reasons)
        .map(|(item, mut reasons)| {
            let action = if reasons.is_empty() {
                reasons.push("no rule keeps it".to_owned());
                Action::Remove
            } else {
                Action::Keep
            };
            Decision {
                item: item.clone(),
                action,
                reasons,
            }
        })
        .collect())
}
