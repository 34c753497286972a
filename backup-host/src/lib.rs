//! What touches the host, for the homelab-backup jobs and `backupctl`: the disk store and its
//! atomic version swap, mounts, the process runner, locks, the metrics sinks, the change log,
//! the hardlink guard, the SQLite stage, reading files safely, the dry-run decorators, and the
//! terminal (progress, widths, words).
//!
//! Each module is an adapter behind a `backup-core` trait or a small helper the jobs share; no
//! module here knows which binary runs it. The errors every job returns, with their exit class,
//! are [`error::Error`] and [`exit::Exit`].

pub mod change_log;
pub mod clock;
pub mod copy_stages;
pub mod disk_store;
pub mod dry_run;
pub mod env_file;
pub mod error;
pub mod exit;
pub mod fsutil;
pub mod hooks;
pub mod human;
pub mod linkguard;
pub mod local_copy;
pub mod lock;
pub mod metrics_sink;
pub mod mounts;
pub mod notify;
pub mod out;
pub mod progress;
pub mod repository;
pub mod root_id;
pub mod runner;
pub mod safe_read;
pub mod setup;
pub mod sqlite_stage;
pub mod tree;
pub mod version_commit;

pub use error::{Error, Result};
pub use exit::Exit;
