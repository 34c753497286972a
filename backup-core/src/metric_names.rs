//! Every job and metric name, with its help text, in one place.
//!
//! These names are a public contract: operators' dashboards and alert rules use them. Binaries
//! build their metrics from here, tests check against here, and the alert rules and dashboard
//! are generated from here. An insta snapshot pins the whole list: a rename shows up in review.

use std::borrow::Cow;

use crate::metrics::Metric;

/// A gauge's name and `# HELP` text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricName {
    /// The series name.
    pub name: Cow<'static, str>,
    /// The help text.
    pub help: &'static str,
}

impl MetricName {
    /// A gauge of this name with one unlabelled sample.
    pub fn gauge(&self, value: f64) -> Metric {
        Metric::gauge(&self.name, self.help, value)
    }

    /// A gauge of this name with no samples yet.
    pub fn labelled(&self) -> Metric {
        Metric::labelled(&self.name, self.help)
    }
}

const fn m(name: &'static str, help: &'static str) -> MetricName {
    MetricName {
        name: Cow::Borrowed(name),
        help,
    }
}

/// Job of `lvm-pvc-snapshot`.
pub const JOB_LVM_SNAPSHOT: &str = "lvm-pvc-snapshot";
/// Job of `daily-backup`.
pub const JOB_DAILY_BACKUP: &str = "daily-backup";
/// Job of `offsite-sync-backup`.
pub const JOB_OFFSITE_SYNC: &str = "offsite-sync-backup";
/// Job of `nfs-change-tracker`.
pub const JOB_NFS_TRACKER: &str = "nfs-change-tracker";
/// Job of `backupctl verify`.
pub const JOB_VERIFY: &str = "backupctl-verify";
/// Job of `backupctl drill`.
pub const JOB_DRILL: &str = "backupctl-drill";
/// Job of `backupctl verify --offsite` (the monthly read-back of the NAS copy).
pub const JOB_VERIFY_OFFSITE: &str = "backupctl-verify-offsite";
/// Job of `backupctl drill --dumps-only` (the weekly CronJob beside the dumps).
pub const JOB_DUMP_DRILL: &str = "backupctl-dump-drill";

/// The job of a `sqlite-backup backup` or a `backup-dump` named `name`.
pub fn backup_job(name: &str) -> String {
    format!("{name}-backup")
}

/// The job of a `sqlite-backup check` named `name`.
pub fn integrity_job(name: &str) -> String {
    format!("{name}-integrity-check")
}

/// `<name>_sqlite_integrity_ok`, the name made a valid Prometheus identifier.
pub fn integrity_ok(name: &str) -> MetricName {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    MetricName {
        name: Cow::Owned(format!("{clean}_sqlite_integrity_ok")),
        help: "1 when the last PRAGMA integrity_check of the live database answered ok",
    }
}

/// `lvm_snapshot_last_success_timestamp`.
pub const LVM_SNAPSHOT_LAST_SUCCESS: MetricName = m(
    "lvm_snapshot_last_success_timestamp",
    "unix time of the last successful snapshot run",
);
/// `lvm_snapshot_last_run_success`.
pub const LVM_SNAPSHOT_LAST_RUN_SUCCESS: MetricName = m(
    "lvm_snapshot_last_run_success",
    "1 when the last snapshot run succeeded",
);
/// `lvm_snapshot_count`.
pub const LVM_SNAPSHOT_COUNT: MetricName = m(
    "lvm_snapshot_count",
    "snapshots that exist after the last run",
);
/// `lvm_thin_pool_free_percent`.
pub const LVM_THIN_POOL_FREE_PERCENT: MetricName = m(
    "lvm_thin_pool_free_percent",
    "free space of the thin pool, data or metadata, whichever is less",
);

/// `daily_backup_last_success_timestamp`.
pub const DAILY_BACKUP_LAST_SUCCESS: MetricName = m(
    "daily_backup_last_success_timestamp",
    "unix time of the last successful daily-backup run",
);
/// `daily_backup_last_run_success`.
pub const DAILY_BACKUP_LAST_RUN_SUCCESS: MetricName = m(
    "daily_backup_last_run_success",
    "1 when the last daily-backup run succeeded",
);
/// `daily_backup_duration_seconds`.
pub const DAILY_BACKUP_DURATION: MetricName = m(
    "daily_backup_duration_seconds",
    "duration of the last daily-backup run",
);
/// `backup_disk_usage_percent`.
pub const BACKUP_DISK_USAGE_PERCENT: MetricName = m(
    "backup_disk_usage_percent",
    "percent of the backup disk in use",
);
/// `daily_backup_pvc_last_success_timestamp{namespace,pvc}`.
pub const DAILY_BACKUP_PVC_LAST_SUCCESS: MetricName = m(
    "daily_backup_pvc_last_success_timestamp",
    "unix time of the last complete copy of this PVC",
);
/// `daily_backup_pfsense_last_success_timestamp`.
pub const DAILY_BACKUP_PFSENSE_LAST_SUCCESS: MetricName = m(
    "daily_backup_pfsense_last_success_timestamp",
    "unix time of the last daily run that copied the pfSense config",
);
/// `daily_backup_sqlite_copied`.
pub const DAILY_BACKUP_SQLITE_COPIED: MetricName = m(
    "daily_backup_sqlite_copied",
    "SQLite databases copied by the last daily-backup run",
);
/// `daily_backup_sqlite_failed`.
pub const DAILY_BACKUP_SQLITE_FAILED: MetricName = m(
    "daily_backup_sqlite_failed",
    "SQLite databases found by the last daily-backup run that could not be copied (corrupt, truncated)",
);

/// `backup_last_success_timestamp` (jobs `<name>-backup`).
pub const BACKUP_LAST_SUCCESS: MetricName = m(
    "backup_last_success_timestamp",
    "unix time of the last successful backup of this job",
);
/// `backup_last_run_success` (jobs `<name>-backup`).
pub const BACKUP_LAST_RUN_SUCCESS: MetricName = m(
    "backup_last_run_success",
    "1 when the last backup run of this job succeeded",
);

/// `offsite_backup_sync_last_success_timestamp`.
pub const OFFSITE_SYNC_LAST_SUCCESS: MetricName = m(
    "offsite_backup_sync_last_success_timestamp",
    "unix time of the last offsite sync in which every step and tree succeeded",
);
/// `offsite_backup_sync_last_run_success`.
pub const OFFSITE_SYNC_LAST_RUN_SUCCESS: MetricName = m(
    "offsite_backup_sync_last_run_success",
    "1 when the last offsite sync succeeded",
);
/// `offsite_backup_full_sync_last_success_timestamp`.
pub const OFFSITE_FULL_SYNC_LAST_SUCCESS: MetricName = m(
    "offsite_backup_full_sync_last_success_timestamp",
    "unix time of the last offsite sync that made a full pass of every tree",
);
/// `offsite_backup_tree_last_success_timestamp{tree}`.
pub const OFFSITE_TREE_LAST_SUCCESS: MetricName = m(
    "offsite_backup_tree_last_success_timestamp",
    "unix time of the last successful offsite sync of this tree",
);
/// `offsite_tier_last_success_timestamp{repository}`.
pub const OFFSITE_TIER_LAST_SUCCESS: MetricName = m(
    "offsite_tier_last_success_timestamp",
    "unix time of the last run that sent every PVC to this encrypted tier repository",
);
/// `offsite_tier_last_run_success{repository}`.
pub const OFFSITE_TIER_LAST_RUN_SUCCESS: MetricName = m(
    "offsite_tier_last_run_success",
    "1 when the last run sent everything to this encrypted tier repository, 0 when it failed",
);
/// `offsite_tier_bytes_added{repository}`.
pub const OFFSITE_TIER_BYTES_ADDED: MetricName = m(
    "offsite_tier_bytes_added",
    "bytes the last successful tier run added to this repository (after deduplication and compression)",
);
/// `offsite_tier_repository_bytes{repository}`.
pub const OFFSITE_TIER_REPOSITORY_BYTES: MetricName = m(
    "offsite_tier_repository_bytes",
    "bytes this encrypted tier repository holds: its files for a local one; for a remote one restic's raw data, measured after each prune and counted up by what each run adds",
);
/// `nfs_tracker_watches{tree}`.
pub const NFS_TRACKER_WATCHES: MetricName = m(
    "nfs_tracker_watches",
    "inotify watches the change tracker holds for this tree",
);
/// `nfs_tracker_overflows_total{tree}`.
pub const NFS_TRACKER_OVERFLOWS: MetricName = m(
    "nfs_tracker_overflows_total",
    "inotify queue overflows (and watch failures) since the tracker started, per tree",
);
/// `nfs_tracker_full_pass_pending{tree}`.
pub const NFS_TRACKER_FULL_PASS_PENDING: MetricName = m(
    "nfs_tracker_full_pass_pending",
    "1 when the change log of this tree cannot be trusted and the next sync makes a full pass",
);
/// `backup_dump_bytes` (job `<name>-backup`).
pub const BACKUP_DUMP_BYTES: MetricName = m(
    "backup_dump_bytes",
    "bytes the last successful dump command wrote, before compression",
);
/// `backup_dump_compressed_bytes` (job `<name>-backup`).
pub const BACKUP_DUMP_COMPRESSED_BYTES: MetricName = m(
    "backup_dump_compressed_bytes",
    "size of the last successful dump file as stored (gzip)",
);
/// `backup_dump_duration_seconds` (job `<name>-backup`).
pub const BACKUP_DUMP_DURATION: MetricName = m(
    "backup_dump_duration_seconds",
    "duration of the last successful dump: command, compression and read-back",
);
/// `backup_verify_last_success_timestamp` (job `backupctl-verify`).
pub const VERIFY_LAST_SUCCESS: MetricName = m(
    "backup_verify_last_success_timestamp",
    "unix time of the last verify that found every checked backup intact",
);
/// `backup_verify_last_run_success` (job `backupctl-verify`).
pub const VERIFY_LAST_RUN_SUCCESS: MetricName = m(
    "backup_verify_last_run_success",
    "1 when the last verify found no difference",
);
/// `backup_verify_differences` (job `backupctl-verify`).
pub const VERIFY_DIFFERENCES: MetricName = m(
    "backup_verify_differences",
    "differences the last verify found (0 when intact)",
);
/// `backup_verify_damaged_versions` (job `backupctl-verify`).
pub const VERIFY_DAMAGED_VERSIONS: MetricName = m(
    "backup_verify_damaged_versions",
    "complete PVC versions holding files that differ from their record (marked damaged)",
);
/// `backup_restore_drill_last_success_timestamp` (job `backupctl-drill`).
pub const DRILL_LAST_SUCCESS: MetricName = m(
    "backup_restore_drill_last_success_timestamp",
    "unix time of the last restore drill whose restored files all matched their records",
);
/// `backup_restore_drill_last_run_success` (job `backupctl-drill`).
pub const DRILL_LAST_RUN_SUCCESS: MetricName = m(
    "backup_restore_drill_last_run_success",
    "1 when the last restore drill succeeded",
);
/// `backup_notify_failures{kind}` (in each job's group).
pub const NOTIFY_FAILURES: MetricName = m(
    "backup_notify_failures",
    "notifications of the last run that could not be delivered (after their retries), per kind",
);
/// `backup_restore_drill_bytes_per_second` (job `backupctl-drill`).
pub const DRILL_RATE: MetricName = m(
    "backup_restore_drill_bytes_per_second",
    "restore rate the last drill measured",
);

/// Every fixed metric name, for the insta snapshot, the alert rules and the dashboard check.
pub const ALL: &[MetricName] = &[
    LVM_SNAPSHOT_LAST_SUCCESS,
    LVM_SNAPSHOT_LAST_RUN_SUCCESS,
    LVM_SNAPSHOT_COUNT,
    LVM_THIN_POOL_FREE_PERCENT,
    DAILY_BACKUP_LAST_SUCCESS,
    DAILY_BACKUP_LAST_RUN_SUCCESS,
    DAILY_BACKUP_DURATION,
    BACKUP_DISK_USAGE_PERCENT,
    DAILY_BACKUP_PVC_LAST_SUCCESS,
    DAILY_BACKUP_SQLITE_COPIED,
    DAILY_BACKUP_SQLITE_FAILED,
    DAILY_BACKUP_PFSENSE_LAST_SUCCESS,
    BACKUP_LAST_SUCCESS,
    BACKUP_LAST_RUN_SUCCESS,
    OFFSITE_SYNC_LAST_SUCCESS,
    OFFSITE_SYNC_LAST_RUN_SUCCESS,
    OFFSITE_FULL_SYNC_LAST_SUCCESS,
    OFFSITE_TREE_LAST_SUCCESS,
    OFFSITE_TIER_LAST_SUCCESS,
    OFFSITE_TIER_LAST_RUN_SUCCESS,
    OFFSITE_TIER_BYTES_ADDED,
    OFFSITE_TIER_REPOSITORY_BYTES,
    NFS_TRACKER_WATCHES,
    NFS_TRACKER_OVERFLOWS,
    NFS_TRACKER_FULL_PASS_PENDING,
    BACKUP_DUMP_BYTES,
    BACKUP_DUMP_COMPRESSED_BYTES,
    BACKUP_DUMP_DURATION,
    VERIFY_LAST_SUCCESS,
    VERIFY_LAST_RUN_SUCCESS,
    VERIFY_DIFFERENCES,
    VERIFY_DAMAGED_VERSIONS,
    DRILL_LAST_SUCCESS,
    DRILL_LAST_RUN_SUCCESS,
    DRILL_RATE,
    NOTIFY_FAILURES,
];

/// The pair every job publishes: whether its last run succeeded, and when it last did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMetrics {
    /// The Pushgateway job (and textfile name).
    pub job: String,
    /// `*_last_run_success`: 1 or 0 after every run, failed ones included.
    pub run_success: MetricName,
    /// `*_last_success_timestamp`: only ever written by a successful run.
    pub last_success: Option<MetricName>,
}

impl JobMetrics {
    /// `lvm-pvc-snapshot`.
    pub fn lvm_snapshot() -> Self {
        Self {
            job: JOB_LVM_SNAPSHOT.to_owned(),
            run_success: LVM_SNAPSHOT_LAST_RUN_SUCCESS,
            last_success: Some(LVM_SNAPSHOT_LAST_SUCCESS),
        }
    }

    /// `daily-backup`.
    pub fn daily_backup() -> Self {
        Self {
            job: JOB_DAILY_BACKUP.to_owned(),
            run_success: DAILY_BACKUP_LAST_RUN_SUCCESS,
            last_success: Some(DAILY_BACKUP_LAST_SUCCESS),
        }
    }

    /// `offsite-sync-backup`.
    pub fn offsite_sync() -> Self {
        Self {
            job: JOB_OFFSITE_SYNC.to_owned(),
            run_success: OFFSITE_SYNC_LAST_RUN_SUCCESS,
            last_success: Some(OFFSITE_SYNC_LAST_SUCCESS),
        }
    }

    /// `<name>-backup` (sqlite-backup, backup-dump).
    pub fn backup(name: &str) -> Self {
        Self {
            job: backup_job(name),
            run_success: BACKUP_LAST_RUN_SUCCESS,
            last_success: Some(BACKUP_LAST_SUCCESS),
        }
    }

    /// `backupctl-verify`.
    pub fn verify() -> Self {
        Self {
            job: JOB_VERIFY.to_owned(),
            run_success: VERIFY_LAST_RUN_SUCCESS,
            last_success: Some(VERIFY_LAST_SUCCESS),
        }
    }

    /// `backupctl-drill`.
    pub fn drill() -> Self {
        Self {
            job: JOB_DRILL.to_owned(),
            run_success: DRILL_LAST_RUN_SUCCESS,
            last_success: Some(DRILL_LAST_SUCCESS),
        }
    }

    /// `backupctl-verify-offsite`: the verify metrics of `verify --offsite`, under a job of
    /// their own.
    pub fn verify_offsite() -> Self {
        Self {
            job: JOB_VERIFY_OFFSITE.to_owned(),
            ..Self::verify()
        }
    }

    /// `backupctl-dump-drill`: the drill metrics of `drill --dumps-only`, under a job of their
    /// own (the CronJob pushes them; the host's drill writes its own).
    pub fn dump_drill() -> Self {
        Self {
            job: JOB_DUMP_DRILL.to_owned(),
            ..Self::drill()
        }
    }

    /// `<name>-integrity-check`: its one gauge says pass or fail; there is no timestamp.
    pub fn integrity_check(name: &str) -> Self {
        Self {
            job: integrity_job(name),
            run_success: integrity_ok(name),
            last_success: None,
        }
    }

    /// The metrics of a run that ended: `run_success` 1 or 0, and the timestamp only when it
    /// succeeded (a failed run must never move the last success).
    pub fn outcome(&self, ok: bool, now_unix: i64) -> Vec<Metric> {
        let mut out = vec![self.run_success.gauge(f64::from(u8::from(ok)))];
        if let (true, Some(ts)) = (ok, &self.last_success) {
            out.push(ts.gauge(now_unix as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for n in ALL {
            assert!(
                n.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                n.name
            );
            assert!(seen.insert(n.name.clone()), "{} twice", n.name);
            assert!(!n.help.is_empty());
        }
        assert_eq!(
            integrity_ok("vault-warden").name,
            "vault_warden_sqlite_integrity_ok"
        );
    }

    #[test]
    fn a_failed_run_sends_no_timestamp() {
        let j = JobMetrics::daily_backup();
        assert_eq!(j.outcome(false, 5).len(), 1);
        assert_eq!(
            j.outcome(true, 5)[1].name,
            "daily_backup_last_success_timestamp"
        );
    }
}
