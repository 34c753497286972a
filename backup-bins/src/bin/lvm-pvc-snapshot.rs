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
    /// List snapshots, newest first per volume.
    List,
}

fn main() -> ExitCode {
    backup_bins::app::finish("lvm-pvc-snapshot", run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<Exit> {
    let g = &cli.global;
    let cfg = load_config(&g.config)?;
    let now = g.now();
    let stop = stop_on_signals().map_err(|e| Error::io("install signal handlers", "-", e))?;
    let runner = DuctRunner::new(stop);
    let volumes = volume_manager(&cfg, &runner)?;
    match cli.command.as_ref().unwrap_or(&Command::Create) {
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
            let (removed, errors) = prune(volumes.as_ref(), &plan);
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
            let claims = claims(&cfg)?;
            if g.dry_run {
                let sel = selection(&cfg, volumes.as_ref(), &claims)?;
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

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let h = (now - then).num_hours();
    if h < 48 {
        format!("{h} h old")
    } else {
        format!("{} days old", h / 24)
    }
}
