//! Planning, as pure functions from data to plans: what a daily run copies and from which
//! snapshot, what a snapshot run takes, what pruning removes. Binaries list the world (volumes,
//! snapshots, the versions on the backup disk, the pool, the clock), call these, and carry the
//! plan out; a `--dry-run` prints the same plan. Nothing here reads the clock or the disk.
//!
//! ```
//! use backup_core::{plan_daily, Config, DailyInput, IsoWeek, PvClaim, WeekVersion};
//! use chrono::{TimeZone, Utc};
//!
//! let config = Config::from_toml(
//!     "/etc/homelab-backup/config.toml".into(),
//!     "backup-root = \"/mnt/backup\"\n[pvc-backup]\nweekly-versions = 4\n",
//! )
//! .unwrap();
//! let now = Utc.with_ymd_and_hms(2026, 1, 12, 5, 0, 0).unwrap();
//! let claims = [PvClaim {
//!     volume_handle: "pve:vm-100-pvc-a".into(),
//!     namespace: "vaultwarden".into(),
//!     pvc: "data".into(),
//! }];
//! // last week's copy is complete: this week's is hardlinked against it
//! let versions = [WeekVersion {
//!     namespace: "vaultwarden".into(),
//!     pvc: "data".into(),
//!     week: "2026-02".parse().unwrap(),
//!     completed_at: Some(Utc.with_ymd_and_hms(2026, 1, 5, 5, 10, 0).unwrap()),
//! }];
//! let plan = plan_daily(&DailyInput {
//!     config: &config,
//!     volumes: &["vm-100-pvc-a".to_owned()],
//!     snapshots: &[],
//!     versions: &versions,
//!     pve_config_versions: &[],
//!     claims: &claims,
//!     now,
//!     allow_empty: &[],
//! })
//! .unwrap();
//! assert_eq!(plan.week, "2026-03".parse::<IsoWeek>().unwrap());
//! assert_eq!(plan.volumes[0].link_week, Some("2026-02".parse().unwrap()));
//! assert_eq!(plan.volumes[0].dest, "/mnt/backup/pvc-data/2026-03/vaultwarden/data");
//! ```

use camino::Utf8PathBuf;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::Serialize;

use crate::cluster::PvClaim;
use crate::config::{Config, PfsenseConfig};
use crate::error::{Error, Result};
use crate::layout::{snapshot_name, BackupRoot};
use crate::linkdest::plan_link_dest;
use crate::refusal::Refusal;
use crate::retention::{
    plan_dumps, plan_snapshots, plan_versions, Action, Decision, DumpInfo, DumpPolicy,
    SnapshotInfo, WeekVersion,
};
use crate::selection::{select_volumes, SelectedVolume, Selection};
use crate::volume::PoolUsage;
use crate::week::IsoWeek;

/// Namespace and name of the PVE config in version listings.
pub const PVE_CONFIG_SERIES: &str = "pve-config";
/// Namespace and name of pfSense in version listings.
pub const PFSENSE_SERIES: &str = "pfsense";

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
    /// The snapshot's name.
    pub fn name(&self) -> &str {
        match self {
            SnapshotChoice::Use { name, .. } | SnapshotChoice::Take { name, .. } => name,
        }
    }
}

/// The snapshot-age rule: the newest snapshot of `lv` when it is at most `max_age_hours` old,
/// else a fresh one, so a failed 03:00 run never becomes "this week's" copy of old data.
/// Snapshots from the future (a clock that jumped) are not candidates.
pub fn snapshot_choice(
    lv: &str,
    snapshots: &[SnapshotInfo],
    now: DateTime<Utc>,
    max_age_hours: u32,
) -> SnapshotChoice {
    let newest = snapshots
        .iter()
        .filter(|s| s.volume == lv && s.created <= now)
        .max_by_key(|s| s.created);
    match newest {
        Some(s) if now - s.created <= Duration::hours(i64::from(max_age_hours)) => {
            SnapshotChoice::Use {
                name: s.name.clone(),
                created: s.created,
            }
        }
        Some(s) => SnapshotChoice::Take {
            name: snapshot_name(lv, now),
            reason: format!(
                "newest snapshot {} is {} h old (max-snapshot-age-hours = {max_age_hours})",
                s.name,
                (now - s.created).num_hours(),
            ),
        },
        None => SnapshotChoice::Take {
            name: snapshot_name(lv, now),
            reason: "no snapshot yet".to_owned(),
        },
    }
}

/// The pool guard: `Some` when the thin pool's free data or metadata is below `min_percent`
/// (a full thin pool turns every volume in it read-only). Pools of backends without one pass.
pub fn pool_guard(usage: Option<PoolUsage>, min_percent: f64) -> Option<Refusal> {
    let free = usage?.free_percent();
    (free < min_percent).then_some(Refusal::PoolLow {
        free_percent: free,
        min_percent,
    })
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
    pub refused: Option<Refusal>,
    /// `--allow-empty NS/PVC`: an empty source replaces this volume's copy in this run.
    pub allow_empty: bool,
}

/// The whole plan of a daily run.
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

/// What [`plan_daily`] plans from: everything listed, nothing looked up.
#[derive(Debug, Clone, Copy)]
pub struct DailyInput<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Names of the volumes the backend lists.
    pub volumes: &'a [String],
    /// The snapshots the backend lists.
    pub snapshots: &'a [SnapshotInfo],
    /// PVC versions on the backup root.
    pub versions: &'a [WeekVersion],
    /// PVE config versions on the backup root.
    pub pve_config_versions: &'a [WeekVersion],
    /// PV → PVC claims (the API or its cache, then the static map).
    pub claims: &'a [PvClaim],
    /// The run's time.
    pub now: DateTime<Utc>,
    /// `--allow-empty` names (`namespace/pvc`).
    pub allow_empty: &'a [String],
}

/// One plan per selected volume and per volume refused for its name: where it goes, what it
/// links against, which snapshot it reads, and why it is refused (its name, or a second volume
/// of the same PVC).
fn volume_plans(
    input: &DailyInput<'_>,
    selection: &Selection,
    root: &BackupRoot,
    week: IsoWeek,
) -> Vec<VolumePlan> {
    let cfg = input.config;
    let now = input.now;
    // `NAMESPACE/PVC` as the output names it, or the volume (LV)
    let allowed = |v: &SelectedVolume| input.allow_empty.iter().any(|n| names(v, n));
    let refused = selection.refused.iter().map(|r| {
        (
            r.volume.clone(),
            Some(Refusal::BadName {
                reason: r.reason.clone(),
            }),
        )
    });
    let mut seen: Vec<&SelectedVolume> = Vec::new();
    let candidates: Vec<(SelectedVolume, Option<Refusal>)> = selection
        .selected
        .iter()
        .cloned()
        .map(|v| (v, None))
        .chain(refused)
        .collect();
    let mut volumes = Vec::new();
    for (volume, name_refused) in &candidates {
        let shared = seen
            .iter()
            .find(|s| s.namespace == volume.namespace && s.pvc == volume.pvc)
            .map(|s| Refusal::SharedCopy {
                lv: s.lv.clone(),
                namespace: s.namespace.clone(),
                pvc: s.pvc.clone(),
            });
        seen.push(volume);
        volumes.push(VolumePlan {
            dest: root.pvc_copy(week, &volume.namespace, &volume.pvc),
            link_week: plan_link_dest(input.versions, &volume.namespace, &volume.pvc, week)
                .map(|v| v.week),
            snapshot: snapshot_choice(
                &volume.lv,
                input.snapshots,
                now,
                cfg.pvc_backup.max_snapshot_age_hours,
            ),
            refused: name_refused.clone().or(shared),
            allow_empty: allowed(volume),
            volume: volume.clone(),
        });
    }
    volumes
}

/// Plans a daily run: selection, snapshot choice, destinations, link-dest, the PVE config week.
///
/// # Errors
/// [`Refusal::NoVolumeMatches`] when no volume matches `lv-pattern`; [`Refusal::ClockBehind`]
/// when the clock is behind what the backup root holds; [`Error::InvalidArgument`] when an
/// `allow_empty` name is no selected volume.
pub fn plan_daily(input: &DailyInput<'_>) -> Result<DailyPlan> {
    let cfg = input.config;
    let now = input.now;
    let root = BackupRoot::new(&cfg.backup_root);
    let week = IsoWeek::from_date(now.date_naive());
    let selection = select_volumes(
        input.volumes,
        &cfg.snapshots.lv_pattern,
        input.claims,
        &cfg.snapshots.exclude_namespaces,
    );
    require_matches(cfg, &selection, input.volumes.len())?;
    require_clock_ahead(
        now,
        week,
        input.versions.iter().chain(input.pve_config_versions),
    )?;
    check_allow_empty(input.allow_empty, &selection)?;
    let volumes = volume_plans(input, &selection, &root, week);
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
    Ok(DailyPlan {
        now,
        week,
        backup_root: cfg.backup_root.clone(),
        volumes,
        excluded: selection.excluded,
        pve_config,
        pve_config_link: plan_link_dest(
            input.pve_config_versions,
            PVE_CONFIG_SERIES,
            PVE_CONFIG_SERIES,
            week,
        )
        .map(|v| v.week),
        pfsense: cfg
            .pfsense
            .as_ref()
            .map(|p| pfsense_summary(p, &root, week)),
    })
}

/// True when `name` names `v`: `NAMESPACE/PVC` as the output prints it, or its volume.
fn names(v: &SelectedVolume, name: &str) -> bool {
    name == format!("{}/{}", v.namespace, v.pvc) || name == v.lv
}

/// Every `--allow-empty` name must be a selected volume.
fn check_allow_empty(allow_empty: &[String], selection: &Selection) -> Result<()> {
    for name in allow_empty {
        if !selection.selected.iter().any(|v| names(v, name)) {
            return Err(Error::InvalidArgument {
                arg: format!("--allow-empty {name}"),
                reason: format!(
                    "no selected volume is {name} (expected NAMESPACE/PVC as the output names \
                     it, or the volume's name)"
                ),
            });
        }
    }
    Ok(())
}

fn pfsense_summary(p: &PfsenseConfig, root: &BackupRoot, week: IsoWeek) -> String {
    format!(
        "{} and ssh {}@{}:{} tar of {} -> {}",
        p.api_url,
        p.ssh_user,
        p.ssh_host,
        p.ssh_port,
        p.tar_paths.join(" "),
        root.pfsense_week(week)
    )
}

/// Nothing to back up is not success: a typo in `lv-pattern`, the wrong volume group or an empty
/// volumes folder would otherwise report "0 of 0 volumes ok" every night. Volumes that all sit
/// in excluded namespaces are fine (the report says so).
///
/// # Errors
/// [`Refusal::NoVolumeMatches`] naming the pattern, where volumes were listed and how many.
pub fn require_matches(cfg: &Config, selection: &Selection, listed: usize) -> Result<()> {
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
    Err(Refusal::NoVolumeMatches {
        pattern: cfg.snapshots.lv_pattern.as_str().to_owned(),
        place: cfg.snapshots.backend.volume_source(),
        listed,
        sample: if seen.is_empty() {
            String::new()
        } else {
            format!(": {}", seen.join(", "))
        },
        file: cfg.file.clone(),
    }
    .into())
}

/// The clock rule. A clock that went backwards (an RTC reset, an NTP step at boot) must not write
/// into an older week (whose copy the run's own prune then deletes) or rewrite a finished week
/// with later data: the run refuses, and says what the clock says and what is newer.
///
/// # Errors
/// [`Refusal::ClockBehind`] when `week` is older than the newest complete version, or `now` is
/// earlier than the newest completion.
pub fn require_clock_ahead<'a>(
    now: DateTime<Utc>,
    week: IsoWeek,
    versions: impl Iterator<Item = &'a WeekVersion>,
) -> Result<()> {
    let complete: Vec<&WeekVersion> = versions.filter(|v| v.is_complete()).collect();
    // ties broken by name: the message must not depend on the listing's order
    let newest_week = complete
        .iter()
        .max_by_key(|v| (v.week, &v.namespace, &v.pvc));
    let newest_mark = complete
        .iter()
        .max_by_key(|v| (v.completed_at, &v.namespace, &v.pvc));
    let newer = match (newest_week, newest_mark) {
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
    Err(Refusal::ClockBehind { now, week, newer }.into())
}

/// What pruning removes: weekly versions of every series, and snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    /// PVC weekly versions.
    pub versions: Vec<Decision<WeekVersion>>,
    /// Snapshots.
    pub snapshots: Vec<Decision<SnapshotInfo>>,
    /// pfSense week folders.
    pub pfsense: Vec<Decision<WeekVersion>>,
    /// PVE config week folders.
    pub pve_config: Vec<Decision<WeekVersion>>,
}

/// What [`plan_prune`] plans from.
#[derive(Debug, Clone, Copy)]
pub struct PruneInput<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The run's time.
    pub now: DateTime<Utc>,
    /// PVC versions.
    pub versions: &'a [WeekVersion],
    /// Snapshots.
    pub snapshots: &'a [SnapshotInfo],
    /// pfSense weeks.
    pub pfsense: &'a [WeekVersion],
    /// PVE config weeks.
    pub pve_config: &'a [WeekVersion],
}

/// Plans pruning: the version policy per series, `keep-days` for snapshots. A version of the
/// run's own week or later is never removed, whatever the policy says: it is what this run
/// writes (the clock rule refuses such runs first; this holds even without it).
///
/// # Errors
/// [`Error::EmptyPolicy`] for a policy that keeps nothing.
pub fn plan_prune(input: &PruneInput<'_>) -> Result<PrunePlan> {
    let policy = &input.config.pvc_backup.policy;
    let this_week = IsoWeek::from_date(input.now.date_naive());
    let weekly = |versions: &[WeekVersion]| -> Result<Vec<Decision<WeekVersion>>> {
        let mut plan = plan_versions(policy, input.now, versions)?;
        for d in plan
            .iter_mut()
            .filter(|d| d.is_remove() && d.item.week >= this_week)
        {
            d.action = Action::Keep;
            d.reasons = vec![format!("week {} is this run's own", d.item.week)];
        }
        Ok(plan)
    };
    Ok(PrunePlan {
        versions: weekly(input.versions)?,
        snapshots: plan_snapshots(input.config.snapshots.retention, input.now, input.snapshots)?,
        pfsense: weekly(input.pfsense)?,
        pve_config: weekly(input.pve_config)?,
    })
}

/// What `lvm-pvc-snapshot create` will do.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotPlan {
    /// Old snapshots, pruned first.
    pub prune: Vec<Decision<SnapshotInfo>>,
    /// Volumes to snapshot, each with the snapshot's name. Volumes whose PVC name cannot be a
    /// folder are snapshotted too (snapshots are named after the LV; daily-backup refuses them).
    pub take: Vec<(SelectedVolume, String)>,
    /// Volumes skipped for their namespace.
    pub excluded: Vec<SelectedVolume>,
    /// The pool's free percent, when the backend has a pool.
    pub pool_free_percent: Option<f64>,
    /// Set when the pool guard refuses every snapshot.
    pub refused: Option<Refusal>,
}

/// Plans `lvm-pvc-snapshot create`.
///
/// # Errors
/// [`Refusal::NoVolumeMatches`]; [`Error::EmptyPolicy`] for `keep-days` that keeps nothing.
pub fn plan_snapshot_run(
    config: &Config,
    volumes: &[String],
    snapshots: &[SnapshotInfo],
    claims: &[PvClaim],
    pool: Option<PoolUsage>,
    now: DateTime<Utc>,
) -> Result<SnapshotPlan> {
    let sel = select_volumes(
        volumes,
        &config.snapshots.lv_pattern,
        claims,
        &config.snapshots.exclude_namespaces,
    );
    require_matches(config, &sel, volumes.len())?;
    let refused = pool_guard(pool, config.snapshots.min_pool_free_percent);
    let take = if refused.is_some() {
        Vec::new()
    } else {
        sel.selected
            .into_iter()
            .chain(sel.refused.into_iter().map(|r| r.volume))
            .map(|v| {
                let name = snapshot_name(&v.lv, now);
                (v, name)
            })
            .collect()
    };
    Ok(SnapshotPlan {
        prune: plan_snapshots(config.snapshots.retention, now, snapshots)?,
        take,
        excluded: sel.excluded,
        pool_free_percent: pool.map(|p| p.free_percent()),
        refused,
    })
}

const DATED_STAMP: &str = "%Y%m%d-%H%M%S";

/// The dated folder name of a backup of `name` taken at `at`: `<name>-<YYYYMMDD-HHMMSS>` (UTC).
pub fn dated_folder_name(name: &str, at: DateTime<Utc>) -> String {
    format!("{name}-{}", at.format(DATED_STAMP))
}

/// When a folder named by [`dated_folder_name`] for `name` was taken; `None` for other names.
/// A second one in the same second carries `_02` … `_99` after the stamp (see
/// [`dated_file_name_nth`]); it reads as that many milliseconds later, so rotation orders it.
pub fn parse_dated_folder_name(name: &str, folder: &str) -> Option<DateTime<Utc>> {
    let stamp = folder.strip_prefix(name)?.strip_prefix('-')?;
    let (stamp, nth) = match stamp.split_once('_') {
        None => (stamp, 1),
        Some((s, n)) if n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()) => {
            match n.parse::<i64>() {
                Ok(n @ 2..=99) => (s, n),
                _ => return None,
            }
        }
        Some(_) => return None,
    };
    NaiveDateTime::parse_from_str(stamp, DATED_STAMP)
        .ok()
        .map(|t| t.and_utc() + chrono::Duration::milliseconds(nth - 1))
}

/// Rotation of dated folders: of `folders` (names in one destination), those of `name` are
/// planned with the dump policy (older than `keep-days` go, never below `min-keep`); other names
/// are left alone.
///
/// # Errors
/// [`Error::EmptyPolicy`] for a policy that keeps nothing.
pub fn plan_dated_rotation(
    name: &str,
    folders: &[String],
    policy: DumpPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision<DumpInfo>>> {
    let dumps: Vec<DumpInfo> = folders
        .iter()
        .filter_map(|f| {
            parse_dated_folder_name(name, f).map(|created| DumpInfo {
                name: f.clone(),
                created,
            })
        })
        .collect();
    plan_dumps(policy, now, &dumps)
}

/// The file name of a dump of `name` taken at `at`: `<name>-<YYYYMMDD-HHMMSS>.<ext>.gz` (UTC,
/// the stamp of [`dated_folder_name`]).
pub fn dated_file_name(name: &str, at: DateTime<Utc>, ext: &str) -> String {
    format!("{}.{ext}.gz", dated_folder_name(name, at))
}

/// The `nth` dump of `name` taken in the second of `at`: the first is [`dated_file_name`], the
/// next ones `<name>-<YYYYMMDD-HHMMSS>_02.<ext>.gz` … `_99` (`_` sorts after `.`, so a listing
/// by name keeps them in order). `None` past 99.
pub fn dated_file_name_nth(name: &str, at: DateTime<Utc>, ext: &str, nth: u32) -> Option<String> {
    match nth {
        1 => Some(dated_file_name(name, at, ext)),
        2..=99 => Some(format!("{}_{nth:02}.{ext}.gz", dated_folder_name(name, at))),
        _ => None,
    }
}

/// When a file named by [`dated_file_name`] for `name` and `ext` was taken; `None` for any other
/// name (another application's dumps, a temp file, a file someone put there).
pub fn parse_dated_file_name(name: &str, ext: &str, file: &str) -> Option<DateTime<Utc>> {
    let stem = file
        .strip_suffix(".gz")?
        .strip_suffix(ext)?
        .strip_suffix('.')?;
    parse_dated_folder_name(name, stem)
}

/// Rotation of dump files: of `files` (names in one folder), those of `name` and `ext` are
/// planned with the dump policy (older than `keep-days` go, never below `min-keep`, ages from the
/// names' stamps); every other file is left alone.
///
/// # Errors
/// [`Error::EmptyPolicy`] for a policy that keeps nothing.
pub fn plan_dated_file_rotation(
    name: &str,
    ext: &str,
    files: &[String],
    policy: DumpPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision<DumpInfo>>> {
    let dumps: Vec<DumpInfo> = files
        .iter()
        .filter_map(|f| {
            parse_dated_file_name(name, ext, f).map(|created| DumpInfo {
                name: f.clone(),
                created,
            })
        })
        .collect();
    plan_dumps(policy, now, &dumps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::retention::removals;

    #[test]
    fn dumps_in_the_same_second_get_ordered_names() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 23, 23, 13).unwrap();
        let names: Vec<String> = (1..=12)
            .map(|n| dated_file_name_nth("pg", at, "sql", n).unwrap())
            .collect();
        assert_eq!(names[0], "pg-20261130-232313.sql.gz");
        assert_eq!(names[1], "pg-20261130-232313_02.sql.gz");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            sorted, names,
            "a listing by name keeps the order they were taken in"
        );
        let times: Vec<_> = names
            .iter()
            .map(|n| parse_dated_file_name("pg", "sql", n).unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert_eq!(dated_file_name_nth("pg", at, "sql", 100), None);
        for other in [
            "pg-20261130-232313_1.sql.gz",
            "pg-20261130-232313_01.sql.gz",
            "pg-20261130-232313_x2.sql.gz",
        ] {
            assert_eq!(parse_dated_file_name("pg", "sql", other), None, "{other}");
        }
        // rotation keeps the newest of the same second
        let policy = DumpPolicy {
            keep_days: 1,
            min_keep: 1,
        };
        let plan =
            plan_dated_file_rotation("pg", "sql", &names, policy, at + Duration::days(30)).unwrap();
        let kept: Vec<String> = crate::retention::kept(&plan)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(kept, ["pg-20261130-232313_12.sql.gz"]);
    }

    #[test]
    fn dump_file_rotation_keeps_days_never_below_min_keep_and_touches_only_its_own_files() {
        let policy = DumpPolicy {
            keep_days: 14,
            min_keep: 3,
        };
        let day = |d: i64| Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::days(d);
        let mut files: Vec<String> = (0..30)
            .map(|d| dated_file_name("postgresql", day(d), "sql"))
            .collect();
        let others = [
            dated_file_name("postgresql-old", day(0), "sql"),
            dated_file_name("mysql", day(0), "sql"),
            dated_file_name("postgresql", day(0), "dump"),
            "postgresql-20260301-000000.sql".to_owned(),
            ".postgresql-20260301-000000.sql.gz.partial".to_owned(),
            "notes.txt".to_owned(),
        ];
        files.extend(others.iter().cloned());
        assert_eq!(
            parse_dated_file_name("postgresql", "sql", &files[0]),
            Some(day(0))
        );
        // 30 days of daily dumps, then a success on day 30: the last 14 days stay
        let plan = plan_dated_file_rotation("postgresql", "sql", &files, policy, day(30)).unwrap();
        let gone: Vec<&str> = removals(&plan).map(|d| d.name.as_str()).collect();
        assert_eq!(gone.len(), 16, "{gone:?}");
        assert!(gone
            .iter()
            .all(|g| parse_dated_file_name("postgresql", "sql", g).is_some_and(|t| t < day(16))));
        assert!(others.iter().all(|o| !gone.contains(&o.as_str())));
        // four weeks after the last success: the newest min-keep are still there
        let plan = plan_dated_file_rotation("postgresql", "sql", &files, policy, day(58)).unwrap();
        let kept: Vec<&str> = plan
            .iter()
            .filter(|d| d.action == Action::Keep)
            .map(|d| d.item.name.as_str())
            .collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept.contains(&files[29].as_str()));
    }

    #[test]
    fn dated_folder_names_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 2, 20, 6, 0, 0).unwrap();
        let name = dated_folder_name("vault-warden", at);
        assert_eq!(name, "vault-warden-20260220-060000");
        assert_eq!(parse_dated_folder_name("vault-warden", &name), Some(at));
        assert_eq!(parse_dated_folder_name("vault", &name), None);
    }

    #[test]
    fn the_pool_guard() {
        let pool = |d, m| {
            Some(PoolUsage {
                data_percent: d,
                metadata_percent: m,
            })
        };
        assert!(pool_guard(pool(84.0, 10.0), 15.0).is_none());
        assert!(pool_guard(pool(86.0, 10.0), 15.0).is_some());
        assert!(pool_guard(pool(10.0, 86.0), 15.0).is_some());
        assert!(pool_guard(None, 15.0).is_none());
    }
}
