//! A throwaway homelab: volumes as folders, a config on the `dir` backend, the binaries.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

pub const DAILY: &str = env!("CARGO_BIN_EXE_daily-backup");
pub const SNAPSHOT: &str = env!("CARGO_BIN_EXE_lvm-pvc-snapshot");
pub const CTL: &str = env!("CARGO_BIN_EXE_backupctl");

/// Every binary the package ships.
pub const BINS: [&str; 7] = [
    DAILY,
    SNAPSHOT,
    CTL,
    env!("CARGO_BIN_EXE_backup-dump"),
    env!("CARGO_BIN_EXE_sqlite-backup"),
    env!("CARGO_BIN_EXE_offsite-sync-backup"),
    env!("CARGO_BIN_EXE_nfs-change-tracker"),
];

/// (lv, namespace, pvc) of the test volumes: the last one has no mapping.
pub const VOLUMES: [(&str, &str, &str); 3] = [
    ("vm-100-pvc-a", "vaultwarden", "data"),
    ("vm-101-pvc-b", "nextcloud", "files"),
    ("vm-102-pvc-c", "_unresolved", "vm-102-pvc-c"),
];

pub struct Env {
    _dir: tempfile::TempDir,
    pub root: Utf8PathBuf,
    pub rsync: Option<Utf8PathBuf>,
}

pub fn require_rsync() {
    let ok = Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "rsync is not installed: run scripts/test, which installs it"
    );
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Env {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A homelab with three small volumes; `extra` is appended to the config.
    pub fn with_config(extra: &str) -> Self {
        require_rsync();
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        for sub in ["volumes", "snapshots", "backup", "mnt", "metrics"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for (lv, _, _) in VOLUMES {
            for i in 0..5 {
                write(
                    &root
                        .join("volumes")
                        .join(lv)
                        .join(format!("dir/file-{i}.txt")),
                    &format!("{lv} file {i}\n"),
                );
            }
        }
        let config = format!(
            r#"backup-root = "{root}/backup"
[snapshots]
backend = "dir"
volumes-dir = "{root}/volumes"
snapshots-dir = "{root}/snapshots"
lock-file = "{root}/lock/snapshots.lock"
keep-days = 7
[[kubernetes.volume]]
lv = "vm-100-pvc-a"
namespace = "vaultwarden"
pvc = "data"
[[kubernetes.volume]]
lv = "vm-101-pvc-b"
namespace = "nextcloud"
pvc = "files"
[pvc-backup]
weekly-versions = 4
mount-dir = "{root}/mnt"
[pve-config]
paths = ["{root}/volumes/vm-100-pvc-a/dir"]
[metrics]
textfile-dir = "{root}/metrics"
{extra}"#
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        Self {
            _dir: dir,
            root,
            rsync: None,
        }
    }

    pub fn config(&self) -> Utf8PathBuf {
        self.root.join("config.toml")
    }

    pub fn vol(&self, lv: &str) -> Utf8PathBuf {
        self.root.join("volumes").join(lv)
    }

    pub fn copy(&self, week: &str, ns: &str, pvc: &str) -> Utf8PathBuf {
        self.root
            .join("backup/pvc-data")
            .join(week)
            .join(ns)
            .join(pvc)
    }

    /// Where a run builds the update of a version before it swaps it in.
    pub fn staging(&self, week: &str, ns: &str, pvc: &str) -> Utf8PathBuf {
        self.root
            .join("backup/pvc-data")
            .join(week)
            .join(".staging/tree")
            .join(ns)
            .join(pvc)
    }

    pub fn marker(&self, week: &str, ns: &str, pvc: &str) -> Utf8PathBuf {
        self.root
            .join("backup/pvc-data")
            .join(week)
            .join(".complete")
            .join(ns)
            .join(pvc)
    }

    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.arg("--config").arg(self.config()).args(args);
        // the tier's restic keeps its cache here, not in the machine's /var/cache
        c.env("RESTIC_CACHE_DIR", self.root.join("restic-cache"));
        if let Some(r) = &self.rsync {
            c.env("HOMELAB_BACKUP_RSYNC", r);
        }
        c
    }

    pub fn run(&self, bin: &str, args: &[&str]) -> Output {
        self.command(bin, args).output().unwrap()
    }

    /// `backupctl restore pvc` of vaultwarden/data's newest complete version into `dest`.
    pub fn restore_vaultwarden(&self, dest: &Utf8Path) -> Output {
        self.run(
            CTL,
            &[
                "restore",
                "pvc",
                "--pvc",
                "vaultwarden/data",
                "--to",
                dest.as_str(),
            ],
        )
    }

    /// A snapshot at 03:00 and the daily backup at 05:00 of `day` (YYYY-MM-DD); returns the
    /// backup's output.
    pub fn day(&self, day: &str) -> Output {
        let snap = self.run(SNAPSHOT, &["--now", &format!("{day}T03:00:00Z"), "create"]);
        assert_eq!(
            snap.status.code(),
            Some(0),
            "snapshot on {day}: {}",
            text(&snap)
        );
        self.run(DAILY, &["--now", &format!("{day}T05:00:00Z")])
    }

    /// 40 files of 64 KiB in vm-100-pvc-a and an rsync limited to 256 KiB/s: about 10 s of copy,
    /// time enough to interrupt it.
    pub fn make_rsync_slow(&mut self) -> Utf8PathBuf {
        let big = self.vol("vm-100-pvc-a").join("big");
        for i in 0..40 {
            write(&big.join(format!("blob-{i:02}")), &"x".repeat(64 * 1024));
        }
        let wrapper = self.root.join("slow-rsync");
        std::fs::write(&wrapper, "#!/bin/sh\nexec rsync --bwlimit=256 \"$@\"\n").unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        self.rsync = Some(wrapper);
        big
    }

    /// Waits until `dir` holds at least `n` entries.
    pub fn wait_for_entries(dir: &Utf8Path, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{dir} never got {n} entries"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn weeks(&self) -> Vec<String> {
        let mut w: Vec<String> = std::fs::read_dir(self.root.join("backup/pvc-data"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        w.sort();
        w
    }

    /// Mounts under this test's folder that are still there.
    pub fn leftover_mounts(&self) -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(self.root.as_str()))
            .map(String::from)
            .collect()
    }
}

pub fn write(p: &Utf8Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ino(p: &Utf8Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

/// The value of the first sample of `name` in a textfile (any labels), if there is one.
pub fn gauge(prom: &str, name: &str) -> Option<f64> {
    prom.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        l.rsplit_once(' ')?.1.parse().ok()
    })
}

/// Pids of processes whose command line mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// Waits until each of `pids` has exited (gone, or a zombie): a dying process reads an empty
/// command line before it closes its files, so a lock it holds outlives the name.
pub fn wait_exited(pids: &[i32]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for pid in pids {
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) STATE …`: the state follows the last `)`
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            if matches!(state, None | Some('Z' | 'X')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} did not die"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Kills (SIGKILL) every process whose command line mentions `needle` and waits until none is
/// left: what a killed run orphaned (its rsync) holds the run lock until it is gone.
pub fn kill_all_mentioning(needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pids = pids_mentioning(needle);
        if pids.is_empty() {
            return;
        }
        let me = std::process::id() as i32;
        for &pid in &pids {
            if pid != me {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
            }
        }
        let others: Vec<i32> = pids.into_iter().filter(|p| *p != me).collect();
        wait_exited(&others);
        assert!(
            std::time::Instant::now() < deadline,
            "processes on {needle} did not die"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The regular files of version `ns/pvc` of `week` whose digest is not the one its record says
/// (the invariant after every successful run: none).
pub fn record_mismatches(env: &Env, ns: &str, pvc: &str, week: &str) -> Vec<String> {
    let record = std::fs::read(
        env.root
            .join(format!("backup/pvc-data/{week}/.records/{ns}/{pvc}")),
    )
    .unwrap();
    let copy = env.copy(week, ns, pvc);
    backup_core::decode_record(&record)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == backup_core::EntryKind::File)
        .filter(|e| {
            let p = copy
                .as_std_path()
                .join(std::ffi::OsStr::from_bytes(&e.path));
            e.digest_kind.of(&std::fs::read(p).unwrap()) != e.digest
        })
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect()
}

/// A tmpfs of `size` (`3m`) mounted on `dir` until the guard is dropped (then detached).
#[must_use]
pub fn mount_tmpfs(dir: &Utf8Path, size: &str) -> Unmount {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount tmpfs on {dir}: {}", text(&out));
    Unmount(dir.to_owned())
}

/// Detaches its mount when dropped.
pub struct Unmount(Utf8PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.0.as_str())
            .status();
    }
}

/// SIGTERM to `child` alone, as `systemctl stop` with `KillMode=mixed` sends it.
pub fn sigterm(child: &std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::Term,
    )
    .unwrap();
}
