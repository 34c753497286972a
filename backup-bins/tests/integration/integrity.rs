//! Every copy equals its record (issue 18): full passes that see content, a repair path for
//! damaged copies, and updates of a version that a failed run cannot take away.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

use camino::Utf8Path;

use crate::harness::*;

fn ctl(env: &Env, args: &[&str]) -> Output {
    env.run(CTL, args)
}

/// Sets `p`'s mtime to 2026-01-01 00:00 UTC.
fn touch_old(p: &Utf8Path) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Writes `text` into `p` and gives it the old mtime: a rewrite only the content tells.
fn rewrite_keeping_mtime(p: &Utf8Path, text: &str) {
    std::fs::write(p, text).unwrap();
    touch_old(p);
}

/// Flips one byte of `p` in place, keeping its size and mtime (bit rot).
fn flip_byte(p: &Utf8Path) {
    let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
    f.set_modified(mtime).unwrap();
}

/// Swaps two files by name through `t` (`mv a t; mv b a; mv t b`): sizes and mtimes stay.
fn swap(a: &Utf8Path, b: &Utf8Path, t: &Utf8Path) {
    std::fs::rename(a, t).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(t, b).unwrap();
}

fn read(p: &Utf8Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// A rewrite that keeps size and mtime, and two files of the same size and mtime swapped by
/// name: the `dir` backend's incremental run cannot see them, `--full` and the first run of a
/// month must, and the version then equals its record.
#[test]
fn full_passes_see_rewrites_that_keep_size_and_mtime_and_swapped_files() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    let (f, a, b) = (vol.join("f"), vol.join("a"), vol.join("b"));
    rewrite_keeping_mtime(&f, "content-AAAA");
    rewrite_keeping_mtime(&a, "twin-one");
    rewrite_keeping_mtime(&b, "twin-two");
    let out = env.day("2026-01-05");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    rewrite_keeping_mtime(&f, "content-BBBB");
    let t = vol.join("t");
    swap(&a, &b, &t);
    // an incremental run on `dir` trusts size and mtime: the copy keeps the old content, and
    // its record says so (copy and record agree)
    let out = env.day("2026-01-06");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let copy = env.copy("2026-02", "vaultwarden", "data");
    assert_eq!(read(&copy.join("f")), "content-AAAA");
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-02"),
        Vec::<String>::new()
    );
    // --full reads the content
    let out = env.run(DAILY, &["--now", "2026-01-06T06:00:00Z", "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&copy.join("f")), "content-BBBB");
    assert_eq!(read(&copy.join("a")), "twin-two");
    assert_eq!(read(&copy.join("b")), "twin-one");
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-02"),
        Vec::<String>::new()
    );
    let out = ctl(&env, &["verify", "--pvc", "vaultwarden/data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // the first run of a month does the same, into a new week linked against the old one
    rewrite_keeping_mtime(&f, "content-CCCC");
    swap(&a, &b, &t);
    let out = env.day("2026-02-02");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let copy = env.copy("2026-06", "vaultwarden", "data");
    assert_eq!(read(&copy.join("f")), "content-CCCC");
    assert_eq!(read(&copy.join("a")), "twin-one");
    assert_eq!(read(&copy.join("b")), "twin-two");
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-06"),
        Vec::<String>::new()
    );
    // the older week is untouched
    let old = env.copy("2026-02", "vaultwarden", "data");
    assert_eq!(read(&old.join("f")), "content-BBBB");
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-02"),
        Vec::<String>::new()
    );
}

/// Bit rot in a copied file spreads to the next week through the hardlink; verify names it in
/// both and marks both damaged; the next daily run sends it again, so the current week is exact;
/// the older week stays marked, in list, status and the verify metrics.
#[test]
fn a_damaged_copy_is_marked_by_verify_and_repaired_by_the_next_run() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let rotten = env
        .copy("2026-02", "vaultwarden", "data")
        .join("dir/file-1.txt");
    flip_byte(&rotten);
    let out = env.day("2026-01-12");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&env, &["verify"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for week in ["2026-02", "2026-03"] {
        assert!(
            t.contains(&format!("FAILED pvc vaultwarden/data {week}")),
            "{week}: {t}"
        );
        assert!(env
            .root
            .join(format!("backup/pvc-data/{week}/.damaged/vaultwarden/data"))
            .is_file());
    }
    assert!(t.contains("2 versions marked damaged"), "{t}");
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "backup_verify_damaged_versions"),
        Some(2.0),
        "{prom}"
    );
    let list = text(&ctl(&env, &["list"]));
    assert!(list.contains("DAMAGED (1 file)"), "{list}");

    // the repair: the next run of the week sends the damaged file again, a new inode
    let out = env.run(DAILY, &["--now", "2026-01-12T06:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("damaged by verify"), "{t}");
    let repaired = env
        .copy("2026-03", "vaultwarden", "data")
        .join("dir/file-1.txt");
    assert_ne!(ino(&repaired), ino(&rotten), "the shared inode is broken");
    assert_eq!(read(&repaired), "vm-100-pvc-a file 1\n");
    let out = ctl(&env, &["verify", "--week", "2026-03"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&env, &["verify", "--week", "2026-02"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "backup_verify_damaged_versions"),
        Some(1.0),
        "{prom}"
    );
    let list = text(&ctl(&env, &["list"]));
    assert_eq!(list.matches("DAMAGED").count(), 1, "{list}");
    let status = text(&ctl(&env, &["--now", "2026-01-12T07:00:00Z", "status"]));
    assert!(
        status.contains("vaultwarden/data week 2026-02 is damaged"),
        "{status}"
    );
    // and the week after builds on the exact copy
    assert_eq!(env.day("2026-01-19").status.code(), Some(0));
    assert_eq!(
        ctl(&env, &["verify", "--week", "2026-04"]).status.code(),
        Some(0)
    );
}

/// The backup root on a 3 MiB tmpfs: a same-week rerun that fills the disk fails, and the
/// week's complete version from the morning is still complete, restorable and verifies clean.
#[test]
fn a_rerun_that_fills_the_disk_leaves_the_weeks_complete_version_as_it_was() {
    assert!(
        is_root(),
        "the full-disk test mounts a tmpfs: run scripts/test as root"
    );
    let env = Env::new();
    let backup = env.root.join("backup");
    let _guard = mount_tmpfs(&backup, "3m");
    let vol = env.vol("vm-100-pvc-a");
    write(&vol.join("keep/small"), "monday\n");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let before = state_of(&env.copy("2026-02", "vaultwarden", "data"));
    // Tuesday: 5 MiB of new data in a 3 MiB disk
    for i in 0..5 {
        write(&vol.join(format!("big/b{i}")), &"t".repeat(1 << 20));
    }
    write(&vol.join("keep/small"), "tuesday\n");
    let out = env.day("2026-01-06");
    let t = text(&out);
    assert_ne!(out.status.code(), Some(0), "{t}");
    assert!(
        env.marker("2026-02", "vaultwarden", "data").is_file(),
        "the failed run took the complete version away: {t}"
    );
    assert_eq!(
        state_of(&env.copy("2026-02", "vaultwarden", "data")),
        before
    );
    assert!(
        !env.staging("2026-02", "vaultwarden", "data").exists(),
        "{t}"
    );
    let out = ctl(&env, &["verify", "--pvc", "vaultwarden/data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dest = env.root.join("restored");
    let out = env.restore_vaultwarden(&dest);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(read(&dest.join("keep/small")), "monday\n");
    let status = text(&ctl(&env, &["--now", "2026-01-06T06:00:00Z", "status"]));
    assert!(!status.contains("never backed up"), "{status}");
}

/// SIGTERM in the middle of a same-week rerun: the run stops, and the week's complete version
/// is as it was, restorable and clean.
#[test]
fn sigterm_during_a_rerun_leaves_the_weeks_complete_version_as_it_was() {
    let mut env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let before = state_of(&env.copy("2026-02", "vaultwarden", "data"));
    env.make_rsync_slow();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-06T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let child = env
        .command(DAILY, &["--now", "2026-01-06T05:00:00Z"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Env::wait_for_entries(
        &env.staging("2026-02", "vaultwarden", "data").join("big"),
        2,
    );
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(env.marker("2026-02", "vaultwarden", "data").is_file());
    assert_eq!(
        state_of(&env.copy("2026-02", "vaultwarden", "data")),
        before
    );
    let out = ctl(&env, &["verify", "--pvc", "vaultwarden/data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Path → size and content of every file under `dir`.
fn state_of(dir: &Utf8Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in d.read_dir_utf8().unwrap().flatten() {
            let p = e.path().to_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let content = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((p.strip_prefix(dir).unwrap().to_string(), content));
        }
    }
    out.sort();
    out
}

/// A folder whose recorded mtime falls in the same second as the restore: rsync's default
/// one-second window left the restore's time on it and the check called a byte-identical
/// restore FAILED. The folders get a time in a coming second, and the restore runs in it.
#[test]
fn a_restore_in_the_same_second_as_the_folders_times_is_exact() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let second = now.as_secs() + 4;
    let stamp = std::time::UNIX_EPOCH + std::time::Duration::new(second, 300_000_000);
    for d in [vol.clone(), vol.join("dir")] {
        std::fs::File::open(&d)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(stamp))
            .unwrap();
    }
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let start = std::time::UNIX_EPOCH + std::time::Duration::new(second, 20_000_000);
    if let Ok(wait) = start.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let dest = env.root.join("restored");
    let out = env.restore_vaultwarden(&dest);
    let ran_in = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        ran_in, second,
        "the restore did not run within the folders' second"
    );
}

/// A run that SIGTERM cannot end the usual way: rsync leaves a child in a session of its own
/// holding its output pipe, so the wait for rsync's output never returns even after rsync is
/// killed. The watchdog ends the run a grace period after the signal: mounts detached,
/// `last_run_success 0` published, exit 1; systemd never needs SIGKILL.
#[test]
fn sigterm_ends_a_run_stuck_in_a_step_within_seconds() {
    let mut env = Env::new();
    // the big files and a bandwidth limit: about 10 s of copy, time to signal it
    env.make_rsync_slow();
    let wrapper = env.root.join("stuck-rsync");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsetsid sh -c 'sleep 120' {} &\nexec rsync --bwlimit=256 \"$@\"\n",
            env.root
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.rsync = Some(wrapper);
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let child = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
        .env("HOMELAB_BACKUP_STOP_GRACE_SECONDS", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Env::wait_for_entries(
        &env.staging("2026-02", "vaultwarden", "data").join("big"),
        2,
    );
    let signalled = std::time::Instant::now();
    sigterm(&child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let out = rx.recv_timeout(std::time::Duration::from_secs(30));
    kill_all_mentioning(env.root.as_str());
    let out = out.expect("daily-backup did not end within 30 s of SIGTERM");
    let t = text(&out);
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(10),
        "{:?}: {t}",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("still running 2 s after SIGTERM"), "{t}");
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
    assert!(!env.marker("2026-02", "vaultwarden", "data").exists());
    let prom = std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "daily_backup_last_run_success"),
        Some(0.0),
        "{prom}"
    );
}

/// A FIFO where the binaries expect a file they did not write: each is refused by name and no
/// run blocks (a FIFO record hung daily-backup in `open` for good, both locks held, the
/// snapshot mounted). Each run is bounded by 30 s.
#[test]
fn fifos_in_place_of_records_markers_state_env_and_config_files_never_block() {
    fn mkfifo(p: &camino::Utf8Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(p);
        let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
        assert!(ok, "mkfifo {p}");
    }
    fn bounded(mut cmd: Command) -> Output {
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!("{cmd:?} blocked for 30 s on a FIFO")
            })
    }
    let env = Env::with_config("[offsite]\ndestination = \"/nonexistent/offsite\"\n");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let week = env.root.join("backup/pvc-data/2026-02");
    // the record, the damage list and the SQLite sources file of the week a rerun builds on
    mkfifo(&week.join(".records/vaultwarden/data"));
    mkfifo(&week.join(".damaged/nextcloud/files"));
    mkfifo(
        &env.root
            .join("backup/sqlite-backup/2026-02/vaultwarden/.data.sqlite-sources.json"),
    );
    let out = bounded(env.command(DAILY, &["--now", "2026-01-06T05:00:00Z"]));
    let t = text(&out);
    assert!(t.contains("not a regular file (a FIFO)"), "{t}");
    assert!(env.leftover_mounts().is_empty(), "{t}");
    // the run replaced the FIFO record with a real one
    assert!(
        std::fs::symlink_metadata(week.join(".records/vaultwarden/data"))
            .unwrap()
            .is_file()
    );
    // a completion marker
    mkfifo(&env.marker("2026-02", "nextcloud", "files"));
    let out = bounded(env.command(CTL, &["list"]));
    assert_ne!(out.status.code(), Some(101), "{}", text(&out));
    // the offsite state
    mkfifo(&env.root.join("backup/.offsite-state.json"));
    let out = bounded(env.command(CTL, &["status"]));
    assert!(
        text(&out).contains("not a regular file (a FIFO)"),
        "{}",
        text(&out)
    );
    // the config
    let config = env.root.join("fifo.toml");
    mkfifo(&config);
    let out = bounded({
        let mut c = Command::new(CTL);
        c.args(["--config", config.as_str(), "list"]);
        c
    });
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a regular file (a FIFO)"),
        "{}",
        text(&out)
    );
    // backup-dump's env file
    let dest = env.root.join("dumps");
    std::fs::create_dir_all(&dest).unwrap();
    let secrets = env.root.join("secrets.env");
    mkfifo(&secrets);
    let out = bounded({
        let mut c = Command::new(env!("CARGO_BIN_EXE_backup-dump"));
        c.env_remove("HOMELAB_BACKUP_CONFIG").args([
            "--name",
            "pg",
            "--dest",
            dest.as_str(),
            "--env-file",
            secrets.as_str(),
            "--",
            "true",
        ]);
        c
    });
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("not a regular file (a FIFO)"),
        "{}",
        text(&out)
    );
}

/// status (issue 18, item 8): a PVC backed up before whose volume is gone is a gap, named; an
/// empty root with no volume is a gap; a `--now` before the newest backup is said, and no age
/// is negative.
#[test]
fn status_names_pvcs_with_no_volume_an_empty_root_and_a_clock_behind() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // the volume of nextcloud/files is renamed away (no longer a PVC volume)
    std::fs::rename(env.vol("vm-101-pvc-b"), env.vol("vm-101-disk-1")).unwrap();
    for day in [
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
        "2026-01-09",
        "2026-01-10",
    ] {
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    let out = ctl(&env, &["--now", "2026-01-10T06:00:00Z", "status"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("nextcloud/files") && l.contains("no volume found for it")),
        "{t}"
    );
    // a --now before the newest backup
    let out = ctl(&env, &["--now", "2026-01-01T00:00:00Z", "status"]);
    let t = text(&out);
    assert!(t.contains("earlier than the newest backup"), "{t}");
    assert!(!t.contains(" -"), "a negative age: {t}");

    // an empty backup root and no volume at all
    let empty = Env::new();
    for (lv, _, _) in VOLUMES {
        std::fs::remove_dir_all(empty.vol(lv)).unwrap();
    }
    let cfg = std::fs::read_to_string(empty.config()).unwrap();
    let cfg = cfg
        .split("[[kubernetes.volume]]")
        .next()
        .unwrap()
        .to_owned()
        + &cfg[cfg.find("[pvc-backup]").unwrap()..];
    std::fs::write(empty.config(), cfg).unwrap();
    let out = ctl(&empty, &["status"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("nothing is protected"), "{t}");
}

/// Found by the property test in CI: a file with two links is always sent (rsync `-H` links
/// only what it transfers), so a rewrite that keeps its size and mtime reached the copy while
/// the record kept the old md5 (taken from the base because size and mtime matched). Whatever
/// is sent has its md5 read from the snapshot.
#[test]
fn a_sent_file_gets_the_md5_of_what_was_sent() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    let h = vol.join("linked");
    rewrite_keeping_mtime(&h, "first-content");
    std::fs::hard_link(&h, vol.join("linked-too")).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    rewrite_keeping_mtime(&h, "other-content");
    let out = env.day("2026-01-06");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-02"),
        Vec::<String>::new()
    );
    let out = ctl(&env, &["verify", "--week", "2026-02"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Issue 24: from record format 4 a file's digest is xxh3-128, and a version an older release
/// left (format 3, md5 digests) keeps working: verify checks its files by md5 and finds a
/// flipped byte; the next week carries the md5s of unchanged files over without reading them
/// (the record says which kind each is); a full pass compares by the base's kind, so it sends
/// nothing that did not change; what is read again gets an xxh3 digest.
#[test]
fn a_format_3_record_keeps_working_after_the_upgrade() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let rec_path = env
        .root
        .join("backup/pvc-data/2026-02/.records/vaultwarden/data");
    let copy = env.copy("2026-02", "vaultwarden", "data");
    let old: Vec<backup_core::FileEntry> =
        backup_core::decode_record(&std::fs::read(&rec_path).unwrap())
            .unwrap()
            .into_iter()
            .map(|mut e| {
                if e.kind == backup_core::EntryKind::File {
                    let bytes = std::fs::read(
                        copy.as_std_path()
                            .join(std::ffi::OsStr::from_bytes(&e.path)),
                    )
                    .unwrap();
                    e.digest = md5::compute(bytes).0;
                }
                e.digest_kind = backup_core::ContentHash::Md5;
                e
            })
            .collect();
    std::fs::write(&rec_path, backup_core::encode_record_format3(&old)).unwrap();
    let out = ctl(&env, &["verify", "--week", "2026-02"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // a new week, nothing changed: the md5s are carried over, the files linked
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let kinds = |week: &str| -> Vec<(String, backup_core::ContentHash)> {
        let rec = env
            .root
            .join(format!("backup/pvc-data/{week}/.records/vaultwarden/data"));
        backup_core::decode_record(&std::fs::read(rec).unwrap())
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == backup_core::EntryKind::File)
            .map(|e| (String::from_utf8_lossy(&e.path).into_owned(), e.digest_kind))
            .collect()
    };
    let carried = kinds("2026-03");
    assert!(!carried.is_empty());
    assert!(
        carried
            .iter()
            .all(|(_, k)| *k == backup_core::ContentHash::Md5),
        "{carried:?}"
    );
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-03"),
        Vec::<String>::new()
    );
    // a full pass the same week: nothing is sent again (same inodes), the md5s stay
    let file = env
        .copy("2026-03", "vaultwarden", "data")
        .join("dir/file-1.txt");
    let before = ino(&file);
    let out = env.run(DAILY, &["--now", "2026-01-13T05:00:00Z", "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        ino(&file),
        before,
        "an unchanged file was sent again by the full pass"
    );
    assert_eq!(kinds("2026-03"), carried);
    // a changed file is read again: xxh3
    write(
        &env.vol("vm-100-pvc-a").join("dir/file-2.txt"),
        "changed after the upgrade\n",
    );
    assert_eq!(env.day("2026-01-14").status.code(), Some(0));
    let after = kinds("2026-03");
    let changed = after.iter().find(|(p, _)| p == "dir/file-2.txt").unwrap();
    assert_eq!(changed.1, backup_core::ContentHash::Xxh3, "{after:?}");
    assert_eq!(
        record_mismatches(&env, "vaultwarden", "data", "2026-03"),
        Vec::<String>::new()
    );
    // bit rot under an md5 entry is found, and named as an md5 mismatch
    flip_byte(
        &env.copy("2026-03", "vaultwarden", "data")
            .join("dir/file-3.txt"),
    );
    let out = ctl(&env, &["verify", "--week", "2026-03"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("content differs from the record (md5)"),
        "{}",
        text(&out)
    );
}

/// Damage found by a verify of one week only is never linked into the next week: the first run
/// of the new week sends the file from the snapshot, and the new week verifies clean.
#[test]
fn damage_marked_in_the_week_linked_against_is_sent_again_into_the_new_week() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let rotten = env
        .copy("2026-02", "vaultwarden", "data")
        .join("dir/file-2.txt");
    flip_byte(&rotten);
    let out = ctl(&env, &["verify", "--week", "2026-02"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = env.day("2026-01-12");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let fresh = env
        .copy("2026-03", "vaultwarden", "data")
        .join("dir/file-2.txt");
    assert_ne!(ino(&fresh), ino(&rotten), "the damaged inode was linked");
    assert_eq!(read(&fresh), "vm-100-pvc-a file 2\n");
    let out = ctl(&env, &["verify", "--week", "2026-03"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // and damage marked in an older week, in an inode the linked week shares, is not linked
    // either: week 03 and 04 share file-3's inode; verify of week 03 only marks it there
    assert_eq!(env.day("2026-01-19").status.code(), Some(0));
    let shared = env
        .copy("2026-03", "vaultwarden", "data")
        .join("dir/file-3.txt");
    flip_byte(&shared);
    let out = ctl(&env, &["verify", "--week", "2026-03"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = env.day("2026-01-26");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&env, &["verify", "--week", "2026-05"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
