//! What the in-crate tests share: a backup root in a temp folder holding one complete version
//! whose copy is real files and whose record is made from them as daily-backup makes it.

use backup_core::testing::{FakeStore, Transcript};
use backup_core::{BackupStore, ContentHash, EntryKind, IsoWeek, Series, StoreFile};
use camino::Utf8PathBuf;
use chrono::{TimeZone, Utc};

/// One complete version of `vaultwarden/data` (week 2026-10): `attachments/a.pdf` and
/// `db.sqlite3`, its marker and its record. Returns the temp folder (keep it), the store, the
/// week and the version's copy.
pub(crate) fn one_version() -> (tempfile::TempDir, FakeStore, IsoWeek, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().join("backup")).unwrap();
    let store = FakeStore::new(&root, &Transcript::default());
    let week: IsoWeek = "2026-10".parse().unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 5, 3, 0, 0).unwrap();
    store.add_version(Series::Pvc, week, "vaultwarden", "data", Some(at));
    // the marker says when it was completed: a verify judges only a version that stayed so
    let marker = StoreFile::Marker(week, "vaultwarden", "data");
    store
        .write(marker, backup_core::format_marker(at).as_bytes())
        .unwrap();
    let copy = store.root().pvc_copy(week, "vaultwarden", "data");
    std::fs::create_dir_all(copy.join("attachments")).unwrap();
    std::fs::write(copy.join("attachments/a.pdf"), b"%PDF-1.7 invoice").unwrap();
    std::fs::write(copy.join("db.sqlite3"), vec![7u8; 4096]).unwrap();
    let mut rec = backup_host::tree::walk_entries(copy.as_std_path()).unwrap();
    for e in rec.iter_mut().filter(|e| e.kind == EntryKind::File) {
        let path = copy
            .as_std_path()
            .join(String::from_utf8(e.path.clone()).unwrap());
        e.digest = backup_host::tree::digest_of(&path, ContentHash::Xxh3).unwrap();
        e.digest_kind = ContentHash::Xxh3;
    }
    let file = StoreFile::Record(week, "vaultwarden", "data");
    store
        .write(file, &backup_core::encode_file_record(&rec))
        .unwrap();
    (dir, store, week, copy)
}

/// Rewrites `path` with `bytes` and puts its mtime back: the change a size-and-mtime check
/// cannot see.
pub(crate) fn rewrite_keeping_mtime(path: &camino::Utf8Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}
