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
    // each inode once: the first name is copied, the others linked to it afterwards
    let mut first_of: BTreeMap<u64, &FileEntry> = BTreeMap::new();
    let mut links: Vec<(&FileEntry, &FileEntry)> = Vec::new();
    let mut singles: Vec<&FileEntry> = Vec::new();
    for e in entries.iter().filter(|e| e.kind != EntryKind::Dir) {
        if e.kind == EntryKind::File && e.nlink > 1 {
            if let Some(first) = first_of.get(&e.inode) {
                links.push((first, e));
                continue;
            }
            first_of.insert(e.inode, e);
        }
        singles.push(e);
    }
    copied.bytes = copy_entries(from, to, &singles, stop)?;
    copied.entries += singles.len() as u64;
    for (first, e) in &links {
        let (src, dst) = (rel(to, &first.path), rel(to, &e.path));
        rustix::fs::linkat(CWD, &src, CWD, &dst, AtFlags::empty())
            .map_err(|x| io("link", &dst, x))?;
        copied.entries += 1;
    }
    // folders last, deepest first, the top folder at the very end
    for e in entries.iter().rev().filter(|e| e.kind == EntryKind::Dir) {
        let (src, dst) = (rel(from, &e.path), rel(to, &e.path));
        let fd = rustix::fs::open(
            &dst,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|x| io("open", &dst, x))?;
        finish(&fd, &src, &dst, e)?;
    }
    Ok(copied)
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
            Ok(0) => break, // the file shrank under us
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
/// volume), and hands every other transfer to `inner` (rsync). The snapshot is read-only, so
/// nothing can change under the copy; a live tree always goes to `inner`.
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

impl backup_core::FileSync for LocalFirstSync<'_> {
    fn sync(&self, r: &backup_core::SyncRequest) -> backup_core::Result<backup_core::SyncOutcome> {
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
        let fail = |e: Error| match e {
            Error::Interrupted(what) => {
                backup_core::CommandError::Interrupted { argv: what }.into()
            }
            other => other.into_core("copy"),
        };
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
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

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
