//! `lvm-pvc-snapshot`: snapshots of every PVC volume (systemd timer, 03:00). Wiring only.

use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_run::{run, GlobalArgs, Locks, RunSpec};
use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  lvm-pvc-snapshot                   prune, then snapshot every volume
  lvm-pvc-snapshot list              snapshots per volume, newest first
  lvm-pvc-snapshot prune --dry-run   what a prune would remove
  lvm-pvc-snapshot restore vm-100-pvc-0a1b vm-100-pvc-0a1b-snap-20261207030000";

/// Take, prune and list the snapshots of every PVC volume.
///
/// `create` (the default) first removes snapshots older than `keep-days` (never the newest of a
/// volume), refuses to snapshot anything when the thin pool's free data or metadata is below
/// `min-pool-free-percent`, then takes one snapshot of each volume matching `lv-pattern` that is
/// not in an excluded namespace, named <volume>-snap-<YYYYMMDDHHMMSS> (UTC). When no volume
/// matches the pattern it exits 1, naming the pattern and where it looked.
///
/// `create`, `prune` and `restore` hold the snapshot lock (`snapshots.lock-file`), which
/// daily-backup holds too: a prune never removes the snapshot a backup is reading.
#[derive(Debug, Parser)]
#[command(name = "lvm-pvc-snapshot", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prune, then snapshot every selected volume (the default).
    Create,
    /// Remove snapshots older than keep-days (never the newest of a volume).
    Prune,
    /// List snapshots, newest first per volume, and volumes set aside by restores.
    List,
    /// Swap a PVC's volume for one of its snapshots (backend = "lvm").
    ///
    /// Scales the Deployments and StatefulSets that mount the PVC to 0 and waits for their pods
    /// to be gone, renames the live LV to <pvc-lv>-pre-restore-<time> (kept, pruned after
    /// keep-days), creates a writable thin snapshot of <snapshot-lv> named <pvc-lv> (the snapshot
    /// stays), activates it and scales the workloads back. Any failure undoes what was done, in
    /// reverse. --dry-run prints the steps.
    Restore {
        /// The PVC's LV (vm-100-pvc-...).
        pvc_lv: String,
        /// The snapshot to restore (from `lvm-pvc-snapshot list`).
        snapshot_lv: String,
    },
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let g = &cli.global;
    let spec = RunSpec {
        locks: Locks::Snapshots,
        needs_root: true,
        ..RunSpec::new("lvm-pvc-snapshot")
    };
    match cli.command.as_ref().unwrap_or(&Command::Create) {
        Command::Create => {
            let spec = RunSpec {
                metrics: Some(JobMetrics::lvm_snapshot()),
                ..spec
            };
            run(&spec, g, |ctx| {
                let cfg = ctx.cfg()?;
                let runner = ctx.runner();
                let (claims, warnings) = backup_host::setup::claims(cfg, runner.as_ref());
                for w in &warnings {
                    eprintln!("lvm-pvc-snapshot: warning: {w}");
                }
                backup_jobs::lvm_pvc_snapshot::create(
                    cfg,
                    ctx.volumes()?.as_ref(),
                    &claims,
                    ctx.now,
                )
            })
        }
        Command::Prune => run(&spec, g, |ctx| {
            backup_jobs::lvm_pvc_snapshot::prune_run(ctx.cfg()?, ctx.volumes()?.as_ref(), ctx.now)
        }),
        Command::List => {
            let spec = RunSpec {
                locks: Locks::None,
                needs_root: false,
                ..spec
            };
            run(&spec, g, |ctx| {
                backup_jobs::lvm_pvc_snapshot::list(ctx.volumes()?.as_ref(), ctx.now)
            })
        }
        Command::Restore {
            pvc_lv,
            snapshot_lv,
        } => run(&spec, g, |ctx| {
            backup_jobs::lvm_pvc_snapshot::restore::restore(ctx, pvc_lv, snapshot_lv)
        }),
    }
}
