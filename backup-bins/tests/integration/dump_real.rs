//! backup-dump end to end: real commands, real files, the textfile metrics; failures leave the
//! destination exactly as it was, rotation only after a success, secrets nowhere but the
//! command's environment.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};
use chrono::{Duration, TimeZone, Utc};

use crate::harness::{gauge, text};

pub const DUMP: &str = env!("CARGO_BIN_EXE_backup-dump");

/// `backup-dump --name NAME --dest DEST`, with no config from the environment.
pub fn dump_command(name: &str, dest: &Utf8Path) -> Command {
    let mut c = Command::new(DUMP);
    c.env_remove("HOMELAB_BACKUP_CONFIG")
        .args(["--name", name, "--dest", dest.as_str()]);
    c
}

struct Dest {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Dest {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(root.join("dumps")).unwrap();
        std::fs::create_dir_all(root.join("metrics")).unwrap();
        Self { _dir: dir, root }
    }

    fn dumps(&self) -> Utf8PathBuf {
        self.root.join("dumps")
    }

    /// `backup-dump --name NAME --dest <dumps> <flags> -- <command>`, no config file (a CronJob's
    /// way).
    fn run(&self, name: &str, flags: &[&str], command: &[&str]) -> Output {
        dump_command(name, &self.dumps())
            .args(["--textfile-dir", self.root.join("metrics").as_str()])
            .args(flags)
            .arg("--")
            .args(command)
            .output()
            .unwrap()
    }

    /// name → (size, mtime, inode) of everything in the dump folder, dot files included.
    fn listing(&self) -> BTreeMap<String, (u64, i64, u64)> {
        std::fs::read_dir(self.dumps())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    (m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000, m.ino()),
                )
            })
            .collect()
    }

    fn metric(&self, name: &str, series: &str) -> Option<f64> {
        let prom =
            std::fs::read_to_string(self.root.join(format!("metrics/{name}-backup.prom"))).ok()?;
        gauge(&prom, series)
    }

    /// Files of `name` in the dump folder, sorted.
    fn files_of(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .listing()
            .into_keys()
            .filter(|f| f.starts_with(&format!("{name}-")))
            .collect();
        v.sort();
        v
    }
}

fn gunzip(p: &Utf8Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_good_dump_is_streamed_gzipped_checked_and_named_by_its_stamp() {
    let d = Dest::new();
    let out = d.run(
        "postgresql",
        &["--now", "2026-03-01T00:00:00Z", "--ext", "sql"],
        &["seq", "1", "200000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = d.dumps().join("postgresql-20260301-000000.sql.gz");
    let want = Command::new("seq")
        .args(["1", "200000"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(gunzip(&file), want);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        d.listing().len(),
        2,
        "the file and the lock: {:?}",
        d.listing()
    );
    assert_eq!(d.metric("postgresql", "backup_last_run_success"), Some(1.0));
    assert_eq!(
        d.metric("postgresql", "backup_last_success_timestamp"),
        Some(
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
                .unwrap()
                .timestamp() as f64
        )
    );
    assert_eq!(
        d.metric("postgresql", "backup_dump_bytes"),
        Some(want.len() as f64)
    );
    assert!(
        text(&out).contains("postgresql-20260301-000000.sql.gz"),
        "{}",
        text(&out)
    );
    // the same second again (a manual run right after the CronJob's, issue 21 item 7): never
    // overwritten, a name of its own that sorts after the first
    let again = d.run(
        "postgresql",
        &["--now", "2026-03-01T00:00:00Z", "--ext", "sql"],
        &["seq", "1", "3"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(gunzip(&file), want);
    let second = d.dumps().join("postgresql-20260301-000000_02.sql.gz");
    assert_eq!(gunzip(&second), b"1\n2\n3\n");
    assert!(
        text(&again).contains("postgresql-20260301-000000_02.sql.gz"),
        "{}",
        text(&again)
    );
    let third = d.run(
        "postgresql",
        &["--now", "2026-03-01T00:00:00Z", "--ext", "sql"],
        &["seq", "4", "5"],
    );
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert_eq!(
        gunzip(&d.dumps().join("postgresql-20260301-000000_03.sql.gz")),
        b"4\n5\n"
    );
    assert_eq!(gunzip(&file), want);
}

#[test]
fn every_kind_of_failure_exits_non_zero_publishes_0_and_leaves_the_folder_as_it_was() {
    let d = Dest::new();
    // a good dump first: the success timestamp must survive every failure
    assert_eq!(
        d.run("db", &["--now", "2026-03-01T00:00:00Z"], &["echo", "good"])
            .status
            .code(),
        Some(0)
    );
    let before = d.listing();
    let ts = d.metric("db", "backup_last_success_timestamp");
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "fails",
            &[
                "sh",
                "-c",
                "echo partial output; echo 'FATAL: role missing' >&2; exit 3",
            ],
            "FATAL: role missing",
        ),
        (
            "killed by a signal",
            &["sh", "-c", "echo some; kill -9 $$"],
            "signal",
        ),
        ("writes nothing", &["true"], "below --min-bytes"),
        (
            "writes then fails",
            &["sh", "-c", "head -c 300000 /dev/urandom; exit 1"],
            "exit status 1",
        ),
        (
            "no such program",
            &["/nonexistent/pg_dumpall"],
            "run the dump command",
        ),
        (
            "{out} left empty",
            &["sh", "-c", "exit 0", "sh", "{out}"],
            "wrote no file",
        ),
    ];
    for (i, (what, cmd, says)) in cases.iter().enumerate() {
        let now = format!("2026-03-02T00:00:{i:02}Z");
        let out = d.run("db", &["--now", &now], cmd);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{what}: expected `{says}` in {}",
            text(&out)
        );
        assert!(text(&out).contains("nothing in"), "{what}: {}", text(&out));
        assert_eq!(d.listing(), before, "{what}: the folder changed");
        assert_eq!(
            d.metric("db", "backup_last_run_success"),
            Some(0.0),
            "{what}"
        );
        assert_eq!(
            d.metric("db", "backup_last_success_timestamp"),
            ts,
            "{what}"
        );
    }
    // --min-bytes: a 20-byte "dump" of an empty database is refused
    let out = d.run(
        "db",
        &["--now", "2026-03-03T00:00:00Z", "--min-bytes", "100"],
        &["echo", "-- empty dump"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(d.listing(), before);
    // an unmounted destination is refused, never created
    let gone = d.root.join("not-mounted");
    let out = Command::new(DUMP)
        .args(["--name", "db", "--dest", gone.as_str(), "--", "echo", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!gone.exists());
}

#[test]
fn rotation_only_after_a_success_never_below_min_keep_and_only_its_own_files() {
    let d = Dest::new();
    let day = |n: i64| Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::days(n);
    let stamp = |n: i64| day(n).format("%Y%m%d-%H%M%S").to_string();
    let body = gzip(b"old dump\n");
    for n in 0..30 {
        std::fs::write(d.dumps().join(format!("pg-{}.sql.gz", stamp(n))), &body).unwrap();
    }
    let others = [
        format!("pg-old-{}.sql.gz", stamp(0)),
        format!("mysql-{}.sql.gz", stamp(0)),
        format!("pg-{}.dump.gz", stamp(0)),
        "README.txt".to_owned(),
    ];
    for o in &others {
        std::fs::write(d.dumps().join(o), b"not ours").unwrap();
    }
    // 29 days of failures (days 30 to 58): nothing is removed
    for n in 30..59 {
        let now = day(n).to_rfc3339();
        let out = d.run(
            "pg",
            &["--now", &now, "--ext", "sql", "--keep-days", "14"],
            &["false"],
        );
        assert_eq!(out.status.code(), Some(1));
    }
    assert_eq!(
        d.files_of("pg").len(),
        30 + 2,
        "pg-old and the .dump.gz count by prefix only"
    );
    // four weeks without a success, then one: the newest min-keep of the old ones stay
    let now = day(59).to_rfc3339();
    let out = d.run(
        "pg",
        &[
            "--now",
            &now,
            "--ext",
            "sql",
            "--keep-days",
            "14",
            "--min-keep",
            "3",
        ],
        &["echo", "fresh"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut want: Vec<String> = [59, 29, 28]
        .iter()
        .map(|n| format!("pg-{}.sql.gz", stamp(*n)))
        .collect();
    want.extend(others.iter().filter(|o| o.starts_with("pg-")).cloned());
    want.sort();
    assert_eq!(d.files_of("pg"), want);
    for o in &others {
        assert!(d.dumps().join(o).exists(), "{o} was touched");
    }
    // daily successes from here: 14 days kept
    for n in 60..90 {
        let now = day(n).to_rfc3339();
        let out = d.run(
            "pg",
            &["--now", &now, "--ext", "sql", "--keep-days", "14"],
            &["echo", "x"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let kept: Vec<String> = d
        .files_of("pg")
        .into_iter()
        .filter(|f| f.ends_with(".sql.gz") && !f.starts_with("pg-old"))
        .collect();
    assert_eq!(
        kept.len(),
        15,
        "days 75..=89 (14 days back and today): {kept:?}"
    );
}

#[test]
fn out_mode_compresses_the_tools_file_and_refuses_a_truncated_gzip() {
    let d = Dest::new();
    // a tool writing plain data to {out}
    let out = d.run(
        "etcd",
        &["--now", "2026-03-01T01:00:00Z", "--ext", "db"],
        &["sh", "-c", "seq 1 5000 > \"$1\"", "sh", "{out}"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let f = d.dumps().join("etcd-20260301-010000.db.gz");
    assert_eq!(
        gunzip(&f),
        Command::new("seq")
            .args(["1", "5000"])
            .output()
            .unwrap()
            .stdout
    );
    // a tool writing gzip already: checked and kept as it is
    let out = d.run(
        "etcd",
        &["--now", "2026-03-02T01:00:00Z", "--ext", "db"],
        &["sh", "-c", "seq 1 5000 | gzip > \"$1\"", "sh", "{out}"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let f2 = d.dumps().join("etcd-20260302-010000.db.gz");
    assert_eq!(gunzip(&f2), gunzip(&f));
    // a truncated gzip: refused, nothing changes
    let before = d.listing();
    let out = d.run(
        "etcd",
        &["--now", "2026-03-03T01:00:00Z", "--ext", "db"],
        &[
            "sh",
            "-c",
            "seq 1 100000 | gzip | head -c 3000 > \"$1\"",
            "sh",
            "{out}",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("read the dump back"), "{}", text(&out));
    assert_eq!(d.listing(), before);
    assert_eq!(d.metric("etcd", "backup_last_run_success"), Some(0.0));
}

#[test]
fn secrets_from_the_env_file_reach_the_command_and_no_argv_or_output() {
    let d = Dest::new();
    let secret = "hunter2-Sekr3t-9f8e7d";
    let env = d.root.join("pg.env");
    std::fs::write(&env, format!("# PostgreSQL\nPGPASSWORD={secret}\n")).unwrap();
    let argvs = d.root.join("argvs");
    // the "dump" proves it got the secret (its md5), and records every argv on the machine
    // while it runs
    let script = format!(
        "printf %s \"$PGPASSWORD\" | md5sum; for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done > {argvs} 2>/dev/null; true"
    );
    for extra in [&[][..], &["-v"][..], &["--json"][..]] {
        let mut flags = vec!["--now", "2026-03-01T00:00:00Z", "--env-file", env.as_str()];
        flags.extend_from_slice(extra);
        let _ = std::fs::remove_dir_all(d.dumps());
        std::fs::create_dir_all(d.dumps()).unwrap();
        let out = d.run("pg", &flags, &["sh", "-c", &script]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            !text(&out).contains(secret),
            "{extra:?}: the secret is in the output"
        );
        let dump = gunzip(&d.dumps().join("pg-20260301-000000.dump.gz"));
        let want = format!("{:x}", md5::compute(secret));
        assert!(
            String::from_utf8_lossy(&dump).starts_with(&want),
            "the command did not get it"
        );
        let seen = std::fs::read_to_string(&argvs).unwrap();
        assert!(
            seen.contains("backup-dump"),
            "the argv scan saw nothing: {seen}"
        );
        assert!(
            !seen.contains(secret),
            "{extra:?}: the secret is on an argv"
        );
        let prom = std::fs::read_to_string(d.root.join("metrics/pg-backup.prom")).unwrap();
        assert!(!prom.contains(secret));
    }
    // a failing command: its stderr tail is shown, the env value is not
    let out = d.run(
        "pg",
        &[
            "--now",
            "2026-03-02T00:00:00Z",
            "--env-file",
            env.as_str(),
            "-v",
        ],
        &[
            "sh",
            "-c",
            "echo 'password authentication failed' >&2; exit 2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(secret));
    // a malformed env file names its line, not its content
    std::fs::write(&env, format!("PGPASSWORD={secret}\n{secret}\n")).unwrap();
    let out = d.run("pg", &["--env-file", env.as_str()], &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("line 2") && !text(&out).contains(secret),
        "{}",
        text(&out)
    );
}

#[test]
fn dry_run_runs_nothing_and_says_what_it_would_do() {
    let d = Dest::new();
    let marker = d.root.join("ran");
    let out = d.run(
        "pg",
        &["--now", "2026-03-01T00:00:00Z", "--dry-run"],
        &["touch", marker.as_str()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!marker.exists(), "the command ran under --dry-run");
    assert!(d.listing().is_empty(), "{:?}", d.listing());
    assert!(text(&out).contains("would run touch"), "{}", text(&out));
}

/// A full disk: the destination is a 2 MiB tmpfs and the dump is 8 MiB of random bytes. The run
/// fails naming the step, the command is stopped, the temp file is gone and the good dump from
/// before is untouched.
#[test]
fn a_full_disk_fails_the_dump_and_leaves_the_folder_as_it_was() {
    assert!(
        crate::harness::is_root(),
        "the full-disk test mounts a tmpfs: run it as root"
    );
    let d = Dest::new();
    let mnt = d.dumps();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt.as_str()])
        .output()
        .unwrap();
    assert!(m.status.success(), "{}", text(&m));
    struct Unmount(Utf8PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0.as_str()).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let ok = d.run(
        "db",
        &["--now", "2026-03-01T00:00:00Z"],
        &["echo", "small and good"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let before = d.listing();
    let out = d.run(
        "db",
        &["--now", "2026-03-02T00:00:00Z"],
        &["head", "-c", "8388608", "/dev/urandom"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert_eq!(d.listing(), before);
    assert_eq!(d.metric("db", "backup_last_run_success"), Some(0.0));
}

/// What a run killed with SIGKILL leaves (its temp file, its `{out}` folder) is removed by the
/// next run of that name; another name's leftovers and while it runs, a second run of the same
/// name (exit 75), are left alone.
#[test]
fn leftovers_of_a_killed_run_go_with_the_next_run_and_a_second_run_waits_its_turn() {
    let d = Dest::new();
    let dumps = d.dumps();
    std::fs::write(dumps.join(".db-20260301-000000.dump.gz.partial"), b"half").unwrap();
    std::fs::create_dir(dumps.join(".db-20260301-000000.dump.gz.out")).unwrap();
    std::fs::write(
        dumps.join(".other-20260301-000000.dump.gz.partial"),
        b"not ours",
    )
    .unwrap();
    // a slow run holds the lock while a second one starts
    let mut slow = Command::new(DUMP)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args([
            "--name",
            "db",
            "--dest",
            dumps.as_str(),
            "--now",
            "2026-03-02T00:00:00Z",
        ])
        .args(["--", "sh", "-c", "sleep 2; echo done"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = d.run("db", &["--now", "2026-03-02T00:00:01Z"], &["echo", "x"]);
    assert_eq!(second.status.code(), Some(75), "{}", text(&second));
    assert!(slow.wait().unwrap().success());
    let names: Vec<String> = d.listing().into_keys().collect();
    assert!(!names.iter().any(|n| n.starts_with(".db-")), "{names:?}");
    assert!(
        names.contains(&".other-20260301-000000.dump.gz.partial".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"db-20260302-000000.dump.gz".to_owned()),
        "{names:?}"
    );
}

/// SIGTERM mid-dump (a CronJob's pod deleted, `activeDeadlineSeconds`): the dump command is
/// stopped at once, the run exits non-zero with `last_run_success 0`, the folder is as it was.
#[test]
fn sigterm_stops_the_dump_command_and_leaves_the_folder_as_it_was() {
    let d = Dest::new();
    let ok = d.run("db", &["--now", "2026-03-01T00:00:00Z"], &["echo", "good"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let before = d.listing();
    let marker = d.root.join("still-running");
    let script = format!("echo partial; sleep 30; touch {marker}");
    let child = Command::new(DUMP)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args([
            "--name",
            "db",
            "--dest",
            d.dumps().as_str(),
            "--now",
            "2026-03-02T00:00:00Z",
        ])
        .args(["--textfile-dir", d.root.join("metrics").as_str()])
        .args(["--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    assert_eq!(d.listing(), before);
    assert_eq!(d.metric("db", "backup_last_run_success"), Some(0.0));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!marker.exists());
}
