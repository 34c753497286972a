//! Volume selection: which volumes a run backs up, under which (namespace, pvc), and why not.

use serde::Serialize;

use crate::cluster::PvClaim;
use crate::k8s_name::{check_folder_name, check_namespace, check_pvc_name};
use crate::layout::UNRESOLVED_NAMESPACE;
use crate::pattern::LvPattern;

/// A volume picked for backup, with where its copy goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SelectedVolume {
    /// The LV (or folder) name.
    pub lv: String,
    /// Its namespace, or `_unresolved`.
    pub namespace: String,
    /// Its PVC name, or the LV name when unresolved.
    pub pvc: String,
    /// False when no PV named this LV: it is backed up under `_unresolved/<lv>`.
    pub resolved: bool,
}

/// What selection decided, every volume accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Volumes to back up, sorted by LV name.
    pub selected: Vec<SelectedVolume>,
    /// Volumes skipped because their namespace is excluded.
    pub excluded: Vec<SelectedVolume>,
    /// Volumes whose name does not match `lv-pattern` (VM disks, the pool).
    pub not_matching: Vec<String>,
    /// Volumes matching the pattern whose namespace or PVC name cannot be a folder name (not a
    /// Kubernetes name, not UTF-8): never copied, each reported with the reason.
    pub refused: Vec<RefusedVolume>,
}

/// A matching volume that cannot be backed up under its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedVolume {
    /// The volume with the names it resolved to.
    #[serde(flatten)]
    pub volume: SelectedVolume,
    /// Why it is refused.
    pub reason: String,
}

impl Selection {
    /// Selected volumes that could not be resolved to a PVC: backed up, and worth a warning.
    pub fn unresolved(&self) -> impl Iterator<Item = &SelectedVolume> {
        self.selected.iter().filter(|v| !v.resolved)
    }

    /// How many volumes matched the pattern (selected, excluded or refused).
    pub fn matched(&self) -> usize {
        self.selected.len() + self.excluded.len() + self.refused.len()
    }
}

/// Selects among `volumes` those matching `pattern`, resolves each to its PVC through `claims`
/// (first match wins; `claims` usually come from the API, then the static map), and sets aside
/// those in `exclude_namespaces`. A volume no claim names is still selected, under namespace
/// `_unresolved` with its LV name as the pvc: a backup tool never drops data silently.
pub fn select_volumes(
    volumes: &[String],
    pattern: &LvPattern,
    claims: &[PvClaim],
    exclude_namespaces: &[String],
) -> Selection {
    let mut sel = Selection::default();
    let mut sorted: Vec<&String> = volumes.iter().collect();
    sorted.sort();
    sorted.dedup();
    for lv in sorted {
        if !pattern.matches(lv) {
            sel.not_matching.push(lv.clone());
            continue;
        }
        let volume = match claims.iter().find(|c| c.is_for_lv(lv)) {
            Some(c) => SelectedVolume {
                lv: lv.clone(),
                namespace: c.namespace.clone(),
                pvc: c.pvc.clone(),
                resolved: true,
            },
            None => SelectedVolume {
                lv: lv.clone(),
                namespace: UNRESOLVED_NAMESPACE.to_owned(),
                pvc: lv.clone(),
                resolved: false,
            },
        };
        let names_ok = if volume.resolved {
            check_namespace(&volume.namespace).and_then(|()| check_pvc_name(&volume.pvc))
        } else {
            check_folder_name(&volume.pvc)
        };
        if let Err(reason) = names_ok {
            sel.refused.push(RefusedVolume { volume, reason });
        } else if volume.resolved && exclude_namespaces.contains(&volume.namespace) {
            sel.excluded.push(volume);
        } else {
            sel.selected.push(volume);
        }
    }
    sel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_resolves_excludes_and_keeps_the_unresolved() {
        let vols: Vec<String> = [
            "vm-100-pvc-a",
            "vm-101-pvc-b",
            "vm-102-pvc-c",
            "vm-100-disk-0",
            "data",
        ]
        .map(String::from)
        .to_vec();
        let claims = vec![
            PvClaim {
                volume_handle: "pve/n1/local-lvm:vm-100-pvc-a".into(),
                namespace: "vaultwarden".into(),
                pvc: "vaultwarden-data".into(),
            },
            PvClaim {
                volume_handle: "pve/n1/local-lvm:vm-101-pvc-b".into(),
                namespace: "dbaas".into(),
                pvc: "pg-data".into(),
            },
        ];
        let sel = select_volumes(
            &vols,
            &LvPattern::new("vm-*-pvc-*").unwrap(),
            &claims,
            &["dbaas".to_owned()],
        );
        let names: Vec<_> = sel
            .selected
            .iter()
            .map(|v| format!("{}/{}", v.namespace, v.pvc))
            .collect();
        assert_eq!(
            names,
            ["vaultwarden/vaultwarden-data", "_unresolved/vm-102-pvc-c"]
        );
        assert_eq!(sel.excluded[0].lv, "vm-101-pvc-b");
        assert_eq!(sel.not_matching, ["data", "vm-100-disk-0"]);
        assert_eq!(sel.unresolved().count(), 1);
        assert_eq!(sel.matched(), 3);
    }

    #[test]
    fn names_that_cannot_be_folders_are_refused_with_the_reason() {
        let vols: Vec<String> = [
            "vm-1-pvc-a",
            "vm-2-pvc-b",
            "vm-3-pvc-\u{FFFD}",
            "vm-4-pvc-d",
        ]
        .map(String::from)
        .to_vec();
        let claim = |lv: &str, ns: &str, pvc: &str| PvClaim {
            volume_handle: format!("x:{lv}"),
            namespace: ns.into(),
            pvc: pvc.into(),
        };
        let claims = vec![
            claim("vm-1-pvc-a", ".complete", "data"),
            claim("vm-2-pvc-b", "ok", "../../etc"),
            claim("vm-4-pvc-d", "ok", "fine"),
        ];
        let sel = select_volumes(&vols, &LvPattern::new("vm-*").unwrap(), &claims, &[]);
        let refused: Vec<_> = sel
            .refused
            .iter()
            .map(|r| (r.volume.lv.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(
            refused[0].1.contains("namespace `.complete`"),
            "{refused:?}"
        );
        assert!(refused[1].1.contains("PVC name `../../etc`"), "{refused:?}");
        assert!(refused[2].1.contains("not valid UTF-8"), "{refused:?}");
        assert_eq!(sel.selected.len(), 1);
    }
}
