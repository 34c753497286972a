//! `sqlite-backup`: consistent copies and integrity checks of a live SQLite database
//! (Kubernetes CronJobs: Vaultwarden backup every 6 h, integrity check hourly).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use backup_bins::app::{finish, load_config, GlobalArgs};
use backup_bins::metrics_sink::{PushgatewaySink, Sinks, TextfileSink};
use backup_bins::sqlite_job::{run_backup, run_check, SqliteJob};
use backup_bins::{Exit, Result};
use backup_core::{Config, DumpPolicy, MetricsSink, DEFAULT_CONFIG_PATH};
use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};

/// Back up or check a live SQLite database.
///
/// `backup` checks the live database (a failure aborts: no backup is taken and
/// backup_last_run_success goes to 0), copies it with SQLite's online backup API (safe with
/// writers), checks the copy, copies the --extra files and folders beside it into
/// <dest>/<name>-<YYYYMMDD-HHMMSS>/ (written under a temp name, then renamed), and removes folders
/// older than --keep-days while always keeping the newest --min-keep.
///
/// `check` runs PRAGMA integrity_check and publishes <name>_sqlite_integrity_ok (1 or 0) for job
/// <name>-integrity-check; it exits 1 when the check fails.
///
/// Options may also come from the config file ([sqlite-backup], [metrics]); flags win. The config
/// file is optional here: without one, defaults are keep-days 30, min-keep 4.
///
/// Exit codes: 0 ok, 1 failed (or integrity check failed), 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "sqlite-backup", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
    /// Write metrics as <DIR>/<job>.prom for node_exporter's textfile collector.
    #[arg(long, global = true, value_name = "DIR")]
    textfile_dir: Option<Utf8PathBuf>,
    /// Push metrics to this Pushgateway (http://host:9091).
    #[arg(long, global = true, value_name = "URL")]
    pushgateway: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, copy, check the copy, copy extras, rotate.
    Backup {
        /// Application name: folder prefix and metric job <name>-backup.
        #[arg(long)]
        name: String,
        /// The live database.
        #[arg(long)]
        db: PathBuf,
        /// Folder the dated backup folders go into.
        #[arg(long)]
        dest: Utf8PathBuf,
        /// Remove backups older than this many days...
        #[arg(long)]
        keep_days: Option<u32>,
        /// ...but always keep the newest this many.
        #[arg(long)]
        min_keep: Option<u32>,
        /// A file or folder to copy beside the database (repeatable).
        #[arg(long = "extra", value_name = "PATH")]
        extras: Vec<PathBuf>,
        /// Give up when writers keep the online backup restarting for this long.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        busy_timeout: u64,
    },
    /// List the SQLite databases in a folder tree (what daily-backup copies from a snapshot).
    Find {
        /// The folder to walk.
        dir: PathBuf,
    },
    /// Copy one database from a snapshot the way daily-backup does: with its -wal or hot
    /// -journal, recovered, integrity-checked, written with VACUUM INTO (rollback-journal mode).
    Copy {
        /// The database (its -wal / -journal beside it are used).
        source: PathBuf,
        /// The new file; must not exist.
        dest: PathBuf,
    },
    /// PRAGMA integrity_check of the live database, as a metric.
    Check {
        /// Application name: metric <name>_sqlite_integrity_ok, job <name>-integrity-check.
        #[arg(long)]
        name: String,
        /// The live database.
        #[arg(long)]
        db: PathBuf,
    },
}

fn main() -> ExitCode {
    finish("sqlite-backup", run(&Cli::parse()))
}

fn config(cli: &Cli) -> Result<Option<Config>> {
    let g = &cli.global;
    // optional here: a CronJob usually has no config file, only flags
    if g.config.as_str() == DEFAULT_CONFIG_PATH && !g.config.exists() {
        return Ok(None);
    }
    load_config(&g.config).map(Some)
}

fn sinks(cli: &Cli, cfg: Option<&Config>) -> Sinks {
    let mut sinks: Vec<Box<dyn MetricsSink>> = Vec::new();
    let textfile = cli
        .textfile_dir
        .clone()
        .or_else(|| cfg.and_then(|c| c.metrics.textfile_dir.clone()));
    if let Some(dir) = textfile {
        sinks.push(Box::new(TextfileSink::new(&dir)));
    }
    let push = cli
        .pushgateway
        .clone()
        .or_else(|| cfg.and_then(|c| c.metrics.pushgateway.clone()));
    if let Some(url) = push {
        sinks.push(Box::new(PushgatewaySink::new(&url)));
    }
    Sinks(sinks)
}

fn run(cli: &Cli) -> Result<Exit> {
    let cfg = config(cli)?;
    let sinks = sinks(cli, cfg.as_ref());
    let now = cli.global.now();
    match &cli.command {
        Command::Find { dir } => {
            let found = backup_sqlite::find_databases(dir);
            for (path, why) in &found.unreadable {
                eprintln!("sqlite-backup: cannot read {}: {why}", path.display());
            }
            for (path, why) in &found.damaged {
                eprintln!("sqlite-backup: damaged database {}: {why}", path.display());
            }
            if cli.global.json {
                let list: Vec<String> = found
                    .databases
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "databases": list,
                        "damaged": found.damaged.iter().map(|(p, why)| serde_json::json!({
                            "path": p.to_string_lossy(), "error": why,
                        })).collect::<Vec<_>>(),
                        "files_seen": found.files_seen,
                    })
                );
            } else {
                for db in &found.databases {
                    println!("{}", db.display());
                }
                eprintln!(
                    "{} databases among {} files",
                    found.databases.len(),
                    found.files_seen
                );
            }
            Ok(if found.unreadable.is_empty() && found.damaged.is_empty() {
                Exit::Success
            } else {
                Exit::Partial
            })
        }
        Command::Copy { source, dest } => {
            if std::fs::symlink_metadata(dest).is_ok() {
                return Err(backup_bins::Error::Usage(format!(
                    "{} exists: refusing to overwrite it",
                    dest.display()
                )));
            }
            let r = backup_sqlite::copy_database(source, dest)
                .map_err(|e| backup_bins::Error::Refused(e.to_string()))?;
            println!(
                "sqlite-backup: {} -> {} ({}{})",
                source.display(),
                dest.display(),
                backup_bins::report::bytes(r.bytes),
                if r.side_files.is_empty() {
                    String::new()
                } else {
                    format!(", recovered from {}", r.side_files.join(" "))
                }
            );
            Ok(Exit::Success)
        }
        Command::Check { name, db } => {
            let (ok, why) = run_check(name, db, &sinks)?;
            if ok {
                println!(
                    "sqlite-backup: {} passed PRAGMA integrity_check",
                    db.display()
                );
                Ok(Exit::Success)
            } else {
                eprintln!(
                    "sqlite-backup: INTEGRITY CHECK FAILED: {}",
                    why.unwrap_or_default()
                );
                Ok(Exit::Failed)
            }
        }
        Command::Backup {
            name,
            db,
            dest,
            keep_days,
            min_keep,
            extras,
            busy_timeout,
        } => {
            let defaults = cfg.as_ref().map_or(
                DumpPolicy {
                    keep_days: 30,
                    min_keep: 4,
                },
                |c| c.sqlite_backup,
            );
            let policy = DumpPolicy {
                keep_days: keep_days.unwrap_or(defaults.keep_days),
                min_keep: min_keep.unwrap_or(defaults.min_keep),
            };
            if policy.keep_days == 0 && policy.min_keep == 0 {
                return Err(backup_bins::Error::Usage(
                    "--keep-days 0 with --min-keep 0 would remove every backup".to_owned(),
                ));
            }
            let job = SqliteJob {
                name: name.clone(),
                db: db.clone(),
                dest: dest.clone(),
                policy,
                extras: extras.clone(),
                busy_bound: Duration::from_secs(*busy_timeout),
            };
            if cli.global.dry_run {
                println!(
                    "would check {} and copy it with {} extras into {}/{}; then rotate (keep-days {}, min-keep {})",
                    db.display(),
                    extras.len(),
                    dest,
                    backup_bins::sqlite_job::folder_name(name, now),
                    policy.keep_days,
                    policy.min_keep
                );
                return Ok(Exit::Success);
            }
            let r = run_backup(&job, now, &sinks)?;
            if cli.global.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!(
                    "sqlite-backup: {} -> {} ({}), {} extras{}",
                    db.display(),
                    r.folder,
                    backup_bins::report::bytes(r.db_bytes),
                    r.extras.len(),
                    if r.removed.is_empty() {
                        String::new()
                    } else {
                        format!(", rotated out {}", r.removed.join(", "))
                    }
                );
                for m in &r.missing_extras {
                    println!("  note: extra {m} does not exist, skipped");
                }
                for w in &r.warnings {
                    println!("  warning: {w}");
                }
            }
            Ok(Exit::Success)
        }
    }
}
