//! WAL-correct copies of a database found in a snapshot.
//!
//! A crash-consistent snapshot of a WAL database keeps committed transactions in `-wal`; opening
//! the snapshot read-only either fails (no `-shm`, read-only media) or, with `immutable=1`,
//! silently ignores the WAL. So: copy the database with its `-wal` or hot `-journal` (never the
//! `-shm`: it is a cache of the WAL index and may be stale or zeroed) into a private folder, open
//! that copy read-write so SQLite's own recovery runs, check it, and write the result with
//! `VACUUM INTO` as a plain rollback-journal database that opens anywhere, even read-only.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// What a copy produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes of the stored copy.
    pub bytes: u64,
    /// The side files that were carried along (`-wal`, `-journal`).
    pub side_files: Vec<String>,
}

/// Flags for opening a database by plain path: read-write, no URI parsing (a `?` or `#` in a
/// name is part of the name), no mutex (one connection, one thread).
fn rw_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// `PRAGMA integrity_check` on an open connection.
///
/// # Errors
/// [`Error::Integrity`] with SQLite's findings, or [`Error::Sqlite`] when it cannot run.
pub fn integrity_check(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| Error::sqlite("check", path, e))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| Error::sqlite("check", path, e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Integrity {
            path: path.to_owned(),
            problems: rows.into_iter().take(5).collect(),
        })
    }
}

/// Copies the database at `source` (with its `-wal` or hot `-journal`) to `dest`: recovered,
/// checked, compacted, in rollback-journal mode, written to a temp file beside `dest`, fsynced and
/// renamed. Nothing is left at `dest` when any step fails.
///
/// # Errors
/// When the file is not a usable database (truncated, malformed, fails the integrity check), or
/// on I/O errors; the error names `source`.
pub fn copy_database(source: &Path, dest: &Path) -> Result<CopyReport> {
    let dest_dir = dest.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dest_dir).map_err(|e| Error::io("create folder", dest_dir, e))?;
    // private scratch on the destination's file system: the database may be large
    let scratch = tempfile::Builder::new()
        .prefix(".sqlite-recover-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(dest_dir)
        .map_err(|e| Error::io("create a private folder in", dest_dir, e))?;
    let work = scratch.path().join("db");
    std::fs::copy(source, &work).map_err(|e| Error::io("copy", source, e))?;
    let mut side_files = Vec::new();
    for suffix in ["-wal", "-journal"] {
        let side = with_suffix(source, suffix);
        match std::fs::copy(&side, with_suffix(&work, suffix)) {
            Ok(_) => side_files.push(suffix.to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("copy", side, e)),
        }
    }

    // Opening read-write lets SQLite replay the WAL or roll back the hot journal.
    let conn = Connection::open_with_flags(&work, rw_flags())
        .map_err(|e| Error::sqlite("open", source, e))?;
    integrity_check(&conn, source).map_err(|e| match e {
        Error::Integrity { problems, .. } => Error::Integrity {
            path: source.to_owned(),
            problems,
        },
        other => other,
    })?;

    let tmp = tempfile::Builder::new()
        .prefix(".sqlite-copy-")
        .tempfile_in(dest_dir)
        .map_err(|e| Error::io("create a temp file in", dest_dir, e))?;
    let tmp_path = tmp.path().to_owned();
    // VACUUM INTO refuses an existing file: free the name, keep the guard to clean up on error
    std::fs::remove_file(&tmp_path).map_err(|e| Error::io("prepare", &tmp_path, e))?;
    let tmp_str = tmp_path.to_str().ok_or_else(|| {
        Error::io(
            "use",
            &tmp_path,
            std::io::Error::other("temp path is not UTF-8"),
        )
    })?;
    conn.execute("VACUUM INTO ?1", [tmp_str])
        .map_err(|e| Error::sqlite("write a copy of", source, e))?;
    drop(conn);

    let result = (|| -> Result<u64> {
        {
            // a WAL source gives a WAL-mode copy: turn it into a plain rollback-journal database
            let out = Connection::open_with_flags(&tmp_path, rw_flags())
                .map_err(|e| Error::sqlite("open the copy of", source, e))?;
            let mode: String = out
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .map_err(|e| Error::sqlite("set journal_mode of the copy of", source, e))?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(Error::Integrity {
                    path: source.to_owned(),
                    problems: vec![format!("copy stayed in journal_mode {mode}")],
                });
            }
        }
        let f = File::open(&tmp_path).map_err(|e| Error::io("open", &tmp_path, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp_path, e))?;
        let bytes = f
            .metadata()
            .map_err(|e| Error::io("stat", &tmp_path, e))?
            .len();
        std::fs::rename(&tmp_path, dest).map_err(|e| Error::io("rename into place", dest, e))?;
        File::open(dest_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", dest_dir, e))?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    }
    drop(tmp); // its file is gone already (renamed or removed); this only forgets it
    Ok(CopyReport {
        bytes: result?,
        side_files,
    })
}
