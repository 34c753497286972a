//! The volume stage: a snapshot (a fresh one when the newest is too old), activated and mounted
//! read-only, copied with rsync into this week's folder, its SQLite databases copied, unmounted
//! and deactivated always; the version is complete only when all of that succeeded.

use std::time::Instant;

use backup_core::{
    pool_guard, Config, DailyPlan, Refusal, Series, SnapshotChoice, SourceKind, SyncRequest,
    SyncStats, VolumePlan,
};
use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::mounts::mount_point_options;
use crate::outcome::{Status, VolumeResult};

use super::{incremental, DailyDeps};

/// A result for `vp` that did not run (yet).
pub(super) fn volume_result(
    vp: &VolumePlan,
    status: Status,
    error: Option<String>,
) -> VolumeResult {
    VolumeResult {
        lv: vp.volume.lv.clone(),
        namespace: vp.volume.namespace.clone(),
        pvc: vp.volume.pvc.clone(),
        status,
        error,
        snapshot: vp.snapshot.name().to_owned(),
        link_week: vp.link_week,
        stats: None,
        warnings: Vec::new(),
        sqlite: Vec::new(),
        seconds: 0.0,
    }
}

/// Backs up one volume; never fails the run, only itself.
pub(super) fn backup_volume(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
) -> VolumeResult {
    let started = Instant::now();
    let mut r = volume_result(vp, Status::Ok, None);
    let outcome = match &vp.refused {
        Some(why) => Err(Error::Core(why.clone().into())),
        None => copy_volume(cfg, deps, plan, vp),
    };
    match outcome {
        Ok(copied) => {
            r.stats = Some(copied.stats);
            r.warnings = copied.warnings;
            r.sqlite = copied.sqlite;
        }
        // --dry-run: the copy was planned, not made
        Err(Error::Core(backup_core::Error::NotCarriedOut { .. })) => r.status = Status::Planned,
        Err(e) => {
            r.status = Status::Failed;
            r.error = Some(e.to_string());
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// `mount-dir`, created when missing, as its canonical path: mountinfo shows canonical paths,
/// so a mount-dir through a symlink (`/var/run` on Debian) or with `//` would never be found
/// mounted, and every run would stack another mount.
///
/// # Errors
/// When it cannot be created or resolved; the error names the key.
pub fn mount_root(cfg: &Config) -> Result<Utf8PathBuf> {
    let dir = &cfg.pvc_backup.mount_dir;
    let key = |action: &'static str, source: std::io::Error| Error::ConfiguredPath {
        key: "pvc-backup.mount-dir",
        file: cfg.file.clone(),
        action,
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| key("create the mount folder", e))?;
    dir.canonicalize_utf8()
        .map_err(|e| key("resolve the mount folder", e))
}

/// Makes `mount_root/<lv>` a mount point: creates it when missing, and refuses anything that is
/// not a real folder. A symlink there (`<lv> -> /etc`) would mount the snapshot over its target.
///
/// # Errors
/// [`Refusal::MountPointNotFolder`]; I/O errors naming the path.
fn mount_point(mount_root: &Utf8Path, lv: &str) -> Result<Utf8PathBuf> {
    backup_core::check_folder_name(lv)
        .map_err(|reason| Error::Core(Refusal::BadName { reason }.into()))?;
    let target = mount_root.join(lv);
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(m) => {
            return Err(Error::Core(
                Refusal::MountPointNotFolder {
                    path: target,
                    what: if m.file_type().is_symlink() {
                        "a symlink".to_owned()
                    } else {
                        "a file".to_owned()
                    },
                }
                .into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&target)
                .map_err(|e| Error::io("create the mount point", &target, e))?;
        }
        Err(e) => return Err(Error::io("stat the mount point", &target, e)),
    }
    Ok(target)
}

/// What copying one mounted snapshot produced.
struct Copied {
    stats: SyncStats,
    warnings: Vec<String>,
    sqlite: Vec<backup_core::DatabaseCopy>,
}

fn copy_volume(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
) -> Result<Copied> {
    let v = &vp.volume;
    let mut warnings = Vec::new();
    if let SnapshotChoice::Take { name, reason } = &vp.snapshot {
        // the same guard as lvm-pvc-snapshot: a full thin pool turns every volume read-only
        if let Some(Refusal::PoolLow {
            free_percent,
            min_percent,
        }) = pool_guard(
            deps.volumes.pool_usage()?,
            cfg.snapshots.min_pool_free_percent,
        ) {
            return Err(Error::Core(
                Refusal::StaleSnapshotPoolLow {
                    stale: reason.clone(),
                    free_percent,
                    min_percent,
                }
                .into(),
            ));
        }
        deps.volumes.create_snapshot(&v.lv, name, plan.now)?;
        warnings.push(format!("took snapshot {name}: {reason}"));
    }
    let snap = vp.snapshot.name();
    let source = deps.volumes.activate(snap)?;
    let copied = (|| -> Result<Copied> {
        let mount_root = mount_root(cfg)?;
        let target = mount_point(&mount_root, &v.lv)?;
        if mount_point_options(&target)?.is_some() {
            // we hold the run lock: a mount here was left by a run that was killed
            deps.mounter.unmount(&target)?;
            warnings.push(format!(
                "unmounted {target}, left mounted by an interrupted run"
            ));
        }
        // checked again right before mounting: nothing may have put a symlink there since
        let target = mount_point(&mount_root, &v.lv)?;
        let read_root = deps.mounter.mount_ro(&source, &target)?;
        let copied = copy_mounted(deps, plan, vp, &read_root);
        let unmounted = deps.mounter.unmount(&target).map_err(Error::from);
        let copied = copied?;
        unmounted?;
        Ok(copied)
    })();
    let deactivated = deps.volumes.deactivate(snap).map_err(Error::from);
    let mut copied = copied?;
    deactivated?;
    // complete only once the copy, the unmount and the deactivation all succeeded
    deps.store
        .mark_complete(Series::Pvc, plan.week, &v.namespace, &v.pvc, plan.now)?;
    warnings.append(&mut copied.warnings);
    copied.warnings = warnings;
    Ok(copied)
}

/// The record and copy an incremental copy builds on: this week's when its version is complete
/// (a later run of the week), else the linked week's, when its copy folder is fresh to build.
/// `None` (a full rsync) when there is none, it does not decode (a warning), `--full` was asked,
/// or the monthly full pass is due.
fn base_record(
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    warnings: &mut Vec<String>,
) -> Option<(
    std::collections::BTreeMap<Vec<u8>, backup_core::FileEntry>,
    Utf8PathBuf,
)> {
    if deps.force_full {
        return None;
    }
    let v = &vp.volume;
    let root = deps.store.root();
    let marker = |w| {
        deps.store
            .read_file(&root.pvc_complete_marker(w, &v.namespace, &v.pvc))
            .ok()
            .flatten()
            .and_then(|b| backup_core::parse_marker(&String::from_utf8_lossy(&b)))
    };
    let (week, copy) = if marker(plan.week).is_some() {
        (plan.week, vp.dest.clone())
    } else if vp.dest.exists() {
        // a run of this week that did not finish: its copy holds who knows what
        return None;
    } else {
        let w = vp.link_week?;
        (w, root.pvc_copy(w, &v.namespace, &v.pvc))
    };
    // the periodic full pass: the first run of each month does not trust the record
    use chrono::Datelike;
    let completed = marker(week)?;
    if deps.monthly_full_pass
        && (completed.year(), completed.month()) != (plan.now.year(), plan.now.month())
    {
        return None;
    }
    let bytes = deps
        .store
        .read_file(&root.pvc_record(week, &v.namespace, &v.pvc))
        .ok()
        .flatten()?;
    match backup_core::decode_record(&bytes) {
        Ok(entries) => Some((
            entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
            copy,
        )),
        Err(e) => {
            warnings.push(format!(
                "the record of week {week} cannot be used ({e}): copied in full"
            ));
            None
        }
    }
}

fn copy_mounted(
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    read_root: &Utf8Path,
) -> Result<Copied> {
    let v = &vp.volume;
    let root = deps.store.root();
    if !read_root.is_dir() {
        return Err(Error::Core(
            Refusal::NotAFolder {
                path: read_root.to_owned(),
            }
            .into(),
        ));
    }
    let link_dest = vp.link_week.map(|w| root.pvc_copy(w, &v.namespace, &v.pvc));
    let mut warnings = Vec::new();
    let empty = !deps.store.has_entries(read_root)?;
    if empty && vp.allow_empty {
        warnings.push(format!(
            "source {read_root} is empty: accepted by --allow-empty {}/{}, the copy of this week \
             is emptied",
            v.namespace, v.pvc
        ));
    } else if empty {
        // An empty source with `rsync --delete` empties the copy and exits 0. A failed mount or a
        // wiped PVC must not replace the backup: refuse when the last copy had files.
        for earlier in [Some(vp.dest.clone()), link_dest.clone()]
            .into_iter()
            .flatten()
        {
            if earlier.is_dir() && deps.store.has_entries(&earlier)? {
                return Err(Error::Core(
                    Refusal::EmptySource {
                        source_dir: read_root.to_owned(),
                        copy: earlier,
                        namespace: v.namespace.clone(),
                        pvc: v.pvc.clone(),
                    }
                    .into(),
                ));
            }
        }
    }
    let base = base_record(deps, plan, vp, &mut warnings);
    // the week folder is rewritten from here on: it is not a complete version until it is done,
    // and its record no longer describes it
    deps.store
        .mark_incomplete(Series::Pvc, plan.week, &v.namespace, &v.pvc)?;
    let record_path = root.pvc_record(plan.week, &v.namespace, &v.pvc);
    crate::fs_store::remove_file_if_present(&record_path)?;
    let trust_ctime = deps.trust_ctime;
    let empty_map = std::collections::BTreeMap::new();
    let base_map = base.as_ref().map_or(&empty_map, |(m, _)| m);
    // the one walk of the snapshot: entries for the diff and the record, and its databases
    let incremental::Walk {
        entries, databases, ..
    } = incremental::walk(read_root.as_std_path(), base_map, trust_ctime)?;
    // the record's md5s (of new and changed files; the rest from the base) are read from the
    // snapshot while rsync copies it: the two read the same files, neither waits for the other
    let mut hashed = entries.clone();
    let (outcome, hashing) = std::thread::scope(|s| {
        let hasher = s.spawn(|| {
            incremental::fill_md5(read_root.as_std_path(), &mut hashed, base_map, trust_ctime)
        });
        let outcome = copy_changes(deps, vp, read_root, base.as_ref(), &entries, link_dest);
        let hashing = hasher
            .join()
            .unwrap_or_else(|_| Err(Error::Usage("the md5 worker panicked".to_owned())));
        (outcome, hashing)
    });
    let outcome = outcome?;
    hashing?;
    let entries = hashed;
    // written before the completion marker
    deps.store
        .write_file(&record_path, &backup_core::encode_file_record(&entries))?;
    let mut stats = outcome.stats;
    // the version's own numbers, whatever rsync was asked to look at
    stats.files = entries
        .iter()
        .filter(|e| e.kind == backup_core::EntryKind::File)
        .count() as u64;
    stats.total_bytes = entries.iter().map(|e| e.size).sum();
    let outcome = backup_core::SyncOutcome {
        stats,
        warnings: outcome.warnings,
    };
    let previous = vp
        .link_week
        .map(|w| root.sqlite_copy(w, &v.namespace, &v.pvc));
    let sqlite = deps.store.copy_databases(
        read_root,
        Some(&databases),
        &root.sqlite_copy(plan.week, &v.namespace, &v.pvc),
        previous.as_deref(),
    );
    warnings.extend(outcome.warnings);
    Ok(Copied {
        stats: outcome.stats,
        warnings,
        sqlite,
    })
}

/// The base a copy builds on: the record's entries by path, and the copy folder they describe.
type Base = (
    std::collections::BTreeMap<Vec<u8>, backup_core::FileEntry>,
    Utf8PathBuf,
);

/// Copies what changed since `base` (everything, with `--link-dest`, without one): see
/// `incremental`.
fn copy_changes(
    deps: &DailyDeps<'_>,
    vp: &VolumePlan,
    read_root: &Utf8Path,
    base: Option<&Base>,
    entries: &[backup_core::FileEntry],
    link_dest: Option<Utf8PathBuf>,
) -> Result<backup_core::SyncOutcome> {
    let trust_ctime = deps.trust_ctime;
    let outcome = match base {
        Some((base_map, base_copy)) => {
            let mut diff = incremental::diff(entries, base_map, trust_ctime);
            if base_copy == &vp.dest {
                // a later run of this week: never re-attribute an inode an older week shares
                incremental::unshare_metadata_only(&vp.dest, &diff)?;
            } else {
                incremental::build_link_tree(
                    read_root.as_std_path(),
                    entries,
                    base_map,
                    base_copy,
                    &vp.dest,
                    &mut diff,
                )?;
            }
            if diff.send.is_empty() && diff.gone.is_empty() {
                backup_core::SyncOutcome {
                    stats: SyncStats::default(),
                    warnings: Vec::new(),
                }
            } else {
                let list = tempfile::NamedTempFile::new()
                    .map_err(|e| Error::io("create a temp file in", "/tmp", e))?;
                std::fs::write(list.path(), incremental::files_from(&diff))
                    .map_err(|e| Error::io("write", list.path().display().to_string(), e))?;
                let list_path = Utf8Path::from_path(list.path())
                    .ok_or_else(|| Error::Usage("temp path is not UTF-8".to_owned()))?
                    .to_owned();
                deps.sync.sync(&SyncRequest {
                    source: read_root.to_owned(),
                    dest: vp.dest.clone(),
                    link_dest: None,
                    source_kind: SourceKind::Snapshot,
                    files_from: Some(list_path),
                })?
            }
        }
        None => {
            deps.store.prepare_copy(read_root, &vp.dest)?;
            deps.sync.sync(&SyncRequest {
                source: read_root.to_owned(),
                dest: vp.dest.clone(),
                link_dest,
                source_kind: SourceKind::Snapshot,
                files_from: None,
            })?
        }
    };
    Ok(outcome)
}
