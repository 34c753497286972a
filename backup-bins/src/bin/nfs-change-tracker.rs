//! `nfs-change-tracker`: the long-running service that logs every change of the NFS trees for
//! offsite-sync-backup. Wiring only: the job is `backup_jobs::nfs_change_tracker::track`.

use std::process::ExitCode;
use std::time::Duration;

use backup_run::{run, GlobalArgs, RunSpec};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  nfs-change-tracker                 watch every [[offsite.tree]]
  nfs-change-tracker --check         do the folders fit the inotify limit?";

/// Watch every folder of each [[offsite.tree]] with inotify and append each changed path to
/// the tree's change log (NUL-terminated records, batched and fsynced), until SIGTERM.
///
/// A folder that appears is watched, then scanned, and recorded whole. A queue overflow, running
/// out of watches, a watch error and the tracker's own start mark the tree for a full pass by
/// the next offsite-sync-backup. --check compares the trees' folder count with
/// fs.inotify.max_user_watches. Metrics: nfs_tracker_watches, nfs_tracker_overflows_total,
/// nfs_tracker_full_pass_pending per tree, every --metrics-every seconds and at exit.
#[derive(Debug, Parser)]
#[command(name = "nfs-change-tracker", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    /// Only say whether max_user_watches fits the trees' folder count (exit 1 when not).
    #[arg(long)]
    check: bool,

    /// Publish the tracker's gauges this often.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    metrics_every: u64,
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let spec = RunSpec::new("nfs-change-tracker");
    if cli.check {
        return run(&spec, &cli.global, |ctx| {
            backup_jobs::nfs_change_tracker::check(ctx.cfg()?)
        });
    }
    run(&spec, &cli.global, |ctx| {
        if ctx.dry_run() {
            return Err(backup_host::Error::Usage(
                "--dry-run: the tracker only logs; `--check` shows what it would watch".to_owned(),
            ));
        }
        let every = Duration::from_secs(cli.metrics_every.max(1));
        // runs until SIGTERM/SIGINT; a clean stop is success
        backup_jobs::nfs_change_tracker::track(
            ctx.cfg()?,
            backup_host::clock::Clock::starting_at(ctx.now),
            &ctx.stop,
            every,
            &|g| ctx.publish(g),
        )
    })
}
