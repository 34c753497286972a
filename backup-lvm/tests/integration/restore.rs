//! Restores against a recording runner (LVM) and a fake cluster: the whole swap, and a failure
//! at every step with its undo, each transcript pinned.

use backup_core::testing::{FakeCluster, RecordingRunner, Transcript};
use backup_core::{Output, PvClaim, Workload};
use backup_lvm::{plan_restore, run_restore, LvmVolumeManager, Step};
use chrono::{DateTime, Utc};

const LV: &str = "vm-9999-pvc-0a1b2c3d";
const SNAP: &str = "vm-9999-pvc-0a1b2c3d-snap-20260104030000";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
        .unwrap()
        .to_utc()
}

fn claim() -> PvClaim {
    PvClaim {
        volume_handle: format!("homelab/pve/local-lvm:{LV}"),
        namespace: "vaultwarden".into(),
        pvc: "vaultwarden-data".into(),
    }
}

fn cluster(t: &Transcript) -> FakeCluster {
    let c = FakeCluster::new(vec![claim()], t);
    for (name, replicas) in [("vaultwarden", 1), ("vaultwarden-admin", 2)] {
        c.add_workload(
            "vaultwarden-data",
            Workload {
                kind: "Deployment".into(),
                namespace: "vaultwarden".into(),
                name: name.into(),
                replicas,
                selector: format!("app={name}"),
            },
        );
    }
    c
}

/// Runs a restore where `break_it` sets up one failure; returns the transcript and the report.
fn restore(break_it: impl Fn(&RecordingRunner, &FakeCluster)) -> String {
    let t = Transcript::new();
    let runner = RecordingRunner::new(&t);
    let cluster = cluster(&t);
    break_it(&runner, &cluster);
    let lvm = LvmVolumeManager::new("pve", "data", &runner);
    let steps = plan_restore(&cluster, Some(&claim()), LV, SNAP, now()).unwrap();
    let report = run_restore(&lvm, &cluster, &steps);
    let mut out = t.lines();
    out.push(format!("-- failed: {:?}", report.failed));
    for (what, r) in &report.undone {
        out.push(format!("-- undone: {what}: {r:?}"));
    }
    out.push(format!("-- state: {}", report.state));
    out.push(format!(
        "-- pods now: vaultwarden={} vaultwarden-admin={}",
        cluster.pods("vaultwarden", "vaultwarden"),
        cluster.pods("vaultwarden", "vaultwarden-admin")
    ));
    out.join("\n")
}

#[test]
fn a_restore_swaps_the_lv_and_scales_back() {
    insta::assert_snapshot!(restore(|_, _| {}));
}

#[test]
fn the_plan_reads_as_steps() {
    let t = Transcript::new();
    let c = cluster(&t);
    let steps = plan_restore(&c, Some(&claim()), LV, SNAP, now()).unwrap();
    let text: Vec<String> = steps.iter().map(|s: &Step| s.describe("pve")).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn a_failure_at_each_step_is_undone_in_reverse() {
    let fail = |prefix: &'static [&'static str]| {
        move |r: &RecordingRunner, _: &FakeCluster| {
            r.answer(prefix, Output::failed(5, "  injected failure"))
        }
    };
    let cases: Vec<(&str, String)> = vec![
        ("scale down", restore(|_, c| c.fail_on("vaultwarden-admin"))),
        ("pods stay", restore(|_, c| c.keep_pods("vaultwarden"))),
        (
            "deactivate",
            restore(fail(&["lvchange", "--activate", "n"])),
        ),
        ("rename", restore(fail(&["lvrename"]))),
        ("create", restore(fail(&["lvcreate"]))),
        ("activate", restore(fail(&["lvchange", "--activate", "y"]))),
    ];
    for (name, transcript) in cases {
        insta::assert_snapshot!(
            format!("restore-fails-at-{}", name.replace(' ', "-")),
            transcript
        );
    }
}

#[test]
fn a_failed_scale_up_leaves_the_restore_in_place_and_says_so() {
    insta::assert_snapshot!(restore(|_, c| c.fail_scale_up_on("vaultwarden-admin")));
}
