//! `sqlite-backup`: consistent copies and integrity checks of a live SQLite database
//! (Kubernetes CronJobs: Vaultwarden backup every 6 h, integrity check hourly).

use std::path::PathBuf;
use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_run::{run, GlobalArgs, RunSpec, SinkArgs};
use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  sqlite-backup backup --name vaultwarden --db /data/db.sqlite3 --dest /backup
  sqlite-backup check --name vaultwarden --db /data/db.sqlite3
  sqlite-backup find /mnt/snapshot   the databases daily-backup would copy";

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
#[derive(Debug, Parser)]
#[command(name = "sqlite-backup", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    sinks: SinkArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, copy, check the copy, copy extras, rotate.
    Backup(backup_jobs::sqlite_backup::BackupArgs),
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
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let g = &cli.global;
    let spec = RunSpec {
        config_required: false,
        ..RunSpec::new("sqlite-backup")
    }
    .with_sinks(&cli.sinks);
    match &cli.command {
        Command::Find { dir } => run(&spec, g, |_| Ok(backup_jobs::sqlite_backup::run_find(dir))),
        Command::Copy { source, dest } => run(&spec, g, |ctx| {
            backup_jobs::sqlite_backup::run_copy(source, dest, ctx.dry_run())
        }),
        Command::Check { name, db } => {
            let spec = RunSpec {
                metrics: Some(JobMetrics::integrity_check(name)),
                ..spec
            };
            run(&spec, g, |_| {
                Ok(backup_jobs::sqlite_backup::run_check(name, db))
            })
        }
        Command::Backup(args) => {
            let spec = RunSpec {
                metrics: Some(JobMetrics::backup(&args.name)),
                ..spec
            };
            run(&spec, g, |ctx| {
                backup_jobs::sqlite_backup::run_backup(
                    &args.job(ctx.cfg_opt())?,
                    ctx.now,
                    ctx.dry_run(),
                )
            })
        }
    }
}
