//! Reading a tree into entries, as a per-file record holds them: one parallel walk that
//! `stat`s every entry (and reads file headers to find SQLite databases), and the md5 of a
//! file's content. daily-backup builds its records with it; verify, restore and drill compare a
//! tree with a record through it.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use backup_core::{is_side_file, ContentHash, Discovery, EntryKind, FileEntry, SqliteHeader};

use crate::error::{Error, Result};

/// An I/O error on `path` while `action`, keeping the OS error as its source.
pub fn io(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path.to_string_lossy().into_owned(), e)
}

/// The md5 of a path's extended attributes (ACLs included), zeros when there are none.
pub fn xattr_digest(abs: &Path) -> [u8; 16] {
    let xattrs = crate::linkguard::xattrs(abs);
    if xattrs.is_empty() {
        return [0; 16];
    }
    let mut flat = Vec::new();
    for (k, v) in &xattrs {
        flat.extend_from_slice(&(k.len() as u32).to_le_bytes());
        flat.extend_from_slice(k);
        flat.extend_from_slice(&(v.len() as u32).to_le_bytes());
        flat.extend_from_slice(v);
    }
    md5::compute(&flat).0
}

fn kind_of(t: rustix::fs::FileType) -> EntryKind {
    use rustix::fs::FileType;
    match t {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Special,
    }
}

/// The entry of `rel` from its `stat`; its extended attributes' digest is `xattr_md5`.
pub(crate) fn entry_from(
    rel: &[u8],
    st: &rustix::fs::Stat,
    link_target: Vec<u8>,
    xattr_md5: [u8; 16],
) -> FileEntry {
    let kind = kind_of(rustix::fs::FileType::from_raw_mode(st.st_mode));
    FileEntry {
        path: rel.to_vec(),
        kind,
        size: if kind == EntryKind::File {
            st.st_size as u64
        } else {
            0
        },
        mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
        ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
        inode: st.st_ino,
        nlink: st.st_nlink,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        link_target,
        xattr_md5,
        digest: [0; 16],
        digest_kind: ContentHash::Xxh3,
        sqlite: None,
    }
}

/// What one walk of a snapshot produced.
#[derive(Debug, Default)]
pub struct Walk {
    /// Every entry, `.` (the root) first, sorted by path; `sqlite` filled in for files.
    pub entries: Vec<FileEntry>,
    /// The SQLite databases among them (and damaged or unreadable headers), for the SQLite stage.
    pub databases: Discovery,
    /// How many file headers were read (the others were known from the base record).
    pub headers_read: u64,
}

/// Walks `root` once (the workspace's parallel walker): every entry `stat`ed, and the header of
/// every file read unless `base` holds it unchanged and known not to be a database.
///
/// # Errors
/// When a folder cannot be read, an entry `stat`ed or a symlink read: a copy from a partial
/// walk could miss a change.
pub fn walk(root: &Path, base: &BTreeMap<Vec<u8>, FileEntry>, trust_ctime: bool) -> Result<Walk> {
    walk_with(root, base, trust_ctime, true)
}

/// Every entry under `root` (`.` first, sorted by path), as a record would hold it but without
/// md5s and without reading any file: what a verify compares with the record.
///
/// # Errors
/// As [`walk`].
pub fn walk_entries(root: &Path) -> Result<Vec<FileEntry>> {
    Ok(walk_with(root, &BTreeMap::new(), false, false)?.entries)
}

fn walk_with(
    root: &Path,
    base: &BTreeMap<Vec<u8>, FileEntry>,
    trust_ctime: bool,
    classify_files: bool,
) -> Result<Walk> {
    let root_entry = {
        let m = std::fs::symlink_metadata(root).map_err(|e| io("stat", root, e))?;
        let st = rustix::fs::lstat(root).map_err(|e| io("stat", root, e.into()))?;
        debug_assert!(m.is_dir());
        entry_from(b".", &st, Vec::new(), xattr_digest(root))
    };
    let walked = backup_walk::walk(
        root,
        backup_walk::Options {
            stat: true,
            workers: 0,
        },
        || (Walk::default(), None::<Error>),
        |(out, failed): &mut (Walk, Option<Error>), v: &backup_walk::Visit<'_>| {
            let Some(st) = v.stat else { return };
            if failed.is_some() {
                return;
            }
            let abs = root.join(v.rel);
            let target = if v.kind == rustix::fs::FileType::Symlink {
                match rustix::fs::readlinkat(v.dir, v.name, Vec::new()) {
                    Ok(t) => t.into_bytes(),
                    Err(e) => {
                        *failed = Some(io("read link", &abs, e.into()));
                        return;
                    }
                }
            } else {
                Vec::new()
            };
            let mut e = entry_from(v.rel.as_os_str().as_bytes(), st, target, [0; 16]);
            // where inodes and change times are kept (LVM), an entry whose inode and ctime are
            // the record's has its extended attributes too (setting one moves the ctime): no
            // listing; else they are listed and digested
            e.xattr_md5 = match base.get(&e.path) {
                Some(b) if trust_ctime && b.inode == e.inode && b.ctime_ns == e.ctime_ns => {
                    b.xattr_md5
                }
                _ => xattr_digest(&abs),
            };
            if e.kind == EntryKind::File && classify_files {
                e.sqlite = classify(v, &e, base.get(&e.path), trust_ctime, out);
            }
            out.entries.push(e);
        },
    );
    if let Some((path, why)) = walked.first_unreadable() {
        return Err(io("list", path, std::io::Error::other(why.clone())));
    }
    let mut all = Walk {
        entries: vec![root_entry],
        ..Walk::default()
    };
    for (mut part, failed) in walked.states {
        if let Some(e) = failed {
            return Err(e);
        }
        all.entries.append(&mut part.entries);
        all.databases
            .databases
            .append(&mut part.databases.databases);
        all.databases.damaged.append(&mut part.databases.damaged);
        all.databases
            .unreadable
            .append(&mut part.databases.unreadable);
        all.databases.files_seen += part.databases.files_seen;
        all.headers_read += part.headers_read;
    }
    all.entries.sort_by(|a, b| a.path.cmp(&b.path));
    all.databases.databases.sort();
    all.databases.damaged.sort();
    all.databases.unreadable.sort();
    Ok(all)
}

/// Whether file `e` is a SQLite database: known from `base` when it is unchanged there and
/// not a database, else its header is read (side files never are candidates).
fn classify(
    v: &backup_walk::Visit<'_>,
    e: &FileEntry,
    base: Option<&FileEntry>,
    trust_ctime: bool,
    out: &mut Walk,
) -> Option<bool> {
    out.databases.files_seen += 1;
    if is_side_file(v.name.to_bytes()) {
        return Some(false);
    }
    if base.is_some_and(|b| b.sqlite == Some(false) && b.unchanged(e, trust_ctime)) {
        return Some(false);
    }
    out.headers_read += 1;
    match backup_sqlite::probe_header(v.dir, v.name, Some(e.size)) {
        Ok(SqliteHeader::Database) => {
            out.databases.databases.push(v.rel.to_path_buf());
            Some(true)
        }
        Ok(SqliteHeader::NotSqlite) => Some(false),
        Ok(SqliteHeader::Damaged(why)) => {
            out.databases.damaged.push((v.rel.to_path_buf(), why));
            None
        }
        Err(err) => {
            out.databases
                .unreadable
                .push((v.rel.to_path_buf(), err.to_string()));
            None
        }
    }
}

/// The `kind` digest of a file's content, read in 256 KiB pieces into one buffer per thread
/// (a fresh megabyte per file cost more than hashing a small file).
pub fn digest_of(path: &Path, kind: ContentHash) -> Result<[u8; 16]> {
    use std::io::Read;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 << 10]);
    }
    let mut f = std::fs::File::open(path).map_err(|e| io("read", path, e))?;
    let mut h = kind.hasher();
    BUF.with_borrow_mut(|buf| loop {
        let n = f.read(buf).map_err(|e| io("read", path, e))?;
        if n == 0 {
            return Ok::<(), Error>(());
        }
        h.update(&buf[..n]);
        crate::progress::add(0, n as u64);
    })?;
    crate::progress::add(1, 0);
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xattr_of(entries: &[FileEntry], path: &[u8]) -> [u8; 16] {
        entries.iter().find(|e| e.path == path).unwrap().xattr_md5
    }

    /// Where change times are trusted, an entry whose inode and ctime are the record's keeps the
    /// record's xattr digest without a listing; a changed attribute moves the ctime and is seen.
    #[test]
    fn an_xattr_change_is_seen_through_the_ctime_it_moves() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let set = |v: &[u8]| {
            rustix::fs::setxattr(&f, "user.a", v, rustix::fs::XattrFlags::empty()).unwrap();
        };
        set(b"1");
        let first = walk(d.path(), &BTreeMap::new(), true).unwrap().entries;
        assert_ne!(xattr_of(&first, b"f"), [0; 16]);
        // a record that says otherwise is taken as it is: the listing was skipped
        let mut record: BTreeMap<Vec<u8>, FileEntry> =
            first.iter().map(|e| (e.path.clone(), e.clone())).collect();
        record.get_mut(b"f".as_slice()).unwrap().xattr_md5 = [7; 16];
        let trusted = walk(d.path(), &record, true).unwrap().entries;
        assert_eq!(xattr_of(&trusted, b"f"), [7; 16]);
        // without trusted change times every entry is listed
        let listed = walk(d.path(), &record, false).unwrap().entries;
        assert_eq!(xattr_of(&listed, b"f"), xattr_of(&first, b"f"));
        // a new value moves the ctime: listed again, whatever the record says
        std::thread::sleep(std::time::Duration::from_millis(20));
        set(b"2");
        let changed = walk(d.path(), &record, true).unwrap().entries;
        assert_ne!(xattr_of(&changed, b"f"), [7; 16]);
        assert_ne!(xattr_of(&changed, b"f"), xattr_of(&first, b"f"));
    }
}
