//! The copy from a diff: one walk of the snapshot, compared with the per-file record of the
//! version the copy builds on, and rsync only for what changed.
//!
//! - A later run of the same week with nothing changed runs no rsync at all; with changes,
//!   `rsync --files-from` of the changed and gone paths (and the folders holding them).
//! - A new week is built as a hardlink tree of the newest complete version (every folder and
//!   every unchanged file), then the same changed-paths rsync fills in the rest.
//! - A file whose content is unchanged but whose mode, owner or extended attributes changed is
//!   never hardlinked, and on a same-week rerun it is unlinked first when shared: no older week
//!   changes through a shared inode.
//! - Files with more than one link are always sent (rsync `-H` links only what it transfers),
//!   symlinks and special files too (they cost nothing).
//!
//! "Unchanged" is size, mtime, mode, owner, link target, device and extended attributes; where
//! the snapshot keeps inodes and change times (LVM), also those, which catch a rewrite that keeps
//! size and mtime. The `dir` backend's copies get new inodes: there such a rewrite is missed
//! until the periodic full pass.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use backup_core::{EntryKind, FileEntry};
use camino::Utf8Path;

use crate::error::{Error, Result};

fn io(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path.to_string_lossy().into_owned(), e)
}

fn entry_of(root: &Path, rel: &Path) -> Result<FileEntry> {
    let abs = root.join(rel);
    let m = std::fs::symlink_metadata(&abs).map_err(|e| io("stat", &abs, e))?;
    let t = m.file_type();
    let kind = if t.is_file() {
        EntryKind::File
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Special
    };
    let link_target = if t.is_symlink() {
        std::fs::read_link(&abs)
            .map_err(|e| io("read link", &abs, e))?
            .into_os_string()
            .into_vec()
    } else {
        Vec::new()
    };
    let xattrs = crate::linkguard::xattrs(&abs);
    let xattr_md5 = if xattrs.is_empty() {
        [0; 16]
    } else {
        let mut flat = Vec::new();
        for (k, v) in &xattrs {
            flat.extend_from_slice(&(k.len() as u32).to_le_bytes());
            flat.extend_from_slice(k);
            flat.extend_from_slice(&(v.len() as u32).to_le_bytes());
            flat.extend_from_slice(v);
        }
        md5::compute(&flat).0
    };
    Ok(FileEntry {
        path: rel.as_os_str().as_bytes().to_vec(),
        kind,
        size: if kind == EntryKind::File { m.len() } else { 0 },
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        inode: m.ino(),
        nlink: m.nlink(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev(),
        link_target,
        xattr_md5,
        md5: [0; 16],
        sqlite: false,
    })
}

/// Every entry under `root`, `root` itself as `.`, sorted by path.
///
/// # Errors
/// When a folder cannot be read or an entry stat'ed.
pub fn walk(root: &Path) -> Result<Vec<FileEntry>> {
    // the root itself is `.`: its mode, owner and times are part of the copy too
    let mut out = vec![entry_of(root, Path::new("."))?];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in std::fs::read_dir(&dir).map_err(|e| io("list", &dir, e))? {
            let e = e.map_err(|e| io("list", &dir, e))?;
            let child = rel.join(e.file_name());
            let entry = entry_of(root, &child)?;
            if entry.kind == EntryKind::Dir {
                stack.push(child);
            }
            out.push(entry);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// md5 of a file's content.
fn md5_of(path: &Path) -> Result<[u8; 16]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| io("read", path, e))?;
    let mut ctx = md5::Context::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io("read", path, e))?;
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    Ok(ctx.finalize().0)
}

/// Fills in the md5 of every file: from `base` where the file is unchanged, else read from
/// `root` (one worker per core).
///
/// # Errors
/// When a file cannot be read.
pub fn fill_md5(
    root: &Path,
    entries: &mut [FileEntry],
    base: &BTreeMap<Vec<u8>, FileEntry>,
    trust_ctime: bool,
) -> Result<()> {
    let mut todo: Vec<&mut FileEntry> = Vec::new();
    for e in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
        match base.get(&e.path) {
            Some(b) if b.unchanged(e, trust_ctime) && b.md5 != [0; 16] => e.md5 = b.md5,
            _ => todo.push(e),
        }
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = todo.len().div_ceil(workers).max(1);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        todo.chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || {
                    for e in part.iter_mut() {
                        e.md5 = md5_of(&root.join(OsStr::from_bytes(&e.path)))?;
                    }
                    Ok(())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Usage("md5 worker panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// What changed between the base record and the snapshot.
#[derive(Debug, Default)]
pub struct Diff {
    /// Entries to send (new, changed, always-sent kinds), with their parent folders.
    pub send: BTreeSet<Vec<u8>>,
    /// Paths in the base that are gone.
    pub gone: BTreeSet<Vec<u8>>,
    /// Files whose content is unchanged but whose metadata changed.
    pub metadata_only: BTreeSet<Vec<u8>>,
    /// Files unchanged (hardlinkable).
    pub unchanged: BTreeSet<Vec<u8>>,
}

/// The folder holding `path`: `.` for a top-level name, `None` for `.` itself.
fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"." {
        return None;
    }
    Some(
        path.iter()
            .rposition(|b| *b == b'/')
            .map_or(b".".as_slice(), |i| &path[..i]),
    )
}

/// Compares the snapshot with the base record.
pub fn diff(source: &[FileEntry], base: &BTreeMap<Vec<u8>, FileEntry>, trust_ctime: bool) -> Diff {
    let mut d = Diff::default();
    let present: BTreeSet<&[u8]> = source.iter().map(|e| e.path.as_slice()).collect();
    let present_dirs: BTreeSet<&[u8]> = source
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| e.path.as_slice())
        .collect();
    for e in source {
        let same = base.get(&e.path).filter(|b| b.unchanged(e, trust_ctime));
        let always = match e.kind {
            EntryKind::File => e.nlink > 1,
            EntryKind::Dir => false,
            EntryKind::Symlink | EntryKind::Special => true,
        };
        if same.is_some() && !always {
            if e.kind == EntryKind::File {
                d.unchanged.insert(e.path.clone());
            }
            continue;
        }
        if let (EntryKind::File, Some(b)) = (e.kind, base.get(&e.path)) {
            if b.content_unchanged(e) {
                d.metadata_only.insert(e.path.clone());
            }
        }
        d.send.insert(e.path.clone());
        if let Some(p) = parent(&e.path) {
            d.send.insert(p.to_vec());
        }
    }
    for p in base.keys() {
        // only the topmost gone path: `--force` deletes a folder with what it held, and a child
        // listed under a gone folder makes rsync look for the folder and call it vanished
        // (a folder that became a file counts as gone for what it held)
        let under_gone =
            parent(p).is_some_and(|pp| !present_dirs.contains(pp) && base.contains_key(pp));
        if !present.contains(p.as_slice()) && !under_gone {
            d.gone.insert(p.clone());
            if let Some(pp) = parent(p) {
                if present.contains(pp) {
                    d.send.insert(pp.to_vec());
                }
            }
        }
    }
    d
}

/// Builds a new week's copy at `dest` as a hardlink tree of `base_copy`: every folder of the
/// snapshot, every unchanged file linked. Files that cannot be linked (the base copy lost them)
/// are added to `diff.send`.
///
/// # Errors
/// When a folder cannot be created or a link made for another reason than a missing base file.
pub fn build_link_tree(
    source_root: &Path,
    source: &[FileEntry],
    base: &BTreeMap<Vec<u8>, FileEntry>,
    base_copy: &Utf8Path,
    dest: &Utf8Path,
    diff: &mut Diff,
) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| io("create folder", dest.as_std_path(), e))?;
    let dirs: Vec<&FileEntry> = source.iter().filter(|e| e.kind == EntryKind::Dir).collect();
    for e in &dirs {
        let p = dest.as_std_path().join(OsStr::from_bytes(&e.path));
        std::fs::create_dir_all(&p).map_err(|err| io("create folder", &p, err))?;
    }
    let unchanged: Vec<Vec<u8>> = diff.unchanged.iter().cloned().collect();
    for path in unchanged {
        let rel = OsStr::from_bytes(&path);
        let from = base_copy.as_std_path().join(rel);
        let to = dest.as_std_path().join(rel);
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                // the base copy lost it: rsync sends it, and resets its folder's times after
                diff.unchanged.remove(&path);
                if let Some(p) = parent(&path) {
                    diff.send.insert(p.to_vec());
                }
                diff.send.insert(path);
            }
        }
    }
    // Folders rsync does not get (nothing in them changed, and they did not) get their mode,
    // owner, extended attributes (ACLs) and times here, children first: every entry is in
    // place by now, so nothing moves a folder's mtime after it is set. The others go in the
    // list: rsync sets them at its end.
    for e in dirs.iter().rev() {
        let changed = !base.get(&e.path).is_some_and(|b| b.unchanged(e, false));
        if changed {
            diff.send.insert(e.path.clone());
        } else if !diff.send.contains(&e.path) {
            let rel = OsStr::from_bytes(&e.path);
            dir_attributes(&source_root.join(rel), &dest.as_std_path().join(rel), e)?;
        }
    }
    Ok(())
}

/// Gives the folder `dest` the owner, mode, extended attributes and mtime of `src` (entry `e`).
fn dir_attributes(src: &Path, dest: &Path, e: &FileEntry) -> Result<()> {
    std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
        .map_err(|err| io("chown", dest, err))?;
    std::fs::set_permissions(
        dest,
        std::os::unix::fs::PermissionsExt::from_mode(e.mode & 0o7777),
    )
    .map_err(|err| io("chmod", dest, err))?;
    let want = crate::linkguard::xattrs(src);
    for (name, _) in crate::linkguard::xattrs(dest) {
        if !want.iter().any(|(n, _)| *n == name) {
            if let Ok(c) = std::ffi::CString::new(name) {
                let _ = rustix::fs::lremovexattr(dest, c.as_c_str());
            }
        }
    }
    for (name, value) in &want {
        let c = std::ffi::CString::new(name.clone())
            .map_err(|_| io("set xattr on", dest, std::io::Error::other("NUL in a name")))?;
        rustix::fs::lsetxattr(dest, c.as_c_str(), value, rustix::fs::XattrFlags::empty())
            .map_err(|err| io("set xattr on", dest, err.into()))?;
    }
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::from_nanos(u64::try_from(e.mtime_ns).unwrap_or(0));
    std::fs::File::open(dest)
        .and_then(|f| f.set_times(std::fs::FileTimes::new().set_modified(mtime)))
        .map_err(|err| io("set the times of", dest, err))
}

/// Before a same-week rerun: unlinks the files whose metadata alone changed when they share
/// their inode (with an older week), so rsync's in-place attribute update cannot reach it.
///
/// # Errors
/// When an unlink fails.
pub fn unshare_metadata_only(dest: &Utf8Path, diff: &Diff) -> Result<usize> {
    let mut n = 0;
    for path in &diff.metadata_only {
        let p = dest.as_std_path().join(OsStr::from_bytes(path));
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.is_file() && m.nlink() > 1 {
                std::fs::remove_file(&p).map_err(|e| io("unlink", &p, e))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The NUL-separated list rsync reads: sent paths, then gone ones.
pub fn files_from(diff: &Diff) -> Vec<u8> {
    let mut out = Vec::new();
    for p in diff.send.iter().chain(&diff.gone) {
        backup_core::encode_record(p, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind, size: u64, mode: u32) -> FileEntry {
        FileEntry {
            path: path.as_bytes().to_vec(),
            kind,
            size,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
            nlink: 1,
            mode,
            uid: 0,
            gid: 0,
            rdev: 0,
            link_target: Vec::new(),
            xattr_md5: [0; 16],
            md5: [0; 16],
            sqlite: false,
        }
    }

    #[test]
    fn the_diff() {
        let base: BTreeMap<Vec<u8>, FileEntry> = [
            e(".", EntryKind::Dir, 0, 0o755),
            e("d", EntryKind::Dir, 0, 0o755),
            e("old", EntryKind::Dir, 0, 0o755),
            e("old/inner", EntryKind::File, 1, 0o644),
            e("d/same", EntryKind::File, 3, 0o644),
            e("d/grown", EntryKind::File, 3, 0o644),
            e("d/chmod", EntryKind::File, 3, 0o644),
            e("gone", EntryKind::File, 1, 0o644),
        ]
        .into_iter()
        .map(|x| (x.path.clone(), x))
        .collect();
        let source = vec![
            e(".", EntryKind::Dir, 0, 0o755),
            e("d", EntryKind::Dir, 0, 0o755),
            e("d/chmod", EntryKind::File, 3, 0o600),
            e("d/grown", EntryKind::File, 4, 0o644),
            e("d/new", EntryKind::File, 1, 0o644),
            e("d/same", EntryKind::File, 3, 0o644),
        ];
        let d = diff(&source, &base, false);
        let s = |set: &BTreeSet<Vec<u8>>| {
            set.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(&d.send), [".", "d", "d/chmod", "d/grown", "d/new"]);
        assert_eq!(s(&d.gone), ["gone", "old"]);
        assert_eq!(s(&d.metadata_only), ["d/chmod"]);
        assert_eq!(s(&d.unchanged), ["d/same"]);
    }
}
