//! `backupctl`: what is protected, is it intact, bring it back. Wiring only: the commands are
//! in the `backupctl` crate.

use std::process::ExitCode;

use backup_run::{GlobalArgs, SinkArgs};
use backupctl::cli::Command;
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  backupctl status                   what is protected, gaps first
  backupctl list                     every backup by layer
  backupctl verify --sample 10       re-read 10 % of the files
  backupctl restore pvc --pvc vaultwarden/vaultwarden-data --to /root/vw
  backupctl drill                    restore a sample, project the RTOs";

/// See every backup, prove it restores, restore it.
///
/// list: every backup by layer. status: the protection matrix, gaps first (exit 1 on a gap).
/// verify: re-read backups against their per-file records, check every SQLite copy, pfSense
/// copy and dump (--offsite: the NAS copy). restore pvc|sqlite|pfsense|pve-config: bring a
/// version back into a folder (or a PVC into its live volume), then check it against its
/// record; restore dump: a database dump into a server, counted. drill: restore a sample, every
/// SQLite copy and every dump (into throwaway servers), check them, and project each layer's
/// RTO (--site: the site disaster, from the offsite copy alone).
///
/// A restore never writes into a non-empty folder without --force. Every subcommand takes
/// --json; verify and drill publish backup_verify_* and backup_restore_drill_* metrics.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, after_long_help = backup_host::Exit::help_with(EXAMPLES))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    /// Read the offsite copy instead of the backup disk: <offsite.destination>/pve-backup of
    /// the same config (a local or mounted destination, or over ssh with the config's key), for
    /// a lost or dead backup disk. Nothing is written into it and no metrics are published;
    /// list, status, verify (not over ssh: verify --offsite), find, diff, ls, restore and drill
    /// all take it.
    #[arg(long, global = true)]
    from_offsite: bool,
}

fn main() -> ExitCode {
    if let Some(code) = backup_jobs::man::write_if_asked::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    backupctl::cli::main(
        &cli.command,
        &cli.global,
        &cli.sinks,
        cli.from_offsite,
        <Cli as clap::CommandFactory>::command,
    )
}
