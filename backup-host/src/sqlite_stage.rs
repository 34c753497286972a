//! The SQLite stage: every database in a mounted snapshot, copied WAL-correctly into
//! `sqlite-backup/<week>/<namespace>/<pvc>/<path inside the volume>`. A broken one is reported
//! and stored nowhere; the others still go.
//!
//! A database whose file and side files are unchanged since an earlier checked copy is not
//! copied again: that copy is kept (a later run of the same week) or hardlinked (from the version
//! this one builds on). "Unchanged" compares size, modification time, change time and inode of
//! the database, its `-wal` and its `-journal`, as recorded beside the copies in
//! `<week>/<namespace>/.<pvc>.sqlite-sources.json` (a name no PVC folder can have). An LVM
//! snapshot keeps the origin's inodes and change times, so an unchanged database is recognised
//! from one night to the next; the `dir` backend's copies get new ones, so there every database
//! is copied, which is slower but never wrong.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use backup_core::{DatabaseCopy, Discovery};
use backup_sqlite::{copy_database, find_databases};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// Size, mtime, ctime and inode of the database and each side file present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signature(Vec<(String, u64, i64, i64, i64, i64, u64)>);

fn signature(db: &Path) -> Option<Signature> {
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::symlink_metadata(&p) {
            Ok(m) => files.push((
                suffix.to_owned(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
                m.ino(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(_) => return None,
        }
    }
    Some(Signature(files))
}

/// Where the signatures of the copies in `copies` are kept.
pub fn sources_file(copies: &Utf8Path) -> Utf8PathBuf {
    let name = copies.file_name().unwrap_or("copies");
    copies
        .parent()
        .unwrap_or(Utf8Path::new("/"))
        .join(format!(".{name}.sqlite-sources.json"))
}

/// Keys are the relative paths' bytes in hex: any byte string, no lossy collisions.
type Sources = BTreeMap<String, Signature>;

fn load(copies: &Utf8Path) -> Sources {
    crate::safe_read::read_regular(sources_file(copies))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn key(rel: &Path) -> String {
    rel.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Finds and copies the databases under `source` into `dest`; one result per database found,
/// damaged and unreadable ones included. `previous`: the copies of the version this one builds
/// on, to hardlink unchanged databases from. `found`: what a walk of `source` already found;
/// `None` walks it here.
pub fn copy_databases(
    source: &Utf8Path,
    found: Option<&Discovery>,
    dest: &Utf8Path,
    previous: Option<&Utf8Path>,
) -> Vec<DatabaseCopy> {
    let walked;
    let found = match found {
        Some(f) => f,
        None => {
            walked = find_databases(source.as_std_path());
            &walked
        }
    };
    // a run killed mid-copy leaves its scratch behind; we hold the lock, so none is in use
    backup_sqlite::remove_scratch(dest.as_std_path());
    let this_week = load(dest);
    let earlier = previous.map(load).unwrap_or_default();
    let mut sources = Sources::new();
    let mut out: Vec<DatabaseCopy> = found
        .databases
        .iter()
        .map(|rel| {
            let src = source.as_std_path().join(rel);
            let to = dest.as_std_path().join(rel);
            let k = key(rel);
            let sig = signature(&src);
            let reused = sig.as_ref().and_then(|sig| {
                if this_week.get(&k) == Some(sig) && to.is_file() {
                    return std::fs::metadata(&to).ok().map(|m| m.len());
                }
                let prev = previous?.as_std_path().join(rel);
                if earlier.get(&k) != Some(sig) || !prev.is_file() {
                    return None;
                }
                std::fs::create_dir_all(to.parent()?).ok()?;
                let _ = std::fs::remove_file(&to);
                std::fs::hard_link(&prev, &to).ok()?;
                std::fs::metadata(&to).ok().map(|m| m.len())
            });
            let (bytes, error) = match reused {
                Some(b) => (Some(b), None),
                None => match copy_database(&src, &to) {
                    Ok(r) => (Some(r.bytes), None),
                    Err(e) => (None, Some(e.to_string())),
                },
            };
            if let (None, Some(sig)) = (&error, sig) {
                sources.insert(k, sig);
            }
            DatabaseCopy {
                path: rel.to_string_lossy().into_owned(),
                bytes,
                error,
                reused: reused.is_some(),
            }
        })
        .collect();
    if !sources.is_empty() {
        let json = serde_json::to_vec(&sources).unwrap_or_default();
        if let Err(e) = crate::fsutil::write_atomic(&sources_file(dest), &json) {
            // not fatal: the next run copies again instead of linking
            out.push(DatabaseCopy {
                path: sources_file(dest).to_string(),
                bytes: None,
                error: Some(format!("could not record the copied databases: {e}")),
                reused: false,
            });
        }
    }
    out.extend(found.damaged.iter().map(|(path, why)| DatabaseCopy {
        path: path.to_string_lossy().into_owned(),
        bytes: None,
        error: Some(format!("not a usable database: {why}")),
        reused: false,
    }));
    out.extend(found.unreadable.iter().map(|(path, why)| DatabaseCopy {
        path: path.to_string_lossy().into_owned(),
        bytes: None,
        error: Some(format!(
            "could not be read while looking for databases: {why}"
        )),
        reused: false,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn unchanged_databases_are_linked_changed_ones_copied() {
        let d = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(d.path()).unwrap();
        let src = root.join("vol");
        std::fs::create_dir_all(src.join("app")).unwrap();
        fixtures::sqlite::clean(src.join("app/a.db").as_std_path());
        fixtures::sqlite::clean(src.join("app/b.db").as_std_path());
        let w1 = root.join("sqlite-backup/2026-02/ns/pvc");
        let w2 = root.join("sqlite-backup/2026-03/ns/pvc");
        let first = copy_databases(&src, None, &w1, None);
        assert!(
            first.iter().all(|c| c.error.is_none() && !c.reused),
            "{first:?}"
        );
        // a later run of the same week: both kept as they are
        let again = copy_databases(&src, None, &w1, None);
        assert!(again.iter().all(|c| c.reused), "{again:?}");
        // b changes; next week: a is linked from last week, b copied anew
        fixtures::sqlite::clean(src.join("app/b.db").as_std_path()); // rewritten: a new inode
        let second = copy_databases(&src, None, &w2, Some(&w1));
        let by = |p: &str| second.iter().find(|c| c.path.ends_with(p)).unwrap().clone();
        assert!(by("a.db").reused && !by("b.db").reused, "{second:?}");
        let ino = |p: &Utf8Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&w1.join("app/a.db")), ino(&w2.join("app/a.db")));
        assert_ne!(ino(&w1.join("app/b.db")), ino(&w2.join("app/b.db")));
        // the record never sits among the copies
        assert!(root
            .join("sqlite-backup/2026-03/ns/.pvc.sqlite-sources.json")
            .is_file());
        assert!(!w2.join(".pvc.sqlite-sources.json").exists());
    }
}
