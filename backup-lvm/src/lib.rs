//! The LVM thin-snapshot backend of homelab-backup, and the Kubernetes side of a restore.
//!
//! Every LVM and kubectl call is an [`backup_core::Invocation`] built by a named constructor in
//! [`commands`] and run through a [`backup_core::Runner`]; their output is read by pure parsers
//! ([`parse_lvs`], [`parse_pv_list`], [`parse_workloads`]) tested on captured output.
//!
//! - [`LvmVolumeManager`]: the [`backup_core::VolumeManager`] over one thin pool: source volumes
//!   (never snapshots), `lvcreate --snapshot`, activation of thin snapshots with
//!   `--ignoreactivationskip` (a plain `-ay` exits 0 and activates nothing), pool usage.
//! - [`KubectlCluster`]: the [`backup_core::Cluster`] over `kubectl -o json`.
//! - [`plan_restore`] / [`run_restore`]: the LV swap with undo.

pub mod commands;
mod error;
mod kubectl;
mod lvs;
mod manager;
mod naming;
mod restore;

pub use error::{Error, Result};
pub use kubectl::{parse_pv_list, parse_workloads, KubectlCluster};
pub use lvs::{parse_lvs, Lv, LVS_FIELDS};
pub use manager::{is_source_volume, LvmVolumeManager};
pub use naming::{parse_pre_restore_name, pre_restore_name};
pub use restore::{plan_restore, run_restore, RestoreReport, Step, POD_WAIT_SECS};
