//! `sqlite-backup`: the CronJob for Vaultwarden (and any other SQLite application).
//!
//! `backup`: integrity check of the live database (a failure aborts, and the alert fires on the
//! metric), a consistent copy through SQLite's online backup API, a check of the copy, the extra
//! files and folders beside it, all in one dated folder written under a temp name and renamed;
//! then rotation that never goes below `min-keep`. `check`: the integrity check alone, as a metric.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_core::metric_names::JobMetrics;
use backup_core::{dated_folder_name, plan_dated_rotation, removals, DumpPolicy, MetricGroup};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_run::Outcome;

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
    /// Folders removed by rotation (or that a dry run would remove).
    pub removed: Vec<String>,
    /// `--dry-run`: checked and planned, nothing written.
    pub dry_run: bool,
    /// The job's name, for the metrics.
    #[serde(skip)]
    name: String,
    #[serde(skip)]
    now_unix: i64,
}

impl Outcome for SqliteJobReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = format!(
            "sqlite-backup: {} -> {} ({}), {} extras{}",
            if self.dry_run { "would copy" } else { "copied" },
            self.folder,
            backup_host::human::bytes(self.db_bytes),
            self.extras.len(),
            if self.removed.is_empty() {
                String::new()
            } else {
                format!(", rotated out {}", self.removed.join(", "))
            }
        );
        for m in &self.missing_extras {
            out.push_str(&format!("\n  note: extra {m} does not exist, skipped"));
        }
        out
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = JobMetrics::backup(&self.name);
        vec![MetricGroup::new(&job.job, job.outcome(true, self.now_unix))]
    }
}

/// Runs `backup`: the live database is checked (a failure aborts: no backup is taken), then,
/// unless `dry_run`, copied with its extras into a dated folder, and old folders rotated out.
///
/// # Errors
/// When the live database fails its check, the copy fails, or the folder cannot be written.
pub fn run_backup(job: &SqliteJob, now: DateTime<Utc>, dry_run: bool) -> Result<SqliteJobReport> {
    backup_sqlite::check_live(&job.db).map_err(Error::LiveCheck)?;
    let folder = job.dest.join(dated_folder_name(&job.name, now));
    if folder.exists() {
        return Err(Error::Refused(format!(
            "{folder} exists already: refusing to overwrite a backup"
        )));
    }
    if dry_run {
        let mut existing = backup_host::fsutil::subdirs(&job.dest)?;
        existing.push(dated_folder_name(&job.name, now));
        let plan = plan_dated_rotation(&job.name, &existing, job.policy, now)?;
        return Ok(SqliteJobReport {
            folder,
            db_bytes: std::fs::metadata(&job.db).map(|m| m.len()).unwrap_or(0),
            extras: job.extras.iter().map(|e| e.display().to_string()).collect(),
            missing_extras: Vec::new(),
            removed: removals(&plan).map(|d| d.name.clone()).collect(),
            dry_run: true,
            name: job.name.clone(),
            now_unix: now.timestamp(),
        });
    }
    backup(job, now)
}

fn backup(job: &SqliteJob, now: DateTime<Utc>) -> Result<SqliteJobReport> {
    std::fs::create_dir_all(&job.dest).map_err(|e| Error::io("create folder", &job.dest, e))?;
    let folder_name = dated_folder_name(&job.name, now);
    let folder = job.dest.join(&folder_name);
    let partial = job.dest.join(format!(".{folder_name}.partial"));
    backup_host::fsutil::remove_tree(&partial)?;
    let built = (|| -> Result<SqliteJobReport> {
        std::fs::create_dir_all(&partial).map_err(|e| Error::io("create folder", &partial, e))?;
        let db_name = job
            .db
            .file_name()
            .ok_or_else(|| Error::Usage(format!("--db {} has no file name", job.db.display())))?;
        let db_copy = partial.as_std_path().join(db_name);
        backup_sqlite::backup_live(&job.db, &db_copy, job.busy_bound)?;
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
            dry_run: false,
            name: job.name.clone(),
            now_unix: now.timestamp(),
        })
    })();
    let mut report = match built {
        Ok(r) => r,
        Err(e) => {
            let _ = backup_host::fsutil::remove_tree(&partial);
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

/// Applies the dump policy to the dated folders of `name` in `dest`; returns what it removed.
///
/// # Errors
/// When the folder cannot be listed or a removal fails.
pub fn rotate(
    name: &str,
    dest: &Utf8Path,
    policy: DumpPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let plan = plan_dated_rotation(name, &backup_host::fsutil::subdirs(dest)?, policy, now)?;
    let mut removed = Vec::new();
    for d in removals(&plan) {
        backup_host::fsutil::remove_tree(&dest.join(&d.name))?;
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

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrityOutcome {
    /// The live database.
    pub db: String,
    /// Whether `PRAGMA integrity_check` said ok.
    pub ok: bool,
    /// SQLite's findings when not (the first few and a count).
    pub problems: Option<String>,
    #[serde(skip)]
    name: String,
}

/// Runs `check`: the integrity check of the live database, published as
/// `<name>_sqlite_integrity_ok` for job `<name>-integrity-check`.
pub fn run_check(name: &str, db: &Path) -> IntegrityOutcome {
    let result = backup_sqlite::check_live(db);
    IntegrityOutcome {
        db: db.display().to_string(),
        ok: result.is_ok(),
        problems: result.err().map(|e| e.to_string()),
        name: name.to_owned(),
    }
}

impl Outcome for IntegrityOutcome {
    fn exit(&self) -> Exit {
        if self.ok {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        if self.ok {
            format!("sqlite-backup: {} passed PRAGMA integrity_check", self.db)
        } else {
            format!(
                "sqlite-backup: INTEGRITY CHECK FAILED: {}",
                self.problems.as_deref().unwrap_or_default()
            )
        }
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = JobMetrics::integrity_check(&self.name);
        vec![MetricGroup::new(&job.job, job.outcome(self.ok, 0))]
    }
}

/// What `find` found.
#[derive(Debug, Clone, Serialize)]
pub struct FindOutcome {
    /// Databases, relative to the folder.
    pub databases: Vec<String>,
    /// Files with the SQLite magic that are no usable database, with why.
    pub damaged: Vec<(String, String)>,
    /// Paths that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// Regular files looked at.
    pub files_seen: u64,
}

/// `find`: the databases daily-backup would copy from a folder tree.
pub fn run_find(dir: &Path) -> FindOutcome {
    let found = backup_sqlite::find_databases(dir);
    let lossy = |v: Vec<(std::path::PathBuf, String)>| {
        v.into_iter()
            .map(|(p, why)| (p.to_string_lossy().into_owned(), why))
            .collect()
    };
    FindOutcome {
        databases: found
            .databases
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        damaged: lossy(found.damaged),
        unreadable: lossy(found.unreadable),
        files_seen: found.files_seen,
    }
}

impl Outcome for FindOutcome {
    fn exit(&self) -> Exit {
        if self.damaged.is_empty() && self.unreadable.is_empty() {
            Exit::Success
        } else {
            Exit::Partial
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        for db in &self.databases {
            out.push_str(&format!("{db}\n"));
        }
        for (p, why) in &self.damaged {
            out.push_str(&format!("damaged database {p}: {why}\n"));
        }
        for (p, why) in &self.unreadable {
            out.push_str(&format!("cannot read {p}: {why}\n"));
        }
        out.push_str(&format!(
            "{} among {}",
            backup_host::human::plural(self.databases.len() as u64, "database"),
            backup_host::human::plural(self.files_seen, "file")
        ));
        out
    }
}

/// What `copy` did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    /// The database copied.
    pub source: String,
    /// The new file.
    pub dest: String,
    /// Bytes written; `None` in a dry run.
    pub bytes: Option<u64>,
    /// Side files carried along (`-wal`, `-journal`).
    pub side_files: Vec<String>,
}

/// `copy`: one WAL-correct copy by hand, the way daily-backup makes them. A dry run checks that
/// the destination is free and writes nothing.
///
/// # Errors
/// An existing destination; a database that cannot be copied.
pub fn run_copy(source: &Path, dest: &Path, dry_run: bool) -> Result<CopyOutcome> {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Usage(format!(
            "{} exists: refusing to overwrite it",
            dest.display()
        )));
    }
    let (bytes, side_files) = if dry_run {
        (None, Vec::new())
    } else {
        let r = backup_sqlite::copy_database(source, dest)?;
        (Some(r.bytes), r.side_files)
    };
    Ok(CopyOutcome {
        source: source.display().to_string(),
        dest: dest.display().to_string(),
        bytes,
        side_files,
    })
}

impl Outcome for CopyOutcome {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        match self.bytes {
            None => format!("sqlite-backup: would copy {} -> {}", self.source, self.dest),
            Some(b) => format!(
                "sqlite-backup: {} -> {} ({}{})",
                self.source,
                self.dest,
                backup_host::human::bytes(b),
                if self.side_files.is_empty() {
                    String::new()
                } else {
                    format!(", recovered from {}", self.side_files.join(" "))
                }
            ),
        }
    }
}

/// The flags of `sqlite-backup backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Application name: folder prefix and metric job <name>-backup.
    #[arg(long)]
    pub name: String,
    /// The live database.
    #[arg(long)]
    pub db: PathBuf,
    /// Folder the dated backup folders go into.
    #[arg(long)]
    pub dest: Utf8PathBuf,
    /// Remove backups older than this many days...
    #[arg(long)]
    pub keep_days: Option<u32>,
    /// ...but always keep the newest this many.
    #[arg(long)]
    pub min_keep: Option<u32>,
    /// A file or folder to copy beside the database (repeatable).
    #[arg(long = "extra", value_name = "PATH")]
    pub extras: Vec<PathBuf>,
    /// Give up when writers keep the online backup restarting for this long.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub busy_timeout: u64,
}

impl BackupArgs {
    /// The job these flags describe; the config's `[sqlite-backup]` fills what they leave out.
    ///
    /// # Errors
    /// A policy that would remove every backup.
    pub fn job(&self, cfg: Option<&backup_core::Config>) -> Result<SqliteJob> {
        let defaults = cfg.map_or(
            DumpPolicy {
                keep_days: 30,
                min_keep: 4,
            },
            |c| c.sqlite_backup,
        );
        let policy = DumpPolicy {
            keep_days: self.keep_days.unwrap_or(defaults.keep_days),
            min_keep: self.min_keep.unwrap_or(defaults.min_keep),
        };
        if policy.keep_days == 0 && policy.min_keep == 0 {
            return Err(Error::Usage(
                "--keep-days 0 with --min-keep 0 would remove every backup".to_owned(),
            ));
        }
        Ok(SqliteJob {
            name: self.name.clone(),
            db: self.db.clone(),
            dest: self.dest.clone(),
            policy,
            extras: self.extras.clone(),
            busy_bound: Duration::from_secs(self.busy_timeout),
        })
    }
}
