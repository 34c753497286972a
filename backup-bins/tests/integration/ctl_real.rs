//! backupctl end to end on a real backup root (the `dir` backend, real rsync): verify and drill
//! catch a flipped byte that keeps size and mtime, a truncated SQLite copy and a truncated dump;
//! a hostile tree (owners, setgid folders, ACLs, xattrs, hardlinks, dangling symlinks, a sparse
//! file, newlines in names) comes back identical; status lists exactly the gaps there are.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::*;

fn ctl(env: &Env, args: &[&str]) -> Output {
    env.run(CTL, args)
}

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", text(&out));
}

/// Flips one byte of `p` in place, keeping its size and mtime.
fn flip_byte(p: &Utf8Path, at: u64) {
    let m = std::fs::metadata(p).unwrap();
    let mtime = m.modified().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(p).unwrap().len(), m.len());
}

#[test]
fn verify_and_drill_catch_a_flipped_byte_a_truncated_sqlite_copy_and_a_truncated_dump() {
    let dumps = tempfile::tempdir().unwrap();
    let dumps = Utf8PathBuf::from_path_buf(dumps.path().to_owned()).unwrap();
    let env = Env::with_config(&format!("[dumps]\nfolders = [\"{dumps}\"]\n"));
    fixtures::sqlite::clean(env.vol("vm-100-pvc-a").join("app.db").as_std_path());
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // two good dumps, written by backup-dump
    for at in ["2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"] {
        let out = crate::dump_real::dump_command("pg", &dumps)
            .args(["--now", at])
            .args(["--", "seq", "1", "100000"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let clean = ctl(&env, &["--now", "2026-01-05T06:00:00Z", "verify"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "backup_verify_last_run_success"),
        Some(1.0),
        "{prom}"
    );
    assert!(gauge(&prom, "backup_verify_last_success_timestamp").is_some());

    // one byte of a backed-up file, size and mtime kept
    let copy = env.copy("2026-02", "vaultwarden", "data");
    flip_byte(&copy.join("dir/file-3.txt"), 5);
    let out = ctl(&env, &["--now", "2026-01-05T07:00:00Z", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("dir/file-3.txt: content differs from the record"),
        "{}",
        text(&out)
    );
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify.prom")).unwrap();
    assert_eq!(gauge(&prom, "backup_verify_last_run_success"), Some(0.0));
    assert_eq!(gauge(&prom, "backup_verify_differences"), Some(1.0));
    let out = ctl(
        &env,
        &["--now", "2026-01-05T07:00:00Z", "drill", "--sample", "100"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("dir/file-3.txt"), "{}", text(&out));
    // --pvc narrows it: the other PVC is intact
    let other = ctl(&env, &["verify", "--pvc", "nextcloud/files"]);
    assert_eq!(other.status.code(), Some(0), "{}", text(&other));

    // a truncated SQLite copy
    let db = env
        .root
        .join("backup/sqlite-backup/2026-02/vaultwarden/data/app.db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // a truncated dump
    let dump = dumps.join("pg-20260105-000000.dump.gz");
    let len = std::fs::metadata(&dump).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dump)
        .unwrap()
        .set_len(len - 40)
        .unwrap();
    let out = ctl(&env, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad: Vec<String> = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["differences"].as_array().unwrap().is_empty())
        .map(|c| c["what"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        bad.iter().any(|w| w.starts_with("pvc vaultwarden/data")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|w| w.contains("app.db")), "{bad:?}");
    assert!(
        bad.iter().any(|w| w.contains("pg-20260105-000000.dump.gz")),
        "{bad:?}"
    );
    assert!(!bad.iter().any(|w| w.contains("pg-20260104")), "{bad:?}");
    assert_eq!(bad.len(), 3, "{bad:?}");
}

/// path → (type and mode, owner, size, mtime, content md5, link target, xattrs) of every entry.
fn state(dir: &Utf8Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.as_std_path().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                format!("{:x}", md5::compute(std::fs::read(&p).unwrap()))
            } else {
                String::new()
            };
            let target = std::fs::read_link(&p)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let xattrs = Command::new("getfattr")
                .args(["-h", "-d", "-m", "-", "--absolute-names"])
                .arg(&p)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| !l.starts_with('#'))
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .unwrap_or_default();
            let rel = p.strip_prefix(dir.as_std_path()).unwrap();
            let mtime = if m.is_dir() || m.file_type().is_symlink() {
                0
            } else {
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            };
            out.insert(
                std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()).to_vec(),
                format!(
                    "{:o} {}:{} {} {mtime} {content} {target} {xattrs}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    if m.is_file() { m.len() } else { 0 }
                ),
            );
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Hardlink groups: sorted lists of paths sharing an inode.
fn links(dir: &Utf8Path) -> Vec<Vec<Vec<u8>>> {
    let mut by: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for e in walkdir(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        if m.is_file() && m.nlink() > 1 {
            by.entry(m.ino()).or_default().push(
                std::os::unix::ffi::OsStrExt::as_bytes(
                    e.strip_prefix(dir.as_std_path()).unwrap().as_os_str(),
                )
                .to_vec(),
            );
        }
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

fn walkdir(dir: &Utf8Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.as_std_path().to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn a_hostile_tree_is_restored_identical_and_checked() {
    assert!(
        is_root(),
        "the restore round trip needs root (owners, setgid)"
    );
    let env = Env::new();
    let v = env.vol("vm-100-pvc-a");
    let t = |p: &str| v.join(p);
    std::fs::create_dir_all(t("shared")).unwrap();
    std::fs::create_dir_all(t("owned/deeper")).unwrap();
    for (uid, name) in [(0, "root"), (999, "app"), (1000, "user"), (65534, "nobody")] {
        write(&t(&format!("owned/{name}")), &format!("owned by {uid}\n"));
        std::os::unix::fs::lchown(t(&format!("owned/{name}")), Some(uid), Some(uid)).unwrap();
    }
    sh("chmod", ["2775", t("shared").as_str()].as_ref());
    sh("chown", ["1000:999", t("shared").as_str()].as_ref());
    write(&t("shared/secret"), "0600\n");
    sh("chmod", ["0600", t("shared/secret").as_str()].as_ref());
    sh(
        "setfacl",
        ["-m", "u:1000:rw", t("shared/secret").as_str()].as_ref(),
    );
    sh(
        "setfacl",
        ["-d", "-m", "g:999:rx", t("shared").as_str()].as_ref(),
    );
    write(&t("tagged"), "with xattrs\n");
    sh(
        "setfattr",
        ["-n", "user.note", "-v", "hello", t("tagged").as_str()].as_ref(),
    );
    write(&t("a"), "one inode, two names\n");
    std::fs::hard_link(t("a"), t("owned/deeper/a-link")).unwrap();
    std::os::unix::fs::symlink("a", t("to-a")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", t("dangling")).unwrap();
    write(&t("new\nline name"), "newline\n");
    {
        let f = std::fs::File::create(t("sparse")).unwrap();
        f.set_len(200 << 20).unwrap();
        let mut f = f;
        f.seek(SeekFrom::Start(100 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
    }
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let dest = env.root.join("restored");
    let out = env.restore_vaultwarden(&dest);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all as recorded"), "{}", text(&out));
    let (want, got) = (state(&v), state(&dest));
    let diff: Vec<_> = want
        .iter()
        .filter(|(k, w)| got.get(*k) != Some(w))
        .map(|(k, w)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                w.clone(),
                got.get(k).cloned(),
            )
        })
        .collect();
    assert!(diff.is_empty(), "{diff:#?}");
    assert_eq!(want.len(), got.len());
    assert_eq!(links(&v), links(&dest));
    assert!(!links(&dest).is_empty());
    let rs = Command::new("rsync")
        .args(["-n", "-aHAXc", "--numeric-ids", "--itemize-changes"])
        .arg(format!("{v}/"))
        .arg(format!("{dest}/"))
        .output()
        .unwrap();
    assert!(rs.status.success());
    let items = String::from_utf8_lossy(&rs.stdout);
    // rsync -n itemizes the root folder's own time at most
    let items: Vec<&str> = items.lines().filter(|l| !l.ends_with(" ./")).collect();
    assert!(items.is_empty(), "{items:?}");
    let blocks = std::fs::metadata(dest.join("sparse")).unwrap().blocks();
    assert!(
        blocks < 1024,
        "the sparse file came back with {blocks} blocks"
    );
    // a second restore into the same, now non-empty folder is refused without --force
    let again = env.restore_vaultwarden(&dest);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));
    write(&dest.join("stray"), "not in the version\n");
    let forced = ctl(
        &env,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--to",
            dest.as_str(),
            "--force",
        ],
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(!dest.join("stray").exists());
}

#[test]
fn status_lists_exactly_the_gaps_and_exits_non_zero_then_0_when_fresh() {
    // a fourth volume in an excluded namespace; offsite configured
    let env = Env::with_config(&format!(
        "[[kubernetes.volume]]\nlv = \"vm-103-pvc-d\"\nnamespace = \"monitoring\"\npvc = \"prometheus\"\n\
         [offsite]\ndestination = \"{0}/offsite\"\n[[offsite.tree]]\nsource = \"{0}/nfs\"\nname = \"nfs\"\n",
        "/nonexistent-offsite"
    ));
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "keep-days = 7\n",
        "keep-days = 7\nexclude-namespaces = [\"monitoring\"]\n",
    );
    std::fs::write(env.config(), cfg).unwrap();
    write(&env.vol("vm-103-pvc-d").join("tsdb"), "metrics\n");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // two days later nextcloud/files is gone for a run (its copy and snapshot age), the rest run
    let aside = env.root.join("aside");
    std::fs::rename(env.vol("vm-101-pvc-b"), &aside).unwrap();
    assert!(env.day("2026-01-07").status.code().is_some());
    std::fs::rename(&aside, env.vol("vm-101-pvc-b")).unwrap();
    let state = |backup_root: &str, tree: &str| {
        format!(
            "{{\"backup_root\":\"{backup_root}\",\"trees\":{{\"nfs\":{{\"last_success\":\"{tree}\",\"last_full_success\":null}}}}}}"
        )
    };
    std::fs::write(
        env.root.join("backup/.offsite-state.json"),
        state("2025-12-29T06:00:00Z", "2026-01-07T06:00:00Z"),
    )
    .unwrap();
    let out = ctl(&env, &["--now", "2026-01-07T08:00:00Z", "status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut gaps: Vec<String> = Vec::new();
    for r in v["rows"].as_array().unwrap() {
        for g in r["gaps"].as_array().unwrap() {
            gaps.push(format!(
                "{} {}",
                r["what"].as_str().unwrap(),
                g["gap"].as_str().unwrap()
            ));
        }
    }
    gaps.sort();
    assert_eq!(
        gaps,
        [
            "_unresolved/vm-102-pvc-c unresolved",
            "nextcloud/files stale-snapshot",
            "nextcloud/files stale-version",
            "offsite (backup disk) offsite-stale",
        ],
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let excluded: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["excluded"] == true)
        .map(|r| r["what"].as_str().unwrap())
        .collect();
    assert_eq!(excluded, ["monitoring/prometheus"]);
    let human = ctl(&env, &["--now", "2026-01-07T08:00:00Z", "status"]);
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.starts_with("GAPS: 4, on 3 of the 6 rows below:"),
        "{stdout}"
    );
    // fresh: every volume mapped, copied today, offsite yesterday
    let env2 = Env::with_config(
        "[[kubernetes.volume]]\nlv = \"vm-102-pvc-c\"\nnamespace = \"media\"\npvc = \"library\"\n",
    );
    assert_eq!(env2.day("2026-01-05").status.code(), Some(0));
    let out = ctl(&env2, &["--now", "2026-01-05T09:00:00Z", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("no gaps"),
        "{}",
        text(&out)
    );
}

/// A tired operator's targets: `/`, the backup root, a folder inside it or a symlink into it, a
/// top-level folder with `--force`, `..`: all refused (exit 2), nothing written.
#[test]
fn restore_targets_that_would_destroy_something_are_refused() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let backup = env.root.join("backup");
    let link = env.root.join("innocent-looking");
    std::os::unix::fs::symlink(backup.join("pvc-data"), &link).unwrap();
    let before = state(&backup);
    let inside = backup.join("restore-here");
    let cases: [(&str, bool); 6] = [
        ("/", false),
        (backup.as_str(), true),
        (inside.as_str(), false),
        (link.as_str(), false),
        ("/tmp", true),
        ("../../restore", false),
    ];
    for (to, force) in cases {
        let mut args = vec!["restore", "pvc", "--pvc", "vaultwarden/data", "--to", to];
        if force {
            args.push("--force");
        }
        let out = ctl(&env, &args);
        assert_eq!(out.status.code(), Some(2), "--to {to}: {}", text(&out));
    }
    assert_eq!(
        state(&backup),
        before,
        "a refused restore changed the backup disk"
    );
    assert!(!inside.exists());
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `restore sqlite`, `restore pve-config` and `restore pfsense` bring a week's copies back and
/// check them; a damaged pfSense copy fails its restore, naming the file.
#[test]
fn sqlite_pve_config_and_pfsense_restores_are_checked() {
    let env = Env::new();
    std::fs::create_dir_all(env.vol("vm-100-pvc-a").join("db")).unwrap();
    fixtures::sqlite::clean(env.vol("vm-100-pvc-a").join("db/app.db").as_std_path());
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let to = env.root.join("r-sqlite");
    let out = ctl(
        &env,
        &[
            "restore",
            "sqlite",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "db/app.db",
            "--to",
            to.as_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all as recorded"), "{}", text(&out));
    backup_sqlite::check_copy(to.join("db/app.db").as_std_path()).unwrap();
    let missing = ctl(
        &env,
        &[
            "restore",
            "sqlite",
            "--pvc",
            "vaultwarden/data",
            "--path",
            "nope.db",
            "--to",
            env.root.join("r2").as_str(),
        ],
    );
    assert_eq!(missing.status.code(), Some(66), "{}", text(&missing));

    let to = env.root.join("r-pve");
    let out = ctl(&env, &["restore", "pve-config", "--to", to.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let src = env.vol("vm-100-pvc-a").join("dir/file-2.txt");
    let restored = to.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        std::fs::read(&src).unwrap()
    );
    assert!(
        !to.join(".complete").exists(),
        "the marker is not part of the config"
    );

    // a pfSense week as daily-backup writes it, then one with a cut config.xml
    let week = env.root.join("backup/pfsense/2026-02");
    std::fs::create_dir_all(&week).unwrap();
    std::fs::write(
        week.join("config.xml"),
        "<?xml version=\"1.0\"?>\n<pfsense>\n<version>23.1</version>\n</pfsense>\n",
    )
    .unwrap();
    std::fs::write(week.join("pfsense-full.tar.gz"), gz(b"tar bytes")).unwrap();
    let to = env.root.join("r-pf");
    let out = ctl(&env, &["restore", "pfsense", "--to", to.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(to.join("config.xml").is_file() && to.join("pfsense-full.tar.gz").is_file());
    std::fs::write(
        week.join("config.xml"),
        "<?xml version=\"1.0\"?>\n<pfsense>\n<version>23.1</ver",
    )
    .unwrap();
    let out = ctl(
        &env,
        &[
            "restore",
            "pfsense",
            "--to",
            env.root.join("r-pf2").as_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("config.xml"), "{}", text(&out));
    let v = ctl(&env, &["verify"]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(text(&v).contains("pfsense 2026-02"), "{}", text(&v));
}

/// A verify of an empty backup root proves nothing: it fails and says so; a damaged offsite
/// state file is a warning in `status`, not a silent "never".
#[test]
fn verify_of_nothing_fails_and_a_damaged_offsite_state_is_named() {
    let env = Env::with_config(
        "[offsite]\ndestination = \"/nonexistent-offsite\"\n[[offsite.tree]]\nsource = \"/nonexistent-nfs\"\nname = \"nfs\"\n",
    );
    let out = ctl(&env, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing to verify"), "{}", text(&out));
    let prom = std::fs::read_to_string(env.root.join("metrics/backupctl-verify.prom")).unwrap();
    assert_eq!(
        gauge(&prom, "backup_verify_last_run_success"),
        Some(0.0),
        "{prom}"
    );
    std::fs::write(env.root.join("backup/.offsite-state.json"), "{not json").unwrap();
    let out = ctl(&env, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(".offsite-state.json cannot be read"),
        "{}",
        text(&out)
    );
}

/// When the backend cannot list its volumes, status cannot say anything is protected: that is a
/// gap (exit 1), never an empty "no gaps".
#[test]
fn status_with_volumes_that_cannot_be_listed_is_a_gap() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    std::fs::rename(env.root.join("volumes"), env.root.join("volumes-gone")).unwrap();
    let out = ctl(&env, &["--now", "2026-01-05T06:00:00Z", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("could not be listed"), "{}", text(&out));
}

/// `list` shows every layer from live state: versions with their files and bytes only they
/// hold, SQLite copies, snapshots, excluded volumes, dumps by name; verify's filters choose
/// the versions they say.
#[test]
fn list_shows_every_layer_and_verify_filters_choose_versions() {
    let dumps = tempfile::tempdir().unwrap();
    let dumps = Utf8PathBuf::from_path_buf(dumps.path().to_owned()).unwrap();
    let env = Env::with_config(&format!("[dumps]\nfolders = [\"{dumps}\"]\n"));
    fixtures::sqlite::clean(env.vol("vm-100-pvc-a").join("app.db").as_std_path());
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    write(
        &env.vol("vm-100-pvc-a").join("dir/new-next-week.txt"),
        "only in week 3\n",
    );
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let out = crate::dump_real::dump_command("pg", &dumps)
        .args(["--now", "2026-01-12T00:00:00Z", "--", "echo", "dump"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&env, &["--now", "2026-01-12T06:00:00Z", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vw = v["pvcs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["namespace"] == "vaultwarden")
        .unwrap();
    let weeks: Vec<&str> = vw["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["week"].as_str().unwrap())
        .collect();
    assert_eq!(weeks, ["2026-02", "2026-03"]);
    let w3 = &vw["versions"][1];
    // the new file is the only one week 3 does not share with week 2
    assert_eq!(w3["unique_bytes"], 15, "{w3}");
    assert_eq!(w3["files"], 7, "{w3}"); // 5 text files, app.db, the new file
    assert_eq!(w3["sqlite_copies"], 1);
    // the first snapshot is past keep-days = 7 by the second run
    assert_eq!(vw["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["dumps"][0]["name"], "pg");
    assert_eq!(v["dumps"][0]["count"], 1);
    assert_eq!(v["pve_config"].as_array().unwrap().len(), 2);

    let pvc_versions = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["--now", "2026-01-12T06:00:00Z", "verify", "--json"];
        a.extend_from_slice(args);
        let out = ctl(&env, &a);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["checked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["what"].as_str().unwrap().to_owned())
            .filter(|w| w.starts_with("pvc "))
            .collect()
    };
    assert_eq!(pvc_versions(&["--week", "2026-02"]).len(), 3);
    assert_eq!(
        pvc_versions(&["--pvc", "vaultwarden/data"]),
        [
            "pvc vaultwarden/data 2026-02",
            "pvc vaultwarden/data 2026-03"
        ]
    );
    assert_eq!(
        pvc_versions(&["--since-days", "3"]).len(),
        3,
        "only week 3's"
    );
    // a sample reads fewer files, but checks every version
    let out = ctl(&env, &["verify", "--json", "--sample", "1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read: u64 = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["what"].as_str().unwrap().starts_with("pvc "))
        .map(|c| c["files_read"].as_u64().unwrap())
        .sum();
    assert!(read < 10, "a 1 % sample read {read} files");
}
