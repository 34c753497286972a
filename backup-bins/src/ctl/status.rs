//! `backupctl status`: the protection matrix from live state, gaps first. Exit 1 when there is
//! a gap, so a timer or a person can act on it.

use backup_core::{Series, UNRESOLVED_NAMESPACE};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::inventory::{live, Live};
use crate::error::Result;
use crate::exit::Exit;
use crate::offsite::{OffsiteState, STATE_FILE};
use crate::run::{Context, Outcome};

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
            Gap::StaleVersion { hours } => {
                format!("newest complete version is {hours} h old (limit {limit_hours} h)")
            }
            Gap::StaleSnapshot { hours: Some(h) } => {
                format!("newest snapshot is {h} h old (limit {limit_hours} h)")
            }
            Gap::StaleSnapshot { hours: None } => "no snapshot".to_owned(),
            Gap::Unresolved => {
                "no PV maps to this volume: backed up under _unresolved, not under its PVC"
                    .to_owned()
            }
            Gap::OffsiteStale { days: Some(d) } => {
                format!("last offsite sync {d} days ago (limit {limit_days} days)")
            }
            Gap::OffsiteStale { days: None } => "never synced offsite".to_owned(),
            Gap::FullPassPending { reason } => format!("full pass pending: {reason}"),
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
    let now = ctx.now;
    let limit_h = stale_hours.unwrap_or(cfg.status.stale_hours);
    let limit_d = cfg.status.offsite_stale_days;
    let Live {
        selection,
        snapshots,
        mut warnings,
        unlisted,
    } = live(ctx, cfg);
    let versions = store.list_versions(Series::Pvc)?;
    let hours = |t: DateTime<Utc>| (now - t).num_hours();
    let mut rows = Vec::new();
    for (vols, excluded) in [(&selection.selected, false), (&selection.excluded, true)] {
        for v in vols {
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
            }
            rows.push(StatusRow {
                what: format!("{}/{}", v.namespace, v.pvc),
                lv: Some(v.lv.clone()),
                excluded,
                snapshot: snap,
                version: newest.and_then(|w| w.completed_at),
                sqlite_copies: newest.map_or(0, |w| {
                    super::inventory::files_under(&store.root().sqlite_copy(
                        w.week,
                        &w.namespace,
                        &w.pvc,
                    ))
                    .len() as u64
                }),
                last_success: None,
                gaps,
            });
        }
    }
    if let Some(reason) = unlisted {
        rows.push(StatusRow {
            what: "volumes (backend)".to_owned(),
            lv: None,
            excluded: false,
            snapshot: None,
            version: None,
            sqlite_copies: 0,
            last_success: None,
            gaps: vec![Gap::VolumesUnlisted { reason }],
        });
    }
    for r in &selection.refused {
        warnings.push(format!(
            "volume {} is not backed up: {}",
            r.volume.lv, r.reason
        ));
    }
    if let Some(off) = &cfg.offsite {
        let path = store.root().root().join(STATE_FILE);
        let read = store
            .read_file(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
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
        let last = state.backup_root;
        let mut gaps = Vec::new();
        match last {
            Some(t) if now - t <= Duration::days(i64::from(limit_d)) => {}
            other => gaps.push(Gap::OffsiteStale {
                days: other.map(|t| (now - t).num_days()),
            }),
        }
        rows.push(StatusRow {
            what: "offsite (backup disk)".to_owned(),
            lv: None,
            excluded: false,
            snapshot: None,
            version: None,
            sqlite_copies: 0,
            last_success: last,
            gaps,
        });
        for tree in &off.trees {
            let marker =
                backup_core::ChangeLogFiles::new(&off.change_log, &tree.name).full_pass_marker();
            let pending = std::fs::read_to_string(&marker).ok();
            let last = state.trees.get(&tree.name).and_then(|t| t.last_success);
            let mut gaps = Vec::new();
            if let Some(reason) = pending {
                gaps.push(Gap::FullPassPending {
                    reason: reason.trim().to_owned(),
                });
            }
            match last {
                Some(t) if now - t <= Duration::days(i64::from(limit_d)) => {}
                other => gaps.push(Gap::OffsiteStale {
                    days: other.map(|t| (now - t).num_days()),
                }),
            }
            rows.push(StatusRow {
                what: format!("tree {}", tree.name),
                lv: None,
                excluded: false,
                snapshot: None,
                version: None,
                sqlite_copies: 0,
                last_success: last,
                gaps,
            });
        }
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
            Some(t) => {
                let h = (self.now - t).num_hours();
                if h < 48 {
                    format!("{h} h ago")
                } else {
                    format!("{} d ago", h / 24)
                }
            }
            None => "never".to_owned(),
        };
        let mut out = String::new();
        let gaps: Vec<&StatusRow> = self.gaps().collect();
        if gaps.is_empty() {
            out.push_str("no gaps: every PVC has a snapshot and a complete version newer than ");
            out.push_str(&format!("{} h\n", self.stale_hours));
        } else {
            out.push_str(&format!("GAPS ({}):\n", gaps.len()));
            for r in &gaps {
                for g in &r.gaps {
                    out.push_str(&format!(
                        "  {:<40} {}\n",
                        r.what,
                        g.words(self.stale_hours, self.offsite_stale_days)
                    ));
                }
            }
        }
        out.push_str(&format!(
            "\n{:<40} {:>12} {:>12} {:>7} {:>12}\n",
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
            out.push_str(&format!(
                "{:<40} {snap:>12} {ver:>12} {sq:>7} {off:>12}\n",
                format!("{}{mark}", r.what)
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.trim_end().to_owned()
    }
}
