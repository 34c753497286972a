//! The pure domain of homelab-backup.
//!
//! Everything here is decided without touching the world: which ISO week a run writes into,
//! which versions retention keeps and why, which earlier copy a new one hardlinks against, which
//! files are SQLite databases, where every copy goes under the backup root, what the
//! configuration means, and how metrics are written. The outside world (LVM, mounts, rsync,
//! external commands, metrics sinks, Kubernetes) is behind small traits; state-based fakes of
//! each live in [`testing`] behind the `testing` feature.
//!
//! Nothing in this crate reads the clock, spawns a process or does I/O: callers pass `now`.
//!
//! ```
//! use backup_core::{plan_versions, IsoWeek, VersionPolicy, WeekVersion};
//! use chrono::{NaiveDate, TimeZone, Utc};
//!
//! let week = IsoWeek::from_date(NaiveDate::from_ymd_opt(2025, 12, 29).unwrap());
//! assert_eq!(week.to_string(), "2026-01"); // the ISO year, not the calendar year
//!
//! let now = Utc.with_ymd_and_hms(2026, 2, 1, 5, 0, 0).unwrap();
//! let versions: Vec<WeekVersion> = (1..=6)
//!     .map(|w| WeekVersion {
//!         namespace: "vaultwarden".into(),
//!         pvc: "data".into(),
//!         week: IsoWeek::new(2026, w).unwrap(),
//!         completed_at: Some(IsoWeek::new(2026, w).unwrap().monday().and_hms_opt(5, 10, 0).unwrap().and_utc()),
//!     })
//!     .collect();
//! let plan = plan_versions(&VersionPolicy::Newest(4), now, &versions).unwrap();
//! let removed: Vec<String> = plan.iter().filter(|d| d.is_remove()).map(|d| d.item.week.to_string()).collect();
//! assert_eq!(removed, ["2026-02", "2026-01"]);
//! ```

mod alerts;
mod changelog;
mod cluster;
mod config;
mod config_check;
mod config_notify;
mod config_show;
mod error;
mod k8s_name;
mod layout;
mod linkdest;
pub mod metric_names;
mod metrics;
mod mount;
mod offsite_copy;
mod offsite_plan;
mod offsite_state;
mod pattern;
mod plan;
mod record;
mod refusal;
mod retention;
mod runner;
mod selection;
mod sqlite_magic;
mod store;
mod sync;
mod undo;
mod volume;
mod week;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use alerts::{alert_rules, default_app_jobs, render_alert_rules, AlertKind, AlertRule, AppJob};
pub use changelog::{
    encode_files_from, encode_record, files_from, parse_records, plan_incremental, plan_tree_pass,
    ChangeLogFiles, IncrementalPlan, PathKind, TreePass,
};
pub use cluster::{Cluster, PvClaim, Workload};
pub use config::{
    Backend, Config, DumpsConfig, KubernetesConfig, MetricsConfig, OffsiteConfig, PfsenseConfig,
    PvcBackupConfig, PveConfig, Resolver, SnapshotsConfig, StatusConfig, StopAt, TierItem,
    TierRepository, Tree, DEFAULT_CONFIG_PATH, DEFAULT_PV_CACHE,
};
pub use config_notify::{Hook, HookWhen, NotifyConfig, NotifyUrls};
pub use config_show::{effective_table, ignored_keys, render as render_toml};
pub use error::{stderr_tail, CommandError, ConfigError, Error, Result};
pub use k8s_name::{check_folder_name, check_namespace, check_pvc_name};
pub use layout::{
    format_marker, is_whole_pfsense_config, looks_like_pfsense, parse_marker, parse_snapshot_name,
    snapshot_name, BackupRoot, StagingPart, COMPLETE_DIR, CONFIG_XML, FULL_TAR,
    UNRESOLVED_NAMESPACE,
};
pub use linkdest::plan_link_dest;
pub use metrics::{exposition, Metric, MetricGroup, MetricsSink, Sample};
pub use mount::Mounter;
pub use offsite_copy::{Compared, MirrorRead, OffsiteCopy, Sent, TreeSend};
pub use offsite_plan::{plan_step_one, StepOnePlan};
pub use offsite_state::{OffsiteState, SentVersions, TierState, TreeState, STATE_FILE};
pub use pattern::{glob_match, path_glob_match, LvPattern};
pub use plan::{
    dated_file_name, dated_file_name_nth, dated_folder_name, parse_dated_file_name,
    parse_dated_folder_name, plan_daily, plan_dated_file_rotation, plan_dated_rotation, plan_prune,
    plan_snapshot_run, pool_guard, require_clock_ahead, require_matches, snapshot_choice,
    DailyInput, DailyPlan, PruneInput, PrunePlan, SnapshotChoice, SnapshotPlan, VolumePlan,
    PFSENSE_SERIES, PVE_CONFIG_SERIES,
};
#[cfg(any(test, feature = "testing"))]
pub use record::encode_record_format3;
pub use record::{
    decode_record, encode_record as encode_file_record, resend_paths, same_tree, visit_record,
    Comparison, ContentHash, ContentHasher, EntryField, EntryKind, FileEntry, RecordEntry,
    RecordError, RECORD_MAGIC,
};
pub use refusal::Refusal;
pub use retention::{
    kept, newest_complete, plan_dumps, plan_gfs, plan_snapshots, plan_versions, removals, Action,
    Decision, DumpInfo, DumpPolicy, GfsPolicy, SnapshotInfo, SnapshotPolicy, Timed, VersionPolicy,
    WeekVersion,
};
pub use runner::{is_plain_word, quote, Invocation, Output, Runner};
pub use selection::{select_volumes, RefusedVolume, SelectedVolume, Selection};
pub use sqlite_magic::{
    classify_sqlite_header, is_side_file, is_sqlite_header, Discovery, SqliteHeader,
    SQLITE_HEADER_PROBE, SQLITE_MAGIC, SQLITE_MIN_FILE_SIZE, SQLITE_SIDE_SUFFIXES,
};
pub use store::{BackupStore, CopyStages, DatabaseCopy, Series, StoreFile};
pub use sync::{FileSync, SourceKind, SyncOutcome, SyncRequest, SyncStats, TreeCopier, TreeCopy};
pub use undo::{run_with_undo, OnFailure, StepsRun, UndoableSteps};
pub use volume::{PoolUsage, SnapshotSource, Volume, VolumeManager};
pub use week::{IsoWeek, WeekParseError};
