//! The volume stage: a snapshot (a fresh one when the newest is too old), activated and mounted
//! read-only, copied with rsync into this week's folder, its SQLite databases copied, unmounted
//! and deactivated always; the version is complete only when all of that succeeded.

use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet};

use backup_core::{
    pool_guard, Config, DailyPlan, FileEntry, Refusal, SnapshotChoice, SourceKind, StoreFile,
    SyncRequest, SyncStats, VolumePlan,
};
use camino::{Utf8Path, Utf8PathBuf};

use crate::outcome::{Status, VolumeResult};
use backup_host::error::{Error, Result};
use backup_host::mounts::mount_point_options;

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

/// The fresh snapshot the plan asks for when the newest one is too old or missing, behind the
/// pool guard of `lvm-pvc-snapshot` (a full thin pool turns every volume read-only); said in
/// `warnings`.
///
/// # Errors
/// Refused when the pool is too full; the backend's errors.
fn take_fresh_snapshot(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let v = &vp.volume;
    if let SnapshotChoice::Take { name, reason } = &vp.snapshot {
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
    Ok(())
}

fn copy_volume(
    cfg: &Config,
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
) -> Result<Copied> {
    let v = &vp.volume;
    let mut warnings = Vec::new();
    take_fresh_snapshot(cfg, deps, plan, vp, &mut warnings)?;
    let snap = vp.snapshot.name();
    let source = deps.volumes.activate(snap)?;
    let prepared = (|| -> Result<Prepared> {
        let mount_root = backup_host::setup::mount_root(cfg)?;
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
        let prepared = prepare_update(deps, plan, vp, &read_root);
        let unmounted = deps.mounter.unmount(&target).map_err(Error::from);
        let prepared = prepared?;
        unmounted?;
        Ok(prepared)
    })();
    let deactivated = deps.volumes.deactivate(snap).map_err(Error::from);
    // complete only once the copy, the unmount and the deactivation all succeeded; the update
    // is swapped in at once, and until then the week's complete version is untouched
    let committed = prepared.and_then(|p| {
        deactivated?;
        deps.store
            .commit_version(plan.week, &v.namespace, &v.pvc, &p.record, plan.now)?;
        if !p.repaired.is_empty() {
            backup_host::version_commit::add_repaired(
                deps.store.root(),
                plan.week,
                &v.namespace,
                &v.pvc,
                &p.repaired,
            )?;
        }
        Ok(p)
    });
    let mut prepared = match committed {
        Ok(p) => p,
        Err(e) => {
            // what this run staged is removed now: a full disk gets its space back
            if let Err(left) = deps.store.recover_version(plan.week, &v.namespace, &v.pvc) {
                return Err(Error::Refused(format!(
                    "{e}; and cleaning up failed: {left}"
                )));
            }
            return Err(e);
        }
    };
    warnings.append(&mut prepared.copied.warnings);
    prepared.copied.warnings = warnings;
    Ok(prepared.copied)
}

/// The version an update builds on, read from its record.
struct Base {
    /// The record's entries by path (the key; an entry's own `path` is left empty).
    entries: BTreeMap<Vec<u8>, FileEntry>,
    /// The copy they describe.
    copy: Utf8PathBuf,
    /// Paths of that copy `backupctl verify` found damaged (in its week or, by the inode, in
    /// another).
    damaged: BTreeSet<Vec<u8>>,
    /// Those found damaged in another week's list.
    elsewhere: BTreeSet<Vec<u8>>,
}

/// The base an update builds on (this week's complete version, else the linked week's), and
/// whether this is a full pass (`--full`, or the first run of a month): a full pass reads every
/// file of the snapshot and trusts no size and mtime, only content. `None` (a copy with
/// `rsync --checksum` against the linked week) when the base's record does not decode (a
/// warning).
fn choose_base(
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    warnings: &mut Vec<String>,
) -> (Option<Base>, bool) {
    let v = &vp.volume;
    let root = deps.store.root();
    let marker = |w| {
        deps.store
            .read(StoreFile::Marker(w, &v.namespace, &v.pvc))
            .ok()
            .flatten()
            .and_then(|b| backup_core::parse_marker(&String::from_utf8_lossy(&b)))
    };
    let (week, copy, completed) = match (marker(plan.week), vp.link_week) {
        (Some(at), _) => (plan.week, vp.dest.clone(), at),
        (None, Some(w)) => match marker(w) {
            Some(at) => (w, root.pvc_copy(w, &v.namespace, &v.pvc), at),
            None => return (None, true),
        },
        (None, None) => return (None, true),
    };
    // the periodic full pass: the first run of each month does not trust size and mtime
    use chrono::Datelike;
    let full = deps.force_full
        || (deps.monthly_full_pass
            && (completed.year(), completed.month()) != (plan.now.year(), plan.now.month()));
    let record = match deps
        .store
        .read(StoreFile::Record(week, &v.namespace, &v.pvc))
    {
        Ok(Some(b)) => backup_core::decode_record(&b).map_err(|e| e.to_string()),
        Ok(None) => Err("there is none".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    match record {
        Ok(entries) => {
            let damaged = deps
                .store
                .read(StoreFile::Damaged(week, &v.namespace, &v.pvc))
                .ok()
                .flatten()
                .map(|b| backup_host::version_commit::parse_damaged(&b))
                .unwrap_or_default();
            let mut damaged: BTreeSet<Vec<u8>> = damaged.into_iter().collect();
            let elsewhere = damaged_elsewhere(deps, week, &copy, &v.namespace, &v.pvc);
            damaged.extend(elsewhere.iter().cloned());
            if !damaged.is_empty() {
                warnings.push(format!(
                    "week {week} has {} damaged by verify: {} sent again",
                    backup_host::human::plural(damaged.len() as u64, "file"),
                    if damaged.len() == 1 {
                        "it is"
                    } else {
                        "they are"
                    }
                ));
            }
            let base = Base {
                // the path is the key: not kept twice (a million files: tens of MiB)
                entries: entries
                    .into_iter()
                    .map(|mut e| (std::mem::take(&mut e.path), e))
                    .collect(),
                copy,
                damaged,
                elsewhere,
            };
            (Some(base), full)
        }
        Err(e) => {
            warnings.push(format!(
                "the record of week {week} cannot be used ({e}): copied in full, comparing \
                 contents"
            ));
            (None, true)
        }
    }
}

/// Paths of the base copy (`copy`, week `base_week`) whose file is the very inode another
/// week's damage list names for the same path: weeks share unchanged files as hardlinks, so
/// damage marked by a verify of one week is damage in every week linked to it, and must not be
/// linked into a new one.
fn damaged_elsewhere(
    deps: &DailyDeps<'_>,
    base_week: backup_core::IsoWeek,
    copy: &Utf8Path,
    ns: &str,
    pvc: &str,
) -> BTreeSet<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let root = deps.store.root();
    let id = |p: &std::path::Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| (m.dev(), m.ino()))
    };
    // every other week folder, each on its own: one that cannot be read must not hide the
    // damage lists of the others (the store's listing stops at the first unreadable folder)
    let weeks = std::fs::read_dir(root.root().join("pvc-data"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<backup_core::IsoWeek>().ok())
        .filter(|w| *w != base_week);
    let mut out = BTreeSet::new();
    for w in weeks {
        let Ok(Some(list)) = deps.store.read(StoreFile::Damaged(w, ns, pvc)) else {
            continue;
        };
        let there = root.pvc_copy(w, ns, pvc);
        for path in backup_host::version_commit::parse_damaged(&list) {
            let rel = std::ffi::OsStr::from_bytes(&path);
            let theirs = id(&there.as_std_path().join(rel));
            if theirs.is_some() && theirs == id(&copy.as_std_path().join(rel)) {
                out.insert(path);
            }
        }
    }
    out
}

/// What an update of one version produced, before it is swapped in.
struct Prepared {
    copied: Copied,
    /// The record of the new version.
    record: Vec<u8>,
    /// Files of this week's version sent again because another week's damage list names their
    /// inode: offsite step 1 sends them again too (their own week's list is moved to the
    /// repaired list by the commit).
    repaired: Vec<Vec<u8>>,
}

/// Builds the update of this week's version of one mounted snapshot: walks it, compares it with
/// the base record, builds the new copy beside the complete one (a hardlink tree plus rsync of
/// what changed; nothing when a rerun finds nothing changed), the record, and the SQLite copies.
fn prepare_update(
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    read_root: &Utf8Path,
) -> Result<Prepared> {
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
    let mut warnings = Vec::new();
    if let Some(said) = deps
        .store
        .recover_version(plan.week, &v.namespace, &v.pvc)?
    {
        warnings.push(said);
    }
    let link_dest = vp.link_week.map(|w| root.pvc_copy(w, &v.namespace, &v.pvc));
    check_empty_source(deps, vp, read_root, link_dest.as_deref(), &mut warnings)?;
    let (base, full) = choose_base(deps, plan, vp, &mut warnings);
    let repaired = base
        .as_ref()
        .filter(|b| b.copy == vp.dest)
        .map(|b| b.elsewhere.iter().cloned().collect())
        .unwrap_or_default();
    let trust_ctime = deps.trust_ctime;
    let empty_map = BTreeMap::new();
    let base_map = base.as_ref().map_or(&empty_map, |b| &b.entries);
    // the one walk of the snapshot: entries for the diff and the record, and its databases
    // one list of the snapshot's entries, compared, then given their digests in place (a
    // million files: no second copy of it)
    let backup_host::tree::Walk {
        mut entries,
        databases,
        ..
    } = backup_host::tree::walk(read_root.as_std_path(), base_map, trust_ctime)?;
    // a full pass reads every file first: what to send depends on the content
    let hashed_first = full && base.is_some();
    if hashed_first {
        incremental::fill_digests(
            read_root.as_std_path(),
            &mut entries,
            &BTreeMap::new(),
            false,
            &BTreeSet::new(),
            base_map,
        )?;
    }
    let changes = stage_changes(deps, plan, vp, read_root, base.as_ref(), &entries, full)?;
    let hash_beside = (!hashed_first).then_some(base_map);
    let outcome = send_and_hash(deps, read_root, &changes, &mut entries, hash_beside)?;
    let mut stats = outcome.stats;
    // the version's own numbers, whatever rsync was asked to look at
    stats.files = entries
        .iter()
        .filter(|e| e.kind == backup_core::EntryKind::File)
        .count() as u64;
    stats.total_bytes = entries.iter().map(|e| e.size).sum();
    let previous = vp
        .link_week
        .map(|w| root.sqlite_copy(w, &v.namespace, &v.pvc));
    let sqlite = deps.stages.copy_databases(
        read_root,
        Some(&databases),
        &root.sqlite_copy(plan.week, &v.namespace, &v.pvc),
        previous.as_deref(),
    );
    warnings.extend(outcome.warnings);
    Ok(Prepared {
        copied: Copied {
            stats,
            warnings,
            sqlite,
        },
        record: backup_core::encode_file_record(&entries),
        repaired,
    })
}

/// Sends the changes; with `hash_beside` (the base record), the digests of what is sent are
/// read from the snapshot while the copy runs (the two read the same bytes, neither waits) and
/// what is linked keeps the digest its base records.
fn send_and_hash(
    deps: &DailyDeps<'_>,
    read_root: &Utf8Path,
    changes: &Changes,
    hashed: &mut [backup_core::FileEntry],
    hash_beside: Option<&BTreeMap<Vec<u8>, backup_core::FileEntry>>,
) -> Result<backup_core::SyncOutcome> {
    let none = BTreeMap::new();
    let (outcome, hashing) = std::thread::scope(|s| {
        let sent = changes.sent();
        let hasher = hash_beside.map(|base| {
            s.spawn(|| {
                incremental::fill_digests(
                    read_root.as_std_path(),
                    hashed,
                    base,
                    deps.trust_ctime,
                    sent,
                    &none,
                )
            })
        });
        let outcome = send_changes(deps, read_root, changes);
        let hashing = hasher.map_or(Ok(()), |h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Internal("the hashing worker panicked".to_owned())))
        });
        (outcome, hashing)
    });
    let outcome = outcome?;
    hashing?;
    Ok(outcome)
}

/// An empty source with `rsync --delete` empties the copy and exits 0. A failed mount or a
/// wiped PVC must not replace the backup: refused when the last copy had files, unless
/// `--allow-empty` names the volume.
fn check_empty_source(
    deps: &DailyDeps<'_>,
    vp: &VolumePlan,
    read_root: &Utf8Path,
    link_dest: Option<&Utf8Path>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let v = &vp.volume;
    if deps.stages.has_entries(read_root)? {
        return Ok(());
    }
    if vp.allow_empty {
        warnings.push(format!(
            "source {read_root} is empty: accepted by --allow-empty {}/{}, the copy of this week \
             is emptied",
            v.namespace, v.pvc
        ));
        return Ok(());
    }
    for earlier in [Some(vp.dest.as_path()), link_dest].into_iter().flatten() {
        if earlier.is_dir() && deps.stages.has_entries(earlier)? {
            return Err(Error::Core(
                Refusal::EmptySource {
                    source_dir: read_root.to_owned(),
                    copy: earlier.to_owned(),
                    namespace: v.namespace.clone(),
                    pvc: v.pvc.clone(),
                }
                .into(),
            ));
        }
    }
    Ok(())
}

/// What an update sends, once the staging folder holds the hardlink tree.
enum Changes {
    /// A rerun of the week that finds nothing changed: nothing staged, nothing sent.
    Nothing,
    /// The changed paths, sent into the staging tree with `--files-from`.
    Paths {
        /// The staging tree.
        staging: Utf8PathBuf,
        /// Every path sent (not linked).
        sent: BTreeSet<Vec<u8>>,
        /// The NUL-separated list rsync reads.
        list: tempfile::NamedTempFile,
    },
    /// The whole snapshot, with `--checksum` against the linked week (no usable record).
    Whole(SyncRequest),
}

impl Changes {
    /// The paths sent from the snapshot: their md5 must be read from it, not taken from the
    /// base (a file sent because it has several links, was damaged or could not be linked may
    /// have been rewritten with the same size and mtime).
    fn sent(&self) -> &BTreeSet<Vec<u8>> {
        static NONE: BTreeSet<Vec<u8>> = BTreeSet::new();
        match self {
            Changes::Paths { sent, .. } => sent,
            Changes::Nothing | Changes::Whole(_) => &NONE,
        }
    }
}

/// Stages the update: a hardlink tree of the base copy in the staging folder, and the list of
/// what changed since its record (with `content`, the entries carry fresh md5s and a file whose
/// md5 is not the record's is sent whatever its size and mtime say); without a usable base
/// record, a whole copy with `--checksum` against the linked week. A rerun of the week that
/// finds nothing changed stages nothing.
fn stage_changes(
    deps: &DailyDeps<'_>,
    plan: &DailyPlan,
    vp: &VolumePlan,
    read_root: &Utf8Path,
    base: Option<&Base>,
    entries: &[FileEntry],
    content: bool,
) -> Result<Changes> {
    let v = &vp.volume;
    let Some(base) = base else {
        let staging = deps.store.staging_tree(plan.week, &v.namespace, &v.pvc)?;
        let link_dest = vp
            .link_week
            .map(|w| deps.store.root().pvc_copy(w, &v.namespace, &v.pvc));
        return Ok(Changes::Whole(SyncRequest {
            source: read_root.to_owned(),
            dest: staging,
            checksum: link_dest.is_some(),
            link_dest,
            source_kind: SourceKind::Snapshot,
            files_from: None,
        }));
    };
    let mut diff = incremental::diff(
        entries,
        &base.entries,
        incremental::Trust {
            ctime: deps.trust_ctime,
            content,
            damaged: Some(&base.damaged),
        },
    );
    if base.copy == vp.dest && diff.send.is_empty() && diff.gone.is_empty() {
        return Ok(Changes::Nothing);
    }
    let (staging, reused) =
        deps.store
            .staging_tree_from_spare(plan.week, &v.namespace, &v.pvc, vp.link_week)?;
    incremental::build_link_tree(
        read_root.as_std_path(),
        entries,
        &base.entries,
        &base.copy,
        &staging,
        reused,
        &mut diff,
    )?;
    let list = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("create a temp file in", "/tmp", e))?;
    std::fs::write(list.path(), incremental::files_from(&diff))
        .map_err(|e| Error::io("write", list.path().display().to_string(), e))?;
    Ok(Changes::Paths {
        staging,
        sent: diff.send,
        list,
    })
}

/// Sends what [`stage_changes`] staged.
fn send_changes(
    deps: &DailyDeps<'_>,
    read_root: &Utf8Path,
    changes: &Changes,
) -> Result<backup_core::SyncOutcome> {
    let none = || backup_core::SyncOutcome {
        stats: SyncStats::default(),
        warnings: Vec::new(),
    };
    match changes {
        Changes::Nothing => Ok(none()),
        Changes::Paths { sent, .. } if sent.is_empty() => Ok(none()),
        Changes::Paths { staging, list, .. } => {
            let list_path = Utf8Path::from_path(list.path())
                .ok_or_else(|| {
                    Error::Refused("the temp folder (TMPDIR) is not a UTF-8 path".to_owned())
                })?
                .to_owned();
            Ok(deps.sync.sync(&SyncRequest {
                source: read_root.to_owned(),
                dest: staging.clone(),
                link_dest: None,
                source_kind: SourceKind::Snapshot,
                files_from: Some(list_path),
                checksum: false,
            })?)
        }
        Changes::Whole(request) => Ok(deps.sync.sync(request)?),
    }
}
