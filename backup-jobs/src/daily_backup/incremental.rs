//! The copy from a diff: one walk of the snapshot, compared with the per-file record of the
//! version the copy builds on, and a copy of only what changed.
//!
//! - A later run of the same week with nothing changed copies nothing at all.
//! - Otherwise the update is built beside the complete version (see `version_commit`) as a
//!   hardlink tree of the version it builds on (every folder and every unchanged file; where
//!   there is a spare, the copy a swap replaced, by bringing it up to date), then the changed
//!   paths (and the folders holding them) are copied in as `rsync --files-from` would copy
//!   them (in process, or by rsync: `backup_host::local_copy::LocalFirstSync`) to fill in the
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
/// With `reused`, `dest` already holds a tree (the copy the last commit replaced): what must not
/// be in the update is removed first ([`prune_reused`]), and a file already there is kept only
/// when it is the very inode `base_copy` holds at its path, so the result is the tree an empty
/// `dest` would have given, whatever `dest` held.
///
/// # Errors
/// When a folder cannot be created or a link made for another reason than a missing base file.
pub fn build_link_tree(
    source_root: &Path,
    source: &[FileEntry],
    base: &BTreeMap<Vec<u8>, FileEntry>,
    base_copy: &Utf8Path,
    dest: &Utf8Path,
    reused: bool,
    diff: &mut Diff,
) -> Result<()> {
    if reused {
        prune_reused(dest.as_std_path(), source, &diff.send)?;
    }
    std::fs::create_dir_all(dest).map_err(|e| io("create folder", dest.as_std_path(), e))?;
    let dirs: Vec<&FileEntry> = source.iter().filter(|e| e.kind == EntryKind::Dir).collect();
    // by path, a folder comes before what it holds: each is made once its parent is there
    for e in &dirs {
        let p = dest.as_std_path().join(OsStr::from_bytes(&e.path));
        match std::fs::create_dir(&p) {
            Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
                std::fs::create_dir_all(&p).map_err(|err| io("create folder", &p, err))?;
            }
            _ => {}
        }
    }
    let failed = link_unchanged(
        source,
        &diff.unchanged,
        base_copy.as_std_path(),
        dest.as_std_path(),
        reused,
    );
    for path in failed {
        if reused {
            // rsync must find nothing there: a file it found would be kept if its size and
            // mtime match, and given the new attributes in place
            let p = dest.as_std_path().join(OsStr::from_bytes(&path));
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", &p, e));
                }
                _ => {}
            }
        }
        // the base copy lost it: rsync sends it, and resets its folder's times after
        diff.unchanged.remove(&path);
        if let Some(p) = parent(&path) {
            diff.send.insert(p.to_vec());
        }
        diff.send.insert(path);
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

/// Links every file of `unchanged` from `base_copy` into `dest` (whose folders exist), one
/// worker per core taking whole folders in turn: each folder of both trees is opened once and
/// every name in it linked relative to the two (`linkat`), after one `fstatat` that checks the
/// base copy's file still is what `source` says (a regular file of that size, mtime, mode and
/// owner; never one changed in place). With `reused`, a file `dest` already holds is kept when
/// it is that very inode. Returns the paths not linked, for rsync to send.
fn link_unchanged(
    source: &[FileEntry],
    unchanged: &BTreeSet<Vec<u8>>,
    base_copy: &Path,
    dest: &Path,
    reused: bool,
) -> Vec<Vec<u8>> {
    let mut folders: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
    for path in unchanged {
        folders
            .entry(parent(path).unwrap_or(b"."))
            .or_default()
            .push(path);
    }
    let folders: Vec<(&[u8], Vec<&[u8]>)> = folders.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((folder, paths)) = folders.get(i) else {
                            return failed;
                        };
                        let trees = (base_copy, dest, reused);
                        link_folder(source, folder, paths, trees, &mut failed);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// [`link_unchanged`] of the files `paths` of one folder.
fn link_folder(
    source: &[FileEntry],
    folder: &[u8],
    paths: &[&[u8]],
    (base_copy, dest, reused): (&Path, &Path, bool),
    failed: &mut Vec<Vec<u8>>,
) {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let open = |root: &Path| {
        let dir = if folder == b"." {
            root.to_owned()
        } else {
            root.join(OsStr::from_bytes(folder))
        };
        rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let (Ok(from), Ok(to)) = (open(base_copy), open(dest)) else {
        failed.extend(paths.iter().map(|p| p.to_vec()));
        return;
    };
    // a reused folder's files and inodes, from one listing instead of a stat a file (on the
    // base copy's file system only: an inode number names a file within one)
    let dev = |fd| rustix::fs::fstat(fd).map(|st| st.st_dev).ok();
    let one_fs = matches!((dev(&from), dev(&to)), (Some(a), Some(b)) if a == b);
    let present: Vec<(Vec<u8>, u64)> = if reused && one_fs {
        inodes_in(&to)
    } else {
        Vec::new()
    };
    for path in paths {
        let name = OsStr::from_bytes(path.rsplit(|b| *b == b'/').next().unwrap_or(path));
        let base_file = source
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
            .and_then(|i| {
                rustix::fs::statat(&from, name, AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .filter(|st| stat_matches(st, &source[i]))
            });
        let linked = base_file.is_some_and(|st| {
            // a reused tree: kept when it already is that very inode, else replaced
            // one file system (hardlinks are): the inode number alone names the file
            let kept = present
                .binary_search_by(|(n, _)| n.as_slice().cmp(name.as_bytes()))
                .is_ok_and(|i| present[i].1 == st.st_ino);
            kept || match rustix::fs::linkat(&from, name, &to, name, AtFlags::empty()) {
                Ok(()) => true,
                Err(rustix::io::Errno::EXIST) if reused => {
                    rustix::fs::unlinkat(&to, name, AtFlags::empty()).is_ok()
                        && rustix::fs::linkat(&from, name, &to, name, AtFlags::empty()).is_ok()
                }
                Err(e) => e == rustix::io::Errno::EXIST,
            }
        });
        if !linked {
            failed.push(path.to_vec());
        }
    }
}

/// The regular files in the folder `dir` (an `O_PATH` descriptor) with their inode numbers,
/// sorted by name; empty when it cannot be listed (then every file is linked again).
fn inodes_in(dir: &rustix::fd::OwnedFd) -> Vec<(Vec<u8>, u64)> {
    use rustix::fs::{Mode, OFlags};
    let Ok(readable) = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let Ok(listing) = rustix::fs::Dir::read_from(&readable) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, u64)> = listing
        .map_while(std::result::Result::ok)
        .filter(|e| e.file_type() == rustix::fs::FileType::RegularFile)
        .map(|e| (e.file_name().to_bytes().to_vec(), e.ino()))
        .collect();
    out.sort_unstable();
    out
}

/// Removes from `dest`, a reused tree, every entry the update must not hold: what the source
/// does not have, what it has as another kind (a folder for a file or the other way round),
/// and every non-folder it sends again (rsync writes those anew). What is left is folders of
/// the source and files that may be the base copy's: [`link_folder`] decides on each.
///
/// # Errors
/// When a folder cannot be read or an entry removed.
fn prune_reused(dest: &Path, source: &[FileEntry], send: &BTreeSet<Vec<u8>>) -> Result<()> {
    let mut folders: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = folders.pop() {
        let dir = if rel.is_empty() {
            dest.to_owned()
        } else {
            dest.join(OsStr::from_bytes(&rel))
        };
        let listing = std::fs::read_dir(&dir).map_err(|e| io("read folder", &dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| io("read folder", &dir, e))?;
            let name = entry.file_name();
            let mut path = rel.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let is_dir = entry
                .file_type()
                .map_err(|e| io("read the type of", &entry.path(), e))?
                .is_dir();
            let wanted = source
                .binary_search_by(|e| e.path.as_slice().cmp(&path))
                .ok()
                .map(|i| &source[i]);
            let keep = match wanted {
                Some(e) if e.kind == EntryKind::Dir => is_dir,
                Some(e) => e.kind == EntryKind::File && !is_dir && !send.contains(&path),
                None => false,
            };
            if keep && is_dir {
                folders.push(path);
            } else if !keep {
                let p = entry.path();
                let removed = if is_dir {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                removed.map_err(|e| io("remove", &p, e))?;
            }
        }
    }
    Ok(())
}

/// Whether the base copy's file (`st`) still looks like the source entry `e`: a regular file
/// of its size, mtime, mode and owner.
fn stat_matches(st: &rustix::fs::Stat, e: &FileEntry) -> bool {
    let mode = st.st_mode;
    rustix::fs::FileType::from_raw_mode(mode) == rustix::fs::FileType::RegularFile
        && u64::try_from(st.st_size).ok() == Some(e.size)
        && i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec)
            == i128::from(e.mtime_ns)
        && mode == e.mode
        && st.st_uid == e.uid
        && st.st_gid == e.gid
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

/// Gives the folder `dest` the owner, mode, extended attributes and mtime of `src` (entry `e`).
/// Only what differs is written: a folder of a reused tree mostly has them already.
fn dir_attributes(src: &Path, dest: &Path, e: &FileEntry) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::symlink_metadata(dest).map_err(|err| io("stat", dest, err))?;
    let chown = (now.uid(), now.gid()) != (e.uid, e.gid);
    if chown {
        std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
            .map_err(|err| io("chown", dest, err))?;
    }
    // chown clears the setuid and setgid bits: the mode after it
    if chown || now.mode() & 0o7777 != e.mode & 0o7777 {
        std::fs::set_permissions(
            dest,
            std::os::unix::fs::PermissionsExt::from_mode(e.mode & 0o7777),
        )
        .map_err(|err| io("chmod", dest, err))?;
    }
    let want = backup_host::linkguard::xattrs(src);
    let have = backup_host::linkguard::xattrs(dest);
    for (name, _) in &have {
        if !want.iter().any(|(n, _)| n == name) {
            if let Ok(c) = std::ffi::CString::new(name.clone()) {
                let _ = rustix::fs::lremovexattr(dest, c.as_c_str());
            }
        }
    }
    for (name, value) in &want {
        if have.iter().any(|(n, v)| n == name && v == value) {
            continue;
        }
        let c = std::ffi::CString::new(name.clone())
            .map_err(|_| io("set xattr on", dest, std::io::Error::other("NUL in a name")))?;
        rustix::fs::lsetxattr(dest, c.as_c_str(), value, rustix::fs::XattrFlags::empty())
            .map_err(|err| io("set xattr on", dest, err.into()))?;
    }
    if i128::from(now.mtime()) * 1_000_000_000 + i128::from(now.mtime_nsec())
        == i128::from(e.mtime_ns)
    {
        return Ok(());
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

    /// The link tree links a file only when the base copy's file still is what the record says
    /// (never one changed in place or gone), through every folder, with both cores.
    #[test]
    fn the_link_tree_links_only_what_the_base_copy_still_holds_unchanged() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let (src, base, dest) = (
            d.path().join("src"),
            d.path().join("base"),
            d.path().join("dest"),
        );
        for f in 0..40 {
            for i in 0..25 {
                let p = src.join(format!("f{f:02}/sub/x{i}"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, format!("{f} {i}")).unwrap();
            }
        }
        std::fs::write(src.join("top"), "top").unwrap();
        let cp = std::process::Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&base)
            .status()
            .unwrap();
        assert!(cp.success());
        // in the base copy: one file grown in place, one gone, one folder gone
        std::fs::write(base.join("f03/sub/x1"), "changed in place, longer").unwrap();
        std::fs::remove_file(base.join("f07/sub/x2")).unwrap();
        std::fs::remove_dir_all(base.join("f09")).unwrap();
        let entries = walk(&src, &BTreeMap::new(), false).unwrap().entries;
        let record: BTreeMap<Vec<u8>, FileEntry> = entries
            .iter()
            .map(|e| (e.path.clone(), e.clone()))
            .collect();
        let mut diff = diff(&entries, &record, Trust::default());
        assert_eq!(diff.unchanged.len(), 40 * 25 + 1);
        let dest = Utf8Path::from_path(&dest).unwrap();
        let base_u = Utf8Path::from_path(&base).unwrap();
        build_link_tree(&src, &entries, &record, base_u, dest, false, &mut diff).unwrap();
        let sent: Vec<&[u8]> = diff.send.iter().map(Vec::as_slice).collect();
        let mut want: Vec<Vec<u8>> = vec![
            b"f03/sub".to_vec(),
            b"f03/sub/x1".to_vec(),
            b"f07/sub".to_vec(),
            b"f07/sub/x2".to_vec(),
            b"f09/sub".to_vec(),
        ];
        want.extend((0..25).map(|i| format!("f09/sub/x{i}").into_bytes()));
        want.sort();
        assert_eq!(sent, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // everything else is the base copy's inode; nothing sent is in the tree yet
        for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
            let rel = std::str::from_utf8(&e.path).unwrap();
            let at = dest.join(rel);
            if diff.send.contains(&e.path) {
                assert!(!at.exists(), "{rel} was linked");
            } else {
                let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
                assert_eq!(ino(at.as_std_path()), ino(&base.join(rel)), "{rel}");
            }
        }
    }

    /// What a tree holds, for comparing two: each entry's kind, a file's inode, a folder's
    /// mode, owner and (unless rsync still sets it: `send`) mtime.
    fn tree_state(
        root: &Path,
        send: &BTreeSet<Vec<u8>>,
    ) -> BTreeMap<Vec<u8>, (String, u64, u32, i64)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = BTreeMap::new();
        let mut todo = vec![root.to_owned()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                let state = if m.is_dir() {
                    todo.push(e.path());
                    let mtime = if send.contains(&rel) { 0 } else { m.mtime() };
                    ("dir".to_owned(), 0, m.mode(), mtime)
                } else {
                    (format!("{:?}", m.file_type()), m.ino(), m.mode(), 0)
                };
                out.insert(rel, state);
            }
        }
        out
    }

    /// A rerun builds its update from the copy the last run replaced. Whatever that holds (a
    /// stray file, a folder where a file goes and the other way round, a copy of a file with
    /// the same bytes and times but another inode, a symlink, the old version of a changed
    /// file), the tree is the one an empty folder gives: the same entries, every file the base
    /// copy's very inode, the same folders' attributes, the same list to send.
    #[test]
    fn a_reused_tree_ends_as_the_tree_an_empty_folder_gives() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let at = |p: &str| d.path().join(p);
        let cp = |flags: &str, from: &Path, to: &Path| {
            let ok = std::process::Command::new("cp")
                .arg(flags)
                .arg(from)
                .arg(to)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        };
        let src = at("src");
        for f in 0..6 {
            for i in 0..8 {
                let p = src.join(format!("d{f}/sub/x{i}"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, format!("{f} {i}")).unwrap();
            }
        }
        std::fs::write(src.join("top"), "top").unwrap();
        std::fs::write(src.join("becomes-dir"), "f").unwrap();
        std::fs::create_dir_all(src.join("becomes-file/in")).unwrap();
        // the complete version (the base copy) and its record; the spare is an older copy
        let base = at("base");
        cp("-a", &src, &base);
        let spare = at("spare");
        cp("-al", &base, &spare);
        let entries = walk(&base, &BTreeMap::new(), false).unwrap().entries;
        let record: BTreeMap<Vec<u8>, FileEntry> = entries
            .iter()
            .map(|e| (e.path.clone(), e.clone()))
            .collect();
        // the snapshot moved on: changed, new, gone, kinds swapped, a folder's mode
        std::fs::write(src.join("d1/sub/x1"), "changed, longer").unwrap();
        std::fs::write(src.join("d2/new"), "new").unwrap();
        std::fs::remove_file(src.join("d3/sub/x3")).unwrap();
        std::fs::remove_dir_all(src.join("d4")).unwrap();
        std::fs::remove_file(src.join("becomes-dir")).unwrap();
        std::fs::create_dir(src.join("becomes-dir")).unwrap();
        std::fs::remove_dir_all(src.join("becomes-file")).unwrap();
        std::fs::write(src.join("becomes-file"), "now a file").unwrap();
        symlink("top", src.join("link")).unwrap();
        std::fs::set_permissions(
            src.join("d5"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        // the spare, hostile: strays, kinds swapped, a same-looking copy, a symlink
        std::fs::write(spare.join("stray"), "x").unwrap();
        std::fs::create_dir_all(spare.join("d0/sub/stray-dir/deep")).unwrap();
        std::fs::remove_file(spare.join("d0/sub/x0")).unwrap();
        std::fs::create_dir(spare.join("d0/sub/x0")).unwrap();
        std::fs::remove_file(spare.join("d0/sub/x1")).unwrap();
        cp("-a", &base.join("d0/sub/x1"), &spare.join("d0/sub/x1"));
        std::fs::remove_file(spare.join("d0/sub/x2")).unwrap();
        symlink("x3", spare.join("d0/sub/x2")).unwrap();
        std::fs::remove_dir_all(spare.join("d5/sub")).unwrap();
        std::fs::write(spare.join("d5/sub"), "a file where a folder goes").unwrap();
        std::fs::remove_file(spare.join("link")).ok();
        std::fs::write(spare.join("link"), "a file where a symlink goes").unwrap();
        // and the base copy lost a folder the spare still holds (its files cannot be linked:
        // rsync sends them, and must find nothing there)
        std::fs::remove_dir_all(base.join("d2/sub")).unwrap();
        let now = walk(&src, &BTreeMap::new(), false).unwrap().entries;
        let base_u = Utf8Path::from_path(&base).unwrap();
        let build = |dest: &Path, reused: bool| {
            let mut diff = diff(&now, &record, Trust::default());
            let dest_u = Utf8Path::from_path(dest).unwrap();
            build_link_tree(&src, &now, &record, base_u, dest_u, reused, &mut diff).unwrap();
            diff
        };
        let fresh = build(&at("fresh"), false);
        let reused = build(&spare, true);
        assert_eq!(fresh.send, reused.send);
        assert!(fresh.send.contains(b"d1/sub/x1".as_slice()));
        assert!(fresh.send.contains(b"d2/sub/x5".as_slice()));
        let (a, b) = (
            tree_state(&at("fresh"), &fresh.send),
            tree_state(&spare, &reused.send),
        );
        let only = |x: &BTreeMap<Vec<u8>, _>, y: &BTreeMap<Vec<u8>, _>| -> Vec<String> {
            x.keys()
                .filter(|k| !y.contains_key(*k))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect()
        };
        assert_eq!(
            only(&b, &a),
            Vec::<String>::new(),
            "only in the reused tree"
        );
        assert_eq!(
            only(&a, &b),
            Vec::<String>::new(),
            "missing from the reused tree"
        );
        for (path, state) in &a {
            assert_eq!(&b[path], state, "{} differs", String::from_utf8_lossy(path));
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
