//! The real rsync: hardlinks against the link-dest, a missing link-dest refused, exit codes.

use std::os::unix::fs::MetadataExt;

use backup_core::{FileSync, Invocation, Output, Runner, SourceKind, SyncRequest};
use backup_rsync::RsyncFileSync;
use camino::{Utf8Path, Utf8PathBuf};

struct StdRunner;

impl Runner for StdRunner {
    fn run(&self, inv: &Invocation) -> backup_core::Result<Output> {
        let out = std::process::Command::new(&inv.program)
            .args(&inv.args)
            .output()
            .map_err(|e| backup_core::Error::io(format!("start {}", inv.program), e))?;
        Ok(Output {
            status: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn require_rsync() {
    let ok = std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "rsync is not installed: run scripts/test, which installs it"
    );
}

fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
    (d, p)
}

fn write(p: &Utf8Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn unchanged_files_are_hardlinked_against_the_link_dest() {
    require_rsync();
    let (_d, root) = tmp();
    write(&root.join("src/a.txt"), "a");
    write(&root.join("src/dir/b.txt"), "b");
    let sync = RsyncFileSync::new(&StdRunner, "rsync");
    let first = sync
        .sync(&SyncRequest {
            source: root.join("src"),
            dest: root.join("w1"),
            link_dest: None,
            source_kind: SourceKind::Snapshot,
            files_from: None,
            checksum: false,
        })
        .unwrap();
    assert_eq!((first.stats.files, first.stats.transferred_files), (2, 2));
    write(&root.join("src/a.txt"), "changed");
    let second = sync
        .sync(&SyncRequest {
            source: root.join("src"),
            dest: root.join("w2"),
            link_dest: Some(root.join("w1")),
            source_kind: SourceKind::Snapshot,
            files_from: None,
            checksum: false,
        })
        .unwrap();
    assert_eq!(second.stats.transferred_files, 1);
    let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
    assert_eq!(
        ino("w1/dir/b.txt"),
        ino("w2/dir/b.txt"),
        "unchanged file not hardlinked"
    );
    assert_ne!(ino("w1/a.txt"), ino("w2/a.txt"));
    assert_eq!(
        std::fs::read_to_string(root.join("w1/a.txt")).unwrap(),
        "a",
        "older week altered"
    );
}

#[test]
fn a_missing_link_dest_is_refused_before_rsync_runs() {
    require_rsync();
    let (_d, root) = tmp();
    write(&root.join("src/a.txt"), "a");
    let err = RsyncFileSync::new(&StdRunner, "rsync")
        .sync(&SyncRequest {
            source: root.join("src"),
            dest: root.join("w2"),
            link_dest: Some(root.join("w1")),
            source_kind: SourceKind::Snapshot,
            files_from: None,
            checksum: false,
        })
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!root.join("w2").exists(), "rsync ran anyway");
}

#[test]
fn a_missing_source_fails_with_rsyncs_words() {
    require_rsync();
    let (_d, root) = tmp();
    let err = RsyncFileSync::new(&StdRunner, "rsync")
        .sync(&SyncRequest {
            source: root.join("nope"),
            dest: root.join("w"),
            link_dest: None,
            source_kind: SourceKind::Live,
            files_from: None,
            checksum: false,
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exit status 23") && err.contains("partial transfer"),
        "{err}"
    );
}

#[test]
fn odd_names_survive() {
    require_rsync();
    let (_d, root) = tmp();
    for name in ["-rf", "a:b", "new\nline", "sp ace", "--delete"] {
        write(&root.join("src").join(name), name);
    }
    RsyncFileSync::new(&StdRunner, "rsync")
        .sync(&SyncRequest {
            source: root.join("src"),
            dest: root.join("-w"),
            link_dest: None,
            source_kind: SourceKind::Snapshot,
            files_from: None,
            checksum: false,
        })
        .unwrap();
    for name in ["-rf", "a:b", "new\nline", "sp ace", "--delete"] {
        assert_eq!(
            std::fs::read_to_string(root.join("-w").join(name)).unwrap(),
            name
        );
    }
}

/// Blocks (512 bytes each) a file takes on disk.
fn blocks(p: &Utf8Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks()
}

#[test]
fn sparse_files_keep_their_holes_with_hardlinks_and_link_dest() {
    require_rsync();
    let (_d, root) = tmp();
    std::fs::create_dir_all(root.join("src")).unwrap();
    // 1 GiB with 4 KiB of data at the start and at the end
    let f = std::fs::File::create(root.join("src/disk.img")).unwrap();
    f.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 4096], 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 4096], (1 << 30) - 4096).unwrap();
    drop(f);
    std::fs::hard_link(root.join("src/disk.img"), root.join("src/twin.img")).unwrap();
    let sync = RsyncFileSync::new(&StdRunner, "rsync");
    let req = |dest: &str, link: Option<&str>| SyncRequest {
        source: root.join("src"),
        dest: root.join(dest),
        link_dest: link.map(|l| root.join(l)),
        source_kind: SourceKind::Snapshot,
        files_from: None,
        checksum: false,
    };
    sync.sync(&req("w1", None)).unwrap();
    // a change makes the next week copy the file again rather than link it
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("src/disk.img"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[9u8; 4096], 1 << 20).unwrap();
    drop(f);
    sync.sync(&req("w2", Some("w1"))).unwrap();
    for week in ["w1", "w2"] {
        let img = root.join(week).join("disk.img");
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 1 << 30);
        // a hole-less copy takes 2,097,152 blocks; allow generous file system overhead
        assert!(
            blocks(&img) < 1024,
            "{week}/disk.img takes {} blocks: holes were filled",
            blocks(&img)
        );
        assert_eq!(
            std::fs::metadata(&img).unwrap().ino(),
            std::fs::metadata(root.join(week).join("twin.img"))
                .unwrap()
                .ino(),
            "hardlink lost in {week}"
        );
    }
}
