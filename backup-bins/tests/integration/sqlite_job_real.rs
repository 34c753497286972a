//! The sqlite-backup binary: backup with extras and rotation, check, failures and metrics.

use std::process::Command;

use camino::Utf8PathBuf;

use crate::harness::{gauge, text};

const BIN: &str = env!("CARGO_BIN_EXE_sqlite-backup");

fn setup() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
    std::fs::create_dir_all(root.join("data/attachments/a1")).unwrap();
    fixtures::sqlite::clean(root.join("data/db.sqlite3").as_std_path());
    std::fs::write(root.join("data/rsa_key.pem"), "key").unwrap();
    std::fs::write(root.join("data/attachments/a1/file.bin"), "attachment").unwrap();
    (d, root)
}

fn backup(root: &Utf8PathBuf, now: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["backup", "--name", "vaultwarden", "--db"])
        .arg(root.join("data/db.sqlite3"))
        .arg("--dest")
        .arg(root.join("backup"))
        .args([
            "--keep-days",
            "30",
            "--min-keep",
            "4",
            "--now",
            now,
            "--textfile-dir",
        ])
        .arg(root.join("metrics"))
        .args(["--extra"])
        .arg(root.join("data/rsa_key.pem"))
        .arg("--extra")
        .arg(root.join("data/attachments"))
        .arg("--extra")
        .arg(root.join("data/sends"))
        .output()
        .unwrap()
}

#[test]
fn backup_copies_db_and_extras_into_a_dated_folder_and_rotates_never_below_min_keep() {
    let (_d, root) = setup();
    // six backups over 50 days: those older than 30 days go, but never below the newest 4
    for day in [
        "2026-01-01",
        "2026-01-10",
        "2026-01-20",
        "2026-02-01",
        "2026-02-15",
        "2026-02-20",
    ] {
        let out = backup(&root, &format!("{day}T06:00:00Z"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let mut folders: Vec<String> = std::fs::read_dir(root.join("backup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            "vaultwarden-20260120-060000",
            "vaultwarden-20260201-060000",
            "vaultwarden-20260215-060000",
            "vaultwarden-20260220-060000"
        ]
    );
    let newest = root.join("backup/vaultwarden-20260220-060000");
    assert_eq!(
        fixtures::sqlite::count_rows(newest.join("db.sqlite3").as_std_path()).0,
        fixtures::sqlite::COMMITTED
    );
    assert_eq!(
        std::fs::read_to_string(newest.join("rsa_key.pem")).unwrap(),
        "key"
    );
    assert_eq!(
        std::fs::read_to_string(newest.join("attachments/a1/file.bin")).unwrap(),
        "attachment"
    );
    let prom = std::fs::read_to_string(root.join("metrics/vaultwarden-backup.prom")).unwrap();
    assert!(
        gauge(&prom, "backup_last_run_success") == Some(1.0)
            && gauge(&prom, "backup_last_success_timestamp") == Some(1771567200.0),
        "{prom}"
    );
}

#[test]
fn a_corrupt_live_database_aborts_the_backup_and_keeps_the_last_success() {
    let (_d, root) = setup();
    assert_eq!(backup(&root, "2026-01-01T06:00:00Z").status.code(), Some(0));
    fixtures::sqlite::truncated(root.join("data/db.sqlite3").as_std_path(), 5000);
    let out = backup(&root, "2026-01-02T06:00:00Z");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("live database failed its check"), "{t}");
    assert!(!root.join("backup/vaultwarden-20260102-060000").exists());
    assert!(
        std::fs::read_dir(root.join("backup")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "a partial folder was left"
    );
    let prom = std::fs::read_to_string(root.join("metrics/vaultwarden-backup.prom")).unwrap();
    assert!(
        gauge(&prom, "backup_last_run_success") == Some(0.0),
        "{prom}"
    );
    assert!(
        gauge(&prom, "backup_last_success_timestamp") == Some(1767247200.0),
        "the last success was overwritten: {prom}"
    );
}

#[test]
fn check_publishes_the_integrity_metric_and_exits_1_on_failure() {
    let (_d, root) = setup();
    let check = || {
        Command::new(BIN)
            .args(["check", "--name", "vaultwarden", "--db"])
            .arg(root.join("data/db.sqlite3"))
            .arg("--textfile-dir")
            .arg(root.join("metrics"))
            .output()
            .unwrap()
    };
    assert_eq!(check().status.code(), Some(0));
    let prom =
        || std::fs::read_to_string(root.join("metrics/vaultwarden-integrity-check.prom")).unwrap();
    assert!(
        gauge(&prom(), "vaultwarden_sqlite_integrity_ok") == Some(1.0),
        "{}",
        prom()
    );
    fixtures::sqlite::header_only(root.join("data/db.sqlite3").as_std_path());
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        gauge(&prom(), "vaultwarden_sqlite_integrity_ok") == Some(0.0),
        "{}",
        prom()
    );
}

#[test]
fn options_come_from_the_config_file_and_flags_win() {
    let (_d, root) = setup();
    std::fs::write(
        root.join("config.toml"),
        format!("backup-root = \"{root}\"\n[sqlite-backup]\nkeep-days = 1\nmin-keep = 1\n[metrics]\ntextfile-dir = \"{root}/cfg-metrics\"\n"),
    )
    .unwrap();
    let run = |now: &str, extra: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(root.join("config.toml"))
            .args(["backup", "--name", "vw", "--db"])
            .arg(root.join("data/db.sqlite3"))
            .arg("--dest")
            .arg(root.join("backup"))
            .args(["--now", now])
            .args(extra)
            .output()
            .unwrap()
    };
    for day in ["01", "05", "09"] {
        assert_eq!(
            run(&format!("2026-01-{day}T06:00:00Z"), &[]).status.code(),
            Some(0)
        );
    }
    // keep-days 1 and min-keep 1 from the config: only the newest is left
    assert_eq!(std::fs::read_dir(root.join("backup")).unwrap().count(), 1);
    assert!(
        root.join("cfg-metrics/vw-backup.prom").is_file(),
        "the config's textfile-dir was not used"
    );
    // a flag wins over the config
    for day in ["10", "20"] {
        assert_eq!(
            run(&format!("2026-01-{day}T06:00:00Z"), &["--min-keep", "3"])
                .status
                .code(),
            Some(0)
        );
    }
    assert_eq!(std::fs::read_dir(root.join("backup")).unwrap().count(), 3);
}
