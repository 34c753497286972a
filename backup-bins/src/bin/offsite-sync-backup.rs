//! `offsite-sync-backup`: the offsite copy (systemd timer, 06:00, after daily-backup). Wiring
//! only: the job is `backup_jobs::offsite_sync_backup::job`, run through `backup_run::run`.

use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_jobs::offsite_sync_backup::OffsiteOptions;
use backup_run::{run, GlobalArgs, Locks, RunSpec};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  offsite-sync-backup                the nightly run (after daily-backup)
  offsite-sync-backup --dry-run      what would be sent and deleted
  offsite-sync-backup --full         every tree by a full pass
  offsite-sync-backup --adopt        sync from a replacing backup disk";

/// Send the backup disk and the NFS trees offsite.
///
/// Step 1: <backup-root>/ to <destination>/pve-backup/ with rsync -aHAX --numeric-ids --delete
/// (hardlinked weeks stay hardlinked), after waiting for a running daily-backup
/// (offsite.daily-wait-seconds), leaving out locks, the change log and temp files. A backup root
/// without pvc-data/ (or, with offsite.require-mount, that is not a mount point) is refused:
/// an unmounted disk would wipe the copy offsite.
///
/// Step 2, per [[offsite.tree]]: to <destination>/<name>/, only the paths its change log names
/// (written by nfs-change-tracker) when the log can be trusted; otherwise, and on the first run
/// of each month (offsite.monthly-full-pass), a full pass with --delete. A full pass refuses an
/// empty source and counts its deletions first: more than offsite.max-delete fails the tree and
/// deletes nothing.
///
/// A remote destination (host:path) goes over ssh with BatchMode, StrictHostKeyChecking=yes
/// against offsite.ssh-known-hosts and IdentitiesOnly with offsite.ssh-key-file: a changed host
/// key fails the run.
///
/// Step 3, per [[offsite.repository]] (the encrypted tier): each PVC's newest complete version,
/// bind-mounted read-only at the same path every run, backed up with restic (one snapshot per
/// PVC, tagged namespace=, pvc=, week=); then what keep-weekly, keep-monthly and keep-yearly no
/// longer keep is forgotten and pruned. A repository whose id changed is refused (--adopt).
#[derive(Debug, Parser)]
#[command(name = "offsite-sync-backup", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    /// A full pass of every tree, whatever the change logs say.
    #[arg(long)]
    full: bool,

    /// For this run: accept an empty tree source and more deletions than max-delete.
    #[arg(long)]
    force: bool,

    /// Step 1 to an offsite copy last synced from another backup disk (a replaced or wiped
    /// disk): this disk becomes the one it follows. Versions offsite that this disk lacks are
    /// still kept until its own retention would have removed them.
    #[arg(long)]
    adopt: bool,

    /// Only the encrypted tier ([[offsite.repository]]): each PVC's newest complete version to
    /// each restic repository; not step 1, not the trees.
    #[arg(long)]
    tier: bool,
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let spec = RunSpec {
        metrics: Some(JobMetrics::offsite_sync()),
        needs_backup_root: true,
        locks: Locks::Offsite,
        needs_root: true,
        ..RunSpec::new("offsite-sync-backup")
    };
    let opts = OffsiteOptions {
        full: cli.full,
        force: cli.force,
        adopt: cli.adopt,
        tier_only: cli.tier,
    };
    run(&spec, &cli.global, |ctx| {
        backup_jobs::offsite_sync_backup::job(ctx, opts)
    })
}
