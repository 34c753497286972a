//! The Kubernetes side: which PVC an LV belongs to, and the workloads that use it.

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A PersistentVolume bound to a claim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PvClaim {
    /// `spec.csi.volumeHandle` (Proxmox CSI: `<cluster>/<node>/<storage>:<lv>`), or the LV name
    /// itself for a static entry.
    pub volume_handle: String,
    /// `spec.claimRef.namespace`.
    pub namespace: String,
    /// `spec.claimRef.name`.
    pub pvc: String,
}

impl PvClaim {
    /// True when this PV is backed by `lv`: the handle is the LV name, or ends with it after a
    /// `/` or `:` (so `vm-1-pvc-a` never matches a handle for `xvm-1-pvc-a`).
    pub fn is_for_lv(&self, lv: &str) -> bool {
        match self.volume_handle.strip_suffix(lv) {
            Some("") => true,
            Some(prefix) => prefix.ends_with(['/', ':']),
            None => false,
        }
    }
}

/// A Deployment or StatefulSet that mounts a PVC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Replicas before the restore scaled it.
    pub replicas: u32,
    /// Its pod label selector (`app=vaultwarden,tier=web`), to wait for its pods.
    pub selector: String,
}

/// The cluster API, as much of it as backups and restores need.
pub trait Cluster: Send + Sync {
    /// Every bound PV with its claim.
    ///
    /// # Errors
    /// When the API cannot be reached or answers nonsense.
    fn pv_claims(&self) -> Result<Vec<PvClaim>>;

    /// Deployments and StatefulSets whose pod template mounts `pvc` in `namespace`.
    ///
    /// # Errors
    /// When the API cannot be reached.
    fn workloads_using(&self, namespace: &str, pvc: &str) -> Result<Vec<Workload>>;

    /// Scales `workload` to `replicas`.
    ///
    /// # Errors
    /// When the API refuses.
    fn scale(&self, workload: &Workload, replicas: u32) -> Result<()>;

    /// Waits until no pod of `workload` is left, up to `timeout_secs`.
    ///
    /// # Errors
    /// When pods remain after the timeout.
    fn wait_pods_gone(&self, workload: &Workload, timeout_secs: u64) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_matching_needs_a_boundary() {
        let c = |h: &str| PvClaim {
            volume_handle: h.into(),
            namespace: "n".into(),
            pvc: "p".into(),
        };
        assert!(c("pve/node1/local-lvm:vm-100-pvc-a").is_for_lv("vm-100-pvc-a"));
        assert!(c("vm-100-pvc-a").is_for_lv("vm-100-pvc-a"));
        assert!(!c("pve/node1/local-lvm:xvm-100-pvc-a").is_for_lv("vm-100-pvc-a"));
        assert!(!c("pve/node1/local-lvm:vm-100-pvc-ab").is_for_lv("vm-100-pvc-a"));
    }
}
