//! The configuration file: its TOML schema, and validation into domain types.
//!
//! Parsing is two steps. Raw structs mirror the file (kebab-case keys, unknown keys rejected);
//! [`Config::from_toml`] then checks everything once (absolute paths, ranges, the pattern, unique
//! names) and returns types the rest of the code can trust. Every error names the file, the dotted
//! key and what was expected.

use crate::config_check::Check;
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::cluster::PvClaim;
use crate::error::ConfigError;
use crate::pattern::LvPattern;
use crate::retention::{DumpPolicy, GfsPolicy, SnapshotPolicy, VersionPolicy};

/// Where the binaries look for the configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/homelab-backup/config.toml";

/// Where the kubectl PV map is cached unless `kubernetes.cache-file` says otherwise: the
/// units' `CacheDirectory=homelab-backup`, writable under `ProtectSystem=strict` (the config's
/// folder under /etc is not).
pub const DEFAULT_PV_CACHE: &str = "/var/cache/homelab-backup/pv-cache.json";

// ---------------------------------------------------------------------------------------------
// The file as written

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawConfig {
    backup_root: String,
    #[serde(default)]
    snapshots: RawSnapshots,
    #[serde(default)]
    kubernetes: RawKubernetes,
    #[serde(default)]
    pvc_backup: RawPvcBackup,
    #[serde(default)]
    pve_config: RawPveConfig,
    pfsense: Option<RawPfsense>,
    offsite: Option<RawOffsite>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    sqlite_backup: RawSqliteBackup,
    #[serde(default)]
    dumps: RawDumps,
    #[serde(default)]
    status: RawStatus,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    notify: crate::config_notify::RawNotify,
    #[serde(default)]
    hooks: Vec<crate::config_notify::RawHook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawAlerts {
    #[serde(default)]
    job: Vec<RawAlertJob>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawAlertJob {
    name: String,
    title: String,
    stale_hours: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawStatus {
    stale_hours: Option<u32>,
    offsite_stale_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSnapshots {
    backend: Option<String>,
    volume_group: Option<String>,
    thin_pool: Option<String>,
    lv_pattern: Option<String>,
    #[serde(default)]
    exclude_namespaces: Vec<String>,
    keep_days: Option<u32>,
    min_pool_free_percent: Option<f64>,
    volumes_dir: Option<String>,
    snapshots_dir: Option<String>,
    lock_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawKubernetes {
    resolver: Option<String>,
    #[serde(default)]
    volume: Vec<RawStaticVolume>,
    cache_file: Option<String>,
    kubeconfig: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawStaticVolume {
    lv: String,
    namespace: String,
    pvc: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPvcBackup {
    weekly_versions: Option<u32>,
    mount_dir: Option<String>,
    parallel: Option<u32>,
    monthly_full_pass: Option<bool>,
    max_snapshot_age_hours: Option<u32>,
    retention: Option<GfsPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPveConfig {
    paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPfsense {
    api_url: String,
    api_key_file: String,
    ssh_host: String,
    ssh_user: Option<String>,
    ssh_port: Option<u16>,
    ssh_key_file: String,
    ssh_known_hosts: Option<String>,
    tar_paths: Option<Vec<String>>,
    #[serde(default)]
    insecure_tls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawOffsite {
    destination: String,
    change_log: Option<String>,
    #[serde(default)]
    tree: Vec<RawTree>,
    ssh_key_file: Option<String>,
    ssh_known_hosts: Option<String>,
    ssh_port: Option<u16>,
    max_delete: Option<u64>,
    require_mount: Option<bool>,
    monthly_full_pass: Option<bool>,
    daily_wait_seconds: Option<u64>,
    weekly_versions: Option<u32>,
    tier_mount_dir: Option<String>,
    bwlimit_kib: Option<RawRate>,
    bwlimit: Option<RawRate>,
    stop_at: Option<String>,
    #[serde(default)]
    repository: Vec<RawRepository>,
}

/// A rate as written: a whole number of KiB/s, or a string with a unit (`800K`, `10M`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRate {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRepository {
    name: Option<String>,
    repository: String,
    password_file: String,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    send: Option<Vec<String>>,
    append_only: Option<bool>,
    environment_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawTree {
    source: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawMetrics {
    pushgateway: Option<String>,
    textfile_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSqliteBackup {
    keep_days: Option<u32>,
    min_keep: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDumps {
    keep_days: Option<u32>,
    min_keep: Option<u32>,
    min_bytes: Option<u64>,
    #[serde(default)]
    folders: Vec<String>,
    #[serde(default)]
    kinds: std::collections::BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// The file it was read from.
    pub file: Utf8PathBuf,
    /// `backup-root`: where every copy goes.
    pub backup_root: Utf8PathBuf,
    /// `[snapshots]`.
    pub snapshots: SnapshotsConfig,
    /// `[kubernetes]`.
    pub kubernetes: KubernetesConfig,
    /// `[pvc-backup]`.
    pub pvc_backup: PvcBackupConfig,
    /// `[pve-config]`.
    pub pve_config: PveConfig,
    /// `[pfsense]`; `None` skips the pfSense stage.
    pub pfsense: Option<PfsenseConfig>,
    /// `[offsite]`.
    pub offsite: Option<OffsiteConfig>,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[sqlite-backup]`: defaults for the `sqlite-backup` job.
    pub sqlite_backup: DumpPolicy,
    /// `[dumps]`: defaults for `backup-dump`.
    pub dumps: DumpsConfig,
    /// `[status]`: what `backupctl status` calls a gap.
    pub status: StatusConfig,
    /// `[[alerts.job]]`: the application jobs the alert rules watch (the seed's six when none
    /// is listed).
    pub alert_jobs: Vec<crate::alerts::AppJob>,
    /// `[notify]`: heartbeats and push messages that do not depend on the cluster.
    pub notify: crate::config_notify::NotifyConfig,
    /// `[[hooks]]`: commands before and after a job.
    pub hooks: Vec<crate::config_notify::Hook>,
}

/// `[status]`: the ages past which `backupctl status` reports a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusConfig {
    /// `stale-hours` (default 36): a PVC without a snapshot or a complete version this recent.
    pub stale_hours: u32,
    /// `offsite-stale-days` (default 8): the offsite sync's last success.
    pub offsite_stale_days: u32,
}

/// The kinds `[dumps] kinds` may name.
pub const DUMP_KINDS: [&str; 6] = ["postgresql", "mysql", "mariadb", "redis", "etcd", "vault"];

/// `[dumps]`: defaults for `backup-dump` (its flags win) and where dumps are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpsConfig {
    /// `keep-days` (default 14) and `min-keep` (default 3).
    pub policy: DumpPolicy,
    /// `min-bytes` (default 1): a dump command's output smaller than this is a failure.
    pub min_bytes: u64,
    /// `folders`: the dump folders `backupctl` looks in (default none).
    pub folders: Vec<Utf8PathBuf>,
    /// `kinds`: dump name → kind (`postgresql`, `mysql`, `redis`, `etcd`, `vault`), for a name
    /// that does not say its kind (`backupctl restore dump` and the drill otherwise go by the
    /// name, the extension and the content).
    pub kinds: std::collections::BTreeMap<String, String>,
}

impl Default for DumpsConfig {
    fn default() -> Self {
        Self {
            policy: DumpPolicy {
                keep_days: 14,
                min_keep: 3,
            },
            min_bytes: 1,
            folders: Vec::new(),
            kinds: std::collections::BTreeMap::new(),
        }
    }
}

/// The snapshot backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "backend")]
pub enum Backend {
    /// LVM thin snapshots.
    Lvm {
        /// `volume-group`.
        volume_group: String,
        /// `thin-pool`.
        thin_pool: String,
    },
    /// Folders stand in for LVs (demo and tests).
    Dir {
        /// `volumes-dir`: each subfolder is one volume.
        volumes_dir: Utf8PathBuf,
        /// `snapshots-dir`: where its snapshots go.
        snapshots_dir: Utf8PathBuf,
    },
}

impl Backend {
    /// Where volumes are listed, for messages: `thin pool pve/data` or `folder /srv/volumes`.
    pub fn volume_source(&self) -> String {
        match self {
            Backend::Lvm {
                volume_group,
                thin_pool,
            } => format!("thin pool {volume_group}/{thin_pool}"),
            Backend::Dir { volumes_dir, .. } => format!("folder {volumes_dir}"),
        }
    }
}

/// `[snapshots]`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotsConfig {
    /// Which backend, with its own keys.
    pub backend: Backend,
    /// `lv-pattern`.
    #[serde(serialize_with = "ser_pattern")]
    pub lv_pattern: LvPattern,
    /// `exclude-namespaces`.
    pub exclude_namespaces: Vec<String>,
    /// `keep-days`.
    pub retention: SnapshotPolicy,
    /// `min-pool-free-percent`.
    pub min_pool_free_percent: f64,
    /// `lock-file`: the lock `lvm-pvc-snapshot` and `daily-backup` share (default
    /// `/run/lock/homelab-backup/snapshots.lock`): a prune never removes the snapshot a backup
    /// is reading.
    pub lock_file: Utf8PathBuf,
}

fn ser_pattern<S: serde::Serializer>(p: &LvPattern, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// How LVs are resolved to PVCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolver {
    /// Ask the API server with `kubectl get pv -o json`; the static map is the fallback.
    Kubectl,
    /// Only the static `[[kubernetes.volume]]` map.
    Static,
}

/// `[kubernetes]`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KubernetesConfig {
    /// `resolver`.
    pub resolver: Resolver,
    /// `[[kubernetes.volume]]` as claims whose handle is the LV name.
    pub static_volumes: Vec<PvClaim>,
    /// Where the last good resolution is cached (default: beside the config file).
    pub cache_file: Utf8PathBuf,
    /// `kubeconfig` for kubectl (default: kubectl's own).
    pub kubeconfig: Option<Utf8PathBuf>,
}

/// `[pvc-backup]`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvcBackupConfig {
    /// `weekly-versions`, or `[pvc-backup.retention]` when given.
    pub policy: VersionPolicy,
    /// `mount-dir`.
    pub mount_dir: Utf8PathBuf,
    /// `parallel`: volumes copied at a time; 0 (the default) means one per core. Measured on two
    /// cores (BENCHMARKS.md), two at a time took 0.54–0.97x of the seed's loop where one at a
    /// time took 1.00–1.68x. A backup disk that is one spinning disk may want 1.
    pub parallel: u32,
    /// `monthly-full-pass` (default true): the first run of each month copies every volume in
    /// full instead of trusting the per-file record, bounding what an undetected change costs.
    pub monthly_full_pass: bool,
    /// `max-snapshot-age-hours`: an older newest snapshot is replaced by a fresh one.
    pub max_snapshot_age_hours: u32,
}

/// `[pve-config]`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PveConfig {
    /// `paths`: each copied into `pve-config/`.
    pub paths: Vec<Utf8PathBuf>,
}

/// `[pfsense]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PfsenseConfig {
    /// `api-url`: the endpoint answering `{"data": {"config": "<base64>"}}`-style JSON.
    pub api_url: String,
    /// `api-key-file`: the key, read at run time, never put on argv or in logs.
    pub api_key_file: Utf8PathBuf,
    /// `ssh-host`.
    pub ssh_host: String,
    /// `ssh-user` (default `root`).
    pub ssh_user: String,
    /// `ssh-port` (default 22).
    pub ssh_port: u16,
    /// `ssh-key-file`.
    pub ssh_key_file: Utf8PathBuf,
    /// `ssh-known-hosts`: when set, host keys are checked strictly against it.
    pub ssh_known_hosts: Option<Utf8PathBuf>,
    /// `tar-paths` (default `/cf /var/db /boot/loader.conf`).
    pub tar_paths: Vec<String>,
    /// `insecure-tls`: accept pfSense's self-signed certificate.
    pub insecure_tls: bool,
}

/// `[offsite]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsiteConfig {
    /// `destination`: any rsync destination.
    pub destination: String,
    /// `change-log` (default `<backup-root>/.nfs-changes.log`).
    pub change_log: Utf8PathBuf,
    /// `[[offsite.tree]]`.
    pub trees: Vec<Tree>,
    /// `ssh-key-file`: for a remote destination, `ssh -i` with `IdentitiesOnly=yes`.
    pub ssh_key_file: Option<Utf8PathBuf>,
    /// `ssh-known-hosts`: the pinned host key (`StrictHostKeyChecking=yes` always).
    pub ssh_known_hosts: Option<Utf8PathBuf>,
    /// `ssh-port` (default 22).
    pub ssh_port: u16,
    /// `max-delete` (default 1000): one full pass's deletions offsite per tree; more fails the run.
    pub max_delete: u64,
    /// `require-mount` (default false): step 1 refuses a backup root that is not a mount point.
    pub require_mount: bool,
    /// `monthly-full-pass` (default true): the first run of each month makes a full pass of
    /// every tree, whatever the change log says.
    pub monthly_full_pass: bool,
    /// `daily-wait-seconds` (default 3600): how long step 1 waits for a running daily-backup.
    pub daily_wait_seconds: u64,
    /// How many complete versions of each PVC the offsite copy keeps (`weekly-versions`); `None`:
    /// what the backup disk keeps. Step 1 deletes a version offsite only when the backup disk's
    /// retention removed it and it is not among these.
    pub weekly_versions: Option<u32>,
    /// `[[offsite.repository]]`: the encrypted tier, restic repositories.
    pub repositories: Vec<TierRepository>,
    /// `tier-mount-dir` (default `/run/homelab-backup/tier`): where each PVC's newest version is
    /// bind-mounted read-only, at the same path every run, for the tier's backups.
    pub tier_mount_dir: Utf8PathBuf,
    /// `bwlimit-kib` (or `bwlimit`, which takes a unit: `2M`; default none), in KiB/s: each
    /// transfer to the NAS (rsync `--bwlimit`) and each restic upload of the tier
    /// (`--limit-upload`) at most this fast, so a thin uplink stays usable while a first seed
    /// runs for days. Per transfer: two may run at once.
    pub bwlimit_kib: Option<u64>,
    /// `stop-at` (default none): `HH:MM`, the host's local time. A run still sending then stops
    /// cleanly (what was sent stays, the change logs keep what was not) and the next run goes
    /// on from there: a first seed spread over nights.
    pub stop_at: Option<StopAt>,
}

/// A time of day, `HH:MM` on the host's clock (`offsite.stop-at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StopAt {
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
}

impl std::fmt::Display for StopAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl std::str::FromStr for StopAt {
    type Err = ();

    /// Exactly `HH:MM`, `00:00` to `23:59`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let b = s.as_bytes();
        if b.len() != 5
            || b[2] != b':'
            || !s[..2]
                .bytes()
                .chain(s[3..].bytes())
                .all(|c| c.is_ascii_digit())
        {
            return Err(());
        }
        let (hour, minute) = (
            s[..2].parse().map_err(|_| ())?,
            s[3..].parse().map_err(|_| ())?,
        );
        (hour < 24 && minute < 60)
            .then_some(StopAt { hour, minute })
            .ok_or(())
    }
}

/// One `[[offsite.repository]]`: a restic repository the tier sends to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierRepository {
    /// `name` (default `tier`, then `tier-2`, ...): the label of its metrics and state.
    pub name: String,
    /// `repository`: a local path, `sftp:`, `rest:`, `s3:` (given to restic as
    /// `RESTIC_REPOSITORY`, never on its command line).
    pub repository: String,
    /// `password-file`: the repository's password (mode 0600, owned by root; given to restic as
    /// `RESTIC_PASSWORD_FILE`).
    pub password_file: Utf8PathBuf,
    /// `keep-weekly` (default 8), `keep-monthly` (default 12), `keep-yearly` (default 0): the
    /// snapshots of each PVC kept (the newest always).
    pub keep_weekly: u32,
    /// See `keep_weekly`.
    pub keep_monthly: u32,
    /// See `keep_weekly`.
    pub keep_yearly: u32,
    /// `send` (default all): what goes to the repository, in this order.
    pub send: Vec<TierItem>,
    /// `append-only` (default false): the server refuses deletions (`rest-server
    /// --append-only`), so the tier never runs `forget` or `prune`; retention is the server's.
    pub append_only: bool,
    /// `offsite.bwlimit`: restic's `--limit-upload`, KiB/s.
    pub limit_upload_kib: Option<u64>,
    /// `environment-file`: `NAME=value` lines given to restic in its environment (an `s3:`
    /// repository's `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, B2's, Azure's); a secret,
    /// checked like the password file, never shown.
    pub environment_file: Option<Utf8PathBuf>,
}

impl TierRepository {
    /// The repository as output may show it: the password of a URL's user part replaced by
    /// `***` (`rest:https://user:***@host/repo`).
    pub fn shown(&self) -> String {
        let r = &self.repository;
        match (r.find("://"), r.find('@')) {
            (Some(scheme), Some(at)) if at > scheme => match r[scheme + 3..at].split_once(':') {
                Some((name, _)) => format!("{}{name}:***{}", &r[..scheme + 3], &r[at..]),
                None => r.clone(),
            },
            _ => r.clone(),
        }
    }
}

/// One thing a tier repository sends (`send = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierItem {
    /// `pvc`: every PVC's newest complete version, one snapshot per PVC.
    Pvc,
    /// `sqlite-backup`: the `sqlite-backup/` tree (every week's consistent SQLite copies).
    SqliteBackup,
    /// `pfsense`: the `pfsense/` tree.
    Pfsense,
    /// `pve-config`: the `pve-config/` tree.
    PveConfig,
    /// `dumps`: each folder of `[dumps] folders`.
    Dumps,
}

impl TierItem {
    /// Every item, the default of `send`.
    pub const ALL: [TierItem; 5] = [
        TierItem::Pvc,
        TierItem::SqliteBackup,
        TierItem::Pfsense,
        TierItem::PveConfig,
        TierItem::Dumps,
    ];

    /// Its name in the config, its `kind=` tag and (but `pvc` and `dumps`) its backup-root
    /// folder.
    pub fn name(self) -> &'static str {
        match self {
            TierItem::Pvc => "pvc",
            TierItem::SqliteBackup => "sqlite-backup",
            TierItem::Pfsense => "pfsense",
            TierItem::PveConfig => "pve-config",
            TierItem::Dumps => "dumps",
        }
    }
}

impl OffsiteConfig {
    /// True for an rsync destination on another host (`host:path`, `user@host:path`): a `:`
    /// before the first `/`.
    pub fn is_remote(&self) -> bool {
        match (self.destination.find(':'), self.destination.find('/')) {
            (Some(c), Some(s)) => c < s,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// One `[[offsite.tree]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tree {
    /// `source`.
    pub source: Utf8PathBuf,
    /// `name`: the folder it goes to at the destination.
    pub name: String,
}

/// `[metrics]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsConfig {
    /// `pushgateway`: base URL.
    pub pushgateway: Option<String>,
    /// `textfile-dir`: node_exporter textfile collector folder.
    pub textfile_dir: Option<Utf8PathBuf>,
}

impl Config {
    /// Parses and validates the text of `file`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `file`, the dotted key at fault and what was expected.
    pub fn from_toml(file: &Utf8Path, text: &str) -> Result<Self, ConfigError> {
        let raw = parse_raw(file, text)?;
        let c = Check { file };
        let backup_root = c.abs("backup-root", &raw.backup_root)?;
        let snapshots = c.snapshots(raw.snapshots)?;
        let kubernetes = c.kubernetes(raw.kubernetes)?;
        let pvc_backup = c.pvc_backup(raw.pvc_backup, &backup_root, &snapshots.backend)?;
        let pve_config = c.pve_config(raw.pve_config)?;
        let pfsense = raw.pfsense.map(|p| c.pfsense(p)).transpose()?;
        let offsite = raw
            .offsite
            .map(|o| c.offsite(o, &backup_root))
            .transpose()?;
        let metrics = c.metrics(raw.metrics)?;
        let sqlite_backup = c.sqlite_backup(raw.sqlite_backup)?;
        let dumps = c.dumps(raw.dumps)?;
        let status = StatusConfig {
            stale_hours: raw.status.stale_hours.unwrap_or(36),
            offsite_stale_days: raw.status.offsite_stale_days.unwrap_or(8),
        };
        if status.stale_hours == 0 || status.offsite_stale_days == 0 {
            return Err(c.err(
                "status",
                "expected stale-hours and offsite-stale-days above 0",
            ));
        }
        let alert_jobs = c.alert_jobs(raw.alerts)?;
        let notify = c.notify(raw.notify)?;
        let hooks = c.hooks(raw.hooks)?;
        Ok(Config {
            notify,
            hooks,
            file: file.to_owned(),
            backup_root,
            snapshots,
            kubernetes,
            pvc_backup,
            pve_config,
            pfsense,
            offsite,
            metrics,
            sqlite_backup,
            dumps,
            status,
            alert_jobs,
        })
    }
}

/// One validating function per section: each names its keys in its errors.
impl Check<'_> {
    fn snapshots(&self, s: RawSnapshots) -> Result<SnapshotsConfig, ConfigError> {
        let c = self;
        let backend = match s.backend.as_deref().unwrap_or("lvm") {
            "lvm" => Backend::Lvm {
                volume_group: c.name(
                    "snapshots.volume-group",
                    s.volume_group.as_deref().unwrap_or("pve"),
                )?,
                thin_pool: c.name(
                    "snapshots.thin-pool",
                    s.thin_pool.as_deref().unwrap_or("data"),
                )?,
            },
            "dir" => Backend::Dir {
                volumes_dir: c.abs(
                    "snapshots.volumes-dir",
                    c.required(
                        "snapshots.volumes-dir",
                        &s.volumes_dir,
                        "with backend = \"dir\"",
                    )?,
                )?,
                snapshots_dir: c.abs(
                    "snapshots.snapshots-dir",
                    c.required(
                        "snapshots.snapshots-dir",
                        &s.snapshots_dir,
                        "with backend = \"dir\"",
                    )?,
                )?,
            },
            other => {
                return Err(c.err(
                    "snapshots.backend",
                    format!("expected \"lvm\" or \"dir\", found \"{other}\""),
                ))
            }
        };
        let lv_pattern =
            LvPattern::new(s.lv_pattern.as_deref().unwrap_or("vm-*-pvc-*")).map_err(|e| {
                let reason = match e {
                    crate::Error::InvalidPattern { reason, .. } => reason,
                    other => other.to_string(),
                };
                c.err(
                    "snapshots.lv-pattern",
                    format!("expected a glob over LV names: {reason}"),
                )
            })?;
        for (i, ns) in s.exclude_namespaces.iter().enumerate() {
            c.name(&format!("snapshots.exclude-namespaces[{i}]"), ns)?;
        }
        let keep_days = s.keep_days.unwrap_or(7);
        if keep_days == 0 {
            return Err(c.err(
                "snapshots.keep-days",
                "expected at least 1, found 0 (it would remove every snapshot)",
            ));
        }
        let min_pool_free_percent = s.min_pool_free_percent.unwrap_or(15.0);
        if !(0.0..=100.0).contains(&min_pool_free_percent) {
            return Err(c.err(
                "snapshots.min-pool-free-percent",
                format!("expected a percentage from 0 to 100, found {min_pool_free_percent}"),
            ));
        }

        let lock_file = c.abs_plain(
            "snapshots.lock-file",
            s.lock_file
                .as_deref()
                .unwrap_or("/run/lock/homelab-backup/snapshots.lock"),
        )?;
        Ok(SnapshotsConfig {
            backend,
            lv_pattern,
            exclude_namespaces: s.exclude_namespaces,
            retention: SnapshotPolicy { keep_days },
            min_pool_free_percent,
            lock_file,
        })
    }

    fn kubernetes(&self, k: RawKubernetes) -> Result<KubernetesConfig, ConfigError> {
        let c = self;
        let resolver = match k.resolver.as_deref().unwrap_or("static") {
            "kubectl" => Resolver::Kubectl,
            "static" => Resolver::Static,
            other => {
                return Err(c.err(
                    "kubernetes.resolver",
                    format!("expected \"kubectl\" or \"static\", found \"{other}\""),
                ))
            }
        };
        let mut static_volumes: Vec<PvClaim> = Vec::new();
        for (i, v) in k.volume.iter().enumerate() {
            let key = |field: &str| format!("kubernetes.volume[{i}].{field}");
            let lv = c.name(&key("lv"), &v.lv)?;
            if static_volumes.iter().any(|s| s.volume_handle == lv) {
                return Err(c.err(&key("lv"), format!("`{lv}` is mapped twice")));
            }
            static_volumes.push(PvClaim {
                volume_handle: lv,
                namespace: c.name(&key("namespace"), &v.namespace)?,
                pvc: c.name(&key("pvc"), &v.pvc)?,
            });
        }
        let cache_file = match &k.cache_file {
            Some(p) => c.abs("kubernetes.cache-file", p)?,
            None => Utf8PathBuf::from(DEFAULT_PV_CACHE),
        };

        let kubeconfig = k
            .kubeconfig
            .as_deref()
            .map(|p| c.abs("kubernetes.kubeconfig", p))
            .transpose()?;
        Ok(KubernetesConfig {
            resolver,
            static_volumes,
            cache_file,
            kubeconfig,
        })
    }

    fn pvc_backup(
        &self,
        p: RawPvcBackup,
        backup_root: &Utf8Path,
        backend: &Backend,
    ) -> Result<PvcBackupConfig, ConfigError> {
        let c = self;
        let weekly_versions = p.weekly_versions.unwrap_or(4);
        if weekly_versions == 0 {
            return Err(c.err(
                "pvc-backup.weekly-versions",
                "expected at least 1, found 0 (it would remove every version)",
            ));
        }
        let policy = match p.retention {
            Some(gfs) => {
                gfs.check()
                .map_err(|_| c.err("pvc-backup.retention", "expected at least one rule above 0 (an empty policy would remove every version)"))?;
                VersionPolicy::Gfs(gfs)
            }
            None => VersionPolicy::Newest(weekly_versions),
        };
        let parallel = p.parallel.unwrap_or(0);
        if !(0..=64).contains(&parallel) {
            return Err(c.err(
                "pvc-backup.parallel",
                format!("expected 0 (one per core) to 64, found {parallel}"),
            ));
        }
        let max_snapshot_age_hours = p.max_snapshot_age_hours.unwrap_or(26);
        if max_snapshot_age_hours == 0 {
            return Err(c.err(
                "pvc-backup.max-snapshot-age-hours",
                "expected at least 1, found 0",
            ));
        }
        let mount_dir = c.abs_plain(
            "pvc-backup.mount-dir",
            p.mount_dir.as_deref().unwrap_or("/run/homelab-backup/mnt"),
        )?;
        // Snapshots are mounted under mount-dir: inside a folder that is copied, pruned or
        // listed, a mount would be copied into the backup, deleted through, or taken for a
        // volume; and a folder inside mount-dir would be hidden by a mount.
        let backup_root = backup_root.to_owned();
        let mut others = vec![("backup-root", &backup_root)];
        if let Backend::Dir {
            volumes_dir,
            snapshots_dir,
        } = backend
        {
            others.push(("snapshots.volumes-dir", volumes_dir));
            others.push(("snapshots.snapshots-dir", snapshots_dir));
        }
        for (key, other) in others {
            let other = Utf8PathBuf::from_iter(other.components());
            if mount_dir.starts_with(&other) || other.starts_with(&mount_dir) {
                return Err(c.err(
                    "pvc-backup.mount-dir",
                    format!(
                        "expected a folder apart from {key} ({other}), found `{mount_dir}`: \
                     one is inside the other"
                    ),
                ));
            }
        }
        Ok(PvcBackupConfig {
            policy,
            mount_dir,
            parallel,
            monthly_full_pass: p.monthly_full_pass.unwrap_or(true),
            max_snapshot_age_hours,
        })
    }

    fn pve_config(&self, raw: RawPveConfig) -> Result<PveConfig, ConfigError> {
        let c = self;
        let paths = match raw.paths {
            Some(paths) => paths
                .iter()
                .enumerate()
                .map(|(i, p)| c.abs_plain(&format!("pve-config.paths[{i}]"), p))
                .collect::<Result<Vec<_>, _>>()?,
            None => ["/etc/pve", "/usr/local/bin", "/etc/systemd/system"]
                .map(Utf8PathBuf::from)
                .to_vec(),
        };

        Ok(PveConfig { paths })
    }

    fn pfsense(&self, p: RawPfsense) -> Result<PfsenseConfig, ConfigError> {
        let c = self;
        if !(p.api_url.starts_with("https://") || p.api_url.starts_with("http://")) {
            return Err(c.err(
                "pfsense.api-url",
                format!("expected an http(s) URL, found `{}`", p.api_url),
            ));
        }
        c.host("pfsense.ssh-host", &p.ssh_host)?;
        Ok(PfsenseConfig {
            api_url: p.api_url,
            api_key_file: c.abs("pfsense.api-key-file", &p.api_key_file)?,
            ssh_host: p.ssh_host,
            ssh_user: c.name("pfsense.ssh-user", p.ssh_user.as_deref().unwrap_or("root"))?,
            ssh_port: p.ssh_port.unwrap_or(22),
            ssh_key_file: c.ssh_path("pfsense.ssh-key-file", &p.ssh_key_file)?,
            ssh_known_hosts: p
                .ssh_known_hosts
                .map(|k| c.ssh_path("pfsense.ssh-known-hosts", &k))
                .transpose()?,
            tar_paths: p.tar_paths.unwrap_or_else(|| {
                ["/cf", "/var/db", "/boot/loader.conf"]
                    .map(String::from)
                    .to_vec()
            }),
            insecure_tls: p.insecure_tls,
        })
    }

    fn offsite(&self, o: RawOffsite, backup_root: &Utf8Path) -> Result<OffsiteConfig, ConfigError> {
        let c = self;
        if o.destination.is_empty()
            || o.destination.starts_with('-')
            || o.destination.chars().any(char::is_control)
        {
            return Err(c.err(
                "offsite.destination",
                format!(
                    "expected an rsync destination (no leading `-`, no control character), \
                     found `{}`",
                    o.destination.escape_debug()
                ),
            ));
        }
        // `host:path`: the host goes to ssh as an argument of its own
        if let Some((host, _)) = o
            .destination
            .split_once(':')
            .filter(|(h, _)| !h.contains('/'))
        {
            c.host("offsite.destination", host)?;
        }
        let trees = c.trees(&o.tree)?;
        let change_log = match &o.change_log {
            Some(p) => c.abs("offsite.change-log", p)?,
            None => backup_root.join(".nfs-changes.log"),
        };
        c.offsite_places(&o.destination, backup_root, &trees, &change_log)?;
        let (bwlimit_kib, stop_at) = c.pace(&o)?;
        let mut repositories = c.repositories(&o.repository)?;
        for r in &mut repositories {
            r.limit_upload_kib = bwlimit_kib;
        }
        let tier_mount_dir = match &o.tier_mount_dir {
            Some(p) => c.abs("offsite.tier-mount-dir", p)?,
            None => Utf8PathBuf::from("/run/homelab-backup/tier"),
        };
        Ok(OffsiteConfig {
            repositories,
            tier_mount_dir,
            bwlimit_kib,
            stop_at,
            destination: o.destination,
            change_log,
            trees,
            ssh_key_file: o
                .ssh_key_file
                .map(|k| c.ssh_path("offsite.ssh-key-file", &k))
                .transpose()?,
            ssh_known_hosts: o
                .ssh_known_hosts
                .map(|k| c.ssh_path("offsite.ssh-known-hosts", &k))
                .transpose()?,
            ssh_port: o.ssh_port.unwrap_or(22),
            max_delete: o.max_delete.unwrap_or(1000),
            require_mount: o.require_mount.unwrap_or(false),
            monthly_full_pass: o.monthly_full_pass.unwrap_or(true),
            daily_wait_seconds: o.daily_wait_seconds.unwrap_or(3600),
            weekly_versions: match o.weekly_versions {
                Some(0) => {
                    return Err(c.err(
                        "offsite.weekly-versions",
                        "expected at least 1 (0 would keep nothing offsite)",
                    ))
                }
                other => other,
            },
        })
    }

    /// `[[offsite.tree]]`: unique names, not `pve-backup`, absolute sources.
    fn trees(&self, raw: &[RawTree]) -> Result<Vec<Tree>, ConfigError> {
        let c = self;
        let mut trees: Vec<Tree> = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let name = c.name(&format!("offsite.tree[{i}].name"), &t.name)?;
            if trees.iter().any(|x| x.name == name) {
                return Err(c.err(
                    &format!("offsite.tree[{i}].name"),
                    format!("expected unique tree names, `{name}` is used twice"),
                ));
            }
            if name == "pve-backup" {
                return Err(c.err(
                    &format!("offsite.tree[{i}].name"),
                    "expected a name other than `pve-backup` (step 1 sends the backup disk there)",
                ));
            }
            trees.push(Tree {
                source: c.abs(&format!("offsite.tree[{i}].source"), &t.source)?,
                name,
            });
        }
        Ok(trees)
    }

    /// How fast and how long a run may send: `bwlimit-kib` or `bwlimit`, `stop-at`.
    fn pace(&self, o: &RawOffsite) -> Result<(Option<u64>, Option<StopAt>), ConfigError> {
        let c = self;
        let bwlimit_kib = match (&o.bwlimit_kib, &o.bwlimit) {
            (Some(_), Some(_)) => {
                return Err(c.err(
                    "offsite.bwlimit",
                    "expected one of `bwlimit-kib` and `bwlimit` (they are the same limit), \
                     found both",
                ))
            }
            (Some(k), None) => c.rate_kib("offsite.bwlimit-kib", Some(k))?,
            (None, b) => c.rate_kib("offsite.bwlimit", b.as_ref())?,
        };
        let stop_at = match &o.stop_at {
            None => None,
            Some(t) => Some(t.parse::<StopAt>().map_err(|()| {
                c.err(
                    "offsite.stop-at",
                    format!(
                        "expected a time of day `HH:MM` (00:00 to 23:59, the host's local \
                         time), found `{}`",
                        t.escape_debug()
                    ),
                )
            })?),
        };
        Ok((bwlimit_kib, stop_at))
    }

    /// A rate in KiB/s: a whole number, or a number with a unit `K`, `M` or `G` (powers of 1024:
    /// `10M` is 10240); above 0.
    fn rate_kib(&self, key: &str, raw: Option<&RawRate>) -> Result<Option<u64>, ConfigError> {
        let bad = |found: String| {
            self.err(
                key,
                format!(
                    "expected a rate above 0 in KiB/s (a whole number, at most 2147483647) or \
                     with a unit (`800K`, `10M`, `1G`), found `{}`",
                    found.escape_debug()
                ),
            )
        };
        let kib = match raw {
            None => return Ok(None),
            Some(RawRate::Number(n)) => u64::try_from(*n)
                .ok()
                .filter(|n| *n > 0 && *n <= u64::from(u32::MAX >> 1)),
            Some(RawRate::Text(t)) => parse_rate_kib(t),
        };
        match (kib, raw) {
            (Some(k), _) => Ok(Some(k)),
            (None, Some(RawRate::Number(n))) => Err(bad(n.to_string())),
            (None, Some(RawRate::Text(t))) => Err(bad(t.clone())),
            (None, None) => Ok(None),
        }
    }

    /// `[[offsite.repository]]`, each checked: a repository string restic can be given (no
    /// control character, no leading `-`), an absolute password file, a policy that keeps
    /// something, unique names.
    fn repositories(&self, raw: &[RawRepository]) -> Result<Vec<TierRepository>, ConfigError> {
        let mut out: Vec<TierRepository> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = |k: &str| format!("offsite.repository[{i}].{k}");
            let name = match &r.name {
                Some(n) => self.name(&key("name"), n)?,
                None if i == 0 => "tier".to_owned(),
                None => format!("tier-{}", i + 1),
            };
            if out.iter().any(|x| x.name == name) {
                return Err(self.err(
                    &key("name"),
                    format!("expected unique repository names, `{name}` is used twice"),
                ));
            }
            if r.repository.is_empty()
                || r.repository.starts_with('-')
                || r.repository.chars().any(char::is_control)
            {
                return Err(self.err(
                    &key("repository"),
                    format!(
                        "expected a restic repository (a path, `sftp:`, `rest:`, `s3:`; no leading \
                         `-`, no control character), found `{}`",
                        r.repository.escape_debug()
                    ),
                ));
            }
            let t = TierRepository {
                name,
                repository: r.repository.clone(),
                password_file: self.abs(&key("password-file"), &r.password_file)?,
                keep_weekly: r.keep_weekly.unwrap_or(8),
                keep_monthly: r.keep_monthly.unwrap_or(12),
                keep_yearly: r.keep_yearly.unwrap_or(0),
                send: self.tier_items(&key("send"), r.send.as_deref())?,
                append_only: r.append_only.unwrap_or(false),
                limit_upload_kib: None,
                environment_file: match &r.environment_file {
                    Some(f) => Some(self.abs(&key("environment-file"), f)?),
                    None => None,
                },
            };
            if t.keep_weekly + t.keep_monthly + t.keep_yearly == 0 {
                return Err(self.err(
                    &key("keep-weekly"),
                    "expected a policy that keeps something (keep-weekly, keep-monthly or \
                     keep-yearly above 0)",
                ));
            }
            out.push(t);
        }
        Ok(out)
    }

    /// `send`: known item names, each once, at least one; absent: all of them.
    fn tier_items(&self, key: &str, raw: Option<&[String]>) -> Result<Vec<TierItem>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(TierItem::ALL.to_vec());
        };
        let mut out = Vec::new();
        for name in raw {
            let item = TierItem::ALL
                .into_iter()
                .find(|i| i.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = TierItem::ALL.iter().map(|i| i.name()).collect();
                    self.err(
                        key,
                        format!(
                            "expected some of {}, found `{}`",
                            names.join(", "),
                            name.escape_debug()
                        ),
                    )
                })?;
            if !out.contains(&item) {
                out.push(item);
            }
        }
        if out.is_empty() {
            return Err(self.err(
                key,
                "expected at least one thing to send (or no `send`: all)",
            ));
        }
        Ok(out)
    }

    /// The offsite copy must be apart from what it copies: a destination inside the backup root
    /// nests each copy in the next (the disk doubles every run), one around it or a tree is sent
    /// into itself; a tree inside the backup root is sent twice and deleted through.
    fn offsite_places(
        &self,
        destination: &str,
        backup_root: &Utf8Path,
        trees: &[Tree],
        change_log: &Utf8Path,
    ) -> Result<(), ConfigError> {
        let apart = |a: &Utf8Path, b: &Utf8Path| {
            let (a, b) = (
                Utf8PathBuf::from_iter(a.components()),
                Utf8PathBuf::from_iter(b.components()),
            );
            !(a.starts_with(&b) || b.starts_with(&a))
        };
        let clash = |key: &str, other_key: &str, other: &Utf8Path, found: &str| {
            self.err(
                key,
                format!(
                    "expected a place apart from {other_key} ({other}), found `{found}`: one is \
                     inside the other"
                ),
            )
        };
        for (i, t) in trees.iter().enumerate() {
            if !apart(&t.source, backup_root) {
                return Err(clash(
                    &format!("offsite.tree[{i}].source"),
                    "backup-root",
                    backup_root,
                    t.source.as_str(),
                ));
            }
        }
        // a remote destination (`host:path`, `user@host:path`) is on another machine
        let remote = destination
            .split_once(':')
            .is_some_and(|(host, _)| !host.contains('/'));
        if remote {
            return Ok(());
        }
        let dest = Utf8Path::new(destination);
        if !dest.is_absolute() {
            return Err(self.err(
                "offsite.destination",
                format!("expected an absolute path or `host:path`, found `{destination}`"),
            ));
        }
        let log_dir = change_log.parent().unwrap_or(change_log);
        let mut places = vec![("backup-root".to_owned(), backup_root.to_owned())];
        places.extend(
            trees
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("offsite.tree[{i}].source"), t.source.clone())),
        );
        places.push(("offsite.change-log's folder".to_owned(), log_dir.to_owned()));
        for (key, place) in places {
            if !apart(dest, &place) {
                return Err(clash("offsite.destination", &key, &place, destination));
            }
        }
        Ok(())
    }

    fn metrics(&self, m: RawMetrics) -> Result<MetricsConfig, ConfigError> {
        let c = self;
        if let Some(url) = &m.pushgateway {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(c.err(
                    "metrics.pushgateway",
                    format!("expected an http(s) URL, found `{url}`"),
                ));
            }
        }
        let metrics = MetricsConfig {
            pushgateway: m.pushgateway.map(|u| u.trim_end_matches('/').to_owned()),
            textfile_dir: m
                .textfile_dir
                .map(|d| c.abs("metrics.textfile-dir", &d))
                .transpose()?,
        };

        Ok(metrics)
    }

    fn sqlite_backup(&self, sq: RawSqliteBackup) -> Result<DumpPolicy, ConfigError> {
        let c = self;
        let sqlite_backup = DumpPolicy {
            keep_days: sq.keep_days.unwrap_or(30),
            min_keep: sq.min_keep.unwrap_or(4),
        };
        if sqlite_backup.keep_days == 0 && sqlite_backup.min_keep == 0 {
            return Err(c.err(
                "sqlite-backup.min-keep",
                "expected keep-days or min-keep above 0",
            ));
        }

        Ok(sqlite_backup)
    }

    fn alert_jobs(&self, a: RawAlerts) -> Result<Vec<crate::alerts::AppJob>, ConfigError> {
        let c = self;
        let mut jobs = Vec::new();
        for (i, j) in a.job.into_iter().enumerate() {
            let key = format!("alerts.job[{i}]");
            crate::k8s_name::check_folder_name(&j.name)
                .map_err(|e| c.err(&format!("{key}.name"), e))?;
            if j.title.is_empty() || !j.title.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                return Err(c.err(
                    &format!("{key}.title"),
                    "expected letters and digits (it starts the alert's name)",
                ));
            }
            if j.stale_hours == 0 {
                return Err(c.err(&format!("{key}.stale-hours"), "expected more than 0"));
            }
            jobs.push(crate::alerts::AppJob {
                name: j.name,
                title: j.title,
                stale_hours: j.stale_hours,
            });
        }
        if jobs.is_empty() {
            jobs = crate::alerts::default_app_jobs();
        }
        Ok(jobs)
    }

    fn dumps(&self, d: RawDumps) -> Result<DumpsConfig, ConfigError> {
        let c = self;
        let defaults = DumpsConfig::default();
        let policy = DumpPolicy {
            keep_days: d.keep_days.unwrap_or(defaults.policy.keep_days),
            min_keep: d.min_keep.unwrap_or(defaults.policy.min_keep),
        };
        if policy.keep_days == 0 && policy.min_keep == 0 {
            return Err(c.err("dumps.min-keep", "expected keep-days or min-keep above 0"));
        }
        // plain: the tier mounts each at `<tier-mount-dir>/_files/dumps/<path>`, which a `..`
        // would move anywhere
        let folders = d
            .folders
            .iter()
            .map(|f| c.abs_plain("dumps.folders", f))
            .collect::<Result<Vec<_>, _>>()?;
        // one inside another: its dumps twice, and its mount point inside the other's read-only
        // one
        for (i, a) in folders.iter().enumerate() {
            if let Some(b) = folders[i + 1..]
                .iter()
                .find(|b| a.starts_with(b.as_path()) || b.starts_with(a.as_path()))
            {
                return Err(c.err(
                    "dumps.folders",
                    format!("expected folders apart from each other, `{a}` and `{b}` overlap"),
                ));
            }
        }
        for (name, kind) in &d.kinds {
            if !DUMP_KINDS.contains(&kind.as_str()) {
                return Err(c.err(
                    &format!("dumps.kinds.{name}"),
                    format!(
                        "unknown dump kind `{kind}`: expected one of {}",
                        DUMP_KINDS.join(", ")
                    ),
                ));
            }
        }
        Ok(DumpsConfig {
            policy,
            min_bytes: d.min_bytes.unwrap_or(defaults.min_bytes),
            folders,
            kinds: d.kinds,
        })
    }
}

fn parse_raw(file: &Utf8Path, text: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let mut message = inner.message().trim().replace('\n', "; ");
        // serde reports a missing key at its table; name the key itself
        let key = match message
            .strip_prefix("missing field `")
            .and_then(|m| m.split_once('`'))
        {
            Some((field, _)) if key == "." || key.is_empty() => field.to_owned(),
            Some((field, _)) => format!("{key}.{field}"),
            None => key,
        };
        if let Some(line) = line {
            message.push_str(&format!(" (line {line})"));
        }
        // some errors (a number too large for its type) come before serde knows the key: read
        // it off the line, with the table above it
        let key = if key == "." || key.is_empty() {
            line.and_then(|l| key_on_line(text, l))
                .unwrap_or_else(|| "(file)".to_owned())
        } else {
            key
        };
        ConfigError {
            file: file.to_owned(),
            key,
            message,
        }
    })
}

/// The dotted key assigned on line `line` (1-based) of a TOML text: `table.key` from the
/// nearest `[table]` or `[[table]]` header above it; `None` when the line assigns nothing.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = this.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

/// `800`, `800K`, `10M`, `1G` as KiB (powers of 1024); `None` for anything else, 0 or more than
/// a u64 holds.
fn parse_rate_kib(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let factor: u64 = match unit {
        "" | "K" | "k" => 1,
        "M" | "m" => 1024,
        "G" | "g" => 1024 * 1024,
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(factor)
        // rsync and restic take the rate as a 32-bit number
        .filter(|k| *k > 0 && *k <= u64::from(u32::MAX >> 1))
}
