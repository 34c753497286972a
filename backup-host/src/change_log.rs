//! The change log on disk (format and names in [`backup_core::ChangeLogFiles`]): the tracker
//! appends under the log's lock; a sync seals the live log under the same lock, so what is
//! written during the sync goes into a new live log and waits for the next one; sealed segments
//! are deleted only after the sync that read them succeeded.

use std::fs::{File, OpenOptions};
use std::io::Write;

use backup_core::{parse_records, ChangeLogFiles};
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{flock, FlockOperation};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::fsutil::{remove_file_if_present, write_atomic};

/// The change log of every tree, at `offsite.change-log`.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    base: Utf8PathBuf,
    clock: Clock,
}

/// What a sync took from one tree's log.
#[derive(Debug, Clone, Default)]
pub struct Sealed {
    /// The segments read (deleted after the sync succeeded).
    pub segments: Vec<Utf8PathBuf>,
    /// Their distinct records, sorted.
    pub records: Vec<Vec<u8>>,
    /// The full-pass marker's text when the log cannot be trusted.
    pub full_pass: Option<String>,
}

/// The log's lock, held while the live log is appended to or sealed.
struct Held(#[allow(dead_code)] File);

impl ChangeLog {
    /// The log at `base` (`offsite.change-log`).
    pub fn new(base: &Utf8Path) -> Self {
        Self {
            base: base.to_owned(),
            clock: Clock::system(),
        }
    }

    /// The same log, its markings stamped by `clock` (the run's `--now`).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn files(&self, tree: &str) -> ChangeLogFiles {
        ChangeLogFiles::new(&self.base, tree)
    }

    fn lock(&self) -> Result<Held> {
        let path = ChangeLogFiles::lock(&self.base);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open the change-log lock", &path, e))?;
        // held for a rename or one append: waiting is right
        flock(&f, FlockOperation::LockExclusive).map_err(|e| Error::io("lock", &path, e.into()))?;
        Ok(Held(f))
    }

    /// Appends encoded records to the live log of `tree`, fsynced.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn append(&self, tree: &str, records: &[u8]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let _held = self.lock()?;
        let live = self.files(tree).live();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&live)
            .map_err(|e| Error::io("open", &live, e))?;
        f.write_all(records)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("append to", &live, e))
    }

    /// Records the identity of the root of `tree` the tracker watches now.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write_root(&self, tree: &str, root: Option<RootIdentity>) -> Result<()> {
        write_atomic(
            &self.files(tree).root_identity(),
            RootIdentity::show(root).as_bytes(),
        )
    }

    /// The identity of the root the tracker last said it watches; `None` when it never said.
    pub fn read_root(&self, tree: &str) -> Option<String> {
        crate::safe_read::read_regular_string(self.files(tree).root_identity())
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// Records that `tree`'s log cannot be trusted until a full pass succeeded.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn mark_full_pass(&self, tree: &str, reason: &str) -> Result<()> {
        let _held = self.lock()?;
        // the time makes every marking distinct: a sync clears only the one it saw
        let text = format!(
            "{reason} (at {})\n",
            self.clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        );
        write_atomic(&self.files(tree).full_pass_marker(), text.as_bytes())
    }

    /// What a sync of `tree` reads. With `seal`, the live log becomes a segment first (under the
    /// lock); without (a dry run), the live log is read where it is.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn take(&self, tree: &str, stamp: &str, seal: bool) -> Result<Sealed> {
        let files = self.files(tree);
        let mut segments = Vec::new();
        let full_pass;
        {
            let _held = self.lock()?;
            let live = files.live();
            if live.exists() {
                if seal {
                    let sealed = files.sealed(stamp);
                    std::fs::rename(&live, &sealed).map_err(|e| Error::io("seal", &live, e))?;
                } else {
                    segments.push(live);
                }
            }
            full_pass = crate::safe_read::read_regular_string(files.full_pass_marker()).ok();
        }
        let dir = self.base.parent().unwrap_or(Utf8Path::new("/"));
        if let Ok(rd) = dir.read_dir_utf8() {
            let mut sealed: Vec<Utf8PathBuf> = rd
                .flatten()
                .filter(|e| files.sealed_stamp(e.file_name()).is_some())
                .map(|e| e.path().to_owned())
                .collect();
            sealed.sort();
            segments.extend(sealed);
        }
        let mut bytes = Vec::new();
        for s in &segments {
            let mut b = crate::safe_read::read_regular(s).map_err(|e| Error::io("read", s, e))?;
            // a segment cut mid-record ends without its NUL: keep records apart
            if b.last().is_some_and(|c| *c != 0) {
                b.push(0);
            }
            bytes.extend(b);
        }
        Ok(Sealed {
            segments: segments
                .into_iter()
                .filter(|s| files.sealed_stamp(s.file_name().unwrap_or("")).is_some())
                .collect(),
            records: parse_records(&bytes),
            full_pass,
        })
    }

    /// After a successful sync: deletes the segments it read, and the full-pass marker when it
    /// is still the one the sync saw (one written during the sync stays for the next).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn finish(&self, tree: &str, sealed: &Sealed, was_full_pass: bool) -> Result<()> {
        for s in &sealed.segments {
            remove_file_if_present(s)?;
        }
        if was_full_pass {
            let _held = self.lock()?;
            let marker = self.files(tree).full_pass_marker();
            if crate::safe_read::read_regular_string(&marker).ok() == sealed.full_pass {
                remove_file_if_present(&marker)?;
            }
        }
        Ok(())
    }

    /// The lock the tracker holds while it runs: a sync that can take it knows no tracker is
    /// logging, and that the log has a gap.
    pub fn tracker_lock(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.tracker", ChangeLogFiles::lock(&self.base)))
    }

    /// True while a tracker holds [`ChangeLog::tracker_lock`].
    pub fn tracker_running(&self) -> bool {
        let path = self.tracker_lock();
        let Ok(f) = OpenOptions::new().read(true).open(&path) else {
            return false;
        };
        match flock(&f, FlockOperation::NonBlockingLockShared) {
            Ok(()) => false,
            Err(_) => true,
        }
    }
}

/// What a tree root is: its device and inode. A folder replaced by another (`mv nfs nfs.old;
/// mkdir nfs`) or a file system mounted over it (an export that came up after the tracker) has
/// another; the tracker's watches would still be on the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl RootIdentity {
    /// The identity of the folder at `path` now (following a symlink in the path, as the
    /// tracker's watch does); `None` when there is none.
    pub fn of(path: &std::path::Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_dir)
            .map(|m| Self {
                dev: m.dev(),
                ino: m.ino(),
            })
    }

    /// `<dev> <ino>`, or `absent`.
    pub fn show(root: Option<Self>) -> String {
        root.map_or_else(|| "absent".to_owned(), |r| format!("{} {}", r.dev, r.ino))
    }
}
