//! SQLite databases in snapshots and on live volumes, copied so that nothing committed is lost.
//!
//! - [`find_databases`]: walk a mounted snapshot, recognise databases by their header (at most 18
//!   bytes read per file, only regular files, symlinks never followed, names
//!   as bytes).
//! - [`copy_database`]: copy one with its `-wal` or hot `-journal` into a private folder, let
//!   SQLite's own recovery run there, checkpoint, `journal_mode=DELETE`,
//!   `PRAGMA integrity_check`, fsync, rename into place (no `VACUUM INTO`: the copy runs at `cp`
//!   speed). The stored copy is a rollback-journal database that opens on read-only media. A file with the magic that is not a usable database is an error
//!   naming it, and nothing is stored.
//! - [`backup_live`] / [`check_live`]: the online backup API and the integrity check for live
//!   databases with writers (the `sqlite-backup` CronJob).
//!
//! The seed opened snapshot databases with `?mode=ro`: that fails without `-shm`, and
//! `immutable=1` silently drops every transaction still in the WAL.

mod copy;
mod discover;
mod error;
mod live;

pub use backup_core::Discovery;
pub use copy::{check_copy, copy_database, integrity_check, remove_scratch, CopyReport};
pub use discover::{find_databases, probe_header};
pub use error::{Error, Result};
pub use live::{backup_live, check_live, open_live};
