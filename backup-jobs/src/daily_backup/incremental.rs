//! The copy from a diff: one walk of the snapshot, compared with the per-file record of the
//! version the copy builds on, and rsync only for what changed.
//!
//! - A later run of the same week with nothing changed runs no rsync at all.
//! - Otherwise the update is built beside the complete version (see `version_commit`) as a
//!   hardlink tree of the version it builds on (every folder and every unchanged file), then
//!   `rsync --files-from` of the changed paths (and the folders holding them) fills in the
//!   rest. A gone path is never listed: the staging tree is ours and local, so a gone path that
//!   is in it is removed here, in process. (rsync's `--delete-missing-args` sends a mode-0 entry
//!   for a gone path, which the receiver of Debian 12's rsync 3.2.7-1+deb12u5 and later rejects
//!   below the top folder: "invalid file mode 00", exit 2.) Nothing is ever written into an inode a complete version holds: a file whose
//!   metadata alone changed is sent, not linked.
//! - Files with more than one link are always sent (rsync `-H` links only what it transfers),
//!   symlinks and special files too (they cost nothing).
//! - A full pass ([`Trust::content`]) links a file only when its fresh digest is the record's.
//!
//! "Unchanged" is size, mtime, mode, owner, link target, device and extended attributes; where
//! the snapshot keeps inodes and change times (LVM), also those, which catch a rewrite that keeps
//! size and mtime. The `dir` backend's copies get new inodes: there such a rewrite is missed
//! until the next full pass.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use backup_core::{EntryKind, FileEntry};
use camino::Utf8Path;

use backup_host::error::{Error, Result};

use backup_host::tree::{digest_of, io};

/// Fills in the content digest of every file: from `base` where the file is unchanged and
/// linked from there (its digest and kind carried over), else read from `root` (one worker per
/// core). A file in `sent` was copied from the snapshot, not linked: its digest is always read,
/// since the bytes rsync copied are the snapshot's, whatever its size and mtime say. What is
/// read is hashed with xxh3-128, or with the kind `like` holds for the same path (a full pass
/// compares with an older record's md5s).
///
/// # Errors
/// When a file cannot be read.
pub fn fill_digests(
    root: &Path,
    entries: &mut [FileEntry],
    base: &BTreeMap<Vec<u8>, FileEntry>,
    trust_ctime: bool,
    sent: &BTreeSet<Vec<u8>>,
    like: &BTreeMap<Vec<u8>, FileEntry>,
) -> Result<()> {
    let mut todo: Vec<&mut FileEntry> = Vec::new();
    for e in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
        match base.get(&e.path) {
            Some(b)
                if b.unchanged(e, trust_ctime)
                    && b.digest != [0; 16]
                    && !sent.contains(&e.path) =>
            {
                e.digest = b.digest;
                e.digest_kind = b.digest_kind;
            }
            _ => {
                e.digest_kind = like
                    .get(&e.path)
                    .map_or_else(Default::default, |l| l.digest_kind);
                todo.push(e)
            }
        }
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = todo.len().div_ceil(workers).max(1);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        todo.chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || {
                    for e in part.iter_mut() {
                        let path = root.join(OsStr::from_bytes(&e.path));
                        e.digest = digest_of(&path, e.digest_kind)?;
                    }
                    Ok(())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("a hashing worker panicked".into())))
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

/// How much [`diff`] trusts the base record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trust<'a> {
    /// The snapshot keeps inodes and change times (LVM): compare them too.
    pub ctime: bool,
    /// A full pass: the source's digests are filled in, and a file is unchanged only when its
    /// digest is the one the record holds (a rewrite that kept size and mtime, two files
    /// swapped).
    pub content: bool,
    /// Paths of the base copy that `backupctl verify` found damaged: never unchanged.
    pub damaged: Option<&'a BTreeSet<Vec<u8>>>,
}

/// Compares the snapshot with the base record.
pub fn diff(source: &[FileEntry], base: &BTreeMap<Vec<u8>, FileEntry>, trust: Trust<'_>) -> Diff {
    let mut d = Diff::default();
    let present: BTreeSet<&[u8]> = source.iter().map(|e| e.path.as_slice()).collect();
    let present_dirs: BTreeSet<&[u8]> = source
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .map(|e| e.path.as_slice())
        .collect();
    for e in source {
        let same = base.get(&e.path).filter(|b| {
            b.unchanged(e, trust.ctime)
                && !(trust.content
                    && e.kind == EntryKind::File
                    && (b.digest != e.digest
                        || b.digest_kind != e.digest_kind
                        || b.digest == [0; 16]))
                && !trust.damaged.is_some_and(|d| d.contains(&e.path))
        });
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

/// Builds the update of a version at `dest` (a staging folder) as a hardlink tree of
/// `base_copy`: every folder of the snapshot, every unchanged file linked. Files that cannot be
/// linked (the base copy lost them, or its file is not what the record says: another size,
/// mtime, mode or owner) are added to `diff.send`.
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
        let linkable = source
            .binary_search_by(|e| e.path.as_slice().cmp(path.as_slice()))
            .ok()
            .is_some_and(|i| copy_matches(&from, &source[i]));
        let linked = if linkable {
            std::fs::hard_link(&from, &to)
        } else {
            Err(std::io::Error::other(
                "the base copy's file is not what the record says",
            ))
        };
        match linked {
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
    remove_gone(dest, &diff.gone)?;
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

/// Removes from the staging tree `dest` each gone path that is in it (a folder with what it
/// holds). The tree holds only folders made here and hardlinks of regular files, so nothing
/// followed is a symlink.
fn remove_gone(dest: &Utf8Path, gone: &BTreeSet<Vec<u8>>) -> Result<()> {
    for path in gone {
        let p = dest.as_std_path().join(OsStr::from_bytes(path));
        let removed = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        removed.map_err(|err| io("remove", &p, err))?;
    }
    Ok(())
}

/// Whether the base copy's file at `path` still looks like the source entry `e` (size, mtime,
/// mode, owner, a regular file): one `lstat`, no read.
fn copy_matches(path: &Path, e: &FileEntry) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file()
            && m.len() == e.size
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == e.mtime_ns
            && m.mode() == e.mode
            && m.uid() == e.uid
            && m.gid() == e.gid
    })
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
    let want = backup_host::linkguard::xattrs(src);
    for (name, _) in backup_host::linkguard::xattrs(dest) {
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

/// The NUL-separated list rsync reads: the sent paths only (gone ones were removed from the
/// staging tree by [`build_link_tree`]; listing them would need `--delete-missing-args`).
pub fn files_from(diff: &Diff) -> Vec<u8> {
    let mut out = Vec::new();
    for p in &diff.send {
        backup_core::encode_files_from(p, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_host::tree::walk;

    fn e(path: &str, kind: EntryKind, size: u64, mode: u32) -> FileEntry {
        FileEntry {
            kind,
            mode,
            sqlite: None,
            ..backup_core::testing::file_entry(path, size)
        }
    }

    #[test]
    fn one_walk_reads_only_the_headers_it_cannot_know_from_the_record() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        for i in 0..10 {
            std::fs::write(r.join(format!("sub/f{i}")), vec![b'x'; 100]).unwrap();
        }
        let db = r.join("sub/app.db");
        let mut page = b"SQLite format 3\0".to_vec();
        page.extend_from_slice(&[0x10, 0x00]); // 4096-byte pages
        page.resize(4096, 0);
        std::fs::write(&db, &page).unwrap();
        std::fs::write(r.join("sub/app.db-wal"), vec![0u8; 32]).unwrap();
        let first = walk(r, &BTreeMap::new(), false).unwrap();
        assert_eq!(first.headers_read, 11, "every file but the side file");
        assert_eq!(first.databases.databases, [Path::new("sub/app.db")]);
        assert_eq!(first.entries[0].path, b".");
        let base: BTreeMap<_, _> = first
            .entries
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect();
        let again = walk(r, &base, false).unwrap();
        assert_eq!(again.headers_read, 1, "only the database is read again");
        assert_eq!(again.databases.databases, [Path::new("sub/app.db")]);
        // a file known not to be a database that changes is read again, and found
        std::fs::write(r.join("sub/f3"), &page).unwrap();
        let changed = walk(r, &base, false).unwrap();
        assert_eq!(changed.headers_read, 2);
        assert_eq!(
            changed.databases.databases,
            [Path::new("sub/app.db"), Path::new("sub/f3")]
        );
        let f3 = changed
            .entries
            .iter()
            .find(|e| e.path == b"sub/f3")
            .unwrap();
        assert_eq!(f3.sqlite, Some(true));
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
        let d = diff(&source, &base, Trust::default());
        let s = |set: &BTreeSet<Vec<u8>>| {
            set.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(&d.send), [".", "d", "d/chmod", "d/grown", "d/new"]);
        assert_eq!(s(&d.gone), ["gone", "old"]);
        assert_eq!(s(&d.unchanged), ["d/same"]);
    }
}
