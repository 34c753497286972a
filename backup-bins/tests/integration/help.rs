//! `--help` fits the terminal (clap's `wrap_help` follows `COLUMNS`), every binary's short help
//! starts with what it does and its long help shows examples, and the manual pages and shell
//! completions are generated from the same definitions (`--write-man-pages DIR`,
//! `--write-completions DIR`, which `scripts/package` installs).

use std::process::Command;

use crate::harness::{BINS, CTL};

const CTL_COMMANDS: [&[&str]; 17] = [
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
    &["completions"],
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
    // the main commands show how they are used
    for (what, page) in &pages {
        let main = !what.starts_with("backupctl ")
            || [
                "verify",
                "drill",
                "find",
                "diff",
                "ls",
                "restore pvc",
                "completions",
            ]
            .iter()
            .any(|c| what == &format!("backupctl {c}"));
        assert!(
            !main || page.contains("\nExamples:\n  "),
            "{what} --help shows no example:\n{page}"
        );
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
    // the package and its version where man shows the source, on every page
    for page in [
        "backupctl.1",
        "backupctl-verify.1",
        "backupctl-restore-pvc.1",
    ] {
        let th = read(page);
        let th = th
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_default();
        assert!(
            th.ends_with(&format!(
                "\"homelab-backup {}\" homelab-backup",
                env!("CARGO_PKG_VERSION")
            )),
            "{page}: {th}"
        );
    }
    assert!(read("daily-backup.1").contains("Examples:"));
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

/// Every binary writes its bash, zsh and fish completions; bash loads them and completes
/// subcommands and flags; `backupctl completions SHELL` prints the same script.
#[test]
fn shell_completions_come_from_the_same_definitions() {
    let dir = tempfile::tempdir().unwrap();
    for bin in BINS {
        let out = Command::new(bin)
            .arg("--write-completions")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{bin}: {out:?}");
        let name = bin.rsplit('/').next().unwrap();
        for file in [
            format!("bash/{name}"),
            format!("zsh/_{name}"),
            format!("fish/{name}.fish"),
        ] {
            let text = std::fs::read_to_string(dir.path().join(&file)).unwrap();
            assert!(text.contains(name), "{file}");
        }
        // bash loads it: what completes after `<bin> --dr` and, for backupctl, `restore p`
        let bash = dir.path().join(format!("bash/{name}"));
        let (words, want) = if name == "backupctl" {
            ("backupctl restore p", "pvc")
        } else {
            (&*format!("{name} --dr"), "--dry-run")
        };
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             f=$(complete -p {name} | sed 's/.*-F \\([^ ]*\\) .*/\\1/'); \
             $f {name} \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got.lines().any(|l| l == want),
            "{name}: `{words}` completes to {got:?} ({})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (shell, file) in [
        ("bash", "bash/backupctl"),
        ("zsh", "zsh/_backupctl"),
        ("fish", "fish/backupctl.fish"),
    ] {
        let out = Command::new(CTL)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            std::fs::read_to_string(dir.path().join(file)).unwrap(),
            "{shell}"
        );
    }
}
