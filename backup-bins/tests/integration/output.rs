//! A closed or full stdout is not the job's failure (issue 18, item 6): `println!` panicked
//! (exit 101, a backtrace) after the work was done. Now the job finishes, its metrics are
//! published, and the exit code is its own (a closed pipe is quiet); a full stdout fails a
//! run that succeeded, saying so on stderr.

use std::process::{Command, Output, Stdio};

use crate::harness::*;

/// Runs `cmd` with its stdout a pipe whose reader is already gone (`| head -0`).
fn with_closed_stdout(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Runs `cmd` with its stdout on `/dev/full`.
fn with_full_stdout(mut cmd: Command) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    cmd.stdout(full).stderr(Stdio::piped()).output().unwrap()
}

fn no_panic(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() != Some(101) && !err.contains("panicked"),
        "{}",
        text(o)
    );
}

#[test]
fn daily_backup_into_a_closed_pipe_finishes_and_publishes_its_metrics() {
    let env = Env::new();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = with_closed_stdout(env.command(DAILY, &["--now", "2026-01-05T05:00:00Z"]));
    no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(env.marker("2026-02", "vaultwarden", "data").is_file());
    let prom = std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "daily_backup_last_run_success"),
        Some(1.0),
        "{prom}"
    );
}

#[test]
fn backupctl_into_a_closed_pipe_exits_with_its_own_code_and_into_a_full_disk_fails() {
    let env = Env::new();
    for (args, code) in [
        (&["alerts"][..], 0),
        (&["list"][..], 0),
        (&["status"][..], 1),
    ] {
        let out = with_closed_stdout(env.command(CTL, args));
        no_panic(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert!(
            out.stderr.is_empty(),
            "a closed pipe is quiet: {}",
            text(&out)
        );
    }
    let out = with_full_stdout(env.command(CTL, &["alerts"]));
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
        "{}",
        text(&out)
    );
}

/// Every binary's error path (`--json` prints the error on stdout) into a closed pipe and a
/// full stdout: the configuration error's exit 2, never a panic.
#[test]
fn every_binary_reports_its_error_into_a_closed_or_full_stdout_without_panicking() {
    for bin in crate::harness::BINS {
        let args = ["--json", "--config", "/nonexistent/homelab-backup.toml"];
        let mut extra: Vec<&str> = args.to_vec();
        if bin == CTL {
            extra.push("list");
        }
        if bin.ends_with("backup-dump") {
            extra.extend(["--name", "x", "--dest", "/nonexistent", "--", "true"]);
        }
        for run in [with_closed_stdout, with_full_stdout] {
            let mut cmd = Command::new(bin);
            cmd.args(&extra);
            let out = run(cmd);
            no_panic(&out);
            assert_ne!(out.status.code(), Some(0), "{bin}: {}", text(&out));
        }
    }
}
