//! The steps of daily-backup around a copy that are not storage, on the host: the hardlink
//! guard before rsync writes into a week folder ([`crate::linkguard`]) and the SQLite stage
//! after it ([`crate::sqlite_stage`]).

use backup_core::{CopyStages, DatabaseCopy};
use camino::Utf8Path;

use crate::error::Error;

/// [`CopyStages`] on the real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostCopyStages;

impl CopyStages for HostCopyStages {
    fn has_entries(&self, dir: &Utf8Path) -> backup_core::Result<bool> {
        crate::fsutil::has_entries(dir).map_err(|e| e.into_core("backup root"))
    }

    fn prepare_copy(&self, source: &Utf8Path, dest: &Utf8Path) -> backup_core::Result<()> {
        if dest.is_dir() {
            // a later run of this week: rsync would chmod/chown shared inodes of older weeks
            crate::linkguard::unshare_changed(source.as_std_path(), dest.as_std_path())
                .map_err(|e| e.into_core("prepare the copy"))?;
        }
        std::fs::create_dir_all(dest)
            .map_err(|e| Error::io("create folder", dest, e).into_core("prepare the copy"))
    }

    fn copy_databases(
        &self,
        source: &Utf8Path,
        found: Option<&backup_core::Discovery>,
        dest: &Utf8Path,
        previous: Option<&Utf8Path>,
    ) -> Vec<DatabaseCopy> {
        crate::sqlite_stage::copy_databases(source, found, dest, previous)
    }
}
