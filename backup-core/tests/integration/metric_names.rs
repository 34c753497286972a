//! The metric names are a public contract: this snapshot shows any rename or removal in review.

use backup_core::metric_names::{self, JobMetrics};

#[test]
fn every_metric_name_with_its_help() {
    let mut lines: Vec<String> = metric_names::ALL
        .iter()
        .map(|m| format!("{}: {}", m.name, m.help))
        .collect();
    for j in [
        JobMetrics::lvm_snapshot(),
        JobMetrics::daily_backup(),
        JobMetrics::offsite_sync(),
        JobMetrics::backup("vaultwarden"),
        JobMetrics::integrity_check("vaultwarden"),
    ] {
        lines.push(format!(
            "job {}: {} / {}",
            j.job,
            j.run_success.name,
            j.last_success
                .map(|m| m.name.into_owned())
                .unwrap_or_else(|| "-".to_owned())
        ));
    }
    insta::assert_snapshot!(lines.join("\n"));
}
