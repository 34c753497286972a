//! `find`, `diff`, `ls` across versions from the per-file records, and
//! `restore pvc --path`, against real backups (two weeks of the `dir` backend, rsync).

use std::os::unix::fs::PermissionsExt;

use crate::harness::{text, write, Env, CTL};

fn ctl(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.run(CTL, args);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Week 2026-02, then: dir/file-1.txt deleted, dir/file-2.txt rewritten, dir/file-3.txt
/// chmod 600, new.txt added; week 2026-03.
fn two_weeks() -> Env {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let vol = env.vol("vm-100-pvc-a");
    std::fs::remove_file(vol.join("dir/file-1.txt")).unwrap();
    write(
        &vol.join("dir/file-2.txt"),
        "rewritten, longer than before\n",
    );
    std::fs::set_permissions(vol.join("dir/file-3.txt"), PermissionsExt::from_mode(0o600)).unwrap();
    write(&vol.join("new.txt"), "new\n");
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    env
}

#[test]
fn find_diff_and_ls_answer_from_the_records() {
    let env = two_weeks();
    // the deleted file is still in the older week
    let (c, t) = ctl(&env, &["find", "file-1.txt"]);
    assert_eq!(c, 0, "{t}");
    let lines: Vec<&str> = t.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "vaultwarden/data  dir/file-1.txt")
        .unwrap_or_else(|| panic!("{t}"));
    assert!(lines[at + 1].starts_with("  2026-02 "), "{t}");
    assert!(
        lines[at + 2].starts_with("find file-1.txt: 3 matching paths in 6 versions"),
        "{t}"
    );
    let (c, t) = ctl(
        &env,
        &[
            "--json",
            "find",
            "dir/file-1.*",
            "--pvc",
            "vaultwarden/data",
        ],
    );
    assert_eq!(c, 0, "{t}");
    let v: serde_json::Value = serde_json::from_str(t.split_once('\n').unwrap().1).unwrap();
    let weeks: Vec<&str> = v["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["week"].as_str().unwrap())
        .collect();
    assert_eq!(weeks, ["2026-02"], "{t}");
    // nothing matches: 66
    let (c, t) = ctl(&env, &["find", "nothing-like-this"]);
    assert_eq!(c, 66, "{t}");

    let (c, t) = ctl(
        &env,
        &["diff", "2026-02", "2026-03", "--pvc", "vm-100-pvc-a"],
    );
    assert_eq!(c, 0, "{t}");
    for line in [
        "vaultwarden/data\n",
        "  + new.txt\n",
        "  - dir/file-1.txt\n",
        "  M dir/file-2.txt  (20 B → 30 B)\n",
        "  m dir/file-3.txt  (mode 644 → 600)\n",
        "1 added, 1 removed, 1 changed in content, 1 in metadata only (1 PVC compared)",
    ] {
        assert!(t.contains(line), "{line:?} not in {t}");
    }
    assert!(
        !t.contains("file-4.txt"),
        "an unchanged file is listed: {t}"
    );
    let (c, t) = ctl(&env, &["diff", "2020-01", "2026-02"]);
    assert_eq!(c, 66, "{t}");
    let (c, t) = ctl(&env, &["diff", "2026-02", "2020-01"]);
    assert_eq!(c, 2, "{t}");
    assert!(t.contains("(swap them)"), "{t}");

    let (c, t) = ctl(&env, &["ls", "2026-02", "vaultwarden/data", "dir"]);
    assert_eq!(c, 0, "{t}");
    assert!(t.contains("-rw-r--r--"), "{t}");
    assert!(
        t.contains(" file-1.txt\n") && t.contains(" file-4.txt\n") && t.contains("5 entries"),
        "{t}"
    );
    let (c, t) = ctl(&env, &["ls", "2026-03", "vaultwarden/data", "dir"]);
    assert_eq!(c, 0, "{t}");
    assert!(
        !t.contains("file-1.txt") && t.contains("-rw------- ") && t.contains("4 entries"),
        "{t}"
    );
    let (c, t) = ctl(&env, &["ls", "2026-03", "vaultwarden/data", "nope"]);
    assert_eq!(c, 66, "{t}");
}

/// One argument shape: `--pvc` and `--week` (the newest complete version by default), the
/// older positionals taken too, a claim name alone when only one PVC has it; a PVC that is in
/// only one of two weeks is said to be, not listed as every path added.
#[test]
fn ls_and_diff_take_pvc_and_week_flags_and_default_to_the_newest() {
    let env = two_weeks();
    let newest = ctl(&env, &["ls", "2026-03", "vaultwarden/data", "dir"]);
    assert_eq!(newest.0, 0, "{}", newest.1);
    assert!(
        newest.1.contains("vaultwarden/data 2026-03 dir:\n"),
        "{}",
        newest.1
    );
    for args in [
        &["ls", "--pvc", "vaultwarden/data", "dir"][..],
        &["ls", "vaultwarden/data", "dir"],
        &["ls", "data", "dir"],
        &["ls", "--pvc", "data", "--week", "2026-03", "dir"],
        &["ls", "--pvc", "vm-100-pvc-a", "dir"],
    ] {
        assert_eq!(ctl(&env, args), newest, "{args:?}");
    }
    let (c, t) = ctl(&env, &["ls", "--pvc", "vaultwarden/data"]);
    assert!(c == 0 && t.contains("vaultwarden/data 2026-03 .:\n"), "{t}");
    // a mistyped week is said to be one; no PVC, or two folders, are usage errors
    for (args, says) in [
        (&["ls", "2026-3x", "vaultwarden/data"][..], "2026-3x"),
        (&["ls"], "which PVC? give --pvc NAMESPACE/PVC"),
        (
            &["ls", "--pvc", "data", "dir", "other"],
            "ls lists one folder, got dir other",
        ),
        (&["diff", "2026-02"], "diff takes two weeks"),
    ] {
        let (c, t) = ctl(&env, args);
        assert_eq!(c, 2, "{args:?}: {t}");
        assert!(t.contains(says), "{args:?}: {t}");
    }
    let (c, t) = ctl(&env, &["ls", "--pvc", "vaultwarden/dat"]);
    assert_eq!(c, 66, "{t}");
    assert!(t.contains("did you mean `vaultwarden/data`?"), "{t}");

    let old = ctl(
        &env,
        &["diff", "2026-02", "2026-03", "--pvc", "vaultwarden/data"],
    );
    assert_eq!(old.0, 0, "{}", old.1);
    for args in [
        &["diff", "--pvc", "vaultwarden/data"][..],
        &["diff", "--pvc", "data", "--from", "2026-02"],
        &["diff", "--pvc", "data", "--to", "2026-03"],
    ] {
        assert_eq!(ctl(&env, args), old, "{args:?}");
    }

    // a volume that appears in the second week: not compared, and said so
    write(&env.vol("vm-103-pvc-d").join("only-new.txt"), "new\n");
    assert_eq!(env.day("2026-01-19").status.code(), Some(0));
    let (c, t) = ctl(&env, &["diff"]);
    assert_eq!(c, 0, "{t}");
    assert!(
        t.contains(
            "_unresolved/vm-103-pvc-d\n  not compared: no complete version in week 2026-03\n"
        ),
        "{t}"
    );
    assert!(!t.contains("only-new.txt"), "{t}");
    assert!(t.contains("(3 PVCs compared); 1 PVC not compared"), "{t}");

    // a folder named like a date is a folder once --pvc is given
    write(
        &env.vol("vm-100-pvc-a").join("2024-01-15/photo.jpg"),
        "jpg\n",
    );
    assert_eq!(env.day("2026-01-26").status.code(), Some(0));
    for args in [
        &["ls", "--pvc", "data", "2024-01-15"][..],
        &["ls", "--pvc", "data", "./2024-01-15"],
    ] {
        let (c, t) = ctl(&env, args);
        assert!(c == 0 && t.contains(" photo.jpg\n"), "{args:?}: {t}");
    }
    let (c, t) = ctl(&env, &["ls", "2024-01-15", "data"]);
    assert_eq!(c, 2, "{t}");
    assert!(t.contains("ls --pvc NAMESPACE/PVC 2024-01-15"), "{t}");
    // what writes over a live volume takes no claim name alone
    let (c, t) = ctl(&env, &["restore", "pvc", "--pvc", "data", "--into-volume"]);
    assert_eq!(c, 2, "{t}");
    assert!(
        t.contains(
            "`data` is a claim name: this writes over a live volume, so name the PVC whole: \
             --pvc vaultwarden/data"
        ),
        "{t}"
    );
}

#[test]
fn restore_path_brings_back_only_what_was_asked_and_checks_it() {
    let env = two_weeks();
    let to = env.root.join("r1");
    let (c, t) = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--week",
            "2026-02",
            "--path",
            "dir/file-1.txt",
            "--to",
            to.as_str(),
        ],
    );
    assert_eq!(c, 0, "{t}");
    assert!(t.contains("all as recorded"), "{t}");
    assert_eq!(
        std::fs::read_to_string(to.join("dir/file-1.txt")).unwrap(),
        "vm-100-pvc-a file 1\n"
    );
    assert!(
        !to.join("dir/file-2.txt").exists(),
        "more than the path came back"
    );
    assert!(!to.join("new.txt").exists());

    // a folder, into a folder that holds something else: with --force, nothing else is deleted
    let to2 = env.root.join("r2");
    write(&to2.join("mine.txt"), "mine\n");
    let (c, t) = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "/dir/",
            "--to",
            to2.as_str(),
            "--force",
        ],
    );
    assert_eq!(c, 0, "{t}");
    assert!(
        to2.join("mine.txt").exists(),
        "--path --force deleted what DIR held"
    );
    assert_eq!(
        std::fs::read_dir(to2.join("dir")).unwrap().count(),
        4,
        "{t}"
    );
    assert_eq!(
        std::fs::metadata(to2.join("dir/file-3.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // a flipped byte in the copy is caught for the chosen path too
    let copy = env.copy("2026-03", "vaultwarden", "data").join("new.txt");
    let mtime = std::fs::metadata(&copy).unwrap().modified().unwrap();
    std::fs::write(&copy, "NEW\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (c, t) = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "new.txt",
            "--to",
            env.root.join("r3").as_str(),
        ],
    );
    assert_eq!(c, 1, "{t}");
    assert!(t.contains("new.txt"), "{t}");

    for (path, code) in [("nope.txt", 66), ("../etc", 2), ("dir/../new.txt", 2)] {
        let (c, t) = ctl(
            &env,
            &[
                "restore",
                "pvc",
                "--pvc",
                "vaultwarden/data",
                "--path",
                path,
                "--to",
                env.root.join("r4").as_str(),
            ],
        );
        assert_eq!(c, code, "--path {path}: {t}");
    }
}

/// `restore pvc --path P --force` into a live folder writes P and the folders above it, and
/// nothing else: siblings at every level, newer in the live folder, keep their content. Into
/// an empty folder only P and its folders come back. (The list started with `.`, and rsync
/// copies the contents of a listed `.`: every top-level file came back over the live ones.)
#[test]
fn restore_path_never_writes_a_sibling_at_any_level() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    for (p, t) in [
        ("config.json", "{\"old\":1}\n"),
        ("db.sqlite", "old db\n"),
        ("notes.txt", "old notes\n"),
        ("a/x.txt", "old x\n"),
        ("a/b/y.txt", "old y\n"),
        ("a/b/c/want.txt", "wanted\n"),
        ("a/b/c/sibling.txt", "old sibling\n"),
    ] {
        write(&vol.join(p), t);
    }
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let live = env.root.join("live");
    for p in [
        "config.json",
        "db.sqlite",
        "notes.txt",
        "a/x.txt",
        "a/b/y.txt",
        "a/b/c/sibling.txt",
    ] {
        write(&live.join(p), "newer, live\n");
    }
    let (c, t) = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "a/b/c/want.txt",
            "--to",
            live.as_str(),
            "--force",
        ],
    );
    assert_eq!(c, 0, "{t}");
    assert_eq!(
        std::fs::read_to_string(live.join("a/b/c/want.txt")).unwrap(),
        "wanted\n"
    );
    for p in [
        "config.json",
        "db.sqlite",
        "notes.txt",
        "a/x.txt",
        "a/b/y.txt",
        "a/b/c/sibling.txt",
    ] {
        assert_eq!(
            std::fs::read_to_string(live.join(p)).unwrap(),
            "newer, live\n",
            "{p} was overwritten: {t}"
        );
    }
    let empty = env.root.join("empty");
    let (c, t) = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "config.json",
            "--to",
            empty.as_str(),
        ],
    );
    assert_eq!(c, 0, "{t}");
    let mut got: Vec<String> = std::fs::read_dir(&empty)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["config.json"], "{t}");
}
