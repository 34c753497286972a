//! daily-backup with real rsync on the `dir` backend: weeks, hardlinks, guards, kills, locks.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use backup_host::lock::RunLock;
use chrono::{Duration as Days, NaiveDate};

use crate::harness::*;

fn days(from: &str, to: &str) -> Vec<String> {
    let (mut d, end) = (
        from.parse::<NaiveDate>().unwrap(),
        to.parse::<NaiveDate>().unwrap(),
    );
    let mut out = Vec::new();
    while d <= end {
        out.push(d.to_string());
        d += Days::days(1);
    }
    out
}

#[test]
fn daily_runs_across_new_year_keep_the_four_newest_iso_weeks() {
    let env = Env::new();
    for (i, day) in days("2025-12-10", "2026-01-12").iter().enumerate() {
        write(
            &env.vol("vm-100-pvc-a").join("changing.txt"),
            &format!("day {i}\n"),
        );
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    // 2025-12-29 .. 2026-01-04 is ISO week 2026-01; 2026-01-12 starts 2026-03
    assert_eq!(env.weeks(), ["2025-52", "2026-01", "2026-02", "2026-03"]);
    for week in env.weeks() {
        for (_, ns, pvc) in VOLUMES {
            assert!(
                env.marker(&week, ns, pvc).is_file(),
                "{week} {ns}/{pvc} is not complete"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(
            env.copy("2026-03", "vaultwarden", "data")
                .join("changing.txt")
        )
        .unwrap(),
        "day 33\n"
    );
    // snapshots older than keep-days = 7 are pruned by both jobs
    let snaps = std::fs::read_dir(env.root.join("snapshots"))
        .unwrap()
        .count();
    // at 05:00 the snapshot taken 7 days ago at 03:00 is just past keep-days: 7 remain per volume
    assert_eq!(snaps, 3 * 7, "expected 7 snapshots per volume");
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}

#[test]
fn unchanged_files_are_hardlinks_and_changes_never_reach_an_older_week() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    for name in ["content", "mode", "owner", "same"] {
        write(&vol.join(name), &format!("{name} v1\n"));
    }
    std::fs::set_permissions(vol.join("mode"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0)); // week 2026-02
    assert_eq!(env.day("2026-01-12").status.code(), Some(0)); // week 2026-03, Monday
    let (old, new) = (
        env.copy("2026-02", "vaultwarden", "data"),
        env.copy("2026-03", "vaultwarden", "data"),
    );
    for name in ["content", "mode", "owner", "same"] {
        assert_eq!(
            ino(&old.join(name)),
            ino(&new.join(name)),
            "{name} not hardlinked across weeks"
        );
    }
    // Wednesday: content, mode only and owner only change; the week's second run goes into 2026-03
    write(&vol.join("content"), "content v2\n");
    std::fs::set_permissions(vol.join("mode"), std::fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        std::os::unix::fs::lchown(vol.join("owner"), Some(4321), Some(4321)).unwrap();
    } else {
        eprintln!("not root: the owner-only change is not exercised (chown needs root)");
    }
    let out = env.day("2026-01-14");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let meta = |p: camino::Utf8PathBuf| std::fs::symlink_metadata(p).unwrap();
    assert_eq!(
        std::fs::read_to_string(old.join("content")).unwrap(),
        "content v1\n"
    );
    assert_eq!(
        meta(old.join("mode")).mode() & 0o777,
        0o644,
        "mode change leaked into the older week"
    );
    assert_eq!(
        meta(old.join("owner")).uid(),
        0,
        "owner change leaked into the older week"
    );
    assert_eq!(
        std::fs::read_to_string(new.join("content")).unwrap(),
        "content v2\n"
    );
    assert_eq!(meta(new.join("mode")).mode() & 0o777, 0o600);
    if is_root() {
        assert_eq!(meta(new.join("owner")).uid(), 4321);
    }
    assert_eq!(
        ino(&old.join("same")),
        ino(&new.join("same")),
        "unchanged file lost its hardlink"
    );
}

#[test]
fn an_emptied_volume_is_refused_and_its_copy_kept_while_the_others_run() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let vol = env.vol("vm-101-pvc-b");
    std::fs::remove_dir_all(&vol).unwrap();
    std::fs::create_dir(&vol).unwrap();
    write(&env.vol("vm-100-pvc-a").join("new.txt"), "new\n");
    for day in ["2026-01-06", "2026-01-12"] {
        // same week (the copy itself has files), then next week (the link-dest has files)
        let out = env.day(day);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(3), "{t}");
        assert!(
            t.contains("FAILED  nextcloud/files") && t.contains("is empty but the last copy"),
            "{t}"
        );
        assert!(t.contains("failed: nextcloud/files"), "{t}");
    }
    let kept = env.copy("2026-02", "nextcloud", "files");
    assert_eq!(
        std::fs::read_dir(kept.join("dir")).unwrap().count(),
        5,
        "the copy was wiped"
    );
    assert!(env.marker("2026-02", "nextcloud", "files").is_file());
    assert!(!env.marker("2026-03", "nextcloud", "files").exists());
    assert!(
        env.copy("2026-03", "vaultwarden", "data")
            .join("new.txt")
            .is_file(),
        "the other volumes did not run"
    );
    let prom = std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap();
    assert!(
        gauge(&prom, "daily_backup_last_run_success") == Some(0.0),
        "{prom}"
    );
}

#[test]
fn a_run_killed_mid_rsync_leaves_the_week_incomplete_and_the_next_run_completes_it() {
    let mut env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0)); // week 2026-02 complete
                                                              // enough data that a bandwidth-limited rsync is still busy when we kill it
    env.make_rsync_slow();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-12T03:00:00Z"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let mut child = env
        .command(DAILY, &["--now", "2026-01-12T05:00:00Z"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = env.staging("2026-03", "vaultwarden", "data").join("big");
    Env::wait_for_entries(&partial, 2);
    // SIGKILL to the whole process group, as systemd does to the unit's cgroup
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::Kill,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        !env.marker("2026-03", "vaultwarden", "data").exists(),
        "a killed copy was marked complete"
    );

    // the next week's plan links against 2026-02, never the incomplete 2026-03
    env.rsync = None;
    let plan = env.run(
        DAILY,
        &["--now", "2026-01-19T05:00:00Z", "--dry-run", "--json"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let vw = plan["plan"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["lv"] == "vm-100-pvc-a")
        .unwrap()
        .clone();
    assert_eq!(vw["link_week"], "2026-02", "{vw}");

    // the next run (same week) completes it, and unmounts what the killed run left mounted
    let out = env.run(DAILY, &["--now", "2026-01-12T06:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    if is_root() {
        assert!(t.contains("left mounted by an interrupted run"), "{t}");
    }
    assert!(env.marker("2026-03", "vaultwarden", "data").is_file());
    assert!(
        t.contains("unfinished update"),
        "the leftovers are named: {t}"
    );
    assert!(!partial.exists(), "the killed run's staging is gone");
    let copied = env.copy("2026-03", "vaultwarden", "data").join("big");
    assert_eq!(std::fs::read_dir(&copied).unwrap().count(), 40);
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
    let plan = env.run(
        DAILY,
        &["--now", "2026-01-19T05:00:00Z", "--dry-run", "--json"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(plan["plan"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["link_week"] == "2026-03"));
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_75_at_once() {
    let env = Env::new();
    let _held = RunLock::acquire(&env.root.join("backup/.daily-backup.lock")).unwrap();
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(text(&out).contains("another run holds the lock"));
    assert!(env.weeks().is_empty(), "the locked-out run wrote something");
}

#[test]
fn file_names_with_newlines_dashes_and_colons_survive() {
    let env = Env::new();
    let names = [
        "new\nline",
        "-rf",
        "--delete",
        "host:path",
        "sp ace",
        "ünïcode",
    ];
    for n in names {
        write(&env.vol("vm-100-pvc-a").join("odd").join(n), n);
    }
    let out = env.day("2026-01-05");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for n in names {
        let copy = env
            .copy("2026-02", "vaultwarden", "data")
            .join("odd")
            .join(n);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), n);
    }
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new();
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z", "--dry-run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("would take vm-100-pvc-a-snap-20260105050000 (no snapshot yet)"),
        "{t}"
    );
    assert!(
        std::fs::read_dir(env.root.join("backup"))
            .unwrap()
            .next()
            .is_none(),
        "dry run wrote to the backup root"
    );
    assert!(
        std::fs::read_dir(env.root.join("snapshots"))
            .unwrap()
            .next()
            .is_none(),
        "dry run took a snapshot"
    );
}

#[test]
fn a_stale_snapshot_is_replaced_by_a_fresh_one() {
    let env = Env::new();
    assert_eq!(
        env.run(SNAPSHOT, &["--now", "2026-01-03T03:00:00Z"])
            .status
            .code(),
        Some(0)
    );
    write(
        &env.vol("vm-100-pvc-a").join("after-snapshot.txt"),
        "written after the old snapshot\n",
    );
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("took snapshot vm-100-pvc-a-snap-20260105050000"),
        "{t}"
    );
    assert!(
        env.copy("2026-02", "vaultwarden", "data")
            .join("after-snapshot.txt")
            .is_file(),
        "copied old data"
    );
}

#[test]
fn bad_config_exits_2_naming_file_and_key() {
    let env = Env::with_config("[bogus]\nkey = 1\n");
    let out = env.run(DAILY, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("config.toml: `bogus`: unknown field `bogus`"),
        "{t}"
    );
}

#[test]
fn a_missing_backup_root_is_refused() {
    let env = Env::new();
    std::fs::remove_dir(env.root.join("backup")).unwrap();
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("is the backup disk mounted?"), "{t}");
    assert!(!env.root.join("backup").exists());
}

#[test]
fn json_output_is_one_document() {
    let env = Env::new();
    env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z"]);
    let out = env.run(DAILY, &["--now", "2026-01-05T05:00:00Z", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["week"], "2026-02");
    assert_eq!(v["exit"], "success");
    assert_eq!(v["volumes"].as_array().unwrap().len(), 3);
    assert_eq!(v["volumes"][0]["stats"]["files"], 5);
}

#[test]
fn sigterm_stops_the_copy_unmounts_and_leaves_the_week_incomplete() {
    let mut env = Env::new();
    env.make_rsync_slow();
    assert_eq!(
        env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z"])
            .status
            .code(),
        Some(0)
    );
    let child = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Env::wait_for_entries(
        &env.staging("2026-02", "vaultwarden", "data").join("big"),
        2,
    );
    // SIGTERM to daily-backup alone, as `systemctl stop` with KillMode=mixed does
    let signalled = std::time::Instant::now();
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    // the rsync was killed, not waited for (the whole copy takes about 10 s), and what it
    // staged is gone: no half copy is left on the disk, and none became the week's version
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(6),
        "it kept copying after SIGTERM: {t}"
    );
    assert!(
        !env.staging("2026-02", "vaultwarden", "data").exists(),
        "{t}"
    );
    assert!(!env.copy("2026-02", "vaultwarden", "data").exists(), "{t}");
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("interrupted"), "{t}");
    assert!(!env.marker("2026-02", "vaultwarden", "data").exists());
    assert!(
        env.leftover_mounts().is_empty(),
        "left mounted after SIGTERM: {:?}",
        env.leftover_mounts()
    );
    assert!(
        t.contains("skipped"),
        "volumes after the interrupted one should be skipped: {t}"
    );
}

#[test]
fn sqlite_databases_in_a_snapshot_are_copied_and_a_corrupt_one_named() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    std::fs::create_dir_all(vol.join("data")).unwrap();
    fixtures::sqlite::wal_uncheckpointed(
        vol.join("data/db.sqlite3").as_std_path(),
        fixtures::sqlite::Shm::Missing,
    );
    fixtures::sqlite::truncated(vol.join("data/broken.db").as_std_path(), 5000);
    let out = env.day("2026-01-05");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("sqlite FAILED data/broken.db"), "{t}");
    assert!(
        t.contains("failed: sqlite vaultwarden/data:data/broken.db"),
        "{t}"
    );
    let copies = env
        .root
        .join("backup/sqlite-backup/2026-02/vaultwarden/data/data");
    assert_eq!(
        fixtures::sqlite::count_rows(copies.join("db.sqlite3").as_std_path()),
        (fixtures::sqlite::COMMITTED, 0)
    );
    assert!(
        !copies.join("broken.db").exists(),
        "a corrupt database was stored as a backup"
    );
    // scratch left by a run killed mid-copy is cleaned by the next run, and nothing else
    std::fs::create_dir_all(copies.join(".sqlite-recover-killed/x")).unwrap();
    std::fs::write(copies.join(".sqlite-copy-killed"), "half").unwrap();
    std::fs::write(copies.join(".keep-me"), "operator's").unwrap();
    assert_eq!(env.day("2026-01-06").status.code(), Some(3));
    assert!(
        !copies.join(".sqlite-recover-killed").exists()
            && !copies.join(".sqlite-copy-killed").exists()
    );
    assert!(copies.join(".keep-me").exists());
    // the file copy itself is complete: the corrupt database is a finding, not a failed copy
    assert!(env.marker("2026-02", "vaultwarden", "data").is_file());
    let prom = std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap();
    assert!(
        gauge(&prom, "daily_backup_sqlite_failed") == Some(1.0)
            && gauge(&prom, "daily_backup_sqlite_copied") == Some(1.0),
        "{prom}"
    );
}
