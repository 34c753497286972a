//! `backupctl`: what is protected, is it intact, bring it back.
//!
//! Everything here reads live state: the volumes and snapshots of the configured backend, the
//! PV claims, the complete versions and their per-file records on the backup disk, the SQLite
//! copies, pfSense and PVE config weeks, the dump folders of `[dumps] folders`, the offsite state
//! and the change tracker's markers. Nothing is kept in a table by hand.

mod alerts;
pub mod check;
pub mod cli;
mod drill;
mod inventory;
mod restore;
mod status;
mod units;
mod verify;

pub use alerts::{alerts, AlertsReport};
pub use check::{check_tree, CheckReport, Content, Difference};
pub use drill::{drill, DrillArgs, DrillReport};
pub use inventory::{list, DumpListing, ListReport, PvcListing, VersionListing};
pub use restore::{
    plan_into_volume, restore_into_volume, restore_pfsense, restore_pvc, restore_pve_config,
    restore_sqlite, run_into_volume, IntoVolumeDeps, IntoVolumeReport, IntoVolumeStep,
    PvcRestoreArgs, RestoreReport,
};
pub use status::{status, Gap, StatusReport, StatusRow};
pub use units::{units, Unit, UnitsReport};
pub use verify::{verify, VerifyArgs, VerifyReport};

/// `backupctl units`: prints them, or writes each into `dir`.
///
/// # Errors
/// When a unit cannot be written.
pub fn write_units(
    cfg: Option<&backup_core::Config>,
    bindir: &str,
    dir: Option<&camino::Utf8Path>,
    dry_run: bool,
) -> crate::error::Result<UnitsReport> {
    let all = units(cfg, bindir);
    if let (Some(dir), false) = (dir, dry_run) {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::Error::io("create folder", dir, e))?;
        for u in &all {
            crate::fs_store::write_atomic(&dir.join(&u.name), u.text.as_bytes())?;
            let p = dir.join(&u.name);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| crate::error::Error::io("chmod", p, e))?;
        }
    }
    Ok(UnitsReport {
        units: all,
        written: dir.filter(|_| !dry_run).map(ToString::to_string),
    })
}

/// The commented example configuration, as the package installs it.
pub const CONFIG_EXAMPLE: &str = include_str!("../../deploy/config.example.toml");

/// `backupctl config example` and `check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigText {
    /// The file checked, when one was.
    pub file: Option<String>,
    /// The text shown.
    pub text: String,
    /// The effective configuration (`check`).
    pub effective: Option<serde_json::Value>,
}

impl ConfigText {
    /// The example.
    pub fn example() -> Self {
        Self {
            file: None,
            text: CONFIG_EXAMPLE.to_owned(),
            effective: None,
        }
    }

    /// A loaded (so valid) config, with every value.
    ///
    /// # Errors
    /// When it cannot be shown.
    pub fn check(cfg: &backup_core::Config) -> crate::error::Result<Self> {
        let value = serde_json::to_value(cfg)
            .map_err(|e| crate::error::Error::Usage(format!("cannot show the config: {e}")))?;
        let text = format!(
            "{}: valid. Effective values, defaults filled in:\n{}",
            cfg.file,
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        Ok(Self {
            file: Some(cfg.file.to_string()),
            text,
            effective: Some(value),
        })
    }
}

impl crate::run::Outcome for ConfigText {
    fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        self.text.trim_end().to_owned()
    }
}
