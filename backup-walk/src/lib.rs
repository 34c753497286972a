//! The one tree walker of homelab-backup.
//!
//! Everything that walks a tree (daily-backup's walk of a snapshot, SQLite discovery, the
//! hardlink guard of a full copy) walks it with [`walk`]: workers (one per core by default) take
//! folders from a shared stack, list each through its open descriptor, and hand every entry to
//! the caller's visitor with the folder's descriptor, so a visitor `stat`s or opens a name
//! relative to it and no path is resolved from the root per file. Symlinks are never followed,
//! names are bytes, a folder is only descended into when it was a folder when listed (opened
//! with `O_NOFOLLOW|O_DIRECTORY`, so a folder swapped for a symlink mid-walk is an error, not an
//! escape).
//!
//! Each worker keeps its own state (`init`), handed back at the end: nothing is shared while
//! walking but the stack of folders.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir(dir.path().join("a")).unwrap();
//! std::fs::write(dir.path().join("a/f"), b"x").unwrap();
//! let walked = backup_walk::walk(
//!     dir.path(),
//!     backup_walk::Options::default(),
//!     Vec::new,
//!     |seen: &mut Vec<std::path::PathBuf>, v: &backup_walk::Visit<'_>| seen.push(v.rel.to_path_buf()),
//! );
//! let mut all: Vec<_> = walked.states.into_iter().flatten().collect();
//! all.sort();
//! assert_eq!(all, [std::path::Path::new("a"), std::path::Path::new("a/f")]);
//! assert!(walked.unreadable.is_empty());
//! ```

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How to walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `stat` every entry (else only those whose type the folder listing does not give).
    pub stat: bool,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
}

/// One entry handed to the visitor.
#[derive(Debug)]
pub struct Visit<'a> {
    /// The folder holding the entry, open: `statat`/`openat` the name relative to it.
    pub dir: BorrowedFd<'a>,
    /// The entry's path relative to the root (never empty).
    pub rel: &'a Path,
    /// The entry's name in its folder.
    pub name: &'a CStr,
    /// What it is (from the listing, or from `stat` where the listing does not say).
    pub kind: FileType,
    /// Its `lstat`, with [`Options::stat`] (and whenever the listing did not give the type).
    pub stat: Option<&'a Stat>,
}

/// What a walk produced.
#[derive(Debug)]
pub struct Walked<S> {
    /// Each worker's state.
    pub states: Vec<S>,
    /// Folders that could not be opened or listed and entries that could not be `stat`ed, with
    /// why, sorted by path. Their contents were not walked.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl<S> Walked<S> {
    /// The first unreadable path, when there is one: for callers to whom any gap is fatal.
    pub fn first_unreadable(&self) -> Option<&(PathBuf, String)> {
        self.unreadable.first()
    }
}

/// Walks everything under `root` (not `root` itself), calling `visit` once per entry from one
/// of the workers. Folders are descended into after their visit.
pub fn walk<S, I, V>(root: &Path, opts: Options, init: I, visit: V) -> Walked<S>
where
    S: Send,
    I: Fn() -> S + Sync,
    V: Fn(&mut S, &Visit<'_>) + Sync,
{
    let root_fd = match rustix::fs::open(root, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            return Walked {
                states: Vec::new(),
                unreadable: vec![(root.to_path_buf(), e.to_string())],
            };
        }
    };
    let workers = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let stack: Mutex<Vec<PathBuf>> = Mutex::new(vec![PathBuf::new()]);
    let pending = AtomicUsize::new(1); // folders on the stack or being listed
    let results = Mutex::new(Walked {
        states: Vec::new(),
        unreadable: Vec::new(),
    });
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut state = init();
                let mut unreadable = Vec::new();
                loop {
                    let job = stack.lock().unwrap_or_else(PoisonError::into_inner).pop();
                    let Some(rel) = job else {
                        if pending.load(Ordering::SeqCst) == 0 {
                            break;
                        }
                        // another worker is listing a folder that may hold more work
                        std::thread::sleep(std::time::Duration::from_micros(100));
                        continue;
                    };
                    let subdirs = list_folder(
                        &root_fd,
                        root,
                        &rel,
                        opts,
                        &mut state,
                        &visit,
                        &mut unreadable,
                    );
                    pending.fetch_add(subdirs.len(), Ordering::SeqCst);
                    stack
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(subdirs);
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
                let mut all = results.lock().unwrap_or_else(PoisonError::into_inner);
                all.states.push(state);
                all.unreadable.append(&mut unreadable);
            });
        }
    });
    let mut walked = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    walked.unreadable.sort();
    walked
}

/// Lists one folder, visits its entries, returns its sub-folders (relative to the root).
fn list_folder<S, V>(
    root_fd: &OwnedFd,
    root: &Path,
    rel: &Path,
    opts: Options,
    state: &mut S,
    visit: &V,
    unreadable: &mut Vec<(PathBuf, String)>,
) -> Vec<PathBuf>
where
    V: Fn(&mut S, &Visit<'_>),
{
    let mut subdirs = Vec::new();
    let opened = if rel.as_os_str().is_empty() {
        rustix::io::dup(root_fd)
    } else {
        rustix::fs::openat(root_fd, rel, DIR_FLAGS, Mode::empty())
    };
    let dir_fd = match opened {
        Ok(fd) => fd,
        Err(e) => {
            unreadable.push((root.join(rel), e.to_string()));
            return subdirs;
        }
    };
    let entries = match Dir::read_from(&dir_fd) {
        Ok(d) => d,
        Err(e) => {
            unreadable.push((root.join(rel), e.to_string()));
            return subdirs;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                unreadable.push((root.join(rel), e.to_string()));
                break;
            }
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let child = rel.join(OsStr::from_bytes(bytes));
        let mut kind = entry.file_type();
        let stat = if opts.stat || kind == FileType::Unknown {
            match rustix::fs::statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    kind = FileType::from_raw_mode(st.st_mode);
                    Some(st)
                }
                Err(e) => {
                    unreadable.push((root.join(&child), e.to_string()));
                    continue;
                }
            }
        } else {
            None
        };
        visit(
            state,
            &Visit {
                dir: rustix::fd::AsFd::as_fd(&dir_fd),
                rel: &child,
                name,
                kind,
                stat: stat.as_ref(),
            },
        );
        if kind == FileType::Directory {
            subdirs.push(child);
        }
    }
    subdirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, opts: Options) -> Vec<(PathBuf, bool)> {
        let walked = walk(root, opts, Vec::new, |v: &mut Vec<_>, e: &Visit<'_>| {
            v.push((e.rel.to_path_buf(), e.stat.is_some()));
        });
        assert!(walked.unreadable.is_empty(), "{:?}", walked.unreadable);
        let mut all: Vec<_> = walked.states.into_iter().flatten().collect();
        all.sort();
        all
    }

    #[test]
    fn every_entry_once_symlinks_not_followed_any_worker_count() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for i in 0..20 {
            std::fs::create_dir_all(r.join(format!("d{i}/e"))).unwrap();
            std::fs::write(r.join(format!("d{i}/e/f")), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/", r.join("to-root")).unwrap();
        std::os::unix::fs::symlink(r.join("d0"), r.join("to-d0")).unwrap();
        std::fs::write(r.join(OsStr::from_bytes(b"bad\xffname\n")), b"").unwrap();
        for workers in [1, 2, 7] {
            let all = names(
                r,
                Options {
                    stat: true,
                    workers,
                },
            );
            assert_eq!(all.len(), 20 * 3 + 3, "{workers} workers");
            assert!(all.iter().all(|(_, stat)| *stat));
            assert!(all
                .iter()
                .any(|(p, _)| p.as_os_str().as_bytes() == b"bad\xffname\n"));
        }
        let unstat = names(r, Options::default());
        assert_eq!(unstat.len(), 63);
    }

    #[test]
    fn an_unreadable_root_is_reported() {
        let walked = walk(
            Path::new("/nonexistent/for/sure"),
            Options::default(),
            || (),
            |(), _| {},
        );
        assert_eq!(walked.unreadable.len(), 1);
        assert!(walked
            .first_unreadable()
            .unwrap()
            .1
            .contains("No such file"));
    }
}
