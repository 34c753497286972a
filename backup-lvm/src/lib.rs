//! The LVM thin-snapshot backend of homelab-backup: `lvs` JSON parsing, `lvcreate -s`,
//! `lvchange -ay -K`, `lvremove`, `lvrename`, pool usage and the restore swap, all as
//! [`backup_core::Invocation`]s run through a [`backup_core::Runner`].
//!
//! Not implemented yet: see the backup-lvm issue. The `dir` backend in `backup-bins` plugs into
//! the same [`backup_core::VolumeManager`] trait meanwhile.
