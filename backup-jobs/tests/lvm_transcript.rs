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
