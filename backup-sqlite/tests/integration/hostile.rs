//! What a tenant can put next to a database: FIFOs and symlinks named like side files, a FIFO or
//! a symlink as the database. None of them may block a copy or be followed out of the volume.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use backup_sqlite::{copy_database, Error};
use fixtures::sqlite::{self, Shm};

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", p.display());
}

/// `copy_database` in a thread: a hang fails the test instead of blocking it forever.
fn copy_within_10s(src: &Path, dest: &Path) -> backup_sqlite::Result<backup_sqlite::CopyReport> {
    let (tx, rx) = mpsc::channel();
    let (src, dest) = (src.to_owned(), dest.to_owned());
    std::thread::spawn(move || {
        let _ = tx.send(copy_database(&src, &dest));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("copy_database blocked for 10 s")
}

#[test]
fn a_fifo_named_like_a_side_file_fails_that_database_at_once() {
    let d = tempfile::tempdir().unwrap();
    for suffix in ["-wal", "-journal"] {
        let src = d.path().join(format!("app{suffix}.db"));
        sqlite::clean(&src);
        let mut side = src.clone().into_os_string();
        side.push(suffix);
        mkfifo(Path::new(&side));
        let dest = d.path().join("out").join(format!("app{suffix}.db"));
        let err = copy_within_10s(&src, &dest).unwrap_err();
        assert!(matches!(err, Error::NotRegular { .. }), "{err}");
        assert!(err.to_string().contains("a FIFO"), "{err}");
        assert!(!dest.exists());
    }
}

#[test]
fn a_symlinked_side_file_is_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("x.db");
    sqlite::wal_uncheckpointed(&src, Shm::Missing);
    // the tenant's WAL is replaced by a link to a host file
    let wal = d.path().join("x.db-wal");
    std::fs::remove_file(&wal).unwrap();
    std::fs::write(d.path().join("secret"), "host secret").unwrap();
    std::os::unix::fs::symlink(d.path().join("secret"), &wal).unwrap();
    let dest = d.path().join("out/x.db");
    let err = copy_within_10s(&src, &dest).unwrap_err();
    assert!(err.to_string().contains("a symlink"), "{err}");
    assert!(!dest.exists());
    // nothing of the host file reached the destination folder (scratch included)
    for e in walk(&d.path().join("out")) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"host secret"),
            "{} holds the host file",
            e.display()
        );
    }
}

#[test]
fn the_database_itself_must_be_a_regular_file() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe.db");
    mkfifo(&fifo);
    let err = copy_within_10s(&fifo, &d.path().join("out/pipe.db")).unwrap_err();
    assert!(err.to_string().contains("a FIFO"), "{err}");
    let real = d.path().join("real.db");
    sqlite::clean(&real);
    let link = d.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = copy_within_10s(&link, &d.path().join("out/link.db")).unwrap_err();
    assert!(err.to_string().contains("a symlink"), "{err}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
