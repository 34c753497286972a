//! The backup root on disk: finding versions, writing and removing completion markers, pruning.

use std::io::Write;

use backup_core::{format_marker, parse_marker, BackupRoot, IsoWeek, WeekVersion, COMPLETE_DIR};
use camino::Utf8Path;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Sub-folders of `dir` as UTF-8 names, sorted; an absent folder has none.
///
/// # Errors
/// When `dir` exists but cannot be read.
pub fn subdirs(dir: &Utf8Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let (true, Ok(name)) = (is_dir, entry.file_name().into_string()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Every `pvc-data/<week>/<namespace>/<pvc>` version under the root, with its completion time.
/// Folders that are not week ids are left alone.
///
/// # Errors
/// When a folder cannot be read.
pub fn scan_versions(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for week_name in subdirs(&root.pvc_data())? {
        let Ok(week) = week_name.parse::<IsoWeek>() else {
            continue;
        };
        for namespace in subdirs(&root.pvc_week(week))? {
            if namespace == COMPLETE_DIR {
                continue;
            }
            for pvc in subdirs(&root.pvc_week(week).join(&namespace))? {
                let marker = root.pvc_complete_marker(week, &namespace, &pvc);
                let completed_at = std::fs::read_to_string(&marker)
                    .ok()
                    .and_then(|t| parse_marker(&t));
                out.push(WeekVersion {
                    namespace: namespace.clone(),
                    pvc,
                    week,
                    completed_at,
                });
            }
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync the folder.
/// A crash leaves the old file or the new one, never half of one.
///
/// # Errors
/// When any step fails; the temp file is removed.
pub fn write_atomic(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Utf8Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or("file"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// Marks a version complete.
///
/// # Errors
/// When the marker cannot be written.
pub fn mark_complete(
    root: &BackupRoot,
    week: IsoWeek,
    namespace: &str,
    pvc: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    write_atomic(
        &root.pvc_complete_marker(week, namespace, pvc),
        format_marker(at).as_bytes(),
    )
}

/// Removes a file; an absent one is fine.
///
/// # Errors
/// When it exists and cannot be removed.
pub fn remove_file_if_present(path: &Utf8Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Marks a version incomplete (before it is written again, or removed).
///
/// # Errors
/// When the marker exists and cannot be removed.
pub fn mark_incomplete(root: &BackupRoot, week: IsoWeek, namespace: &str, pvc: &str) -> Result<()> {
    remove_file_if_present(&root.pvc_complete_marker(week, namespace, pvc))
}

/// Removes a version: its marker first (a removal cut short reads as incomplete, never as a
/// complete version with files missing), then its folder, then folders left empty.
///
/// # Errors
/// When a removal fails.
pub fn remove_version(root: &BackupRoot, v: &WeekVersion) -> Result<()> {
    mark_incomplete(root, v.week, &v.namespace, &v.pvc)?;
    let copy = root.pvc_copy(v.week, &v.namespace, &v.pvc);
    remove_tree(&copy)?;
    let week = root.pvc_week(v.week);
    for dir in [
        week.join(COMPLETE_DIR).join(&v.namespace),
        week.join(COMPLETE_DIR),
        week.join(&v.namespace),
        week,
    ] {
        // only empty folders go; anything else stays
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(())
}

/// Removes a folder tree; an absent one is fine.
///
/// # Errors
/// When it exists and cannot be removed.
pub fn remove_tree(dir: &Utf8Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", dir, e)),
    }
}

/// True when `dir` holds anything but `lost+found` (which every fresh ext4 has).
///
/// # Errors
/// When `dir` cannot be read.
pub fn has_entries(dir: &Utf8Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if entry.file_name() != "lost+found" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Percent of the file system holding `path` that is used, as `df` shows it.
///
/// # Errors
/// When statvfs fails.
pub fn disk_usage_percent(path: &Utf8Path) -> Result<f64> {
    let s = rustix::fs::statvfs(path.as_std_path())
        .map_err(|e| Error::io("statvfs", path, e.into()))?;
    let total = s.f_blocks as f64;
    if total == 0.0 {
        return Ok(0.0);
    }
    let used = (s.f_blocks - s.f_bfree) as f64;
    let avail = s.f_bavail as f64;
    Ok(100.0 * used / (used + avail))
}
