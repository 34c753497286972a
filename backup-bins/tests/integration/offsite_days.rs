//! Forty simulated days on two volumes, the way a homelab lives them: random work every day
//! (new, grown, renamed and deleted files, rewrites that keep size and mtime, modes, xattrs,
//! ACLs, hardlinks, folders renamed), a daily run SIGKILLed at a random moment on some days and
//! run again, the monthly full pass, offsite every third day. The invariant, after every
//! offsite run and at the end: each complete version offsite equals the record sent with it
//! (`backupctl verify` of the NAS copy is clean), and the backup disk verifies clean too.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::*;

const OFFSITE: &str = env!("CARGO_BIN_EXE_offsite-sync-backup");

/// xorshift64*: the same days for the same seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }
}

/// The regular files under `dir` (not the first file of `dir/`, which keeps the volume from
/// ever being empty), sorted.
fn files(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && !p.ends_with("dir/file-0.txt") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn run_ok(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is not installed ({e}): run scripts/test, which installs it")
    });
    assert!(out.status.success(), "{cmd} {args:?}: {}", text(&out));
}

/// One random change to the volume at `vol`.
fn work(rng: &mut Rng, vol: &Utf8Path, tag: &str) {
    let all = files(vol);
    let pick = |rng: &mut Rng| all.get(rng.below(all.len() as u64) as usize).cloned();
    match rng.below(10) {
        0 | 1 => {
            let sub = vol.join(format!("d{}", rng.below(3)));
            let n = rng.below(2000) as usize + 1;
            write(&sub.join(format!("n{tag}.txt")), &rng.word(n));
        }
        2 => {
            if let Some(f) = pick(rng) {
                let mut t = std::fs::read_to_string(&f).unwrap_or_default();
                t.push_str(&rng.word(10));
                std::fs::write(&f, t).unwrap();
            }
        }
        3 => {
            // a rewrite that keeps size and mtime: what rsync's quick check cannot see
            if let Some(f) = pick(rng) {
                let m = std::fs::metadata(&f).unwrap();
                let word = rng.word(m.len() as usize);
                std::fs::write(&f, word).unwrap();
                std::fs::File::options()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_times(std::fs::FileTimes::new().set_modified(m.modified().unwrap()))
                    .unwrap();
            }
        }
        4 => {
            if let Some(f) = pick(rng) {
                let mode = [0o600, 0o640, 0o644, 0o664][rng.below(4) as usize];
                std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap();
            }
        }
        5 => {
            if let Some(f) = pick(rng) {
                if rng.below(2) == 0 {
                    run_ok(
                        "setfattr",
                        &["-n", "user.k", "-v", &rng.word(6), f.as_str()],
                    );
                } else {
                    let acl = format!("u:{}:r", 1000 + rng.below(5));
                    run_ok("setfacl", &["-m", &acl, f.as_str()]);
                }
            }
        }
        6 => {
            if let Some(f) = pick(rng) {
                let to = f.with_file_name(format!("h{tag}"));
                if !to.exists() && std::fs::metadata(&f).unwrap().nlink() < 3 {
                    std::fs::hard_link(&f, to).unwrap();
                }
            }
        }
        7 => {
            if let Some(f) = pick(rng) {
                std::fs::rename(&f, f.with_file_name(format!("r{tag}.txt"))).unwrap();
            }
        }
        8 => {
            if let Some(f) = pick(rng) {
                std::fs::remove_file(f).unwrap();
            }
        }
        _ => {
            // a folder renamed, with what it holds
            let from = vol.join(format!("d{}", rng.below(3)));
            if from.is_dir() {
                std::fs::rename(&from, vol.join(format!("moved{tag}"))).unwrap();
            }
        }
    }
}

fn offsite_view(env: &Env) -> Utf8PathBuf {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cfg = cfg[..cfg.find("\n[offsite]").unwrap()].replacen(
        &format!("backup-root = \"{}/backup\"", env.root),
        &format!("backup-root = \"{}/nas/pve-backup\"", env.root),
        1,
    );
    let path = env.root.join("offsite-view.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn ctl_with(config: &Utf8Path, args: &[&str]) -> Output {
    Command::new(CTL)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn forty_days_of_work_kills_and_offsite_runs_leave_the_offsite_copy_equal_to_its_records() {
    assert!(
        is_root(),
        "setfacl with other users' ids: run scripts/test as root"
    );
    let env = Env::new();
    std::fs::create_dir(env.root.join("nas")).unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!(
            "{cfg}\n[offsite]\ndestination = \"{}/nas\"\ndaily-wait-seconds = 5\n",
            env.root
        ),
    )
    .unwrap();
    let view = offsite_view(&env);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let vols = [env.vol("vm-100-pvc-a"), env.vol("vm-101-pvc-b")];
    for d in 0..40u64 {
        let day = (start + chrono::Days::new(d))
            .format("%Y-%m-%d")
            .to_string();
        for (i, vol) in vols.iter().enumerate() {
            for k in 0..1 + rng.below(4) {
                work(&mut rng, vol, &format!("{d}-{i}-{k}"));
            }
        }
        let snap = env.run(SNAPSHOT, &["--now", &format!("{day}T03:00:00Z"), "create"]);
        assert_eq!(snap.status.code(), Some(0), "{day}: {}", text(&snap));
        let at = format!("{day}T05:00:00Z");
        if d % 6 == 4 {
            // killed at a random moment with what it started (as systemd kills a unit's
            // cgroup), then run again
            let mut c = env
                .command(DAILY, &["--now", &at])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(250)));
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
        let out = env.run(DAILY, &["--now", &format!("{day}T05:30:00Z")]);
        assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
        if d % 3 == 2 {
            let out = env.run(OFFSITE, &["--now", &format!("{day}T06:00:00Z")]);
            assert_eq!(out.status.code(), Some(0), "{day}: {}", text(&out));
            let out = ctl_with(&view, &["verify"]);
            assert_eq!(out.status.code(), Some(0), "{day}, offsite: {}", text(&out));
        }
    }
    let out = env.run(OFFSITE, &["--now", "2026-02-13T23:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl_with(&view, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "offsite: {}", text(&out));
    let out = env.run(CTL, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "the disk: {}", text(&out));
    assert!(
        env.leftover_mounts().is_empty(),
        "{:?}",
        env.leftover_mounts()
    );
}
