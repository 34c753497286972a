//! The backup-root layout, computed in one place.
//!
//! ```text
//! <root>/pvc-data/<YYYY-WW>/<namespace>/<pvc>/...                  file copy of the PVC
//! <root>/pvc-data/<YYYY-WW>/.complete/<namespace>/<pvc>             completion marker
//! <root>/pvc-data/<YYYY-WW>/.records/<namespace>/<pvc>              per-file record
//! <root>/pvc-data/<YYYY-WW>/.damaged/<namespace>/<pvc>              paths verify found damaged
//! <root>/pvc-data/<YYYY-WW>/.repaired/<namespace>/<pvc>             damaged paths sent again, until
//!                                                                    offsite step 1 re-sent them
//! <root>/pvc-data/<YYYY-WW>/.staging/{tree,record,commit,spare}/<namespace>/<pvc>   a run's update
//! <root>/sqlite-backup/<YYYY-WW>/<namespace>/<pvc>/<path of the db inside the PVC>
//! <root>/pfsense/<YYYY-WW>/config.xml, pfsense-full.tar.gz
//! <root>/pve-config/<YYYY-WW>/<configured path>/...                PVE host config, weekly
//! <root>/pve-config/<YYYY-WW>/.complete                              its completion marker
//! ```
//!
//! The completion marker sits beside the copies, not inside one: `rsync --delete` into the copy
//! must not remove it, and a restore of the copy must not carry it along. `.complete` cannot clash
//! with a namespace (Kubernetes names never start with a dot).

use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

use crate::week::IsoWeek;

/// Name of the folder of completion markers inside a week folder.
pub const COMPLETE_DIR: &str = ".complete";

/// Namespace under which a volume that could not be resolved to a PVC is backed up.
pub const UNRESOLVED_NAMESPACE: &str = "_unresolved";

/// A week's pfSense config, in `pfsense/<week>/`.
pub const CONFIG_XML: &str = "config.xml";

/// A whole pfSense `config.xml`: the document element opens near the start and closes at the end.
pub fn is_whole_pfsense_config(xml: &[u8]) -> bool {
    let end = xml.trim_ascii_end();
    looks_like_pfsense(xml) && end.ends_with(b"</pfsense>")
}

/// Whether `xml` opens a pfSense `config.xml` (its document element within the first 4 KiB).
pub fn looks_like_pfsense(xml: &[u8]) -> bool {
    let head = &xml[..xml.len().min(4096)];
    head.windows(9)
        .any(|w| w == b"<pfsense>" || w == b"<pfsense ")
}

/// A week's pfSense full file system tar, in `pfsense/<week>/`.
pub const FULL_TAR: &str = "pfsense-full.tar.gz";

/// The parts of a version's update under `pvc-data/<week>/.staging/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingPart {
    /// The new copy, a hardlink tree of the complete one plus the changes.
    Tree,
    /// The new record.
    Record,
    /// The journal of the swap: what to finish or undo after a crash.
    Commit,
    /// The copy the last swap replaced, kept to build the next update of the same week from:
    /// brought up to date in place, it costs the changes, not a hardlink tree of every file.
    Spare,
}

/// The backup root and every path under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRoot {
    root: Utf8PathBuf,
}

impl BackupRoot {
    /// The layout under `root`.
    pub fn new(root: impl Into<Utf8PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root itself.
    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    /// `pvc-data/`.
    pub fn pvc_data(&self) -> Utf8PathBuf {
        self.root.join("pvc-data")
    }

    /// `pvc-data/<week>/`.
    pub fn pvc_week(&self, week: IsoWeek) -> Utf8PathBuf {
        self.pvc_data().join(week.to_string())
    }

    /// `pvc-data/<week>/<namespace>/<pvc>/`: the copy of one PVC for one week.
    pub fn pvc_copy(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.pvc_week(week).join(namespace).join(pvc)
    }

    /// `pvc-data/<week>/.complete/<namespace>/<pvc>`: present once the copy finished cleanly.
    pub fn pvc_complete_marker(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.pvc_week(week)
            .join(COMPLETE_DIR)
            .join(namespace)
            .join(pvc)
    }

    /// `pvc-data/<week>/.records/<namespace>/<pvc>`: the per-file record of that copy, beside
    /// it (a namespace never starts with a dot).
    pub fn pvc_record(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.pvc_week(week)
            .join(".records")
            .join(namespace)
            .join(pvc)
    }

    /// `pvc-data/<week>/.damaged/<namespace>/<pvc>`: the paths of that copy `backupctl verify`
    /// found differing from the record (NUL-separated). The version is *damaged*: the next daily
    /// run never links from those files, and re-sends them.
    pub fn pvc_damaged(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.pvc_week(week)
            .join(".damaged")
            .join(namespace)
            .join(pvc)
    }

    /// `pvc-data/<week>/.repaired/<namespace>/<pvc>`: paths of that copy that were damaged and
    /// sent again from the snapshot (NUL-separated), kept until offsite step 1 has sent them
    /// again too: the repair keeps size and mtime, so rsync's quick check alone would never
    /// replace a damaged copy that already went offsite.
    pub fn pvc_repaired(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.pvc_week(week)
            .join(".repaired")
            .join(namespace)
            .join(pvc)
    }

    /// `pvc-data/<week>/.staging/<part>/<namespace>/<pvc>`: where a run builds the update of a
    /// version (`tree`: the copy, `record`: its record, `commit`: the journal of the swap) while
    /// the complete version stays as it is, and (`spare`) the copy the last swap replaced. Never
    /// a version: it starts with a dot.
    pub fn pvc_staging(
        &self,
        part: StagingPart,
        week: IsoWeek,
        namespace: &str,
        pvc: &str,
    ) -> Utf8PathBuf {
        let part = match part {
            StagingPart::Tree => "tree",
            StagingPart::Record => "record",
            StagingPart::Commit => "commit",
            StagingPart::Spare => "spare",
        };
        self.pvc_week(week)
            .join(".staging")
            .join(part)
            .join(namespace)
            .join(pvc)
    }

    /// `sqlite-backup/`.
    pub fn sqlite_backup(&self) -> Utf8PathBuf {
        self.root.join("sqlite-backup")
    }

    /// `sqlite-backup/<week>/<namespace>/<pvc>/`.
    pub fn sqlite_copy(&self, week: IsoWeek, namespace: &str, pvc: &str) -> Utf8PathBuf {
        self.sqlite_backup()
            .join(week.to_string())
            .join(namespace)
            .join(pvc)
    }

    /// `pfsense/`.
    pub fn pfsense(&self) -> Utf8PathBuf {
        self.root.join("pfsense")
    }

    /// `pfsense/<week>/`.
    pub fn pfsense_week(&self, week: IsoWeek) -> Utf8PathBuf {
        self.pfsense().join(week.to_string())
    }

    /// `pve-config/`: weekly versions of the PVE host's configuration.
    pub fn pve_config(&self) -> Utf8PathBuf {
        self.root.join("pve-config")
    }

    /// `pve-config/<week>/`: one version; each configured path under it by its absolute path
    /// (`pve-config/2026-02/etc/pve/...`).
    pub fn pve_config_week(&self, week: IsoWeek) -> Utf8PathBuf {
        self.pve_config().join(week.to_string())
    }

    /// `pve-config/<week>/.complete`: present once every path of that week was copied. rsync
    /// writes only below the configured paths, so `--delete` never touches it.
    pub fn pve_config_marker(&self, week: IsoWeek) -> Utf8PathBuf {
        self.pve_config_week(week).join(COMPLETE_DIR)
    }

    /// The lock file `daily-backup` holds for its whole run.
    pub fn lock_file(&self) -> Utf8PathBuf {
        self.root.join(".daily-backup.lock")
    }
}

/// The text stored in a completion marker: when the version was completed.
pub fn format_marker(completed_at: DateTime<Utc>) -> String {
    format!(
        "{}\n",
        completed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Reads a completion marker back; `None` when it is not one (a torn write reads as incomplete).
pub fn parse_marker(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Name of the snapshot of `volume` taken at `at`: `<volume>-snap-<YYYYMMDDHHMMSS>` (UTC).
pub fn snapshot_name(volume: &str, at: DateTime<Utc>) -> String {
    format!("{volume}-snap-{}", at.format("%Y%m%d%H%M%S"))
}

/// Splits a name made by [`snapshot_name`] back into the volume and the time.
pub fn parse_snapshot_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    let (volume, stamp) = name.rsplit_once("-snap-")?;
    if volume.is_empty() || stamp.len() != 14 {
        return None;
    }
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").ok()?;
    Some((volume, t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = BackupRoot::new("/mnt/backup");
        let w: IsoWeek = "2026-01".parse().unwrap();
        assert_eq!(
            r.pvc_copy(w, "ns", "data"),
            "/mnt/backup/pvc-data/2026-01/ns/data"
        );
        assert_eq!(
            r.pvc_complete_marker(w, "ns", "data"),
            "/mnt/backup/pvc-data/2026-01/.complete/ns/data"
        );
        assert_eq!(
            r.sqlite_copy(w, "ns", "data"),
            "/mnt/backup/sqlite-backup/2026-01/ns/data"
        );
        assert_eq!(r.pfsense_week(w), "/mnt/backup/pfsense/2026-01");
        assert_eq!(r.pve_config(), "/mnt/backup/pve-config");
    }

    #[test]
    fn snapshot_names_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-01-05T03:00:07Z")
            .unwrap()
            .to_utc();
        let name = snapshot_name("vm-100-pvc-a", at);
        assert_eq!(name, "vm-100-pvc-a-snap-20260105030007");
        assert_eq!(parse_snapshot_name(&name), Some(("vm-100-pvc-a", at)));
        assert_eq!(parse_snapshot_name("vm-100-pvc-a"), None);
        assert_eq!(parse_snapshot_name("vm-100-pvc-a-snap-2026"), None);
    }

    #[test]
    fn markers_round_trip_and_torn_ones_are_incomplete() {
        let at = DateTime::parse_from_rfc3339("2026-01-05T05:12:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_marker(&format_marker(at)), Some(at));
        assert_eq!(parse_marker(""), None);
        assert_eq!(parse_marker("2026-01-0"), None);
    }
}
