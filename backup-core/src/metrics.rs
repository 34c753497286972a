//! The metric model and its Prometheus text exposition.

use serde::Serialize;

use crate::error::Result;

/// One gauge sample: a value with its labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Label pairs, in the order given.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// One gauge with its help text and samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The series name (`daily_backup_last_success_timestamp`).
    pub name: String,
    /// The `# HELP` text.
    pub help: String,
    /// Its samples (usually one).
    pub samples: Vec<Sample>,
}

impl Metric {
    /// A gauge with one unlabelled sample.
    pub fn gauge(name: &str, help: &str, value: f64) -> Self {
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: vec![Sample {
                labels: Vec::new(),
                value,
            }],
        }
    }

    /// A gauge with no samples yet; add them with [`Metric::with_sample`].
    pub fn labelled(name: &str, help: &str) -> Self {
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: Vec::new(),
        }
    }

    /// Adds a labelled sample.
    #[must_use]
    pub fn with_sample(mut self, labels: &[(&str, &str)], value: f64) -> Self {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        });
        self
    }
}

/// The metrics one run of one job reports: the Pushgateway job is the binary's name.
///
/// `grouping` labels make a group of their own in the Pushgateway
/// (`/metrics/job/<job>/<label>/<value>`): the per-PVC success timestamps are pushed one group per
/// PVC, so a PVC that failed today keeps yesterday's timestamp instead of losing its series (a
/// Pushgateway POST replaces every series of a metric name within one group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricGroup {
    /// The Pushgateway job (`daily-backup`, `vaultwarden-backup`).
    pub job: String,
    /// Grouping labels beyond `job`; they are added to every sample.
    pub grouping: Vec<(String, String)>,
    /// The gauges.
    pub metrics: Vec<Metric>,
}

impl MetricGroup {
    /// A group for `job` with no grouping labels.
    pub fn new(job: &str, metrics: Vec<Metric>) -> Self {
        Self {
            job: job.to_owned(),
            grouping: Vec::new(),
            metrics,
        }
    }

    /// The metrics with the grouping labels put in front of each sample's own labels: what a
    /// scrape of the Pushgateway (or a textfile) shows.
    pub fn labelled_metrics(&self) -> Vec<Metric> {
        self.metrics
            .iter()
            .map(|m| Metric {
                samples: m
                    .samples
                    .iter()
                    .map(|s| Sample {
                        labels: self
                            .grouping
                            .iter()
                            .cloned()
                            .chain(s.labels.iter().cloned())
                            .collect(),
                        value: s.value,
                    })
                    .collect(),
                ..m.clone()
            })
            .collect()
    }
}

/// Where metrics go: the Pushgateway, a node_exporter textfile, or both.
pub trait MetricsSink: Send + Sync {
    /// Publishes `group`, replacing only the series it holds (a failed run that does not send
    /// `*_last_success_timestamp` must leave the last success in place).
    ///
    /// # Errors
    /// When the sink cannot be written.
    fn publish(&self, group: &MetricGroup) -> Result<()>;
}

/// The Prometheus text exposition format (version 0.0.4) of `metrics`.
///
/// Label values escape `\`, `"` and newline; help text escapes `\` and newline. Values print as
/// Prometheus reads them: `NaN`, `+Inf`, `-Inf`, otherwise Rust's shortest round-trip form.
pub fn exposition(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        out.push_str(&format!("# HELP {} {}\n", m.name, escape_help(&m.help)));
        out.push_str(&format!("# TYPE {} gauge\n", m.name));
        for s in &m.samples {
            out.push_str(&m.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push(' ');
            out.push_str(&format_value(s.value));
            out.push('\n');
        }
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_label_values() {
        let metrics = vec![
            Metric::gauge(
                "daily_backup_last_run_success",
                "1 if the last run succeeded",
                1.0,
            ),
            Metric::labelled(
                "daily_backup_pvc_last_success_timestamp",
                "per pvc\\ \"success\"\nline",
            )
            .with_sample(
                &[("namespace", "a\"b"), ("pvc", "c\\d\ne")],
                1_767_225_600.0,
            ),
            Metric::gauge("x_ratio", "h", f64::NAN),
        ];
        insta::assert_snapshot!(exposition(&metrics), @r###"
        # HELP daily_backup_last_run_success 1 if the last run succeeded
        # TYPE daily_backup_last_run_success gauge
        daily_backup_last_run_success 1
        # HELP daily_backup_pvc_last_success_timestamp per pvc\\ "success"\nline
        # TYPE daily_backup_pvc_last_success_timestamp gauge
        daily_backup_pvc_last_success_timestamp{namespace="a\"b",pvc="c\\d\ne"} 1767225600
        # HELP x_ratio h
        # TYPE x_ratio gauge
        x_ratio NaN
        "###);
    }
}
