//! The run lock: one `daily-backup` (or `lvm-pvc-snapshot`) at a time.

use std::fs::{File, OpenOptions};

use camino::Utf8Path;
use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// An exclusive `flock` held until dropped. The kernel releases it when the last holder of the
/// open file is gone, so a killed run never leaves a stale lock behind.
///
/// The descriptor is inherited by every child the run starts (rsync, cp, mount, curl): after a
/// `kill -9` of the run, its rsync children go on writing into the week folder until they finish,
/// and as long as any of them lives the lock stays held, so no new run starts writing beside
/// them or unmounting under them. (Killing the children with the parent would need
/// `PR_SET_PDEATHSIG` in `pre_exec`, which is `unsafe`; the lock gives the same guarantee.)
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
        Self::acquire_within(path, std::time::Duration::ZERO)
    }

    /// Takes the lock on `path`, waiting up to `wait` for another holder to let go (`--wait`).
    /// The folder of `path` is created when missing (`/run/lock/homelab-backup/`).
    ///
    /// # Errors
    /// [`Error::Locked`] when another process still holds it after `wait`; [`Error::Io`] when the
    /// file cannot be opened.
    pub fn acquire_within(path: &Utf8Path, wait: std::time::Duration) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("create the lock folder", dir, e))?;
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::try_acquire(path) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn try_acquire(path: &Utf8Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open the lock file", path, e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                // not close-on-exec: children hold the lock too (see above)
                rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::empty())
                    .map_err(|e| Error::io("keep the lock across exec", path, e.into()))?;
                Ok(Self { _file: file })
            }
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked {
                path: path.to_owned(),
            }),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }
}
