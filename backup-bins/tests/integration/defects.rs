//! Regression tests of defects found by fault injection and first use (a hang, false successes,
//! mounts in the wrong place, day-one gaps). Each failed on the code before its fix.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Runs `cmd`; a run still going after `secs` is killed and the test fails (a hang must fail the
/// test, not block it).
fn output_within(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {secs} s (killed):\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &camino::Utf8Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn prom(env: &Env) -> String {
    std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap_or_default()
}

// 1. A FIFO named like a side file hung every backup; a symlinked side file was followed.
#[test]
fn a_fifo_or_symlink_beside_a_database_fails_that_database_and_never_hangs_the_run() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    fixtures::sqlite::clean(vol.join("app.db").as_std_path());
    mkfifo(&vol.join("app.db-wal"));
    fixtures::sqlite::clean(vol.join("x.db").as_std_path());
    std::fs::write(env.root.join("host-secret"), "host secret\n").unwrap();
    std::os::unix::fs::symlink(env.root.join("host-secret"), vol.join("x.db-wal")).unwrap();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = output_within(env.command(DAILY, &["--now", "2026-01-05T05:00:00Z"]), 120);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("app.db") && all.contains("a FIFO"), "{all}");
    assert!(all.contains("x.db") && all.contains("a symlink"), "{all}");
    assert!(!all.contains("recovered from -wal"), "{all}");
    let copies = env
        .root
        .join("backup/sqlite-backup/2026-02/vaultwarden/data");
    for e in walk(&copies) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert!(
            !bytes.windows(11).any(|w| w == b"host secret"),
            "{e} holds the host file"
        );
    }
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
    // the lock was released: the next run is not told another one is running
    let again = output_within(env.command(DAILY, &["--now", "2026-01-05T06:00:00Z"]), 120);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));

    // sqlite-backup copy by hand: the same, at once
    let mut copy = Command::new(env!("CARGO_BIN_EXE_sqlite-backup"));
    copy.args(["copy"])
        .arg(vol.join("app.db"))
        .arg(env.root.join("hand.db"));
    let out = output_within(copy, 30);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("a FIFO"), "{}", text(&out));
}

fn walk(dir: &camino::Utf8Path) -> Vec<camino::Utf8PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = dir.read_dir_utf8() {
        for e in rd.flatten() {
            let p = e.path().to_owned();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// 2. After kill -9 of daily-backup its rsync went on writing while a new run started.
#[test]
fn after_kill_9_no_new_run_starts_while_the_orphaned_rsync_still_writes() {
    let mut env = Env::new();
    let big = env.make_rsync_slow();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let mut child = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = big;
    Env::wait_for_entries(
        &env.staging("2026-02", "vaultwarden", "data").join("big"),
        2,
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let backup = env.root.join("backup");
    let orphans = pids_mentioning(backup.as_str());
    assert!(
        !orphans.is_empty(),
        "expected the killed run's rsync still running"
    );
    let second = env.run(DAILY, &["--now", "2026-01-05T05:10:00Z"]);
    assert_eq!(
        second.status.code(),
        Some(75),
        "a new run started beside the orphaned rsync: {}",
        text(&second)
    );
    // every process on the backup disk, until none is left (each gone, not only its name)
    let _ = orphans;
    crate::harness::kill_all_mentioning(backup.as_str());
    env.rsync = None;
    let third = env.run(DAILY, &["--now", "2026-01-05T05:20:00Z"]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

// 3. A clock going backwards wrote into an old week, pruned it, and exited 0.
#[test]
fn a_clock_behind_the_backup_root_refuses_and_changes_nothing() {
    let env = Env::new();
    for day in ["2026-06-08", "2026-06-15", "2026-06-22", "2026-06-29"] {
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    assert_eq!(env.weeks(), ["2026-24", "2026-25", "2026-26", "2026-27"]);
    let before = prom(&env);
    let out = env.run(DAILY, &["--now", "2026-05-01T05:00:00Z"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("2026-05-01") && all.contains("2026-18"),
        "{all}"
    );
    assert!(all.contains("2026-27"), "{all}");
    assert_eq!(env.weeks(), ["2026-24", "2026-25", "2026-26", "2026-27"]);
    // within the newest week's span but before its completion: week 24 is not rewritten
    write(&env.vol("vm-100-pvc-a").join("dir/file-0.txt"), "today\n");
    let out = env.run(DAILY, &["--now", "2026-06-10T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(
            env.copy("2026-24", "vaultwarden", "data")
                .join("dir/file-0.txt")
        )
        .unwrap(),
        "vm-100-pvc-a file 0\n"
    );
    // a later time in the newest week is fine
    let out = env.run(DAILY, &["--now", "2026-06-30T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!before.is_empty());
}

// 4. A prune failure printed "prune FAILED" and exited 0 with last_run_success 1.
#[test]
fn a_snapshot_that_cannot_be_pruned_fails_the_run() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let old = env
        .root
        .join("snapshots/vm-100-pvc-a-snap-20260105030000/dir/file-0.txt");
    let chattr = Command::new("chattr").arg("+i").arg(&old).output().unwrap();
    assert!(
        chattr.status.success(),
        "chattr +i needs root and a file system with attributes (ext4): {}",
        text(&chattr)
    );
    let out = env.day("2026-01-14");
    let _ = Command::new("chattr").arg("-i").arg(&old).status();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("prune FAILED"), "{all}");
    assert!(
        gauge(&prom(&env), "daily_backup_last_run_success") == Some(0.0),
        "{}",
        prom(&env)
    );
}

/// Every file under `dir` as (relative path, size), sorted.
fn listing(dir: &camino::Utf8Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = walk(dir)
        .into_iter()
        .map(|p| {
            let size = std::fs::symlink_metadata(&p).unwrap().len();
            (p.strip_prefix(dir).unwrap().to_string(), size)
        })
        .collect();
    out.sort();
    out
}

// 5. Two `lvm-pvc-snapshot create` at once on the dir backend shared one temp folder.
#[test]
fn concurrent_snapshot_runs_never_publish_a_wrong_snapshot() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    for i in 0..400 {
        write(&vol.join(format!("many/{}/f-{i}", i % 20)), &"x".repeat(i));
    }
    let want = listing(&vol);
    for round in 0..5 {
        let now = format!("2026-01-05T03:0{round}:00Z");
        let children: Vec<_> = (0..2)
            .map(|_| {
                env.command(SNAPSHOT, &["--now", &now, "create"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        assert!(
            outs.iter().any(|o| o.status.code() == Some(0)),
            "round {round}: {}",
            outs.iter().map(text).collect::<Vec<_>>().join("\n")
        );
        let snap = env.root.join(format!(
            "snapshots/vm-100-pvc-a-snap-2026010503{round:02}00"
        ));
        assert_eq!(
            listing(&snap),
            want,
            "round {round}: snapshot differs from the volume"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(env.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// 6. Nothing to back up reported "0 of 0 ... exit 0".
#[test]
fn no_volume_matching_the_pattern_is_exit_1_naming_pattern_place_and_count() {
    let env = Env::with_config("");
    let cfg = std::fs::read_to_string(env.config())
        .unwrap()
        .replace("keep-days = 7", "keep-days = 7\nlv-pattern = \"pvc-*\"");
    std::fs::write(env.config(), cfg).unwrap();
    for bin in [SNAPSHOT, DAILY] {
        let out = env.run(bin, &["--now", "2026-01-05T05:00:00Z"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{bin}: {all}");
        assert!(
            all.contains("`pvc-*`")
                && all.contains(env.root.join("volumes").as_str())
                && all.contains("3 volumes"),
            "{all}"
        );
    }
}

#[test]
fn volumes_all_in_excluded_namespaces_are_fine_and_said_so() {
    let env = Env::with_config("");
    std::fs::remove_dir_all(env.vol("vm-102-pvc-c")).unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "keep-days = 7",
        "keep-days = 7\nexclude-namespaces = [\"vaultwarden\", \"nextcloud\"]",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let out = env.day("2026-01-05");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("excluded vaultwarden/data"),
        "{}",
        text(&out)
    );
}

// 7. A volume without regular files failed every day (no `reg:` in rsync's stats).
#[test]
fn volumes_without_regular_files_are_backed_up() {
    let env = Env::new();
    let c = env.vol("vm-102-pvc-c");
    std::fs::remove_dir_all(&c).unwrap();
    std::fs::create_dir_all(c.join("lost+found")).unwrap();
    std::fs::create_dir_all(c.join("empty/deeper")).unwrap();
    let b = env.vol("vm-101-pvc-b");
    std::fs::remove_dir_all(&b).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::os::unix::fs::symlink("/usr/bin/env", b.join("env")).unwrap();
    std::os::unix::fs::symlink("nowhere", b.join("dangling")).unwrap();
    mkfifo(&b.join("pipe"));
    let out = env.day("2026-01-05");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(env.marker("2026-02", "nextcloud", "files").is_file());
    assert!(env
        .marker("2026-02", "_unresolved", "vm-102-pvc-c")
        .is_file());
    assert!(env
        .copy("2026-02", "nextcloud", "files")
        .join("env")
        .is_symlink());
}

// 8. mount-dir through a symlink leaked a mount per volume per run; a symlinked mount point
//    mounted a snapshot over its target.
#[test]
fn mount_dir_through_a_symlink_and_with_odd_slashes_works_and_leaks_nothing() {
    if !is_root() {
        panic!("this test needs root (real bind mounts): run scripts/test as root");
    }
    let env = Env::new();
    std::fs::create_dir_all(env.root.join("real-run")).unwrap();
    std::os::unix::fs::symlink(env.root.join("real-run"), env.root.join("run-link")).unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        &format!("mount-dir = \"{}/mnt\"", env.root),
        &format!("mount-dir = \"{}/run-link//./mnt\"", env.root),
    );
    std::fs::write(env.config(), cfg).unwrap();
    for day in ["2026-01-05", "2026-01-06"] {
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
        assert!(
            env.leftover_mounts().is_empty(),
            "{:?}",
            env.leftover_mounts()
        );
    }
}

#[test]
fn a_symlink_as_mount_point_is_refused_and_its_target_left_alone() {
    if !is_root() {
        panic!("this test needs root (real bind mounts): run scripts/test as root");
    }
    let env = Env::new();
    let victim = env.root.join("victim");
    write(&victim.join("precious"), "keep\n");
    std::os::unix::fs::symlink(&victim, env.root.join("mnt/vm-100-pvc-a")).unwrap();
    let out = env.day("2026-01-05");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("is a symlink"), "{all}");
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        1,
        "the snapshot was mounted over the symlink's target"
    );
    assert!(env.marker("2026-02", "nextcloud", "files").is_file());
}

// 9. Names became paths: namespace `.complete` landed in the marker folder.
#[test]
fn names_that_are_not_kubernetes_names_are_refused_and_named() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.config())
        .unwrap()
        .replace("namespace = \"vaultwarden\"", "namespace = \".complete\"");
    std::fs::write(env.config(), cfg).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"vm-103-pvc-caf\xe9");
    let odd_dir = env.root.join("volumes").as_std_path().join(odd);
    std::fs::create_dir_all(&odd_dir).unwrap();
    std::fs::write(odd_dir.join("f"), "x").unwrap();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_ne!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("namespace `.complete`"), "{all}");
    assert!(all.contains("not valid UTF-8"), "{all}");
    let markers = env.root.join("backup/pvc-data/2026-02/.complete");
    assert!(
        !markers.join("data").exists(),
        "a copy landed in the marker folder"
    );
    assert!(env.marker("2026-02", "nextcloud", "files").is_file());
}

// 10. A damaged SQLite header went unreported.
#[test]
fn damaged_sqlite_headers_are_named_and_counted() {
    let env = Env::new();
    let mut tiny = b"SQLite format 3\0\x10\x00".to_vec();
    tiny.resize(100, 0);
    std::fs::write(env.vol("vm-100-pvc-a").join("tiny.db"), &tiny).unwrap();
    let out = env.day("2026-01-05");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("tiny.db") && all.contains("100 bytes"),
        "{all}"
    );
    assert!(
        prom(&env).contains("daily_backup_sqlite_failed"),
        "{}",
        prom(&env)
    );
    assert!(
        prom(&env)
            .lines()
            .any(|l| l.starts_with("daily_backup_sqlite_failed") && l.ends_with(" 1")),
        "{}",
        prom(&env)
    );
}

// 11. Sparse files were inflated.
#[test]
fn sparse_files_stay_sparse_in_the_backup() {
    let env = Env::new();
    let f = std::fs::File::create(env.vol("vm-101-pvc-b").join("disk.img")).unwrap();
    f.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 4096], 0).unwrap();
    drop(f);
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let copy = env.copy("2026-02", "nextcloud", "files").join("disk.img");
    let m = std::fs::metadata(&copy).unwrap();
    assert_eq!(m.len(), 1 << 30);
    assert!(m.blocks() < 1024, "{} blocks: holes filled", m.blocks());
}

// 12. An intentionally emptied PVC failed forever.
#[test]
fn allow_empty_accepts_one_volumes_empty_source_for_one_run() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let vol = env.vol("vm-101-pvc-b");
    std::fs::remove_dir_all(&vol).unwrap();
    std::fs::create_dir_all(&vol).unwrap();
    let out = env.day("2026-01-06");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("--allow-empty nextcloud/files"),
        "{}",
        text(&out)
    );
    let bad = env.run(
        DAILY,
        &["--now", "2026-01-06T06:00:00Z", "--allow-empty", "nope/x"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let ok = env.run(
        DAILY,
        &[
            "--now",
            "2026-01-06T06:00:00Z",
            "--allow-empty",
            "nextcloud/files",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("accepted by --allow-empty"),
        "{}",
        text(&ok)
    );
    let copy = env.copy("2026-02", "nextcloud", "files");
    assert_eq!(std::fs::read_dir(&copy).unwrap().count(), 0);
    assert!(env.marker("2026-02", "nextcloud", "files").is_file());
    // the next run without the flag: the copy is empty too, so nothing to refuse
    let next = env.day("2026-01-07");
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
}

// 13. PVE config had no history.
#[test]
fn pve_config_is_kept_in_weekly_versions() {
    let env = Env::new();
    let pve = env.vol("vm-100-pvc-a").join("dir");
    let pve_copy = |week: &str| {
        env.root
            .join("backup/pve-config")
            .join(week)
            .join(pve.as_str().trim_start_matches('/'))
    };
    assert_eq!(env.day("2026-01-05").status.code(), Some(0)); // 2026-02
    std::fs::remove_file(pve.join("file-1.txt")).unwrap();
    assert_eq!(env.day("2026-01-12").status.code(), Some(0)); // 2026-03
    assert!(
        pve_copy("2026-02").join("file-1.txt").is_file(),
        "last week's version lost the file"
    );
    assert!(!pve_copy("2026-03").join("file-1.txt").exists());
    assert_eq!(
        ino(&pve_copy("2026-02").join("file-2.txt")),
        ino(&pve_copy("2026-03").join("file-2.txt")),
        "unchanged config files are not hardlinked between weeks"
    );
    assert!(env
        .root
        .join("backup/pve-config/2026-03/.complete")
        .is_file());
    for day in ["2026-01-19", "2026-01-26", "2026-02-02"] {
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    let mut weeks: Vec<String> = std::fs::read_dir(env.root.join("backup/pve-config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    weeks.sort();
    assert_eq!(weeks, ["2026-03", "2026-04", "2026-05", "2026-06"]);
}

// 14. First contact: an I/O error on a configured path did not name its key.
#[test]
fn an_unusable_mount_dir_is_named_by_its_key() {
    let env = Env::new();
    std::fs::write(env.root.join("a-file"), "not a folder").unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        &format!("mount-dir = \"{}/mnt\"", env.root),
        &format!("mount-dir = \"{}/a-file/mnt\"", env.root),
    );
    std::fs::write(env.config(), cfg).unwrap();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z"]);
    let all = text(&out);
    // every volume fails, naming the key; the PVE config is still copied
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("`pvc-backup.mount-dir`") && all.contains("a-file/mnt"),
        "{all}"
    );
}

// 16. (found in session 3) A version's completion marker was fsynced, its copied files were
// not: rsync does not fsync, and with ext4's delayed allocation a power cut could keep the
// marker and lose file data, leaving a "complete" version with empty files that the next week
// hardlinks from. Now every marker is renamed into place only after a syncfs of the backup disk.
#[test]
fn a_version_is_marked_complete_only_after_the_backup_disk_is_flushed() {
    let env = Env::new();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let log = env.root.join("strace.log");
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=syncfs,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(DAILY)
        .args([
            "--config",
            env.config().as_str(),
            "--now",
            "2026-01-05T05:00:00Z",
        ])
        .output()
        .expect("strace is not installed: run scripts/test, which installs it");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (mut synced, mut markers) = (0, 0);
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        if line.contains("syncfs") && line.trim_end().ends_with("= 0") {
            synced += 1;
        } else if line.contains("rename") && line.contains("/.complete/") {
            markers += 1;
            assert!(
                synced >= markers,
                "marker {markers} renamed into place after only {synced} syncfs:\n{line}"
            );
        }
    }
    assert!(
        markers >= 3,
        "expected a marker per volume and the PVE config: {markers}"
    );
}

/// A static-map PVC in an excluded namespace is never a gap, whether its volume is there
/// (shown excluded) or gone (it was "no volume found for it and never backed up").
#[test]
fn an_excluded_pvc_without_its_volume_is_no_gap() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.config()).unwrap().replacen(
        "keep-days = 7\n",
        "keep-days = 7\nexclude-namespaces = [\"nextcloud\"]\n",
        1,
    );
    std::fs::write(env.config(), cfg).unwrap();
    let status = |env: &Env| {
        let out = env.run(CTL, &["--now", "2026-01-05T07:00:00Z", "status"]);
        let t = text(&out);
        t.lines()
            .find(|l| l.contains("nextcloud/files"))
            .unwrap_or_else(|| panic!("no row for nextcloud/files: {t}"))
            .to_owned()
    };
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let with = status(&env);
    assert!(with.contains("(excluded)"), "{with}");
    std::fs::remove_dir_all(env.vol("vm-101-pvc-b")).unwrap();
    let without = status(&env);
    assert!(
        without.contains("(excluded)") && !without.contains("no volume found"),
        "{without}"
    );
}

/// rsync reads a `--files-from` line that starts with `#` or `;` as a comment, `--from0` or
/// not: such files, new in a same-week rerun, were never copied (the record named them, the copy
/// lacked them), and `drill` called them not restored. Every list writes them as `./#name`.
#[test]
fn files_named_like_rsync_comments_are_copied_restored_and_drilled() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let vol = env.vol("vm-100-pvc-a");
    write(&vol.join("#notes"), "hash\n");
    write(&vol.join(";semi"), "semi\n");
    write(&vol.join("#recycle/old.doc"), "old\n");
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-06T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["--now", "2026-01-06T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let copy = env.copy("2026-02", "vaultwarden", "data");
    for name in ["#notes", ";semi", "#recycle/old.doc"] {
        assert!(copy.join(name).is_file(), "{name} not copied");
    }
    let out = env.run(CTL, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = env.run(
        CTL,
        &["--now", "2026-01-06T07:00:00Z", "drill", "--sample", "100"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let to = env.root.join("restored");
    let out = env.run(
        CTL,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "#recycle",
            "--to",
            to.as_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(to.join("#recycle/old.doc").is_file());
    assert!(!to.join("#notes").exists(), "a sibling came along");
}
