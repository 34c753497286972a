//! `sqlite-backup`: the CronJob for Vaultwarden (and any other SQLite application).
//!
//! `backup`: integrity check of the live database (a failure aborts, and the alert fires on the
//! metric), a consistent copy through SQLite's online backup API, a check of the copy, the extra
//! files and folders beside it, all in one dated folder written under a temp name and renamed;
//! then rotation that never goes below `min-keep`. `check`: the integrity check alone, as a metric.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_core::{plan_dumps, removals, DumpInfo, DumpPolicy, Metric, MetricGroup, MetricsSink};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};

/// One `backup` run's inputs.
#[derive(Debug, Clone)]
pub struct SqliteJob {
    /// The application (`vaultwarden`): folder prefix and metric job `<name>-backup`.
    pub name: String,
    /// The live database.
    pub db: PathBuf,
    /// Where the dated folders go.
    pub dest: Utf8PathBuf,
    /// Rotation.
    pub policy: DumpPolicy,
    /// Files and folders copied beside the database (`rsa_key.pem`, `attachments`, ...).
    pub extras: Vec<PathBuf>,
    /// How long the online backup may keep retrying under writers.
    pub busy_bound: Duration,
}

/// What a `backup` run did.
#[derive(Debug, Clone, Serialize)]
pub struct SqliteJobReport {
    /// The dated folder written.
    pub folder: Utf8PathBuf,
    /// Bytes of the database copy.
    pub db_bytes: u64,
    /// Extras copied.
    pub extras: Vec<String>,
    /// Extras that did not exist (an application that never used attachments has none).
    pub missing_extras: Vec<String>,
    /// Folders removed by rotation.
    pub removed: Vec<String>,
    /// Warnings (metrics not published).
    pub warnings: Vec<String>,
}

const STAMP: &str = "%Y%m%d-%H%M%S";

/// The dated folder name of a backup taken at `at`.
pub fn folder_name(name: &str, at: DateTime<Utc>) -> String {
    format!("{name}-{}", at.format(STAMP))
}

/// When a folder named by [`folder_name`] for `name` was taken.
pub fn parse_folder_name(name: &str, folder: &str) -> Option<DateTime<Utc>> {
    let stamp = folder.strip_prefix(name)?.strip_prefix('-')?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// The metric name of the integrity gauge: `<name>_sqlite_integrity_ok`, the name made a valid
/// Prometheus identifier.
pub fn integrity_metric(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{clean}_sqlite_integrity_ok")
}

fn job_metrics(name: &str, ok: bool, now: DateTime<Utc>) -> MetricGroup {
    let mut m = vec![Metric::gauge(
        "backup_last_run_success",
        "1 when the last backup run succeeded",
        f64::from(u8::from(ok)),
    )];
    if ok {
        m.push(Metric::gauge(
            "backup_last_success_timestamp",
            "unix time of the last successful backup",
            now.timestamp() as f64,
        ));
    }
    MetricGroup::new(&format!("{name}-backup"), m)
}

/// Runs `backup`. Metrics are published either way: success, or failure (without touching the
/// last success timestamp).
///
/// # Errors
/// When the live database fails its check, the copy fails, or the folder cannot be written.
pub fn run_backup(
    job: &SqliteJob,
    now: DateTime<Utc>,
    metrics: &dyn MetricsSink,
) -> Result<SqliteJobReport> {
    let result = backup(job, now);
    let publish = metrics.publish(&job_metrics(&job.name, result.is_ok(), now));
    let mut report = result?;
    if let Err(e) = publish {
        report.warnings.push(format!("metrics not published: {e}"));
    }
    Ok(report)
}

fn backup(job: &SqliteJob, now: DateTime<Utc>) -> Result<SqliteJobReport> {
    backup_sqlite::check_live(&job.db).map_err(|e| {
        Error::Refused(format!(
            "live database failed its check, no backup taken: {e}"
        ))
    })?;
    std::fs::create_dir_all(&job.dest).map_err(|e| Error::io("create folder", &job.dest, e))?;
    let folder_name = folder_name(&job.name, now);
    let folder = job.dest.join(&folder_name);
    if folder.exists() {
        return Err(Error::Refused(format!(
            "{folder} exists already: refusing to overwrite a backup"
        )));
    }
    let partial = job.dest.join(format!(".{folder_name}.partial"));
    crate::store::remove_tree(&partial)?;
    let built = (|| -> Result<SqliteJobReport> {
        std::fs::create_dir_all(&partial).map_err(|e| Error::io("create folder", &partial, e))?;
        let db_name = job
            .db
            .file_name()
            .ok_or_else(|| Error::Usage(format!("--db {} has no file name", job.db.display())))?;
        let db_copy = partial.as_std_path().join(db_name);
        backup_sqlite::backup_live(&job.db, &db_copy, job.busy_bound)
            .map_err(|e| Error::Refused(e.to_string()))?;
        let db_bytes = std::fs::metadata(&db_copy)
            .map_err(|e| Error::io("stat", partial.clone(), e))?
            .len();
        let mut extras = Vec::new();
        let mut missing_extras = Vec::new();
        for extra in &job.extras {
            let shown = extra.display().to_string();
            if std::fs::symlink_metadata(extra).is_err() {
                missing_extras.push(shown);
                continue;
            }
            let name = extra
                .file_name()
                .ok_or_else(|| Error::Usage(format!("--extra {shown} has no file name")))?;
            copy_tree(extra, &partial.as_std_path().join(name))?;
            extras.push(shown);
        }
        std::fs::File::open(&partial)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", partial.clone(), e))?;
        Ok(SqliteJobReport {
            folder: folder.clone(),
            db_bytes,
            extras,
            missing_extras,
            removed: Vec::new(),
            warnings: Vec::new(),
        })
    })();
    let mut report = match built {
        Ok(r) => r,
        Err(e) => {
            let _ = crate::store::remove_tree(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &folder)
        .map_err(|e| Error::io("rename into place", folder.clone(), e))?;
    std::fs::File::open(&job.dest)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", job.dest.clone(), e))?;
    report.removed = rotate(&job.name, &job.dest, job.policy, now)?;
    Ok(report)
}

/// Applies the dump planner to the dated folders of `name` in `dest`; returns what it removed.
///
/// # Errors
/// When the folder cannot be listed or a removal fails.
pub fn rotate(
    name: &str,
    dest: &Utf8Path,
    policy: DumpPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let dumps: Vec<DumpInfo> = crate::store::subdirs(dest)?
        .into_iter()
        .filter_map(|f| parse_folder_name(name, &f).map(|created| DumpInfo { name: f, created }))
        .collect();
    let plan = plan_dumps(policy, now, &dumps)?;
    let mut removed = Vec::new();
    for d in removals(&plan) {
        crate::store::remove_tree(&dest.join(&d.name))?;
        removed.push(d.name.clone());
    }
    Ok(removed)
}

/// Copies a file, or a folder recursively, keeping permissions and symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from)
        .map_err(|e| Error::io("stat", from.display().to_string(), e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(from)
            .map_err(|e| Error::io("read link", from.display().to_string(), e))?;
        std::os::unix::fs::symlink(target, to)
            .map_err(|e| Error::io("create link", to.display().to_string(), e))
    } else if ft.is_dir() {
        std::fs::create_dir(to)
            .map_err(|e| Error::io("create folder", to.display().to_string(), e))?;
        for entry in
            std::fs::read_dir(from).map_err(|e| Error::io("list", from.display().to_string(), e))?
        {
            let entry = entry.map_err(|e| Error::io("list", from.display().to_string(), e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())
            .map_err(|e| Error::io("chmod", to.display().to_string(), e))
    } else {
        std::fs::copy(from, to).map_err(|e| Error::io("copy", from.display().to_string(), e))?;
        std::fs::File::open(to)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("fsync", to.display().to_string(), e))
    }
}

/// Runs `check`: the integrity check of the live database as `<name>_sqlite_integrity_ok` for job
/// `<name>-integrity-check`. Returns whether it passed, with SQLite's findings when not.
///
/// # Errors
/// Only when the metric cannot be published; a failed check is `Ok((false, why))`.
pub fn run_check(
    name: &str,
    db: &Path,
    metrics: &dyn MetricsSink,
) -> Result<(bool, Option<String>)> {
    let result = backup_sqlite::check_live(db);
    let ok = result.is_ok();
    metrics.publish(&MetricGroup::new(
        &format!("{name}-integrity-check"),
        vec![Metric::gauge(
            &integrity_metric(name),
            "1 when PRAGMA integrity_check of the live database says ok",
            f64::from(u8::from(ok)),
        )],
    ))?;
    Ok((ok, result.err().map(|e| e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-01-05T06:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            folder_name("vaultwarden", at),
            "vaultwarden-20260105-060000"
        );
        assert_eq!(
            parse_folder_name("vaultwarden", "vaultwarden-20260105-060000"),
            Some(at)
        );
        assert_eq!(
            parse_folder_name("vaultwarden", "vault-20260105-060000"),
            None
        );
        assert_eq!(
            parse_folder_name("vaultwarden", ".vaultwarden-20260105-060000.partial"),
            None
        );
        assert_eq!(
            integrity_metric("vault-warden"),
            "vault_warden_sqlite_integrity_ok"
        );
    }
}
