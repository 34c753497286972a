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

    /// Snapshot folders by name (UTF-8 names only: this backend makes them); an absent folder
    /// has none.
    fn list(dir: &Utf8Path) -> Result<Vec<String>> {
        let fail = |e: std::io::Error| Error::io(format!("list {dir}"), e);
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fail(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(fail)?;
            if let (true, Ok(name)) = (
                entry.file_type().map_err(fail)?.is_dir(),
                entry.file_name().into_string(),
            ) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Volume folders by name; a name that is not UTF-8 is listed lossily (with U+FFFD), so
    /// that selection names and refuses it instead of it vanishing from every report.
    fn list_lossy(dir: &Utf8Path) -> Result<Vec<String>> {
        let fail = |e: std::io::Error| Error::io(format!("list {dir}"), e);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            if entry.file_type().map_err(fail)?.is_dir() {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }
}

impl VolumeManager for DirVolumeManager<'_> {
    fn list_volumes(&self) -> Result<Vec<Volume>> {
        if !self.volumes_dir.is_dir() {
            return Err(Error::missing(
                format!("list volumes in {}", self.volumes_dir),
                "no such folder (`snapshots.volumes-dir`)",
            ));
        }
        Ok(Self::list_lossy(&self.volumes_dir)?
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
            return Err(Error::missing(
                format!("snapshot {volume}"),
                format!("no such volume folder {source}"),
            ));
        }
        let dest = self.snapshots_dir.join(name);
        if dest.exists() {
            return Err(Error::occupied(
                format!("snapshot {volume}"),
                format!("{dest} already exists"),
            ));
        }
        std::fs::create_dir_all(&self.snapshots_dir).map_err(|e| {
            Error::io(
                format!("create {} (`snapshots.snapshots-dir`)", self.snapshots_dir),
                e,
            )
        })?;
        // A temp folder of this run's own (two runs at once must never copy into one folder:
        // that gave snapshots with folders missing and a copy nested inside), copied into, then
        // renamed into place only if nothing has that name yet.
        let scratch = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&self.snapshots_dir)
            .map_err(|e| Error::io(format!("create a temp folder in {}", self.snapshots_dir), e))?;
        let tmp = Utf8Path::from_path(scratch.path())
            .ok_or_else(|| {
                Error::unexpected(format!("snapshot {volume}"), "temp path is not UTF-8")
            })?
            .join("copy");
        Invocation::new(
            "cp",
            ["-a", "--reflink=auto", "--", source.as_str(), tmp.as_str()],
        )
        .run_checked(self.runner)?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp.as_std_path(),
            rustix::fs::CWD,
            dest.as_std_path(),
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            let operation = format!("rename {tmp} to {dest}");
            if e == rustix::io::Errno::EXIST {
                Error::occupied(
                    operation,
                    "another run made this snapshot at the same moment; its copy is kept",
                )
            } else {
                Error::io(operation, e.into())
            }
        })?;
        // the scratch folder (now empty) goes when `scratch` drops
        Ok(SnapshotInfo {
            name: name.to_owned(),
            volume: volume.to_owned(),
            created: at,
        })
    }

    fn remove_snapshot(&self, name: &str) -> Result<()> {
        let dir = self.snapshots_dir.join(name);
        if parse_snapshot_name(name).is_none() || !dir.is_dir() {
            return Err(Error::missing(
                format!("remove snapshot {name}"),
                "no such snapshot",
            ));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("remove {dir}"), e))
    }

    fn activate(&self, name: &str) -> Result<SnapshotSource> {
        let dir = self.snapshots_dir.join(name);
        if !dir.is_dir() {
            return Err(Error::missing(
                format!("activate {name}"),
                "no such snapshot",
            ));
        }
        Ok(SnapshotSource::Dir(dir))
    }

    fn activate_volume(&self, lv: &str) -> Result<SnapshotSource> {
        let dir = self.volumes_dir.join(lv);
        if !dir.is_dir() {
            return Err(Error::missing(format!("activate {lv}"), "no such volume"));
        }
        Ok(SnapshotSource::Dir(dir))
    }

    fn deactivate(&self, _name: &str) -> Result<()> {
        Ok(())
    }
}
