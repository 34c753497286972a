//! Finding SQLite databases in a tree by their first bytes.
//!
//! The walk is the workspace's one walker (`backup-walk`): files are `stat`ed and opened
//! relative to their folder's descriptor (no path is resolved from the root per file). Only
//! regular files of at least 16 bytes (the magic) are opened, and at most 18 bytes are read from
//! each. Symlinks are never followed; names are bytes.

use std::ffi::CStr;
use std::path::Path;

use backup_core::{
    classify_sqlite_header, is_side_file, Discovery, SqliteHeader, SQLITE_HEADER_PROBE,
    SQLITE_MAGIC,
};
use rustix::fd::AsFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// Walks `root` and returns the regular files whose first bytes are a SQLite header (with a valid
/// page size, at least one page long); files with the magic that fail either test are returned
/// as damaged. `-wal`, `-shm` and `-journal` files are never candidates: they are copied with their
/// database.
pub fn find_databases(root: &Path) -> Discovery {
    let walked = backup_walk::walk(
        root,
        backup_walk::Options::default(),
        Discovery::default,
        |out: &mut Discovery, v: &backup_walk::Visit<'_>| {
            if v.kind != FileType::RegularFile {
                return; // folders are walked, symlinks and devices never followed or read
            }
            out.files_seen += 1;
            if is_side_file(v.name.to_bytes()) {
                return;
            }
            let size = v.stat.map(|st| st.st_size as u64);
            match probe_header(v.dir, v.name, size) {
                Ok(SqliteHeader::Database) => out.databases.push(v.rel.to_path_buf()),
                Ok(SqliteHeader::Damaged(why)) => out.damaged.push((v.rel.to_path_buf(), why)),
                Ok(SqliteHeader::NotSqlite) => {}
                Err(e) => out.unreadable.push((root.join(v.rel), e.to_string())),
            }
        },
    );
    let mut out = Discovery {
        unreadable: walked.unreadable,
        ..Discovery::default()
    };
    for mut part in walked.states {
        out.databases.append(&mut part.databases);
        out.unreadable.append(&mut part.unreadable);
        out.damaged.append(&mut part.damaged);
        out.files_seen += part.files_seen;
    }
    out.databases.sort();
    out.unreadable.sort();
    out.damaged.sort();
    out
}

/// Reads at most the header probe of `name` in `dir`; files shorter than the magic are never
/// opened (one with the magic but shorter than a page is a damaged database, and is named).
///
/// # Errors
/// When the file cannot be `stat`ed, opened or read.
pub fn probe_header(
    dir: impl AsFd,
    name: &CStr,
    size: Option<u64>,
) -> rustix::io::Result<SqliteHeader> {
    let size = match size {
        Some(s) => s,
        None => rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_size as u64,
    };
    if size < SQLITE_MAGIC.len() as u64 {
        return Ok(SqliteHeader::NotSqlite);
    }
    let fd = rustix::fs::openat(&dir, name, FILE_FLAGS, Mode::empty())?;
    let mut header = [0u8; SQLITE_HEADER_PROBE];
    let mut filled = 0;
    while filled < header.len() {
        match rustix::io::read(&fd, &mut header[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(classify_sqlite_header(&header[..filled], size))
}
