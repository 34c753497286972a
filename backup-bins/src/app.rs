//! What every binary shares: the global flags, loading the config, building the real backends.

use backup_core::{
    Backend, Config, ConfigError, MetricsSink, Mounter, PvClaim, Resolver, Runner, VolumeManager,
    DEFAULT_CONFIG_PATH,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

use crate::dir_backend::DirVolumeManager;
use crate::error::{Error, Result};
use crate::metrics_sink::{PushgatewaySink, Sinks, TextfileSink};
use crate::mounts::{InPlaceMounter, SystemMounter};

/// Flags every binary takes, before or after a subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Configuration file.
    #[arg(long, global = true, value_name = "PATH", env = "HOMELAB_BACKUP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: Utf8PathBuf,

    /// Print what would be done and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Run as if the clock said this (RFC 3339, e.g. 2026-01-05T05:00:00Z): for tests and replays.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// `--now`, or the clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time like 2026-01-05T05:00:00Z: {e}"))
}

/// The process exit for a run's outcome; an error is printed as `<binary>: error: ...`.
pub fn finish(binary: &str, outcome: Result<crate::Exit>) -> std::process::ExitCode {
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("{binary}: error: {e}");
            e.exit().into()
        }
    }
}

/// Reads and validates the configuration.
///
/// # Errors
/// [`Error::Config`] naming the file and key.
pub fn load_config(path: &Utf8Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        key: "(file)".to_owned(),
        message: format!("cannot read it: {e}"),
    })?;
    Ok(Config::from_toml(path, &text)?)
}

/// The snapshot backend the config names.
///
/// # Errors
/// [`Error::Usage`] for a backend this build cannot drive yet.
pub fn volume_manager<'r>(
    cfg: &Config,
    runner: &'r dyn Runner,
) -> Result<Box<dyn VolumeManager + 'r>> {
    match &cfg.snapshots.backend {
        Backend::Dir { volumes_dir, snapshots_dir } => Ok(Box::new(DirVolumeManager::new(volumes_dir, snapshots_dir, runner))),
        Backend::Lvm { .. } => Err(Error::Usage(format!(
            "{}: `snapshots.backend` = \"lvm\": the LVM backend is not in this build yet (see the backup-lvm issue); use backend = \"dir\"",
            cfg.file
        ))),
    }
}

/// Root mounts for real; anyone else reads `dir` snapshots in place.
pub fn mounter(runner: &dyn Runner) -> Box<dyn Mounter + '_> {
    if rustix::process::geteuid().is_root() {
        Box::new(SystemMounter::new(runner))
    } else {
        Box::new(InPlaceMounter)
    }
}

/// The metrics sinks the config names (none is fine).
pub fn sinks(cfg: &Config) -> Sinks {
    let mut sinks: Vec<Box<dyn MetricsSink>> = Vec::new();
    if let Some(dir) = &cfg.metrics.textfile_dir {
        sinks.push(Box::new(TextfileSink::new(dir)));
    }
    if let Some(url) = &cfg.metrics.pushgateway {
        sinks.push(Box::new(PushgatewaySink::new(url)));
    }
    Sinks(sinks)
}

/// PV → PVC claims for selection.
///
/// # Errors
/// [`Error::Usage`] for a resolver this build cannot use yet.
pub fn claims(cfg: &Config) -> Result<Vec<PvClaim>> {
    match cfg.kubernetes.resolver {
        Resolver::Static => Ok(cfg.kubernetes.static_volumes.clone()),
        Resolver::Kubectl => Err(Error::Usage(format!(
            "{}: `kubernetes.resolver` = \"kubectl\": not in this build yet (see the backup-lvm issue); use resolver = \"static\" with [[kubernetes.volume]] entries",
            cfg.file
        ))),
    }
}

/// Fails unless the backup root exists: an unmounted backup disk leaves an empty folder (or none)
/// on the root file system, and a backup written there fills `/` and is lost at the next mount.
///
/// # Errors
/// [`Error::Refused`] naming the path.
pub fn require_backup_root(cfg: &Config) -> Result<()> {
    if cfg.backup_root.is_dir() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "backup-root {} is not a folder: is the backup disk mounted? (`backup-root` in {})",
            cfg.backup_root, cfg.file
        )))
    }
}
