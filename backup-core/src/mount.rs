//! Read-only mounts of snapshots (and a read-write mount of a live volume for a restore).

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Result;
use crate::volume::SnapshotSource;

/// Mounts a snapshot read-only and unmounts it.
pub trait Mounter: Send + Sync {
    /// Mounts `source` read-only on `target` (an existing, empty folder) and returns the folder
    /// to read the snapshot from: `target`, or the source folder itself for a mounter that
    /// cannot mount (the `dir` backend without root).
    ///
    /// # Errors
    /// When the mount fails or `target` is already a mount point.
    fn mount_ro(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf>;

    /// Mounts the live volume `source` read-write on `target` (a restore into the volume);
    /// returns the folder to write.
    ///
    /// # Errors
    /// When the mount fails, or `target` is a mount point already.
    fn mount_rw(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf>;

    /// Unmounts `target`.
    ///
    /// # Errors
    /// When nothing is mounted there or the unmount fails.
    fn unmount(&self, target: &Utf8Path) -> Result<()>;
}
