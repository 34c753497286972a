//! Finding SQLite databases in a tree by their first bytes.
//!
//! The walk is this crate's own: one worker per core takes folders from a shared stack, lists
//! each through its open descriptor, and `stat`s and opens files relative to it (no path is
//! resolved from the root per file). Only regular files of at least 16 bytes (the magic) are opened, and at
//! most 18 bytes are read from each. Symlinks are never followed; names are bytes.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use backup_core::{
    classify_sqlite_header, is_side_file, SqliteHeader, SQLITE_HEADER_PROBE, SQLITE_MAGIC,
};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

/// What a walk found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Databases, relative to the root, sorted.
    pub databases: Vec<PathBuf>,
    /// Paths that could not be read, with why (they are reported, not fatal).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files that start with the SQLite magic but are no usable database (shorter than a page,
    /// an invalid page size), relative to the root, with why. They are reported and counted.
    pub damaged: Vec<(PathBuf, String)>,
    /// Regular files looked at.
    pub files_seen: u64,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// Walks `root` and returns the regular files whose first bytes are a SQLite header (with a valid
/// page size, at least one page long); files with the magic that fail either test are returned
/// as damaged. `-wal`, `-shm` and `-journal` files are never candidates: they are copied with their
/// database.
pub fn find_databases(root: &Path) -> Discovery {
    let root_fd = match rustix::fs::open(root, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            return Discovery {
                unreadable: vec![(root.to_path_buf(), e.to_string())],
                ..Discovery::default()
            };
        }
    };
    let stack: Mutex<Vec<PathBuf>> = Mutex::new(vec![PathBuf::new()]);
    let pending = AtomicUsize::new(1); // folders on the stack or being listed
    let found = Mutex::new(Discovery::default());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut local = Discovery::default();
                loop {
                    let job = stack.lock().unwrap_or_else(PoisonError::into_inner).pop();
                    let Some(rel) = job else {
                        if pending.load(Ordering::SeqCst) == 0 {
                            break;
                        }
                        // another worker is listing a folder that may hold more work
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        continue;
                    };
                    let subdirs = list_folder(&root_fd, root, &rel, &mut local);
                    pending.fetch_add(subdirs.len(), Ordering::SeqCst);
                    stack
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(subdirs);
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
                let mut all = found.lock().unwrap_or_else(PoisonError::into_inner);
                all.databases.append(&mut local.databases);
                all.unreadable.append(&mut local.unreadable);
                all.damaged.append(&mut local.damaged);
                all.files_seen += local.files_seen;
            });
        }
    });
    let mut out = found.into_inner().unwrap_or_else(PoisonError::into_inner);
    out.databases.sort();
    out.unreadable.sort();
    out.damaged.sort();
    out
}

/// Lists one folder: probes its files, returns its sub-folders (relative to the root).
fn list_folder(root_fd: &OwnedFd, root: &Path, rel: &Path, out: &mut Discovery) -> Vec<PathBuf> {
    let mut subdirs = Vec::new();
    let opened = if rel.as_os_str().is_empty() {
        rustix::io::dup(root_fd)
    } else {
        rustix::fs::openat(root_fd, rel, DIR_FLAGS, Mode::empty())
    };
    let dir_fd = match opened {
        Ok(fd) => fd,
        Err(e) => {
            out.unreadable.push((root.join(rel), e.to_string()));
            return subdirs;
        }
    };
    let entries = match Dir::read_from(&dir_fd) {
        Ok(d) => d,
        Err(e) => {
            out.unreadable.push((root.join(rel), e.to_string()));
            return subdirs;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.unreadable.push((root.join(rel), e.to_string()));
                break;
            }
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let mut kind = entry.file_type();
        let mut size = None;
        if kind == FileType::Unknown {
            // some file systems do not fill d_type
            match rustix::fs::statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    kind = FileType::from_raw_mode(st.st_mode);
                    size = Some(st.st_size as u64);
                }
                Err(e) => {
                    out.unreadable
                        .push((root.join(rel).join(OsStr::from_bytes(bytes)), e.to_string()));
                    continue;
                }
            }
        }
        match kind {
            FileType::Directory => subdirs.push(rel.join(OsStr::from_bytes(bytes))),
            FileType::RegularFile => {
                out.files_seen += 1;
                if is_side_file(bytes) {
                    continue;
                }
                match probe(&dir_fd, name, size) {
                    Ok(SqliteHeader::Database) => {
                        out.databases.push(rel.join(OsStr::from_bytes(bytes)));
                    }
                    Ok(SqliteHeader::Damaged(why)) => {
                        out.damaged.push((rel.join(OsStr::from_bytes(bytes)), why));
                    }
                    Ok(SqliteHeader::NotSqlite) => {}
                    Err(e) => out
                        .unreadable
                        .push((root.join(rel).join(OsStr::from_bytes(bytes)), e.to_string())),
                }
            }
            _ => {} // symlinks, devices, sockets: never followed, never read
        }
    }
    subdirs
}

/// Reads at most the header probe of `name` in `dir`; files shorter than the magic are never
/// opened (one with the magic but shorter than a page is a damaged database, and is named).
fn probe(dir: impl AsFd, name: &CStr, size: Option<u64>) -> rustix::io::Result<SqliteHeader> {
    let size = match size {
        Some(s) => s,
        None => rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_size as u64,
    };
    if size < SQLITE_MAGIC.len() as u64 {
        return Ok(SqliteHeader::NotSqlite);
    }
    let fd = rustix::fs::openat(&dir, name, FILE_FLAGS, Mode::empty())?;
    let mut header = [0u8; SQLITE_HEADER_PROBE];
    let mut filled = 0;
    while filled < header.len() {
        match rustix::io::read(&fd, &mut header[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(classify_sqlite_header(&header[..filled], size))
}
