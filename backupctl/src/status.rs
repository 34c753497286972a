//! `backupctl status`: the protection matrix from live state, gaps first. Exit 1 when there is
//! a gap, so a timer or a person can act on it.

use backup_core::{BackupStore, Config, Series, UNRESOLVED_NAMESPACE};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::inventory::{damaged_files, live, Live};
use backup_core::OffsiteState;
use backup_host::error::Result;
use backup_host::exit::Exit;
use backup_run::{Context, Outcome};

/// Something that is not protected as it should be.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "gap", rename_all = "kebab-case")]
pub enum Gap {
    /// No complete weekly version at all.
    NeverBackedUp,
    /// The newest complete version is older than the limit.
    StaleVersion {
        /// Its age in hours.
        hours: i64,
    },
    /// No snapshot, or none newer than the limit.
    StaleSnapshot {
        /// The newest snapshot's age in hours; `None`: there is none.
        hours: Option<i64>,
    },
    /// The volume has no PV: it is backed up under `_unresolved`, not under its PVC.
    Unresolved,
    /// The offsite sync of the backup disk is older than the limit, or never ran.
    OffsiteStale {
        /// Days since its last success; `None`: never.
        days: Option<i64>,
    },
    /// The backend's volumes could not be listed: what is protected is unknown.
    VolumesUnlisted {
        /// Why.
        reason: String,
    },
    /// The newest complete version holds files `backupctl verify` found differing from its
    /// record: the next daily run sends them again.
    Damaged {
        /// Its week.
        week: String,
        /// How many files.
        files: u64,
    },
    /// A PVC that was backed up before, or is in the static map, has no volume now.
    NoVolume {
        /// Its newest complete version; `None`: never backed up.
        since: Option<DateTime<Utc>>,
    },
    /// No volume is selected and nothing was ever backed up: nothing is protected.
    NothingProtected,
    /// A tree's change log cannot be trusted: the next sync makes a full pass.
    FullPassPending {
        /// Why.
        reason: String,
    },
}

impl Gap {
    fn words(&self, limit_hours: u32, limit_days: u32) -> String {
        match self {
            Gap::NeverBackedUp => "never backed up (no complete weekly version)".to_owned(),
            Gap::StaleVersion { hours } => format!(
                "newest complete version is {} old (limit {})",
                backup_host::human::span((*hours) * 3600),
                backup_host::human::span(i64::from(limit_hours) * 3600)
            ),
            Gap::StaleSnapshot { hours: Some(h) } => format!(
                "newest snapshot is {} old (limit {})",
                backup_host::human::span((*h) * 3600),
                backup_host::human::span(i64::from(limit_hours) * 3600)
            ),
            Gap::StaleSnapshot { hours: None } => "no snapshot".to_owned(),
            Gap::Unresolved => {
                "no PV maps to this volume: backed up under _unresolved, not under its PVC"
                    .to_owned()
            }
            Gap::OffsiteStale { days: Some(d) } => {
                format!(
                    "last offsite sync {} ago (limit {})",
                    backup_host::human::span((*d) * 86_400),
                    backup_host::human::span(i64::from(limit_days) * 86_400)
                )
            }
            Gap::OffsiteStale { days: None } => "never synced offsite".to_owned(),
            Gap::FullPassPending { reason } => format!("full pass pending: {reason}"),
            Gap::Damaged { week, files } => format!(
                "newest version ({week}) is damaged: {} differ from the record (the next \
                 daily-backup sends them again)",
                backup_host::human::plural(*files, "file")
            ),
            Gap::NoVolume { since: Some(t) } => format!(
                "no volume found for it: the newest version is of {}",
                t.format("%Y-%m-%d %H:%M")
            ),
            Gap::NoVolume { since: None } => {
                "in the static map, but no volume found for it and never backed up".to_owned()
            }
            Gap::NothingProtected => {
                "no volume is selected and nothing was ever backed up: nothing is protected"
                    .to_owned()
            }
            Gap::VolumesUnlisted { reason } => {
                format!("the volumes could not be listed, so nothing is known to be protected: {reason}")
            }
        }
    }
}

/// One row of the matrix: a PVC, the offsite sync, or a tree.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// `namespace/pvc`, `offsite` or `tree <name>`.
    pub what: String,
    /// The LV, for a PVC.
    pub lv: Option<String>,
    /// Its namespace is excluded from snapshots and copies (shown, not a gap).
    pub excluded: bool,
    /// Newest snapshot.
    pub snapshot: Option<DateTime<Utc>>,
    /// Newest complete weekly version.
    pub version: Option<DateTime<Utc>>,
    /// SQLite copies in that version's week.
    pub sqlite_copies: u64,
    /// Last success (offsite, trees).
    pub last_success: Option<DateTime<Utc>>,
    /// What is wrong; empty: protected.
    pub gaps: Vec<Gap>,
}

impl StatusRow {
    /// A row that is only a gap (no volume, snapshot or version to show).
    fn gap(what: &str, gap: Gap) -> Self {
        Self::offsite(what.to_owned(), None, vec![gap])
    }

    /// A row with no volume: the offsite copy of the backup disk, or a tree.
    fn offsite(what: String, last_success: Option<DateTime<Utc>>, gaps: Vec<Gap>) -> Self {
        Self {
            what,
            lv: None,
            excluded: false,
            snapshot: None,
            version: None,
            sqlite_copies: 0,
            last_success,
            gaps,
        }
    }
}

/// `backupctl status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Rows with gaps first, then the rest, each group by name.
    pub rows: Vec<StatusRow>,
    /// The age past which a PVC's snapshot or version is a gap.
    pub stale_hours: u32,
    /// The age past which the offsite sync is a gap.
    pub offsite_stale_days: u32,
    /// What could not be looked at.
    pub warnings: Vec<String>,
    /// When it was taken.
    pub now: DateTime<Utc>,
}

/// Builds the matrix.
///
/// # Errors
/// When the backup root cannot be listed.
pub fn status(ctx: &Context<'_>, stale_hours: Option<u32>) -> Result<StatusReport> {
    let cfg = ctx.cfg()?;
    let store = ctx.store()?;
    status_of(
        StatusDeps {
            cfg,
            now: ctx.now,
            store: store.as_ref(),
            live: live(ctx, cfg),
            from_offsite: ctx.from_offsite(),
        },
        stale_hours,
    )
}

/// What `status` reads, and nothing else: built from the run by [`status`], from fakes in a
/// test.
pub(crate) struct StatusDeps<'a> {
    /// The configuration.
    pub cfg: &'a Config,
    /// The run's time.
    pub now: DateTime<Utc>,
    /// The backup root's versions, records and state files.
    pub store: &'a dyn BackupStore,
    /// The backend's volumes and snapshots, as the cluster names them.
    pub live: Live,
    /// The backup root is the offsite copy (`--from-offsite`).
    pub from_offsite: bool,
}

/// The matrix, from `deps`.
///
/// # Errors
/// When the backup root cannot be listed.
pub(crate) fn status_of(deps: StatusDeps<'_>, stale_hours: Option<u32>) -> Result<StatusReport> {
    let StatusDeps {
        cfg,
        now,
        store,
        live,
        from_offsite,
    } = deps;
    let limit_h = stale_hours.unwrap_or(cfg.status.stale_hours);
    let limit_d = cfg.status.offsite_stale_days;
    let Live {
        selection,
        snapshots,
        mut warnings,
        unlisted,
    } = live;
    let versions = store.list_versions(Series::Pvc)?;
    let mut rows = Vec::new();
    for (vols, excluded) in [(&selection.selected, false), (&selection.excluded, true)] {
        for v in vols {
            rows.push(volume_row(
                v, excluded, &snapshots, &versions, store, now, limit_h,
            ));
        }
    }
    if unlisted.is_none() {
        rows.extend(rows_without_volume(&selection, &versions, cfg));
        if rows.is_empty() {
            rows.push(StatusRow::gap("volumes", Gap::NothingProtected));
        }
    }
    warnings.extend(damaged_older_weeks(store, &versions));
    warnings.extend(clock_behind(&versions, &snapshots, now));
    if let Some(reason) = unlisted {
        rows.push(StatusRow::gap(
            "volumes (backend)",
            Gap::VolumesUnlisted { reason },
        ));
    }
    for r in &selection.refused {
        warnings.push(format!(
            "volume {} is not backed up: {}",
            r.volume.lv, r.reason
        ));
    }
    // reading the offsite copy itself: its own offsite state is the backup disk's, not here
    if let Some(off) = cfg.offsite.as_ref().filter(|_| !from_offsite) {
        rows.extend(offsite_rows(store, off, now, limit_d, &mut warnings));
    }
    rows.sort_by(|a, b| {
        (a.gaps.is_empty(), a.excluded, &a.what).cmp(&(b.gaps.is_empty(), b.excluded, &b.what))
    });
    Ok(StatusReport {
        rows,
        stale_hours: limit_h,
        offsite_stale_days: limit_d,
        warnings,
        now,
    })
}

/// The row of one volume: its newest snapshot and complete version, SQLite copies, and its
/// gaps (none for an excluded one).
fn volume_row(
    v: &backup_core::SelectedVolume,
    excluded: bool,
    snapshots: &[backup_core::SnapshotInfo],
    versions: &[backup_core::WeekVersion],
    store: &dyn backup_core::BackupStore,
    now: DateTime<Utc>,
    limit_h: u32,
) -> StatusRow {
    let hours = |t: DateTime<Utc>| (now - t).num_hours();
    let snap = snapshots
        .iter()
        .filter(|s| s.volume == v.lv)
        .map(|s| s.created)
        .max();
    let newest = versions
        .iter()
        .filter(|w| w.namespace == v.namespace && w.pvc == v.pvc && w.is_complete())
        .max_by_key(|w| w.week);
    let mut gaps = Vec::new();
    if !excluded {
        if !v.resolved || v.namespace == UNRESOLVED_NAMESPACE {
            gaps.push(Gap::Unresolved);
        }
        match snap {
            Some(t) if now - t <= Duration::hours(i64::from(limit_h)) => {}
            other => gaps.push(Gap::StaleSnapshot {
                hours: other.map(hours),
            }),
        }
        match newest.and_then(|w| w.completed_at) {
            None => gaps.push(Gap::NeverBackedUp),
            Some(t) if now - t > Duration::hours(i64::from(limit_h)) => {
                gaps.push(Gap::StaleVersion { hours: hours(t) });
            }
            Some(_) => {}
        }
        if let Some(w) = newest {
            let files = damaged_files(store, w);
            if files > 0 {
                gaps.push(Gap::Damaged {
                    week: w.week.to_string(),
                    files,
                });
            }
        }
    }
    StatusRow {
        what: format!("{}/{}", v.namespace, v.pvc),
        lv: Some(v.lv.clone()),
        excluded,
        snapshot: snap,
        version: newest.and_then(|w| w.completed_at),
        sqlite_copies: newest.map_or(0, |w| {
            crate::inventory::files_under(&store.root().sqlite_copy(w.week, &w.namespace, &w.pvc))
                .len() as u64
        }),
        last_success: None,
        gaps,
    }
}

/// The offsite rows: the backup disk's step 1, then each tree, then each tier repository, from
/// the offsite state and the trees' full-pass markers.
fn offsite_rows(
    store: &dyn backup_core::BackupStore,
    off: &backup_core::OffsiteConfig,
    now: DateTime<Utc>,
    limit_d: u32,
    warnings: &mut Vec<String>,
) -> Vec<StatusRow> {
    let mut rows = Vec::new();
    let file = backup_core::StoreFile::OffsiteState;
    let path = file.path(store.root());
    let read = store.read(file).map_err(|e| e.to_string()).and_then(|b| {
        b.map_or(Ok(OffsiteState::default()), |b| {
            serde_json::from_slice(&b).map_err(|e| e.to_string())
        })
    });
    let state = read.unwrap_or_else(|e| {
        warnings.push(format!(
            "{path} cannot be read ({e}): the offsite sync is shown as never run"
        ));
        OffsiteState::default()
    });
    // a sync older than the limit, or none at all
    let stale = |last: Option<DateTime<Utc>>| match last {
        Some(t) if now - t <= Duration::days(i64::from(limit_d)) => None,
        other => Some(Gap::OffsiteStale {
            days: other.map(|t| (now - t).num_days()),
        }),
    };
    let last = state.backup_root;
    rows.push(StatusRow::offsite(
        "offsite (backup disk)".to_owned(),
        last,
        stale(last).into_iter().collect(),
    ));
    for tree in &off.trees {
        let marker =
            backup_core::ChangeLogFiles::new(&off.change_log, &tree.name).full_pass_marker();
        let pending = backup_host::safe_read::read_regular_string(&marker).ok();
        let last = state.trees.get(&tree.name).and_then(|t| t.last_success);
        let gaps = pending
            .map(|reason| Gap::FullPassPending {
                reason: reason.trim().to_owned(),
            })
            .into_iter()
            .chain(stale(last))
            .collect();
        rows.push(StatusRow::offsite(
            format!("tree {}", tree.name),
            last,
            gaps,
        ));
    }
    // the encrypted tier: its last run that sent every PVC
    for repo in &off.repositories {
        let last = state.tier.get(&repo.name).and_then(|t| t.last_success);
        rows.push(StatusRow::offsite(
            format!("tier {}", repo.name),
            last,
            stale(last).into_iter().collect(),
        ));
    }
    rows
}

/// Rows for the PVCs backed up before, or in the static map, that have no volume now.
fn rows_without_volume(
    selection: &backup_core::Selection,
    versions: &[backup_core::WeekVersion],
    cfg: &backup_core::Config,
) -> Vec<StatusRow> {
    let listed: std::collections::BTreeSet<(String, String)> = selection
        .selected
        .iter()
        .chain(&selection.excluded)
        .map(|v| (v.namespace.clone(), v.pvc.clone()))
        .chain(
            selection
                .refused
                .iter()
                .map(|r| (r.volume.namespace.clone(), r.volume.pvc.clone())),
        )
        .collect();
    let known: std::collections::BTreeSet<(String, String)> = versions
        .iter()
        .map(|w| (w.namespace.clone(), w.pvc.clone()))
        .chain(
            cfg.kubernetes
                .static_volumes
                .iter()
                .map(|c| (c.namespace.clone(), c.pvc.clone())),
        )
        .collect();
    known
        .difference(&listed)
        .map(|(ns, pvc)| {
            let since = versions
                .iter()
                .filter(|w| &w.namespace == ns && &w.pvc == pvc && w.is_complete())
                .max_by_key(|w| w.week)
                .and_then(|w| w.completed_at);
            // a PVC of an excluded namespace is never a gap, with its volume or without
            let excluded = cfg.snapshots.exclude_namespaces.contains(ns);
            StatusRow {
                what: format!("{ns}/{pvc}"),
                lv: Some(String::new()),
                version: since,
                excluded,
                gaps: if excluded {
                    Vec::new()
                } else {
                    vec![Gap::NoVolume { since }]
                },
                ..StatusRow::gap("", Gap::NoVolume { since })
            }
        })
        .collect()
}

/// Warnings naming the damaged versions that are not a PVC's newest (a newer one is intact).
fn damaged_older_weeks(
    store: &dyn backup_core::BackupStore,
    versions: &[backup_core::WeekVersion],
) -> Vec<String> {
    let mut out = Vec::new();
    for w in versions.iter().filter(|w| w.is_complete()) {
        let is_newest = versions
            .iter()
            .filter(|x| x.namespace == w.namespace && x.pvc == w.pvc && x.is_complete())
            .all(|x| x.week <= w.week);
        let files = if is_newest {
            0
        } else {
            damaged_files(store, w)
        };
        if files > 0 {
            out.push(format!(
                "{}/{} week {} is damaged ({} differ from the record): restore from a newer week",
                w.namespace,
                w.pvc,
                w.week,
                backup_host::human::plural(files, "file")
            ));
        }
    }
    out
}

/// A warning when the clock (or `--now`) is behind the newest backup: ages would be negative.
fn clock_behind(
    versions: &[backup_core::WeekVersion],
    snapshots: &[backup_core::SnapshotInfo],
    now: DateTime<Utc>,
) -> Option<String> {
    let newest = versions
        .iter()
        .filter_map(|w| w.completed_at)
        .chain(snapshots.iter().map(|s| s.created))
        .max()?;
    (newest > now).then(|| {
        format!(
            "the time used ({}) is earlier than the newest backup ({}): ages are measured from \
             a clock that is behind",
            now.format("%Y-%m-%d %H:%M"),
            newest.format("%Y-%m-%d %H:%M")
        )
    })
}

impl StatusReport {
    /// Rows with at least one gap.
    pub fn gaps(&self) -> impl Iterator<Item = &StatusRow> {
        self.rows.iter().filter(|r| !r.gaps.is_empty())
    }
}

impl Outcome for StatusReport {
    fn exit(&self) -> Exit {
        if self.gaps().next().is_some() {
            Exit::Failed
        } else {
            Exit::Success
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let age = |t: Option<DateTime<Utc>>| match t {
            Some(t) => backup_host::human::ago(self.now, t),
            None => "never".to_owned(),
        };
        let mut out = String::new();
        let gaps: Vec<&StatusRow> = self.gaps().collect();
        if gaps.is_empty() {
            out.push_str("no gaps: every PVC has a snapshot and a complete version newer than ");
            out.push_str(&format!("{} h\n", self.stale_hours));
        } else {
            let n: usize = gaps.iter().map(|r| r.gaps.len()).sum();
            out.push_str(&format!(
                "GAPS: {}, on {} of the {} rows below:\n",
                n,
                gaps.len(),
                self.rows.len()
            ));
            for r in &gaps {
                for g in &r.gaps {
                    out.push_str(&format!(
                        "  {}: {}\n",
                        r.what,
                        g.words(self.stale_hours, self.offsite_stale_days)
                    ));
                }
            }
        }
        // the name column as wide as the longest name, within the width: a longer name gets a
        // line of its own, its numbers on the next
        let cols = backup_host::human::width().unwrap_or(100);
        let longest = self
            .rows
            .iter()
            .map(|r| r.what.chars().count() + 11)
            .max()
            .unwrap_or(4);
        let name_w = longest.clamp(4, cols.saturating_sub(44).max(20));
        out.push_str(&format!(
            "\n{:<name_w$} {:>10} {:>10} {:>6} {:>10}\n",
            "what", "snapshot", "version", "sqlite", "offsite"
        ));
        for r in &self.rows {
            let mark = if r.excluded {
                " (excluded)"
            } else if r.gaps.is_empty() {
                ""
            } else {
                " !"
            };
            let (snap, ver, sq, off) = if r.lv.is_some() {
                (
                    age(r.snapshot),
                    age(r.version),
                    r.sqlite_copies.to_string(),
                    String::new(),
                )
            } else {
                (
                    String::new(),
                    String::new(),
                    String::new(),
                    age(r.last_success),
                )
            };
            let what = format!("{}{mark}", r.what);
            let what = if what.chars().count() > name_w {
                out.push_str(&format!("{what}\n"));
                String::new()
            } else {
                what
            };
            let row = format!("{what:<name_w$} {snap:>10} {ver:>10} {sq:>6} {off:>10}");
            out.push_str(&format!("{}\n", row.trim_end()));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::{FakeStore, Transcript};
    use backup_core::{IsoWeek, SelectedVolume, Selection, SnapshotInfo};
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn config(extra: &str) -> Config {
        let text = format!("backup-root = \"/b\"\n[status]\nstale-hours = 26\n{extra}");
        Config::from_toml("/etc/hb/config.toml".into(), &text).unwrap()
    }

    /// One selected volume `vm-1` of `vaultwarden/data`, snapshotted at `snapshot`.
    fn live_with(snapshot: Option<DateTime<Utc>>) -> Live {
        Live {
            selection: Selection {
                selected: vec![SelectedVolume {
                    lv: "vm-1".into(),
                    namespace: "vaultwarden".into(),
                    pvc: "data".into(),
                    resolved: true,
                }],
                ..Selection::default()
            },
            snapshots: snapshot
                .map(|t| SnapshotInfo {
                    name: "vm-1-snap".into(),
                    volume: "vm-1".into(),
                    created: t,
                })
                .into_iter()
                .collect(),
            warnings: Vec::new(),
            unlisted: None,
        }
    }

    fn run(cfg: &Config, store: &FakeStore, live: Live, now: DateTime<Utc>) -> StatusReport {
        let deps = StatusDeps {
            cfg,
            now,
            store,
            live,
            from_offsite: false,
        };
        status_of(deps, None).unwrap()
    }

    fn gaps_of<'r>(r: &'r StatusReport, what: &str) -> &'r [Gap] {
        &r.rows.iter().find(|row| row.what == what).unwrap().gaps
    }

    #[test]
    fn a_fresh_version_and_snapshot_are_protected_and_old_ones_are_gaps() {
        let cfg = config("");
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let week: IsoWeek = "2026-10".parse().unwrap();
        store.add_version(Series::Pvc, week, "vaultwarden", "data", Some(at(5, 3)));
        let fresh = run(&cfg, &store, live_with(Some(at(5, 3))), at(5, 12));
        assert!(
            gaps_of(&fresh, "vaultwarden/data").is_empty(),
            "{:?}",
            fresh.rows
        );
        // two days later, nothing new: both the version and the snapshot are stale
        let stale = run(&cfg, &store, live_with(Some(at(5, 3))), at(7, 12));
        let gaps = gaps_of(&stale, "vaultwarden/data");
        assert!(gaps.contains(&Gap::StaleVersion { hours: 57 }), "{gaps:?}");
        assert!(
            gaps.contains(&Gap::StaleSnapshot { hours: Some(57) }),
            "{gaps:?}"
        );
    }

    #[test]
    fn a_volume_never_copied_and_a_backend_that_cannot_list_are_gaps() {
        let cfg = config("");
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let r = run(&cfg, &store, live_with(None), at(5, 12));
        assert!(gaps_of(&r, "vaultwarden/data").contains(&Gap::NeverBackedUp));
        let unlisted = Live {
            unlisted: Some("lvs failed".into()),
            ..live_with(None)
        };
        let r = run(&cfg, &store, unlisted, at(5, 12));
        assert!(r
            .rows
            .iter()
            .any(|row| row.gaps.contains(&Gap::VolumesUnlisted {
                reason: "lvs failed".into()
            })));
    }

    #[test]
    fn an_offsite_sync_older_than_its_limit_is_a_gap_and_a_fresh_one_is_not() {
        let cfg = config("[offsite]\ndestination = \"/nas\"\n");
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let state = |t: DateTime<Utc>| {
            let s = OffsiteState {
                backup_root: Some(t),
                ..OffsiteState::default()
            };
            serde_json::to_vec(&s).unwrap()
        };
        let path = backup_core::StoreFile::OffsiteState;
        store.write(path, &state(at(1, 3))).unwrap();
        let late = run(&cfg, &store, live_with(Some(at(20, 3))), at(20, 12));
        let days = i64::from(cfg.status.offsite_stale_days);
        assert!(
            gaps_of(&late, "offsite (backup disk)")
                .iter()
                .any(|g| matches!(g, Gap::OffsiteStale { days: Some(d) } if *d > days)),
            "{:?}",
            late.rows
        );
        store.write(path, &state(at(20, 3))).unwrap();
        let fresh = run(&cfg, &store, live_with(Some(at(20, 3))), at(20, 12));
        assert!(gaps_of(&fresh, "offsite (backup disk)").is_empty());
    }
}
