//! Keeping a same-week rerun from writing through hardlinks into older weeks.
//!
//! A week folder's unchanged files are hardlinks to the previous week's (that is the point of
//! `--link-dest`). When a later run of the same week finds a file whose content is unchanged but
//! whose mode, owner, group or xattrs (ACLs included) changed, rsync updates those attributes on
//! the existing file in place: on the inode every older week shares. rsnapshot has the same
//! hole. Before such a run, [`unshare_changed`] walks the source and unlinks every destination
//! file that rsync would only re-attribute while it is shared; rsync then links it against an
//! older week whose attributes match, or copies it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};

fn io(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path.to_string_lossy().into_owned(), e)
}

/// Unlinks from `dest` every shared file (link count above 1) that rsync would keep but
/// re-attribute from `source`. Returns how many it unlinked. Folders are shared out to one
/// worker per core: this walk runs before every same-week copy.
///
/// # Errors
/// When a folder cannot be read or a file cannot be unlinked.
pub fn unshare_changed(source: &Path, dest: &Path) -> Result<usize> {
    let queue = Mutex::new(vec![PathBuf::new()]);
    let pending = AtomicUsize::new(1); // folders queued or being walked
    let unlinked = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let job = queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some(rel) = job else {
                    if pending.load(Ordering::SeqCst) == 0 {
                        return;
                    }
                    // another worker is listing a folder that may hold more work
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    continue;
                };
                if failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
                {
                    match walk_one(source, dest, &rel) {
                        Ok((subdirs, n)) => {
                            unlinked.fetch_add(n, Ordering::SeqCst);
                            pending.fetch_add(subdirs.len(), Ordering::SeqCst);
                            queue
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .extend(subdirs);
                        }
                        Err(e) => *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e),
                    }
                }
                pending.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(unlinked.into_inner()),
    }
}

/// One folder: unlinks what needs it, returns the sub-folders to walk and the count unlinked.
fn walk_one(source: &Path, dest: &Path, rel: &Path) -> Result<(Vec<PathBuf>, usize)> {
    let dir = source.join(rel);
    let mut subdirs = Vec::new();
    let mut unlinked = 0;
    for entry in std::fs::read_dir(&dir).map_err(|e| io("list", &dir, e))? {
        let entry = entry.map_err(|e| io("list", &dir, e))?;
        let rel = rel.join(entry.file_name());
        let dest_path = dest.join(&rel);
        let Ok(dest_meta) = std::fs::symlink_metadata(&dest_path) else {
            continue;
        };
        let src_meta = entry.metadata().map_err(|e| io("stat", &entry.path(), e))?;
        if src_meta.is_dir() {
            if dest_meta.is_dir() {
                subdirs.push(rel);
            }
            continue;
        }
        if same_content_shared(&src_meta, &dest_meta)
            && (attributes_differ(&src_meta, &dest_meta)
                || xattrs(&entry.path()) != xattrs(&dest_path))
        {
            std::fs::remove_file(&dest_path).map_err(|e| io("unlink", &dest_path, e))?;
            unlinked += 1;
        }
    }
    Ok((subdirs, unlinked))
}

/// rsync's quick check says "unchanged" (same type, size and mtime) but the attributes differ,
/// and the destination inode is shared.
fn same_content_shared(src: &Metadata, dest: &Metadata) -> bool {
    dest.nlink() > 1
        && src.file_type() == dest.file_type()
        && src.size() == dest.size()
        && src.mtime() == dest.mtime()
        && src.mtime_nsec() == dest.mtime_nsec()
}

fn attributes_differ(src: &Metadata, dest: &Metadata) -> bool {
    src.mode() != dest.mode() || src.uid() != dest.uid() || src.gid() != dest.gid()
}

/// Sorted (name, value) pairs (ACLs are `system.posix_acl_*`); unreadable xattrs read as none.
pub(crate) fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = [0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let mut value = vec![0u8; 65536];
            let len = std::ffi::CString::new(name)
                .ok()
                .and_then(|c| rustix::fs::lgetxattr(path, c.as_c_str(), &mut value).ok())
                .unwrap_or(0);
            value.truncate(len);
            (name.to_vec(), value)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unlinks_only_shared_files_whose_attributes_changed() {
        let d = tempfile::tempdir().unwrap();
        let (src, old, cur) = (
            d.path().join("src"),
            d.path().join("old"),
            d.path().join("cur"),
        );
        for p in [&src, &old, &cur] {
            std::fs::create_dir_all(p.join("sub")).unwrap();
        }
        for name in ["a", "b", "sub/c", "private"] {
            std::fs::write(src.join(name), name).unwrap();
        }
        // old week and current week share a, b, sub/c (as after --link-dest); `private` is not shared
        for name in ["a", "b", "sub/c"] {
            std::fs::copy(src.join(name), old.join(name)).unwrap();
            std::fs::hard_link(old.join(name), cur.join(name)).unwrap();
        }
        std::fs::copy(src.join("private"), cur.join("private")).unwrap();
        // copies carry the same mtime as the source, as rsync -a leaves them
        for name in ["a", "b", "sub/c", "private"] {
            let t = std::fs::metadata(src.join(name))
                .unwrap()
                .modified()
                .unwrap();
            for dir in [&old, &cur] {
                if let Ok(f) = std::fs::File::options().write(true).open(dir.join(name)) {
                    f.set_modified(t).unwrap();
                }
            }
        }
        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(src.join("sub/c"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::set_permissions(src.join("private"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_eq!(unshare_changed(&src, &cur).unwrap(), 2);
        assert!(!cur.join("a").exists() && !cur.join("sub/c").exists());
        assert!(cur.join("b").exists() && cur.join("private").exists());
        assert!(old.join("a").exists(), "the old week is never touched");
    }
}
