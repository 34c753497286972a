//! The one path every binary takes: an early failure still publishes `*_last_run_success 0`
//! (and keeps the last success timestamp), a dry run changes nothing anywhere, and the snapshot
//! lock is shared between `lvm-pvc-snapshot` and `daily-backup`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::*;
use crate::pushgateway_real::{gateway, scrape_all};

const SQLITE: &str = env!("CARGO_BIN_EXE_sqlite-backup");

fn prom(dir: &Utf8Path, job: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{job}.prom"))).unwrap_or_default()
}

/// A line of the Pushgateway's exposition for `name` with `job="<job>"`, its value.
fn pushed(text: &str, name: &str, job: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains(&format!("job=\"{job}\"")))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[test]
fn daily_backup_with_the_backup_disk_gone_publishes_failure_and_keeps_the_last_success() {
    let gw = gateway();
    let env = Env::with_config("");
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "[metrics]\n",
        &format!("[metrics]\npushgateway = \"http://127.0.0.1:{}\"\n", gw.1),
    );
    std::fs::write(env.config(), cfg).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let metrics = env.root.join("metrics");
    let ts = gauge(
        &prom(&metrics, "daily-backup"),
        "daily_backup_last_success_timestamp",
    );
    assert!(ts.is_some());
    // the backup disk is not mounted: its folder is gone
    std::fs::rename(env.root.join("backup"), env.root.join("unmounted")).unwrap();
    let out = env.run(DAILY, &["--now", "2026-01-06T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is the backup disk mounted?"),
        "{}",
        text(&out)
    );
    let p = prom(&metrics, "daily-backup");
    assert_eq!(gauge(&p, "daily_backup_last_run_success"), Some(0.0), "{p}");
    assert_eq!(gauge(&p, "daily_backup_last_success_timestamp"), ts, "{p}");
    let g = scrape_all(gw.1);
    assert_eq!(
        pushed(&g, "daily_backup_last_run_success", "daily-backup"),
        Some(0.0),
        "{g}"
    );
    assert_eq!(
        pushed(&g, "daily_backup_last_success_timestamp", "daily-backup"),
        ts,
        "{g}"
    );
}

#[test]
fn lvm_pvc_snapshot_with_a_failing_listing_publishes_failure_and_keeps_the_last_success() {
    let gw = gateway();
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "[metrics]\n",
        &format!("[metrics]\npushgateway = \"http://127.0.0.1:{}\"\n", gw.1),
    );
    std::fs::write(env.config(), cfg).unwrap();
    let ok = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let metrics = env.root.join("metrics");
    let ts = gauge(
        &prom(&metrics, "lvm-pvc-snapshot"),
        "lvm_snapshot_last_success_timestamp",
    );
    assert!(ts.is_some());
    std::fs::remove_dir_all(env.root.join("volumes")).unwrap();
    let out = env.run(SNAPSHOT, &["--now", "2026-01-06T03:00:00Z", "create"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let p = prom(&metrics, "lvm-pvc-snapshot");
    assert_eq!(gauge(&p, "lvm_snapshot_last_run_success"), Some(0.0), "{p}");
    assert_eq!(gauge(&p, "lvm_snapshot_last_success_timestamp"), ts, "{p}");
    let g = scrape_all(gw.1);
    assert_eq!(
        pushed(&g, "lvm_snapshot_last_run_success", "lvm-pvc-snapshot"),
        Some(0.0),
        "{g}"
    );
    assert_eq!(
        pushed(
            &g,
            "lvm_snapshot_last_success_timestamp",
            "lvm-pvc-snapshot"
        ),
        ts,
        "{g}"
    );
}

fn sqlite_backup(root: &Utf8Path, db: &Utf8Path, now: &str, extra: &[&str]) -> Output {
    // extra: more flags (a Pushgateway)
    Command::new(SQLITE)
        .args(["backup", "--name", "vw", "--db", db.as_str(), "--dest"])
        .arg(root.join("backup"))
        .args(["--now", now, "--textfile-dir"])
        .arg(root.join("metrics"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn sqlite_backup_and_check_that_fail_early_publish_failure_and_keep_the_last_success() {
    let gw = gateway();
    let push = format!("http://127.0.0.1:{}", gw.1);
    let d = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
    let db = root.join("data/db.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    fixtures::sqlite::clean(db.as_std_path());
    let ok = sqlite_backup(
        &root,
        &db,
        "2026-01-05T06:00:00Z",
        &["--pushgateway", &push],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let metrics = root.join("metrics");
    let ts = gauge(
        &prom(&metrics, "vw-backup"),
        "backup_last_success_timestamp",
    );
    assert!(ts.is_some());
    // the volume is not mounted: no database there
    let gone = root.join("gone/db.sqlite3");
    let out = sqlite_backup(
        &root,
        &gone,
        "2026-01-05T12:00:00Z",
        &["--pushgateway", &push],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let p = prom(&metrics, "vw-backup");
    assert_eq!(gauge(&p, "backup_last_run_success"), Some(0.0), "{p}");
    assert_eq!(gauge(&p, "backup_last_success_timestamp"), ts, "{p}");
    // job labels keep two jobs sharing one textfile folder apart
    assert!(p.contains("job=\"vw-backup\""), "{p}");
    let g = scrape_all(gw.1);
    assert_eq!(
        pushed(&g, "backup_last_run_success", "vw-backup"),
        Some(0.0),
        "{g}"
    );
    assert_eq!(
        pushed(&g, "backup_last_success_timestamp", "vw-backup"),
        ts,
        "{g}"
    );
    let out = Command::new(SQLITE)
        .args([
            "check",
            "--name",
            "vw",
            "--db",
            gone.as_str(),
            "--textfile-dir",
        ])
        .arg(&metrics)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let p = prom(&metrics, "vw-integrity-check");
    assert_eq!(gauge(&p, "vw_sqlite_integrity_ok"), Some(0.0), "{p}");
}

/// Every entry under `dirs`: path → (kind, mode, size, mtime, content hash).
fn state(dirs: &[Utf8PathBuf]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        walk_into(dir.as_std_path(), &mut out);
        if !dir.exists() {
            out.insert(dir.to_string(), "absent".to_owned());
        }
    }
    out
}

fn walk_into(p: &std::path::Path, out: &mut BTreeMap<String, String>) {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    let content = if m.is_file() {
        let bytes = std::fs::read(p).unwrap_or_default();
        format!("{:x}", md5_like(&bytes))
    } else {
        String::new()
    };
    out.insert(
        p.display().to_string(),
        format!(
            "{:o} {} {}.{} {content}",
            m.mode(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ),
    );
    if m.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            walk_into(&e.path(), out);
        }
    }
}

/// A content fingerprint (FNV-1a, 64 bit): enough to see a change.
fn md5_like(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn dry_runs_of_every_binary_change_nothing() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    fixtures::sqlite::clean(env.vol("vm-100-pvc-a").join("app.db").as_std_path());
    let watched = [
        env.root.join("backup"),
        env.root.join("snapshots"),
        env.root.join("metrics"),
        env.root.join("lock"),
        env.root.join("mnt"),
        env.root.join("hand"),
    ];
    let before = state(&watched);
    let db = env.vol("vm-100-pvc-a").join("app.db");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            SNAPSHOT,
            vec!["--dry-run", "--now", "2026-01-20T03:00:00Z", "create"],
        ),
        (
            SNAPSHOT,
            vec!["--dry-run", "--now", "2026-01-20T03:00:00Z", "prune"],
        ),
        (DAILY, vec!["--dry-run", "--now", "2026-01-20T05:00:00Z"]),
        (
            DAILY,
            vec!["--dry-run", "--json", "--now", "2026-01-20T05:00:00Z"],
        ),
    ];
    for (bin, args) in &runs {
        let out = env.run(bin, args);
        assert_eq!(out.status.code(), Some(0), "{bin} {args:?}: {}", text(&out));
    }
    let hand = env.root.join("hand");
    let copy_dest = hand.join("copy.db");
    for args in [
        vec![
            "backup",
            "--name",
            "vw",
            "--db",
            db.as_str(),
            "--dest",
            hand.as_str(),
        ],
        vec!["check", "--name", "vw", "--db", db.as_str()],
        vec!["copy", db.as_str(), copy_dest.as_str()],
    ] {
        let out = Command::new(SQLITE)
            .arg("--config")
            .arg(env.config())
            .arg("--dry-run")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "sqlite-backup {args:?}: {}",
            text(&out)
        );
    }
    let after = state(&watched);
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    assert!(changed.is_empty(), "a dry run changed: {changed:?}");
}

#[test]
fn the_snapshot_lock_is_shared_by_daily_backup_and_lvm_pvc_snapshot() {
    let mut env = Env::new();
    env.make_rsync_slow();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let log = env.root.join("daily.log");
    let mut daily = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    Env::wait_for_entries(
        &env.staging("2026-02", "vaultwarden", "data").join("big"),
        2,
    );
    for args in [
        vec!["--now", "2026-01-05T05:01:00Z", "create"],
        vec!["--now", "2026-01-20T05:01:00Z", "prune"],
    ] {
        let out = env.run(SNAPSHOT, &args);
        assert_eq!(out.status.code(), Some(75), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("snapshots.lock"), "{}", text(&out));
    }
    // --wait: the second holder waits for the first instead
    let waited = env.run(
        SNAPSHOT,
        &["--wait", "120", "--now", "2026-01-05T05:02:00Z", "list"],
    );
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited));
    let waited = env.run(
        SNAPSHOT,
        &["--wait", "120", "--now", "2026-01-05T05:02:00Z", "create"],
    );
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited));
    assert!(
        daily.wait().unwrap().success(),
        "daily-backup failed:\n{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
    );
}
