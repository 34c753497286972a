//! The Grafana dashboard queries only metrics that exist: every identifier in every panel's
//! PromQL that is not a function, keyword or label must be a name of `metric_names`.

use std::collections::BTreeSet;

use backup_core::metric_names::ALL;

const FUNCTIONS: &[&str] = &[
    "time",
    "max",
    "min",
    "sum",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "increase",
    "irate",
    "absent",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "topk",
    "bottomk",
    "delta",
    "deriv",
    "label_replace",
    "clamp_min",
    "clamp_max",
];

/// Identifiers of a PromQL expression outside `{...}` label matchers and `by (...)` lists.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth_brace = 0;
    let mut skip_paren = false;
    let mut word = String::new();
    let mut last_word = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_string {
            in_string = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            if depth_brace == 0 && !skip_paren && !word.chars().next().unwrap().is_ascii_digit() {
                out.push(word.clone());
            }
            last_word = std::mem::take(&mut word);
        }
        match c {
            '"' => in_string = true,
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '(' if last_word == "by" || last_word == "without" => skip_paren = true,
            ')' if skip_paren => skip_paren = false,
            '[' => skip_paren = true, // range selectors: [1h]
            ']' => skip_paren = false,
            _ => {}
        }
        if !c.is_whitespace() {
            last_word.clear();
        }
    }
    out.into_iter()
        .filter(|w| !FUNCTIONS.contains(&w.as_str()))
        .collect()
}

#[test]
fn every_metric_the_dashboard_queries_exists() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/homelab-backup.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let known: BTreeSet<&str> = ALL.iter().map(|m| m.name.as_ref()).collect();
    let mut used = BTreeSet::new();
    let mut exprs = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            exprs += 1;
            for name in metric_names(expr) {
                assert!(
                    known.contains(name.as_str()) || name.ends_with("_sqlite_integrity_ok"),
                    "panel `{}` queries `{name}`, which is no metric of metric_names ({expr})",
                    p["title"]
                );
                used.insert(name);
            }
        }
    }
    assert!(exprs > 20, "{exprs}");
    // what the dashboard must show
    for must in [
        "daily_backup_pvc_last_success_timestamp",
        "daily_backup_duration_seconds",
        "backup_dump_bytes",
        "lvm_thin_pool_free_percent",
        "backup_disk_usage_percent",
        "offsite_backup_tree_last_success_timestamp",
        "nfs_tracker_full_pass_pending",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
}

#[test]
fn the_name_extraction_skips_labels_functions_and_ranges() {
    assert_eq!(
        metric_names(
            r#"time() - max by (namespace, pvc) (daily_backup_pvc_last_success_timestamp{job="daily-backup"})"#
        ),
        ["daily_backup_pvc_last_success_timestamp"]
    );
    assert_eq!(
        metric_names(r#"increase(nfs_tracker_overflows_total{job="x",tree="a b"}[1h])"#),
        ["nfs_tracker_overflows_total"]
    );
}
