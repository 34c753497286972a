//! File helpers every part of the toolkit uses: atomic writes, removals, listings, the flush of
//! a whole file system. Nothing here knows the backup root's layout (that is [`crate::disk_store`]).

use std::io::Write;

use camino::Utf8Path;

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

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync the folder.
/// A crash leaves the old file or the new one, never half of one.
///
/// # Errors
/// When any step fails; the temp file is removed.
pub fn write_atomic(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    write_replacing(path, bytes, true)
}

/// [`write_atomic`] without its two `fsync`s, for a file a `syncfs` of its file system follows
/// before anything relies on it being on disk ([`sync_filesystem`]).
///
/// # Errors
/// As [`write_atomic`].
pub fn write_atomic_unsynced(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    write_replacing(path, bytes, false)
}

fn write_replacing(path: &Utf8Path, bytes: &[u8], sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Utf8Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or("file"),
        std::process::id()
    ));
    let result = (|| {
        // never opened through what is there already (a FIFO would block, a symlink lead
        // elsewhere): a leftover is removed and the temp file created new (O_EXCL)
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if sync {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// Flushes the whole file system holding `path` to disk (`syncfs`).
///
/// # Errors
/// When it cannot be opened or the flush fails (a write error the disk reported).
pub fn sync_filesystem(path: &Utf8Path) -> Result<()> {
    let fd = rustix::fs::open(
        path.as_std_path(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open", path, e.into()))?;
    rustix::fs::syncfs(&fd).map_err(|e| Error::io("syncfs", path, e.into()))
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
