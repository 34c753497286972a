//! Volumes and their snapshots: the `VolumeManager` trait every snapshot backend implements.

use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::retention::SnapshotInfo;

/// A source volume: an LV in the thin pool, or a folder under `volumes-dir`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Volume {
    /// Its name (`vm-100-pvc-0a1b`).
    pub name: String,
}

/// Usage of the pool the snapshots share (LVM thin pools only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PoolUsage {
    /// Percent of the pool's data space in use.
    pub data_percent: f64,
    /// Percent of the pool's metadata space in use.
    pub metadata_percent: f64,
}

impl PoolUsage {
    /// The free percentage that matters: a thin pool is full when either data or metadata is.
    pub fn free_percent(&self) -> f64 {
        100.0 - self.data_percent.max(self.metadata_percent)
    }
}

/// What a mounter mounts: a block device (LVM) or a folder (the `dir` backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum SnapshotSource {
    /// A block device holding a file system.
    Device(Utf8PathBuf),
    /// A folder, bind-mounted read-only (or read in place when not root).
    Dir(Utf8PathBuf),
}

/// A snapshot backend.
pub trait VolumeManager: Send + Sync {
    /// Source volumes: never snapshots, never the pool itself.
    ///
    /// # Errors
    /// When the backend cannot be listed.
    fn list_volumes(&self) -> Result<Vec<Volume>>;

    /// Every snapshot this tool can see, of every volume.
    ///
    /// # Errors
    /// When the backend cannot be listed.
    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>>;

    /// Takes a snapshot named `name` of `volume`.
    ///
    /// # Errors
    /// When the volume does not exist, the name is taken, or the backend fails.
    fn create_snapshot(&self, volume: &str, name: &str, at: DateTime<Utc>) -> Result<SnapshotInfo>;

    /// Removes a snapshot.
    ///
    /// # Errors
    /// When it does not exist or the backend fails.
    fn remove_snapshot(&self, name: &str) -> Result<()>;

    /// Makes a snapshot readable and says where (an LVM thin snapshot carries the
    /// activation-skip flag and must be activated read-only first).
    ///
    /// # Errors
    /// When it does not exist or cannot be activated.
    fn activate(&self, name: &str) -> Result<SnapshotSource>;

    /// Makes a live source volume writable on this host and says where (a restore into the
    /// volume): never read-only, never a snapshot.
    ///
    /// # Errors
    /// When it is no volume of the backend or cannot be activated.
    fn activate_volume(&self, lv: &str) -> Result<SnapshotSource>;

    /// Undoes [`VolumeManager::activate`].
    ///
    /// # Errors
    /// When the backend fails.
    fn deactivate(&self, name: &str) -> Result<()>;

    /// Volumes a restore set aside (`<lv>-pre-restore-<time>`), with when: kept for
    /// `keep-days`, then pruned. Backends without restores have none.
    ///
    /// # Errors
    /// When the backend cannot be listed.
    fn set_aside_volumes(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        Ok(Vec::new())
    }

    /// Removes a volume a restore set aside.
    ///
    /// # Errors
    /// When the backend fails.
    fn remove_set_aside(&self, name: &str) -> Result<()> {
        Err(crate::Error::Unsupported {
            operation: format!("remove {name}"),
            reason: "this backend sets nothing aside".to_owned(),
        })
    }

    /// The pool's usage, when the backend has a pool.
    ///
    /// # Errors
    /// When the backend fails.
    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(None)
    }
}
