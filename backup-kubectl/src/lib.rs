//! The Kubernetes side of homelab-backup: [`KubectlCluster`], the [`backup_core::Cluster`] over
//! `kubectl ... -o json` (the PV map of every job, the scale-down and scale-up of a restore),
//! beside the snapshot backends (`backup-lvm`, `backup-dir`) as their equal. Commands are data
//! run through a [`Runner`]; their output is read by pure parsers ([`parse_pv_list`],
//! [`parse_workloads`]) tested on captured output.

use backup_core::{Cluster, Invocation, PvClaim, Result, Runner, Workload};
use serde_json::Value;

/// `kubectl` output that does not read as expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document is not what `kubectl -o json` prints.
    #[error("read kubectl output: {0}")]
    Kubectl(String),
}

impl From<Error> for backup_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Kubectl(reason) => backup_core::CommandError::Output {
                argv: "kubectl".to_owned(),
                reason,
            }
            .into(),
        }
    }
}

/// `kubectl` driven through a [`Runner`]; `kubeconfig` when given.
pub struct KubectlCluster<'r> {
    runner: &'r dyn Runner,
    kubeconfig: Option<String>,
}

impl<'r> KubectlCluster<'r> {
    /// Talks to the cluster of the default kubeconfig, or `kubeconfig`.
    pub fn new(runner: &'r dyn Runner, kubeconfig: Option<String>) -> Self {
        Self { runner, kubeconfig }
    }

    fn kubectl<I: IntoIterator<Item = S>, S: Into<String>>(&self, args: I) -> Invocation {
        let mut inv = Invocation::new("kubectl", Vec::<String>::new());
        if let Some(k) = &self.kubeconfig {
            inv = inv.arg(format!("--kubeconfig={k}"));
        }
        let inv = inv.arg("--request-timeout=20s").args(args);
        // `get` only reads the cluster (`wait` waits on what a scale did): a --dry-run runs them
        if matches!(
            inv.args
                .iter()
                .find(|a| !a.starts_with("--"))
                .map(String::as_str),
            Some("get")
        ) {
            inv.read_only()
        } else {
            inv
        }
    }
}

fn json(bytes: &[u8], what: &str) -> std::result::Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Kubectl(format!("{what}: not JSON: {e}")))
}

/// Bound PVs with a CSI volume handle, from `kubectl get pv -o json`. PVs without a claim or
/// without CSI (NFS, hostPath) are skipped: they are not LVs.
///
/// # Errors
/// [`Error::Kubectl`] when the document is not a `List` of PVs.
pub fn parse_pv_list(bytes: &[u8]) -> std::result::Result<Vec<PvClaim>, Error> {
    let v = json(bytes, "kubectl get pv")?;
    let items = v["items"]
        .as_array()
        .ok_or_else(|| Error::Kubectl("kubectl get pv: no `items` array".to_owned()))?;
    let mut out: Vec<PvClaim> = items
        .iter()
        .filter_map(|pv| {
            let handle = pv.pointer("/spec/csi/volumeHandle")?.as_str()?;
            let ns = pv.pointer("/spec/claimRef/namespace")?.as_str()?;
            let name = pv.pointer("/spec/claimRef/name")?.as_str()?;
            Some(PvClaim {
                volume_handle: handle.to_owned(),
                namespace: ns.to_owned(),
                pvc: name.to_owned(),
            })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Deployments and StatefulSets (from `kubectl get deployments,statefulsets -n NS -o json`) whose
/// pods mount `pvc`: through `spec.template.spec.volumes[].persistentVolumeClaim.claimName`, or a
/// StatefulSet's `volumeClaimTemplates` (`<template>-<set>-<ordinal>`).
///
/// # Errors
/// [`Error::Kubectl`] when the document is not a `List`.
pub fn parse_workloads(
    bytes: &[u8],
    namespace: &str,
    pvc: &str,
) -> std::result::Result<Vec<Workload>, Error> {
    let v = json(bytes, "kubectl get deployments,statefulsets")?;
    let items = v["items"]
        .as_array()
        .ok_or_else(|| Error::Kubectl("no `items` array".to_owned()))?;
    let mut out = Vec::new();
    for w in items {
        let kind = w["kind"].as_str().unwrap_or_default();
        let name = w
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mounts_it = w
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|vols| {
                vols.iter().any(|vol| {
                    vol.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                        == Some(pvc)
                })
            });
        let templated = kind == "StatefulSet"
            && w.pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .is_some_and(|ts| {
                    ts.iter()
                        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
                        .any(|t| {
                            pvc.strip_prefix(&format!("{t}-{name}-"))
                                .is_some_and(|ord| {
                                    !ord.is_empty() && ord.bytes().all(|b| b.is_ascii_digit())
                                })
                        })
                });
        if !(mounts_it || templated) {
            continue;
        }
        let labels = w
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object);
        let selector = labels
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(Error::Kubectl(format!(
                "{kind} {namespace}/{name} has no spec.selector.matchLabels"
            )));
        }
        out.push(Workload {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            replicas: w
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1) as u32,
            selector,
        });
    }
    out.sort();
    Ok(out)
}

impl Cluster for KubectlCluster<'_> {
    fn pv_claims(&self) -> Result<Vec<PvClaim>> {
        let out = self
            .kubectl(["get", "pv", "-o", "json"])
            .run_checked(self.runner)?;
        Ok(parse_pv_list(&out.stdout)?)
    }

    fn workloads_using(&self, namespace: &str, pvc: &str) -> Result<Vec<Workload>> {
        let out = self
            .kubectl([
                "get",
                "deployments,statefulsets",
                "-n",
                namespace,
                "-o",
                "json",
            ])
            .run_checked(self.runner)?;
        Ok(parse_workloads(&out.stdout, namespace, pvc)?)
    }

    fn scale(&self, w: &Workload, replicas: u32) -> Result<()> {
        self.kubectl([
            "scale".to_owned(),
            format!("{}/{}", w.kind.to_lowercase(), w.name),
            "-n".to_owned(),
            w.namespace.clone(),
            format!("--replicas={replicas}"),
        ])
        .run_checked(self.runner)
        .map(|_| ())
    }

    fn wait_pods_gone(&self, w: &Workload, timeout_secs: u64) -> Result<()> {
        let inv = self.kubectl([
            "wait".to_owned(),
            "--for=delete".to_owned(),
            "pod".to_owned(),
            "-n".to_owned(),
            w.namespace.clone(),
            "-l".to_owned(),
            w.selector.clone(),
            format!("--timeout={timeout_secs}s"),
        ]);
        let out = self.runner.run(&inv)?;
        // `kubectl wait` with nothing left to wait for says "no matching resources found"
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.success() || stderr.contains("no matching resources found") {
            Ok(())
        } else {
            // the pods are still there when the wait ends
            Err(backup_core::Error::occupied(
                format!("wait for the pods of {}/{} to be gone", w.namespace, w.name),
                stderr.trim().to_owned(),
            ))
        }
    }
}
