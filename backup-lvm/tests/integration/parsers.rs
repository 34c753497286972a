//! The `lvs` parser on captured output, and its errors.

use backup_core::testing::{RecordingRunner, Transcript};
use backup_core::Output;
use backup_core::{Runner, VolumeManager};
use backup_lvm::{is_source_volume, parse_lvs, LvmVolumeManager};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(fixtures::data_dir().join(path)).unwrap()
}

#[test]
fn captured_lvs_samples_parse() {
    let parsed: Vec<String> = ["lvm/lvs.json", "lvm/lvs-all.json", "lvm/lvs-scenario.json"]
        .iter()
        .flat_map(|f| {
            parse_lvs(&data(f))
                .unwrap()
                .into_iter()
                .map(move |l| {
                    format!(
                        "{f}: {} pool={:?} origin={:?} time={:?} data={:?} meta={:?} size={:?} hidden={} thin={} skip={} source={} tags={:?}",
                        l.name,
                        l.pool,
                        l.origin,
                        l.time.map(|t| t.to_rfc3339()),
                        l.data_percent,
                        l.metadata_percent,
                        l.size_bytes,
                        l.is_hidden(),
                        l.is_thin_volume(),
                        l.skips_activation(),
                        is_source_volume(&l),
                        l.tags
                    )
                })
        })
        .collect();
    insta::assert_snapshot!(parsed.join("\n"));
}

#[test]
fn bad_lvs_output_is_an_error_naming_what_is_wrong() {
    let good = String::from_utf8(data("lvm/lvs.json")).unwrap();
    let cases = [
        ("truncated", good[..good.len() / 2].to_owned()),
        ("not json", "  Volume group \"pve\" not found\n".to_owned()),
        (
            "missing field",
            good.replace("\"lv_attr\":\"Vwi-a-tz--\", ", ""),
        ),
        (
            "non-numeric percent",
            good.replace("\"data_percent\":\"0.77\"", "\"data_percent\":\"n/a\""),
        ),
        (
            "percent out of range",
            good.replace("\"data_percent\":\"0.77\"", "\"data_percent\":\"177\""),
        ),
        (
            "bad time",
            good.replace("2026-11-27 09:07:08 +0000", "yesterday"),
        ),
        (
            "bad size",
            good.replace("\"lv_size\":\"3422552064B\"", "\"lv_size\":\"3.19g\""),
        ),
        ("no lv_name", good.replace("\"lv_name\":\"data\", ", "")),
    ];
    let errors: Vec<String> = cases
        .iter()
        .map(|(name, text)| format!("{name}: {}", parse_lvs(text.as_bytes()).unwrap_err()))
        .collect();
    insta::assert_snapshot!(errors.join("\n"));
}

#[test]
fn the_manager_lists_volumes_snapshots_and_pool_from_one_lvs_call_each() {
    let t = Transcript::new();
    let runner = RecordingRunner::new(&t);
    runner.answer(&["lvs"], Output::ok(data("lvm/lvs-scenario.json")));
    let lvm = LvmVolumeManager::new("pve", "data", &runner);
    let volumes: Vec<String> = lvm
        .list_volumes()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(
        volumes,
        [
            "vm-100-disk-0",
            "vm-9999-pvc-0a1b2c3d",
            "vm-9999-pvc-11111111",
            "vm-9999-pvc-33333333"
        ]
    );
    let snaps: Vec<String> = lvm
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        snaps,
        [
            "vm-9999-pvc-33333333-snap-20260103030000",
            "vm-9999-pvc-0a1b2c3d-snap-20251220030000",
            "vm-9999-pvc-0a1b2c3d-snap-20260104030000"
        ]
    );
    let pool = lvm.pool_usage().unwrap().unwrap();
    assert_eq!(
        (
            pool.data_percent,
            pool.metadata_percent,
            pool.free_percent()
        ),
        (40.0, 11.43, 60.0)
    );
    assert_eq!(lvm.set_aside_volumes().unwrap().len(), 1);
    let _ = lvm
        .activate("vm-9999-pvc-0a1b2c3d-snap-20260104030000")
        .unwrap();
    let _ = runner.run(&backup_lvm::commands::thin_snapshot(
        "pve",
        "vm-9999-pvc-0a1b2c3d",
        "x",
    ));
    insta::assert_snapshot!(t.text());
}

/// Issue 20, item 3: a second daily-backup on the same snapshots failed every volume, because
/// `lvchange --permission r` on a snapshot the first run made read-only exits 5 ("already read
/// only"). A read-only snapshot is activated without it.
#[test]
fn a_snapshot_already_read_only_is_activated_without_lvchange_permission() {
    let t = Transcript::new();
    let runner = RecordingRunner::new(&t);
    let lvs = String::from_utf8(data("lvm/lvs-scenario.json")).unwrap().replace(
        r#""lv_name":"vm-9999-pvc-0a1b2c3d-snap-20260104030000", "vg_name":"pve", "pool_lv":"data", "origin":"vm-9999-pvc-0a1b2c3d", "lv_time":"2026-01-04 03:00:00 +0000", "lv_attr":"Vwi---tz-k""#,
        r#""lv_name":"vm-9999-pvc-0a1b2c3d-snap-20260104030000", "vg_name":"pve", "pool_lv":"data", "origin":"vm-9999-pvc-0a1b2c3d", "lv_time":"2026-01-04 03:00:00 +0000", "lv_attr":"Vri---tz-k""#,
    );
    assert!(lvs.contains("Vri---tz-k"), "the fixture changed");
    runner.answer(&["lvs"], Output::ok(lvs));
    let lvm = LvmVolumeManager::new("pve", "data", &runner);
    lvm.activate("vm-9999-pvc-0a1b2c3d-snap-20260104030000")
        .unwrap();
    let text = t.text();
    assert!(!text.contains("--permission"), "{text}");
    assert!(
        text.contains("lvchange --activate y --ignoreactivationskip"),
        "{text}"
    );
}
