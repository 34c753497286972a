//! The homelab-backup jobs, one module per binary: each binary in `backup-bins` parses its flags
//! and hands a job to `backup_run::run`, which loads the config, takes the locks, runs the job on
//! real (or `--dry-run`) backends, renders the report as text or JSON, publishes its metrics, and
//! exits with the code from [`backup_host::Exit`].
//!
//! | module | binary | does |
//! |---|---|---|
//! | [`lvm_pvc_snapshot`] | `lvm-pvc-snapshot` | `create` (default), `prune`, `list` snapshots of every selected volume; `restore` |
//! | [`daily_backup`] | `daily-backup` | copy each volume's newest snapshot into this ISO week's folder, its SQLite databases, PVE config, pfSense, prune, metrics |
//! | [`sqlite_backup`] | `sqlite-backup` | the SQLite CronJob: `backup`, `check`, `find`, `copy` |
//! | [`backup_dump`] | `backup-dump` | the application dump CronJobs: run a dump tool, store its output checked and gzipped, rotate |
//! | [`offsite_sync_backup`] | `offsite-sync-backup` | the backup disk and the NFS trees to the NAS |
//! | [`nfs_change_tracker`] | `nfs-change-tracker` | the inotify change log of the NFS trees |
//!
//! `backupctl` is a crate of its own beside this one; the encrypted tier is `backup-restic`.

pub mod backup_dump;
pub mod daily_backup;
pub mod lvm_pvc_snapshot;
pub mod man;
pub mod nfs_change_tracker;
pub mod offsite_sync_backup;
pub mod outcome;
pub mod report;
pub mod sqlite_backup;
