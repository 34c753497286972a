//! Every journal state a snapshot can catch, copied and checked; broken files reported.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backup_sqlite::{copy_database, find_databases, Error};
use fixtures::sqlite::{self, count_rows, is_rollback_mode, Shm, COMMITTED};

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A builder of one fixture database.
type Build = fn(&Path);

/// Builds the zoo of databases in `dir`; returns the names that must copy cleanly.
fn zoo(dir: &Path) -> Vec<PathBuf> {
    let good: Vec<(PathBuf, Build)> = vec![
        (PathBuf::from("wal-in-wal-only.db"), |p| {
            sqlite::wal_uncheckpointed(p, Shm::Copied)
        }),
        (PathBuf::from("wal-no-shm.db"), |p| {
            sqlite::wal_uncheckpointed(p, Shm::Missing)
        }),
        (PathBuf::from("wal-zeroed-shm.db"), |p| {
            sqlite::wal_uncheckpointed(p, Shm::Zeroed)
        }),
        (
            PathBuf::from("rollback-hot-journal.db"),
            sqlite::rollback_hot_journal,
        ),
        (PathBuf::from("we?ird #1.db"), |p| {
            sqlite::wal_uncheckpointed(p, Shm::Missing)
        }),
        (PathBuf::from("per%cent & space.sqlite"), sqlite::clean),
        (
            PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.db")),
            sqlite::clean,
        ),
        (PathBuf::from("nested/deeper/app.sqlite3"), sqlite::clean),
    ];
    for (name, build) in &good {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        build(&p);
    }
    std::fs::write(dir.join("empty.db"), b"").unwrap();
    sqlite::truncated(&dir.join("truncated.db"), 5000);
    sqlite::header_only(&dir.join("header-only.db"));
    // the magic and nothing usable: named as damaged, never passed over
    let mut tiny = b"SQLite format 3\0\x10\x00".to_vec();
    tiny.resize(100, 0);
    std::fs::write(dir.join("tiny.db"), &tiny).unwrap();
    let mut bad_page = b"SQLite format 3\0\x03\xe8".to_vec();
    bad_page.resize(4096, 0);
    std::fs::write(dir.join("bad-page.db"), &bad_page).unwrap();
    std::fs::write(
        dir.join("notes.txt"),
        "SQLite format 3\0 is how a database starts; this is text\n".repeat(20),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.join("nested/deeper/app.sqlite3"),
        dir.join("link-to-db"),
    )
    .unwrap();
    good.into_iter().map(|(n, _)| n).collect()
}

fn broken() -> [&'static str; 2] {
    ["header-only.db", "truncated.db"]
}

#[test]
fn discovery_finds_databases_by_their_header_only() {
    let d = tempfile::tempdir().unwrap();
    let good = zoo(d.path());
    let found = find_databases(d.path());
    let mut expected: Vec<PathBuf> = good
        .into_iter()
        .chain(broken().map(PathBuf::from))
        .collect();
    expected.sort();
    assert_eq!(
        found.databases, expected,
        "side files, the symlink, the empty file, damaged headers and the text must not be found"
    );
    assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
    let damaged: Vec<String> = found
        .damaged
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.display()))
        .collect();
    assert_eq!(
        damaged,
        [
            "bad-page.db: SQLite header with an invalid page size (1000)",
            // text that starts with the magic, NUL included, is never taken for a database;
            // it is named (a damaged first page looks just like it)
            "notes.txt: SQLite header with an invalid page size (8297)",
            "tiny.db: SQLite header but only 100 bytes long (a database has at least one page of 512)",
        ]
    );
}

fn check_copies(src_dir: &Path, out_dir: &Path) {
    let good = zoo_names(src_dir);
    for name in &good {
        let dest = out_dir.join(name);
        let report = copy_database(&src_dir.join(name), &dest)
            .unwrap_or_else(|e| panic!("{}: {e}", name.display()));
        assert!(report.bytes > 0);
        assert_eq!(
            count_rows(&dest),
            (COMMITTED, 0),
            "{}: committed rows lost or uncommitted rows kept",
            name.display()
        );
        assert!(
            is_rollback_mode(&dest),
            "{} is not a rollback-journal database",
            name.display()
        );
    }
    for name in broken() {
        let dest = out_dir.join(name);
        let err = copy_database(&src_dir.join(name), &dest).unwrap_err();
        assert!(
            err.to_string().contains(name),
            "the error must name the file: {err}"
        );
        assert!(
            matches!(err, Error::Integrity { .. } | Error::Sqlite { .. }),
            "{err:?}"
        );
        assert!(
            !dest.exists(),
            "{name}: a broken database was stored as a backup"
        );
    }
    // no scratch or temp file is left behind
    let leftovers: Vec<_> = walk(out_dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().as_bytes().starts_with(b".sqlite-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn zoo_names(dir: &Path) -> Vec<PathBuf> {
    find_databases(dir)
        .databases
        .into_iter()
        .filter(|p| !broken().iter().any(|b| p == Path::new(b)))
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn every_state_copies_every_committed_row_and_no_uncommitted_one() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("snap"), d.path().join("backup"));
    std::fs::create_dir_all(&src).unwrap();
    zoo(&src);
    check_copies(&src, &out);
}

#[test]
fn mode_ro_and_immutable_lose_data_where_the_copy_does_not() {
    // the seed's way, for the record: immutable=1 reads the database file and ignores the WAL
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("vault.db");
    sqlite::wal_uncheckpointed(&db, Shm::Missing);
    let uri = format!("file:{}?immutable=1", db.display());
    let conn = rusqlite::Connection::open_with_flags(
        &uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    );
    let seen: i64 = conn
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .unwrap_or(0);
    assert!(seen < COMMITTED, "immutable=1 unexpectedly saw the WAL");
    let dest = d.path().join("copy.db");
    copy_database(&db, &dest).unwrap();
    assert_eq!(count_rows(&dest), (COMMITTED, 0));
}

#[test]
fn databases_on_a_read_only_ext4_mount_copy_and_the_copies_open_read_only() {
    assert!(
        is_root(),
        "this test loop-mounts ext4 images: run it as root (scripts/test and CI do)"
    );
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("snap.img");
    let (mnt, out, ro_out) = (
        d.path().join("mnt"),
        d.path().join("out"),
        d.path().join("ro-out"),
    );
    for p in [&mnt, &out, &ro_out] {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    run("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
    run(
        "mount",
        &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
    );
    let result = std::panic::catch_unwind(|| {
        zoo(&mnt);
        run("mount", &["-o", "remount,ro", mnt.to_str().unwrap()]);
        assert!(
            std::fs::write(mnt.join("probe"), b"x").is_err(),
            "the mount is not read-only"
        );
        check_copies(&mnt, &out);
        // the stored copies open read-only on read-only media
        run(
            "mount",
            &[
                "--bind",
                "-o",
                "ro",
                out.to_str().unwrap(),
                ro_out.to_str().unwrap(),
            ],
        );
        let r = std::panic::catch_unwind(|| {
            for name in zoo_names(&mnt) {
                assert_eq!(
                    count_rows(&ro_out.join(&name)),
                    (COMMITTED, 0),
                    "{}",
                    name.display()
                );
            }
        });
        let _ = Command::new("umount").arg(&ro_out).status();
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
