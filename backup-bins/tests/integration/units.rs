//! The systemd units and the config commands: `deploy/systemd/` is what `backupctl units`
//! prints, `systemd-analyze verify` accepts every unit (with ExecStart pointed at the built
//! binaries), the schedules and ordering are the seed's, and `systemd-analyze security` scores
//! stay at or under what README records. `backupctl config example` is the file the package
//! installs, and `config check` accepts it.

use std::process::Command;

use camino::Utf8PathBuf;

use crate::harness::{text, CTL};

fn repo() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn ctl(args: &[&str]) -> std::process::Output {
    Command::new(CTL)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is not installed: it comes with systemd (scripts/test needs it)")
}

#[test]
fn the_committed_units_are_generated_verified_scheduled_and_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let out = Utf8PathBuf::from_path_buf(dir.path().join("units")).unwrap();
    let w = ctl(&["units", "--bindir", "/usr/bin", "--write", out.as_str()]);
    assert_eq!(w.status.code(), Some(0), "{}", text(&w));
    let committed = repo().join("deploy/systemd");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut have: Vec<String> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    have.sort();
    assert_eq!(
        names, have,
        "regenerate: backupctl units --write deploy/systemd"
    );
    for n in &names {
        assert_eq!(
            std::fs::read_to_string(out.join(n)).unwrap(),
            std::fs::read_to_string(committed.join(n)).unwrap(),
            "{n} differs: regenerate with backupctl units --write deploy/systemd"
        );
    }
    // verify, with ExecStart at the binaries this build made
    let bin = Utf8PathBuf::from(CTL).parent().unwrap().to_owned();
    let local = Utf8PathBuf::from_path_buf(dir.path().join("local")).unwrap();
    std::fs::create_dir(&local).unwrap();
    for n in &names {
        let t = std::fs::read_to_string(committed.join(n))
            .unwrap()
            .replace("/usr/bin/", &format!("{bin}/"));
        std::fs::write(local.join(n), t).unwrap();
    }
    // `Documentation=man:…` is checked with man(1): the pages the package installs
    let man = Utf8PathBuf::from_path_buf(dir.path().join("man")).unwrap();
    for b in crate::harness::BINS {
        let w = Command::new(b)
            .arg("--write-man-pages")
            .arg(man.join("man1"))
            .output()
            .unwrap();
        assert_eq!(w.status.code(), Some(0), "{b}: {}", text(&w));
    }
    let paths: Vec<String> = names.iter().map(|n| local.join(n).to_string()).collect();
    let mut args = vec!["verify"];
    args.extend(paths.iter().map(String::as_str));
    let v = Command::new("systemd-analyze")
        .args(&args)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    assert!(v.status.success() && v.stderr.is_empty(), "{}", text(&v));
    let read = |n: &str| std::fs::read_to_string(committed.join(n)).unwrap();
    for (timer, when) in [
        ("lvm-pvc-snapshot", "*-*-* 03:00:00"),
        ("daily-backup", "*-*-* 05:00:00"),
        ("offsite-sync-backup", "*-*-* 06:00:00"),
        ("backupctl-drill", "Sun *-*-* 08:00:00"),
        ("backupctl-verify", "Sat *-*-* 08:00:00"),
        ("backupctl-verify-offsite", "*-*-01 09:00:00"),
    ] {
        let t = read(&format!("{timer}.timer"));
        assert!(t.contains(&format!("OnCalendar={when}\n")), "{timer}: {t}");
        assert!(t.contains("Persistent=true\n"), "{timer}");
        let s = read(&format!("{timer}.service"));
        assert!(s.contains("Type=oneshot\n"), "{timer}");
        for h in [
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "UMask=0077",
            "ProtectHome=",
        ] {
            assert!(s.contains(h), "{timer}: {h}");
        }
    }
    assert!(read("offsite-sync-backup.service")
        .contains("After=local-fs.target network-online.target daily-backup.service"));
    // issue 20: LVM waits on udev cookie semaphores in the host's IPC namespace, and a thin
    // snapshot needs dm_snapshot, which the sandbox cannot load; a oneshot that hangs must end
    for lvm in ["lvm-pvc-snapshot", "daily-backup"] {
        let s = read(&format!("{lvm}.service"));
        assert!(!s.contains("PrivateIPC=yes"), "{lvm}: {s}");
        assert!(
            s.contains("ExecStartPre=-+/sbin/modprobe -a dm_snapshot dm_thin_pool\n"),
            "{lvm}: {s}"
        );
    }
    for oneshot in [
        "lvm-pvc-snapshot",
        "daily-backup",
        "offsite-sync-backup",
        "backupctl-verify",
        "backupctl-drill",
        "backupctl-verify-offsite",
    ] {
        assert!(
            read(&format!("{oneshot}.service")).contains("\nTimeoutStartSec="),
            "{oneshot} has no TimeoutStartSec"
        );
    }
    let tracker = read("nfs-change-tracker.service");
    assert!(tracker.contains("Restart=on-failure") && tracker.contains("Type=simple"));
    // the scores README records are ceilings
    for (unit, ceiling) in [
        ("lvm-pvc-snapshot", 5.3),
        ("daily-backup", 5.3),
        ("offsite-sync-backup", 5.3),
        ("backupctl-verify", 3.0),
        ("backupctl-drill", 3.4),
        ("backupctl-verify-offsite", 3.0),
        ("nfs-change-tracker", 3.0),
    ] {
        let path = local.join(format!("{unit}.service"));
        let s = analyze(&["security", "--offline=true", "--no-pager", path.as_str()]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&s.stdout),
            String::from_utf8_lossy(&s.stderr)
        );
        let score: f64 = all
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .and_then(|l| l.rsplit(": ").next())
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no score for {unit}: {all}"));
        assert!(score <= ceiling, "{unit}: exposure {score} above {ceiling}");
    }
}

#[test]
fn config_example_is_the_shipped_file_and_config_check_accepts_it() {
    let ex = ctl(&["config", "example"]);
    assert_eq!(ex.status.code(), Some(0), "{}", text(&ex));
    let file = std::fs::read_to_string(repo().join("deploy/config.example.toml")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ex.stdout).trim_end(),
        file.trim_end()
    );
    let check = ctl(&[
        "--config",
        repo().join("deploy/config.example.toml").as_str(),
        "config",
        "check",
        "--json",
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    // defaults filled in
    assert_eq!(v["effective"]["status"]["stale-hours"], 36);
    assert_eq!(v["effective"]["pvc-backup"]["weekly-versions"], 4);
    assert_eq!(v["effective"]["alerts"]["job"].as_array().unwrap().len(), 6);
    // a wrong key is exit 2, naming it
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        file.replace("weekly-versions = 4", "weekly-version = 4"),
    )
    .unwrap();
    let out = ctl(&["--config", bad.to_str().unwrap(), "config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("weekly-version"), "{}", text(&out));
}

/// Writes `config` into `root/config.toml` and its drop-ins into `root/gen`; returns the config.
fn dropins(root: &camino::Utf8Path, config: &str) -> Utf8PathBuf {
    let file = root.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let out = ctl(&[
        "--config",
        file.as_str(),
        "units",
        "--dropins",
        root.join("gen").as_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    file
}

/// Issue 20, item 4: the packaged units carry the default `ReadWritePaths`; a config whose
/// offsite destination, backup root or textfile folder lie elsewhere gets drop-ins with its own
/// (`backupctl units --dropins`, run by the package's systemd generator at every daemon-reload).
#[test]
fn dropins_carry_the_paths_the_config_needs() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    dropins(
        &root,
        "backup-root = \"/srv/backup-disk\"\n[metrics]\ntextfile-dir = \"/srv/textfile\"\n\
         [offsite]\ndestination = \"/srv/offsite\"\nchange-log = \"/srv/changes/log\"\n\
         [[offsite.repository]]\nrepository = \"/srv/restic\"\npassword-file = \"/etc/hb/restic.pass\"\n",
    );
    let read = |unit: &str| {
        std::fs::read_to_string(root.join(format!("gen/{unit}.d/50-homelab-backup-paths.conf")))
            .unwrap()
    };
    let offsite = read("offsite-sync-backup.service");
    for p in [
        "/srv/backup-disk",
        "/srv/offsite",
        "/srv/changes",
        "/srv/textfile",
        "/srv/restic",
    ] {
        assert!(
            offsite.contains(&format!("ReadWritePaths=-{p}\n")),
            "{p}: {offsite}"
        );
    }
    // issue 23: a local tier repository that does not exist yet is made before the job (a
    // missing ReadWritePaths entry is ignored, and restic init could not create it)
    assert!(
        offsite.contains("ExecStartPre=+/bin/mkdir -p -m 0700 -- /srv/restic\n"),
        "{offsite}"
    );
    assert!(offsite.starts_with("# Generated") && offsite.contains("[Service]\n"));
    assert!(read("daily-backup.service").contains("ReadWritePaths=-/srv/backup-disk\n"));
    assert!(
        !root.join("gen/daily-backup.timer.d").exists(),
        "timers need no drop-in"
    );
    // the defaults' folders are declared (tmpfiles.d, CacheDirectory=): nothing to make
    assert!(!read("daily-backup.service").contains("mkdir"));
    let generator =
        std::fs::read_to_string(repo().join("deploy/systemd-generators/homelab-backup-paths"))
            .unwrap();
    assert!(generator.contains("units --dropins \"$1\""), "{generator}");
}

/// Issue 20, item 4 (the cache) and "every valid config": a mount, lock or cache folder moved away
/// from its declared default is made before the job (outside the sandbox) and made writable;
/// paths with spaces, `%` or `$` are quoted and escaped so systemd reads back the same path.
#[test]
fn dropins_make_moved_folders_and_quote_odd_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let config = dropins(
        &root,
        "backup-root = \"/srv/backup disk\"\n[snapshots]\nlock-file = \"/srv/locks/snap.lock\"\n\
         [pvc-backup]\nmount-dir = \"/srv/mnt$HOME%h\"\n[kubernetes]\nresolver = \"kubectl\"\n\
         cache-file = \"/var/lib/hb \\\"x\\\"/pv.json\"\n",
    );
    let daily = std::fs::read_to_string(
        root.join("gen/daily-backup.service.d/50-homelab-backup-paths.conf"),
    )
    .unwrap();
    for line in [
        "ReadWritePaths=-\"/srv/backup disk\"\n",
        "ReadWritePaths=-/srv/mnt$HOME%%h\n",
        "ReadWritePaths=-/srv/locks\n",
        "ReadWritePaths=-\"/var/lib/hb \\\"x\\\"\"\n",
        "ExecStartPre=+/bin/mkdir -p -m 0700 -- /srv/mnt$$HOME%%h\n",
        "ExecStartPre=+/bin/mkdir -p -m 0700 -- /srv/locks\n",
        "ExecStartPre=+/bin/mkdir -p -m 0700 -- \"/var/lib/hb \\\"x\\\"\"\n",
    ] {
        assert!(daily.contains(line), "{line:?} not in:\n{daily}");
    }
    // systemd reads the drop-in back without a complaint
    let units = root.join("units");
    std::fs::create_dir_all(units.join("daily-backup.service.d")).unwrap();
    let w = ctl(&[
        "--config",
        config.as_str(),
        "units",
        "--bindir",
        "/bin",
        "--write",
        units.as_str(),
    ]);
    assert_eq!(w.status.code(), Some(0), "{}", text(&w));
    std::fs::copy(
        root.join("gen/daily-backup.service.d/50-homelab-backup-paths.conf"),
        units.join("daily-backup.service.d/50-homelab-backup-paths.conf"),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .env("SYSTEMD_UNIT_PATH", format!("{units}:"))
        .args([
            "verify",
            "--man=no",
            units.join("daily-backup.service").as_str(),
        ])
        .output()
        .expect("systemd-analyze");
    let said = text(&v);
    assert!(
        !said.contains("quot")
            && !said.contains("escape")
            && !said.contains("daily-backup.service.d"),
        "{said}"
    );
}

/// Issue 21, item 5: `config check` prints the effective config as TOML with the file's keys
/// (defaults marked), which reads back as the same config; `--config -` reads stdin; a key the
/// chosen backend or resolver ignores is warned about.
#[test]
fn config_check_prints_toml_with_the_files_keys_and_reads_stdin() {
    let config = "backup-root = \"/mnt/backup\"\n[snapshots]\nbackend = \"lvm\"\n\
                volumes-dir = \"/srv/volumes\"\n[pvc-backup]\nweekly-versions = 6\n";
    let mut child = Command::new(CTL)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args(["--config", "-", "config", "check"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), config.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8(out.stdout.clone()).unwrap();
    // TOML a program can read: the file's keys, not the code's
    let t: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(
        t["pvc-backup"]["weekly-versions"].as_integer(),
        Some(6),
        "{shown}"
    );
    assert!(shown.contains("weekly-versions = 6\n"), "{shown}");
    assert!(shown.contains("keep-days = 7  # default\n"), "{shown}");
    assert!(!shown.contains("policy"), "{shown}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`snapshots.volumes-dir` is set but ignored: `snapshots.backend` is \"lvm\""),
        "{err}"
    );
    // what it printed is a config that checks the same
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &shown).unwrap();
    std::fs::set_permissions(&again, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out2 = ctl(&["--config", again.to_str().unwrap(), "config", "check"]);
    assert_eq!(out2.status.code(), Some(0), "{}", text(&out2));
    let body = |s: &str| {
        s.lines()
            .skip(1)
            .map(|l| l.split("  # default").next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(body(&String::from_utf8_lossy(&out2.stdout)), body(&shown));
}

/// `units --write` for a config and binaries in folders with a space, `%` and `$` in their
/// names: every ExecStart names them as one word, quoted and escaped, and systemd reads the
/// command back as that path (a plain path once split at the space and expanded `%h`).
#[test]
fn units_quote_an_odd_config_path_and_bindir() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let home = root.join("homelab backup");
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("config %h $HOME.toml");
    std::fs::write(&config, "backup-root = \"/srv/backup\"\n").unwrap();
    let bindir = root.join("bin dir %n");
    std::fs::create_dir_all(&bindir).unwrap();
    for b in crate::harness::BINS {
        let name = Utf8PathBuf::from(b).file_name().unwrap().to_owned();
        std::os::unix::fs::symlink(b, bindir.join(name)).unwrap();
    }
    let units = root.join("units");
    let w = ctl(&[
        "--config",
        config.as_str(),
        "units",
        "--bindir",
        bindir.as_str(),
        "--write",
        units.as_str(),
    ]);
    assert_eq!(w.status.code(), Some(0), "{}", text(&w));
    let daily = std::fs::read_to_string(units.join("daily-backup.service")).unwrap();
    let want = format!(
        "ExecStart=\"{root}/bin dir %%n/daily-backup\" --config \"{root}/homelab backup/config \
         %%h $$HOME.toml\" --wait 3600\n"
    );
    assert!(daily.contains(&want), "{want:?} not in:\n{daily}");
    let v = Command::new("systemd-analyze")
        .env("SYSTEMD_UNIT_PATH", format!("{units}:"))
        .args(["verify", "--man=no"])
        .arg(units.join("daily-backup.service"))
        .arg(units.join("backupctl-verify.service"))
        .output()
        .expect("systemd-analyze is not installed: it comes with systemd");
    let said = text(&v);
    assert!(
        !said.contains("not executable")
            && !said.contains("No such file")
            && !said.contains("quot")
            && !said.contains("escape"),
        "{said}"
    );
}
