//! `backupctl units`: the systemd units of the host side, hardened as far as each job allows.
//!
//! Every service runs with `ProtectSystem=strict` (the whole file system read-only but for its
//! `ReadWritePaths`), `PrivateTmp`, `NoNewPrivileges`, `UMask=0077`, `ProtectHome=read-only`
//! (a kubeconfig under /root stays readable), and a capability bounding set of what it needs:
//! mounting and LVM (`CAP_SYS_ADMIN`), reading every file (`CAP_DAC_READ_SEARCH`,
//! `CAP_DAC_OVERRIDE`), and rsync keeping owners, modes, devices and file capabilities
//! (`CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`, `CAP_MKNOD`, `CAP_SETFCAP`). `RestrictSUIDSGID` is
//! left off on purpose: a backup must copy set-uid files as they are.

use backup_core::{Config, DEFAULT_CONFIG_PATH, DEFAULT_PV_CACHE};
use serde::Serialize;

use backup_host::exit::Exit;
use backup_run::Outcome;

/// One unit file.
#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    /// File name (`daily-backup.service`).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// The units.
#[derive(Debug, Clone, Serialize)]
pub struct UnitsReport {
    /// Every unit, services before their timers.
    pub units: Vec<Unit>,
    /// Where `--write` put them.
    pub written: Option<String>,
}

const CAPS_COPY: &str = "CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER \
                         CAP_FSETID CAP_MKNOD CAP_SETFCAP";

/// Whether a unit runs LVM commands: they wait on udev cookie semaphores (System V IPC) that
/// udev completes from outside the unit, so the unit cannot have an IPC namespace of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ipc {
    /// `PrivateIPC=yes`.
    Private,
    /// The host's IPC namespace (LVM's udev synchronisation).
    Host,
}

fn hardening(rw: &[String], caps: &str, ipc: Ipc) -> String {
    let mut paths: Vec<&String> = rw.iter().collect();
    paths.sort();
    paths.dedup();
    let mut out = String::from(
        "ProtectSystem=strict\nPrivateTmp=yes\nNoNewPrivileges=yes\nUMask=0077\n\
         ProtectHome=read-only\nProtectKernelModules=yes\nProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\nProtectClock=yes\nProtectHostname=yes\nRestrictRealtime=yes\n\
         RestrictNamespaces=~user\nLockPersonality=yes\nMemoryDenyWriteExecute=yes\n\
         SystemCallArchitectures=native\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         ProtectProc=invisible\nRemoveIPC=yes\nKeyringMode=private\n",
    );
    if ipc == Ipc::Private {
        out.push_str("PrivateIPC=yes\n");
    }
    out.push_str(&format!("CapabilityBoundingSet={caps}\n"));
    for p in paths {
        out.push_str(&format!("ReadWritePaths=-{}\n", unit_word(p, false)));
    }
    out
}

/// A path as one word of a unit file line: `%` (a specifier) doubled, and quoted with `\"` and
/// `\\` escaped when it holds white space, a quote or a backslash; on an `Exec` line `$` (a
/// variable) is doubled too. The config refuses control characters in paths, so a value cannot
/// end the line and add a directive of its own.
fn unit_word(p: &str, exec: bool) -> String {
    let mut w = p.replace('%', "%%");
    if exec {
        w = w.replace('$', "$$");
    }
    if w.chars().any(|c| c.is_whitespace() || "\"'\\".contains(c)) {
        w = format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
    }
    w
}

/// The folders the package declares: tmpfiles.d makes the two under /run at boot and install,
/// `CacheDirectory=` the cache.
const DECLARED: [&str; 3] = [
    "/run/homelab-backup",
    "/run/lock/homelab-backup",
    "/var/cache/homelab-backup",
];

/// Folders a unit's job creates itself (the mount folder, the lock folder, the PV cache's): the
/// defaults are declared (tmpfiles.d, `CacheDirectory=`); one the config moves elsewhere is made
/// before the job starts, outside the sandbox (`+`), since `ProtectSystem=strict` leaves only
/// existing `ReadWritePaths` writable.
fn mkdirs(dirs: &[String]) -> String {
    dirs.iter()
        .map(|d| {
            format!(
                "ExecStartPre=+/bin/mkdir -p -m 0700 -- {}\n",
                unit_word(d, true)
            )
        })
        .collect()
}

/// For jobs that mount nothing and touch no device: no devices, no kernel tunables, and only
/// the system calls of an ordinary service.
const NO_MOUNTS: &str =
    "PrivateDevices=yes\nProtectKernelTunables=yes\nSystemCallFilter=@system-service\n\
                         SystemCallErrorNumber=EPERM\n";

#[allow(clippy::too_many_arguments)]
fn service(
    name: &str,
    description: &str,
    exec: &str,
    after: &[&str],
    rw: &[String],
    caps: &str,
    extra: &str,
    ipc: Ipc,
) -> Unit {
    // the manual page of what it runs (`backupctl verify`: backupctl-verify(1)), then README
    let mut words = exec.split_whitespace();
    let bin = words
        .next()
        .map_or(name, |b| b.rsplit('/').next().unwrap_or(b));
    let page = match words
        .next()
        .filter(|w| bin == "backupctl" && !w.starts_with('-'))
    {
        Some(sub) => format!("{bin}-{sub}"),
        None => bin.to_owned(),
    };
    let mut text = format!(
        "# Generated by `backupctl units`.\n[Unit]\nDescription={description}\n\
         Documentation=man:{page}(1) file:///usr/share/doc/homelab-backup/README.md.gz\n"
    );
    let mut after_all = vec!["local-fs.target", "network-online.target"];
    after_all.extend_from_slice(after);
    text.push_str(&format!(
        "Wants=network-online.target\nAfter={}\n",
        after_all.join(" ")
    ));
    text.push_str(&format!(
        "\n[Service]\n{extra}ExecStart={exec}\nNice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
    ));
    text.push_str(&hardening(rw, caps, ipc));
    Unit {
        name: format!("{name}.service"),
        text,
    }
}

fn timer(name: &str, description: &str, calendar: &str) -> Unit {
    Unit {
        name: format!("{name}.timer"),
        text: format!(
            "# Generated by `backupctl units`.\n[Unit]\nDescription={description}\n\n\
             [Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=0\n\n\
             [Install]\nWantedBy=timers.target\n"
        ),
    }
}

/// What the units of a config write and make, and how they name the config.
struct Paths {
    /// ` --config PATH` when the config is not the default one.
    config_flag: String,
    /// What every service may write.
    rw: Vec<String>,
    /// ... and the LVM jobs.
    lvm: Vec<String>,
    /// ... and offsite and the tracker.
    offsite_rw: Vec<String>,
    /// Folders a unit makes before its job (moved off the declared ones).
    made: Vec<String>,
    /// ... and offsite's: the tier's mount folder and local repositories.
    offsite_made: Vec<String>,
    /// The lines of the jobs that resolve PVCs (the cache, and `made`).
    resolves: String,
}

/// What offsite-sync-backup may write beyond every unit's folders, and what it makes first: the
/// destination (local), the change log's folder, the tier's mount folder and local repositories
/// (a missing `ReadWritePaths` entry is ignored, so those not declared are made before the job).
fn offsite_paths(
    o: &backup_core::OffsiteConfig,
    rw: &[String],
    made: &[String],
    declared: &dyn Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let (mut writes, mut makes) = (rw.to_vec(), made.to_vec());
    if !o.is_remote() {
        writes.push(o.destination.clone());
    }
    if let Some(p) = o.change_log.parent() {
        writes.push(p.to_string());
    }
    if !o.repositories.is_empty() {
        writes.push(o.tier_mount_dir.to_string());
        if !declared(o.tier_mount_dir.as_str()) {
            makes.push(o.tier_mount_dir.to_string());
        }
    }
    for r in o
        .repositories
        .iter()
        .filter(|r| r.repository.starts_with('/'))
    {
        writes.push(r.repository.clone());
        makes.push(r.repository.clone());
    }
    (writes, makes)
}

impl Paths {
    fn of(cfg: Option<&Config>) -> Self {
        let config_path = cfg.map_or(DEFAULT_CONFIG_PATH.to_owned(), |c| c.file.to_string());
        let config_flag = if config_path == DEFAULT_CONFIG_PATH {
            String::new()
        } else {
            format!(" --config {}", unit_word(&config_path, true))
        };
        let backup_root = cfg.map_or("/mnt/backup".to_owned(), |c| c.backup_root.to_string());
        let mount_dir = cfg.map_or("/run/homelab-backup".to_owned(), |c| {
            c.pvc_backup.mount_dir.to_string()
        });
        let lock_dir = cfg.map_or("/run/lock/homelab-backup".to_owned(), |c| {
            c.snapshots
                .lock_file
                .parent()
                .map_or("/run/lock/homelab-backup".to_owned(), ToString::to_string)
        });
        let mut rw = vec![backup_root.clone(), mount_dir.clone(), lock_dir.clone()];
        // the jobs that resolve PVCs write the kubectl PV cache: `CacheDirectory=` for the default
        let cache_dir = cfg
            .and_then(|c| c.kubernetes.cache_file.parent())
            .map_or("/var/cache/homelab-backup".to_owned(), ToString::to_string);
        // inside a declared folder a job makes its own; elsewhere the unit makes it first
        let declared = |d: &str| {
            DECLARED
                .iter()
                .any(|r| camino::Utf8Path::new(d).starts_with(r))
        };
        let made: Vec<String> = [&mount_dir, &lock_dir]
            .into_iter()
            .chain(
                cfg.filter(|c| c.kubernetes.cache_file != DEFAULT_PV_CACHE)
                    .map(|_| &cache_dir),
            )
            .filter(|d| !declared(d))
            .cloned()
            .collect();
        let mut resolves = String::from("CacheDirectory=homelab-backup\nCacheDirectoryMode=0700\n");
        if cfg.is_some_and(|c| c.kubernetes.cache_file != DEFAULT_PV_CACHE) {
            rw.push(cache_dir.clone());
        }
        resolves.push_str(&mkdirs(&made));
        if let Some(t) = cfg.and_then(|c| c.metrics.textfile_dir.as_ref()) {
            rw.push(t.to_string());
        } else if cfg.is_none() {
            rw.push("/var/lib/prometheus/node-exporter".to_owned());
        }
        // LVM writes its metadata archive and locks; the dir backend its snapshot folder
        let mut lvm = rw.clone();
        lvm.extend([
            "/etc/lvm".to_owned(),
            "/run/lvm".to_owned(),
            "/run/lock/lvm".to_owned(),
        ]);
        if let Some(backup_core::Backend::Dir { snapshots_dir, .. }) =
            cfg.map(|c| &c.snapshots.backend)
        {
            lvm.push(snapshots_dir.to_string());
        }
        let (offsite_rw, offsite_made) = match cfg.and_then(|c| c.offsite.as_ref()) {
            Some(o) => offsite_paths(o, &rw, &made, &declared),
            None => (rw.clone(), made.clone()),
        };
        Self {
            config_flag,
            rw,
            lvm,
            offsite_rw,
            made,
            offsite_made,
            resolves,
        }
    }
}

/// restic's cache (`RESTIC_CACHE_DIR`, default `/var/cache/homelab-backup/restic`), for the
/// units that run restic: the tier, verify and the drill.
const RESTIC_CACHE: &str = "CacheDirectory=homelab-backup\nCacheDirectoryMode=0700\n";

/// The timers: (service, description, calendar).
const TIMERS: [(&str, &str, &str); 6] = [
    (
        "lvm-pvc-snapshot",
        "homelab-backup: snapshots at 03:00",
        "*-*-* 03:00:00",
    ),
    (
        "daily-backup",
        "homelab-backup: the daily copy at 05:00",
        "*-*-* 05:00:00",
    ),
    (
        "offsite-sync-backup",
        "homelab-backup: offsite at 06:00",
        "*-*-* 06:00:00",
    ),
    (
        "backupctl-verify",
        "homelab-backup: weekly verify, Saturday 08:00",
        "Sat *-*-* 08:00:00",
    ),
    (
        "backupctl-drill",
        "homelab-backup: weekly drill, Sunday 08:00",
        "Sun *-*-* 08:00:00",
    ),
    (
        "backupctl-verify-offsite",
        "homelab-backup: the offsite copy read back, monthly on the 1st at 09:00",
        "*-*-01 09:00:00",
    ),
];

/// The units for `cfg` (default paths without one), running binaries from `bindir`.
pub fn units(cfg: Option<&Config>, bindir: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    for service in services(cfg, bindir) {
        let name = service.name.trim_end_matches(".service").to_owned();
        out.push(service);
        if let Some((n, description, calendar)) = TIMERS.iter().find(|(n, _, _)| *n == name) {
            out.push(timer(n, description, calendar));
        }
    }
    out
}

/// backupctl's timed services: verify, verify --offsite, drill (`exec`: the binary and its
/// `--config`). They mount nothing and write only the backup root's damage lists and metrics.
fn backupctl_services(exec: &str, rw: &[String], resolves: &str) -> [Unit; 3] {
    let oneshot = |timeout: &str| format!("Type=oneshot\nTimeoutStartSec={timeout}\n");
    [
        service(
            "backupctl-verify",
            "homelab-backup: verify every backup against its record",
            &format!("{exec} verify"),
            &["daily-backup.service"],
            rw,
            "CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE",
            // the cache: restic's, for `verify --tier` and the drill's tier restores
            &format!("{}{resolves}{NO_MOUNTS}{RESTIC_CACHE}", oneshot("12h")),
            Ipc::Private,
        ),
        service(
            "backupctl-verify-offsite",
            "homelab-backup: read the offsite copy back against its records",
            &format!("{exec} verify --offsite"),
            &["offsite-sync-backup.service"],
            rw,
            "CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE",
            &format!("{}{resolves}{NO_MOUNTS}", oneshot("24h")),
            Ipc::Private,
        ),
        service(
            "backupctl-drill",
            "homelab-backup: weekly restore drill",
            &format!("{exec} drill"),
            &["daily-backup.service"],
            rw,
            // CAP_SETUID, CAP_SETGID: the dump drill's throwaway servers run as nobody
            "CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER CAP_FSETID CAP_SETFCAP \
             CAP_SETUID CAP_SETGID",
            &format!("{}{resolves}{NO_MOUNTS}{RESTIC_CACHE}", oneshot("6h")),
            Ipc::Private,
        ),
    ]
}

/// Every service, hardened for what its job does.
fn services(cfg: Option<&Config>, bindir: &str) -> Vec<Unit> {
    let Paths {
        config_flag,
        rw,
        lvm,
        offsite_rw,
        made,
        offsite_made,
        resolves,
    } = Paths::of(cfg);
    // the binary's path as one word of an Exec line (a space, `%` or `$` in --bindir)
    let bin = |name: &str| unit_word(&format!("{bindir}/{name}"), true);
    // a oneshot that hangs must end: systemd's SIGTERM after the timeout, then the run's own
    // watchdog publishes the failure and exits within seconds
    let oneshot = |timeout: &str| format!("Type=oneshot\nTimeoutStartSec={timeout}\n");
    // thin snapshots need dm_snapshot, which ProtectKernelModules keeps the unit from loading:
    // the package's modules-load.d file loads it at boot, and this (outside the sandbox, `+`;
    // `-`: a host on the dir backend has no need of it) before each run
    let modprobe = "ExecStartPre=-+/sbin/modprobe -a dm_snapshot dm_thin_pool\n";
    let [verify, verify_offsite, drill] = backupctl_services(
        &format!("{}{config_flag}", bin("backupctl")),
        &rw,
        &resolves,
    );
    vec![
        service(
            "lvm-pvc-snapshot",
            "homelab-backup: LVM thin snapshots of every PVC volume",
            &format!("{}{config_flag} create", bin("lvm-pvc-snapshot")),
            &[],
            &lvm,
            CAPS_COPY,
            &format!("{}{modprobe}{resolves}", oneshot("30min")),
            Ipc::Host,
        ),
        service(
            "daily-backup",
            "homelab-backup: the daily file-level copy of every PVC snapshot",
            &format!("{}{config_flag} --wait 3600", bin("daily-backup")),
            &["lvm-pvc-snapshot.service"],
            &lvm,
            CAPS_COPY,
            &format!("{}{modprobe}{resolves}", oneshot("20h")),
            Ipc::Host,
        ),
        service(
            "offsite-sync-backup",
            "homelab-backup: the backup disk and the NFS trees offsite",
            &format!("{}{config_flag}", bin("offsite-sync-backup")),
            &["daily-backup.service"],
            &offsite_rw,
            // CAP_SYS_ADMIN: the encrypted tier's read-only bind mounts; the cache: restic's
            CAPS_COPY,
            &format!("{}{RESTIC_CACHE}{}", oneshot("20h"), mkdirs(&offsite_made)),
            Ipc::Private,
        ),
        verify,
        verify_offsite,
        drill,
        {
            let mut u = service(
                "nfs-change-tracker",
                "homelab-backup: inotify change log of the NFS trees",
                &format!("{}{config_flag}", bin("nfs-change-tracker")),
                &[],
                &offsite_rw,
                "CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE",
                &format!(
                    "Type=simple\nRestart=on-failure\nRestartSec=10\n{}{NO_MOUNTS}",
                    mkdirs(&made)
                ),
                Ipc::Private,
            );
            u.text.push_str("\n[Install]\nWantedBy=multi-user.target\n");
            u
        },
    ]
}

/// `backupctl units`: prints them, or writes each into `dir`.
///
/// # Errors
/// When a unit cannot be written.
pub fn write_units(
    cfg: Option<&backup_core::Config>,
    bindir: &str,
    dir: Option<&camino::Utf8Path>,
    dry_run: bool,
) -> backup_host::error::Result<UnitsReport> {
    let all = units(cfg, bindir);
    if let (Some(dir), false) = (dir, dry_run) {
        std::fs::create_dir_all(dir)
            .map_err(|e| backup_host::error::Error::io("create folder", dir, e))?;
        for u in &all {
            backup_host::fsutil::write_atomic(&dir.join(&u.name), u.text.as_bytes())?;
            let p = dir.join(&u.name);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| backup_host::error::Error::io("chmod", p, e))?;
        }
    }
    Ok(UnitsReport {
        units: all,
        written: dir.filter(|_| !dry_run).map(ToString::to_string),
    })
}

/// `backupctl units --dropins DIR`: for every service, `DIR/<service>.d/50-homelab-backup-paths.conf`
/// with the `ReadWritePaths` of the units for `cfg`, and the `mkdir` of a mount, lock or cache
/// folder the config moves away from its declared default. The packaged units carry the defaults'; a
/// config whose backup root, offsite destination, change log, mount or textfile folder lie
/// elsewhere needs these (`ProtectSystem=strict` makes everything else read-only).
///
/// # Errors
/// When a drop-in cannot be written.
pub fn write_dropins(
    cfg: Option<&backup_core::Config>,
    dir: &camino::Utf8Path,
    dry_run: bool,
) -> backup_host::error::Result<UnitsReport> {
    let dropins: Vec<Unit> = units(cfg, "/usr/bin")
        .into_iter()
        .filter(|u| u.name.ends_with(".service"))
        .map(|u| Unit {
            name: format!("{}.d/50-homelab-backup-paths.conf", u.name),
            text: format!(
                "# Generated by `backupctl units --dropins` from {}.\n[Service]\n{}",
                cfg.map_or(DEFAULT_CONFIG_PATH.to_owned(), |c| c.file.to_string()),
                u.text
                    .lines()
                    .filter(|l| {
                        l.starts_with("ReadWritePaths=")
                            || l.starts_with("ExecStartPre=+/bin/mkdir ")
                    })
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            ),
        })
        .collect();
    if !dry_run {
        for u in &dropins {
            let p = dir.join(&u.name);
            backup_host::fsutil::write_atomic(&p, u.text.as_bytes())?;
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| backup_host::error::Error::io("chmod", p, e))?;
        }
    }
    Ok(UnitsReport {
        units: dropins,
        written: (!dry_run).then(|| dir.to_string()),
    })
}

impl Outcome for UnitsReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        if let Some(dir) = self
            .written
            .as_ref()
            .filter(|_| self.units.iter().all(|u| u.name.ends_with(".conf")))
        {
            return format!(
                "wrote {} drop-ins with the config's ReadWritePaths into {dir}",
                self.units.len()
            );
        }
        if let Some(dir) = &self.written {
            return format!(
                "wrote {} units into {dir}: systemctl daemon-reload, then systemctl enable --now \
                 lvm-pvc-snapshot.timer daily-backup.timer offsite-sync-backup.timer \
                 backupctl-verify.timer backupctl-drill.timer backupctl-verify-offsite.timer \
                 nfs-change-tracker.service",
                self.units.len()
            );
        }
        self.units
            .iter()
            .map(|u| format!("### {}\n{}", u.name, u.text))
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_owned()
    }
}
