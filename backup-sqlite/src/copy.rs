//! WAL-correct copies of a database found in a snapshot.
//!
//! A crash-consistent snapshot of a WAL database keeps committed transactions in `-wal`; opening
//! the snapshot read-only either fails (no `-shm`, read-only media) or, with `immutable=1`,
//! silently ignores the WAL. So: copy the database with its `-wal` or hot `-journal` (never the
//! `-shm`: it is a cache of the WAL index and may be stale or zeroed) into a private folder on the
//! destination's file system, open that copy read-write so SQLite's own recovery runs,
//! checkpoint the WAL into the file (`wal_checkpoint(TRUNCATE)`), switch it to a plain
//! rollback-journal database that opens anywhere, even read-only (`journal_mode=DELETE`), check
//! it (`integrity_check`), fsync it and rename it into place.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};

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
        // a badly damaged database reports hundreds of lines: the first few and a count
        Err(Error::Integrity {
            path: path.to_owned(),
            total: rows.len(),
            problems: rows.into_iter().take(5).collect(),
        })
    }
}

/// Checks a stored copy (a rollback-journal database, as [`copy_database`] and the online backup
/// write them): opened read-only, never written, `PRAGMA integrity_check`. A copy with a `-wal`
/// or `-journal` beside it was not left by us: it is reported, not recovered.
///
/// # Errors
/// [`Error::Integrity`] with SQLite's findings, or [`Error::Sqlite`] when it cannot be opened as
/// a database (truncated, not a database).
pub fn check_copy(path: &Path) -> Result<()> {
    for suffix in ["-wal", "-journal"] {
        if with_suffix(path, suffix).exists() {
            return Err(Error::io(
                "check",
                path,
                std::io::Error::other(format!(
                    "a {suffix} file lies beside this copy: copies never have one"
                )),
            ));
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite("open", path, e))?;
    integrity_check(&conn, path)
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
    // The database and its side files are opened once, relative to their folder, never following
    // a symlink and never blocking (a tenant's FIFO named `app.db-wal` would hang the run, a
    // symlink `app.db-wal -> /etc/shadow` would copy a host file); only regular files are read,
    // and every later read goes through these descriptors.
    let (dir, name) = split_parent(source)?;
    let db = open_regular(&dir, &name, source)?.ok_or_else(|| {
        Error::io(
            "open",
            source,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    let mut sides: Vec<(&'static str, File)> = Vec::new();
    for suffix in ["-wal", "-journal"] {
        let mut side_name = name.clone();
        side_name.push(suffix);
        if let Some(f) = open_regular(&dir, &side_name, &with_suffix(source, suffix))? {
            sides.push((suffix, f));
        }
    }
    let side_files: Vec<String> = sides.iter().map(|(s, _)| (*s).to_owned()).collect();
    // Everything goes into the private scratch folder on the destination's file system, at
    // `cp` speed; SQLite's recovery, the checkpoint and the check then run on that copy, and the
    // checked file is renamed into place. (An earlier version wrote the copy with `VACUUM INTO`,
    // which rebuilds the database page by page: 6.5x `cp`.)
    let work = scratch.path().join("db");
    copy_from(db, &work, source)?;
    for (suffix, f) in sides {
        copy_from(f, &with_suffix(&work, suffix), &with_suffix(source, suffix))?;
    }
    let checked = (|| -> Result<()> {
        // read-write: the first read replays the WAL or rolls back the hot journal
        let conn = Connection::open_with_flags(&work, rw_flags())
            .map_err(|e| Error::sqlite("open", source, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(|e| Error::sqlite("open", source, e))?;
        tune(&conn);
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| Error::sqlite("open", source, e))?;
        // every committed frame into the database file, the WAL emptied
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| Error::sqlite("checkpoint the copy of", source, e))?;
        // a plain rollback-journal database opens anywhere, read-only media included
        let mode: String = conn
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .map_err(|e| Error::sqlite("set journal_mode of the copy of", source, e))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(Error::Integrity {
                path: source.to_owned(),
                problems: vec![format!("copy stayed in journal_mode {mode}")],
                total: 1,
            });
        }
        // the file is final from here on: its fsync runs beside the (read-only) check
        let (synced, checked) = std::thread::scope(|s| {
            let syncer = s.spawn(|| File::open(&work).and_then(|f| f.sync_all()));
            let checked = integrity_check(&conn, source);
            let synced = syncer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the fsync thread panicked")));
            (synced, checked)
        });
        checked?;
        synced.map_err(|e| Error::io("fsync", &work, e))
    })();
    checked?;
    let bytes = finish_copy(source, &work, dest, dest_dir)?;
    // the scratch folder (its side files emptied or gone) goes when `scratch` drops
    Ok(CopyReport { bytes, side_files })
}

/// The folder of `path` (opened as a descriptor) and the file's name in it.
fn split_parent(path: &Path) -> Result<(OwnedFd, OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| {
            Error::io(
                "open",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "names no file"),
            )
        })?
        .to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open the folder of", path, e.into()))?;
    Ok((dir, name))
}

/// Opens `name` in `dir` for reading when it is a regular file; `None` when there is no such
/// name. Symlinks are not followed and nothing blocks (`O_NONBLOCK`: opening a FIFO with no
/// writer returns at once); anything but a regular file is [`Error::NotRegular`].
fn open_regular(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Option<File>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => {
            return Err(Error::NotRegular {
                path: shown.to_owned(),
                what: "a symlink".to_owned(),
            })
        }
        Err(e) => return Err(Error::io("open", shown, e.into())),
    };
    let f = File::from(fd);
    let t = f
        .metadata()
        .map_err(|e| Error::io("stat", shown, e))?
        .file_type();
    if t.is_file() {
        Ok(Some(f))
    } else {
        Err(Error::NotRegular {
            path: shown.to_owned(),
            what: describe(t),
        })
    }
}

/// What a file that is not a regular file is, for messages.
pub(crate) fn describe(t: std::fs::FileType) -> String {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
    .to_owned()
}

/// Copies an open file into a new file at `to` (in the private scratch folder).
fn copy_from(mut from: File, to: &Path, shown: &Path) -> Result<()> {
    let mut out = File::create(to).map_err(|e| Error::io("create", to, e))?;
    std::io::copy(&mut from, &mut out).map_err(|e| Error::io("copy", shown, e))?;
    Ok(())
}

/// Reads faster: memory-mapped pages and a 64 MiB cache.
fn tune(conn: &Connection) {
    let _ = conn.execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;");
}

/// Fsyncs the checked copy and renames it to `dest` (then fsyncs the folder).
fn finish_copy(source: &Path, work: &Path, dest: &Path, dest_dir: &Path) -> Result<u64> {
    let _ = source;
    let f = File::open(work).map_err(|e| Error::io("open", work, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", work, e))?;
    let bytes = f.metadata().map_err(|e| Error::io("stat", work, e))?.len();
    std::fs::rename(work, dest).map_err(|e| Error::io("rename into place", dest, e))?;
    File::open(dest_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dest_dir, e))?;
    Ok(bytes)
}

/// Removes what copies killed mid-way leave under `dir`: `.sqlite-recover-*` folders and
/// `.sqlite-copy-*` files, and nothing else. Only call it while no copy into `dir` runs.
pub fn remove_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if name.starts_with(b".sqlite-recover-") && is_dir {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if name.starts_with(b".sqlite-copy-") && !is_dir {
            let _ = std::fs::remove_file(entry.path());
        } else if is_dir {
            remove_scratch(&entry.path());
        }
    }
}
