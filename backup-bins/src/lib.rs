//! The homelab-backup binaries, as a library: everything a test wants to call is here, and each
//! binary in `src/bin/` is wiring: parse the flags, load the config, build the real backends,
//! call `run_*`, map the outcome to an exit code.
//!
//! | binary | does |
//! |---|---|
//! | `lvm-pvc-snapshot` | `create` (default), `prune`, `list` snapshots of every selected volume; `restore` |
//! | `daily-backup` | copy each volume's newest snapshot into this ISO week's folder, its SQLite databases, PVE config, pfSense, prune, metrics |
//! | `sqlite-backup` | the SQLite CronJob: `backup`, `check`, `find`, `copy` |

pub mod app;
pub mod daily;
pub mod dir_backend;
pub mod error;
pub mod exit;
pub mod linkguard;
pub mod lock;
pub mod metrics_sink;
pub mod mounts;
pub mod pfsense;
pub mod report;
pub mod runner;
pub mod snapshot;
pub mod sqlite_job;
pub mod store;

pub use error::{Error, Result};
pub use exit::Exit;
