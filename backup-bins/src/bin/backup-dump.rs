//! `backup-dump`: the application dump CronJobs (PostgreSQL, MySQL, etcd, Vault, Redis).

use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_run::{run, GlobalArgs, RunSpec};
use camino::Utf8PathBuf;
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  backup-dump --name postgresql --dest /backup/postgresql --ext sql \\
      --env-file /secrets/pg.env -- pg_dumpall -h pg-rw.dbaas -U postgres
  backup-dump --name etcd --dest /backup/etcd --ext db --keep-days 30 \\
      -- etcdctl snapshot save {out}";

/// Run a dump tool and keep its output only when it is good.
///
/// Runs COMMAND (no shell) and streams its standard output through gzip into a temp file in
/// --dest; or, when an argument is the literal {out}, lets the tool write its own file there
/// (etcdctl snapshot save {out}; vault operator raft snapshot save {out}; redis-cli --rdb {out})
/// and compresses it afterwards (a file that is gzip already is checked and kept as it is).
///
/// The dump is kept only when the command exited 0, wrote at least --min-bytes, and the gzip
/// file reads back whole; it is then fsynced and renamed to <NAME>-<YYYYMMDD-HHMMSS>.<EXT>.gz
/// (UTC). On any failure the temp file is removed, nothing in --dest changes, the step that
/// failed and the tail of the command's stderr are printed, and backup_last_run_success{job=
/// "<NAME>-backup"} goes to 0.
///
/// Only after a success, dumps of NAME older than --keep-days are removed, always keeping the
/// newest --min-keep; files of other names and other files are never touched.
///
/// Secrets never go on the command line: pass them with --env-file (KEY=VALUE lines, e.g.
/// PGPASSWORD, VAULT_TOKEN, REDISCLI_AUTH), a PGPASSFILE, or a MySQL option file
/// (--defaults-extra-file).
#[derive(Debug, Parser)]
#[command(name = "backup-dump", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(flatten)]
    dump: backup_jobs::backup_dump::DumpArgs,
    #[command(flatten)]
    global: GlobalArgs,
    /// Write metrics as <DIR>/<NAME>-backup.prom for node_exporter's textfile collector.
    #[arg(long, value_name = "DIR")]
    textfile_dir: Option<Utf8PathBuf>,
    /// Push metrics to this Pushgateway (http://host:9091).
    #[arg(long, value_name = "URL", env = "PUSHGATEWAY_URL")]
    pushgateway: Option<String>,
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let spec = RunSpec {
        config_required: false,
        metrics: Some(JobMetrics::backup(&cli.dump.name)),
        textfile_dir: cli.textfile_dir.clone(),
        pushgateway: cli.pushgateway.clone(),
        ..RunSpec::new("backup-dump")
    };
    run(&spec, &cli.global, |ctx| {
        let job = cli.dump.job(ctx.cfg_opt())?;
        backup_jobs::backup_dump::run_dump(&job, &*ctx.runner(), ctx.now, ctx.dry_run())
    })
}
