//! Long work shows progress. Under a pseudo-terminal (`script`) the bar draws
//! on stderr; without a terminal nothing but plain text comes out (no control character on
//! stdout or stderr), and a run longer than the interval (`HOMELAB_BACKUP_PROGRESS_SECONDS`,
//! a minute by default) prints a progress line to stderr, so the journal shows a stuck run.

use std::process::Command;

use crate::harness::{text, Env, CTL, DAILY, SNAPSHOT};

fn control_free(what: &str, bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\n') {
        panic!("{what} holds the control character {c:?}:\n{s}");
    }
}

#[test]
fn a_terminal_gets_a_bar_a_pipe_gets_plain_text() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // a pseudo-terminal: util-linux `script` runs the command on one and copies what it drew
    let cmd = format!(
        "{CTL} --config {} --now 2026-01-05T07:00:00Z verify",
        env.config()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("COLUMNS", "100")
        .output()
        .expect("util-linux script (scripts/test installs util-linux)");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{drawn}");
    assert!(drawn.contains("\x1b[2K"), "no bar was drawn:\n{drawn:?}");
    assert!(
        drawn.contains("verify ") && drawn.contains("B/s"),
        "{drawn:?}"
    );
    assert!(
        drawn.contains("verify: 1 checked") || drawn.contains("verify: 3 checked"),
        "{drawn:?}"
    );

    // not a terminal: the same command, plain text only
    for args in [
        &["verify"][..],
        &["--json", "verify"],
        &["drill"],
        &["list"],
    ] {
        let out = env.run(
            CTL,
            &[&["--now", "2026-01-05T07:00:00Z"][..], args].concat(),
        );
        assert!(out.status.code() == Some(0), "{args:?}: {}", text(&out));
        control_free(&format!("{args:?} stdout"), &out.stdout);
        control_free(&format!("{args:?} stderr"), &out.stderr);
    }
}

#[test]
fn a_long_run_without_a_terminal_says_how_far_it_is() {
    let mut env = Env::new();
    env.make_rsync_slow();
    let snap = env.run(
        crate::harness::SNAPSHOT,
        &["--now", "2026-01-05T03:00:00Z", "create"],
    );
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
        .env("HOMELAB_BACKUP_PROGRESS_SECONDS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("daily-backup: "))
        .collect();
    assert!(lines.len() >= 2, "no progress line a second:\n{err}");
    assert!(
        lines[0].contains(" so far (") && lines[0].contains("volumes done)"),
        "{err}"
    );
    control_free("stderr", &out.stderr);
    control_free("stdout", &out.stdout);
    // the report itself stays on stdout, the progress off it
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(" so far ("),
        "{}",
        text(&out)
    );
}

/// An interval out of range (`inf`, `1e300`, a number past u64, a negative one, a word) is a
/// clear error with exit 2 before anything runs; it once panicked in the progress thread and
/// left daily-backup hanging.
#[test]
fn an_out_of_range_progress_interval_is_refused_with_exit_2() {
    let env = Env::new();
    assert_eq!(
        env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"])
            .status
            .code(),
        Some(0)
    );
    for bad in [
        "inf",
        "1e300",
        "18446744073709551616",
        "-1",
        "0",
        "1e-10",
        "soon",
    ] {
        let out = env
            .command(DAILY, &["--now", "2026-01-05T05:00:00Z"])
            .env("HOMELAB_BACKUP_PROGRESS_SECONDS", bad)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {t}");
        assert!(
            t.contains("HOMELAB_BACKUP_PROGRESS_SECONDS") && !t.contains("panicked"),
            "{bad}: {t}"
        );
        assert!(
            !t.contains("  progress"),
            "a message broken by its layout: {t}"
        );
    }
    assert!(env.weeks().is_empty(), "a refused run copied something");
}

/// `--no-progress`: no progress line even when the run is long; `-q`: a job that succeeded
/// with nothing to say prints nothing, a failing one everything it held back and its report, a
/// warning is printed; what was asked for (`list`) still prints.
#[test]
fn no_progress_and_quiet_print_what_they_say() {
    // every volume mapped: a run with nothing to say
    let mut env = Env::with_config(
        "[[kubernetes.volume]]\nlv = \"vm-102-pvc-c\"\nnamespace = \"gitea\"\npvc = \"c\"\n",
    );
    env.make_rsync_slow();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env
        .command(DAILY, &["--now", "2026-01-05T05:00:00Z", "--no-progress"])
        .env("HOMELAB_BACKUP_PROGRESS_SECONDS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(" so far ("), "a progress line: {err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("vaultwarden/data"),
        "{}",
        text(&out)
    );

    let quiet = |bin: &str, at: &str, args: &[&str]| {
        let out = env.run(bin, &[&["-q", "--now", at][..], args].concat());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text(&out),
        )
    };
    let at = "2026-01-06T05:00:00Z";
    let (code, stdout, all) = quiet(DAILY, at, &[]);
    assert_eq!((code, stdout.as_str()), (Some(0), ""), "{all}");
    let (code, stdout, all) = quiet(CTL, at, &["verify"]);
    assert_eq!((code, stdout.as_str()), (Some(0), ""), "{all}");
    let (code, stdout, all) = quiet(CTL, at, &["list"]);
    assert!(
        code == Some(0) && stdout.contains("vaultwarden/data"),
        "{all}"
    );

    // a volume emptied: the run fails, and says which volume and why
    std::fs::remove_dir_all(env.vol("vm-101-pvc-b").join("dir")).unwrap();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-07T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let (code, stdout, all) = quiet(DAILY, "2026-01-07T05:00:00Z", &[]);
    assert_eq!(code, Some(3), "{all}");
    assert!(
        stdout.starts_with("daily-backup: week 2026-02 into ")
            && stdout.contains("nextcloud/files")
            && stdout.contains("--allow-empty nextcloud/files"),
        "{all}"
    );

    // a damaged copy: verify fails, and says so under -q too
    let copy = env
        .root
        .join("backup/pvc-data/2026-02/vaultwarden/data/dir/file-0.txt");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[0] ^= 1;
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(&copy, bytes).unwrap();
    let (code, stdout, all) = quiet(CTL, "2026-01-07T07:00:00Z", &["verify"]);
    assert_eq!(code, Some(1), "{all}");
    assert!(stdout.contains("dir/file-0.txt"), "{all}");
}

/// A warning is printed under `-q` even when the run succeeded: here a volume no PV maps.
#[test]
fn quiet_still_prints_a_warning() {
    let env = Env::new();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["-q", "--now", "2026-01-05T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: vm-102-pvc-c has no PV/PVC mapping"),
        "{}",
        text(&out)
    );
}
