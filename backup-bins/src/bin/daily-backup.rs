//! `daily-backup`: the daily file-level backup (systemd timer, 05:00).

use std::io::IsTerminal;
use std::process::ExitCode;

use backup_bins::app::{
    claims, load_config, mounter, require_backup_root, sinks, volume_manager, GlobalArgs,
};
use backup_bins::daily::{plan_daily, plan_prune, run_daily, DailyDeps};
use backup_bins::lock::RunLock;
use backup_bins::runner::{stop_on_signals, DuctRunner};
use backup_bins::{report, Error, Exit, Result};
use backup_core::BackupRoot;
use backup_rsync::RsyncFileSync;
use clap::Parser;

/// Copy every PVC volume's newest snapshot into this ISO week's folder.
///
/// For each volume matching `lv-pattern` (and not in an excluded namespace): its newest snapshot
/// (a fresh one when the newest is older than `max-snapshot-age-hours`) is mounted read-only and
/// copied with rsync into <backup-root>/pvc-data/<YYYY-WW>/<namespace>/<pvc>/, hardlinking
/// unchanged files against the newest complete earlier week, and every SQLite database in it is
/// copied WAL-correctly into <backup-root>/sqlite-backup/<YYYY-WW>/<namespace>/<pvc>/. A copy is
/// marked complete only when the copy, the unmount and the deactivation all succeeded. Then the
/// PVE config paths and pfSense (when configured) are copied, old weeks and snapshots pruned, and
/// metrics written. -v prints every command as it runs.
///
/// An empty source is refused when the last copy had files (a failed mount or a wiped PVC never
/// replaces a backup); `--allow-empty NS/PVC` accepts it for one volume in one run. One volume
/// failing never stops the others.
///
/// A run whose clock is behind the backup root (its week older than the newest complete version,
/// or its time before the newest completion) refuses with exit 1: an RTC reset or an NTP step
/// must not write into an old week or rewrite a finished one.
///
/// Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 partial (some volumes failed),
/// 75 another run holds the lock.
#[derive(Debug, Parser)]
#[command(name = "daily-backup", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    /// Accept an empty source for this PVC in this run (NAMESPACE/PVC, as the output names it;
    /// repeatable): a PVC emptied on purpose. Without it an empty source is refused while the
    /// last copy has files.
    #[arg(long, value_name = "NS/PVC")]
    allow_empty: Vec<String>,
}

fn main() -> ExitCode {
    backup_bins::app::finish("daily-backup", run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<Exit> {
    let g = &cli.global;
    let cfg = load_config(&g.config)?;
    let now = g.now();
    let stop = stop_on_signals().map_err(|e| Error::io("install signal handlers", "-", e))?;
    let runner = DuctRunner::new(stop.clone()).verbose(g.verbose > 0);
    let volumes = volume_manager(&cfg, &runner)?;
    let (claims, claim_warnings) = claims(&cfg, &runner);
    for w in &claim_warnings {
        eprintln!("daily-backup: warning: {w}");
    }
    // mount and umount are never killed: the unmount after SIGTERM must still happen
    let unkillable = DuctRunner::default().verbose(g.verbose > 0);
    let mounter = mounter(&unkillable);
    let sync = RsyncFileSync::new(&runner);
    let sinks = sinks(&cfg);
    let deps = DailyDeps {
        volumes: volumes.as_ref(),
        mounter: mounter.as_ref(),
        sync: &sync,
        metrics: &sinks,
        runner: &runner,
        claims: &claims,
        stop: &stop,
    };
    require_backup_root(&cfg)?;

    if g.dry_run {
        let plan = plan_daily(&cfg, &deps, now, &cli.allow_empty)?;
        let prune = plan_prune(&cfg, deps.volumes, now)?;
        if g.json {
            let v = serde_json::json!({ "plan": plan, "prune": prune });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            print!("{}", report::daily_plan(&plan, &prune));
        }
        return Ok(Exit::Success);
    }

    let _lock = RunLock::acquire(&BackupRoot::new(&cfg.backup_root).lock_file())?;
    let plan = plan_daily(&cfg, &deps, now, &cli.allow_empty)?;
    if !g.json {
        println!("{}", report::daily_header(&plan));
    }
    // a progress bar only for a person at a terminal; journald and pipes get plain lines
    let bar = (!g.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(plan.volumes.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} volumes  {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let json = g.json;
    let r = run_daily(&cfg, &deps, &plan, &|v| match &bar {
        Some(bar) => {
            bar.suspend(|| println!("{}", report::volume_line(v)));
            bar.inc(1);
        }
        None if !json => println!("{}", report::volume_line(v)),
        None => {}
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        println!("{}", report::daily_summary(&r));
    }
    Ok(r.exit)
}
