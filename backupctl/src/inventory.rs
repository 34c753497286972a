//! `backupctl list`: every backup there is, per layer, from the disk and the backend.

use std::collections::{BTreeMap, BTreeSet};

use backup_core::{
    decode_record, select_volumes, BackupRoot, BackupStore, Config, EntryKind, FileEntry, IsoWeek,
    Selection, Series, SnapshotInfo, StoreFile, WeekVersion,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use backup_host::error::Result;
use backup_host::exit::Exit;
use backup_host::repository::{RepositoryTarget, TierListing};
use backup_run::{Context, Outcome};

/// One weekly version of a PVC.
#[derive(Debug, Clone, Serialize)]
pub struct VersionListing {
    /// Its week.
    pub week: String,
    /// When it was completed; `None`: incomplete (never restored from, never linked against).
    pub completed_at: Option<DateTime<Utc>>,
    /// Files, from its record (`None` without a usable record).
    pub files: Option<u64>,
    /// Bytes of those files.
    pub bytes: Option<u64>,
    /// Bytes of the files only this version holds (no other version shares their inode): what
    /// removing it would free.
    pub unique_bytes: u64,
    /// SQLite copies of that week.
    pub sqlite_copies: u64,
    /// Files `backupctl verify` found differing from the record (0: not known to be damaged).
    pub damaged_files: u64,
}

/// Everything backed up of one PVC.
#[derive(Debug, Clone, Serialize)]
pub struct PvcListing {
    /// Namespace (`_unresolved` for a volume without a PV).
    pub namespace: String,
    /// PVC name.
    pub pvc: String,
    /// Its LV, when the backend has it now.
    pub lv: Option<String>,
    /// Whether its namespace is excluded (`snapshots.exclude-namespaces`).
    pub excluded: bool,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Its weekly versions, oldest first.
    pub versions: Vec<VersionListing>,
}

/// The dumps of one name in one dump folder.
#[derive(Debug, Clone, Serialize)]
pub struct DumpListing {
    /// The folder.
    pub folder: Utf8PathBuf,
    /// The dump name (`postgresql`).
    pub name: String,
    /// How many.
    pub count: usize,
    /// The newest one's time.
    pub newest: Option<DateTime<Utc>>,
    /// Their bytes.
    pub bytes: u64,
}

/// `backupctl list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    /// Per PVC.
    pub pvcs: Vec<PvcListing>,
    /// pfSense weeks.
    pub pfsense: Vec<WeekVersion>,
    /// PVE config weeks.
    pub pve_config: Vec<WeekVersion>,
    /// Dumps in the configured folders.
    pub dumps: Vec<DumpListing>,
    /// What could not be looked at (a backend or API that did not answer).
    pub warnings: Vec<String>,
    /// `--tier`: each tier repository's snapshots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tier: Vec<TierListing>,
}

/// The backend's view: the selection and every snapshot, or why not.
pub(super) struct Live {
    pub selection: Selection,
    pub snapshots: Vec<SnapshotInfo>,
    pub warnings: Vec<String>,
    /// Why the backend's volumes could not be listed: then nothing is known to be protected.
    pub unlisted: Option<String>,
}

pub(super) fn live(ctx: &Context<'_>, cfg: &Config) -> Live {
    let mut warnings = Vec::new();
    let mut unlisted = None;
    let runner = ctx.runner();
    let (claims, w) = backup_host::setup::claims(cfg, runner.as_ref());
    warnings.extend(w);
    let volumes = match ctx.volumes().and_then(|v| Ok(v.list_volumes()?)) {
        Ok(v) => v.into_iter().map(|v| v.name).collect::<Vec<_>>(),
        Err(e) => {
            warnings.push(format!("the volumes could not be listed: {e}"));
            unlisted = Some(e.to_string());
            Vec::new()
        }
    };
    let snapshots = match ctx.volumes().and_then(|v| Ok(v.list_snapshots()?)) {
        Ok(s) => s,
        Err(e) => {
            warnings.push(format!("the snapshots could not be listed: {e}"));
            Vec::new()
        }
    };
    let selection = select_volumes(
        &volumes,
        &cfg.snapshots.lv_pattern,
        &claims,
        &cfg.snapshots.exclude_namespaces,
    );
    Live {
        selection,
        snapshots,
        warnings,
        unlisted,
    }
}

/// How many files of version `w` are on its damage list (written by `backupctl verify`).
pub(super) fn damaged_files(
    store: &dyn backup_core::BackupStore,
    w: &backup_core::WeekVersion,
) -> u64 {
    store
        .read(StoreFile::Damaged(w.week, &w.namespace, &w.pvc))
        .ok()
        .flatten()
        .map_or(0, |b| {
            backup_host::version_commit::parse_damaged(&b).len() as u64
        })
}

/// The regular files of a version's record and their bytes, scanned in place; `(0, 0)` without
/// a usable record.
pub(super) fn record_totals(store: &dyn BackupStore, v: &WeekVersion) -> (u64, u64) {
    let file = StoreFile::Record(v.week, &v.namespace, &v.pvc);
    let Some(bytes) = store.read(file).ok().flatten() else {
        return (0, 0);
    };
    let (mut files, mut size) = (0, 0);
    let scanned = backup_core::visit_record(&bytes, |e| {
        if e.fields.kind == backup_core::EntryKind::File {
            files += 1;
            size += e.fields.size;
        }
    });
    scanned.map_or((0, 0), |_| (files, size))
}

/// The decoded record of a version, when there is a usable one.
pub(super) fn record(store: &dyn BackupStore, v: &WeekVersion) -> Option<Vec<FileEntry>> {
    // while a commit is half done, the record that goes with the copy now
    decode_record(
        &store
            .read(StoreFile::Record(v.week, &v.namespace, &v.pvc))
            .ok()??,
    )
    .ok()
}

/// Every regular file under `dir` (recursively), mapped by `f(path relative to dir, lstat)`.
fn regular_files<T: Send>(
    dir: &Utf8Path,
    f: impl Fn(&Utf8Path, &rustix::fs::Stat) -> T + Sync,
) -> Vec<T> {
    let walked = backup_walk::walk(
        dir.as_std_path(),
        backup_walk::Options {
            stat: true,
            workers: 0,
        },
        Vec::new,
        |out: &mut Vec<T>, v: &backup_walk::Visit<'_>| {
            if let (rustix::fs::FileType::RegularFile, Some(st), Some(rel)) =
                (v.kind, v.stat, Utf8Path::from_path(v.rel))
            {
                out.push(f(rel, st));
            }
        },
    );
    walked.states.into_iter().flatten().collect()
}

/// Regular files under `dir` (recursively), with their sizes, sorted.
pub(super) fn files_under(dir: &Utf8Path) -> Vec<(Utf8PathBuf, u64)> {
    let mut all = regular_files(dir, |rel, st| (dir.join(rel), st.st_size as u64));
    all.sort();
    all
}

/// Inodes and sizes of the regular files of a copy.
fn inodes(dir: &Utf8Path) -> BTreeMap<u64, u64> {
    regular_files(dir, |_, st| (st.st_ino, st.st_size as u64))
        .into_iter()
        .collect()
}

pub(super) use backup_dumps::parse_dump_name;

/// The dumps of the configured folders, by folder and name.
pub(super) fn dumps(cfg: &Config, warnings: &mut Vec<String>) -> Vec<DumpListing> {
    let mut out = Vec::new();
    for folder in &cfg.dumps.folders {
        let entries = match folder.read_dir_utf8() {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("dump folder {folder} cannot be read: {e}"));
                continue;
            }
        };
        let mut by_name: BTreeMap<String, DumpListing> = BTreeMap::new();
        for e in entries.flatten() {
            let Some((name, at)) = parse_dump_name(e.file_name()) else {
                continue;
            };
            if e.file_name().starts_with('.') {
                continue;
            }
            let bytes = if e.path().is_dir() {
                files_under(e.path()).iter().map(|(_, b)| b).sum()
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
            let d = by_name.entry(name.clone()).or_insert(DumpListing {
                folder: folder.clone(),
                name,
                count: 0,
                newest: None,
                bytes: 0,
            });
            d.count += 1;
            d.bytes += bytes;
            d.newest = d.newest.max(Some(at));
        }
        out.extend(by_name.into_values());
    }
    out
}

/// Each tier repository's snapshots; one that cannot be listed is a warning.
fn tier_listings(
    targets: &[Box<dyn RepositoryTarget + '_>],
    warnings: &mut Vec<String>,
) -> Vec<TierListing> {
    let mut out = Vec::new();
    for target in targets {
        match target.listing() {
            Ok(l) => out.push(l),
            Err(e) => warnings.push(format!("tier {}: {e}", target.name())),
        }
    }
    out
}

/// One PVC's versions (oldest first) as listed: files, bytes, the bytes only that version holds
/// (inodes no other version of the PVC shares), SQLite copies, damaged files.
fn version_listings(
    store: &dyn BackupStore,
    root: &BackupRoot,
    mine: &[&WeekVersion],
) -> Vec<VersionListing> {
    let per_version: Vec<BTreeMap<u64, u64>> = mine
        .iter()
        .map(|v| inodes(&root.pvc_copy(v.week, &v.namespace, &v.pvc)))
        .collect();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for m in &per_version {
        for ino in m.keys() {
            *seen.entry(*ino).or_default() += 1;
        }
    }
    mine.iter()
        .zip(&per_version)
        .map(|(v, m)| {
            let rec = record(store, v);
            let files = rec
                .as_ref()
                .map(|r| r.iter().filter(|e| e.kind == EntryKind::File).count() as u64);
            let bytes = rec.as_ref().map(|r| r.iter().map(|e| e.size).sum());
            VersionListing {
                week: v.week.to_string(),
                completed_at: v.completed_at,
                files,
                bytes,
                unique_bytes: m
                    .iter()
                    .filter(|(ino, _)| seen.get(ino) == Some(&1))
                    .map(|(_, size)| size)
                    .sum(),
                sqlite_copies: files_under(&root.sqlite_copy(v.week, &v.namespace, &v.pvc)).len()
                    as u64,
                damaged_files: damaged_files(store, v),
            }
        })
        .collect()
}

/// Lists every backup.
///
/// # Errors
/// When the backup root cannot be listed.
pub fn list(ctx: &Context<'_>, with_tier: bool) -> Result<ListReport> {
    let cfg = ctx.cfg()?;
    let store = ctx.store()?;
    list_of(ListDeps {
        cfg,
        store: store.as_ref(),
        live: live(ctx, cfg),
        repositories: if with_tier {
            ctx.repositories()?
        } else {
            Vec::new()
        },
    })
}

/// What `list` reads, and nothing else: built from the run by [`list`], from fakes in a test.
pub(crate) struct ListDeps<'a> {
    /// The configuration (`[dumps] folders`).
    pub cfg: &'a Config,
    /// The backup root's versions and records.
    pub store: &'a dyn BackupStore,
    /// The backend's volumes and snapshots.
    pub live: Live,
    /// The tier's repositories to list (`--tier`); none without.
    pub repositories: Vec<Box<dyn RepositoryTarget + 'a>>,
}

/// Every backup, from `deps`.
///
/// # Errors
/// When the backup root cannot be listed.
pub(crate) fn list_of(deps: ListDeps<'_>) -> Result<ListReport> {
    let ListDeps {
        cfg,
        store,
        live,
        repositories,
    } = deps;
    let Live {
        selection,
        snapshots,
        mut warnings,
        ..
    } = live;
    let versions = store.list_versions(Series::Pvc)?;
    let mut keys: BTreeSet<(String, String)> = versions
        .iter()
        .map(|v| (v.namespace.clone(), v.pvc.clone()))
        .collect();
    let mut lv_of: BTreeMap<(String, String), (String, bool)> = BTreeMap::new();
    for (vols, excluded) in [(&selection.selected, false), (&selection.excluded, true)] {
        for v in vols {
            let k = (v.namespace.clone(), v.pvc.clone());
            lv_of.insert(k.clone(), (v.lv.clone(), excluded));
            keys.insert(k);
        }
    }
    let root = store.root().clone();
    let mut pvcs = Vec::new();
    for (ns, pvc) in keys {
        let lv = lv_of.get(&(ns.clone(), pvc.clone()));
        let mut mine: Vec<&WeekVersion> = versions
            .iter()
            .filter(|v| v.namespace == ns && v.pvc == pvc)
            .collect();
        mine.sort_by_key(|v| v.week);
        let listed = version_listings(store, &root, &mine);
        let snaps = lv.map_or_else(Vec::new, |(lv, _)| {
            let mut s: Vec<SnapshotInfo> = snapshots
                .iter()
                .filter(|s| &s.volume == lv)
                .cloned()
                .collect();
            s.sort_by_key(|s| s.created);
            s
        });
        pvcs.push(PvcListing {
            namespace: ns,
            pvc,
            lv: lv.map(|(l, _)| l.clone()),
            excluded: lv.is_some_and(|(_, e)| *e),
            snapshots: snaps,
            versions: listed,
        });
    }
    let dumps = dumps(cfg, &mut warnings);
    let tier = tier_listings(&repositories, &mut warnings);
    Ok(ListReport {
        pvcs,
        pfsense: store.list_versions(Series::Pfsense)?,
        pve_config: store.list_versions(Series::PveConfig)?,
        dumps,
        warnings,
        tier,
    })
}

fn week_list(v: &[WeekVersion]) -> String {
    if v.is_empty() {
        return "none".to_owned();
    }
    v.iter()
        .map(|w| {
            if w.is_complete() {
                w.week.to_string()
            } else {
                format!("{} (incomplete)", w.week)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl ListReport {
    /// The dump and tier lines of the text report.
    fn dumps_and_tier_text(&self) -> String {
        let mut out = String::new();
        if self.dumps.is_empty() {
            out.push_str("dumps: none found (`[dumps] folders` lists where to look)\n");
        }
        for d in &self.dumps {
            out.push_str(&format!(
                "dumps {} in {}: {}, newest {}, {}\n",
                d.name,
                d.folder,
                d.count,
                d.newest
                    .map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                backup_host::human::bytes(d.bytes)
            ));
        }
        for t in &self.tier {
            for s in &t.snapshots {
                out.push_str(&format!(
                    "tier {} {} {}: snapshot {} {}\n",
                    t.repository,
                    s.pvc,
                    s.week,
                    &s.id[..s.id.len().min(8)],
                    s.time.format("%Y-%m-%d %H:%M")
                ));
            }
            if t.snapshots.is_empty() {
                out.push_str(&format!("tier {}: no snapshot yet\n", t.repository));
            }
        }
        out
    }
}

impl Outcome for ListReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        for p in &self.pvcs {
            out.push_str(&format!(
                "{}/{}{}{}\n",
                p.namespace,
                p.pvc,
                p.lv.as_ref().map_or(String::new(), |l| format!(" ({l})")),
                if p.excluded { "  [excluded]" } else { "" }
            ));
            let snaps = match (p.snapshots.first(), p.snapshots.last()) {
                (Some(a), Some(b)) => format!(
                    "{}, {} to {}",
                    p.snapshots.len(),
                    a.created.format("%Y-%m-%d %H:%M"),
                    b.created.format("%Y-%m-%d %H:%M")
                ),
                _ => "none".to_owned(),
            };
            out.push_str(&format!("  snapshots: {snaps}\n"));
            if p.versions.is_empty() {
                out.push_str("  weekly versions: none\n");
            }
            for v in &p.versions {
                let state = match v.completed_at {
                    Some(_) if v.damaged_files > 0 => format!(
                        "DAMAGED ({})",
                        backup_host::human::plural(v.damaged_files, "file")
                    ),
                    Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
                    None => "INCOMPLETE".to_owned(),
                };
                let size = match (v.files, v.bytes) {
                    (Some(f), Some(b)) => format!(
                        "{}, {}",
                        backup_host::human::plural(f, "file"),
                        backup_host::human::bytes(b)
                    ),
                    _ => "no record".to_owned(),
                };
                out.push_str(&format!(
                    "  {}  {state:<16}  {size}, {} only here, {}\n",
                    v.week,
                    backup_host::human::bytes(v.unique_bytes),
                    backup_host::human::plural(v.sqlite_copies, "SQLite copy")
                ));
            }
        }
        out.push_str(&format!("pfSense weeks: {}\n", week_list(&self.pfsense)));
        out.push_str(&format!(
            "PVE config weeks: {}\n",
            week_list(&self.pve_config)
        ));
        out.push_str(&self.dumps_and_tier_text());
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.trim_end().to_owned()
    }
}

/// The newest complete version of `namespace/pvc`, or the one of `week` (which must be
/// complete).
///
/// # Errors
/// When there is none, or the week's version is incomplete.
pub(super) fn pick_version(
    store: &dyn BackupStore,
    namespace: &str,
    pvc: &str,
    week: Option<IsoWeek>,
) -> Result<WeekVersion> {
    let all = store.list_versions(Series::Pvc)?;
    if let Some(e) = crate::pvc_ref::unknown_pvc(&all, (namespace, pvc)) {
        return Err(e);
    }
    let mut mine: Vec<WeekVersion> = all
        .into_iter()
        .filter(|v| v.namespace == namespace && v.pvc == pvc)
        .collect();
    mine.sort_by_key(|v| v.week);
    let found = match week {
        Some(w) => mine.into_iter().find(|v| v.week == w),
        None => mine.into_iter().rev().find(WeekVersion::is_complete),
    };
    match found {
        Some(v) if v.is_complete() => Ok(v),
        Some(v) => Err(backup_host::error::Error::NotFound(format!(
            "week {} of {namespace}/{pvc} is incomplete (its copy never finished): choose a \
             complete one from `backupctl list`",
            v.week
        ))),
        None => Err(backup_host::error::Error::NotFound(format!(
            "no complete version of {namespace}/{pvc}{}: `backupctl list` shows what there is",
            week.map_or(String::new(), |w| format!(" in week {w}"))
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::{FakeStore, Transcript};
    use backup_core::{SelectedVolume, SnapshotInfo};
    use backup_host::repository::{FakeRepository, TierListed};
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 3, 0, 0).unwrap()
    }

    fn volume(lv: &str, namespace: &str, pvc: &str) -> SelectedVolume {
        SelectedVolume {
            lv: lv.into(),
            namespace: namespace.into(),
            pvc: pvc.into(),
            resolved: true,
        }
    }

    fn snapshot(volume: &str, day: u32) -> SnapshotInfo {
        SnapshotInfo {
            name: format!("{volume}-snap-{day}"),
            volume: volume.into(),
            created: at(day),
        }
    }

    #[test]
    fn every_pvc_with_a_volume_or_a_version_is_listed_with_its_snapshots_oldest_first() {
        let cfg =
            Config::from_toml("/etc/hb/config.toml".into(), "backup-root = \"/b\"\n").unwrap();
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let (w9, w10) = ("2026-09".parse().unwrap(), "2026-10".parse().unwrap());
        store.add_version(Series::Pvc, w10, "vaultwarden", "data", Some(at(5)));
        store.add_version(Series::Pvc, w9, "vaultwarden", "data", Some(at(1)));
        // a PVC whose volume is gone: still listed, with its versions
        store.add_version(Series::Pvc, w9, "old", "gone", Some(at(1)));
        let live = Live {
            selection: Selection {
                selected: vec![volume("vm-1", "vaultwarden", "data")],
                excluded: vec![volume("vm-2", "kube-system", "etcd")],
                ..Selection::default()
            },
            snapshots: vec![
                snapshot("vm-1", 6),
                snapshot("vm-1", 2),
                snapshot("vm-9", 1),
            ],
            warnings: vec!["the cluster did not answer".into()],
            unlisted: None,
        };
        let r = list_of(ListDeps {
            cfg: &cfg,
            store: &store,
            live,
            repositories: Vec::new(),
        })
        .unwrap();
        let names: Vec<String> = r
            .pvcs
            .iter()
            .map(|p| format!("{}/{} {:?} {}", p.namespace, p.pvc, p.lv, p.excluded))
            .collect();
        assert_eq!(
            names,
            [
                "kube-system/etcd Some(\"vm-2\") true",
                "old/gone None false",
                "vaultwarden/data Some(\"vm-1\") false"
            ]
        );
        let vw = &r.pvcs[2];
        let weeks: Vec<&str> = vw.versions.iter().map(|v| v.week.as_str()).collect();
        assert_eq!(weeks, ["2026-09", "2026-10"]);
        let snaps: Vec<DateTime<Utc>> = vw.snapshots.iter().map(|s| s.created).collect();
        assert_eq!(
            snaps,
            [at(2), at(6)],
            "its own snapshots only, oldest first"
        );
        assert_eq!(r.warnings, ["the cluster did not answer"]);
        assert!(r.tier.is_empty());
    }

    #[test]
    fn a_repository_that_cannot_be_listed_is_a_warning_and_the_others_are_listed() {
        let cfg =
            Config::from_toml("/etc/hb/config.toml".into(), "backup-root = \"/b\"\n").unwrap();
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let listed = TierListed {
            pvc: "vaultwarden/data".into(),
            week: "2026-10".into(),
            time: at(5),
            id: "0123abcd".into(),
        };
        let r = list_of(ListDeps {
            cfg: &cfg,
            store: &store,
            live: Live {
                selection: Selection::default(),
                snapshots: Vec::new(),
                warnings: Vec::new(),
                unlisted: None,
            },
            repositories: vec![
                Box::new(FakeRepository {
                    name: "usb".into(),
                    ..FakeRepository::default()
                }),
                Box::new(FakeRepository {
                    name: "b2".into(),
                    snapshots: Some(vec![listed]),
                    ..FakeRepository::default()
                }),
            ],
        })
        .unwrap();
        assert_eq!(r.tier.len(), 1);
        assert_eq!(r.tier[0].repository, "b2");
        assert_eq!(r.tier[0].snapshots[0].id, "0123abcd");
        assert!(
            r.warnings.iter().any(|w| w.starts_with("tier usb: ")),
            "{:?}",
            r.warnings
        );
    }
}
