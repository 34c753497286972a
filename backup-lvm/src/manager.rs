//! `VolumeManager` over LVM thin volumes.

use backup_core::{
    parse_snapshot_name, Error as CoreError, Invocation, PoolUsage, Result, Runner, SnapshotInfo,
    SnapshotSource, Volume, VolumeManager,
};
use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};

use crate::commands::{self, RESTORED_TAG};
use crate::lvs::{parse_lvs, Lv};
use crate::naming::parse_pre_restore_name;

/// LVM thin volumes of one pool in one volume group, driven through a [`Runner`].
pub struct LvmVolumeManager<'r> {
    vg: String,
    pool: String,
    runner: &'r dyn Runner,
}

impl<'r> LvmVolumeManager<'r> {
    /// Volumes in `vg`'s thin pool `pool`.
    pub fn new(vg: &str, pool: &str, runner: &'r dyn Runner) -> Self {
        Self {
            vg: vg.to_owned(),
            pool: pool.to_owned(),
            runner,
        }
    }

    /// The volume group.
    pub fn vg(&self) -> &str {
        &self.vg
    }

    /// The thin pool.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// Every LV of the volume group.
    ///
    /// # Errors
    /// When `lvs` fails or its output does not parse.
    pub fn lvs(&self) -> Result<Vec<Lv>> {
        let out = commands::list(&self.vg).run_checked(self.runner)?;
        Ok(parse_lvs(&out.stdout)?)
    }

    fn in_pool<'a>(&self, lvs: &'a [Lv]) -> impl Iterator<Item = &'a Lv> {
        let pool = self.pool.clone();
        lvs.iter().filter(move |l| {
            !l.is_hidden() && l.is_thin_volume() && l.pool.as_deref() == Some(pool.as_str())
        })
    }

    /// Runs `inv`, failing unless it exits 0.
    ///
    /// # Errors
    /// With argv, status and stderr.
    pub fn run(&self, inv: &Invocation) -> Result<()> {
        inv.run_checked(self.runner).map(|_| ())
    }
}

/// A source volume: a thin LV of the pool that is not a snapshot (an LV with an origin, unless a
/// restore made it the live volume) and not a volume set aside by a restore. A snapshot named
/// after its volume matches `vm-*-pvc-*` too: it must never be snapshotted again.
pub fn is_source_volume(l: &Lv) -> bool {
    let restored = l.tags.iter().any(|t| t == RESTORED_TAG);
    (l.origin.is_none() || restored)
        && parse_snapshot_name(&l.name).is_none()
        && parse_pre_restore_name(&l.name).is_none()
}

impl VolumeManager for LvmVolumeManager<'_> {
    fn list_volumes(&self) -> Result<Vec<Volume>> {
        let lvs = self.lvs()?;
        Ok(self
            .in_pool(&lvs)
            .filter(|l| is_source_volume(l))
            .map(|l| Volume {
                name: l.name.clone(),
            })
            .collect())
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let lvs = self.lvs()?;
        Ok(self
            .in_pool(&lvs)
            .filter(|l| l.origin.is_some())
            .filter_map(|l| {
                parse_snapshot_name(&l.name).map(|(volume, created)| SnapshotInfo {
                    name: l.name.clone(),
                    volume: volume.to_owned(),
                    created,
                })
            })
            .collect())
    }

    fn create_snapshot(&self, volume: &str, name: &str, at: DateTime<Utc>) -> Result<SnapshotInfo> {
        self.run(&commands::thin_snapshot(&self.vg, volume, name))?;
        Ok(SnapshotInfo {
            name: name.to_owned(),
            volume: volume.to_owned(),
            created: at,
        })
    }

    fn remove_snapshot(&self, name: &str) -> Result<()> {
        self.run(&commands::remove(&self.vg, name))
    }

    fn activate(&self, name: &str) -> Result<SnapshotSource> {
        // read-only first: `lvchange -ay -K -pr` is refused in one call. Only when it is not
        // already: `lvchange --permission r` on a read-only LV fails (exit 5, "already read
        // only"), and every rerun on the same snapshots (a retry, a catch-up at boot) hit it.
        let already = self
            .lvs()?
            .iter()
            .any(|l| l.name == name && l.is_read_only());
        if !already {
            self.run(&commands::set_read_only(&self.vg, name))?;
        }
        self.run(&commands::activate_ignoring_skip(&self.vg, name))?;
        Ok(SnapshotSource::Device(Utf8PathBuf::from(format!(
            "/dev/{}/{name}",
            self.vg
        ))))
    }

    fn activate_volume(&self, lv: &str) -> Result<SnapshotSource> {
        // a source volume has no activation-skip flag and stays writable
        self.run(&commands::activate(&self.vg, lv))?;
        Ok(SnapshotSource::Device(Utf8PathBuf::from(format!(
            "/dev/{}/{lv}",
            self.vg
        ))))
    }

    fn deactivate(&self, name: &str) -> Result<()> {
        self.run(&commands::deactivate(&self.vg, name))
    }

    fn set_aside_volumes(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let lvs = self.lvs()?;
        Ok(self
            .in_pool(&lvs)
            .filter_map(|l| parse_pre_restore_name(&l.name).map(|(_, t)| (l.name.clone(), t)))
            .collect())
    }

    fn remove_set_aside(&self, name: &str) -> Result<()> {
        if parse_pre_restore_name(name).is_none() {
            return Err(CoreError::Unsupported {
                operation: format!("remove {name}"),
                reason: "not a volume set aside by a restore".to_owned(),
            });
        }
        self.run(&commands::remove(&self.vg, name))
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        let lvs = self.lvs()?;
        let pool = lvs.iter().find(|l| l.name == self.pool).ok_or_else(|| {
            CoreError::missing(
                format!("find thin pool {}/{}", self.vg, self.pool),
                "no such LV",
            )
        })?;
        match (pool.data_percent, pool.metadata_percent) {
            (Some(data), meta) => Ok(Some(PoolUsage {
                data_percent: data,
                metadata_percent: meta.unwrap_or(0.0),
            })),
            (None, _) => Err(CoreError::unexpected(
                format!("read the usage of thin pool {}/{}", self.vg, self.pool),
                "lvs reports no data_percent (is it a thin pool?)",
            )),
        }
    }
}
