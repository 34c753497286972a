//! The alert rules with the real tools: the committed `deploy/prometheus/backup-alerts.yaml` is
//! what `backupctl alerts` prints, `promtool check rules` accepts it, and `promtool test rules`
//! runs, for every alert, a series that must fire it and one that must not (fresh success vs.
//! stale; a failed run after a success vs. a good one; never ran vs. ran; pool at 14 % vs.
//! 16 % free; ...). The cases are generated from the rules' kinds, so a new rule is tested too.

use std::process::Command;

use backup_core::{alert_rules, default_app_jobs, AlertKind, AlertRule};
use camino::Utf8PathBuf;

use crate::harness::{text, CTL};

fn repo() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rules_file() -> Utf8PathBuf {
    repo().join("deploy/prometheus/backup-alerts.yaml")
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is not installed: run scripts/test, which installs prometheus")
}

#[test]
fn the_committed_rules_are_what_backupctl_alerts_prints() {
    let out = Command::new(CTL)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .arg("alerts")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let committed = std::fs::read_to_string(rules_file()).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "deploy/prometheus/backup-alerts.yaml differs from `backupctl alerts`: regenerate it with\n  \
         target/debug/backupctl alerts > deploy/prometheus/backup-alerts.yaml"
    );
    let check = promtool(&["check", "rules", rules_file().as_str()]);
    assert!(check.status.success(), "{}", text(&check));
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One promtool test: `series` (selector, values), and whether `rule` must fire at `eval`.
fn case(
    rule: &AlertRule,
    series: &[(String, String)],
    eval: u32,
    fires: Option<Vec<(&str, String)>>,
) -> String {
    let mut t = String::from("  - interval: 1m\n    input_series:\n");
    for (sel, values) in series {
        t.push_str(&format!(
            "      - series: {}\n        values: {}\n",
            q(sel),
            q(values)
        ));
    }
    t.push_str(&format!(
        "    alert_rule_test:\n      - eval_time: {eval}m\n        alertname: {}\n",
        rule.name
    ));
    match fires {
        None => t.push_str("        exp_alerts: []\n"),
        Some(labels) => {
            t.push_str("        exp_alerts:\n          - exp_labels:\n");
            t.push_str(&format!("              severity: {}\n", rule.severity));
            for (k, v) in labels {
                t.push_str(&format!("              {k}: {}\n", q(&v)));
            }
            t.push_str(&format!(
                "            exp_annotations:\n              summary: {}\n",
                q(&rule.summary)
            ));
        }
    }
    t
}

/// A series that fires `rule` and one that does not.
fn cases(rule: &AlertRule) -> String {
    let eval = rule.for_minutes + 10;
    let n = eval + 5;
    let now = u64::from(eval) * 60;
    let flat = |v: String| format!("{v}x{n}");
    let s = |metric: &str, job: &str| format!("{metric}{{job=\"{job}\"}}");
    let job_label = |job: &str| vec![("job", job.to_owned())];
    match &rule.kind {
        AlertKind::Stale { metric, job, hours } => {
            let long_ago = -(i64::from(*hours) * 3600);
            case(
                rule,
                &[(s(metric, job), flat(format!("{long_ago}+0")))],
                eval,
                Some(job_label(job)),
            ) + &case(
                rule,
                &[(s(metric, job), flat(format!("{now}+0")))],
                eval,
                None,
            )
        }
        AlertKind::StaleEach {
            metric, job, hours, ..
        } => {
            let sel = format!("{metric}{{job=\"{job}\",namespace=\"vaultwarden\",pvc=\"data\"}}");
            let long_ago = -(i64::from(*hours) * 3600);
            let mut labels = job_label(job);
            labels.push(("namespace", "vaultwarden".to_owned()));
            labels.push(("pvc", "data".to_owned()));
            case(
                rule,
                &[(sel.clone(), flat(format!("{long_ago}+0")))],
                eval,
                Some(labels),
            ) + &case(rule, &[(sel, flat(format!("{now}+0")))], eval, None)
        }
        AlertKind::Zero { metric, job } => {
            // a success, then failed runs from minute 3 on; and a good run throughout
            case(
                rule,
                &[(s(metric, job), format!("1 1 1 0x{}", n - 3))],
                eval,
                Some(job_label(job)),
            ) + &case(rule, &[(s(metric, job), flat("1".to_owned()))], eval, None)
        }
        AlertKind::Absent { metric, job } => {
            // never ran (only some other series exists); ran
            case(
                rule,
                &[("up{job=\"node\"}".to_owned(), flat("1".to_owned()))],
                eval,
                Some(job_label(job)),
            ) + &case(
                rule,
                &[(s(metric, job), flat(format!("{now}+0")))],
                eval,
                None,
            )
        }
        AlertKind::Below {
            metric,
            job,
            threshold,
        } => {
            case(
                rule,
                &[(s(metric, job), flat(format!("{}", threshold - 1.0)))],
                eval,
                Some(job_label(job)),
            ) + &case(
                rule,
                &[(s(metric, job), flat(format!("{}", threshold + 1.0)))],
                eval,
                None,
            )
        }
        AlertKind::Above {
            metric,
            job,
            threshold,
        } => {
            case(
                rule,
                &[(s(metric, job), flat(format!("{}", threshold + 1.0)))],
                eval,
                Some(job_label(job)),
            ) + &case(
                rule,
                &[(s(metric, job), flat(format!("{threshold}")))],
                eval,
                None,
            )
        }
        AlertKind::Increased { metric, job } => {
            case(
                rule,
                &[(s(metric, job), flat("0+1".to_owned()))],
                eval,
                Some(job_label(job)),
            ) + &case(rule, &[(s(metric, job), flat("5".to_owned()))], eval, None)
        }
    }
}

#[test]
fn promtool_fires_every_alert_on_its_series_and_not_on_the_healthy_one() {
    let rules = alert_rules(&default_app_jobs());
    let mut file = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n",
        rules_file()
    );
    for r in &rules {
        file.push_str(&cases(r));
    }
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("backup-alerts-test.yaml");
    std::fs::write(&tests, &file).unwrap();
    let out = promtool(&["test", "rules", tests.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n--- tests:\n{file}", text(&out));
    assert!(rules.len() >= 40, "{}", rules.len());
}
