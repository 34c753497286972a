//! A whole daily-backup run against fakes: every outside-world call, in order, pinned by insta.

use std::sync::atomic::AtomicBool;

use backup_core::testing::{
    FakeFileSync, FakeMetricsSink, FakeMounter, FakeStore, FakeVolumeManager, RecordingRunner,
    Transcript,
};
use backup_core::{Config, MetricsSink, PvClaim, Series};
use backup_jobs::daily_backup::{plan as plan_daily, run_daily, DailyDeps};
use backup_run::Outcome;
use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[test]
fn a_whole_run_against_fakes() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let cfg = Config::from_toml(
        &root.join("config.toml"),
        &format!(
            "backup-root = \"{root}/backup\"\n[snapshots]\nbackend = \"dir\"\nvolumes-dir = \"{root}/v\"\nsnapshots-dir = \"{root}/s\"\n\
             exclude-namespaces = [\"dbaas\"]\n[pvc-backup]\nparallel = 1\nmount-dir = \"{root}/mnt\"\nweekly-versions = 2\n[pve-config]\npaths = [\"{root}/pve\"]\n"
        ),
    )
    .unwrap();
    // the live PVE config path and the mount points are real folders; the backup root is not
    std::fs::create_dir_all(root.join("pve")).unwrap();
    for lv in ["vm-1-pvc-a", "vm-2-pvc-b", "vm-3-pvc-c", "vm-4-pvc-d"] {
        std::fs::create_dir_all(root.join("mnt").join(lv)).unwrap();
    }
    let tr = Transcript::new();
    let store = FakeStore::new(&root.join("backup"), &tr);
    // two complete older weeks of vm-1's pvc, and one beyond weekly-versions = 2
    for (week, at) in [
        ("2026-01", "2026-01-04T05:00:00Z"),
        ("2025-52", "2025-12-28T05:00:00Z"),
        ("2025-51", "2025-12-21T05:00:00Z"),
    ] {
        store.add_version(
            Series::Pvc,
            week.parse().unwrap(),
            "vw",
            "data",
            Some(t(at)),
        );
    }
    // one SQLite database in vm-1, one damaged one in vm-4
    store.set_databases(
        &root.join("mnt/vm-1-pvc-a"),
        vec![backup_core::DatabaseCopy {
            path: "db.sqlite3".into(),
            bytes: Some(4096),
            error: None,
            reused: false,
        }],
    );
    store.set_databases(
        &root.join("mnt/vm-4-pvc-d"),
        vec![backup_core::DatabaseCopy {
            path: "tiny.db".into(),
            bytes: None,
            error: Some("not a usable database: only 100 bytes".into()),
            reused: false,
        }],
    );

    let volumes = FakeVolumeManager::new(
        &[
            "vm-1-pvc-a",
            "vm-2-pvc-b",
            "vm-3-pvc-c",
            "vm-4-pvc-d",
            "vm-9-disk-0",
        ],
        &tr,
    );
    volumes.add_snapshot(
        "vm-1-pvc-a",
        "vm-1-pvc-a-snap-20260105030000",
        t("2026-01-05T03:00:00Z"),
    );
    volumes.add_snapshot(
        "vm-1-pvc-a",
        "vm-1-pvc-a-snap-20251220030000",
        t("2025-12-20T03:00:00Z"),
    );
    volumes.add_snapshot(
        "vm-2-pvc-b",
        "vm-2-pvc-b-snap-20260101030000",
        t("2026-01-01T03:00:00Z"),
    ); // stale
    volumes.add_snapshot(
        "vm-3-pvc-c",
        "vm-3-pvc-c-snap-20260105030000",
        t("2026-01-05T03:00:00Z"),
    );
    let mounter = FakeMounter::new(&tr);
    let sync = FakeFileSync::new(&tr);
    sync.fail_on("/media/");
    let metrics = FakeMetricsSink::new();
    let claims = vec![
        PvClaim {
            volume_handle: "pve/n1/local-lvm:vm-1-pvc-a".into(),
            namespace: "vw".into(),
            pvc: "data".into(),
        },
        PvClaim {
            volume_handle: "pve/n1/local-lvm:vm-2-pvc-b".into(),
            namespace: "media".into(),
            pvc: "lib".into(),
        },
        PvClaim {
            volume_handle: "pve/n1/local-lvm:vm-3-pvc-c".into(),
            namespace: "dbaas".into(),
            pvc: "pg".into(),
        },
    ];
    let stop = AtomicBool::new(false);
    let runner = RecordingRunner::new(&tr);
    let deps = DailyDeps {
        volumes: &volumes,
        mounter: &mounter,
        sync: &sync,
        runner: &runner,
        store: &store,
        stages: &store,
        claims: &claims,
        stop: &stop,
        trust_ctime: false,
        force_full: false,
        monthly_full_pass: true,
    };
    let now = t("2026-01-05T05:00:00Z");
    let plan = plan_daily(&cfg, &deps, now, &[]).unwrap();
    let report = run_daily(&cfg, &deps, &plan, &|_| {}).unwrap();
    for g in report.metrics() {
        metrics.publish(&g).unwrap();
    }

    let redact = |s: String| s.replace(root.as_str(), "<tmp>");
    insta::assert_snapshot!("transcript", redact(tr.text()));
    let mut summary: Vec<String> = report
        .volumes
        .iter()
        .map(|v| {
            format!(
                "{:?} {}/{} {} {:?}",
                v.status, v.namespace, v.pvc, v.snapshot, v.error
            )
        })
        .collect();
    summary.push(format!(
        "pve-config: {:?}",
        report
            .pve_config
            .iter()
            .map(|i| i.status)
            .collect::<Vec<_>>()
    ));
    summary.push(format!(
        "pruned: {:?} / {:?}",
        report.prune.removed_versions, report.prune.removed_snapshots
    ));
    summary.push(format!("exit: {:?}", report.exit));
    insta::assert_snapshot!("report", redact(summary.join("\n")));
    let metrics_text: Vec<String> = metrics
        .text()
        .lines()
        .filter(|l| {
            !l.starts_with("daily_backup_duration_seconds")
                && !l.starts_with("backup_disk_usage_percent")
        })
        .map(String::from)
        .collect();
    insta::assert_snapshot!("metrics", metrics_text.join("\n"));
    assert!(
        mounter.mounted().is_empty(),
        "left mounted: {:?}",
        mounter.mounted()
    );
    assert!(
        volumes.active().is_empty(),
        "left active: {:?}",
        volumes.active()
    );
}

#[test]
fn no_fresh_snapshot_when_the_pool_is_nearly_full() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let cfg = Config::from_toml(
        &root.join("config.toml"),
        &format!("backup-root = \"{root}/backup\"\n[pvc-backup]\nmount-dir = \"{root}/mnt\"\n[pve-config]\npaths = []\n"),
    )
    .unwrap();
    let tr = Transcript::new();
    let store = FakeStore::new(&root.join("backup"), &tr);
    let volumes = FakeVolumeManager::new(&["vm-1-pvc-a"], &tr);
    volumes.add_snapshot(
        "vm-1-pvc-a",
        "vm-1-pvc-a-snap-20260101030000",
        t("2026-01-01T03:00:00Z"),
    );
    volumes.set_pool(backup_core::PoolUsage {
        data_percent: 95.0,
        metadata_percent: 20.0,
    });
    let (mounter, sync, runner) = (
        FakeMounter::new(&tr),
        FakeFileSync::new(&tr),
        RecordingRunner::new(&tr),
    );
    let stop = AtomicBool::new(false);
    let deps = DailyDeps {
        volumes: &volumes,
        mounter: &mounter,
        sync: &sync,
        runner: &runner,
        store: &store,
        stages: &store,
        claims: &[],
        stop: &stop,
        trust_ctime: false,
        force_full: false,
        monthly_full_pass: true,
    };
    let plan = plan_daily(&cfg, &deps, t("2026-01-05T05:00:00Z"), &[]).unwrap();
    let report = run_daily(&cfg, &deps, &plan, &|_| {}).unwrap();
    let err = report.volumes[0].error.clone().unwrap_or_default();
    assert!(
        err.contains("5.0% free (below min-pool-free-percent = 15)"),
        "{err}"
    );
    assert!(
        tr.lines()
            .iter()
            .all(|l| !l.starts_with("snapshot ") && !l.starts_with("sync ")),
        "{:?}",
        tr.lines()
    );
    assert_eq!(report.exit, backup_host::Exit::Failed);
}
