//! The backup root on disk: [`DiskStore`], the filesystem [`BackupStore`] (versions and their
//! markers, the update swap, removal); the file helpers it uses are in [`crate::fsutil`]. The
//! steps around a copy that are not storage are [`crate::copy_stages`].

use backup_core::{
    format_marker, parse_marker, BackupRoot, BackupStore, IsoWeek, Series, StoreFile, WeekVersion,
    COMPLETE_DIR, CONFIG_XML, FULL_TAR, PFSENSE_SERIES, PVE_CONFIG_SERIES,
};
use camino::Utf8Path;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::fsutil::{
    disk_usage_percent, remove_file_if_present, remove_tree, subdirs, sync_filesystem, write_atomic,
};

/// The backup root on a mounted disk.
#[derive(Debug, Clone)]
pub struct DiskStore {
    root: BackupRoot,
}

impl DiskStore {
    /// The backup root at `root`.
    pub fn new(root: &Utf8Path) -> Self {
        Self {
            root: BackupRoot::new(root),
        }
    }

    fn marker(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> Option<camino::Utf8PathBuf> {
        match series {
            Series::Pvc => Some(self.root.pvc_complete_marker(week, namespace, pvc)),
            Series::PveConfig => Some(self.root.pve_config_marker(week)),
            // pfSense weeks are complete when both files are there: no marker
            Series::Pfsense => None,
        }
    }
}

fn core(e: Error) -> backup_core::Error {
    e.into_core("backup root")
}

impl BackupStore for DiskStore {
    fn root(&self) -> &BackupRoot {
        &self.root
    }

    fn list_versions(&self, series: Series) -> backup_core::Result<Vec<WeekVersion>> {
        match series {
            Series::Pvc => scan_versions(&self.root),
            Series::PveConfig => scan_pve_config_weeks(&self.root),
            Series::Pfsense => scan_pfsense_weeks(&self.root),
        }
        .map_err(core)
    }

    fn mark_complete(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        at: DateTime<Utc>,
    ) -> backup_core::Result<()> {
        match self.marker(series, week, namespace, pvc) {
            Some(m) => {
                // The version must be on disk before its marker says it is complete: rsync does
                // not fsync, and with delayed allocation a crash can keep a later marker and lose
                // earlier file data (a version "complete" with empty files, that the next week
                // would hardlink from). One syncfs of the backup disk, then the marker.
                sync_filesystem(self.root.root()).map_err(core)?;
                write_atomic(&m, format_marker(at).as_bytes()).map_err(core)
            }
            None => Ok(()),
        }
    }

    fn mark_incomplete(
        &self,
        series: Series,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> backup_core::Result<()> {
        match self.marker(series, week, namespace, pvc) {
            Some(m) => remove_file_if_present(&m).map_err(core),
            None => Ok(()),
        }
    }

    fn remove_version(&self, series: Series, v: &WeekVersion) -> backup_core::Result<()> {
        match series {
            Series::Pvc => {
                let copies = self.root.sqlite_copy(v.week, &v.namespace, &v.pvc);
                remove_version(&self.root, v)
                    .and_then(|()| {
                        remove_file_if_present(&crate::sqlite_stage::sources_file(&copies))
                    })
                    .and_then(|()| remove_tree(&copies))
            }
            Series::PveConfig => remove_file_if_present(&self.root.pve_config_marker(v.week))
                .and_then(|()| remove_tree(&self.root.pve_config_week(v.week))),
            Series::Pfsense => remove_tree(&self.root.pfsense_week(v.week)),
        }
        .map_err(core)
    }

    fn staging_tree(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> backup_core::Result<camino::Utf8PathBuf> {
        crate::version_commit::fresh_staging_tree(&self.root, week, namespace, pvc).map_err(core)
    }

    fn staging_tree_from_spare(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        earlier: Option<IsoWeek>,
    ) -> backup_core::Result<(camino::Utf8PathBuf, bool)> {
        crate::version_commit::staging_tree_from_spare(&self.root, week, namespace, pvc, earlier)
            .map_err(core)
    }

    fn commit_version(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
        record: &[u8],
        at: DateTime<Utc>,
    ) -> backup_core::Result<()> {
        crate::version_commit::commit(&self.root, week, namespace, pvc, record, at).map_err(core)
    }

    fn recover_version(
        &self,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> backup_core::Result<Option<String>> {
        crate::version_commit::recover(&self.root, week, namespace, pvc).map_err(core)
    }

    fn read(&self, file: StoreFile<'_>) -> backup_core::Result<Option<Vec<u8>>> {
        let path = match file {
            // while a commit is half done, the record that goes with the copy now
            StoreFile::Record(week, ns, pvc) => {
                crate::version_commit::record_path(&self.root, week, ns, pvc)
            }
            other => other.path(&self.root),
        };
        match crate::safe_read::read_regular(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(core(Error::io("read", path, e))),
        }
    }

    fn write(&self, file: StoreFile<'_>, bytes: &[u8]) -> backup_core::Result<()> {
        write_atomic(&file.path(&self.root), bytes).map_err(core)
    }

    fn disk_usage_percent(&self) -> Option<f64> {
        disk_usage_percent(self.root.root()).ok()
    }
}

/// PVE config week folders, complete when their marker is there. Other folders (the single
/// mirror `pve-config/etc/...` of earlier releases) are not versions and stay.
fn scan_pve_config_weeks(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for name in subdirs(&root.pve_config())? {
        let Ok(week) = name.parse::<IsoWeek>() else {
            continue;
        };
        let completed_at = crate::safe_read::read_regular_string(root.pve_config_marker(week))
            .ok()
            .and_then(|t| parse_marker(&t));
        out.push(WeekVersion {
            namespace: PVE_CONFIG_SERIES.to_owned(),
            pvc: PVE_CONFIG_SERIES.to_owned(),
            week,
            completed_at,
        });
    }
    Ok(out)
}

/// pfSense week folders: complete when both files are there, as of `config.xml`'s mtime.
fn scan_pfsense_weeks(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for name in subdirs(&root.pfsense())? {
        let Ok(week) = name.parse::<IsoWeek>() else {
            continue;
        };
        let dir = root.pfsense_week(week);
        let completed_at = match (
            std::fs::metadata(dir.join(CONFIG_XML)),
            dir.join(FULL_TAR).is_file(),
        ) {
            (Ok(m), true) => m.modified().ok().map(DateTime::<Utc>::from),
            _ => None,
        };
        out.push(WeekVersion {
            namespace: PFSENSE_SERIES.to_owned(),
            pvc: PFSENSE_SERIES.to_owned(),
            week,
            completed_at,
        });
    }
    Ok(out)
}

/// Every `pvc-data/<week>/<namespace>/<pvc>` version under the root, with its completion time.
/// Folders that are not week ids are left alone.
///
/// # Errors
/// When a folder cannot be read.
fn scan_versions(root: &BackupRoot) -> Result<Vec<WeekVersion>> {
    let mut out = Vec::new();
    for week_name in subdirs(&root.pvc_data())? {
        let Ok(week) = week_name.parse::<IsoWeek>() else {
            continue;
        };
        for namespace in subdirs(&root.pvc_week(week))? {
            // `.complete`, `.records`: markers and records, not namespaces
            if namespace == COMPLETE_DIR || namespace.starts_with('.') {
                continue;
            }
            for pvc in subdirs(&root.pvc_week(week).join(&namespace))? {
                let marker = root.pvc_complete_marker(week, &namespace, &pvc);
                let completed_at = crate::safe_read::read_regular_string(&marker)
                    .ok()
                    .and_then(|t| parse_marker(&t));
                out.push(WeekVersion {
                    namespace: namespace.clone(),
                    pvc,
                    week,
                    completed_at,
                });
            }
        }
    }
    Ok(out)
}

/// Marks a version incomplete (before it is written again, or removed).
///
/// # Errors
/// When the marker exists and cannot be removed.
fn mark_incomplete(root: &BackupRoot, week: IsoWeek, namespace: &str, pvc: &str) -> Result<()> {
    remove_file_if_present(&root.pvc_complete_marker(week, namespace, pvc))
}

/// Removes a version: its marker first (a removal cut short reads as incomplete, never as a
/// complete version with files missing), then its folder, then folders left empty.
///
/// # Errors
/// When a removal fails.
fn remove_version(root: &BackupRoot, v: &WeekVersion) -> Result<()> {
    // what a killed run staged for this version, first: an undone swap rewrites the marker
    crate::version_commit::recover(root, v.week, &v.namespace, &v.pvc)?;
    // the spare before the version: a removal cut short leaves the version, removed again
    // by the next prune, never a spare nothing would remove
    remove_tree(&root.pvc_staging(
        backup_core::StagingPart::Spare,
        v.week,
        &v.namespace,
        &v.pvc,
    ))?;
    mark_incomplete(root, v.week, &v.namespace, &v.pvc)?;
    remove_file_if_present(&root.pvc_record(v.week, &v.namespace, &v.pvc))?;
    remove_file_if_present(&root.pvc_damaged(v.week, &v.namespace, &v.pvc))?;
    remove_file_if_present(&root.pvc_repaired(v.week, &v.namespace, &v.pvc))?;
    let copy = root.pvc_copy(v.week, &v.namespace, &v.pvc);
    remove_tree(&copy)?;
    let week = root.pvc_week(v.week);
    let mut dirs = Vec::new();
    for kind in [COMPLETE_DIR, ".records", ".damaged", ".repaired"] {
        dirs.extend([week.join(kind).join(&v.namespace), week.join(kind)]);
    }
    for part in ["tree", "record", "commit", "spare"] {
        let dir = week.join(".staging").join(part);
        dirs.extend([dir.join(&v.namespace), dir]);
    }
    dirs.extend([week.join(".staging"), week.join(&v.namespace), week]);
    for dir in dirs {
        // only empty folders go; anything else stays
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(())
}
