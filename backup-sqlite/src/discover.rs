//! Finding SQLite databases in a tree by their first bytes.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use backup_core::{is_side_file, is_sqlite_header, SQLITE_HEADER_PROBE, SQLITE_MIN_FILE_SIZE};
use jwalk::rayon::prelude::*;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Databases, relative to the root, sorted.
    pub databases: Vec<PathBuf>,
    /// Paths that could not be read, with why (they are reported, not fatal).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Regular files looked at.
    pub files_seen: u64,
}

/// Walks `root` (in parallel, never following symlinks, names as bytes) and returns the regular
/// files of at least 512 bytes whose first bytes are a SQLite header. `-wal`, `-shm` and
/// `-journal` files are never candidates: they are copied with their database.
pub fn find_databases(root: &Path) -> Discovery {
    let mut out = Discovery::default();
    let mut candidates = Vec::new();
    for entry in jwalk::WalkDir::new(root)
        .follow_links(false)
        .skip_hidden(false)
        .sort(false)
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                out.unreadable.push((path, e.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        out.files_seen += 1;
        if is_side_file(entry.file_name().as_bytes()) {
            continue;
        }
        candidates.push(entry.path());
    }
    let checked: Vec<(PathBuf, Result<bool, String>)> = candidates
        .into_par_iter()
        .map(|p| {
            let r = probe(&p);
            (p, r)
        })
        .collect();
    for (path, result) in checked {
        match result {
            Ok(true) => out
                .databases
                .push(path.strip_prefix(root).unwrap_or(&path).to_path_buf()),
            Ok(false) => {}
            Err(e) => out.unreadable.push((path, e)),
        }
    }
    out.databases.sort();
    out
}

/// Reads at most the header probe of `path`; files below the size floor are never opened.
fn probe(path: &Path) -> Result<bool, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() < SQLITE_MIN_FILE_SIZE {
        return Ok(false);
    }
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut header = [0u8; SQLITE_HEADER_PROBE];
    match f.read_exact(&mut header) {
        Ok(()) => Ok(is_sqlite_header(&header)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
