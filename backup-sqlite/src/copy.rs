//! WAL-correct copies of a database found in a snapshot.
//!
//! A crash-consistent snapshot of a WAL database keeps committed transactions in `-wal`; opening
//! the snapshot read-only either fails (no `-shm`, read-only media) or, with `immutable=1`,
//! silently ignores the WAL. So: copy the database with its `-wal` or hot `-journal` (never the
//! `-shm`: it is a cache of the WAL index and may be stale or zeroed) into a private folder, open
//! that copy read-write so SQLite's own recovery runs, check it, and write the result with
//! `VACUUM INTO` as a plain rollback-journal database that opens anywhere, even read-only.

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
    let open: Box<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync> = if sides.is_empty() {
        // Nothing to recover: the file alone is the committed state, read where it is
        // (`immutable=1` is right only here, with no WAL or journal that it would ignore).
        drop(db);
        let uri = immutable_uri(source);
        Box::new(move || {
            Connection::open_with_flags(
                &uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
    } else {
        let work = scratch.path().join("db");
        copy_from(db, &work, source)?;
        for (suffix, f) in sides {
            copy_from(f, &with_suffix(&work, suffix), &with_suffix(source, suffix))?;
        }
        // Opening the copy read-write lets SQLite replay the WAL or roll back the hot journal.
        Box::new(move || {
            let c = Connection::open_with_flags(&work, rw_flags())?;
            c.busy_timeout(std::time::Duration::from_secs(60))?;
            Ok(c)
        })
    };
    let conn = open().map_err(|e| Error::sqlite("open", source, e))?;
    tune(&conn);
    // the first read runs recovery; after it a second connection can check in parallel
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| Error::sqlite("open", source, e))?;
    let (written, checked) = std::thread::scope(|s| {
        let checker = s.spawn(|| {
            let c = open().map_err(|e| Error::sqlite("open", source, e))?;
            tune(&c);
            integrity_check(&c, source)
        });
        let written = write_copy(&conn, source, dest_dir);
        let checked = checker.join().unwrap_or_else(|_| {
            Err(Error::Integrity {
                path: source.to_owned(),
                problems: vec!["the check panicked".to_owned()],
                total: 1,
            })
        });
        (written, checked)
    });
    drop(conn);
    if let (Ok((tmp_path, _)), Err(_)) = (&written, &checked) {
        let _ = std::fs::remove_file(tmp_path);
    }
    // a failed integrity check explains a failed copy best
    checked?;
    let (tmp_path, tmp) = written?;
    let bytes = finish_copy(source, &tmp_path, dest, dest_dir);
    drop(tmp); // its name is gone already (renamed or removed): this only forgets it
    Ok(CopyReport {
        bytes: bytes?,
        side_files,
    })
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

/// A `file:` URI for `path` with `immutable=1`: every byte outside the unreserved set and `/` is
/// percent-encoded, so `?`, `#`, `%` and names that are not UTF-8 stay part of the name.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(b) {
            uri.push(char::from(*b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// `VACUUM INTO` a temp file beside `dest`; returns its path and the guard that owns the name.
fn write_copy(
    conn: &Connection,
    source: &Path,
    dest_dir: &Path,
) -> Result<(PathBuf, tempfile::NamedTempFile)> {
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

    Ok((tmp_path, tmp))
}

/// Turns the temp copy into a rollback-journal database, fsyncs it and renames it to `dest`.
fn finish_copy(source: &Path, tmp_path: &Path, dest: &Path, dest_dir: &Path) -> Result<u64> {
    let result = (|| -> Result<u64> {
        {
            // a WAL source gives a WAL-mode copy: turn it into a plain rollback-journal database
            let out = Connection::open_with_flags(tmp_path, rw_flags())
                .map_err(|e| Error::sqlite("open the copy of", source, e))?;
            let mode: String = out
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .map_err(|e| Error::sqlite("set journal_mode of the copy of", source, e))?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(Error::Integrity {
                    path: source.to_owned(),
                    problems: vec![format!("copy stayed in journal_mode {mode}")],
                    total: 1,
                });
            }
        }
        let f = File::open(tmp_path).map_err(|e| Error::io("open", tmp_path, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", tmp_path, e))?;
        let bytes = f
            .metadata()
            .map_err(|e| Error::io("stat", tmp_path, e))?
            .len();
        std::fs::rename(tmp_path, dest).map_err(|e| Error::io("rename into place", dest, e))?;
        File::open(dest_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", dest_dir, e))?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp_path);
    }
    result
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
