//! The text of every command, at 80 columns, pinned. Two weeks of backups
//! on the `dir` backend; every line of every output fits 80 columns; times, rates, temp paths
//! and file times (which differ from run to run) are redacted.

use crate::harness::{text, Env, CTL, DAILY, SNAPSHOT};

fn at80(env: &Env, bin: &str, args: &[&str]) -> String {
    let out = env
        .command(bin, args)
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in shown.lines() {
        assert!(
            line.chars().count() <= 80,
            "{args:?}: a line of {} columns:\n{line}\n{}",
            line.chars().count(),
            text(&out)
        );
    }
    format!(
        "$ {} {}\n{}",
        bin.rsplit('/').next().unwrap(),
        args.join(" "),
        unwrap_lines(&shown).replace(env.root.as_str(), "<root>")
    )
}

/// `  ok      ns/pvc ...` blocks (a volume's line and the lines under it) in name order.
fn volumes_sorted(text: &str) -> String {
    let mut before = Vec::new();
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut after = Vec::new();
    for line in text.lines() {
        let volume = line.starts_with("  ok ") || line.starts_with("  FAILED ");
        let under = line.starts_with("          ");
        if volume && after.is_empty() && !line.contains(" pve-config ") {
            blocks.push(vec![line]);
        } else if under && !blocks.is_empty() && after.is_empty() {
            blocks.last_mut().unwrap().push(line);
        } else if blocks.is_empty() {
            before.push(line);
        } else {
            after.push(line);
        }
    }
    blocks.sort();
    let mut out: Vec<&str> = before;
    out.extend(blocks.into_iter().flatten());
    out.extend(after);
    out.iter().map(|l| format!("{l}\n")).collect()
}

/// The lines as they were before the width broke them (a continuation is indented exactly four
/// more than its line): where a line breaks depends on how wide a measured time came out, so
/// the snapshot pins the words and the assertion above pins the width.
fn unwrap_lines(text: &str) -> String {
    let mut out: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        match out.last_mut() {
            Some((base, joined)) if indent == *base + 4 && !line.trim().is_empty() => {
                joined.push(' ');
                joined.push_str(line.trim_start());
            }
            _ => out.push((indent, line.to_owned())),
        }
    }
    out.into_iter().map(|(_, l)| l + "\n").collect()
}

#[test]
fn every_command_fits_80_columns() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let vol = env.vol("vm-100-pvc-a");
    std::fs::remove_file(vol.join("dir/file-1.txt")).unwrap();
    crate::harness::write(
        &vol.join("dir/file-2.txt"),
        "rewritten, longer than before\n",
    );
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-12T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let now = "2026-01-12T05:00:00Z";
    let later = "2026-01-12T09:00:00Z";
    let restore_to = env.root.join("r");
    // volumes are copied side by side and reported as each ends: their order is the pinned
    // thing only within a volume
    let mut all = vec![volumes_sorted(&at80(&env, DAILY, &["--now", now]))];
    for args in [
        &["status"][..],
        &["list"],
        &["verify"],
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--to",
            restore_to.as_str(),
        ],
        &["drill"],
        &["find", "file-1.txt"],
        &["diff", "2026-02", "2026-03", "--pvc", "vaultwarden/data"],
        &["ls", "2026-03", "vaultwarden/data", "dir"],
    ] {
        all.push(at80(&env, CTL, &[&["--now", later][..], args].concat()));
    }
    all.push(at80(&env, SNAPSHOT, &["--now", later, "list"]));
    insta::with_settings!({filters => vec![
        (r"\d+\.\d+ (s|ms)\b", "<t> $1"),
        (r"\d+(\.\d+)? (B|KiB|MiB|GiB)/s", "<rate>/s"),
        (r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b", "<time>"),
        (r"\.tmp[A-Za-z0-9]+", "<tmp>"),
    ]}, {
        insta::assert_snapshot!(all.join("\n"));
    });
}

/// Every line of `drawn` (split where a terminal starts a line again: `\r`, `\n`), without
/// its escape sequences, fits 80 columns.
fn fits_80(what: &str, drawn: &str) {
    // ESC [ parameters, then one final letter
    let mut plain = String::new();
    let mut chars = drawn.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    for line in plain.split(['\r', '\n']) {
        assert!(
            line.chars().count() <= 80,
            "{what}: a line of {} columns:\n{line}\n{drawn:?}",
            line.chars().count()
        );
    }
}

/// Errors are laid out like the reports, and a progress bar on an 80-column terminal (a
/// pseudo-terminal sized by `stty`, no COLUMNS) is drawn within it: a wider one leaves a stale
/// line at every redraw.
#[test]
fn errors_and_the_progress_bar_fit_80_columns() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let missing = env
        .root
        .join("a/config/folder/that/is/long/enough/to/need/a/second/line.toml");
    for (bin, args) in [
        (
            CTL,
            &[
                "verify",
                "--pvc",
                "vaultwarden/vaultwarden-data-of-a-long-name",
            ][..],
        ),
        (CTL, &["ls", "--pvc", "vaultwarden/dat"]),
        (
            CTL,
            &[
                "restore",
                "pvc",
                "--pvc",
                "nextcloud/files",
                "--week",
                "2020-01",
                "--to",
                "/tmp/x",
            ],
        ),
        (DAILY, &["--config", missing.as_str()]),
    ] {
        let out = env
            .command(bin, args)
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error: "), "{args:?}: {err}");
        fits_80(&format!("{args:?}"), &err);
    }

    let cmd = format!(
        "stty cols 80 rows 24 && exec {CTL} --config {} --now 2026-01-05T07:00:00Z verify",
        env.config()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("COLUMNS")
        .output()
        .expect("util-linux script (scripts/test installs util-linux)");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{drawn}");
    assert!(drawn.contains("\x1b[2K"), "no bar was drawn:\n{drawn:?}");
    fits_80("verify's bar", &drawn);
}
