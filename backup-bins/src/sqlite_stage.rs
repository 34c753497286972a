//! The SQLite stage: every database in a mounted snapshot, copied WAL-correctly into
//! `sqlite-backup/<week>/<namespace>/<pvc>/<path inside the volume>`. A broken one is reported
//! and stored nowhere; the others still go.

use backup_core::DatabaseCopy;
use backup_sqlite::{copy_database, find_databases};
use camino::Utf8Path;

/// Finds and copies the databases under `source` into `dest`; one result per database found,
/// damaged and unreadable ones included.
pub fn copy_databases(source: &Utf8Path, dest: &Utf8Path) -> Vec<DatabaseCopy> {
    let found = find_databases(source.as_std_path());
    // a run killed mid-copy leaves its scratch behind; we hold the lock, so none is in use
    backup_sqlite::remove_scratch(dest.as_std_path());
    let mut out: Vec<DatabaseCopy> = found
        .databases
        .iter()
        .map(|rel| {
            let result = copy_database(
                &source.as_std_path().join(rel),
                &dest.as_std_path().join(rel),
            );
            DatabaseCopy {
                path: rel.to_string_lossy().into_owned(),
                bytes: result.as_ref().ok().map(|r| r.bytes),
                error: result.err().map(|e| e.to_string()),
            }
        })
        .collect();
    out.extend(found.damaged.into_iter().map(|(path, why)| DatabaseCopy {
        path: path.to_string_lossy().into_owned(),
        bytes: None,
        error: Some(format!("not a usable database: {why}")),
    }));
    out.extend(
        found
            .unreadable
            .into_iter()
            .map(|(path, why)| DatabaseCopy {
                path: path.to_string_lossy().into_owned(),
                bytes: None,
                error: Some(format!(
                    "could not be read while looking for databases: {why}"
                )),
            }),
    );
    out
}
