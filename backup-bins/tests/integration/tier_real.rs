//! Issue 23: the encrypted tier, against real restic repositories and the stock `restic`
//! binary: one snapshot per PVC, restored byte-identical by plain restic; nothing read again
//! when nothing changed, across a new week; a repository replaced behind our back is refused.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::{is_root, text, write, Env, DAILY, SNAPSHOT};
use crate::pfsense_real::sshd;

const OFFSITE: &str = env!("CARGO_BIN_EXE_offsite-sync-backup");

fn require_restic() {
    let ok = Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "restic is not installed: run scripts/test, which installs it"
    );
}

/// A homelab for the tier's tests: restic installed, run as root (each version is bind-mounted).
fn tier_env() -> Env {
    require_restic();
    assert!(
        is_root(),
        "the tier bind-mounts each version: run the tests as root"
    );
    Env::new()
}

/// An [offsite] with a local destination and one local restic repository.
fn env_with_tier() -> (Env, Utf8PathBuf, Utf8PathBuf) {
    let env = tier_env();
    let (repo, pass) = (env.root.join("restic"), env.root.join("restic.pass"));
    write(&pass, "correct horse battery staple\n");
    std::fs::set_permissions(&pass, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(env.root.join("nas")).unwrap();
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    config.push_str(&format!(
        "[offsite]\ndestination = \"{root}/nas\"\ntier-mount-dir = \"{root}/tier\"\n\
         [[offsite.repository]]\nrepository = \"{repo}\"\npassword-file = \"{pass}\"\n\
         keep-weekly = 2\nkeep-monthly = 0\n",
        root = env.root
    ));
    std::fs::write(env.config(), config).unwrap();
    (env, repo, pass)
}

/// The stock restic on `repo`.
fn restic(repo: &Utf8Path, pass: &Utf8Path, args: &[&str]) -> Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD_FILE", pass)
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"))
        .output()
        .unwrap()
}

/// How many of a run's snapshots are PVCs (the others are trees: `sqlite-backup`, `dumps:/…`).
fn pvcs(report: &serde_json::Value) -> usize {
    report["tier"][0]["snapshots"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|s| {
                s["pvc"]
                    .as_str()
                    .is_some_and(|p| p.contains('/') && !p.starts_with("dumps:"))
            })
            .count()
    })
}

fn tier(env: &Env, when: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["--json", "--now", when, "--tier"];
    args.extend(extra);
    let out = env.run(OFFSITE, &args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, text(&out))
}

#[test]
fn each_pvc_is_a_snapshot_stock_restic_restores_and_nothing_unchanged_is_read_again() {
    let (env, repo, pass) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(pvcs(&report), 3, "{out}");
    let sent = report["tier"][0]["snapshots"].as_array().unwrap().len();

    // stock restic lists them, tagged, and checks every byte
    let listed = restic(&repo, &pass, &["snapshots", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let snaps: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let vw = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "pvc=data"))
        })
        .unwrap_or_else(|| panic!("no snapshot tagged pvc=data: {snaps}"));
    let tags: Vec<&str> = vw["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags[..3],
        ["namespace=vaultwarden", "pvc=data", "week=2026-02"]
    );
    // the digest of the record sent with it, kept on the disk under that digest
    let digest = tags[3].strip_prefix("record=").unwrap();
    assert_eq!(digest.len(), 32, "{tags:?}");
    assert!(env
        .root
        .join("backup/.tier-records/tier")
        .join(digest)
        .is_file());
    let check = restic(&repo, &pass, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));

    // restored by stock restic: the copy, byte for byte, with owners, modes and times
    let target = env.root.join("restored");
    let id = vw["id"].as_str().unwrap();
    let restored = restic(&repo, &pass, &["restore", id, "--target", target.as_str()]);
    assert!(restored.status.success(), "{}", text(&restored));
    let inside = target.join(
        env.root
            .join("tier/vaultwarden/data")
            .strip_prefix("/")
            .unwrap(),
    );
    let copy = env.copy("2026-02", "vaultwarden", "data");
    let diff = Command::new("rsync")
        .args(["-n", "-aAXc", "--delete", "--itemize-changes"])
        .arg(format!("{copy}/"))
        .arg(format!("{inside}/"))
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", text(&diff));
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "",
        "restic's restore differs from the copy"
    );

    // list --tier shows the repository's snapshots per PVC and week
    let listed = env.run(crate::harness::CTL, &["list", "--tier"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    assert!(
        text(&listed).contains("tier tier vaultwarden/data 2026-02: snapshot "),
        "{}",
        text(&listed)
    );
    // a rerun with no new version sends nothing again: no restic backup, no new snapshot
    let (code, _, out) = tier(&env, "2026-01-05T06:10:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let again = restic(&repo, &pass, &["snapshots", "--json"]);
    let n = serde_json::from_slice::<serde_json::Value>(&again.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        n, sent,
        "a rerun made new snapshots of versions already sent"
    );
    // backupctl restores it from the tier too, and checks it against the week's record
    let dest = env.root.join("from-tier");
    let out = restore_from_tier(&env, "2026-01-05T07:00:00Z", None, &dest);
    assert!(text(&out).contains("week 2026-02"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dest.join("dir/file-1.txt")).unwrap(),
        "vm-100-pvc-a file 1\n"
    );
    // a name no repository has: 66
    let out = env.run(
        crate::harness::CTL,
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--from-tier",
            "nowhere",
            "--to",
            env.root.join("x").as_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(66), "{}", text(&out));
    // a new week, nothing changed: every file matched against the parent, none read
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-12T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let pvc_snapshots = report["tier"][0]["snapshots"].as_array().unwrap().iter();
    for s in pvc_snapshots.filter(|s| s["pvc"].as_str().unwrap().contains('/')) {
        assert_eq!(s["files_read"], 0, "{out}");
        assert!(s["files_unmodified"].as_u64().unwrap() > 0, "{out}");
    }
    // status has a row for the tier, fresh now, stale (a gap, exit 1) nine days later
    let status = |when: &str| env.run(crate::harness::CTL, &["--json", "--now", when, "status"]);
    let tier_row = |o: &Output| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["what"] == "tier tier")
            .cloned()
            .unwrap_or_else(|| panic!("no tier row: {v}"))
    };
    let fresh = status("2026-01-12T07:00:00Z");
    assert_eq!(
        tier_row(&fresh)["gaps"].as_array().unwrap().len(),
        0,
        "{}",
        text(&fresh)
    );
    let late = status("2026-01-21T07:00:00Z");
    assert!(
        !tier_row(&late)["gaps"].as_array().unwrap().is_empty(),
        "{}",
        text(&late)
    );
    // the metrics say when the tier last sent everything
    let prom = std::fs::read_to_string(env.root.join("metrics/offsite-sync-backup.prom")).unwrap();
    assert!(
        prom.lines()
            .any(|l| l.starts_with("offsite_tier_last_success_timestamp{")
                && l.contains("repository=\"tier\"")),
        "{prom}"
    );
    // and how big the repository is: a local one, its files
    let on_disk: u64 = walk_files(&repo).iter().map(|(n, _)| n).sum();
    assert_eq!(repository_bytes(&prom, "tier"), Some(on_disk), "{prom}");
}

/// The `offsite_tier_repository_bytes` sample of `repository` in a metrics file.
fn repository_bytes(prom: &str, repository: &str) -> Option<u64> {
    let label = format!("repository=\"{repository}\"");
    prom.lines()
        .find(|l| l.starts_with("offsite_tier_repository_bytes{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[test]
fn a_replaced_repository_is_refused_until_adopted_and_a_loose_password_file_too() {
    let (env, repo, pass) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    // someone re-creates the repository at the same place
    std::fs::remove_dir_all(&repo).unwrap();
    let init = restic(&repo, &pass, &["init"]);
    assert!(init.status.success(), "{}", text(&init));
    let (code, _, out) = tier(&env, "2026-01-06T06:00:00Z", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is not the one the last run sent to"), "{out}");
    let (code, _, out) = tier(&env, "2026-01-06T06:10:00Z", &["--adopt"]);
    assert_eq!(code, 0, "{out}");
    // a password file others can read is refused before restic runs
    std::fs::set_permissions(&pass, PermissionsExt::from_mode(0o644)).unwrap();
    let (code, _, out) = tier(&env, "2026-01-06T06:20:00Z", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("chmod 600"), "{out}");
}

/// An `sftp:` repository over the sshd on loopback, with step 1's ssh key, pinned host key and
/// port: sent, then listed and checked by the stock restic over the same ssh.
#[test]
fn an_sftp_repository_is_reached_with_the_offsite_ssh_key_and_pinned_host_key() {
    require_restic();
    let env = Env::new();
    let sshd = sshd(env.root.join("sshd"));
    let pass = env.root.join("restic.pass");
    write(&pass, "sftp password\n");
    std::fs::set_permissions(&pass, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(env.root.join("nas")).unwrap();
    let repo = format!("sftp:root@127.0.0.1:{}/restic-sftp", env.root);
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    config.push_str(&format!(
        "[offsite]\ndestination = \"{root}/nas\"\ntier-mount-dir = \"{root}/tier\"\n\
         ssh-key-file = \"{d}/client_key\"\nssh-known-hosts = \"{d}/known_hosts\"\nssh-port = {p}\n\
         [[offsite.repository]]\nrepository = \"{repo}\"\npassword-file = \"{pass}\"\n",
        root = env.root,
        d = sshd.dir,
        p = sshd.port,
    ));
    std::fs::write(env.config(), config).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(pvcs(&report), 3, "{out}");
    let ssh = format!(
        "sftp.command=ssh -o BatchMode=yes -o UserKnownHostsFile={d}/known_hosts -i {d}/client_key -p {p} root@127.0.0.1 -s sftp",
        d = sshd.dir,
        p = sshd.port
    );
    let listed = Command::new("restic")
        .args(["-o", &ssh, "snapshots", "--json"])
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD_FILE", &pass)
        .env("RESTIC_CACHE_DIR", env.root.join("restic-cache"))
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    let snaps: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        report["tier"][0]["snapshots"].as_array().unwrap().len(),
        "{snaps}"
    );
    // a host key that is not the pinned one: refused, nothing sent
    std::fs::write(
        sshd.dir.join("known_hosts"),
        format!("[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n", sshd.port),
    )
    .unwrap();
    let (code, _, out) = tier(&env, "2026-01-05T06:30:00Z", &[]);
    assert_ne!(code, 0, "{out}");
}

/// `backupctl verify --tier` reads the repository's packs back with restic: a flipped byte in one
/// is found.
#[test]
fn verify_tier_finds_a_damaged_pack() {
    let (env, repo, _) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let verify = |when: &str| {
        env.run(
            crate::harness::CTL,
            &["--now", when, "verify", "--tier", "--sample", "100"],
        )
    };
    let ok = verify("2026-01-05T07:00:00Z");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let json = env.run(
        crate::harness::CTL,
        &[
            "--json",
            "--now",
            "2026-01-05T07:05:00Z",
            "verify",
            "--tier",
            "--sample",
            "100",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        report["checked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["what"].as_str().unwrap().starts_with("tier tier")),
        "{report}"
    );
    // the largest pack: a data pack, not an index
    let mut packs: Vec<(u64, Utf8PathBuf)> = walk_files(&repo.join("data"));
    packs.sort();
    let (_, pack) = packs.last().unwrap().clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::set_permissions(&pack, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(&pack, bytes).unwrap();
    let bad = verify("2026-01-05T07:10:00Z");
    assert_ne!(bad.status.code(), Some(0), "{}", text(&bad));
    assert!(text(&bad).contains("restic check (tier)"), "{}", text(&bad));
}

fn walk_files(dir: &Utf8Path) -> Vec<(u64, Utf8PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = Utf8PathBuf::from_path_buf(e.unwrap().path()).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push((m.len(), p));
        }
    }
    out
}

/// A run killed (-9, with its restic) in the middle of an upload: the next run unmounts what it
/// left, completes the repository, and stock restic's check accepts it.
#[test]
fn a_run_killed_mid_upload_is_completed_by_the_next_and_restic_check_accepts_it() {
    let (env, repo, pass) = env_with_tier();
    // 200 MiB of random bytes: a few seconds of upload to interrupt
    let big = env.vol("vm-100-pvc-a").join("big.bin");
    let mut f = std::fs::File::create(&big).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..200 {
        for b in chunk.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.copy_from_slice(&seed.to_le_bytes()[..b.len()]);
        }
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
    drop(f);
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let mut run = env
        .command(OFFSITE, &["--now", "2026-01-05T06:00:00Z", "--tier"])
        .spawn()
        .unwrap();
    // once restic writes packs, kill everything
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let packs = repo.join("data").exists() && !walk_files(&repo.join("data")).is_empty();
        if packs || run.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "restic wrote no pack");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = run.kill();
    let _ = run.wait();
    // this test's restic: its command line names this test's tier folder (the repository is in
    // its environment); other tests' restics run beside it
    crate::harness::kill_all_mentioning(env.root.join("tier").as_str());
    // the next run sends every PVC; forgetting (restic's exclusive lock) may meet the dead
    // restic's lock: then the run says so and how to clear it, and clears nothing itself
    let (code, report, out) = tier(&env, "2026-01-05T06:30:00Z", &[]);
    assert_eq!(pvcs(&report), 3, "{out}");
    if code != 0 {
        assert!(
            out.contains("already locked") && out.contains("restic unlock"),
            "{out}"
        );
        let unlock = restic(&repo, &pass, &["unlock"]);
        assert!(unlock.status.success(), "{}", text(&unlock));
        let (code, _, out) = tier(&env, "2026-01-05T06:40:00Z", &[]);
        assert_eq!(code, 0, "{out}");
    }
    // check takes restic's exclusive lock: the dead restic's lock goes first, as an operator
    // would clear it (`unlock` removes only locks whose process is gone)
    let unlock = restic(&repo, &pass, &["unlock"]);
    assert!(unlock.status.success(), "{}", text(&unlock));
    let check = restic(&repo, &pass, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    assert_eq!(env.leftover_mounts(), Vec::<String>::new());
}

/// Beside the PVCs, each tree of `send` is a snapshot of its own: the SQLite copies, the PVE
/// config, pfSense and every dump folder, from stable mount points; a tree with nothing changed
/// is not sent again, a changed one is; a configured dump folder that is gone fails the tier.
#[test]
fn the_sqlite_copies_pve_config_pfsense_and_dump_folders_are_snapshots_too() {
    let (env, repo, pass) = env_with_tier();
    let dumps = env.root.join("dumps/postgres");
    write(&dumps.join("all-2026-01-05.sql.gz"), "a dump\n");
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    config.push_str(&format!("[dumps]\nfolders = [\"{dumps}\"]\n"));
    std::fs::write(env.config(), config).unwrap();
    write(
        &env.root.join("backup/pfsense/2026-02/config.xml"),
        "<pfsense/>\n",
    );
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let labels = |r: &serde_json::Value| -> Vec<String> {
        r["tier"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["pvc"].as_str().unwrap().to_owned())
            .collect()
    };
    let dump_label = format!("dumps:{dumps}");
    for want in ["pfsense", "pve-config", dump_label.as_str()] {
        assert!(
            labels(&report).iter().any(|l| l == want),
            "no {want}: {out}"
        );
    }
    // stock restic restores the dump folder from its snapshot, tagged kind=dumps
    let inside = restore_latest(
        &env,
        (&repo, &pass),
        "kind=dumps",
        "restored",
        &env.root
            .join("tier/_files/dumps")
            .join(dumps.strip_prefix("/").unwrap()),
    );
    assert_eq!(text_of(&inside.join("all-2026-01-05.sql.gz")), "a dump\n");
    let ids = |r: &serde_json::Value| -> Vec<(String, String, u64)> {
        r["tier"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["snapshot_id"].as_str().unwrap().to_owned();
                (
                    s["pvc"].as_str().unwrap().to_owned(),
                    id,
                    s["files_read"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let first = ids(&report);
    // a new dump: only its folder is sent again (a new snapshot, one file read)
    write(&dumps.join("all-2026-01-06.sql.gz"), "the next dump\n");
    let (code, report, out) = tier(&env, "2026-01-06T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    for ((label, id, _), (label2, id2, read)) in first.iter().zip(ids(&report)) {
        assert_eq!(*label, label2);
        if *label == dump_label {
            assert!(*id != id2 && read == 1, "{out}");
        } else {
            assert!(*id == id2 && read == 0, "{label} sent again: {out}");
        }
    }
    // list --tier names the trees
    let listed = env.run(crate::harness::CTL, &["list", "--tier"]);
    assert!(
        text(&listed).contains(&format!("tier tier {dump_label} ")),
        "{}",
        text(&listed)
    );
    // the dump folder is gone (an NFS mount missing): the tier fails and says which
    std::fs::remove_dir_all(&dumps).unwrap();
    let (code, _, out) = tier(&env, "2026-01-07T06:00:00Z", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("dump folder {dumps}")), "{out}");
    // and the repository's failure is a metric of its own (OffsiteTierFailing)
    let prom = std::fs::read_to_string(env.root.join("metrics/offsite-sync-backup.prom")).unwrap();
    assert!(
        prom.contains(
            "offsite_tier_last_run_success{job=\"offsite-sync-backup\",repository=\"tier\"} 0"
        ),
        "{prom}"
    );
    assert_eq!(env.leftover_mounts(), Vec::<String>::new());
}

/// Stock `restic restore latest --tag TAGS` into `<root>/<into>`: where `mounted` (the path the
/// snapshot holds) is inside it.
fn restore_latest(
    env: &Env,
    (repo, pass): (&Utf8Path, &Utf8Path),
    tags: &str,
    into: &str,
    mounted: &Utf8Path,
) -> Utf8PathBuf {
    let target = env.root.join(into);
    let o = restic(
        repo,
        pass,
        &[
            "restore",
            "latest",
            "--tag",
            tags,
            "--target",
            target.as_str(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    target.join(mounted.strip_prefix("/").unwrap())
}

/// `backupctl restore pvc --pvc vaultwarden/data --from-tier [NAME] --to DEST`, which must
/// succeed and check the result against the week's record.
fn restore_from_tier(env: &Env, now: &str, name: Option<&str>, dest: &Utf8Path) -> Output {
    let mut args = vec!["--now", now, "restore", "pvc", "--pvc", "vaultwarden/data"];
    args.push("--from-tier");
    args.extend(name);
    args.extend(["--to", dest.as_str()]);
    let out = env.run(crate::harness::CTL, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("checked against the record"),
        "{}",
        text(&out)
    );
    out
}

fn text_of(p: &Utf8Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A server the test started (`rclone serve restic`, moto's S3), stopped with the test.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[offsite]` with a local destination and one repository `name` at `repo` (`extra`: more of
/// its keys), sending the PVCs only; returns its password file (mode 600).
fn remote_tier(env: &Env, (name, repo): (&str, &str), extra: &str) -> Utf8PathBuf {
    let pass = env.root.join("restic.pass");
    write(&pass, &format!("{name} password\n"));
    std::fs::set_permissions(&pass, PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(env.root.join("nas")).unwrap();
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    config.push_str(&format!(
        "[offsite]\ndestination = \"{root}/nas\"\ntier-mount-dir = \"{root}/tier\"\n\
         [[offsite.repository]]\nname = \"{name}\"\nrepository = \"{repo}\"\n\
         password-file = \"{pass}\"\nsend = [\"pvc\"]\n{extra}",
        root = env.root
    ));
    std::fs::write(env.config(), config).unwrap();
    pass
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn await_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `rclone serve restic` (restic's REST protocol, from Debian's rclone package), with a user and
/// password and `--append-only`, the server side README describes.
fn rest_server(dir: &Utf8Path, secret: &str) -> Server {
    let ok = Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "rclone is not installed: run scripts/test, which installs it"
    );
    let port = free_port();
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("rclone")
        .args([
            "serve",
            "restic",
            "--append-only",
            "--user",
            "backup",
            "--pass",
            secret,
        ])
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg(dir)
        .stderr(std::fs::File::create(dir.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    await_port(port, "rclone serve restic");
    Server {
        child,
        url: format!("http://backup:{secret}@127.0.0.1:{port}/homelab/"),
    }
}

/// A `rest:` repository on an append-only server with a password in its URL: sent to week after
/// week with `append-only = true` (no forget, the whole history stays), the password never in
/// the output, the server refusing deletions, and a PVC restored from it by backupctl.
#[test]
fn a_rest_repository_served_append_only_keeps_every_snapshot() {
    let env = tier_env();
    let secret = "rest-s3cr3t-9d1";
    let server = rest_server(&env.root.join("rest-server"), secret);
    let repo = format!("rest:{}", server.url);
    let pass = remote_tier(
        &env,
        ("far", &repo),
        "keep-weekly = 1\nkeep-monthly = 0\nappend-only = true\n",
    );
    for (day, when) in [
        ("2026-01-05", "2026-01-05T06:00:00Z"),
        ("2026-01-12", "2026-01-12T06:00:00Z"),
        ("2026-01-19", "2026-01-19T06:00:00Z"),
    ] {
        assert_eq!(env.day(day).status.code(), Some(0));
        let (code, report, out) = tier(&env, when, &[]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(pvcs(&report), 3, "{out}");
        assert_eq!(report["tier"][0]["forgotten"], 0, "{out}");
        assert!(!out.contains(secret), "the URL's password is shown: {out}");
        assert!(out.contains("backup:***@127.0.0.1"), "{out}");
    }
    // a remote repository's size: restic's raw data, measured on the first run, counted up since
    let prom = std::fs::read_to_string(env.root.join("metrics/offsite-sync-backup.prom")).unwrap();
    assert!(
        repository_bytes(&prom, "far").is_some_and(|b| b > 0),
        "{prom}"
    );
    // keep-weekly = 1 would forget two weeks of each PVC; append-only keeps all nine
    let stock = |args: &[&str]| {
        Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD_FILE", &pass)
            .env("RESTIC_CACHE_DIR", env.root.join("restic-cache"))
            .output()
            .unwrap()
    };
    let listed = stock(&["snapshots", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let snaps: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 9, "{snaps}");
    let check = stock(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    // the server refuses deletions (what keeps a compromised host from destroying history)
    let id = snaps[0]["id"].as_str().unwrap();
    let delete = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!("{}snapshots/{id}", server.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&delete.stdout), "403");
    // restored from the REST server by backupctl, checked against the week's record
    let dest = env.root.join("from-rest");
    let out = restore_from_tier(&env, "2026-01-19T07:00:00Z", Some("far"), &dest);
    assert!(!text(&out).contains(secret), "{}", text(&out));
}

/// `backupctl drill` restores its sample from the tier too, by restic, and checks it against
/// the records: file names that are restic patterns (`*`, `?`, `[`, `\`) come back as
/// themselves; a damaged repository makes the drill fail.
#[test]
fn drill_restores_its_sample_from_the_tier_and_checks_it() {
    let (env, repo, _) = env_with_tier();
    // names restic would read as patterns: each must match only itself
    let dir = env.vol("vm-100-pvc-a").join("odd");
    for name in ["a*b", "q?", "[x]", "back\\slash", "-dash", "plain"] {
        write(&dir.join(name), &format!("{name}\n"));
    }
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let drill = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "--now",
            "2026-01-05T08:00:00Z",
            "drill",
            "--sample",
            "100",
        ];
        args.extend(extra);
        let out = env.run(crate::harness::CTL, &args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), v, text(&out))
    };
    let (code, v, out) = drill(&[]);
    assert_eq!(code, Some(0), "{out}");
    let t = &v["tier"][0];
    assert_eq!(t["repository"], "tier", "{out}");
    // every file of the two mapped PVCs (5 + 5 + the 6 odd ones) restored by restic and checked
    let disk: u64 = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_u64().unwrap())
        .sum();
    assert_eq!(t["files"].as_u64().unwrap(), disk, "{out}");
    assert!(disk >= 16, "{out}");
    assert!(
        v["rto"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["layer"] == "offsite-tier"),
        "{out}"
    );
    // --no-tier: only the disk
    let (code, v, out) = drill(&["--no-tier"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(v["tier"].as_array().unwrap().len(), 0, "{out}");
    // every pack damaged: the tier cannot give the sample back intact, the drill fails
    for (_, pack) in walk_files(&repo.join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::set_permissions(&pack, PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(&pack, bytes).unwrap();
    }
    let (code, _, out) = drill(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("tier tier vaultwarden/data"), "{out}");
}

/// A new week with nothing changed costs no backup: each PVC's last snapshot is tagged with the
/// new week (its records say the tree is the same). A file rewritten with its size kept is a
/// change: that PVC is backed up, only that file read (the others are matched against the
/// parent: `--ignore-ctime`), and stock restic gives back what the week's copy holds. (A rewrite
/// that also keeps the mtime is not seen by daily-backup on the `dir` backend, whose snapshots
/// keep no ctime, so not by the tier either: the tier sends what the disk holds.)
#[test]
fn a_new_week_with_nothing_changed_is_a_tag_and_a_rewritten_file_is_the_only_one_read() {
    let (env, repo, pass) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let pvc_rows = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["tier"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["pvc"].as_str().unwrap().contains('/'))
            .cloned()
            .collect()
    };
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-12T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    for s in pvc_rows(&report) {
        assert_eq!(s["retagged"], true, "{out}");
        assert_eq!(s["files_read"], 0, "{out}");
    }
    // stock restic finds each PVC under both weeks
    let ids = |week: &str| -> Vec<String> {
        let o = restic(
            &repo,
            &pass,
            &["snapshots", "--json", "--tag", &format!("week={week}")],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t.as_str().unwrap().starts_with("pvc="))
            })
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("2026-03").len(), 3);
    assert_eq!(ids("2026-02"), ids("2026-03"));
    // rewritten in place, the same size
    let file = env.vol("vm-100-pvc-a").join("dir/file-1.txt");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "vm-100-pvc-a FILE 1\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime + std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(env.day("2026-01-19").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-19T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    for s in pvc_rows(&report) {
        if s["pvc"] == "vaultwarden/data" {
            assert_eq!(s["retagged"], false, "{out}");
            assert_eq!(s["files_read"], 1, "{out}");
        } else {
            assert_eq!(s["retagged"], true, "{out}");
        }
    }
    let inside = restore_latest(
        &env,
        (&repo, &pass),
        "pvc=data,week=2026-04",
        "restored",
        &env.root.join("tier/vaultwarden/data"),
    );
    assert_eq!(
        text_of(&inside.join("dir/file-1.txt")),
        "vm-100-pvc-a FILE 1\n"
    );
    // and the retagged ones hold what their week's copy holds
    let inside = restore_latest(
        &env,
        (&repo, &pass),
        "pvc=files,week=2026-04",
        "restored-files",
        &env.root.join("tier/nextcloud/files"),
    );
    let diff = Command::new("rsync")
        .args(["-n", "-rlc", "--delete", "--itemize-changes"])
        .arg(format!("{}/", env.copy("2026-04", "nextcloud", "files")))
        .arg(format!("{inside}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&diff.stdout), "", "{}", text(&diff));
}

/// moto's S3 server, from the venv `scripts/test` makes (no S3 server is in Debian 12).
fn s3_server(log: &Utf8Path) -> Server {
    let moto =
        Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/moto_server");
    assert!(
        moto.exists(),
        "{moto} is missing: run scripts/test, which installs moto (an S3 server) there"
    );
    let port = free_port();
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    await_port(port, "moto_server");
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// An `s3:` repository (moto's S3 server) with its credentials in an `environment-file`: sent,
/// listed and checked by stock restic, restored by backupctl; the secret key in no output; an
/// environment file others can read, or with a bad line, refused before restic runs.
#[test]
fn an_s3_repository_gets_its_credentials_from_an_environment_file() {
    let env = tier_env();
    let server = s3_server(&env.root.join("moto.log"));
    let secret = "s3-secret-4711-key";
    let creds = env.root.join("s3.env");
    write(
        &creds,
        &format!(
            "# the bucket's keys\nAWS_ACCESS_KEY_ID=homelab\nAWS_SECRET_ACCESS_KEY={secret}\n"
        ),
    );
    std::fs::set_permissions(&creds, PermissionsExt::from_mode(0o600)).unwrap();
    let repo = format!("s3:{}/homelab-tier", server.url);
    let pass = remote_tier(
        &env,
        ("s3", &repo),
        &format!("environment-file = \"{creds}\"\n"),
    );
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(pvcs(&report), 3, "{out}");
    assert!(!out.contains(secret), "{out}");
    let stock = |args: &[&str]| {
        Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD_FILE", &pass)
            .env("RESTIC_CACHE_DIR", env.root.join("restic-cache"))
            .env("AWS_ACCESS_KEY_ID", "homelab")
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .unwrap()
    };
    let listed = stock(&["snapshots", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let snaps: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 3, "{snaps}");
    let check = stock(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    let out = restore_from_tier(
        &env,
        "2026-01-05T07:00:00Z",
        Some("s3"),
        &env.root.join("from-s3"),
    );
    assert!(!text(&out).contains(secret), "{}", text(&out));
    // the credentials readable by others: refused, the file named
    std::fs::set_permissions(&creds, PermissionsExt::from_mode(0o644)).unwrap();
    let (code, _, out) = tier(&env, "2026-01-05T06:10:00Z", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("chmod 600") && out.contains("s3.env"), "{out}");
    // a line that is not NAME=value: named by its number, its value never shown
    write(&creds, &format!("AWS_ACCESS_KEY_ID=homelab\n{secret}\n"));
    std::fs::set_permissions(&creds, PermissionsExt::from_mode(0o600)).unwrap();
    let (code, _, out) = tier(&env, "2026-01-05T06:20:00Z", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("line 2"), "{out}");
    assert!(!out.contains(secret), "{out}");
}

/// A week's folder is made again every day of that week, and its record with it: a change on
/// the second day of a week is backed up, not answered by tagging the first day's snapshot; and
/// when the tier missed the last days of a week, the next week (the same tree as those days)
/// is backed up too, since the snapshot holds the first day's tree.
#[test]
fn a_change_later_in_the_week_is_backed_up_not_tagged() {
    let (env, repo, pass) = env_with_tier();
    let file = env.vol("vm-101-pvc-b").join("dir/file-2.txt");
    let rewrite = |text: &str, at: u64| {
        std::fs::write(&file, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
            .unwrap();
    };
    let files_row = |r: &serde_json::Value| -> serde_json::Value {
        r["tier"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["pvc"] == "nextcloud/files")
            .cloned()
            .unwrap()
    };
    let newest = |tag: &str, into: &str| -> String {
        let mounted = env.root.join("tier/nextcloud/files");
        let inside = restore_latest(&env, (&repo, &pass), tag, into, &mounted);
        text_of(&inside.join("dir/file-2.txt"))
    };
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    // Tuesday: a change in the same week
    rewrite("tuesday's text\n", 1_767_700_000);
    assert_eq!(env.day("2026-01-06").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-06T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(files_row(&report)["retagged"], false, "{out}");
    assert_eq!(files_row(&report)["files_read"], 1, "{out}");
    assert_eq!(newest("pvc=files", "r1"), "tuesday's text\n");
    // Wednesday's change, and no tier run until the next week, which changes nothing more
    rewrite("wednesday's text\n", 1_767_800_000);
    assert_eq!(env.day("2026-01-07").status.code(), Some(0));
    assert_eq!(env.day("2026-01-12").status.code(), Some(0));
    let (code, report, out) = tier(&env, "2026-01-12T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(files_row(&report)["retagged"], false, "{out}");
    assert_eq!(newest("pvc=files,week=2026-03", "r2"), "wednesday's text\n");
}

/// A restore from the tier is checked against the record that was sent with its snapshot (kept
/// by the digest its `record=` tag names), not against a later record of the same week: a run
/// later in the week rewrote the disk's record, and the check called a good restore failed.
#[test]
fn a_tier_restore_is_checked_against_the_record_sent_with_its_snapshot() {
    let (env, _repo, _pass) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let (code, _, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    // later that week: a changed and a new file, a new record of week 2026-02 on the disk;
    // the tier is not run again, so its snapshot of the week is Monday's
    write(
        &env.vol("vm-100-pvc-a").join("dir/file-1.txt"),
        "changed on tuesday\n",
    );
    write(&env.vol("vm-100-pvc-a").join("f4"), "new on tuesday\n");
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-06T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let out = env.run(DAILY, &["--now", "2026-01-06T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dest = env.root.join("from-tier");
    let out = env.run(
        crate::harness::CTL,
        &[
            "--now",
            "2026-01-06T07:00:00Z",
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--from-tier",
            "--week",
            "2026-02",
            "--to",
            dest.as_str(),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("checked against the record"), "{t}");
    assert_eq!(
        text_of(&dest.join("dir/file-1.txt")),
        "vm-100-pvc-a file 1\n"
    );
    assert!(!dest.join("f4").exists());
}

/// `drill --site` with the backup disk renamed away and a PVC the NAS copy lost: it comes back
/// from the encrypted tier (restic, checked against the record it was sent with), and the
/// rehearsal passes; without a tier the same PVC is named missing and it fails.
#[test]
fn drill_site_brings_back_from_the_tier_what_the_nas_lacks() {
    let (env, _repo, _pass) = env_with_tier();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // twice: the tier's records reach the NAS with the second step 1
    for _ in 0..2 {
        let out = env.run(OFFSITE, &["--now", "2026-01-05T06:00:00Z"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let week = env.root.join("nas/pve-backup/pvc-data/2026-02");
    std::fs::remove_dir_all(week.join("nextcloud")).unwrap();
    std::fs::remove_file(week.join(".complete/nextcloud/files")).unwrap();
    let backup = env.root.join("backup");
    let gone = env.root.join("backup-gone");
    let rehearse = || {
        std::fs::rename(&backup, &gone).unwrap();
        let out = env.run(
            crate::harness::CTL,
            &[
                "drill",
                "--site",
                "--no-tier",
                "--now",
                "2026-01-06T09:00:00Z",
            ],
        );
        std::fs::rename(&gone, &backup).unwrap();
        out
    };
    let out = rehearse();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1 PVC the offsite copy lacks, restored whole from tier")
            && text(&out).contains("(0 of them not checked"),
        "{}",
        text(&out)
    );
    // no tier: missing
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cut = cfg.find("[[offsite.repository]]").unwrap();
    std::fs::write(env.config(), &cfg[..cut]).unwrap();
    let out = rehearse();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("MISSING nextcloud/files: no complete version in the offsite copy"),
        "{}",
        text(&out)
    );
}

/// `offsite.bwlimit` holds the tier's uploads too (restic `--limit-upload`): 3 MiB of random
/// bytes at 128 KiB/s take at least 16 s (24 s at the limit; restic's limiter lets a first
/// burst through). The same run without the limit takes about 6 s here, so the bound tells the
/// two apart; it is a lower bound only: a slow machine makes it slower, never faster.
#[test]
fn the_bandwidth_limit_holds_the_tiers_upload_to_its_rate() {
    let (env, repo, pass) = env_with_tier();
    let config = std::fs::read_to_string(env.config()).unwrap();
    let config = config.replacen("[offsite]\n", "[offsite]\nbwlimit-kib = 128\n", 1);
    std::fs::write(env.config(), config).unwrap();
    let big = env.vol("vm-100-pvc-a").join("big.bin");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..3 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let started = std::time::Instant::now();
    let (code, report, out) = tier(&env, "2026-01-05T06:00:00Z", &[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert_eq!(pvcs(&report), 3, "{out}");
    assert!(
        took >= std::time::Duration::from_secs(16),
        "3 MiB at 128 KiB/s took {took:?}: the limit was not applied\n{out}"
    );
    let check = restic(&repo, &pass, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
}

/// A daily run that replaces a version while restic reads it: the tree restic reads is the
/// replaced copy, which the next run of the week rebuilds in place, so the snapshot may hold
/// parts of two versions. The tier says so, fails, forgets that snapshot, and the next run
/// sends the version again.
#[test]
fn a_version_replaced_while_restic_reads_it_is_not_kept_as_sent() {
    let (env, repo, pass) = env_with_tier();
    let mut config = std::fs::read_to_string(env.config()).unwrap();
    // 48 MiB at 4 MiB/s: about 12 s of upload, time for a daily run beside it
    config = config.replace("[offsite]\n", "[offsite]\nbwlimit = 4096\n");
    std::fs::write(env.config(), config).unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut bytes = vec![0u8; 48 << 20];
    for b in bytes.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        b.copy_from_slice(&seed.to_le_bytes()[..b.len()]);
    }
    std::fs::write(env.vol("vm-100-pvc-a").join("big.bin"), &bytes).unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let run = env
        .command(OFFSITE, &["--now", "2026-01-05T06:00:00Z", "--tier"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !repo.join("data").exists() || walk_files(&repo.join("data")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "restic wrote no pack");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // the same week, a day later: pvc-a changed, its version is swapped while it is read
    write(&env.vol("vm-100-pvc-a").join("changed.txt"), "tuesday");
    let daily = env.day("2026-01-06");
    assert_eq!(daily.status.code(), Some(0), "{}", text(&daily));
    let out = run.wait_with_output().unwrap();
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("replaced the version while it was sent") && said.contains("was forgotten"),
        "{said}"
    );
    // the PVC's snapshots, as stock restic lists them
    let snapshots = || {
        let listed = restic(
            &repo,
            &pass,
            &[
                "snapshots",
                "--json",
                "--tag",
                "namespace=vaultwarden,pvc=data",
            ],
        );
        String::from_utf8_lossy(&listed.stdout).trim().to_owned()
    };
    assert_eq!(snapshots(), "[]", "the mixed snapshot is forgotten");
    // the next run sends the new version, whole
    let (code, _, out) = tier(&env, "2026-01-06T06:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(snapshots(), "[]");
}
