//! The LVM thin-snapshot backend of homelab-backup, and the LV swap of a restore.
//!
//! Every LVM call is an [`backup_core::Invocation`] built by a named constructor in
//! [`commands`] and run through a [`backup_core::Runner`]; its output is read by a pure parser
//! ([`parse_lvs`]) tested on captured output. The Kubernetes side (the PV map, scaling a
//! workload down and up) is `backup-kubectl`, reached here only through
//! [`backup_core::Cluster`].
//!
//! - [`LvmVolumeManager`]: the [`backup_core::VolumeManager`] over one thin pool: source volumes
//!   (never snapshots), `lvcreate --snapshot`, activation of thin snapshots with
//!   `--ignoreactivationskip` (a plain `-ay` exits 0 and activates nothing), pool usage.
//! - [`plan_restore`] / [`run_restore`]: the LV swap with undo.

pub mod commands;
mod error;
mod lvs;
mod manager;
mod naming;
mod restore;

pub use error::{Error, Result};
pub use lvs::{parse_lvs, Lv, LVS_FIELDS};
pub use manager::{is_source_volume, LvmVolumeManager};
pub use naming::{parse_pre_restore_name, pre_restore_name};
pub use restore::{plan_restore, run_restore, RestoreReport, Step, POD_WAIT_SECS};
