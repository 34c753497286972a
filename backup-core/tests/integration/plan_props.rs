//! Invariants every planner keeps, whatever the history: the newest complete item survives,
//! applying a plan to its own output removes nothing more, and input order does not matter.

use backup_core::{
    kept, plan_dumps, plan_gfs, plan_link_dest, plan_snapshots, plan_versions, Action, Decision,
    DumpInfo, DumpPolicy, GfsPolicy, IsoWeek, SnapshotInfo, SnapshotPolicy, Timed, VersionPolicy,
    WeekVersion,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 3, 5, 0, 0).unwrap()
}

fn sorted_actions<T: Ord + Clone>(d: &[Decision<T>]) -> Vec<(T, Action)> {
    let mut v: Vec<_> = d.iter().map(|d| (d.item.clone(), d.action)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn versions() -> impl Strategy<Value = Vec<WeekVersion>> {
    let one_pvc = |pvc: &'static str| {
        prop::collection::btree_map(0i64..70, (any::<bool>(), 0i64..7 * 24), 0..14).prop_map(
            move |m| {
                m.into_iter()
                    .map(|(w, (complete, hours))| {
                        let monday = base() + Duration::weeks(w);
                        WeekVersion {
                            namespace: "ns".into(),
                            pvc: pvc.into(),
                            week: IsoWeek::from_date(monday.date_naive()),
                            completed_at: complete.then(|| monday + Duration::hours(hours)),
                        }
                    })
                    .collect::<Vec<_>>()
            },
        )
    };
    (one_pvc("a"), one_pvc("b")).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    })
}

fn gfs() -> impl Strategy<Value = GfsPolicy> {
    (
        0u32..4,
        0u32..4,
        0u32..5,
        0u32..5,
        0u32..4,
        0u32..3,
        0u32..30,
    )
        .prop_map(
            |(keep_last, hourly, daily, weekly, monthly, yearly, within_days)| GfsPolicy {
                keep_last,
                hourly,
                daily,
                weekly,
                monthly,
                yearly,
                within_days,
            },
        )
        .prop_filter("non-empty", |p| p.check().is_ok())
}

fn version_policy() -> impl Strategy<Value = VersionPolicy> {
    prop_oneof![
        (1u32..7).prop_map(VersionPolicy::Newest),
        gfs().prop_map(VersionPolicy::Gfs)
    ]
}

fn with_shuffle<T: Clone + std::fmt::Debug>(
    s: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = (Vec<T>, Vec<T>)> {
    s.prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
}

proptest! {
    #[test]
    fn versions_keep_the_newest_complete_are_idempotent_and_order_free(
        (vs, shuffled) in with_shuffle(versions()),
        policy in version_policy(),
        now_weeks in 0i64..80,
    ) {
        let now = base() + Duration::weeks(now_weeks);
        let plan = plan_versions(&policy, now, &vs).unwrap();
        prop_assert_eq!(plan.len(), vs.len());
        for pvc in ["a", "b"] {
            let newest = vs.iter().filter(|v| v.pvc == pvc && v.is_complete()).max_by_key(|v| v.week);
            if let Some(newest) = newest {
                let d = plan.iter().find(|d| &d.item == newest).unwrap();
                prop_assert_eq!(d.action, Action::Keep, "newest complete {:?} removed", newest);
            } else {
                // no complete version: nothing of this pvc may go
                prop_assert!(plan.iter().filter(|d| d.item.pvc == pvc).all(|d| d.action == Action::Keep));
            }
        }
        if let VersionPolicy::Newest(n) = policy {
            for pvc in ["a", "b"] {
                let kept_complete = plan.iter().filter(|d| d.item.pvc == pvc && d.item.is_complete() && d.action == Action::Keep).count();
                let complete = vs.iter().filter(|v| v.pvc == pvc && v.is_complete()).count();
                prop_assert_eq!(kept_complete, complete.min(n as usize));
            }
        }
        let again = plan_versions(&policy, now, &kept(&plan)).unwrap();
        prop_assert!(again.iter().all(|d| d.action == Action::Keep), "second pass removed {:?}", again);
        let other = plan_versions(&policy, now, &shuffled).unwrap();
        prop_assert_eq!(sorted_actions(&plan), sorted_actions(&other));
    }

    #[test]
    fn link_dest_is_complete_and_older(vs in versions(), current_weeks in 0i64..80) {
        let current = IsoWeek::from_date((base() + Duration::weeks(current_weeks)).date_naive());
        match plan_link_dest(&vs, "ns", "a", current) {
            Some(v) => {
                prop_assert!(v.is_complete());
                prop_assert!(v.week < current);
                prop_assert_eq!(&v.pvc, "a");
                // and it is the newest such
                prop_assert!(vs.iter().filter(|o| o.pvc == "a" && o.is_complete() && o.week < current).all(|o| o.week <= v.week));
            }
            None => prop_assert!(vs.iter().all(|o| o.pvc != "a" || !o.is_complete() || o.week >= current)),
        }
    }

    #[test]
    fn snapshots_keep_the_newest_per_volume_are_idempotent_and_order_free(
        (snaps, shuffled) in with_shuffle(prop::collection::vec((0usize..3, 0i64..24 * 30), 0..25).prop_map(|v| {
            v.into_iter().enumerate().map(|(i, (vol, hours))| SnapshotInfo {
                name: format!("s{i}"),
                volume: format!("vol{vol}"),
                created: base() + Duration::hours(hours),
            }).collect::<Vec<_>>()
        })),
        keep_days in 1u32..15,
        now_hours in 0i64..24 * 40,
    ) {
        let policy = SnapshotPolicy { keep_days };
        let now = base() + Duration::hours(now_hours);
        let plan = plan_snapshots(policy, now, &snaps).unwrap();
        for vol in ["vol0", "vol1", "vol2"] {
            if let Some(newest) = snaps.iter().filter(|s| s.volume == vol).max_by_key(|s| (s.created, std::cmp::Reverse(s.name.clone()))) {
                let d = plan.iter().find(|d| d.item.volume == vol && d.item.created == newest.created).unwrap();
                prop_assert_eq!(d.action, Action::Keep);
            }
        }
        for d in &plan {
            if d.action == Action::Remove {
                prop_assert!(d.item.created < now - Duration::days(i64::from(keep_days)));
            }
        }
        let again = plan_snapshots(policy, now, &kept(&plan)).unwrap();
        prop_assert!(again.iter().all(|d| d.action == Action::Keep));
        prop_assert_eq!(sorted_actions(&plan), sorted_actions(&plan_snapshots(policy, now, &shuffled).unwrap()));
    }

    #[test]
    fn dumps_keep_min_keep_are_idempotent_and_order_free(
        (dumps, shuffled) in with_shuffle(prop::collection::btree_set(0i64..24 * 60, 0..25).prop_map(|s| {
            s.into_iter().map(|h| DumpInfo { name: format!("dump-{h:05}"), created: base() + Duration::hours(h) }).collect::<Vec<_>>()
        })),
        keep_days in 0u32..20,
        min_keep in 0u32..6,
        now_hours in 0i64..24 * 90,
    ) {
        prop_assume!(keep_days > 0 || min_keep > 0);
        let policy = DumpPolicy { keep_days, min_keep };
        let now = base() + Duration::hours(now_hours);
        let plan = plan_dumps(policy, now, &dumps).unwrap();
        let kept_now = kept(&plan);
        prop_assert!(kept_now.len() >= dumps.len().min(min_keep.max(1) as usize));
        if let Some(newest) = dumps.iter().max_by_key(|d| d.created) {
            prop_assert!(kept_now.contains(newest));
        }
        let again = plan_dumps(policy, now, &kept_now).unwrap();
        prop_assert!(again.iter().all(|d| d.action == Action::Keep));
        prop_assert_eq!(sorted_actions(&plan), sorted_actions(&plan_dumps(policy, now, &shuffled).unwrap()));
    }

    #[test]
    fn gfs_keeps_the_newest_is_idempotent_and_order_free(
        (items, shuffled) in with_shuffle(prop::collection::btree_set(0i64..24 * 800, 0..40).prop_map(|s| {
            s.into_iter().map(|h| Timed { name: format!("t{h:06}"), time: base() + Duration::hours(h) }).collect::<Vec<_>>()
        })),
        policy in gfs(),
    ) {
        let now = base() + Duration::days(900);
        let plan = plan_gfs(&policy, now, &items).unwrap();
        if let Some(newest) = items.iter().max_by_key(|t| t.time) {
            prop_assert!(kept(&plan).contains(newest));
        }
        let again = plan_gfs(&policy, now, &kept(&plan)).unwrap();
        prop_assert!(again.iter().all(|d| d.action == Action::Keep), "second pass removed some: {:?}", again);
        prop_assert_eq!(sorted_actions(&plan), sorted_actions(&plan_gfs(&policy, now, &shuffled).unwrap()));
    }
}

#[test]
fn empty_policies_are_errors_never_delete_all() {
    let now = base();
    assert!(plan_versions(&VersionPolicy::Newest(0), now, &[]).is_err());
    assert!(plan_versions(&VersionPolicy::Gfs(GfsPolicy::default()), now, &[]).is_err());
    assert!(plan_snapshots(SnapshotPolicy { keep_days: 0 }, now, &[]).is_err());
    assert!(plan_dumps(
        DumpPolicy {
            keep_days: 0,
            min_keep: 0
        },
        now,
        &[]
    )
    .is_err());
    let err = plan_gfs(&GfsPolicy::default(), now, &[]).unwrap_err();
    assert_eq!(err.to_string(), "empty retention policy (every GFS rule is 0): refusing to plan, it would remove every version");
}

// ---------------------------------------------------------------------------------------------
// The daily and prune planners over whole listings

fn config(weekly: u32) -> backup_core::Config {
    backup_core::Config::from_toml(
        camino::Utf8Path::new("/etc/homelab-backup/config.toml"),
        &format!(
            "backup-root = \"/b\"\n[[kubernetes.volume]]\nlv = \"vm-1-pvc-a\"\nnamespace = \"ns\"\npvc = \"a\"\n\
             [[kubernetes.volume]]\nlv = \"vm-2-pvc-b\"\nnamespace = \"ns\"\npvc = \"b\"\n[pvc-backup]\nweekly-versions = {weekly}\n"
        ),
    )
    .unwrap()
}

fn claims(cfg: &backup_core::Config) -> Vec<backup_core::PvClaim> {
    cfg.kubernetes.static_volumes.clone()
}

proptest! {
    #[test]
    fn the_daily_plan_links_only_complete_earlier_weeks_and_ignores_listing_order(
        (vs, shuffled) in with_shuffle(versions()),
        days in 0i64..500,
    ) {
        let cfg = config(4);
        let claims = claims(&cfg);
        let volumes = ["vm-1-pvc-a".to_owned(), "vm-2-pvc-b".to_owned()];
        let now = base() + Duration::days(days);
        let plan = |v: &[WeekVersion]| backup_core::plan_daily(&backup_core::DailyInput {
            config: &cfg, volumes: &volumes, snapshots: &[], versions: v,
            pve_config_versions: &[], claims: &claims, now, allow_empty: &[],
        });
        match (plan(&vs), plan(&shuffled)) {
            (Ok(a), Ok(b)) => {
                for (x, y) in a.volumes.iter().zip(&b.volumes) {
                    prop_assert_eq!(x.link_week, y.link_week);
                    prop_assert_eq!(&x.dest, &y.dest);
                    if let Some(w) = x.link_week {
                        prop_assert!(w < a.week);
                        prop_assert!(vs.iter().any(|v| v.pvc == x.volume.pvc && v.week == w && v.is_complete()),
                            "linked against an incomplete or absent version");
                    }
                }
            }
            // the clock rule refuses a run behind the listing, whatever its order
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "order changed the outcome: {:?} / {:?}", a.is_ok(), b.is_ok()),
        }
    }

    #[test]
    fn the_prune_plan_keeps_the_newest_complete_version_is_deterministic_and_order_free(
        (vs, shuffled) in with_shuffle(versions()),
        weekly in 1u32..6,
        days in 0i64..600,
    ) {
        let cfg = config(weekly);
        let now = base() + Duration::days(days);
        let plan = |v: &[WeekVersion]| backup_core::plan_prune(&backup_core::PruneInput {
            config: &cfg, now, versions: v, snapshots: &[], pfsense: &[], pve_config: &[],
        }).unwrap();
        let a = plan(&vs);
        prop_assert_eq!(sorted_actions(&a.versions), sorted_actions(&plan(&shuffled).versions));
        prop_assert_eq!(sorted_actions(&a.versions), sorted_actions(&plan(&vs).versions));
        let this_week = IsoWeek::from_date(now.date_naive());
        for pvc in ["a", "b"] {
            if let Some(newest) = vs.iter().filter(|v| v.pvc == pvc && v.is_complete()).max_by_key(|v| v.week) {
                let d = a.versions.iter().find(|d| &d.item == newest).unwrap();
                prop_assert_eq!(d.action, Action::Keep, "the newest complete version of {} is removed", pvc);
            }
        }
        for d in &a.versions {
            prop_assert!(!(d.is_remove() && d.item.week >= this_week), "this run's own week is removed");
        }
    }
}
