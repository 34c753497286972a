//! `backupctl`: what is protected, is it intact, bring it back.
//!
//! Everything here reads live state: the volumes and snapshots of the configured backend, the
//! PV claims, the complete versions and their per-file records on the backup disk, the SQLite
//! copies, pfSense and PVE config weeks, the dump folders of `[dumps] folders`, the offsite state
//! and the change tracker's markers. Nothing is kept in a table by hand.

mod alerts;
pub mod check;
pub mod cli;
mod config_cmd;
mod drill;
mod dumps;
#[cfg(test)]
mod fixture;
mod history;
mod inventory;
mod notify_cmd;
mod pvc_ref;
mod restore;
mod site;
mod status;
mod units;
mod verify;
mod verify_offsite;

pub use alerts::{alerts, AlertsReport};
pub use check::{check_tree, CheckReport, Content, Difference};
pub use config_cmd::{ConfigText, CONFIG_EXAMPLE};
pub use drill::{drill, DrillArgs, DrillReport, DumpsInDrill};
pub use dumps::{drill_dumps, restore_dump, DumpDrilled, DumpRestoreArgs, DumpRestoreReport};
pub use history::{diff, find, ls, Change, DiffReport, FindReport, Found, LsReport};
pub use inventory::{list, DumpListing, ListReport, PvcListing, VersionListing};
pub use notify_cmd::{notify_test, NotifyTestReport};
pub use pvc_ref::PvcRef;
pub use restore::{
    plan_into_volume, restore_into_volume, restore_pfsense, restore_pvc, restore_pve_config,
    restore_sqlite, run_into_volume, IntoVolumeDeps, IntoVolumeReport, IntoVolumeStep,
    PvcRestoreArgs, RestoreReport,
};
pub use site::drill_site;
pub use status::{status, Gap, StatusReport, StatusRow};
pub use units::{units, write_dropins, write_units, Unit, UnitsReport};
pub use verify::{verify, VerifyArgs, VerifyReport};
pub use verify_offsite::verify_offsite;
