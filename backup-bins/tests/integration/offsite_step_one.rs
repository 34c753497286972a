//! Offsite step 1 cannot mirror a disaster (issue 19, item 1): the backup root carries an
//! identity, a disk that is not the one the offsite copy was synced from is refused (unless
//! `--adopt`), a version leaves the offsite copy only when the backup disk's own retention
//! removed it, and an incomplete version is never sent over a complete one. Real rsync, the
//! `dir` backend, a local destination.

use std::os::unix::fs::MetadataExt;
use std::process::Output;

use camino::Utf8PathBuf;

use crate::harness::*;

const OFFSITE: &str = env!("CARGO_BIN_EXE_offsite-sync-backup");

/// A homelab whose offsite copy goes to `<root>/nas`.
fn site(offsite_extra: &str) -> Env {
    let env = Env::new();
    std::fs::create_dir(env.root.join("nas")).unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!(
            "{cfg}\n[offsite]\ndestination = \"{}/nas\"\ndaily-wait-seconds = 5\n{offsite_extra}\n",
            env.root
        ),
    )
    .unwrap();
    env
}

fn sync(env: &Env, args: &[&str]) -> Output {
    env.run(OFFSITE, args)
}

fn offsite(env: &Env) -> Utf8PathBuf {
    env.root.join("nas/pve-backup")
}

/// The weeks holding a complete version of vaultwarden/data offsite.
fn offsite_weeks(env: &Env) -> Vec<String> {
    let mut w: Vec<String> = std::fs::read_dir(offsite(env).join("pvc-data"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .filter(|w| {
                    offsite(env)
                        .join(format!("pvc-data/{w}/.complete/vaultwarden/data"))
                        .is_file()
                })
                .collect()
        })
        .unwrap_or_default();
    w.sort();
    w
}

/// Four weekly runs (weeks 2026-02 to 2026-05), each followed by an offsite sync.
fn four_weeks(env: &Env) {
    for day in ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"] {
        write(&env.vol("vm-100-pvc-a").join("week.txt"), day);
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
        let out = sync(env, &["--now", &format!("{day}T06:00:00Z")]);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    assert_eq!(
        offsite_weeks(env),
        ["2026-02", "2026-03", "2026-04", "2026-05"]
    );
}

#[test]
fn normal_pruning_propagates_and_a_longer_offsite_retention_keeps_more_hardlinked() {
    for (extra, want) in [
        ("", vec!["2026-03", "2026-04", "2026-05", "2026-06"]),
        (
            "weekly-versions = 6",
            vec!["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"],
        ),
    ] {
        let env = site(extra);
        four_weeks(&env);
        // week 2026-06: the backup disk's retention removes 2026-02
        let out = env.day("2026-02-02");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(!env.copy("2026-02", "vaultwarden", "data").exists());
        let out = sync(&env, &["--now", "2026-02-02T06:00:00Z"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(offsite_weeks(&env), want, "{extra}: {}", text(&out));
        // unchanged files stay one inode across the offsite weeks
        let f =
            |w: &str| offsite(&env).join(format!("pvc-data/{w}/vaultwarden/data/dir/file-0.txt"));
        assert_eq!(
            std::fs::metadata(f("2026-03")).unwrap().ino(),
            std::fs::metadata(f("2026-06")).unwrap().ino(),
            "{extra}"
        );
    }
}

#[test]
fn a_swapped_or_wiped_disk_is_refused_and_adopting_it_keeps_the_offsite_history() {
    let env = site("");
    four_weeks(&env);
    let id = std::fs::read_to_string(env.root.join("backup/.backup-root-id")).unwrap();
    assert_eq!(
        std::fs::read_to_string(offsite(&env).join(".backup-root-id")).unwrap(),
        id
    );
    // the disk is replaced by a fresh one holding one new week
    std::fs::rename(env.root.join("backup"), env.root.join("backup.old")).unwrap();
    std::fs::create_dir(env.root.join("backup")).unwrap();
    let out = env.day("2026-02-02");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let new_id = std::fs::read_to_string(env.root.join("backup/.backup-root-id")).unwrap();
    assert_ne!(new_id, id);
    let before = offsite_weeks(&env);
    let out = sync(&env, &["--now", "2026-02-02T06:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(id.trim()) && t.contains(new_id.trim()),
        "both ids named: {t}"
    );
    assert!(t.contains("--adopt"), "the way out is named: {t}");
    assert_eq!(offsite_weeks(&env), before, "nothing deleted: {t}");
    assert!(
        !offsite(&env).join("pvc-data/2026-06").exists(),
        "nothing sent: {t}"
    );
    // adopted on purpose: the new week goes, the old ones stay until this disk's own
    // retention would have removed them
    let out = sync(&env, &["--now", "2026-02-02T07:00:00Z", "--adopt"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("kept offsite") && t.contains("adopted"), "{t}");
    assert_eq!(
        offsite_weeks(&env),
        ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    );
    // the PVE config's weeks too (they were all deleted once, the message notwithstanding)
    let mut pve: Vec<String> = std::fs::read_dir(offsite(&env).join("pve-config"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    pve.sort();
    assert_eq!(
        pve,
        ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"],
        "{t}"
    );
    assert_eq!(
        std::fs::read_to_string(offsite(&env).join(".backup-root-id")).unwrap(),
        new_id
    );
    // from now on the adopted disk syncs without --adopt
    let out = sync(&env, &["--now", "2026-02-02T08:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // wiped in place: the same disk reformatted, one daily run
    for e in std::fs::read_dir(env.root.join("backup"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = env.day("2026-02-09");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = sync(&env, &["--now", "2026-02-09T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        offsite_weeks(&env),
        ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    );
}

#[test]
fn an_incomplete_week_is_never_sent_over_its_complete_copy_offsite() {
    let env = site("");
    four_weeks(&env);
    let offsite_file = offsite(&env).join("pvc-data/2026-05/vaultwarden/data/week.txt");
    assert_eq!(
        std::fs::read_to_string(&offsite_file).unwrap(),
        "2026-01-26"
    );
    // the disk holds week 2026-05 incomplete only (a rerun that failed and a marker lost)
    std::fs::remove_file(env.marker("2026-05", "vaultwarden", "data")).unwrap();
    std::fs::write(
        env.copy("2026-05", "vaultwarden", "data").join("week.txt"),
        "half written",
    )
    .unwrap();
    let out = sync(&env, &["--now", "2026-01-27T06:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("not sent, incomplete here"), "{t}");
    assert_eq!(
        std::fs::read_to_string(&offsite_file).unwrap(),
        "2026-01-26"
    );
    assert!(offsite(&env)
        .join("pvc-data/2026-05/.complete/vaultwarden/data")
        .is_file());
}

/// `backupctl verify` of the offsite copy itself (a config whose backup root is
/// `<nas>/pve-backup`): its output and exit code.
fn verify_offsite(env: &Env) -> Output {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cfg = cfg[..cfg.find("\n[offsite]").unwrap()].replacen(
        &format!("backup-root = \"{}/backup\"", env.root),
        &format!("backup-root = \"{}\"", offsite(env)),
        1,
    );
    let path = env.root.join("offsite-view.toml");
    std::fs::write(&path, cfg).unwrap();
    std::process::Command::new(CTL)
        .arg("--config")
        .arg(&path)
        .arg("verify")
        .output()
        .unwrap()
}

/// Rewrites `p` with `content` (the same length), keeping its mtime.
fn rewrite_keeping_mtime(p: &camino::Utf8Path, content: &str) {
    let m = std::fs::metadata(p).unwrap();
    assert_eq!(m.len(), content.len() as u64);
    std::fs::write(p, content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(m.modified().unwrap()))
        .unwrap();
}

/// After every step 1 the offsite copy equals the record sent with it: a rerun that rewrote a
/// file keeping its size and mtime, a mode changed in a new inode (offsite that inode is
/// shared with the week before: a chmod in place would change the older week too), and a file
/// repaired after verify found it damaged all arrive, though rsync's quick check sees no change.
#[test]
fn the_offsite_copy_equals_its_record_after_rewrites_chmods_and_repairs() {
    let env = site("");
    let vol = env.vol("vm-100-pvc-a");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    assert_eq!(
        sync(&env, &["--now", "2026-01-05T06:00:00Z"]).status.code(),
        Some(0)
    );
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    assert_eq!(
        sync(&env, &["--now", "2026-01-12T06:00:00Z"]).status.code(),
        Some(0)
    );
    // the same week again: content rewritten in place (size and mtime kept), a mode changed
    rewrite_keeping_mtime(&vol.join("dir/file-1.txt"), "vm-100-pvc-a FILE 1\n");
    std::fs::set_permissions(
        vol.join("dir/file-2.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-13T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["--now", "2026-01-13T05:00:00Z", "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = sync(&env, &["--now", "2026-01-13T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("sent again"), "{}", text(&out));
    let out = verify_offsite(&env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // bit rot in a new file before step 1 first sends it: offsite gets the damaged bytes;
    // verify marks the version, the next run repairs it (size and mtime unchanged), and step 1
    // must send it again
    write(&vol.join("new.txt"), "fresh content\n");
    assert_eq!(env.day("2026-01-14").status.code(), Some(0));
    let copy = env.copy("2026-03", "vaultwarden", "data").join("new.txt");
    rewrite_keeping_mtime(&copy, "fresh cONTENT\n");
    assert_eq!(
        sync(&env, &["--now", "2026-01-14T06:00:00Z"]).status.code(),
        Some(0)
    );
    assert_eq!(verify_offsite(&env).status.code(), Some(1));
    assert_eq!(
        env.run(CTL, &["verify", "--week", "2026-03"]).status.code(),
        Some(1)
    );
    assert_eq!(env.day("2026-01-15").status.code(), Some(0));
    let out = sync(&env, &["--now", "2026-01-15T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = verify_offsite(&env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Runs daily-backup at `now` under strace and SIGKILLs it right after its first renameat2
/// (the RENAME_EXCHANGE of the one changed version, vaultwarden/data in week 2026-02, whose
/// new tree holds `new_file`) returns; returns the journal it leaves.
fn kill_mid_swap(env: &Env, now: &str, new_file: &str) -> Utf8PathBuf {
    // SIGKILL right after the first renameat2 (the RENAME_EXCHANGE of the one changed version)
    // returns: strace holds the run there, the test kills it
    let mut traced = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=renameat2",
            "-e",
        ])
        .arg("inject=renameat2:delay_exit=8000000:when=1")
        .arg(DAILY)
        .args(["--config", env.config().as_str(), "--now", now])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace is not installed: run scripts/test, which installs it");
    let journal = env
        .root
        .join("backup/pvc-data/2026-02/.staging/commit/vaultwarden/data");
    let f4 = env.copy("2026-02", "vaultwarden", "data").join(new_file);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(journal.is_file() && f4.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the swap never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", traced.id())).unwrap();
    for pid in children.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    let _ = traced.wait();
    assert!(journal.is_file(), "the run finished its swap");
    journal
}

/// A daily run killed right after it swapped a new tree in and before it renamed the new
/// record: the next step 1 finishes that update before it sends anything, so the offsite copy
/// never holds a tree with another tree's record. The same on the last run of a week: a run
/// of the next week finishes it too.
#[test]
fn a_run_killed_mid_swap_is_finished_before_step_one_sends_the_version() {
    let env = site("");
    let vol = env.vol("vm-100-pvc-a");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    assert_eq!(
        sync(&env, &["--now", "2026-01-05T06:00:00Z"]).status.code(),
        Some(0)
    );
    write(&vol.join("f4"), "new\n");
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-06T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let journal = kill_mid_swap(&env, "2026-01-06T05:00:00Z", "f4");
    let swapped = env
        .copy("2026-02", "vaultwarden", "data")
        .join("f4")
        .exists();
    let out = sync(&env, &["--now", "2026-01-06T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!journal.exists(), "step 1 left the half-made update");
    let out = verify_offsite(&env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "swapped={swapped}: {}",
        text(&out)
    );
    // the last run of a week killed the same way: the first run of the next week finishes it
    write(&vol.join("f5"), "newer\n");
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-07T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let journal = kill_mid_swap(&env, "2026-01-07T05:00:00Z", "f5");
    let out = env.day("2026-01-12");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("finished the update of week 2026-02"),
        "{}",
        text(&out)
    );
    assert!(!journal.exists());
    assert!(!env.staging("2026-02", "vaultwarden", "data").exists());
    let out = env.run(CTL, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Under a GFS policy the offsite weeks the disk lacks are judged by when they were completed
/// (their markers' times), not by the time of the run: adopting a new disk in April keeps the
/// January, February and March weeks offsite, of the PVCs and of the PVE config alike.
#[test]
fn a_gfs_policy_judges_the_offsite_weeks_by_their_own_times() {
    let env = site("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!("{cfg}\n[pvc-backup.retention]\nmonthly = 6\n"),
    )
    .unwrap();
    for day in ["2026-01-05", "2026-02-02", "2026-03-02"] {
        let out = env.day(day);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
        let out = sync(&env, &["--now", &format!("{day}T06:00:00Z")]);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
    }
    std::fs::rename(env.root.join("backup"), env.root.join("backup.old")).unwrap();
    std::fs::create_dir(env.root.join("backup")).unwrap();
    assert_eq!(env.day("2026-04-06").status.code(), Some(0));
    let out = sync(&env, &["--now", "2026-04-06T06:00:00Z", "--adopt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let weeks = |tree: &str| {
        let mut w: Vec<String> = std::fs::read_dir(offsite(&env).join(tree))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        w.sort();
        w
    };
    let want = ["2026-02", "2026-06", "2026-10", "2026-15"];
    assert_eq!(weeks("pvc-data"), want, "{}", text(&out));
    assert_eq!(weeks("pve-config"), want, "{}", text(&out));
}

/// A damaged commit journal in an old week stops neither daily-backup (a warning) nor step 1:
/// that version alone is not sent, and the others are.
#[test]
fn a_damaged_journal_holds_back_its_version_only() {
    let env = site("");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let journal = env
        .root
        .join("backup/pvc-data/2026-02/.staging/commit/vaultwarden/data");
    write(&journal, "not a journal\n");
    let out = env.day("2026-01-13");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("damaged commit journal"),
        "{}",
        text(&out)
    );
    let out = sync(&env, &["--now", "2026-01-13T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("not sent, its update cannot be finished"),
        "{}",
        text(&out)
    );
    assert!(!offsite(&env)
        .join("pvc-data/2026-02/vaultwarden/data")
        .exists());
    assert!(offsite(&env)
        .join("pvc-data/2026-03/vaultwarden/data")
        .is_dir());
    assert!(offsite(&env)
        .join("pvc-data/2026-02/nextcloud/files")
        .is_dir());
}

/// The backup disk is gone: `backupctl --from-offsite` reads the NAS copy of the same config
/// (no edit at 5 a.m.), verifies it against the records that travelled with it, names a
/// flipped byte there without writing into it, and restores a PVC from it, checked.
#[test]
fn from_offsite_reads_verifies_and_restores_the_nas_copy_without_the_disk() {
    let env = site("");
    four_weeks(&env);
    std::fs::rename(env.root.join("backup"), env.root.join("backup.lost")).unwrap();
    let ctl = |args: &[&str]| {
        let mut all = vec!["--from-offsite", "--now", "2026-01-26T09:00:00Z"];
        all.extend_from_slice(args);
        env.run(CTL, &all)
    };
    let out = ctl(&["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("2026-05"), "{}", text(&out));
    // a flipped byte on the NAS: named, and nothing written there
    // (week.txt, written every week, is the one file week 2026-05 shares with no other week)
    let rotten = offsite(&env).join("pvc-data/2026-05/vaultwarden/data/week.txt");
    rewrite_keeping_mtime(&rotten, "2026-01-2X");
    let out = ctl(&["verify"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("week.txt") && t.contains("2026-05"), "{t}");
    assert!(
        !offsite(&env).join("pvc-data/2026-05/.damaged").exists(),
        "{t}"
    );
    // the week before is whole: restored from the NAS copy and checked
    let to = env.root.join("restored");
    let out = ctl(&[
        "restore",
        "pvc",
        "--pvc",
        "vaultwarden/data",
        "--week",
        "2026-04",
        "--to",
        to.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all as recorded"), "{}", text(&out));
    assert!(to.join("dir/file-1.txt").is_file());
    // never a target: the backup disk's root (where a replacing disk is mounted), the NAS copy
    std::fs::create_dir(env.root.join("backup")).unwrap();
    for target in [
        env.root.join("backup"),
        env.root.join("nas"),
        env.root.join("nas/a-tree"),
    ] {
        let out = ctl(&[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--week",
            "2026-04",
            "--force",
            "--to",
            target.as_str(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{target}: {}", text(&out));
        assert!(text(&out).contains("on or around"), "{}", text(&out));
    }
    assert!(offsite(&env).join("pvc-data/2026-04").is_dir());
    // status of the NAS copy: its versions, not its own offsite state (kept on the disk)
    let out = ctl(&["status"]);
    assert!(
        !text(&out).contains("never synced offsite"),
        "{}",
        text(&out)
    );
    // a remote destination that does not answer is named, not guessed at
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        &format!("destination = \"{}/nas\"", env.root),
        "destination = \"backup@nas.invalid:/vol/Backup\"",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let out = ctl(&["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("backup@nas.invalid:/vol/Backup/pve-backup/ could not be read over ssh"),
        "{}",
        text(&out)
    );
}

/// A destination that is the backup root (or a tree) once a symlink or `..` is followed is
/// refused before anything is sent: it nested a deeper copy of the backup root into itself
/// every run.
#[test]
fn a_destination_inside_the_backup_root_through_a_symlink_is_refused() {
    let env = site("");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    std::fs::create_dir(env.root.join("backup/offsite")).unwrap();
    std::os::unix::fs::symlink(env.root.join("backup/offsite"), env.root.join("nas-link")).unwrap();
    for dest in [
        env.root.join("nas-link").to_string(),
        format!("{}/nas/../backup/offsite", env.root),
    ] {
        let cfg = std::fs::read_to_string(env.config()).unwrap();
        let cfg = cfg[..cfg.find("\n[offsite]").unwrap()].to_owned();
        std::fs::write(
            env.config(),
            format!("{cfg}\n[offsite]\ndestination = \"{dest}\"\ndaily-wait-seconds = 5\n"),
        )
        .unwrap();
        let out = sync(&env, &["--now", "2026-01-05T06:00:00Z"]);
        assert_eq!(out.status.code(), Some(2), "{dest}: {}", text(&out));
        assert!(
            text(&out).contains("once symlinks are followed"),
            "{}",
            text(&out)
        );
        assert_eq!(
            std::fs::read_dir(env.root.join("backup/offsite"))
                .unwrap()
                .count(),
            0,
            "{dest}: something was sent"
        );
    }
}

/// The same NAS reached over ssh: a real sshd on loopback, the config's destination
/// `root@127.0.0.1:<nas>` with its key and pinned host key.
fn over_ssh(env: &Env) -> crate::pfsense_real::Sshd {
    let server = crate::pfsense_real::sshd(env.root.join("ssh"));
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        &format!("destination = \"{}/nas\"", env.root),
        &format!(
            "destination = \"root@127.0.0.1:{}/nas\"\nssh-key-file = \"{d}/client_key\"\n\
             ssh-known-hosts = \"{d}/known_hosts\"\nssh-port = {p}",
            env.root,
            d = server.dir,
            p = server.port
        ),
    );
    std::fs::write(env.config(), cfg).unwrap();
    server
}

/// One byte flipped in a file of the offsite copy, its size and mtime kept (what bit rot on
/// the NAS looks like to rsync's quick check).
fn flip_a_byte(p: &camino::Utf8Path) {
    let meta = std::fs::metadata(p).unwrap();
    let mut bytes = std::fs::read(p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(p, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
}

fn read_back(env: &Env, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["verify", "--offsite", "--now", "2026-01-06T09:00:00Z"];
    args.extend(extra);
    let out = env.run(CTL, &args);
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify-offsite.prom"))
        .unwrap_or_default();
    (out.status.code(), text(&out), prom)
}

/// `verify --offsite` reads the NAS copy back, locally (against the records that travelled
/// with it) and over ssh (`rsync -n -c`: the NAS checksums its own bytes): a byte flipped on
/// the NAS with size and mtime kept fails it, naming the file, with its own metrics; the backup
/// disk's verify still passes and nothing is written into the offsite copy.
#[test]
fn verify_offsite_reads_the_nas_copy_back_locally_and_over_ssh() {
    let env = site("");
    write(
        &env.vol("vm-100-pvc-a").join("blob.bin"),
        &"0123456789abcdef".repeat(4096),
    );
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let out = sync(&env, &["--now", "2026-01-05T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (code, out, prom) = read_back(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        gauge(&prom, "backup_verify_last_run_success"),
        Some(1.0),
        "{prom}"
    );
    let nas_blob = offsite(&env).join("pvc-data/2026-02/vaultwarden/data/blob.bin");
    flip_a_byte(&nas_blob);
    let listing = |p: &camino::Utf8Path| {
        let mut v: Vec<String> = walk(p);
        v.sort();
        v
    };
    let before = listing(&offsite(&env));
    let (code, out, prom) = read_back(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("blob.bin"), "{out}");
    assert_eq!(gauge(&prom, "backup_verify_last_run_success"), Some(0.0));
    assert_eq!(
        listing(&offsite(&env)),
        before,
        "verify --offsite wrote offsite"
    );
    // the disk itself is intact
    let out = env.run(CTL, &["verify", "--now", "2026-01-06T09:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // the same NAS over ssh
    let _server = over_ssh(&env);
    let (code, out, prom) = read_back(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("blob.bin") && out.contains("content differs in the offsite copy"),
        "{out}"
    );
    assert_eq!(gauge(&prom, "backup_verify_last_run_success"), Some(0.0));
    let (code, out, _) = read_back(&env, &["--sample", "100"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("blob.bin"), "{out}");
    assert_eq!(
        listing(&offsite(&env)),
        before,
        "verify --offsite wrote offsite"
    );
    // put right: passes over ssh
    flip_a_byte(&nas_blob);
    let (code, out, prom) = read_back(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(gauge(&prom, "backup_verify_last_run_success"), Some(1.0));
}

fn walk(p: &camino::Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let path = camino::Utf8PathBuf::from_path_buf(e.path()).unwrap();
        out.push(path.to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out.sort();
    out
}

/// `drill --site` with the backup disk renamed away: every PVC, the PVE config and the newest
/// dump of every name (from the NFS tree's offsite copy, into throwaway servers) come back from
/// the offsite copy alone; a PVC the cluster has and the offsite copy lacks, or no etcd
/// snapshot, is named and fails it (exit 1); once both are there it passes within 4 hours.
#[test]
fn drill_site_rebuilds_from_the_offsite_copy_alone_and_names_what_is_missing() {
    use crate::dump_real::dump_command;
    let env = site("");
    let nfs = env.root.join("nfs");
    for d in ["redis-backup", "etcd-backup"] {
        std::fs::create_dir_all(nfs.join(d)).unwrap();
    }
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!(
            "{cfg}\n[[offsite.tree]]\nsource = \"{nfs}\"\nname = \"nfs\"\n\
             [dumps]\nfolders = [\"{nfs}/redis-backup\", \"{nfs}/etcd-backup\"]\n\
             [[kubernetes.volume]]\nlv = \"vm-109-pvc-z\"\nnamespace = \"shop\"\npvc = \"orders\"\n"
        ),
    )
    .unwrap();
    // a real Redis dump in the tree
    crate::dump_servers::redis_dump(&nfs.join("redis-backup"), &["MSET", "a", "1", "b", "2"]);
    let backup = env.root.join("backup");
    let gone = env.root.join("backup-gone");
    let rehearse = |env: &Env| {
        let out = sync(env, &["--now", "2026-01-05T06:00:00Z", "--full"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        std::fs::rename(&backup, &gone).unwrap();
        let out = env.run(CTL, &["drill", "--site", "--now", "2026-01-06T09:00:00Z"]);
        std::fs::rename(&gone, &backup).unwrap();
        (out.status.code(), text(&out))
    };
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, out) = rehearse(&env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nothing read from the backup disk"), "{out}");
    assert!(
        out.contains("MISSING shop/orders: no complete version in the offsite copy"),
        "{out}"
    );
    assert!(out.contains("MISSING no etcd snapshot"), "{out}");
    assert!(
        out.contains("dump redis (redis) restored into a throwaway server"),
        "{out}"
    );
    // the PVC goes from the cluster, an etcd snapshot arrives: the rehearsal passes
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "[[kubernetes.volume]]\nlv = \"vm-109-pvc-z\"\nnamespace = \"shop\"\npvc = \"orders\"\n",
        "",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let etcd = crate::dump_restore::Etcd::start();
    etcd.ctl(&["put", "/registry/x", "1"]);
    let url = etcd.url.clone();
    let out = dump_command("etcd", &nfs.join("etcd-backup"))
        .args(["--ext", "db", "--", "etcdctl", "--endpoints", &url])
        .args(["snapshot", "save", "{out}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, out) = rehearse(&env);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("RTO site"), "{out}");
    assert!(out.contains("within the 4 h target"), "{out}");
    assert!(out.contains("dump etcd (etcd) restored"), "{out}");
    assert!(!out.contains("MISSING"), "{out}");
}

/// `--from-offsite` of a destination reached over ssh, the backup disk renamed away: list,
/// restore (whole and `--path`, checked against the records that travelled) and the site drill
/// read the NAS through ssh alone, with the config as it is; a `--from-offsite verify`, which
/// would read every file, is sent to `verify --offsite`; nothing is written on the NAS.
#[test]
fn from_offsite_reads_a_copy_reached_over_ssh() {
    let env = site("");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let out = sync(&env, &["--now", "2026-01-05T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _server = over_ssh(&env);
    let before = walk(&offsite(&env));
    let backup = env.root.join("backup");
    let gone = env.root.join("backup-gone");
    std::fs::rename(&backup, &gone).unwrap();
    let ctl = |args: &[&str]| env.run(CTL, args);
    let out = ctl(&["--from-offsite", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("vaultwarden/data"), "{}", text(&out));
    let to = env.root.join("restored");
    let out = ctl(&[
        "--from-offsite",
        "restore",
        "pvc",
        "--pvc",
        "vaultwarden/data",
        "--to",
        to.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all as recorded"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(to.join("dir/file-3.txt")).unwrap(),
        "vm-100-pvc-a file 3\n"
    );
    let one = env.root.join("one");
    let out = ctl(&[
        "--from-offsite",
        "restore",
        "pvc",
        "--pvc",
        "vaultwarden/data",
        "--path",
        "dir/file-0.txt",
        "--to",
        one.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(one.join("dir/file-0.txt").is_file());
    let out = ctl(&[
        "drill",
        "--site",
        "--no-tier",
        "--now",
        "2026-01-06T09:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "from the offsite copy root@127.0.0.1:{}/nas/pve-backup",
            env.root
        )),
        "{}",
        text(&out)
    );
    let out = ctl(&["--from-offsite", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("verify --offsite"), "{}", text(&out));
    std::fs::rename(&gone, &backup).unwrap();
    assert_eq!(
        walk(&offsite(&env)),
        before,
        "a read command wrote on the NAS"
    );
}
