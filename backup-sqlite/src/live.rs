//! Consistent copies of a live database that has writers: SQLite's online backup API.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::copy::integrity_check;
use crate::error::{Error, Result};

/// Opens a live database for checking and copying (read-write flags: a WAL database needs its
/// `-shm`, but nothing is written).
///
/// # Errors
/// [`Error::Sqlite`] naming the file.
pub fn open_live(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::io(
            "open",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    // SQLite opens the side files itself: a FIFO there would block it forever
    for suffix in ["-wal", "-journal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = std::path::PathBuf::from(side);
        if let Ok(m) = std::fs::symlink_metadata(&side) {
            if !m.file_type().is_file() {
                return Err(Error::NotRegular {
                    path: side,
                    what: crate::copy::describe(m.file_type()),
                });
            }
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite("open", path, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| Error::sqlite("set busy_timeout on", path, e))?;
    Ok(conn)
}

/// `PRAGMA integrity_check` of the live database at `path`.
///
/// # Errors
/// When it cannot be opened or the check fails.
pub fn check_live(path: &Path) -> Result<()> {
    integrity_check(&open_live(path)?, path)
}

/// Copies the live database at `source` into a new file `dest` with the online backup API.
///
/// A WAL database is copied in one step: the copy reads one snapshot under one read
/// transaction while writers go on (WAL lets them), so a writer that never pauses cannot
/// restart it. A rollback-journal database is copied 256 pages a step, so writers wait only for
/// a step at a time; a writer that changes it restarts the copy (SQLite's rule), and after half
/// of `bound` the rest is copied in one step (writers then wait for it). A step that finds the
/// database busy or locked is retried; past `bound` the copy gives up rather than run forever.
/// The copy is checked and fsynced.
///
/// # Errors
/// [`Error::Busy`] past the bound; SQLite and I/O errors naming the file.
pub fn backup_live(source: &Path, dest: &Path, bound: Duration) -> Result<()> {
    let src = open_live(source)?;
    let mut out = Connection::open(dest).map_err(|e| Error::sqlite("create", dest, e))?;
    let started = Instant::now();
    let wal = src
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map_err(|e| Error::sqlite("read journal_mode of", source, e))?
        .eq_ignore_ascii_case("wal");
    {
        let backup = Backup::new(&src, &mut out)
            .map_err(|e| Error::sqlite("start a backup of", source, e))?;
        loop {
            let pages = if wal || started.elapsed() > bound / 2 {
                -1
            } else {
                256
            };
            match backup
                .step(pages)
                .map_err(|e| Error::sqlite("copy", source, e))?
            {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
            if started.elapsed() > bound {
                return Err(Error::Busy {
                    path: source.to_owned(),
                    seconds: bound.as_secs(),
                });
            }
        }
    }
    let mode: String = out
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(|e| Error::sqlite("set journal_mode of", dest, e))?;
    let _ = mode;
    integrity_check(&out, dest)?;
    drop(out);
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("fsync", dest, e))
}
