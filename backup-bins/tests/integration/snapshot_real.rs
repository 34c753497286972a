//! lvm-pvc-snapshot on the `dir` backend.

use crate::harness::*;

#[test]
fn create_list_prune() {
    let env = Env::new();
    for day in ["2026-01-03", "2026-01-05", "2026-01-09"] {
        let out = env.run(SNAPSHOT, &["--now", &format!("{day}T03:00:00Z")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let list = env.run(
        SNAPSHOT,
        &["list", "--json", "--now", "2026-01-09T04:00:00Z"],
    );
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 9);
    let dry = env.run(
        SNAPSHOT,
        &["prune", "--dry-run", "--now", "2026-01-20T04:00:00Z"],
    );
    assert_eq!(
        text(&dry)
            .lines()
            .filter(|l| l.starts_with("  would remove "))
            .count(),
        6,
        "{}",
        text(&dry)
    );
    // global flags work after the subcommand and before it
    let out = env.run(SNAPSHOT, &["--now", "2026-01-20T04:00:00Z", "prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let left: Vec<String> = std::fs::read_dir(env.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left.len(),
        3,
        "the newest snapshot of each volume stays: {left:?}"
    );
    assert!(left.iter().all(|n| n.ends_with("20260109030000")));
}

#[test]
fn excluded_namespaces_are_skipped_and_metrics_written() {
    let env = Env::with_config("");
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "keep-days = 7",
        "keep-days = 7\nexclude-namespaces = [\"nextcloud\"]",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let out = env.run(SNAPSHOT, &["--now", "2026-01-05T03:00:00Z", "create"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("skip    vm-101-pvc-b") && t.contains("namespace nextcloud is excluded"),
        "{t}"
    );
    let prom = std::fs::read_to_string(env.root.join("metrics/lvm-pvc-snapshot.prom")).unwrap();
    assert!(gauge(&prom, "lvm_snapshot_count") == Some(2.0), "{prom}");
    assert!(
        gauge(&prom, "lvm_snapshot_last_success_timestamp") == Some(1767582000.0),
        "{prom}"
    );
}
