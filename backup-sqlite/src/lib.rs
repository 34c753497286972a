//! SQLite databases in snapshots: finding them by their header, copying each with its `-wal` or
//! hot `-journal` so SQLite's own recovery runs on the copy, checking integrity, and storing a
//! plain rollback-journal database with `VACUUM INTO`.
//!
//! Not implemented yet: see the backup-sqlite issue. Detection on bytes is already in
//! [`backup_core::is_sqlite_header`].
