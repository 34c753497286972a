//! The `dir` snapshot backend: folders stand in for LVs (demo and tests).
//!
//! Each subfolder of `volumes-dir` is a volume; a snapshot is a copy made with
//! `cp -a --reflink=auto` into `snapshots-dir/<volume>-snap-<time>` (copied under a temp name and
//! renamed, so a half-made snapshot is never listed). A hardlinked copy would not do: a write to a
//! live file in place would change the snapshot too.

use backup_core::{
    parse_snapshot_name, Error, Invocation, Result, Runner, SnapshotInfo, SnapshotSource, Volume,
    VolumeManager,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

use crate::store::subdirs;

/// Volumes and snapshots as folders.
pub struct DirVolumeManager<'r> {
    volumes_dir: Utf8PathBuf,
    snapshots_dir: Utf8PathBuf,
    runner: &'r dyn Runner,
}

impl<'r> DirVolumeManager<'r> {
    /// Volumes under `volumes_dir`, snapshots under `snapshots_dir`, copies made through `runner`.
    pub fn new(volumes_dir: &Utf8Path, snapshots_dir: &Utf8Path, runner: &'r dyn Runner) -> Self {
        Self {
            volumes_dir: volumes_dir.to_owned(),
            snapshots_dir: snapshots_dir.to_owned(),
            runner,
        }
    }

    fn list(dir: &Utf8Path) -> Result<Vec<String>> {
        subdirs(dir).map_err(|e| Error::backend(format!("list {dir}"), e.to_string()))
    }
}

impl VolumeManager for DirVolumeManager<'_> {
    fn list_volumes(&self) -> Result<Vec<Volume>> {
        if !self.volumes_dir.is_dir() {
            return Err(Error::backend(
                format!("list volumes in {}", self.volumes_dir),
                "no such folder",
            ));
        }
        Ok(Self::list(&self.volumes_dir)?
            .into_iter()
            .map(|name| Volume { name })
            .collect())
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(Self::list(&self.snapshots_dir)?
            .iter()
            .filter_map(|name| {
                parse_snapshot_name(name).map(|(volume, created)| SnapshotInfo {
                    name: name.clone(),
                    volume: volume.to_owned(),
                    created,
                })
            })
            .collect())
    }

    fn create_snapshot(&self, volume: &str, name: &str, at: DateTime<Utc>) -> Result<SnapshotInfo> {
        let source = self.volumes_dir.join(volume);
        if !source.is_dir() {
            return Err(Error::backend(
                format!("snapshot {volume}"),
                format!("no such volume folder {source}"),
            ));
        }
        let dest = self.snapshots_dir.join(name);
        if dest.exists() {
            return Err(Error::backend(
                format!("snapshot {volume}"),
                format!("{dest} already exists"),
            ));
        }
        std::fs::create_dir_all(&self.snapshots_dir)
            .map_err(|e| Error::backend(format!("create {}", self.snapshots_dir), e.to_string()))?;
        let tmp = self.snapshots_dir.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        let copied = Invocation::new(
            "cp",
            ["-a", "--reflink=auto", "--", source.as_str(), tmp.as_str()],
        )
        .run_checked(self.runner);
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dest)
            .map_err(|e| Error::backend(format!("rename {tmp} to {dest}"), e.to_string()))?;
        Ok(SnapshotInfo {
            name: name.to_owned(),
            volume: volume.to_owned(),
            created: at,
        })
    }

    fn remove_snapshot(&self, name: &str) -> Result<()> {
        let dir = self.snapshots_dir.join(name);
        if parse_snapshot_name(name).is_none() || !dir.is_dir() {
            return Err(Error::backend(
                format!("remove snapshot {name}"),
                "no such snapshot",
            ));
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::backend(format!("remove {dir}"), e.to_string()))
    }

    fn activate(&self, name: &str) -> Result<SnapshotSource> {
        let dir = self.snapshots_dir.join(name);
        if !dir.is_dir() {
            return Err(Error::backend(
                format!("activate {name}"),
                "no such snapshot",
            ));
        }
        Ok(SnapshotSource::Dir(dir))
    }

    fn deactivate(&self, _name: &str) -> Result<()> {
        Ok(())
    }
}
