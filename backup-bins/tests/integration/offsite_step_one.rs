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
