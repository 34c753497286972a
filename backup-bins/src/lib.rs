//! The homelab-backup binaries, as a library: everything a test wants to call is here, and each
//! binary in `src/bin/` is wiring: parse the flags, hand a job to [`run::run`], which loads the
//! config, takes the locks, runs the job on real (or `--dry-run`) backends, renders the report
//! as text or JSON, publishes its metrics, and exits with the code from [`Exit`].
//!
//! | binary | does |
//! |---|---|
//! | `lvm-pvc-snapshot` | `create` (default), `prune`, `list` snapshots of every selected volume; `restore` |
//! | `daily-backup` | copy each volume's newest snapshot into this ISO week's folder, its SQLite databases, PVE config, pfSense, prune, metrics |
//! | `sqlite-backup` | the SQLite CronJob: `backup`, `check`, `find`, `copy` |
//! | `backup-dump` | the application dump CronJobs: run a dump tool, store its output checked and gzipped, rotate |
//! | `backupctl` | [`ctl`]: list, status, verify, restore, drill, alerts, units, config |

mod app;
mod change_log;
pub mod ctl;
pub(crate) mod daily;
mod dry_run;
mod dump;
mod error;
mod exit;
mod fs_store;
mod fsutil;
mod human;
mod linkguard;
mod lock;
pub mod man;
mod metrics_sink;
mod mounts;
mod offsite;
mod out;
mod outcome;
mod pfsense;
mod progress;
mod report;
mod restore;
mod root_id;
mod runner;
mod safe_read;
mod snapshot;
mod sqlite_job;
mod sqlite_stage;
mod tracker;
mod tree;
mod version_commit;

pub mod run;

pub use app::{claims, load_config, mounter, volume_manager};
pub use backup_dir::DirVolumeManager;
pub use change_log::{ChangeLog, Sealed};
pub use daily::{
    job as daily_job, mount_root, plan as plan_daily_run, plan_pruning, run_daily, DailyDeps,
};
pub use dry_run::{
    DryRunMounter, DryRunRunner, DryRunSink, DryRunStore, DryRunSync, DryRunVolumes, Would,
};
pub use dump::{read_env_file, run_dump, DumpArgs, DumpJob, DumpReport, OUT_PLACEHOLDER};
pub use error::{Error, Result};
pub use exit::Exit;
pub use fs_store::DiskStore;
pub use human::{bytes, count};
pub use linkguard::unshare_changed;
pub use lock::RunLock;
pub use metrics_sink::{PushgatewaySink, Sinks, TextfileSink};
pub use mounts::{mount_point_options, InPlaceMounter, SystemMounter};
pub use offsite::{
    job as offsite_job, OffsiteOptions, OffsiteReport, OffsiteState, StepResult, TreeState,
};
pub use outcome::{
    CreateReport, DailyReport, ItemResult, PruneReport, Status, TakeResult, VolumeResult,
};
pub use pfsense::{api_request, backup_pfsense, decode_config, tar_request, PfsenseResult};
pub use report::{create_report, daily_header, daily_plan, daily_summary, volume_line};
pub use restore::{restore, RestoreOutcome};
pub use runner::{stop_on_signals, DuctRunner};
pub use snapshot::{create, list, prune_run, Listing, PruneOutcome};
pub use sqlite_job::{
    rotate, run_backup, run_check, run_copy, run_find, BackupArgs, CopyOutcome, FindOutcome,
    IntegrityOutcome, SqliteJob, SqliteJobReport,
};
pub use tracker::{
    check as tracker_check, track, tree_metrics, TrackerReport, TreeStats, WatchCheck,
};
