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
use std::path::Path;

use crate::error::{Error, Result};

fn io(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path.to_string_lossy().into_owned(), e)
}

/// Unlinks from `dest` every shared file (link count above 1) that rsync would keep but
/// re-attribute from `source`. Returns how many it unlinked. The source is walked with the
/// workspace's one walker (one worker per core): this runs before every full same-week copy.
///
/// # Errors
/// When a folder of the source cannot be read or a file cannot be unlinked.
pub fn unshare_changed(source: &Path, dest: &Path) -> Result<usize> {
    let walked = backup_walk::walk(
        source,
        backup_walk::Options {
            stat: true,
            workers: 0,
        },
        || (0usize, None::<Error>),
        |(unlinked, failed): &mut (usize, Option<Error>), v: &backup_walk::Visit<'_>| {
            let Some(src) = v.stat else { return };
            if failed.is_some() || v.kind == rustix::fs::FileType::Directory {
                return;
            }
            let dest_path = dest.join(v.rel);
            let Ok(dest_meta) = std::fs::symlink_metadata(&dest_path) else {
                return;
            };
            if same_content_shared(src, &dest_meta)
                && (attributes_differ(src, &dest_meta)
                    || xattrs(&source.join(v.rel)) != xattrs(&dest_path))
            {
                match std::fs::remove_file(&dest_path) {
                    Ok(()) => *unlinked += 1,
                    Err(e) => *failed = Some(io("unlink", &dest_path, e)),
                }
            }
        },
    );
    if let Some((path, why)) = walked.first_unreadable() {
        return Err(io("list", path, std::io::Error::other(why.clone())));
    }
    let mut total = 0;
    for (n, failed) in walked.states {
        if let Some(e) = failed {
            return Err(e);
        }
        total += n;
    }
    Ok(total)
}

/// rsync's quick check says "unchanged" (same type, size and mtime) but the attributes differ,
/// and the destination inode is shared.
fn same_content_shared(src: &rustix::fs::Stat, dest: &Metadata) -> bool {
    dest.nlink() > 1
        && src.st_mode & 0o170_000 == dest.mode() & 0o170_000
        && src.st_size as u64 == dest.size()
        && src.st_mtime as i64 == dest.mtime()
        && src.st_mtime_nsec as i64 == dest.mtime_nsec()
}

fn attributes_differ(src: &rustix::fs::Stat, dest: &Metadata) -> bool {
    src.st_mode != dest.mode() || src.st_uid != dest.uid() || src.st_gid != dest.gid()
}

/// Sorted (name, value) pairs (ACLs are `system.posix_acl_*`); unreadable xattrs read as none.
pub fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        // more names than the first guess: ask for the size, then read them all
        Err(rustix::io::Errno::RANGE) => {
            let Ok(size) = rustix::fs::llistxattr(path, &mut []) else {
                return Vec::new();
            };
            names.resize(size, 0);
            let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
                return Vec::new();
            };
            n
        }
        Err(_) => return Vec::new(),
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
