//! Output for people: one line per volume, a summary, readable at 5 a.m.

use std::fmt::Write as _;

use backup_core::{DailyPlan, PrunePlan, SnapshotChoice};

use crate::outcome::{CreateReport, DailyReport, Status, VolumeResult};
use backup_host::human::bytes;

/// One line for one volume.
pub fn volume_line(r: &VolumeResult) -> String {
    let name = format!("{}/{}", r.namespace, r.pvc);
    let mut line = if name.ends_with(&r.lv) {
        format!("  {:<7} {name}", r.status.word())
    } else {
        format!("  {:<7} {name} ({})", r.status.word(), r.lv)
    };
    match (&r.stats, &r.error) {
        (Some(s), _) => {
            let _ = write!(
                line,
                ": {}, {} ({} new), {:.1} s",
                backup_host::human::plural(s.files, "file"),
                bytes(s.total_bytes),
                bytes(s.transferred_bytes),
                r.seconds
            );
            match r.link_week {
                Some(w) => {
                    let _ = write!(line, ", linked to {w}");
                }
                None => line.push_str(", no earlier week to link against"),
            }
        }
        (None, Some(e)) => {
            let _ = write!(line, " {e}");
        }
        (None, None) => {}
    }
    let stored: Vec<&str> = r
        .sqlite
        .iter()
        .filter(|s| s.error.is_none())
        .map(|s| s.path.as_str())
        .collect();
    if !stored.is_empty() {
        let _ = write!(
            line,
            "\n          sqlite: {} copied ({})",
            backup_host::human::plural(stored.len() as u64, "database"),
            stored.join(", ")
        );
    }
    for s in r.sqlite.iter().filter(|s| s.error.is_some()) {
        let _ = write!(
            line,
            "\n          sqlite FAILED {}: {}",
            s.path,
            s.error.as_deref().unwrap_or("")
        );
    }
    for w in &r.warnings {
        let _ = write!(line, "\n          warning: {w}");
    }
    line
}

/// The header printed before the volumes.
pub fn daily_header(plan: &DailyPlan) -> String {
    format!(
        "daily-backup: week {} into {}/pvc-data/{} ({} volumes, {} excluded)",
        plan.week,
        plan.backup_root,
        plan.week,
        plan.volumes.len(),
        plan.excluded.len()
    )
}

/// Everything after the volume lines.
pub fn daily_summary(r: &DailyReport, dry_run: bool) -> String {
    let mut out = String::new();
    let word = |s: Status| {
        if dry_run && s == Status::Ok {
            "would"
        } else {
            s.word()
        }
    };
    for e in &r.excluded {
        let _ = writeln!(
            out,
            "  excluded {}/{} ({}): namespace in exclude-namespaces",
            e.namespace, e.pvc, e.lv
        );
    }
    for v in r
        .volumes
        .iter()
        .filter(|v| v.namespace == backup_core::UNRESOLVED_NAMESPACE)
    {
        let _ = writeln!(
            out,
            "  warning: {} has no PV/PVC mapping: backed up under _unresolved/{}",
            v.lv, v.pvc
        );
    }
    for i in &r.pve_config {
        let _ = writeln!(
            out,
            "  {:<7} pve-config {}{}",
            word(i.status),
            i.item,
            i.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(i) = &r.pfsense {
        let _ = writeln!(
            out,
            "  {:<7} pfsense {}{}",
            word(i.status),
            i.item,
            i.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let p = &r.prune;
    if !p.removed_versions.is_empty() || !p.removed_snapshots.is_empty() {
        let versions = match p.removed_versions.len() {
            0 => "no version".to_owned(),
            n => format!(
                "{} ({})",
                backup_host::human::plural(n as u64, "version"),
                p.removed_versions.join(", ")
            ),
        };
        let _ = writeln!(
            out,
            "  prune: {} {versions} and {}",
            if dry_run { "would remove" } else { "removed" },
            backup_host::human::plural(p.removed_snapshots.len() as u64, "snapshot")
        );
    }
    for e in &p.errors {
        let _ = writeln!(out, "  prune FAILED: {e}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    let ok = r.volumes.iter().filter(|v| v.status.is_good()).count();
    let failed = failures(r);
    out.push_str(&summary_line(r, ok, &failed, dry_run));
    out
}

/// The last line: how many volumes, what failed, files and bytes, the exit code.
fn summary_line(r: &DailyReport, ok: usize, failed: &[String], dry_run: bool) -> String {
    let mut out = String::new();
    let sum = |field: fn(&backup_core::SyncStats) -> u64| -> u64 {
        r.volumes
            .iter()
            .filter_map(|v| v.stats.as_ref())
            .map(field)
            .sum()
    };
    let (files, total, sent) = (
        sum(|s| s.files),
        sum(|s| s.total_bytes),
        sum(|s| s.transferred_bytes),
    );
    if dry_run {
        let _ = write!(
            out,
            "daily-backup (dry run): {ok} of {} volumes would be copied{}; exit {}",
            r.volumes.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(", refused or failing: {}", failed.join(", "))
            },
            r.exit.code()
        );
        return out;
    }
    let _ = write!(
        out,
        "daily-backup: {ok} of {} ok{}; {}, {} ({} new) in {:.1} s; exit {}",
        backup_host::human::plural(r.volumes.len() as u64, "volume"),
        if failed.is_empty() {
            String::new()
        } else {
            format!(", failed: {}", failed.join(", "))
        },
        backup_host::human::plural(files, "file"),
        bytes(total),
        bytes(sent),
        r.seconds,
        r.exit.code()
    );
    out
}

/// What failed in a run, for the summary line: volumes, pve-config paths, pfSense, prune
/// removals, SQLite copies.
fn failures(r: &DailyReport) -> Vec<String> {
    let mut failed: Vec<String> = r
        .volumes
        .iter()
        .filter(|v| !v.status.is_good())
        .map(|v| format!("{}/{}", v.namespace, v.pvc))
        .collect();
    let other_failed = r
        .pve_config
        .iter()
        .filter(|i| i.status != Status::Ok)
        .count();
    if other_failed > 0 {
        failed.push(format!("{other_failed} pve-config paths"));
    }
    if r.pfsense.as_ref().is_some_and(|i| i.status != Status::Ok) {
        failed.push("pfsense".to_owned());
    }
    if !r.prune.errors.is_empty() {
        failed.push(format!("{} prune removals", r.prune.errors.len()));
    }
    for (v, s) in r.sqlite_failures() {
        failed.push(format!("sqlite {}/{}:{}", v.namespace, v.pvc, s.path));
    }
    failed
}

/// `--dry-run` of daily-backup.
pub fn daily_plan(plan: &DailyPlan, prune: &PrunePlan) -> String {
    let mut out = format!("{}\n(dry run: nothing is changed)\n", daily_header(plan));
    for v in &plan.volumes {
        let snap = match &v.snapshot {
            SnapshotChoice::Use { name, .. } => format!("from {name}"),
            SnapshotChoice::Take { name, reason } => {
                format!("would take {name} ({reason})")
            }
        };
        let link = v
            .link_week
            .map(|w| format!("link-dest {w}"))
            .unwrap_or_else(|| "no earlier week to link against: a whole copy".to_owned());
        let _ = writeln!(
            out,
            "  copy {:<24} {snap} -> {} ({link})",
            v.volume.lv, v.dest
        );
        if let Some(why) = &v.refused {
            let why = why.to_string();
            let _ = writeln!(out, "       REFUSED: {why}");
        }
        if v.allow_empty {
            let _ = writeln!(out, "       an empty source is accepted (--allow-empty)");
        }
    }
    for e in &plan.excluded {
        let _ = writeln!(
            out,
            "  skip {:<24} namespace {} is excluded",
            e.lv, e.namespace
        );
    }
    let pve_link = plan
        .pve_config_link
        .map(|w| format!("link-dest {w}"))
        .unwrap_or_else(|| "no earlier week to link against: a whole copy".to_owned());
    for (src, dest) in &plan.pve_config {
        let _ = writeln!(out, "  pve-config {src} -> {dest} ({pve_link})");
    }
    if let Some(pf) = &plan.pfsense {
        let _ = writeln!(out, "  pfsense {pf}");
    }
    prune_lines(&mut out, &prune.versions, |v| {
        format!("version {} {}/{}", v.week, v.namespace, v.pvc)
    });
    prune_lines(&mut out, &prune.pfsense, |v| format!("pfsense {}", v.week));
    prune_lines(&mut out, &prune.pve_config, |v| {
        format!("pve-config {}", v.week)
    });
    prune_lines(&mut out, &prune.snapshots, |s| {
        format!("snapshot {}", s.name)
    });
    out
}

/// One `prune <what>: <reasons>` line per removal of a plan.
fn prune_lines<T>(
    out: &mut String,
    plan: &[backup_core::Decision<T>],
    what: impl Fn(&T) -> String,
) {
    for d in plan.iter().filter(|d| d.is_remove()) {
        let _ = writeln!(out, "  prune {}: {}", what(&d.item), d.reasons.join("; "));
    }
}

/// Text for `lvm-pvc-snapshot create`.
pub fn create_report(r: &CreateReport, dry_run: bool) -> String {
    let mut out = String::new();
    let (pruned, taken, ok_word) = if dry_run {
        ("would prune", "would be taken", "would")
    } else {
        ("pruned ", "taken", "ok")
    };
    for p in &r.pruned {
        let _ = writeln!(out, "  {pruned} {p}");
    }
    for e in &r.prune_errors {
        let _ = writeln!(out, "  prune FAILED: {e}");
    }
    if let Some(why) = &r.refused {
        let _ = writeln!(out, "  REFUSED: {why}");
    }
    for t in &r.taken {
        let _ = writeln!(
            out,
            "  {:<7} {:<24} {}/{} -> {}{}",
            if t.status == Status::Ok {
                ok_word
            } else {
                t.status.word()
            },
            t.volume.lv,
            t.volume.namespace,
            t.volume.pvc,
            t.snapshot,
            t.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    for e in &r.excluded {
        let _ = writeln!(
            out,
            "  skip    {:<24} namespace {} is excluded",
            e.lv, e.namespace
        );
    }
    let ok = r.taken.iter().filter(|t| t.status == Status::Ok).count();
    let _ = write!(
        out,
        "lvm-pvc-snapshot: {ok} of {} snapshots {taken}, {} pruned, {} exist; exit {}",
        r.taken.len(),
        r.pruned.len(),
        r.snapshot_count,
        r.exit.code()
    );
    out
}
