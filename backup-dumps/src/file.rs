//! Dump files as `backup-dump` names them (`<name>-<YYYYMMDD-HHMMSS>[_NN].<ext>.gz`), found in a
//! folder, and read: opened as regular files only, decompressed as they are read.

use std::io::Read;

use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use backup_host::error::{Error, Result};

/// One dump file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpFile {
    /// Its path.
    pub path: Utf8PathBuf,
    /// The dump's name (`postgresql`).
    pub name: String,
    /// When it was taken (the stamp in its name, UTC).
    pub stamp: DateTime<Utc>,
    /// The extension before `.gz` (`sql`, `rdb`, `db`, `snap`).
    pub ext: String,
    /// Its size on disk (compressed).
    pub bytes: u64,
}

impl DumpFile {
    /// The stamp as the name has it and `--at` takes it: `20260220-000000` (with `_02` … when
    /// the name has one).
    pub fn stamp_text(&self) -> String {
        let file = self.path.file_name().unwrap_or("");
        file.get(self.name.len() + 1..)
            .map(|rest| rest.split('.').next().unwrap_or(rest).to_owned())
            .unwrap_or_default()
    }
}

/// `<name>-<YYYYMMDD-HHMMSS>` followed by `.` (a dump file) or nothing (a dated folder): the
/// name and the stamp.
pub fn parse_dump_name(file: &str) -> Option<(String, DateTime<Utc>)> {
    parse(file).map(|(name, at, _)| (name, at))
}

/// The name, the stamp and what follows it (`.sql.gz`, or empty for a folder).
fn parse(file: &str) -> Option<(String, DateTime<Utc>, &str)> {
    let b = file.as_bytes();
    // the stamp is 15 bytes after a `-`; look for the last place it fits
    for i in (1..b.len()).rev() {
        if b[i - 1] != b'-' || i + 15 > b.len() {
            continue;
        }
        // byte positions: a name with multi-byte characters is cut only where it may be
        let (Some(stamp), Some(mut after)) = (file.get(i..i + 15), file.get(i + 15..)) else {
            continue;
        };
        // a second dump in the same second: `_02` … `_99`
        if let Some(n) = after.strip_prefix('_').and_then(|r| r.get(..2)) {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                after = &after[3..];
            }
        }
        if !(after.is_empty() || after.starts_with('.')) {
            continue;
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S") {
            return Some((file[..i - 1].to_owned(), t.and_utc(), after));
        }
    }
    None
}

/// The gzip dumps in `folder` (regular files named as `backup-dump` names them; temp files,
/// folders and anything else are left out), oldest first.
///
/// # Errors
/// The folder cannot be read.
pub fn list_dumps(folder: &Utf8Path) -> Result<Vec<DumpFile>> {
    let entries = folder
        .read_dir_utf8()
        .map_err(|e| Error::io("read the dump folder", folder, e))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name();
        if file.starts_with('.') {
            continue;
        }
        let Some((name, stamp, rest)) = parse(file) else {
            continue;
        };
        let Some(ext) = rest
            .strip_prefix('.')
            .and_then(|r| r.strip_suffix(".gz"))
            .filter(|x| !x.is_empty())
        else {
            continue;
        };
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(DumpFile {
            path: e.path().to_owned(),
            name,
            stamp,
            ext: ext.to_owned(),
            bytes: meta.len(),
        });
    }
    out.sort_by(|a, b| (a.stamp, a.path.as_str()).cmp(&(b.stamp, b.path.as_str())));
    Ok(out)
}

/// Opens `path` (a regular file, not through a symlink) and decompresses it as it is read.
///
/// # Errors
/// The file cannot be opened, or is not a regular file.
pub fn open(path: &Utf8Path) -> Result<flate2::read::MultiGzDecoder<std::fs::File>> {
    let f = backup_host::safe_read::open_regular(path)
        .map_err(|e| Error::io("open the dump", path, e))?;
    Ok(flate2::read::MultiGzDecoder::new(f))
}

/// How much of each end [`read_ends`] keeps.
pub const ENDS: usize = 64 * 1024;

/// Reads the whole decompressed content of `path`: its first and last [`ENDS`] bytes and its
/// size.
///
/// # Errors
/// The file cannot be opened, or its gzip stream is damaged or cut short (named).
pub fn read_ends(path: &Utf8Path) -> Result<(Vec<u8>, Vec<u8>, u64)> {
    let mut r = open(path)?;
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Refused(format!(
                    "{path}: the gzip stream does not read back whole after {}: {e}",
                    backup_host::human::bytes(size)
                )))
            }
        };
        size += n as u64;
        if head.len() < ENDS {
            let take = (ENDS - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * ENDS {
            tail.drain(..tail.len() - ENDS);
        }
    }
    if tail.len() > ENDS {
        tail.drain(..tail.len() - ENDS);
    }
    Ok((head, tail, size))
}

/// Decompresses `dump` into a new file `dest` (mode 0600: a dump holds secrets; owned by
/// `owner` when given), for the tools that read a file, not a stream (etcd, Vault, Redis).
///
/// # Errors
/// The dump cannot be read whole, or `dest` exists or cannot be written.
pub fn decompress_to(dump: &Utf8Path, dest: &Utf8Path, owner: Option<(u32, u32)>) -> Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut r = open(dump)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::io("create", dest, e))?;
    // through the descriptor: the folder may be another user's, who could swap the name
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
            .map_err(|e| Error::io("change the owner of", dest, e))?;
    }
    let n = std::io::copy(&mut r, &mut out).map_err(|e| {
        Error::Refused(format!(
            "{dump}: the gzip stream does not read back whole: {e}"
        ))
    })?;
    out.sync_all().map_err(|e| Error::io("write", dest, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_are_found_by_their_stamp() {
        let p = |f| parse(f).map(|(n, t, rest)| (n, t.format("%F %T").to_string(), rest));
        assert_eq!(
            p("postgresql-20260301-000000.sql.gz"),
            Some((
                "postgresql".to_owned(),
                "2026-03-01 00:00:00".to_owned(),
                ".sql.gz"
            ))
        );
        assert_eq!(
            p("postgresql-20260301-000000_02.sql.gz").map(|x| x.0),
            Some("postgresql".to_owned())
        );
        assert_eq!(
            p("pg-old-2-20260301-010203.dump.gz").map(|x| x.0),
            Some("pg-old-2".to_owned())
        );
        assert_eq!(p("vaultwarden-20260301-060000").map(|x| x.2), Some(""));
        assert_eq!(p("notes.txt"), None);
        assert_eq!(p("x-20261301-000000.gz"), None);
        // cut inside a multi-byte character: no panic
        assert_eq!(p("x-éééééééé.txt"), None);
        assert_eq!(
            p("é-20260301-000000.sql.gz").map(|x| x.0),
            Some("é".to_owned())
        );
    }
}
