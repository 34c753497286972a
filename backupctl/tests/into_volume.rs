//! `backupctl restore pvc --into-volume` against fakes: the whole plan, then a failure injected
//! at each step in turn; every transcript (what was done, what was undone, the state left) is
//! pinned. A failure before the unmount scales every workload back up (after the copy began, the
//! state names the safety snapshot that holds the volume as it was); a failed unmount keeps them
//! down (a second mount of one file system corrupts it) and says so; a failed scale-up still
//! scales the others.

use backup_core::testing::{FakeCluster, FakeMounter, FakeVolumeManager, Transcript};
use backup_core::{BackupRoot, IsoWeek, Mounter, WeekVersion, Workload};
use backupctl::{
    plan_into_volume, run_into_volume, CheckReport, Difference, IntoVolumeDeps, IntoVolumeStep,
};
use camino::Utf8Path;
use chrono::{TimeZone, Utc};

fn workload(name: &str, replicas: u32) -> Workload {
    Workload {
        kind: "Deployment".to_owned(),
        namespace: "vaultwarden".to_owned(),
        name: name.to_owned(),
        replicas,
        selector: format!("app={name}"),
    }
}

/// Runs the restore with a failure at `fail_at` (a step's position; `None`: no failure) and
/// returns the transcript, the state and the pods left running.
fn run(fail_at: Option<usize>) -> (String, Vec<IntoVolumeStep>) {
    let tr = Transcript::new();
    let cluster = FakeCluster::new(Vec::new(), &tr);
    cluster.add_workload("data", workload("vaultwarden", 1));
    cluster.add_workload("data", workload("vaultwarden-admin", 2));
    let volumes = FakeVolumeManager::new(&["vm-100-pvc-a"], &tr);
    let mounter = FakeMounter::new(&tr);
    let now = Utc.with_ymd_and_hms(2026, 2, 20, 9, 30, 0).unwrap();
    let version = WeekVersion {
        namespace: "vaultwarden".to_owned(),
        pvc: "data".to_owned(),
        week: "2026-07".parse::<IsoWeek>().unwrap(),
        completed_at: Some(now),
    };
    let root = BackupRoot::new("/mnt/backup");
    let target = Utf8Path::new("/run/homelab-backup/mnt/restore-vm-100-pvc-a");
    let steps = plan_into_volume(&cluster, &root, &version, "vm-100-pvc-a", target, now).unwrap();
    let kinds: Vec<&'static str> = steps
        .iter()
        .map(|s| match s {
            IntoVolumeStep::ScaleDown { .. } => "scale-down",
            IntoVolumeStep::WaitPodsGone { .. } => "wait",
            IntoVolumeStep::SafetySnapshot { .. } => "snapshot",
            IntoVolumeStep::Mount { .. } => "mount",
            IntoVolumeStep::Copy { .. } => "copy",
            IntoVolumeStep::Check { .. } => "check",
            IntoVolumeStep::Unmount { .. } => "unmount",
            IntoVolumeStep::ScaleUp { .. } => "scale-up",
        })
        .collect();
    // inject the failure into the backend of the chosen step
    let mut copy_fails = false;
    let mut check_fails = false;
    if let Some(i) = fail_at {
        match (kinds[i], &steps[i]) {
            ("scale-down", IntoVolumeStep::ScaleDown { workload }) => {
                cluster.fail_on(&workload.name)
            }
            ("wait", IntoVolumeStep::WaitPodsGone { workload }) => {
                cluster.keep_pods(&workload.name)
            }
            ("snapshot", _) => volumes.fail_on("vm-100-pvc-a"),
            ("mount", _) => mounter.fail_on("restore-vm-100-pvc-a"),
            ("copy", _) => copy_fails = true,
            ("check", _) => check_fails = true,
            ("unmount", _) => {} // below: the fake mounter fails an unmount of nothing
            ("scale-up", IntoVolumeStep::ScaleUp { workload }) => {
                cluster.fail_scale_up_on(&workload.name);
            }
            other => panic!("{other:?}"),
        }
    }
    let copy = |from: &Utf8Path, to: &Utf8Path| {
        tr.push(format!("rsync -aHAX --delete {from}/ {to}/"));
        if copy_fails {
            Err(backup_host::Error::Usage(
                "rsync: No space left on device (28)".to_owned(),
            ))
        } else {
            Ok(())
        }
    };
    let check = |to: &Utf8Path| {
        tr.push(format!("check {to} against the record"));
        let mut c = CheckReport::default();
        if check_fails {
            c.differences.push(Difference {
                path: "db.sqlite3".to_owned(),
                what: "content differs from the record (md5)".to_owned(),
            });
        }
        Ok(c)
    };
    let unmount_fails = fail_at.is_some_and(|i| kinds[i] == "unmount");
    let deps = IntoVolumeDeps {
        cluster: &cluster,
        volumes: &volumes,
        mounter: &mounter,
        copy: &copy,
        check: &check,
    };
    if unmount_fails {
        // someone unmounted it behind our back: the unmount step fails
        let target2 = target.to_owned();
        let check2 = |to: &Utf8Path| {
            let r = check(to);
            let _ = mounter.unmount(&target2);
            tr.push("(the mount point was unmounted by someone else)");
            r
        };
        let deps = IntoVolumeDeps {
            check: &check2,
            ..deps
        };
        let report = run_into_volume(&deps, &steps, now);
        return (render(&tr, &report, &cluster), steps);
    }
    let report = run_into_volume(&deps, &steps, now);
    (render(&tr, &report, &cluster), steps)
}

fn render(tr: &Transcript, report: &backupctl::IntoVolumeReport, cluster: &FakeCluster) -> String {
    let mut out = tr.text();
    out.push_str(&format!("\nfailed: {:?}\n", report.failed));
    for (what, r) in &report.undone {
        out.push_str(&format!("undone: {what}: {r:?}\n"));
    }
    out.push_str(&format!("state: {}\n", report.state));
    out.push_str(&format!(
        "pods running: vaultwarden={} vaultwarden-admin={}\n",
        cluster.pods("vaultwarden", "vaultwarden"),
        cluster.pods("vaultwarden", "vaultwarden-admin")
    ));
    out
}

#[test]
fn a_failure_at_each_step_undoes_the_scale_down_and_says_what_is_left() {
    let (ok, steps) = run(None);
    let mut all = format!("== no failure\n{ok}");
    assert!(ok.contains("restored and checked"), "{ok}");
    for (i, step) in steps.iter().enumerate() {
        let (t, _) = run(Some(i));
        match step {
            // restored; the one workload that failed stays down, the others come up
            IntoVolumeStep::ScaleUp { workload } => assert!(
                t.contains(&format!(
                    "do it by hand: scale Deployment vaultwarden/{}",
                    workload.name
                )) && (workload.name == "vaultwarden" && t.contains("vaultwarden-admin=2")
                    || workload.name != "vaultwarden" && t.contains("vaultwarden=1 ")),
                "failure at step {i}:\n{t}"
            ),
            // still mounted here: the workloads must stay down, and the state says why
            IntoVolumeStep::Unmount { .. } => assert!(
                t.contains("vaultwarden=0 vaultwarden-admin=0") && t.contains("unmount it by hand"),
                "failure at step {i}:\n{t}"
            ),
            _ => assert!(
                t.contains("pods running: vaultwarden=1 vaultwarden-admin=2"),
                "failure at step {i} left a workload down:\n{t}"
            ),
        }
        all.push_str(&format!(
            "\n== failure at step {i}: {}\n{t}",
            step.describe()
        ));
    }
    insta::assert_snapshot!(all);
}
