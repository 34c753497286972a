//! `lvm-pvc-snapshot create` and `prune` on the LVM backend, against a recording runner that
//! answers `lvs` with a captured-shape report: every LVM call pinned, and the pool guard.

use backup_core::testing::{FakeMetricsSink, RecordingRunner, Transcript};
use backup_core::{Config, MetricsSink, Output, PvClaim};
use backup_jobs::lvm_pvc_snapshot::create;
use backup_lvm::LvmVolumeManager;
use backup_run::Outcome;
use camino::Utf8Path;
use chrono::DateTime;

fn cfg(extra: &str) -> Config {
    Config::from_toml(
        Utf8Path::new("/etc/homelab-backup/config.toml"),
        &format!("backup-root = \"/mnt/backup\"\n[snapshots]\nexclude-namespaces = [\"dbaas\"]\nkeep-days = 7\n{extra}"),
    )
    .unwrap()
}

fn claims() -> Vec<PvClaim> {
    backup_kubectl::parse_pv_list(
        &std::fs::read(fixtures::data_dir().join("kubectl/pv.json")).unwrap(),
    )
    .unwrap()
}

fn run(config: &Config, pool_data_percent: &str) -> String {
    let t = Transcript::new();
    let runner = RecordingRunner::new(&t);
    let lvs = std::fs::read_to_string(fixtures::data_dir().join("lvm/lvs-scenario.json"))
        .unwrap()
        .replace(
            "\"data_percent\":\"40.00\"",
            &format!("\"data_percent\":\"{pool_data_percent}\""),
        );
    runner.answer(&["lvs"], Output::ok(lvs));
    let lvm = LvmVolumeManager::new("pve", "data", &runner);
    let metrics = FakeMetricsSink::new();
    let now = DateTime::parse_from_rfc3339("2026-01-05T03:00:00Z")
        .unwrap()
        .to_utc();
    let report = create(config, &lvm, &claims(), now).unwrap();
    for g in report.metrics() {
        metrics.publish(&g).unwrap();
    }
    format!(
        "{}\n-- refused: {:?}\n-- exit: {:?}\n-- metrics:\n{}",
        t.text(),
        report.refused,
        report.exit,
        metrics.text()
    )
}

#[test]
fn create_prunes_first_then_snapshots_every_selected_volume() {
    // excluded: dbaas; never snapshotted: the VM disk (pattern), our snapshots, the foreign
    // snapshot, the volume set aside by a restore (and pruned: older than keep-days)
    let text: Vec<String> = run(&cfg(""), "40.00")
        .lines()
        .filter(|l| !l.starts_with("$ lvs"))
        .map(String::from)
        .collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn the_pool_guard_refuses_every_snapshot_when_the_pool_is_nearly_full() {
    let text = run(&cfg("min-pool-free-percent = 15\n"), "90.00");
    assert!(!text.contains("lvcreate"), "{text}");
    assert!(text.contains("below min-pool-free-percent = 15"), "{text}");
    assert!(text.contains("-- exit: Failed"), "{text}");
    assert!(text.contains("lvm_thin_pool_free_percent 10"), "{text}");
    assert!(text.contains("lvm_snapshot_last_run_success 0"), "{text}");
}

#[test]
fn a_dry_run_refuses_where_the_real_run_refuses() {
    // the preview runs the same planner: a nearly full pool is refused there too, and nothing
    // but `lvs` runs
    let t = Transcript::new();
    let runner = RecordingRunner::new(&t);
    let lvs = std::fs::read_to_string(fixtures::data_dir().join("lvm/lvs-scenario.json"))
        .unwrap()
        .replace("\"data_percent\":\"40.00\"", "\"data_percent\":\"90.00\"");
    runner.answer(&["lvs"], Output::ok(lvs));
    let would = backup_host::dry_run::Would::new();
    let lvm = backup_host::dry_run::DryRunVolumes::new(
        Box::new(LvmVolumeManager::new("pve", "data", &runner)),
        &would,
    );
    let now = DateTime::parse_from_rfc3339("2026-01-05T03:00:00Z")
        .unwrap()
        .to_utc();
    let report = create(&cfg("min-pool-free-percent = 15\n"), &lvm, &claims(), now).unwrap();
    assert!(report.refused.is_some(), "{report:?}");
    assert!(report.taken.is_empty());
    assert!(
        t.lines().iter().all(|l| l.starts_with("$ lvs")),
        "{:?}",
        t.lines()
    );
    assert!(
        would.lines().iter().all(|l| l.starts_with("remove ")),
        "{:?}",
        would.lines()
    );
}

/// `lvm-pvc-snapshot restore` against the captured `lvs` report and a fake cluster: the run's
/// ports, no binary.
mod restore {
    use super::*;
    use backup_core::testing::FakeCluster;
    use backup_core::Workload;
    use backup_jobs::lvm_pvc_snapshot::restore::{restore_of, RestoreDeps};

    /// The captured `lvs` report and a cluster with vaultwarden's workload; the LV `gone` left
    /// out of the report.
    fn world(gone: &str) -> (Transcript, RecordingRunner, FakeCluster) {
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);
        let lvs =
            std::fs::read_to_string(fixtures::data_dir().join("lvm/lvs-scenario.json")).unwrap();
        let mut report: serde_json::Value = serde_json::from_str(&lvs).unwrap();
        report["report"][0]["lv"]
            .as_array_mut()
            .unwrap()
            .retain(|lv| lv["lv_name"] != gone);
        runner.answer(&["lvs"], Output::ok(report.to_string()));
        let cluster = FakeCluster::new(claims(), &t);
        cluster.add_workload(
            "vaultwarden-data",
            Workload {
                kind: "Deployment".into(),
                namespace: "vaultwarden".into(),
                name: "vaultwarden".into(),
                replicas: 1,
                selector: "app=vaultwarden".into(),
            },
        );
        (t, runner, cluster)
    }

    fn restore(dry_run: bool, lv: &str, snapshot: &str) -> (String, backup_host::Result<String>) {
        restore_without(dry_run, lv, snapshot, "")
    }

    /// A restore with the LV `gone` missing from the volume group; the PV map's reads are in
    /// the transcript (`read the PV map`).
    fn restore_without(
        dry_run: bool,
        lv: &str,
        snapshot: &str,
        gone: &str,
    ) -> (String, backup_host::Result<String>) {
        let (t, runner, cluster) = world(gone);
        let lvm = LvmVolumeManager::new("pve", "data", &runner);
        let map = || {
            t.push("read the PV map");
            (claims(), Vec::new())
        };
        let deps = RestoreDeps {
            lvm: &lvm,
            cluster: &cluster,
            claims: &map,
            now: DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
                .unwrap()
                .to_utc(),
            dry_run,
        };
        let got = restore_of(&deps, lv, snapshot).map(|o| {
            let mut out = o.steps.join("\n");
            if let Some(r) = o.report {
                out.push_str(&format!("\n-- done {}, state: {}", r.done.len(), r.state));
            }
            out
        });
        (t.text(), got)
    }

    /// The swap in order: workloads down and gone, the volume set aside, the snapshot made the
    /// volume, the workloads back; a dry run lists the same steps and only reads (`lvs`).
    #[test]
    fn a_restore_swaps_in_order_and_a_dry_run_only_reads() {
        let snap = "vm-9999-pvc-0a1b2c3d-snap-20260104030000";
        let (calls, got) = restore(true, "vm-9999-pvc-0a1b2c3d", snap);
        let steps = got.unwrap();
        assert_eq!(steps.lines().count(), 7, "{steps}");
        assert!(steps.starts_with("scale Deployment vaultwarden/vaultwarden from 1 to 0"));
        let changed: Vec<&str> = calls
            .lines()
            .filter(|l| {
                ["lvchange", "lvrename", "lvcreate", "kubectl scale"]
                    .iter()
                    .any(|c| l.contains(c))
            })
            .collect();
        assert!(changed.is_empty(), "a dry run changed something:\n{calls}");
        let (calls, got) = restore(false, "vm-9999-pvc-0a1b2c3d", snap);
        let got = got.unwrap();
        assert!(got.ends_with("-- done 7, state: restored"), "{got}");
        let done: Vec<&str> = calls
            .lines()
            .filter(|l| {
                !l.starts_with("$ lvs") && !l.starts_with("kubectl find") && *l != "read the PV map"
            })
            .collect();
        assert_eq!(
            done,
            [
                "kubectl scale deployment/vaultwarden -n vaultwarden --replicas=0",
                "wait for pods of vaultwarden/vaultwarden to be gone",
                "$ lvchange --activate n pve/vm-9999-pvc-0a1b2c3d",
                "$ lvrename pve vm-9999-pvc-0a1b2c3d vm-9999-pvc-0a1b2c3d-pre-restore-20260105090000",
                "$ lvcreate --snapshot --setactivationskip n --addtag homelab-backup.restored \
                 --name vm-9999-pvc-0a1b2c3d pve/vm-9999-pvc-0a1b2c3d-snap-20260104030000",
                "$ lvchange --activate y pve/vm-9999-pvc-0a1b2c3d",
                "kubectl scale deployment/vaultwarden -n vaultwarden --replicas=1",
            ]
        );
    }

    /// A snapshot that does not exist (66), one of another volume (2) and a volume that does
    /// not exist (66) are refused before the cluster or the PV map is asked anything.
    #[test]
    fn a_wrong_snapshot_or_volume_is_refused_before_anything_is_scaled() {
        let snap = "vm-9999-pvc-0a1b2c3d-snap-20260104030000";
        let unknown = "vm-9999-pvc-0a1b2c3d-snap-20991231030000";
        for (lv, snap, gone, code) in [
            ("vm-9999-pvc-0a1b2c3d", unknown, "", 66),
            ("vm-9999-pvc-11111111", snap, "", 2),
            ("vm-9999-pvc-0a1b2c3d", snap, "vm-9999-pvc-0a1b2c3d", 66),
        ] {
            let (calls, got) = restore_without(false, lv, snap, gone);
            let e = got.unwrap_err();
            assert_eq!(e.exit().code(), code, "{e}");
            assert!(!calls.contains("kubectl"), "{calls}");
            assert!(!calls.contains("read the PV map"), "{calls}");
        }
    }
}
