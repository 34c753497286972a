//! Prometheus alerting rules for every job, generated from the metric names: the seed's alert
//! table (with its "weekly" job renamed to daily), plus a never-ran alert per job, a per-PVC
//! stale alert, verify and drill, and the change tracker. The rules select by the `job` label,
//! which both sinks write (textfile series carry it; scrape node_exporter and the Pushgateway
//! with `honor_labels: true`).

use serde::Serialize;

use crate::metric_names::{self as names, MetricName};

/// An application job (`backup-dump` or `sqlite-backup backup`) the rules watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppJob {
    /// Its `--name` (the metric job is `<name>-backup`).
    pub name: String,
    /// The alert name prefix (`PostgreSQL` gives `PostgreSQLBackupStale`).
    pub title: String,
    /// Hours after its last success it is stale (its schedule's period, and some).
    pub stale_hours: u32,
}

impl AppJob {
    fn new(name: &str, title: &str, stale_hours: u32) -> Self {
        Self {
            name: name.to_owned(),
            title: title.to_owned(),
            stale_hours,
        }
    }
}

/// The seed's six application jobs, with thresholds from their schedules: daily dumps 36 h,
/// weekly ones 8 days, Vaultwarden's 6-hourly copy 13 h (two missed runs).
pub fn default_app_jobs() -> Vec<AppJob> {
    vec![
        AppJob::new("postgresql", "PostgreSQL", 36),
        AppJob::new("mysql", "MySQL", 36),
        AppJob::new("etcd", "Etcd", 8 * 24),
        AppJob::new("vault", "Vault", 8 * 24),
        AppJob::new("vaultwarden", "Vaultwarden", 13),
        AppJob::new("redis", "Redis", 8 * 24),
    ]
}

/// What a rule tests; each kind has a series that fires it and one that does not (the tests of
/// the rules are generated from this).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AlertKind {
    /// The newest `metric` of `job` (a unix time) is older than `hours`.
    Stale {
        /// The timestamp series.
        metric: String,
        /// Its job.
        job: String,
        /// Hours.
        hours: u32,
    },
    /// Each series of `metric` (one per PVC) older than `hours`.
    StaleEach {
        /// The timestamp series.
        metric: String,
        /// Its job.
        job: String,
        /// Hours.
        hours: u32,
        /// The labels that tell the series apart.
        by: Vec<String>,
    },
    /// `metric` of `job` is 0 (the last run failed).
    Zero {
        /// The 0-or-1 series.
        metric: String,
        /// Its job.
        job: String,
    },
    /// No `metric` of `job` at all: it never ran (or never published).
    Absent {
        /// The series it publishes on success.
        metric: String,
        /// Its job.
        job: String,
    },
    /// `metric` below `threshold`.
    Below {
        /// The series.
        metric: String,
        /// Its job.
        job: String,
        /// The limit.
        threshold: f64,
    },
    /// `metric` above `threshold`.
    Above {
        /// The series.
        metric: String,
        /// Its job.
        job: String,
        /// The limit.
        threshold: f64,
    },
    /// The counter `metric` grew in the last 10 minutes.
    Increased {
        /// The counter.
        metric: String,
        /// Its job.
        job: String,
    },
}

/// One alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    /// `alert:`.
    pub name: String,
    /// What it tests.
    pub kind: AlertKind,
    /// `for:` in minutes.
    pub for_minutes: u32,
    /// `severity` label: `warning` or `critical`.
    pub severity: &'static str,
    /// `summary` annotation (no templating: the same text in every alert).
    pub summary: String,
}

fn sel(metric: &str, job: &str) -> String {
    format!("{metric}{{job=\"{job}\"}}")
}

impl AlertRule {
    /// The PromQL expression.
    pub fn expr(&self) -> String {
        match &self.kind {
            AlertKind::Stale { metric, job, hours } => format!(
                "time() - max by (job) ({}) > {}",
                sel(metric, job),
                u64::from(*hours) * 3600
            ),
            AlertKind::StaleEach {
                metric, job, hours, ..
            } => format!(
                "time() - {} > {}",
                sel(metric, job),
                u64::from(*hours) * 3600
            ),
            AlertKind::Zero { metric, job } => format!("{} == 0", sel(metric, job)),
            AlertKind::Absent { metric, job } => format!("absent({})", sel(metric, job)),
            AlertKind::Below {
                metric,
                job,
                threshold,
            } => format!("{} < {threshold}", sel(metric, job)),
            AlertKind::Above {
                metric,
                job,
                threshold,
            } => format!("{} > {threshold}", sel(metric, job)),
            AlertKind::Increased { metric, job } => {
                format!("increase({}[10m]) > 0", sel(metric, job))
            }
        }
    }
}

fn rule(
    name: String,
    kind: AlertKind,
    for_minutes: u32,
    severity: &'static str,
    summary: String,
) -> AlertRule {
    AlertRule {
        name,
        kind,
        for_minutes,
        severity,
        summary,
    }
}

fn stale(name: &str, metric: &MetricName, job: &str, hours: u32, what: &str) -> AlertRule {
    let age = if hours.is_multiple_of(24) && hours >= 48 {
        format!("{} days", hours / 24)
    } else {
        format!("{hours} h")
    };
    rule(
        name.to_owned(),
        AlertKind::Stale {
            metric: metric.name.to_string(),
            job: job.to_owned(),
            hours,
        },
        5,
        "critical",
        format!("{what}: no success in more than {age}"),
    )
}

fn failing(name: &str, metric: &MetricName, job: &str, what: &str) -> AlertRule {
    rule(
        name.to_owned(),
        AlertKind::Zero {
            metric: metric.name.to_string(),
            job: job.to_owned(),
        },
        5,
        "warning",
        format!("{what}: the last run failed"),
    )
}

fn never(name: &str, metric: &MetricName, job: &str, what: &str) -> AlertRule {
    rule(
        name.to_owned(),
        AlertKind::Absent {
            metric: metric.name.to_string(),
            job: job.to_owned(),
        },
        60,
        "warning",
        format!("{what}: never succeeded (no {} series)", metric.name),
    )
}

/// The three rules of a job: stale (no success for `hours`), failing (its last run failed),
/// never ran (no success series at all).
fn triple(
    r: &mut Vec<AlertRule>,
    prefix: &str,
    [success, run]: [&MetricName; 2],
    job: &str,
    hours: u32,
    what: &str,
) {
    r.push(stale(&format!("{prefix}Stale"), success, job, hours, what));
    r.push(failing(&format!("{prefix}Failing"), run, job, what));
    r.push(never(&format!("{prefix}NeverRan"), success, job, what));
}

/// Every rule, for `jobs` (the application jobs; [`default_app_jobs`] without a config).
pub fn alert_rules(jobs: &[AppJob]) -> Vec<AlertRule> {
    use names::*;
    let mut r = Vec::new();
    for j in jobs {
        let job = backup_job(&j.name);
        let what = format!("{} backup ({job})", j.title);
        triple(
            &mut r,
            &format!("{}Backup", j.title),
            [&BACKUP_LAST_SUCCESS, &BACKUP_LAST_RUN_SUCCESS],
            &job,
            j.stale_hours,
            &what,
        );
    }
    r.extend(host_rules());
    r
}

/// The rules of the host side and its checks: integrity, snapshots, the daily copy, the disk,
/// offsite, verify, drill, the tracker.
fn host_rules() -> Vec<AlertRule> {
    use names::*;
    let mut r = Vec::new();
    let vw = integrity_ok("vaultwarden");
    r.push(rule(
        "VaultwardenIntegrityFail".to_owned(),
        AlertKind::Zero {
            metric: vw.name.to_string(),
            job: integrity_job("vaultwarden"),
        },
        0,
        "critical",
        "Vaultwarden's live database failed PRAGMA integrity_check".to_owned(),
    ));
    let lvm = "LVM snapshots (lvm-pvc-snapshot)";
    triple(
        &mut r,
        "LVMSnapshot",
        [&LVM_SNAPSHOT_LAST_SUCCESS, &LVM_SNAPSHOT_LAST_RUN_SUCCESS],
        JOB_LVM_SNAPSHOT,
        24,
        lvm,
    );
    r.push(rule(
        "LVMThinPoolLow".to_owned(),
        AlertKind::Below {
            metric: LVM_THIN_POOL_FREE_PERCENT.name.to_string(),
            job: JOB_LVM_SNAPSHOT.to_owned(),
            threshold: 15.0,
        },
        5,
        "critical",
        "the thin pool has less than 15 % free: snapshots are skipped, volumes may go read-only"
            .to_owned(),
    ));
    let daily = "daily file backup (daily-backup)";
    triple(
        &mut r,
        "DailyBackup",
        [&DAILY_BACKUP_LAST_SUCCESS, &DAILY_BACKUP_LAST_RUN_SUCCESS],
        JOB_DAILY_BACKUP,
        36,
        daily,
    );
    r.push(rule(
        "DailyBackupPvcStale".to_owned(),
        AlertKind::StaleEach {
            metric: DAILY_BACKUP_PVC_LAST_SUCCESS.name.to_string(),
            job: JOB_DAILY_BACKUP.to_owned(),
            hours: 36,
            by: vec!["namespace".to_owned(), "pvc".to_owned()],
        },
        5,
        "critical",
        "a PVC has no complete copy newer than 36 h (the others may be fine)".to_owned(),
    ));
    r.push(stale(
        "PfsenseBackupStale",
        &DAILY_BACKUP_PFSENSE_LAST_SUCCESS,
        JOB_DAILY_BACKUP,
        36,
        "pfSense config copy (daily-backup)",
    ));
    r.push(rule(
        "BackupDiskFull".to_owned(),
        AlertKind::Above {
            metric: BACKUP_DISK_USAGE_PERCENT.name.to_string(),
            job: JOB_DAILY_BACKUP.to_owned(),
            threshold: 85.0,
        },
        5,
        "critical",
        "the backup disk is more than 85 % full".to_owned(),
    ));
    r.extend(offsite_and_check_rules());
    r
}

/// The rules of what runs after the copy: offsite, verify, drill, the change tracker.
fn offsite_and_check_rules() -> Vec<AlertRule> {
    use names::*;
    let mut r = Vec::new();
    let off = "offsite sync (offsite-sync-backup)";
    triple(
        &mut r,
        "OffsiteBackupSync",
        [&OFFSITE_SYNC_LAST_SUCCESS, &OFFSITE_SYNC_LAST_RUN_SUCCESS],
        JOB_OFFSITE_SYNC,
        8 * 24,
        off,
    );
    // per repository: a failing tier fails the offsite run (the rules above); these name it
    let tier = "encrypted offsite tier (offsite-sync-backup, [[offsite.repository]])";
    r.push(stale(
        "OffsiteTierStale",
        &OFFSITE_TIER_LAST_SUCCESS,
        JOB_OFFSITE_SYNC,
        8 * 24,
        tier,
    ));
    r.push(failing(
        "OffsiteTierFailing",
        &OFFSITE_TIER_LAST_RUN_SUCCESS,
        JOB_OFFSITE_SYNC,
        tier,
    ));
    // the checks that read the copies back: a job's stale/failing/never rules each
    let checks: [(&str, [&MetricName; 2], &str, u32, &str); 4] = [
        (
            "BackupVerify",
            [&VERIFY_LAST_SUCCESS, &VERIFY_LAST_RUN_SUCCESS],
            JOB_VERIFY,
            8 * 24,
            "backup verify (backupctl verify)",
        ),
        (
            "OffsiteVerify",
            [&VERIFY_LAST_SUCCESS, &VERIFY_LAST_RUN_SUCCESS],
            JOB_VERIFY_OFFSITE,
            35 * 24,
            "offsite copy read back (backupctl verify --offsite, monthly)",
        ),
        (
            "RestoreDrill",
            [&DRILL_LAST_SUCCESS, &DRILL_LAST_RUN_SUCCESS],
            JOB_DRILL,
            8 * 24,
            "restore drill (backupctl drill)",
        ),
        (
            "DumpRestoreDrill",
            [&DRILL_LAST_SUCCESS, &DRILL_LAST_RUN_SUCCESS],
            JOB_DUMP_DRILL,
            8 * 24,
            "dump restore drill (backupctl drill --dumps-only, the dump-drill CronJob)",
        ),
    ];
    for (name, metrics, job, hours, what) in checks {
        triple(&mut r, name, metrics, job, hours, what);
    }
    r.extend(tracker_rules());
    r
}

/// The change tracker's rules: a full pass pending for a day, events lost.
fn tracker_rules() -> Vec<AlertRule> {
    use names::*;
    vec![
        rule(
            "NfsTrackerFullPassPending".to_owned(),
            AlertKind::Above {
                metric: NFS_TRACKER_FULL_PASS_PENDING.name.to_string(),
                job: JOB_NFS_TRACKER.to_owned(),
                threshold: 0.0,
            },
            26 * 60,
            "warning",
            "a tree's change log cannot be trusted for more than a day: the offsite sync has not made its full pass"
                .to_owned(),
        ),
        rule(
            "NfsTrackerOverflow".to_owned(),
            AlertKind::Increased {
                metric: NFS_TRACKER_OVERFLOWS.name.to_string(),
                job: JOB_NFS_TRACKER.to_owned(),
            },
            0,
            "warning",
            "the change tracker lost inotify events (queue overflow or watch limit): the next offsite sync of that tree is a full pass"
                .to_owned(),
        ),
    ]
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rules as a Prometheus rule file.
pub fn render_alert_rules(rules: &[AlertRule]) -> String {
    let mut out = String::from(
        "# Generated by `backupctl alerts`: do not edit, regenerate (a test compares them).\n\
         # Scrape the Pushgateway and node_exporter's textfile collector with honor_labels: true:\n\
         # every series carries its own job label.\ngroups:\n  - name: homelab-backup\n    rules:\n",
    );
    for r in rules {
        out.push_str(&format!("      - alert: {}\n", r.name));
        out.push_str(&format!("        expr: {}\n", yaml_quote(&r.expr())));
        if r.for_minutes > 0 {
            out.push_str(&format!("        for: {}m\n", r.for_minutes));
        }
        out.push_str(&format!(
            "        labels:\n          severity: {}\n        annotations:\n          summary: {}\n",
            r.severity,
            yaml_quote(&r.summary)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_a_known_metric_and_names_are_unique() {
        let rules = alert_rules(&default_app_jobs());
        let mut seen = std::collections::BTreeSet::new();
        for r in &rules {
            assert!(seen.insert(r.name.clone()), "{} twice", r.name);
            let metric = match &r.kind {
                AlertKind::Stale { metric, .. }
                | AlertKind::StaleEach { metric, .. }
                | AlertKind::Zero { metric, .. }
                | AlertKind::Absent { metric, .. }
                | AlertKind::Below { metric, .. }
                | AlertKind::Above { metric, .. }
                | AlertKind::Increased { metric, .. } => metric,
            };
            assert!(
                names::ALL.iter().any(|n| n.name == metric.as_str())
                    || metric.ends_with("_sqlite_integrity_ok"),
                "{}: {metric}",
                r.name
            );
        }
        for seed in [
            "PostgreSQLBackupStale",
            "MySQLBackupStale",
            "EtcdBackupStale",
            "VaultBackupStale",
            "VaultwardenBackupStale",
            "RedisBackupStale",
            "PfsenseBackupStale",
            "OffsiteBackupSyncStale",
            "VaultwardenIntegrityFail",
            "LVMSnapshotStale",
            "LVMSnapshotFailing",
            "LVMThinPoolLow",
            "DailyBackupStale",
            "DailyBackupFailing",
            "BackupDiskFull",
        ] {
            assert!(seen.contains(seed), "the seed's {seed} is missing");
        }
    }
}
