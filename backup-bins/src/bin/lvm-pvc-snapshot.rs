//! `lvm-pvc-snapshot`: snapshots of every PVC volume (systemd timer, 03:00).

use std::process::ExitCode;

use backup_bins::app::{claims, load_config, sinks, volume_manager, GlobalArgs};
use backup_bins::runner::{stop_on_signals, DuctRunner};
use backup_bins::snapshot::{create, plan_prune, prune, selection};
use backup_bins::{report, Error, Exit, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

/// Take, prune and list the snapshots of every PVC volume.
///
/// `create` (the default) first removes snapshots older than `keep-days` (never the newest of a
/// volume), refuses to snapshot anything when the thin pool's free data or metadata is below
/// `min-pool-free-percent`, then takes one snapshot of each volume matching `lv-pattern` that is
/// not in an excluded namespace, named <volume>-snap-<YYYYMMDDHHMMSS> (UTC).
///
/// Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 partial.
#[derive(Debug, Parser)]
#[command(name = "lvm-pvc-snapshot", version, about, long_about)]
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
    backup_bins::app::finish("lvm-pvc-snapshot", run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<Exit> {
    let g = &cli.global;
    let cfg = load_config(&g.config)?;
    let now = g.now();
    let stop = stop_on_signals().map_err(|e| Error::io("install signal handlers", "-", e))?;
    let runner = DuctRunner::new(stop).verbose(g.verbose > 0);
    let volumes = volume_manager(&cfg, &runner)?;
    match cli.command.as_ref().unwrap_or(&Command::Create) {
        Command::Restore {
            pvc_lv,
            snapshot_lv,
        } => restore(&cfg, g, pvc_lv, snapshot_lv),
        Command::List => {
            let mut snaps = volumes.list_snapshots()?;
            snaps.sort_by(|a, b| (&a.volume, b.created).cmp(&(&b.volume, a.created)));
            if g.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&snaps).unwrap_or_default()
                );
            } else {
                for s in &snaps {
                    println!(
                        "{:<28} {:<44} {}  ({})",
                        s.volume,
                        s.name,
                        s.created.to_rfc3339(),
                        age(now, s.created)
                    );
                }
                println!("{} snapshots", snaps.len());
                for (name, at) in volumes.set_aside_volumes()? {
                    println!("set aside by a restore: {name} ({})", age(now, at));
                }
            }
            Ok(Exit::Success)
        }
        Command::Prune => {
            let plan = plan_prune(&cfg, volumes.as_ref(), now)?;
            if g.dry_run {
                for d in plan.iter().filter(|d| d.is_remove()) {
                    println!("would remove {}: {}", d.item.name, d.reasons.join("; "));
                }
                return Ok(Exit::Success);
            }
            let (mut removed, mut errors) = prune(volumes.as_ref(), &plan);
            let (aside, aside_errors) =
                backup_bins::snapshot::prune_set_aside(&cfg, volumes.as_ref(), now);
            removed.extend(aside);
            errors.extend(aside_errors);
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({ "removed": removed, "errors": errors })
                );
            } else {
                for r in &removed {
                    println!("  removed {r}");
                }
                for e in &errors {
                    println!("  FAILED  {e}");
                }
                println!(
                    "lvm-pvc-snapshot: {} removed, {} failed",
                    removed.len(),
                    errors.len()
                );
            }
            Ok(Exit::from_counts(removed.len(), errors.len()))
        }
        Command::Create => {
            let (claims, warnings) = claims(&cfg, &runner);
            for w in &warnings {
                eprintln!("lvm-pvc-snapshot: warning: {w}");
            }
            if g.dry_run {
                let sel = selection(&cfg, volumes.as_ref(), &claims)?;
                let listed = sel.matched() + sel.not_matching.len();
                backup_bins::daily::require_matches(&cfg, &sel, listed)?;
                for d in plan_prune(&cfg, volumes.as_ref(), now)?
                    .iter()
                    .filter(|d| d.is_remove())
                {
                    println!("would remove {}: {}", d.item.name, d.reasons.join("; "));
                }
                for v in &sel.selected {
                    println!(
                        "would snapshot {} ({}/{}) as {}",
                        v.lv,
                        v.namespace,
                        v.pvc,
                        backup_core::snapshot_name(&v.lv, now)
                    );
                }
                for r in &sel.refused {
                    println!(
                        "would snapshot {} as {} (daily-backup refuses it: {})",
                        r.volume.lv,
                        backup_core::snapshot_name(&r.volume.lv, now),
                        r.reason
                    );
                }
                for v in &sel.excluded {
                    println!("skip {} (namespace {} is excluded)", v.lv, v.namespace);
                }
                return Ok(Exit::Success);
            }
            let sinks = sinks(&cfg);
            let r = create(&cfg, volumes.as_ref(), &claims, &sinks, now)?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!("{}", report::create_report(&r));
            }
            Ok(r.exit)
        }
    }
}

fn restore(
    cfg: &backup_core::Config,
    g: &GlobalArgs,
    pvc_lv: &str,
    snapshot_lv: &str,
) -> Result<Exit> {
    use backup_core::VolumeManager;
    let backup_core::Backend::Lvm {
        volume_group,
        thin_pool,
    } = &cfg.snapshots.backend
    else {
        return Err(Error::Usage(format!(
            "restore needs `snapshots.backend` = \"lvm\" in {}",
            cfg.file
        )));
    };
    // a restore is never killed half-way by SIGTERM: its undo must be able to run
    let runner = DuctRunner::default();
    let lvm = backup_lvm::LvmVolumeManager::new(volume_group, thin_pool, &runner);
    let snap = lvm.list_snapshots()?.into_iter().find(|s| s.name == snapshot_lv).ok_or_else(|| {
        Error::Usage(format!("no snapshot named {snapshot_lv} in {volume_group}/{thin_pool}: `lvm-pvc-snapshot list` shows them"))
    })?;
    if snap.volume != pvc_lv {
        return Err(Error::Usage(format!(
            "{snapshot_lv} is a snapshot of {}, not of {pvc_lv}",
            snap.volume
        )));
    }
    if !lvm.list_volumes()?.iter().any(|v| v.name == pvc_lv) {
        return Err(Error::Usage(format!(
            "{pvc_lv} is not a volume in {volume_group}/{thin_pool}"
        )));
    }
    let (claims, warnings) = claims(cfg, &runner);
    for w in &warnings {
        eprintln!("lvm-pvc-snapshot: warning: {w}");
    }
    let claim = claims.iter().find(|c| c.is_for_lv(pvc_lv));
    if claim.is_none() {
        eprintln!("lvm-pvc-snapshot: warning: no PV maps to {pvc_lv}: no workload will be scaled; make sure nothing uses it");
    }
    let cluster = backup_lvm::KubectlCluster::new(
        &runner,
        cfg.kubernetes.kubeconfig.as_ref().map(ToString::to_string),
    );
    let steps = backup_lvm::plan_restore(&cluster, claim, pvc_lv, snapshot_lv, g.now())?;
    if g.dry_run {
        println!("restore {pvc_lv} from {snapshot_lv} (dry run: nothing is changed):");
        for (i, s) in steps.iter().enumerate() {
            println!("  {}. {}", i + 1, s.describe(volume_group));
        }
        return Ok(Exit::Success);
    }
    let report = backup_lvm::run_restore(&lvm, &cluster, &steps);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for d in &report.done {
            println!("  done    {d}");
        }
        if let Some((step, why)) = &report.failed {
            println!("  FAILED  {step}: {why}");
        }
        for (what, r) in &report.undone {
            match r {
                Ok(()) => println!("  undone  {what}"),
                Err(e) => println!("  UNDO FAILED {what}: {e}"),
            }
        }
        println!("lvm-pvc-snapshot restore: {}", report.state);
    }
    Ok(if report.failed.is_none() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let h = (now - then).num_hours();
    if h < 48 {
        format!("{h} h old")
    } else {
        format!("{} days old", h / 24)
    }
}
