//! nfs-change-tracker and offsite-sync-backup with real inotify, real rsync and a real sshd on
//! loopback: bursts of odd names arrive whole, an overflow or a restart costs a full pass of the
//! tree concerned, the guards refuse before anything offsite is lost, hardlinks stay hardlinks.

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::{is_root, text, write};
use crate::pfsense_real::{keygen, sshd};

const TRACKER: &str = env!("CARGO_BIN_EXE_nfs-change-tracker");
const OFFSITE: &str = env!("CARGO_BIN_EXE_offsite-sync-backup");

struct Site {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    tracker: Option<Child>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop_tracker();
    }
}

impl Site {
    /// Two trees (`a`, `b`), a backup root with a pvc-data folder, a local destination.
    fn new(offsite_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        for d in ["a", "b", "backup/pvc-data", "nas", "metrics"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        write(&root.join("a/start.txt"), "a\n");
        write(&root.join("b/start.txt"), "b\n");
        std::fs::write(
            root.join("config.toml"),
            format!(
                "backup-root = \"{root}/backup\"\n[snapshots]\nlock-file = \"{root}/lock/snapshots.lock\"\n\
                 [offsite]\ndestination = \"{root}/nas\"\nmonthly-full-pass = false\ndaily-wait-seconds = 5\n{offsite_extra}\n\
                 [[offsite.tree]]\nsource = \"{root}/a\"\nname = \"a\"\n[[offsite.tree]]\nsource = \"{root}/b\"\nname = \"b\"\n\
                 [metrics]\ntextfile-dir = \"{root}/metrics\"\n"
            ),
        )
        .unwrap();
        Self {
            _dir: dir,
            root,
            tracker: None,
        }
    }

    fn config(&self) -> Utf8PathBuf {
        self.root.join("config.toml")
    }

    fn start_tracker(&mut self) {
        let child = Command::new(TRACKER)
            .arg("--config")
            .arg(self.config())
            .args(["--metrics-every", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.tracker = Some(child);
        // ready when both trees are marked for a full pass (its first act)
        let deadline = Instant::now() + Duration::from_secs(30);
        while !["a", "b"].iter().all(|t| self.marker(t).exists()) {
            assert!(Instant::now() < deadline, "the tracker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300)); // watches added after the marker
    }

    fn stop_tracker(&mut self) {
        if let Some(mut c) = self.tracker.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "the tracker ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn marker(&self, tree: &str) -> Utf8PathBuf {
        self.root
            .join(format!("backup/.nfs-changes.log.{tree}.full-pass"))
    }

    /// Waits until the tracker has caught up: its logs stopped growing for 700 ms (it batches
    /// writes for up to 200 ms; a loaded machine may be slower).
    fn settle(&self) {
        let size = || -> u64 {
            ["a", "b"]
                .iter()
                .map(|t| {
                    std::fs::metadata(self.root.join(format!("backup/.nfs-changes.log.{t}")))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = size();
        let mut stable_since = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(700) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = size();
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
        }
    }

    fn sync(&self, args: &[&str]) -> Output {
        self.settle();
        Command::new(OFFSITE)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }

    fn sync_ok(&self) -> String {
        let out = self.sync(&[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&out)
    }
}

/// The line of `tree` in a sync's output.
fn line<'a>(out: &'a str, tree: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(tree))
        .unwrap_or_else(|| panic!("no line for {tree}: {out}"))
}

/// Every entry under `dir`: (relative path, kind, mode, uid, gid, size, content).
fn tree_listing(dir: &Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.as_std_path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                format!("{:?}", std::fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.push(format!(
                "{:?} {:o} {}:{} {} {content}",
                p.strip_prefix(dir).unwrap(),
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.len() }
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn require_root() {
    assert!(
        is_root(),
        "the offsite tests chown files and start sshd: run scripts/test as root (CI does)"
    );
}

#[test]
fn a_burst_of_odd_names_arrives_whole_and_later_records_wait_for_the_next_sync() {
    require_root();
    let mut site = Site::new("");
    let a = site.root.join("a");
    write(&a.join("modify.txt"), "v1\n");
    write(&a.join("delete.txt"), "gone soon\n");
    write(&a.join("rename.txt"), "moving\n");
    write(&a.join("olddir/inner.txt"), "inner\n");
    site.start_tracker();
    let first = site.sync_ok();
    assert!(line(&first, "a").contains("full pass"), "{first}");

    // 16 writers, each 60 nested new folders with a file in each
    std::thread::scope(|s| {
        for w in 0..16 {
            let a = a.clone();
            s.spawn(move || {
                let mut dir = a.join(format!("w{w}"));
                for depth in 0..60 {
                    dir = dir.join(format!("d{depth}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(dir.join("f"), format!("{w}/{depth}")).unwrap();
                }
            });
        }
    });
    for name in ["new\nline", "-rf", "sp ace", "a:b"] {
        write(&a.join(name), name);
    }
    write(&a.join("modify.txt"), "v2, longer\n");
    std::fs::remove_file(a.join("delete.txt")).unwrap();
    std::fs::rename(a.join("rename.txt"), a.join("renamed.txt")).unwrap();
    std::fs::rename(a.join("olddir"), a.join("newdir")).unwrap();
    std::fs::set_permissions(
        a.join("sp ace"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(a.join("a:b"), Some(1234), Some(4321)).unwrap();
    let second = site.sync_ok();
    assert!(line(&second, "a").contains("changed paths"), "{second}");
    assert!(line(&second, "b").contains(" 0 changed paths"), "{second}");
    assert_eq!(tree_listing(&a), tree_listing(&site.root.join("nas/a")));

    // records written while a sync runs arrive with the next one
    let slow = site.root.join("slow-rsync");
    std::fs::write(&slow, "#!/bin/sh\nsleep 2\nexec rsync \"$@\"\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    write(&a.join("before.txt"), "before\n");
    site.settle();
    let running = Command::new(OFFSITE)
        .arg("--config")
        .arg(site.config())
        .env("HOMELAB_BACKUP_RSYNC", &slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000)); // sealed by now, rsync still sleeping
    write(&site.root.join("a/late/late.txt"), "late\n");
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(site.root.join("nas/a/before.txt").exists());
    assert!(
        !site.root.join("nas/a/late").exists(),
        "a record written during the sync was sent early"
    );
    site.sync_ok();
    assert_eq!(
        std::fs::read_to_string(site.root.join("nas/a/late/late.txt")).unwrap(),
        "late\n"
    );
}

#[test]
fn an_overflow_or_a_restart_costs_a_full_pass_of_the_tree_concerned() {
    require_root();
    let mut site = Site::new("");
    site.start_tracker();
    site.sync_ok();
    // a stopped tracker cannot read: the kernel's queue (16384 by default) overflows
    let flood = site.root.join("a/flood");
    std::fs::create_dir_all(&flood).unwrap();
    std::thread::sleep(Duration::from_millis(500)); // the tracker watches it now
    let pid = site.tracker.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    for i in 0..20_000 {
        std::fs::write(flood.join(i.to_string()), "").unwrap();
    }
    write(&site.root.join("b/small.txt"), "b\n");
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.marker("a").exists() {
        assert!(Instant::now() < deadline, "the overflow was not recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = site.sync_ok();
    assert!(
        line(&out, "a").contains("full pass") && line(&out, "a").contains("overflowed"),
        "{out}"
    );
    assert!(line(&out, "b").contains("1 changed path:"), "{out}");
    assert_eq!(
        std::fs::read_dir(site.root.join("nas/a/flood"))
            .unwrap()
            .count(),
        20_000
    );
    let prom = std::fs::read_to_string(site.root.join("metrics/nfs-change-tracker.prom"))
        .unwrap_or_default();
    assert!(
        prom.contains("nfs_tracker_overflows_total{job=\"nfs-change-tracker\",tree=\"a\"}"),
        "{prom}"
    );
    // the next sync trusts the log again
    let out = site.sync_ok();
    assert!(line(&out, "a").contains("changed paths"), "{out}");
    // a restart: what happened while it was down is unknown
    site.stop_tracker();
    write(&site.root.join("b/while-down.txt"), "unseen\n");
    let out = site.sync_ok();
    assert!(line(&out, "b").contains("not running"), "{out}");
    assert!(site.root.join("nas/b/while-down.txt").exists());
    site.start_tracker();
    let out = site.sync_ok();
    assert!(line(&out, "b").contains("tracker started"), "{out}");
}

#[test]
fn the_guards_refuse_before_anything_offsite_is_lost() {
    require_root();
    let mut site = Site::new("max-delete = 5");
    for i in 0..20 {
        write(&site.root.join(format!("a/f{i}")), "x");
    }
    site.start_tracker();
    site.sync_ok();
    assert_eq!(
        std::fs::read_dir(site.root.join("nas/a")).unwrap().count(),
        21
    );
    // an emptied source (an unmounted export): refused, the copy offsite stays
    site.stop_tracker();
    for e in std::fs::read_dir(site.root.join("a")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is empty"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(site.root.join("nas/a")).unwrap().count(),
        21
    );
    // 10 deletions with max-delete = 5: refused, nothing deleted
    for i in 0..11 {
        write(&site.root.join(format!("a/f{i}")), "x");
    }
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("would delete 10 paths") && text(&out).contains("tree a"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_dir(site.root.join("nas/a")).unwrap().count(),
        21
    );
    // --force: done
    let out = site.sync(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(site.root.join("nas/a")).unwrap().count(),
        11
    );
    // an unmounted backup disk (no pvc-data/): step 1 refused, pve-backup/ offsite kept
    write(
        &site.root.join("backup/pvc-data/2026-02/ns/p/file"),
        "week\n",
    );
    assert_eq!(site.sync(&[]).status.code(), Some(0));
    std::fs::remove_dir_all(site.root.join("backup/pvc-data")).unwrap();
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("does not look like the backup disk"),
        "{}",
        text(&out)
    );
    assert!(site
        .root
        .join("nas/pve-backup/pvc-data/2026-02/ns/p/file")
        .exists());
    let prom = std::fs::read_to_string(site.root.join("metrics/offsite-sync-backup.prom")).unwrap();
    assert!(
        prom.contains("offsite_backup_sync_last_run_success{job=\"offsite-sync-backup\"} 0"),
        "{prom}"
    );
}

#[test]
fn step_one_keeps_hardlinked_weeks_hardlinked() {
    require_root();
    let site = Site::new("");
    let weeks = ["2026-01", "2026-02", "2026-03", "2026-04"];
    let first = site.root.join("backup/pvc-data/2026-01/ns/p");
    for i in 0..50 {
        write(&first.join(format!("f{i}")), &"x".repeat(20_000));
    }
    for w in &weeks[1..] {
        let dir = site.root.join(format!("backup/pvc-data/{w}/ns/p"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..50 {
            std::fs::hard_link(first.join(format!("f{i}")), dir.join(format!("f{i}"))).unwrap();
        }
    }
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let du = |p: &Utf8Path| -> u64 {
        let out = Command::new("du")
            .args(["-s", "-B1"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let one = du(&site.root.join("nas/pve-backup/pvc-data/2026-01"));
    let all = du(&site.root.join("nas/pve-backup/pvc-data"));
    assert!(
        (all as f64) <= 1.1 * one as f64,
        "four hardlinked weeks take {all} bytes offsite, one takes {one}"
    );
}

#[test]
fn over_ssh_with_a_pinned_host_key_and_fails_closed_when_it_changes() {
    require_root();
    let scratch = tempfile::tempdir().unwrap();
    let scratch = Utf8PathBuf::from_path_buf(scratch.path().to_owned()).unwrap();
    let server = sshd(scratch.join("ssh"));
    let nas = scratch.join("nas");
    std::fs::create_dir_all(&nas).unwrap();
    let site = Site::new(&format!(
        "ssh-key-file = \"{d}/client_key\"\nssh-known-hosts = \"{d}/known_hosts\"\nssh-port = {p}",
        d = server.dir,
        p = server.port
    ));
    let cfg = std::fs::read_to_string(site.config()).unwrap().replace(
        &format!("destination = \"{}/nas\"", site.root),
        &format!("destination = \"root@127.0.0.1:{nas}\""),
    );
    std::fs::write(site.config(), cfg).unwrap();
    write(
        &site.root.join("backup/pvc-data/2026-02/ns/p/file"),
        "week\n",
    );
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(nas.join("a/start.txt")).unwrap(),
        "a\n"
    );
    assert!(nas.join("pve-backup/pvc-data/2026-02/ns/p/file").exists());
    // the host key changes: every step fails, nothing is sent
    keygen(&scratch.join("other_host_key"));
    let other = std::fs::read_to_string(scratch.join("other_host_key.pub")).unwrap();
    std::fs::write(
        server.dir.join("known_hosts"),
        format!("[127.0.0.1]:{} {other}", server.port),
    )
    .unwrap();
    write(&site.root.join("a/after.txt"), "after\n");
    let out = site.sync(&["--full"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("remote shell failed")
            || text(&out).contains("IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&out)
    );
    assert!(!nas.join("a/after.txt").exists());
}

#[test]
fn check_counts_the_folders_against_max_user_watches() {
    let site = Site::new("");
    for i in 0..5 {
        std::fs::create_dir_all(site.root.join(format!("a/x{i}/y"))).unwrap();
    }
    let out = Command::new(TRACKER)
        .arg("--config")
        .arg(site.config())
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // a: itself and 10 below; b: itself
    assert!(
        text(&out).contains("a: 11 folders") && text(&out).contains("12 watches needed"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(": fits"), "{}", text(&out));
}

/// Issue 19, items 3 and 4: a tree root replaced by another folder (`mv a a.old; mkdir a; cp -a`)
/// or mounted over after the tracker started (the export came up late) is not what the tracker
/// watched. The tracker notices within a second, watches the new root and marks a full pass;
/// the sync also compares the root with the one the tracker recorded. Either way the new files
/// reach the offsite copy, and never as "0 changed paths".
#[test]
fn a_replaced_or_mounted_over_tree_root_gets_a_full_pass_and_its_files_arrive() {
    require_root();
    let mut site = Site::new("");
    let a = site.root.join("a");
    write(&a.join("old.txt"), "old\n");
    site.start_tracker();
    site.sync_ok();
    let t = site.sync_ok();
    assert!(line(&t, "a").contains("0 changed paths"), "{t}");

    // replaced: the old folder moved away, a copy put in its place, then written to
    std::fs::rename(&a, site.root.join("a.old")).unwrap();
    std::fs::create_dir(&a).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", site.root.join("a.old")))
        .arg(&a)
        .status()
        .unwrap();
    assert!(cp.success());
    write(&a.join("new-after-replace.txt"), "new\n");
    write(&a.join("old.txt"), "edited\n");
    let t = site.sync_ok();
    assert!(line(&t, "a").contains("full pass"), "{t}");
    let nas = site.root.join("nas/a");
    assert_eq!(
        std::fs::read_to_string(nas.join("new-after-replace.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(nas.join("old.txt")).unwrap(),
        "edited\n"
    );
    // the tracker watches the new root: later changes arrive incrementally
    std::thread::sleep(Duration::from_millis(1500));
    site.sync_ok();
    write(&a.join("later.txt"), "later\n");
    let t = site.sync_ok();
    assert!(line(&t, "a").contains("changed path"), "{t}");
    assert!(nas.join("later.txt").is_file(), "{t}");

    // mounted over after the tracker started
    let _guard = crate::harness::mount_tmpfs(&a, "4m");
    write(&a.join("on-the-mount.txt"), "mounted\n");
    let t = site.sync(&[]);
    let tt = text(&t);
    assert_eq!(t.status.code(), Some(0), "{tt}");
    assert!(line(&tt, "a").contains("full pass"), "{tt}");
    assert_eq!(
        std::fs::read_to_string(nas.join("on-the-mount.txt")).unwrap(),
        "mounted\n"
    );
    site.stop_tracker();
}

/// What `rsync -n -aHAX --delete -i` would still change offsite: empty when the copy is the
/// tree (content, kinds, owners, modes, ACLs, xattrs, every folder's mtime, the top one's too).
fn still_differs(src: &Utf8Path, dest: &Utf8Path) -> String {
    let out = Command::new("rsync")
        .args(["-n", "-aHAX", "--delete", "-i", "--modify-window=-1"])
        .arg(format!("{src}/"))
        .arg(format!("{dest}/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nested_deletions_folder_renames_and_swaps_arrive_by_the_incremental_pass() {
    require_root();
    let mut site = Site::new("max-delete = 10");
    let a = site.root.join("a");
    write(&a.join("deep/x/y/z/f1"), "1\n");
    write(&a.join("deep/x/keep"), "k\n");
    write(&a.join("deep/x/gone.txt"), "g\n");
    write(&a.join("ren/dir/inner/f"), "r\n");
    write(&a.join("dir2file/child"), "c\n");
    write(&a.join("file2dir"), "f\n");
    write(&a.join("top.txt"), "t\n");
    site.start_tracker();
    assert!(line(&site.sync_ok(), "a").contains("full pass"));
    // a file deep down, a folder three levels deep, a folder renamed, a folder that becomes a
    // file and a file that becomes a folder, a top-level file: none of it is named by a mode-0
    // entry (Debian 12's rsync rejects those below the top folder)
    std::fs::remove_file(a.join("deep/x/gone.txt")).unwrap();
    std::fs::remove_dir_all(a.join("deep/x/y")).unwrap();
    std::fs::rename(a.join("ren/dir"), a.join("ren/moved")).unwrap();
    std::fs::remove_dir_all(a.join("dir2file")).unwrap();
    write(&a.join("dir2file"), "now a file\n");
    std::fs::remove_file(a.join("file2dir")).unwrap();
    write(&a.join("file2dir/now/a/folder"), "d\n");
    std::fs::remove_file(a.join("top.txt")).unwrap();
    let out = site.sync_ok();
    assert!(line(&out, "a").contains("changed paths"), "{out}");
    assert_eq!(still_differs(&a, &site.root.join("nas/a")), "", "{out}");
    // a folder replaced by a symlink to a folder elsewhere: offsite it is the symlink, and
    // what the target holds is never sent (a level listed as `sl/` would follow it)
    write(&a.join("sl/inner/f"), "real\n");
    site.sync_ok();
    std::fs::remove_dir_all(a.join("sl")).unwrap();
    std::os::unix::fs::symlink(site.root.join("b"), a.join("sl")).unwrap();
    let out = site.sync_ok();
    assert!(
        std::fs::symlink_metadata(site.root.join("nas/a/sl"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "{out}"
    );
    assert_eq!(still_differs(&a, &site.root.join("nas/a")), "", "{out}");
    // a day later, more than max-delete paths gone under a folder: counted first, refused
    for i in 0..12 {
        write(&a.join(format!("many/f{i}")), "m\n");
    }
    site.sync_ok();
    std::fs::remove_dir_all(a.join("many")).unwrap();
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the incremental pass would delete 13 paths"),
        "{}",
        text(&out)
    );
    assert!(
        site.root.join("nas/a/many/f7").exists(),
        "deleted past the bound"
    );
    let out = site.sync(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(still_differs(&a, &site.root.join("nas/a")), "");
}

/// A write to a top-level file lists the top level (for the top folder's mtime), which deletes
/// what the copy holds beyond it there: those deletions are counted against max-delete first,
/// like any other.
#[test]
fn the_top_level_listed_for_its_mtime_is_counted_against_max_delete() {
    require_root();
    let mut site = Site::new("max-delete = 2");
    site.start_tracker();
    site.sync_ok();
    for i in 0..3 {
        write(
            &site.root.join(format!("nas/a/stray-{i}")),
            "only offsite\n",
        );
    }
    std::thread::sleep(Duration::from_millis(2100)); // past the last sync's start
    write(&site.root.join("a/new-top.txt"), "new\n");
    let out = site.sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("would delete 3 paths"),
        "{}",
        text(&out)
    );
    assert!(site.root.join("nas/a/stray-0").exists());
    let out = site.sync(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!site.root.join("nas/a/stray-0").exists());
    assert!(site.root.join("nas/a/new-top.txt").exists());
}

/// One offsite-sync-backup at a time: a second run while one is sending exits 75 at once (two
/// replayed the same change log into the same trees, and the second blamed daily-backup).
#[test]
fn a_second_offsite_run_while_one_runs_exits_75() {
    require_root();
    let mut site = Site::new("");
    site.start_tracker();
    site.sync_ok();
    let slow = site.root.join("slow-rsync");
    std::fs::write(&slow, "#!/bin/sh\nsleep 3\nexec rsync \"$@\"\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    write(&site.root.join("a/more.txt"), "more\n");
    site.settle();
    let first = Command::new(OFFSITE)
        .arg("--config")
        .arg(site.config())
        .env("HOMELAB_BACKUP_RSYNC", &slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let second = site.sync(&[]);
    assert_eq!(second.status.code(), Some(75), "{}", text(&second));
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(site.root.join("nas/a/more.txt")).unwrap(),
        "more\n"
    );
}

/// `offsite.bwlimit`: the NAS gets no more than the limit. 1.5 MiB of incompressible data at
/// 256 KiB/s takes at least the time the limit implies (6 s; rsync lets the first burst
/// through, so at least 4 s is asked); the same data without a limit is the comparison.
/// A lower bound only: a slow machine makes it slower, never faster.
#[test]
fn a_bandwidth_limit_holds_a_known_size_to_its_rate() {
    require_root();
    let site = Site::new("bwlimit = \"256K\"");
    let data: Vec<u8> = (0..1536 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(site.root.join("a/big.bin"), &data).unwrap();
    let started = Instant::now();
    let out = site.sync(&["--full"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(site.root.join("nas/a/big.bin")).unwrap(),
        data,
        "the limited copy arrived whole"
    );
    assert!(
        took >= Duration::from_secs(4),
        "1.5 MiB at 256 KiB/s took {took:?}: the limit was not applied"
    );
}

/// `offsite.stop-at`: a run still sending at that time stops cleanly (exit 0, the tree said
/// "stopped", its last success not moved) and the next run goes on until the offsite copy
/// equals the source. The clock is `--now`, 3 s before the stop; the limit makes the send
/// last longer than that.
#[test]
fn a_run_stopped_at_its_time_is_finished_by_the_next() {
    require_root();
    let site = Site::new("bwlimit = \"64K\"\nstop-at = \"06:00\"");
    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(site.root.join("a/big.bin"), &data).unwrap();
    let run = |now: &str| {
        Command::new(OFFSITE)
            .arg("--config")
            .arg(site.config())
            .args(["--now", now])
            .env("TZ", "UTC")
            .output()
            .unwrap()
    };
    let started = Instant::now();
    let out = run("2026-01-05T05:59:57Z");
    let took = started.elapsed();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        took < Duration::from_secs(14),
        "not stopped: it took {took:?}\n{said}"
    );
    assert!(line(&said, "a").starts_with("  stopped"), "{said}");
    assert!(
        said.contains("stopped at 06:00 (offsite.stop-at)"),
        "{said}"
    );
    assert_ne!(
        std::fs::read(site.root.join("nas/a/big.bin"))
            .ok()
            .as_deref(),
        Some(&data[..]),
        "the file arrived whole before the stop: the test proves nothing"
    );
    let prom = std::fs::read_to_string(site.root.join("metrics/offsite-sync-backup.prom")).unwrap();
    assert_eq!(
        crate::harness::gauge(&prom, "offsite_backup_sync_last_run_success"),
        Some(1.0),
        "a stop at its time is no failure:\n{prom}"
    );
    assert_eq!(
        crate::harness::gauge(&prom, "offsite_backup_sync_last_success_timestamp"),
        None,
        "a stopped run moved the last success:\n{prom}"
    );
    // the next night: no stop before it ends
    let out = run("2026-01-05T07:00:00Z");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(site.root.join("nas/a/big.bin")).unwrap(),
        data
    );
}
