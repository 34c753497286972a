//! Configuration: the full example parses, and every error names the file, the key and what was
//! expected. The messages are pinned.

use backup_core::{Backend, Config, Resolver, VersionPolicy};
use camino::Utf8Path;

const FULL: &str = r#"
backup-root = "/mnt/backup"

[snapshots]
backend = "lvm"
volume-group = "pve"
thin-pool = "data"
lv-pattern = "vm-*-pvc-*"
exclude-namespaces = ["dbaas", "monitoring"]
keep-days = 7
min-pool-free-percent = 15

[kubernetes]
resolver = "kubectl"
[[kubernetes.volume]]
lv = "vm-100-pvc-0a1b"
namespace = "vaultwarden"
pvc = "vaultwarden-data"

[pvc-backup]
weekly-versions = 4
mount-dir = "/run/homelab-backup/mnt"

[offsite]
destination = "backup@nas:/volume1/Backup/Viki"
change-log = "/mnt/backup/.nfs-changes.log"
[[offsite.tree]]
source = "/srv/nfs"
name = "nfs"
[[offsite.tree]]
source = "/srv/nfs-ssd"
name = "nfs-ssd"

[metrics]
pushgateway = "http://127.0.0.1:9091"
textfile-dir = "/var/lib/prometheus/node-exporter"
"#;

fn parse(text: &str) -> Result<Config, String> {
    Config::from_toml(Utf8Path::new("/etc/homelab-backup/config.toml"), text)
        .map_err(|e| e.to_string())
}

#[test]
fn the_design_example_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.backup_root, "/mnt/backup");
    assert_eq!(
        c.snapshots.backend,
        Backend::Lvm {
            volume_group: "pve".into(),
            thin_pool: "data".into()
        }
    );
    assert_eq!(c.kubernetes.resolver, Resolver::Kubectl);
    assert_eq!(c.pvc_backup.policy, VersionPolicy::Newest(4));
    assert_eq!(c.offsite.as_ref().unwrap().trees.len(), 2);
    assert_eq!(c.pvc_backup.max_snapshot_age_hours, 26);
    assert_eq!(c.pve_config.paths.len(), 3);
    assert!(c.pfsense.is_none());
}

#[test]
fn only_backup_root_is_required() {
    let c = parse("backup-root = \"/b\"").unwrap();
    assert_eq!(c.snapshots.retention.keep_days, 7);
    assert_eq!(c.kubernetes.cache_file, backup_core::DEFAULT_PV_CACHE);
    assert_eq!(
        c.kubernetes.cache_file,
        "/var/cache/homelab-backup/pv-cache.json"
    );
}

#[test]
fn gfs_retention_replaces_weekly_versions() {
    let c =
        parse("backup-root = \"/b\"\n[pvc-backup.retention]\nweekly = 8\nmonthly = 6\n").unwrap();
    assert!(
        matches!(c.pvc_backup.policy, VersionPolicy::Gfs(ref g) if g.weekly == 8 && g.monthly == 6)
    );
}

#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        ("missing-backup-root", "[snapshots]\nkeep-days = 7\n"),
        ("relative-backup-root", "backup-root = \"mnt/backup\"\n"),
        ("unknown-top-level-key", "backup-root = \"/b\"\nbackup_root = \"/c\"\n"),
        ("unknown-nested-key", "backup-root = \"/b\"\n[snapshots]\nkeep-dayz = 7\n"),
        ("wrong-type", "backup-root = \"/b\"\n[snapshots]\nkeep-days = \"seven\"\n"),
        ("negative-days", "backup-root = \"/b\"\n[snapshots]\nkeep-days = -1\n"),
        ("zero-keep-days", "backup-root = \"/b\"\n[snapshots]\nkeep-days = 0\n"),
        ("percent-out-of-range", "backup-root = \"/b\"\n[snapshots]\nmin-pool-free-percent = 150\n"),
        ("bad-backend", "backup-root = \"/b\"\n[snapshots]\nbackend = \"zfs\"\n"),
        ("dir-without-volumes-dir", "backup-root = \"/b\"\n[snapshots]\nbackend = \"dir\"\nsnapshots-dir = \"/s\"\n"),
        ("bad-lv-pattern", "backup-root = \"/b\"\n[snapshots]\nlv-pattern = \"pve/vm-[0-9]*\"\n"),
        ("zero-weekly-versions", "backup-root = \"/b\"\n[pvc-backup]\nweekly-versions = 0\n"),
        ("empty-gfs", "backup-root = \"/b\"\n[pvc-backup.retention]\nweekly = 0\n"),
        ("unknown-gfs-rule", "backup-root = \"/b\"\n[pvc-backup.retention]\nfortnightly = 2\n"),
        ("parallel-too-many", "backup-root = \"/b\"\n[pvc-backup]\nparallel = 65\n"),
        ("newline-in-backup-root", "backup-root = \"/mnt/b\\nExecStartPre=/bin/sh\"\n"),
        ("tab-in-cache-file", "backup-root = \"/b\"\n[kubernetes]\ncache-file = \"/var/cache/\\tx\"\n"),
        ("relative-mount-dir", "backup-root = \"/b\"\n[pvc-backup]\nmount-dir = \"run/mnt\"\n"),
        ("mount-dir-inside-backup-root", "backup-root = \"/b\"\n[pvc-backup]\nmount-dir = \"/b//./mnt\"\n"),
        ("backup-root-inside-mount-dir", "backup-root = \"/run/mnt/b\"\n[pvc-backup]\nmount-dir = \"/run/mnt\"\n"),
        ("mount-dir-is-volumes-dir", "backup-root = \"/b\"\n[snapshots]\nbackend = \"dir\"\nvolumes-dir = \"/v\"\nsnapshots-dir = \"/s\"\n[pvc-backup]\nmount-dir = \"/v/\"\n"),
        ("mount-dir-in-snapshots-dir", "backup-root = \"/b\"\n[snapshots]\nbackend = \"dir\"\nvolumes-dir = \"/v\"\nsnapshots-dir = \"/s\"\n[pvc-backup]\nmount-dir = \"/s/m\"\n"),
        ("mount-dir-with-dotdot", "backup-root = \"/b\"\n[pvc-backup]\nmount-dir = \"/run/../b\"\n"),
        ("pve-config-path-with-dotdot", "backup-root = \"/b\"\n[pve-config]\npaths = [\"/etc/pve\", \"/etc/../root\"]\n"),
        (
            "duplicate-tree-names",
            "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.tree]]\nsource = \"/a\"\nname = \"nfs\"\n[[offsite.tree]]\nsource = \"/b\"\nname = \"nfs\"\n",
        ),
        ("relative-tree-source", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.tree]]\nsource = \"srv\"\nname = \"nfs\"\n"),
        ("tree-name-with-slash", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.tree]]\nsource = \"/srv\"\nname = \"a/b\"\n"),
        ("bad-pushgateway", "backup-root = \"/b\"\n[metrics]\npushgateway = \"127.0.0.1:9091\"\n"),
        ("number-too-large", "backup-root = \"/b\"\n[pvc-backup]\nmax-snapshot-age-hours = 18446744073709551615\n"),
        ("offsite-destination-inside-backup-root", "backup-root = \"/b\"\n[offsite]\ndestination = \"/b/offsite\"\n"),
        ("offsite-destination-around-backup-root", "backup-root = \"/mnt/b\"\n[offsite]\ndestination = \"/mnt\"\n"),
        ("offsite-destination-is-a-tree", "backup-root = \"/b\"\n[offsite]\ndestination = \"/srv/nfs/\"\n[[offsite.tree]]\nsource = \"/srv/nfs\"\nname = \"nfs\"\n"),
        ("offsite-destination-holds-the-change-log", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nchange-log = \"/nas/log/changes\"\n"),
        ("offsite-tree-inside-backup-root", "backup-root = \"/b\"\n[offsite]\ndestination = \"nas:/vol\"\n[[offsite.tree]]\nsource = \"/b/pvc-data\"\nname = \"x\"\n"),
        ("dump-folder-with-dotdot", "backup-root = \"/b\"\n[dumps]\nfolders = [\"/srv/../../etc\"]\n"),
        ("dump-folders-nested", "backup-root = \"/b\"\n[dumps]\nfolders = [\"/srv/dumps\", \"/srv/dumps/pg\"]\n"),
        ("tier-unknown-send", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.repository]]\nrepository = \"/r\"\npassword-file = \"/p\"\nsend = [\"pvc\", \"etc\"]\n"),
        ("tier-empty-send", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.repository]]\nrepository = \"/r\"\npassword-file = \"/p\"\nsend = []\n"),
        ("notify-relative-file", "backup-root = \"/b\"\n[notify]\nntfy-url-file = \"ntfy.url\"\n"),
        ("notify-timeout-zero", "backup-root = \"/b\"\n[notify]\ntimeout-seconds = 0\n"),
        ("notify-unknown-kind", "backup-root = \"/b\"\n[notify]\nslack-url-file = \"/s\"\n"),
        ("notify-job-name", "backup-root = \"/b\"\n[notify.job.\"-x\"]\nntfy-url-file = \"/n\"\n"),
        ("hook-when", "backup-root = \"/b\"\n[[hooks]]\njob = \"daily-backup\"\nwhen = \"during\"\ncommand = [\"/bin/true\"]\n"),
        ("hook-relative-program", "backup-root = \"/b\"\n[[hooks]]\njob = \"daily-backup\"\nwhen = \"before\"\ncommand = [\"flush.sh\", \"--all\"]\n"),
        ("hook-empty-command", "backup-root = \"/b\"\n[[hooks]]\njob = \"daily-backup\"\nwhen = \"after\"\ncommand = []\n"),
        ("hook-shell-string", "backup-root = \"/b\"\n[[hooks]]\njob = \"daily-backup\"\nwhen = \"after\"\ncommand = \"/bin/sh -c 'x'\"\n"),
        ("bwlimit-zero", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = 0\n"),
        ("bwlimit-negative", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = \"-5M\"\n"),
        ("bwlimit-unit", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = \"10 MB/s\"\n"),
        ("bwlimit-twice", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = 5\nbwlimit-kib = 5\n"),
        ("stop-at-not-a-time", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nstop-at = \"6:30\"\n"),
        ("stop-at-25h", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nstop-at = \"25:00\"\n"),
        ("bwlimit-newline", "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\nbwlimit = \"1\\n0\"\n"),
        ("bad-resolver", "backup-root = \"/b\"\n[kubernetes]\nresolver = \"api\"\n"),
        (
            "duplicate-static-lv",
            "backup-root = \"/b\"\n[[kubernetes.volume]]\nlv = \"a\"\nnamespace = \"n\"\npvc = \"p\"\n[[kubernetes.volume]]\nlv = \"a\"\nnamespace = \"n\"\npvc = \"q\"\n",
        ),
        ("syntax-error", "backup-root = \"/b\"\n[snapshots\n"),
        ("pfsense-missing-key-file", "backup-root = \"/b\"\n[pfsense]\napi-url = \"https://pf\"\nssh-host = \"pf\"\nssh-key-file = \"/k\"\n"),
    ];
    let text: Vec<String> = cases
        .iter()
        .map(|(name, toml)| format!("{name}:\n  {}", parse(toml).expect_err(name)))
        .collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn the_install_example_parses() {
    // README's install section copies this file; it must load as it is
    let path =
        camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = backup_core::Config::from_toml(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.backup_root, "/mnt/backup");
    assert_eq!(c.pvc_backup.mount_dir, "/run/homelab-backup/mnt");
}

#[test]
fn remote_destinations_are_told_from_local_paths() {
    let remote = |d: &str| {
        parse(&format!(
            "backup-root = \"/b\"\n[offsite]\ndestination = \"{d}\"\n"
        ))
        .unwrap()
        .offsite
        .unwrap()
        .is_remote()
    };
    assert!(remote("backup@nas:/volume1/Backup"));
    assert!(remote("nas:backup"));
    assert!(!remote("/mnt/nas/backup"));
    assert!(!remote("/mnt/odd:name/backup"));
}

#[test]
fn a_password_in_a_repository_url_is_never_shown() {
    let shown = |r: &str| {
        parse(&format!(
            "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n[[offsite.repository]]\n\
             repository = \"{r}\"\npassword-file = \"/p\"\n"
        ))
        .unwrap()
        .offsite
        .unwrap()
        .repositories[0]
            .shown()
    };
    assert_eq!(
        shown("rest:https://user:secret@host:8000/repo"),
        "rest:https://user:***@host:8000/repo"
    );
    assert_eq!(
        shown("sftp:backup@nas:/srv/restic"),
        "sftp:backup@nas:/srv/restic"
    );
    assert_eq!(shown("/srv/restic"), "/srv/restic");
}

/// `offsite.bwlimit` is KiB/s: a whole number, or with a unit in powers of 1024; it reaches the
/// tier's repositories as their upload limit.
#[test]
fn a_bandwidth_limit_is_kib_per_second() {
    for (given, kib) in [
        ("800", 800),
        ("\"800\"", 800),
        ("\"800K\"", 800),
        ("\"10M\"", 10 * 1024),
        ("\" 1g \"", 1024 * 1024),
    ] {
        for key in ["bwlimit", "bwlimit-kib"] {
            let c = parse(&format!(
                "backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n{key} = {given}\n\
             [[offsite.repository]]\nrepository = \"/r\"\npassword-file = \"/p\"\n"
            ))
            .unwrap();
            let o = c.offsite.unwrap();
            assert_eq!(o.bwlimit_kib, Some(kib), "{given}");
            assert_eq!(o.repositories[0].limit_upload_kib, Some(kib), "{given}");
        }
    }
    let c = parse("backup-root = \"/b\"\n[offsite]\ndestination = \"/nas\"\n").unwrap();
    assert_eq!(c.offsite.unwrap().bwlimit_kib, None);
}

/// A job's own `[notify.job.<job>]` kinds win over `[notify]`'s; its own Healthchecks URL is its
/// check's (nothing appended), the default's gets the job's name.
#[test]
fn a_jobs_own_notifications_override_the_defaults() {
    let c = parse(
        "backup-root = \"/b\"\n[notify]\nhealthchecks-url-file = \"/hc\"\nntfy-url-file = \"/ntfy\"\n\
         [notify.job.backupctl-drill]\nhealthchecks-url-file = \"/drill\"\n",
    )
    .unwrap();
    let (daily, slugged) = c.notify.for_job("daily-backup");
    assert_eq!(
        daily.healthchecks.as_deref().map(|p| p.as_str()),
        Some("/hc")
    );
    assert!(slugged);
    let (drill, slugged) = c.notify.for_job("backupctl-drill");
    assert_eq!(
        drill.healthchecks.as_deref().map(|p| p.as_str()),
        Some("/drill")
    );
    assert_eq!(drill.ntfy.as_deref().map(|p| p.as_str()), Some("/ntfy"));
    assert!(!slugged);
    assert_eq!((c.notify.timeout_seconds, c.notify.retries), (10, 2));
}
