//! The metrics of a daily run, from its report.

use backup_core::metric_names::{self as names, JobMetrics};
use backup_core::MetricGroup;

use crate::outcome::{DailyReport, Status};
use backup_host::exit::Exit;

/// The run's group, then one group per PVC copied (each PVC its own Pushgateway group, so one
/// that failed today keeps yesterday's timestamp).
pub(crate) fn groups(report: &DailyReport) -> Vec<MetricGroup> {
    let job = JobMetrics::daily_backup();
    let ok = report.exit == Exit::Success;
    let mut metrics = job.outcome(ok, report.now_unix);
    metrics.push(names::DAILY_BACKUP_DURATION.gauge(report.seconds));
    let copied = report
        .volumes
        .iter()
        .flat_map(|v| &v.sqlite)
        .filter(|s| s.error.is_none())
        .count();
    metrics.push(names::DAILY_BACKUP_SQLITE_COPIED.gauge(copied as f64));
    metrics.push(names::DAILY_BACKUP_SQLITE_FAILED.gauge(report.sqlite_failures().count() as f64));
    if report
        .pfsense
        .as_ref()
        .is_some_and(|p| p.status == Status::Ok)
    {
        // only on success: a failed copy never moves it (the sinks replace series by name)
        metrics.push(names::DAILY_BACKUP_PFSENSE_LAST_SUCCESS.gauge(report.now_unix as f64));
    }
    if let Some(pct) = report.disk_usage_percent {
        metrics.push(names::BACKUP_DISK_USAGE_PERCENT.gauge(pct));
    }
    let mut out = vec![MetricGroup::new(&job.job, metrics)];
    for v in report.volumes.iter().filter(|v| v.status == Status::Ok) {
        let mut g = MetricGroup::new(
            &job.job,
            vec![names::DAILY_BACKUP_PVC_LAST_SUCCESS.gauge(report.now_unix as f64)],
        );
        g.grouping = vec![
            ("namespace".to_owned(), v.namespace.clone()),
            ("pvc".to_owned(), v.pvc.clone()),
        ];
        out.push(g);
    }
    out
}
