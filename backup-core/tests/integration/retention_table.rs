//! The model test: a table of policies over one fixed history, each result pinned by insta under
//! the policy's name.

use backup_core::{
    plan_dumps, plan_gfs, plan_snapshots, plan_versions, Decision, DumpInfo, DumpPolicy, GfsPolicy,
    IsoWeek, SnapshotInfo, SnapshotPolicy, Timed, VersionPolicy, WeekVersion,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 14, 5, 0, 0).unwrap()
}

fn render<T>(decisions: &[Decision<T>], name: impl Fn(&T) -> String) -> String {
    decisions
        .iter()
        .map(|d| {
            format!(
                "{:<7} {:<32} {}",
                format!("{:?}", d.action).to_lowercase(),
                name(&d.item),
                d.reasons.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Weekly versions of one pvc across New Year: weeks 2025-44 .. 2026-03, where 2025-51 failed
/// every day (incomplete) and 2026-03 is this week's copy in progress.
fn week_history() -> Vec<WeekVersion> {
    let mut w: IsoWeek = "2025-44".parse().unwrap();
    let mut out = Vec::new();
    while w <= "2026-03".parse().unwrap() {
        let complete = !matches!(w.to_string().as_str(), "2025-51" | "2026-03");
        out.push(WeekVersion {
            namespace: "vaultwarden".into(),
            pvc: "data".into(),
            week: w,
            completed_at: complete.then(|| {
                (w.monday() + Duration::days(6))
                    .and_hms_opt(5, 20, 0)
                    .unwrap()
                    .and_utc()
            }),
        });
        w = w.next();
    }
    out.reverse(); // input order must not matter
    out
}

#[test]
fn weekly_version_policies() {
    let policies: Vec<(&str, VersionPolicy)> = vec![
        ("newest-1", VersionPolicy::Newest(1)),
        ("newest-4", VersionPolicy::Newest(4)),
        ("newest-20", VersionPolicy::Newest(20)),
        (
            "gfs-weekly-4",
            VersionPolicy::Gfs(GfsPolicy {
                weekly: 4,
                ..GfsPolicy::default()
            }),
        ),
        (
            "gfs-weekly-2-monthly-3",
            VersionPolicy::Gfs(GfsPolicy {
                weekly: 2,
                monthly: 3,
                ..GfsPolicy::default()
            }),
        ),
        (
            "gfs-yearly-2",
            VersionPolicy::Gfs(GfsPolicy {
                yearly: 2,
                ..GfsPolicy::default()
            }),
        ),
        (
            "gfs-within-21-days",
            VersionPolicy::Gfs(GfsPolicy {
                within_days: 21,
                ..GfsPolicy::default()
            }),
        ),
    ];
    let history = week_history();
    for (name, policy) in policies {
        let plan = plan_versions(&policy, now(), &history).unwrap();
        let text = render(&plan, |v| format!("{} {}/{}", v.week, v.namespace, v.pvc));
        insta::assert_snapshot!(format!("versions-{name}"), text);
        // weekly counts do not age: a month later the same versions stay
        let later = plan_versions(&policy, now() + Duration::days(30), &history).unwrap();
        assert_eq!(
            plan, later,
            "{name}: a later `now` changed a count-based plan"
        );
    }
}

#[test]
fn snapshot_policies() {
    // one snapshot a day for 12 days of vol-a; vol-b's only snapshot is 20 days old (its job broke)
    let mut snaps: Vec<SnapshotInfo> = (0..12)
        .map(|d| SnapshotInfo {
            name: format!("vm-100-pvc-a-snap-d{d:02}"),
            volume: "vm-100-pvc-a".into(),
            created: now() - Duration::days(d) - Duration::hours(2),
        })
        .collect();
    snaps.push(SnapshotInfo {
        name: "vm-101-pvc-b-snap-old".into(),
        volume: "vm-101-pvc-b".into(),
        created: now() - Duration::days(20),
    });
    for keep_days in [1, 7, 30] {
        let plan = plan_snapshots(SnapshotPolicy { keep_days }, now(), &snaps).unwrap();
        let text = render(&plan, |s| {
            format!("{} {}", s.name, s.created.format("%m-%d %H:%M"))
        });
        insta::assert_snapshot!(format!("snapshots-keep-days-{keep_days}"), text);
    }
}

#[test]
fn dump_policies() {
    // daily dumps, but the last 16 days failed: only old ones exist
    let dumps: Vec<DumpInfo> = (16..40)
        .map(|d| DumpInfo {
            name: format!(
                "backup-{}.sql.gz",
                (now() - Duration::days(d)).format("%Y%m%d")
            ),
            created: now() - Duration::days(d),
        })
        .collect();
    for (name, policy) in [
        (
            "keep-14-min-4",
            DumpPolicy {
                keep_days: 14,
                min_keep: 4,
            },
        ),
        (
            "keep-30-min-4",
            DumpPolicy {
                keep_days: 30,
                min_keep: 4,
            },
        ),
        (
            "keep-0-min-2",
            DumpPolicy {
                keep_days: 0,
                min_keep: 2,
            },
        ),
    ] {
        let plan = plan_dumps(policy, now(), &dumps).unwrap();
        insta::assert_snapshot!(format!("dumps-{name}"), render(&plan, |d| d.name.clone()));
    }
}

#[test]
fn gfs_policies_over_two_years_of_daily_backups_with_a_gap() {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 5, 0, 0).unwrap();
    let items: Vec<Timed> = (0..745)
        .filter(|d| !(300..340).contains(d)) // forty days without backups
        .map(|d| {
            let t = start + Duration::days(d);
            Timed {
                name: t.format("%Y-%m-%d").to_string(),
                time: t,
            }
        })
        .collect();
    for (name, policy) in [
        (
            "last-3",
            GfsPolicy {
                keep_last: 3,
                ..GfsPolicy::default()
            },
        ),
        (
            "daily-7-weekly-5-monthly-12-yearly-3",
            GfsPolicy {
                daily: 7,
                weekly: 5,
                monthly: 12,
                yearly: 3,
                ..GfsPolicy::default()
            },
        ),
        (
            "weekly-52",
            GfsPolicy {
                weekly: 52,
                ..GfsPolicy::default()
            },
        ),
        (
            "within-10-days-monthly-2",
            GfsPolicy {
                within_days: 10,
                monthly: 2,
                ..GfsPolicy::default()
            },
        ),
    ] {
        let plan = plan_gfs(&policy, now(), &items).unwrap();
        let kept: Vec<String> = plan
            .iter()
            .filter(|d| !d.is_remove())
            .map(|d| format!("{}  {}", d.item.name, d.reasons.join("; ")))
            .collect();
        insta::assert_snapshot!(format!("gfs-{name}"), kept.join("\n"));
    }
}
