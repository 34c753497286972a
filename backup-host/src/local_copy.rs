//! A local tree copy for restores into an empty folder: what `rsync -aHAX --numeric-ids
//! --sparse` does between two local folders, without rsync's three processes and per-file
//! protocol. Every entry keeps its type, owner, group (numeric), mode (setuid, setgid, sticky
//! included), mtime (ns), extended attributes (ACLs are `system.posix_acl_*` attributes) and
//! hardlinks within the tree; files keep their holes (data is copied segment by segment between
//! `SEEK_DATA` and `SEEK_HOLE`, in the kernel with `copy_file_range`); symlinks are never
//! followed, on either side.
//!
//! Order: folders first (private until the end), then files with one worker per core, then the
//! second and later names of hardlinked files, then each folder's owner, attributes, mode and
//! times, deepest first (so a read-only folder is filled before it is made read-only, and a
//! folder's mtime is not moved by what is created in it). Owner before attributes before mode:
//! `chown` clears setuid bits and file capabilities, so those are set after it.
//!
//! What is copied is checked afterwards against the version's record by the caller
//! (`backupctl restore`): this module proves nothing by itself.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use backup_core::{EntryKind, FileEntry};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps, CWD};

use crate::error::{Error, Result};

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Entries created (folders, files, links, specials; the top folder not counted).
    pub entries: u64,
    /// Bytes of file content (holes not counted).
    pub bytes: u64,
    /// Regular files (each name of a hardlinked file counted).
    pub files: u64,
    /// Their sizes, holes included.
    pub file_bytes: u64,
}

fn io(action: &'static str, path: &Path, e: impl Into<std::io::Error>) -> Error {
    Error::io(action, path.to_string_lossy().into_owned(), e.into())
}

fn rel(root: &Path, p: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(p))
}

/// Copies the tree at `from` into the folder `to`, which must exist and be empty. `stop` (set by
/// SIGTERM/SIGINT) is looked at before every file and every 64 MiB of one.
///
/// # Errors
/// The first entry that could not be read or written, by path, or [`Error::Interrupted`] when
/// `stop` was set; what was written before stays (the caller copies into a folder it may
/// remove).
pub fn copy_tree(from: &Path, to: &Path, stop: Option<&AtomicBool>) -> Result<Copied> {
    if std::fs::read_dir(to)
        .map_err(|e| io("read", to, e))?
        .next()
        .is_some()
    {
        return Err(Error::Refused(format!(
            "{} is not empty: the local copy only writes into an empty folder",
            to.display()
        )));
    }
    let entries = crate::tree::walk_entries(from)?;
    let regular = entries.iter().filter(|e| e.kind == EntryKind::File);
    let mut copied = Copied {
        files: regular.clone().count() as u64,
        file_bytes: regular.map(|e| e.size).sum(),
        ..Copied::default()
    };
    // folders first, parents before children (the walk sorts by path), private for now
    for e in entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir && e.path != b".")
    {
        let dst = rel(to, &e.path);
        rustix::fs::mkdirat(CWD, &dst, Mode::from_raw_mode(0o700))
            .map_err(|x| io("create folder", &dst, x))?;
        copied.entries += 1;
    }
    let (singles, links) = first_names(&entries);
    copy_then_link(from, to, (&singles, &links), stop, &mut copied)?;
    // the top folder at the very end
    finish_folders(from, to, &entries, false)?;
    Ok(copied)
}

/// Each inode once: the first name of every non-folder, to copy, and each later name with the
/// first, to link to it afterwards (rsync -H links symlinks and specials too).
type FirstNames<'e> = (Vec<&'e FileEntry>, Vec<(&'e FileEntry, &'e FileEntry)>);

fn first_names(entries: &[FileEntry]) -> FirstNames<'_> {
    let mut first_of: BTreeMap<u64, &FileEntry> = BTreeMap::new();
    let (mut singles, mut links) = (Vec::new(), Vec::new());
    for e in entries.iter().filter(|e| e.kind != EntryKind::Dir) {
        if e.nlink > 1 {
            if let Some(first) = first_of.get(&e.inode) {
                links.push((*first, e));
                continue;
            }
            first_of.insert(e.inode, e);
        }
        singles.push(e);
    }
    (singles, links)
}

/// Copies the first names, then links the later ones to them; counts the entries made and the
/// bytes copied into `copied`.
fn copy_then_link(
    from: &Path,
    to: &Path,
    (singles, links): (&[&FileEntry], &[(&FileEntry, &FileEntry)]),
    stop: Option<&AtomicBool>,
    copied: &mut Copied,
) -> Result<()> {
    copied.bytes = copy_entries(from, to, singles, stop)?;
    copied.entries += singles.len() as u64;
    for (first, e) in links {
        let (src, dst) = (rel(to, &first.path), rel(to, &e.path));
        rustix::fs::linkat(CWD, &src, CWD, &dst, AtFlags::empty())
            .map_err(|x| io("link", &dst, x))?;
        copied.entries += 1;
    }
    Ok(())
}

/// Gives every folder of `entries` the owner, attributes, mode and times of the source's,
/// deepest first (nothing is created in one after its mtime is set); with `exact_xattrs`, an
/// extended attribute the source's folder lacks is removed first (a folder that was there).
fn finish_folders(from: &Path, to: &Path, entries: &[FileEntry], exact_xattrs: bool) -> Result<()> {
    for e in entries.iter().rev().filter(|e| e.kind == EntryKind::Dir) {
        let (src, dst) = (rel(from, &e.path), rel(to, &e.path));
        let fd = rustix::fs::open(
            &dst,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|x| io("open", &dst, x))?;
        if exact_xattrs {
            let want = crate::linkguard::xattrs(&src);
            for (name, _) in crate::linkguard::xattrs(&dst) {
                if !want.iter().any(|(n, _)| *n == name) {
                    rustix::fs::fremovexattr(&fd, OsStr::from_bytes(&name))
                        .map_err(|x| io("remove an extended attribute of", &dst, x))?;
                }
            }
        }
        finish(&fd, &src, &dst, e)?;
    }
    Ok(())
}

/// Copies the paths `list` of `from` into `to`: what `rsync -aHAX --numeric-ids --sparse
/// --from0 --files-from` (no `-r`) writes when every listed folder's parent is in `to` and no
/// listed non-folder is. A listed folder gets the source's owner, extended attributes (only
/// those: any other is removed), mode and mtime, after what is copied into it; it is created
/// when missing. Files of the list that are one inode in the source are one here too.
///
/// `None` when the copy is not one this function makes as rsync would, and rsync should: a
/// folder that receives new entries has a default ACL (a new entry would inherit it).
///
/// Unlike `--sparse`, runs of zeros the source wrote are written, not made holes: the copy has
/// the source's holes.
///
/// # Errors
/// A listed non-folder that `to` already holds ([`Error::Refused`]: nothing is overwritten), or
/// the first entry that could not be read or written.
pub fn copy_listed(
    from: &Path,
    to: &Path,
    list: &[Vec<u8>],
    stop: Option<&AtomicBool>,
) -> Result<Option<Copied>> {
    let entries = listed_entries(from, list)?;
    if inherits_a_default_acl(to, &entries) {
        return Ok(None);
    }
    let mut copied = Copied::default();
    for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
        let dst = rel(to, &e.path);
        match rustix::fs::mkdirat(CWD, &dst, Mode::from_raw_mode(0o700)) {
            Ok(()) => copied.entries += 1,
            Err(rustix::io::Errno::EXIST) => {}
            Err(x) => return Err(io("create folder", &dst, x)),
        }
    }
    for e in entries.iter().filter(|e| e.kind != EntryKind::Dir) {
        let dst = rel(to, &e.path);
        if rustix::fs::lstat(&dst).is_ok() {
            return Err(Error::Refused(format!(
                "{} is already there: the copy of the changed paths never overwrites",
                dst.display()
            )));
        }
    }
    let (singles, links) = first_names(&entries);
    // what was sent: the second names of a file are linked, not sent (as rsync --stats counts)
    let sent = singles.iter().filter(|e| e.kind == EntryKind::File);
    copied.files = sent.clone().count() as u64;
    copied.file_bytes = sent.map(|e| e.size).sum();
    copy_then_link(from, to, (&singles, &links), stop, &mut copied)?;
    finish_folders(from, to, &entries, true)?;
    Ok(Some(copied))
}

/// The entries of the paths `list` of `from`, sorted by path, each once.
fn listed_entries(from: &Path, list: &[Vec<u8>]) -> Result<Vec<FileEntry>> {
    let mut entries = Vec::with_capacity(list.len());
    for path in list {
        let src = rel(from, path);
        let st = rustix::fs::lstat(&src).map_err(|x| io("stat", &src, x))?;
        let target =
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
                rustix::fs::readlink(&src, Vec::new())
                    .map_err(|x| io("read link", &src, x))?
                    .into_bytes()
            } else {
                Vec::new()
            };
        entries.push(crate::tree::entry_from(path, &st, target, [0; 16]));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

/// Whether a folder of `to` that a new entry goes into, or (not there yet) the one a new folder
/// inherits from, has a default ACL: what is created in it would inherit that.
fn inherits_a_default_acl(to: &Path, entries: &[FileEntry]) -> bool {
    let receiving: std::collections::BTreeSet<&[u8]> = entries
        .iter()
        .filter(|e| e.path != b".")
        .map(|e| parent_of(&e.path))
        .collect();
    receiving.into_iter().any(|folder| {
        crate::linkguard::xattrs(&rel(to, folder))
            .iter()
            .any(|(n, _)| n == b"system.posix_acl_default")
    })
}

/// The folder holding `path` (`.` for a top-level name).
fn parent_of(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|b| *b == b'/')
        .map_or(b".".as_slice(), |i| &path[..i])
}

/// Copies `todo` (files, symlinks, specials) with one worker per core; returns bytes copied.
fn copy_entries(
    from: &Path,
    to: &Path,
    todo: &[&FileEntry],
    stop: Option<&AtomicBool>,
) -> Result<u64> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = todo.get(i) else { return };
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                match copy_one(from, to, e, stop) {
                    Ok(n) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(err) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(err);
                        }
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(bytes.into_inner()),
    }
}

fn stopped(stop: Option<&AtomicBool>, dst: &Path) -> Result<()> {
    if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        return Err(Error::Interrupted(format!(
            "copying into {}",
            dst.display()
        )));
    }
    Ok(())
}

fn copy_one(from: &Path, to: &Path, e: &FileEntry, stop: Option<&AtomicBool>) -> Result<u64> {
    let (src, dst) = (rel(from, &e.path), rel(to, &e.path));
    stopped(stop, &dst)?;
    match e.kind {
        EntryKind::File => copy_file(&src, &dst, e, stop),
        EntryKind::Symlink => {
            rustix::fs::symlinkat(OsStr::from_bytes(&e.link_target), CWD, &dst)
                .map_err(|x| io("create symlink", &dst, x))?;
            finish_path(&src, &dst, e)?;
            Ok(0)
        }
        EntryKind::Special => {
            let kind = rustix::fs::FileType::from_raw_mode(e.mode);
            rustix::fs::mknodat(CWD, &dst, kind, Mode::from_raw_mode(0o600), e.rdev)
                .map_err(|x| io("create", &dst, x))?;
            finish_path(&src, &dst, e)?;
            Ok(0)
        }
        EntryKind::Dir => Ok(0),
    }
}

/// One regular file: its data segments (holes stay holes), then owner, attributes, mode, times.
fn copy_file(src: &Path, dst: &Path, e: &FileEntry, stop: Option<&AtomicBool>) -> Result<u64> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let input = rustix::fs::open(src, flags, Mode::empty()).map_err(|x| io("read", src, x))?;
    let output = rustix::fs::open(
        dst,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|x| io("create", dst, x))?;
    let size = rustix::fs::fstat(&input)
        .map_err(|x| io("stat", src, x))?
        .st_size as u64;
    let mut copied = 0u64;
    let mut at = 0u64;
    while at < size {
        // the next data segment; none left: the rest is a hole
        let start = match rustix::fs::seek(&input, rustix::fs::SeekFrom::Data(at as i64)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(x) => return Err(io("read", src, x)),
        };
        let end = rustix::fs::seek(&input, rustix::fs::SeekFrom::Hole(start as i64))
            .map_err(|x| io("read", src, x))?
            .min(size);
        // in pieces of 64 MiB, so that a stop is seen within one
        let mut piece = start;
        while piece < end {
            stopped(stop, dst)?;
            let upto = end.min(piece + (64 << 20));
            copied += copy_range(&input, &output, piece, upto, src, dst)?;
            piece = upto;
        }
        at = end;
    }
    // a hole at the end, or a file that shrank while read: the size the walk saw
    rustix::fs::ftruncate(&output, e.size).map_err(|x| io("write", dst, x))?;
    finish(&output, src, dst, e)?;
    Ok(copied)
}

/// Copies bytes `start..end` at the same offsets: in the kernel where it can, else through a
/// buffer.
fn copy_range(
    input: &OwnedFd,
    output: &OwnedFd,
    start: u64,
    end: u64,
    src: &Path,
    dst: &Path,
) -> Result<u64> {
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let want = usize::try_from(end - off_in)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(
            input,
            Some(&mut off_in),
            output,
            Some(&mut off_out),
            want,
        ) {
            // a read-only source does not shrink: an early end is an error, never zeros
            Ok(0) => {
                return Err(io(
                    "read",
                    src,
                    std::io::Error::other(format!("it ended at byte {off_in}, before {end}")),
                ))
            }
            Ok(_) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => {
                return copy_by_buffer(input, output, off_in, end, src, dst)
                    .map(|n| n + (off_in - start));
            }
            Err(x) => return Err(io("copy into", dst, x)),
        }
    }
    Ok(off_in - start)
}

fn copy_by_buffer(
    input: &OwnedFd,
    output: &OwnedFd,
    mut at: u64,
    end: u64,
    src: &Path,
    dst: &Path,
) -> Result<u64> {
    let start = at;
    let mut buf = vec![0u8; 256 << 10];
    while at < end {
        let want = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = rustix::io::pread(input, &mut buf[..want], at).map_err(|x| io("read", src, x))?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::pwrite(output, &buf[done..n], at + done as u64)
                .map_err(|x| io("write", dst, x))?;
        }
        at += n as u64;
    }
    Ok(at - start)
}

fn times(e: &FileEntry) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: e.mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: e.mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    }
}

/// Owner, extended attributes, mode and mtime of an open file or folder.
fn finish(fd: &OwnedFd, src: &Path, dst: &Path, e: &FileEntry) -> Result<()> {
    std::os::unix::fs::fchown(fd, Some(e.uid), Some(e.gid)).map_err(|x| io("chown", dst, x))?;
    for (name, value) in crate::linkguard::xattrs(src) {
        rustix::fs::fsetxattr(
            fd,
            OsStr::from_bytes(&name),
            &value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|x| io("set an extended attribute on", dst, x))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(e.mode & 0o7777))
        .map_err(|x| io("chmod", dst, x))?;
    rustix::fs::futimens(fd, &times(e)).map_err(|x| io("set the times of", dst, x))
}

/// The same for a symlink or a special file, by path, never following it.
fn finish_path(src: &Path, dst: &Path, e: &FileEntry) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(e.uid), Some(e.gid)).map_err(|x| io("chown", dst, x))?;
    for (name, value) in crate::linkguard::xattrs(src) {
        rustix::fs::lsetxattr(
            dst,
            OsStr::from_bytes(&name),
            &value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|x| io("set an extended attribute on", dst, x))?;
    }
    if e.kind == EntryKind::Special {
        rustix::fs::chmodat(
            CWD,
            dst,
            Mode::from_raw_mode(e.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|x| io("chmod", dst, x))?;
    }
    rustix::fs::utimensat(CWD, dst, &times(e), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|x| io("set the times of", dst, x))
}

/// A [`FileSync`](backup_core::FileSync) that makes a whole copy of a snapshot into an empty
/// folder with [`copy_tree`] (no earlier copy to link against, no list: the first copy of a
/// volume), and the listed paths of a snapshot into an update's tree with [`copy_listed`] (the
/// changed paths), and hands every other transfer to `inner` (rsync). The snapshot is
/// read-only, so nothing can change under the copy; a live tree always goes to `inner`.
pub struct LocalFirstSync<'a> {
    inner: Box<dyn backup_core::FileSync + 'a>,
    stop: &'a AtomicBool,
}

impl<'a> LocalFirstSync<'a> {
    /// Wraps `inner`; `stop` ends a copy between files.
    pub fn new(inner: Box<dyn backup_core::FileSync + 'a>, stop: &'a AtomicBool) -> Self {
        Self { inner, stop }
    }
}

impl LocalFirstSync<'_> {
    /// The listed paths of a snapshot, with [`copy_listed`]; `None` for any other request, or
    /// one [`copy_listed`] leaves to rsync.
    fn listed(
        &self,
        r: &backup_core::SyncRequest,
    ) -> backup_core::Result<Option<backup_core::SyncOutcome>> {
        let Some(list_file) = &r.files_from else {
            return Ok(None);
        };
        if r.link_dest.is_some()
            || r.checksum
            || r.source_kind != backup_core::SourceKind::Snapshot
            || !r.dest.is_dir()
        {
            return Ok(None);
        }
        let bytes = std::fs::read(list_file).map_err(|e| fail(Error::io("read", list_file, e)))?;
        let list: Vec<Vec<u8>> = bytes
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| p.strip_prefix(b"./").unwrap_or(p).to_vec())
            .collect();
        let copied = copy_listed(
            r.source.as_std_path(),
            r.dest.as_std_path(),
            &list,
            Some(self.stop),
        )
        .map_err(fail)?;
        Ok(copied.map(|c| backup_core::SyncOutcome {
            stats: backup_core::SyncStats {
                files: c.files,
                transferred_files: c.files,
                total_bytes: c.file_bytes,
                transferred_bytes: c.file_bytes,
                deleted_files: 0,
            },
            warnings: Vec::new(),
        }))
    }
}

/// An error of the local copy as the copy's error.
fn fail(e: Error) -> backup_core::Error {
    match e {
        Error::Interrupted(what) => backup_core::CommandError::Interrupted { argv: what }.into(),
        other => other.into_core("copy"),
    }
}

impl backup_core::FileSync for LocalFirstSync<'_> {
    fn sync(&self, r: &backup_core::SyncRequest) -> backup_core::Result<backup_core::SyncOutcome> {
        if let Some(done) = self.listed(r)? {
            return Ok(done);
        }
        let whole = r.link_dest.is_none()
            && r.files_from.is_none()
            && r.source_kind == backup_core::SourceKind::Snapshot;
        let empty = match std::fs::read_dir(&r.dest) {
            Ok(mut d) => d.next().is_none(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if !(whole && empty) {
            return self.inner.sync(r);
        }
        std::fs::create_dir_all(&r.dest)
            .map_err(|e| fail(Error::io("create folder", &r.dest, e)))?;
        let c = copy_tree(
            r.source.as_std_path(),
            r.dest.as_std_path(),
            Some(self.stop),
        )
        .map_err(fail)?;
        Ok(backup_core::SyncOutcome {
            stats: backup_core::SyncStats {
                files: c.files,
                transferred_files: c.files,
                total_bytes: c.file_bytes,
                transferred_bytes: c.file_bytes,
                deleted_files: 0,
            },
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// Everything of a tree rsync `-aHAX` keeps: type, mode, owner, mtime of all but symlinks,
    /// content, link target, extended attributes, which names are one inode.
    fn described(root: &Path) -> Vec<String> {
        let entries = crate::tree::walk_entries(root).unwrap();
        let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut out: Vec<String> = entries
            .iter()
            .map(|e| {
                let p = rel(root, &e.path);
                if e.kind != EntryKind::Dir && e.nlink > 1 {
                    groups
                        .entry(e.inode)
                        .or_default()
                        .push(String::from_utf8_lossy(&e.path).into_owned());
                }
                let content = if e.kind == EntryKind::File {
                    backup_core::ContentHash::Xxh3.of(&std::fs::read(&p).unwrap())
                } else {
                    [0; 16]
                };
                let xattrs: Vec<String> = crate::linkguard::xattrs(&p)
                    .iter()
                    .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), v.len()))
                    .collect();
                format!(
                    "{} {:?} {:o} {}:{} {} {:?} {:?} {:?}",
                    String::from_utf8_lossy(&e.path),
                    e.kind,
                    e.mode,
                    e.uid,
                    e.gid,
                    if e.kind == EntryKind::Symlink {
                        0
                    } else {
                        e.mtime_ns
                    },
                    content,
                    String::from_utf8_lossy(&e.link_target),
                    xattrs,
                )
            })
            .collect();
        out.extend(groups.into_values().map(|g| format!("one inode: {g:?}")));
        out
    }

    /// The changed paths copied in process are what rsync, with the flags of the daily copy,
    /// writes into the same tree: hardlinks, a symlink, a FIFO, a sparse file, setuid, another
    /// owner, xattrs, a new folder, and listed folders whose attributes (an xattr too many, a
    /// mode, an mtime) must become the source's.
    #[test]
    fn the_listed_copy_writes_what_rsync_writes() {
        let d = tempfile::tempdir().unwrap();
        let (src, a, b) = (d.path().join("src"), d.path().join("a"), d.path().join("b"));
        let set_xattr = |p: &Path, name: &str, value: &[u8]| {
            rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()).unwrap();
        };
        std::fs::create_dir_all(src.join("old/deep")).unwrap();
        std::fs::create_dir_all(src.join("new/sub")).unwrap();
        std::fs::write(src.join("old/f"), "f").unwrap();
        std::fs::write(src.join("old/kept"), "kept").unwrap();
        std::fs::write(src.join("old/deep/g"), "g").unwrap();
        // many extended attributes (ext4 holds at most a block of them)
        for i in 0..20 {
            let name = format!("user.{i:03}-{}", "x".repeat(120));
            set_xattr(&src.join("old/deep/g"), &name, b"v");
        }
        assert_eq!(crate::linkguard::xattrs(&src.join("old/deep/g")).len(), 20);
        std::fs::hard_link(src.join("old/f"), src.join("new/f-too")).unwrap();
        std::os::unix::fs::symlink("../old/f", src.join("new/link")).unwrap();
        // a hardlinked symlink: rsync -H keeps it one inode
        rustix::fs::linkat(
            CWD,
            src.join("new/link"),
            CWD,
            src.join("new/link-too"),
            AtFlags::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(
            CWD,
            src.join("new/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let sparse = std::fs::File::create(src.join("new/sub/sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        rustix::io::pwrite(&sparse, b"x", 1000).unwrap();
        drop(sparse);
        std::fs::write(src.join("new/sub/suid"), "s").unwrap();
        std::fs::set_permissions(src.join("new/sub/suid"), PermissionsExt::from_mode(0o4755))
            .unwrap();
        std::os::unix::fs::lchown(src.join("new/sub/suid"), Some(1234), Some(5678)).unwrap();
        set_xattr(&src.join("old/f"), "user.color", b"blue");
        set_xattr(&src.join("new"), "user.kind", b"folder");
        std::fs::set_permissions(src.join("old"), PermissionsExt::from_mode(0o750)).unwrap();
        // the update's tree, as the link tree leaves it: every folder there, nothing listed
        for dest in [&a, &b] {
            std::fs::create_dir_all(dest.join("old/deep")).unwrap();
            std::fs::create_dir_all(dest.join("new")).unwrap();
            std::fs::write(dest.join("old/kept"), "kept").unwrap();
            set_xattr(&dest.join("old"), "user.stale", b"gone after");
        }
        let mut list: Vec<Vec<u8>> = [
            ".",
            "old",
            "old/f",
            "old/deep",
            "old/deep/g",
            "new",
            "new/f-too",
            "new/link-too",
            "new/link",
            "new/fifo",
            "new/sub",
            "new/sub/sparse",
            "new/sub/suid",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        // the times of what rsync's listing leaves alone
        for p in ["old/kept"] {
            let t = std::fs::metadata(src.join(p)).unwrap().modified().unwrap();
            for dest in [&a, &b] {
                std::fs::File::options()
                    .write(true)
                    .open(dest.join(p))
                    .unwrap()
                    .set_modified(t)
                    .unwrap();
            }
        }
        let copied = copy_listed(&src, &a, &list, None).unwrap().unwrap();
        // f, g, sparse, suid sent; f-too linked (rsync --stats counts it so too)
        assert_eq!(copied.files, 4, "{copied:?}");
        let mut nul = Vec::new();
        list.reverse();
        for p in &list {
            nul.extend_from_slice(p);
            nul.push(0);
        }
        let list_file = d.path().join("list");
        std::fs::write(&list_file, nul).unwrap();
        let ok = std::process::Command::new("rsync")
            .args([
                "-aHAX",
                "--numeric-ids",
                "--modify-window=-1",
                "--sparse",
                "--from0",
            ])
            .arg(format!("--files-from={}", list_file.display()))
            .arg("--")
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", b.display()))
            .status()
            .expect("rsync is installed (scripts/test installs it)")
            .success();
        assert!(ok);
        let (ours, rsyncs) = (described(&a), described(&b));
        let want = described(&src);
        let only = |x: &[String], y: &[String]| -> Vec<String> {
            x.iter().filter(|l| !y.contains(l)).cloned().collect()
        };
        assert_eq!(
            (only(&ours, &rsyncs), only(&rsyncs, &ours)),
            (Vec::new(), Vec::new()),
            "in process vs rsync"
        );
        assert_eq!(ours, want, "in process vs the source");
        let blocks = std::os::unix::fs::MetadataExt::blocks(
            &std::fs::metadata(a.join("new/sub/sparse")).unwrap(),
        );
        assert!(blocks * 512 < 1 << 20, "the hole was filled");
        // a listed file that is already there is never overwritten
        let again = copy_listed(&src, &a, &[b"old/f".to_vec()], None);
        assert!(matches!(again, Err(Error::Refused(_))), "{again:?}");
        // a folder with a default ACL that would receive a new file: rsync's to do
        let acl = d.path().join("acl");
        std::fs::create_dir_all(acl.join("old")).unwrap();
        let default_acl: &[u8] = &[
            2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 4, 0, 5, 0, 255, 255, 255, 255, 32, 0, 5,
            0, 255, 255, 255, 255,
        ];
        set_xattr(&acl.join("old"), "system.posix_acl_default", default_acl);
        let left = copy_listed(&src, &acl, &[b"old/f".to_vec()], None).unwrap();
        assert!(left.is_none());
    }

    #[test]
    fn holes_hardlinks_and_odd_files_come_across_and_a_full_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        // 8 MiB with one byte of data in the middle
        let f = std::fs::File::create(from.join("sparse")).unwrap();
        f.set_len(8 << 20).unwrap();
        rustix::io::pwrite(&f, b"x", 4 << 20).unwrap();
        drop(f);
        std::fs::write(from.join("sub/a"), b"a").unwrap();
        std::fs::hard_link(from.join("sub/a"), from.join("a-too")).unwrap();
        std::os::unix::fs::symlink("/nowhere", from.join("dangling")).unwrap();
        rustix::fs::mknodat(
            CWD,
            from.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        let copied = copy_tree(&from, &to, None).unwrap();
        assert_eq!(copied.entries, 6, "{copied:?}"); // sub, sparse, sub/a, a-too, dangling, fifo
        let sparse = std::fs::metadata(to.join("sparse")).unwrap();
        assert_eq!(sparse.len(), 8 << 20);
        assert!(
            sparse.blocks() * 512 < 1 << 20,
            "the holes were filled: {} blocks",
            sparse.blocks()
        );
        assert_eq!(std::fs::read(to.join("sparse")).unwrap()[4 << 20], b'x');
        let (a, a_too) = (
            std::fs::metadata(to.join("sub/a")).unwrap(),
            std::fs::metadata(to.join("a-too")).unwrap(),
        );
        assert_eq!(a.ino(), a_too.ino(), "the hardlink was not kept");
        assert_eq!(
            std::fs::read_link(to.join("dangling")).unwrap(),
            Path::new("/nowhere")
        );
        assert!(std::fs::symlink_metadata(to.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(
            std::fs::metadata(to.join("fifo")).unwrap().mode() & 0o777,
            0o640
        );
        // a second copy into the now full folder is refused, nothing touched
        assert!(matches!(
            copy_tree(&from, &to, None),
            Err(Error::Refused(_))
        ));
        // told to stop: stops before the first file
        let again = dir.path().join("again");
        std::fs::create_dir_all(&again).unwrap();
        let stop = AtomicBool::new(true);
        assert!(matches!(
            copy_tree(&from, &again, Some(&stop)),
            Err(Error::Interrupted(_))
        ));
        assert!(!again.join("sparse").exists());
    }
}

/// A [`backup_core::TreeCopier`] for tests: a whole tree copied in process into an empty
/// folder (owners, modes, times kept; a file list is not honoured, only logged), each call
/// logged with the names its list holds; or a failure, when told.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default)]
pub struct FakeTreeCopier {
    /// One line per call: `copy FROM -> TO [delete] [list: a, b] [exclude: x]` (shared by the
    /// clones: keep one to read what the copier given away was asked).
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every copy fails with this.
    pub fails: Option<String>,
}

#[cfg(any(test, feature = "testing"))]
impl FakeTreeCopier {
    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[cfg(any(test, feature = "testing"))]
impl backup_core::TreeCopier for FakeTreeCopier {
    fn copy_tree(
        &self,
        from: &camino::Utf8Path,
        to: &camino::Utf8Path,
        how: &backup_core::TreeCopy<'_>,
    ) -> backup_core::Result<()> {
        let mut line = format!("copy {from} -> {to}");
        if how.delete {
            line.push_str(" delete");
        }
        if let Some(list) = how.files_from {
            let bytes = std::fs::read(list).unwrap_or_default();
            let names: Vec<String> = bytes
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            line.push_str(&format!(" list: {}", names.join(", ")));
        }
        if !how.exclude.is_empty() {
            line.push_str(&format!(" exclude: {}", how.exclude.join(", ")));
        }
        if let Ok(mut c) = self.calls.lock() {
            c.push(line);
        }
        if let Some(why) = &self.fails {
            return Err(backup_core::Error::io(
                format!("copy {from}"),
                std::io::Error::other(why.clone()),
            ));
        }
        std::fs::create_dir_all(to)
            .map_err(|e| backup_core::Error::io(format!("create {to}"), e))?;
        copy_tree(from.as_std_path(), to.as_std_path(), None)
            .map_err(|e| backup_core::Error::adapter(format!("copy {from}"), e))?;
        Ok(())
    }
}
