//! Read-only mounts of snapshots.

use camino::Utf8Path;

use crate::error::Result;
use crate::volume::SnapshotSource;

/// Mounts a snapshot read-only and unmounts it.
pub trait Mounter: Send + Sync {
    /// Mounts `source` read-only on `target` (which exists and is empty).
    ///
    /// # Errors
    /// When the mount fails or `target` is already a mount point.
    fn mount_ro(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<()>;

    /// Unmounts `target`.
    ///
    /// # Errors
    /// When nothing is mounted there or the unmount fails.
    fn unmount(&self, target: &Utf8Path) -> Result<()>;
}
