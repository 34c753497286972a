//! `daily-backup`: the daily file-level backup (systemd timer, 05:00). Wiring only: the job is
//! `backup_jobs::daily_backup::job`, run through `backup_run::run`.

use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_run::{run, GlobalArgs, Locks, RunSpec};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  daily-backup                       the nightly run (what the timer starts)
  daily-backup --dry-run             what a run would copy, prune, publish
  daily-backup --full                read every file, trust no record
  daily-backup --allow-empty gitea/cache
      a PVC emptied on purpose";

/// Copy every PVC volume's newest snapshot into this ISO week's folder.
///
/// For each volume matching `lv-pattern` (and not in an excluded namespace): its newest snapshot
/// (a fresh one when the newest is older than `max-snapshot-age-hours`) is mounted read-only and
/// copied with rsync into <backup-root>/pvc-data/<YYYY-WW>/<namespace>/<pvc>/, hardlinking
/// unchanged files against the newest complete earlier week, and every SQLite database in it is
/// copied WAL-correctly into <backup-root>/sqlite-backup/<YYYY-WW>/<namespace>/<pvc>/. A copy is
/// marked complete only when the copy, the unmount and the deactivation all succeeded. Then the
/// PVE config paths (weekly versions in pve-config/<YYYY-WW>/) and pfSense (when configured) are
/// copied, old weeks and snapshots pruned, and metrics written. -v prints every command as it
/// runs.
///
/// An empty source is refused when the last copy had files (a failed mount or a wiped PVC never
/// replaces a backup); `--allow-empty NS/PVC` accepts it for one volume in one run. One volume
/// failing never stops the others.
///
/// A run whose clock is behind the backup root (its week older than the newest complete version,
/// or its time before the newest completion) refuses with exit 1: an RTC reset or an NTP step
/// must not write into an old week or rewrite a finished one.
///
/// It holds the snapshot lock (`snapshots.lock-file`, shared with lvm-pvc-snapshot) and
/// <backup-root>/.daily-backup.lock for the whole run.
#[derive(Debug, Parser)]
#[command(name = "daily-backup", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    /// Accept an empty source for this PVC in this run (NAMESPACE/PVC as the output names it,
    /// or the volume's name; repeatable): a PVC emptied on purpose. Without it an empty source is refused while the
    /// last copy has files.
    #[arg(long, value_name = "NS/PVC")]
    allow_empty: Vec<String>,

    /// Copy every volume in full (rsync of the whole tree), whatever the per-file records say.
    #[arg(long)]
    full: bool,
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let spec = RunSpec {
        metrics: Some(JobMetrics::daily_backup()),
        locks: Locks::Daily,
        needs_backup_root: true,
        needs_root: true,
        ..RunSpec::new("daily-backup")
    };
    run(&spec, &cli.global, |ctx| {
        backup_jobs::daily_backup::job(ctx, &cli.allow_empty, cli.full)
    })
}
