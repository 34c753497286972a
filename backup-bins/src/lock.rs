//! The run lock: one `daily-backup` (or `lvm-pvc-snapshot`) at a time.

use std::fs::{File, OpenOptions};

use camino::Utf8Path;
use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// An exclusive `flock` held until dropped. The kernel releases it when the process dies, so a
/// killed run never leaves a stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock on `path` without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds it; [`Error::Io`] when the file cannot be opened.
    pub fn acquire(path: &Utf8Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open the lock file", path, e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked {
                path: path.to_owned(),
            }),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }
}
