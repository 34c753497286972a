//! Issue 21, items 2 and 9: `--help` fits the terminal (clap's `wrap_help` follows `COLUMNS`),
//! every binary's short help starts with what it does, and the manual pages are generated from
//! the same definitions (`--write-man-pages DIR`, which `scripts/package` installs).

use std::process::Command;

use crate::harness::{BINS, CTL};

const CTL_COMMANDS: [&[&str]; 16] = [
    &["list"],
    &["status"],
    &["verify"],
    &["find"],
    &["diff"],
    &["ls"],
    &["alerts"],
    &["units"],
    &["config", "check"],
    &["config", "example"],
    &["restore", "pvc"],
    &["restore", "sqlite"],
    &["restore", "pfsense"],
    &["restore", "pve-config"],
    &["drill"],
    &["restore"],
];

fn help(bin: &str, args: &[&str], flag: &str) -> String {
    let out = Command::new(bin)
        .args(args)
        .arg(flag)
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{bin} {args:?} {flag}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_help_fits_80_columns_and_starts_with_what_the_binary_does() {
    let mut pages = Vec::new();
    for bin in BINS {
        pages.push((bin.to_owned(), help(bin, &[], "--help")));
        let short = help(bin, &[], "-h");
        assert!(
            !short.starts_with("The homelab-backup binaries"),
            "{bin} -h starts with the package's description:\n{short}"
        );
    }
    for args in CTL_COMMANDS {
        pages.push((
            format!("backupctl {}", args.join(" ")),
            help(CTL, args, "--help"),
        ));
    }
    for (what, page) in pages {
        for line in page.lines() {
            assert!(
                line.chars().count() <= 80,
                "{what} --help has a line of {} columns:\n{line}",
                line.chars().count()
            );
        }
    }
}

#[test]
fn manual_pages_come_from_the_same_definitions() {
    let dir = tempfile::tempdir().unwrap();
    for bin in BINS {
        let out = Command::new(bin)
            .arg("--write-man-pages")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{bin}: {:?}", out);
    }
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let daily = read("daily-backup.1");
    assert!(
        daily.starts_with(".ie") || daily.contains(".TH daily-backup 1"),
        "{daily}"
    );
    for flag in ["allow\\-empty", "full", "dry\\-run", "config"] {
        assert!(daily.contains(flag), "no --{flag} in the page:\n{daily}");
    }
    assert!(daily.contains("Exit codes"), "{daily}");
    let restore = read("backupctl-restore-pvc.1");
    assert!(
        restore.contains("into\\-volume") && restore.contains("path"),
        "{restore}"
    );
    for page in [
        "backupctl.1",
        "backupctl-find.1",
        "backupctl-diff.1",
        "backupctl-ls.1",
        "backup-dump.1",
    ] {
        assert!(dir.path().join(page).is_file(), "no {page}");
    }
}
