//! Metrics sinks: a node_exporter textfile, the Pushgateway, or both.

use std::collections::BTreeMap;

use backup_core::{exposition, Error, MetricGroup, MetricsSink, Result};
use camino::{Utf8Path, Utf8PathBuf};

use crate::fsutil::write_atomic;

/// Writes `<dir>/<job>.prom` for node_exporter's textfile collector. The file is merged series by
/// series: what a run does not send (the last success timestamp of a failed run, a PVC that failed
/// today) keeps its old line. Written atomically, so the collector never reads half a file.
///
/// Every sample carries `job="<job>"`, the label the Pushgateway adds: two jobs that share a
/// textfile folder (two `sqlite-backup` CronJobs) then write different series, where unlabelled
/// ones collide and node_exporter drops one of them; and one alert rule fits both sinks.
#[derive(Debug, Clone)]
pub struct TextfileSink {
    dir: Utf8PathBuf,
}

impl TextfileSink {
    /// Files under `dir`.
    pub fn new(dir: &Utf8Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The file of `job`.
    pub fn file(&self, job: &str) -> Utf8PathBuf {
        self.dir.join(format!("{job}.prom"))
    }
}

#[derive(Default)]
struct Family {
    meta: Vec<String>,
    samples: BTreeMap<String, String>,
}

fn parse_families(text: &str, families: &mut BTreeMap<String, Family>) {
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let name = rest.split(' ').next().unwrap_or("").to_owned();
            let fam = families.entry(name).or_default();
            if !fam.meta.iter().any(|m| m[..6] == line[..6]) {
                fam.meta.push(line.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let series = line.rsplit_once(' ').map_or(line, |(k, _)| k);
            let name = series.split(['{', ' ']).next().unwrap_or("").to_owned();
            families
                .entry(name)
                .or_default()
                .samples
                .insert(series.to_owned(), line.to_owned());
        }
    }
}

impl MetricsSink for TextfileSink {
    fn publish(&self, group: &MetricGroup) -> Result<()> {
        let file = self.file(&group.job);
        let mut families = BTreeMap::new();
        if let Ok(old) = std::fs::read_to_string(&file) {
            parse_families(&old, &mut families);
        }
        // lines written before series carried `job` would stay beside the labelled ones forever
        for fam in families.values_mut() {
            fam.samples.retain(|series, _| series.contains("job=\""));
        }
        let mut labelled = group.clone();
        labelled
            .grouping
            .insert(0, ("job".to_owned(), group.job.clone()));
        let mut new = BTreeMap::new();
        parse_families(&exposition(&labelled.labelled_metrics()), &mut new);
        for (name, fam) in new {
            let old = families.entry(name).or_default();
            old.meta = fam.meta;
            old.samples.extend(fam.samples);
        }
        let mut text = String::new();
        for fam in families.values() {
            for line in fam.meta.iter().chain(fam.samples.values()) {
                text.push_str(line);
                text.push('\n');
            }
        }
        write_atomic(&file, text.as_bytes()).map_err(|e| {
            Error::adapter(
                format!("write metrics to {file} (`metrics.textfile-dir`)"),
                e,
            )
        })
    }
}

/// POSTs to a Pushgateway: `POST <base>/metrics/job/<job>[/<label>/<value>...]`. POST (not PUT)
/// replaces only the metric names it sends, so a failed run that sends no
/// `*_last_success_timestamp` leaves the last success in place.
#[derive(Debug, Clone)]
pub struct PushgatewaySink {
    base: String,
}

impl PushgatewaySink {
    /// Pushes to `base` (`http://127.0.0.1:9091`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The URL of `group`.
    pub fn url(&self, group: &MetricGroup) -> String {
        let mut url = format!("{}/metrics{}", self.base, segment("job", &group.job));
        for (k, v) in &group.grouping {
            url.push_str(&segment(k, v));
        }
        url
    }
}

/// `/<label>/<value>`, or `/<label>@base64/<base64url>` when the value is empty or holds
/// anything but `[A-Za-z0-9._~-]` (the Pushgateway's way to carry `/` in a label value).
fn segment(label: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if plain {
        format!("/{label}/{value}")
    } else if value.is_empty() {
        format!("/{label}@base64/=")
    } else {
        format!("/{label}@base64/{}", base64url(value.as_bytes()))
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl MetricsSink for PushgatewaySink {
    fn publish(&self, group: &MetricGroup) -> Result<()> {
        let url = self.url(group);
        let body = exposition(&group.metrics);
        ureq::post(&url)
            .timeout(std::time::Duration::from_secs(10))
            .set("Content-Type", "text/plain; version=0.0.4")
            .send_string(&body)
            .map(|_| ())
            .map_err(|e| {
                Error::adapter(format!("push metrics to {url} (`metrics.pushgateway`)"), e)
            })
    }
}

/// Publishes to every sink; one failing sink does not stop the others.
pub struct Sinks(pub Vec<Box<dyn MetricsSink>>);

impl MetricsSink for Sinks {
    fn publish(&self, group: &MetricGroup) -> Result<()> {
        let errors: Vec<Error> = self
            .0
            .iter()
            .filter_map(|s| s.publish(group).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Several {
                operation: "publish metrics".to_owned(),
                errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::metric_names as names;

    #[test]
    fn textfile_keeps_what_a_run_did_not_send() {
        let d = tempfile::tempdir().unwrap();
        let sink = TextfileSink::new(Utf8Path::from_path(d.path()).unwrap());
        // a file from before series carried `job`: its lines are replaced, not kept beside
        std::fs::write(
            sink.file("daily-backup"),
            "# HELP daily_backup_last_run_success old\n# TYPE daily_backup_last_run_success gauge\ndaily_backup_last_run_success 1\n",
        )
        .unwrap();
        let ok = MetricGroup::new(
            "daily-backup",
            vec![
                names::DAILY_BACKUP_LAST_SUCCESS.gauge(100.0),
                names::DAILY_BACKUP_LAST_RUN_SUCCESS.gauge(1.0),
            ],
        );
        sink.publish(&ok).unwrap();
        for (ns, pvc, t) in [("a", "x", 100.0), ("b", "y", 100.0)] {
            let mut g = MetricGroup::new(
                "daily-backup",
                vec![names::DAILY_BACKUP_PVC_LAST_SUCCESS.gauge(t)],
            );
            g.grouping = vec![("namespace".into(), ns.into()), ("pvc".into(), pvc.into())];
            sink.publish(&g).unwrap();
        }
        // a failed run: no success timestamp; only b/y succeeded
        sink.publish(&MetricGroup::new(
            "daily-backup",
            vec![names::DAILY_BACKUP_LAST_RUN_SUCCESS.gauge(0.0)],
        ))
        .unwrap();
        let mut g = MetricGroup::new(
            "daily-backup",
            vec![names::DAILY_BACKUP_PVC_LAST_SUCCESS.gauge(200.0)],
        );
        g.grouping = vec![("namespace".into(), "b".into()), ("pvc".into(), "y".into())];
        sink.publish(&g).unwrap();
        insta::assert_snapshot!(std::fs::read_to_string(sink.file("daily-backup")).unwrap(), @r###"
        # HELP daily_backup_last_run_success 1 when the last daily-backup run succeeded
        # TYPE daily_backup_last_run_success gauge
        daily_backup_last_run_success{job="daily-backup"} 0
        # HELP daily_backup_last_success_timestamp unix time of the last successful daily-backup run
        # TYPE daily_backup_last_success_timestamp gauge
        daily_backup_last_success_timestamp{job="daily-backup"} 100
        # HELP daily_backup_pvc_last_success_timestamp unix time of the last complete copy of this PVC
        # TYPE daily_backup_pvc_last_success_timestamp gauge
        daily_backup_pvc_last_success_timestamp{job="daily-backup",namespace="a",pvc="x"} 100
        daily_backup_pvc_last_success_timestamp{job="daily-backup",namespace="b",pvc="y"} 200
        "###);
    }

    #[test]
    fn pushgateway_urls_escape_label_values() {
        let mut g = MetricGroup::new("daily-backup", vec![]);
        g.grouping = vec![("pvc".into(), "a/b c".into())];
        assert_eq!(
            PushgatewaySink::new("http://127.0.0.1:9091/").url(&g),
            "http://127.0.0.1:9091/metrics/job/daily-backup/pvc@base64/YS9iIGM"
        );
        g.grouping = vec![
            ("namespace".into(), "vault-warden".into()),
            ("pvc".into(), "".into()),
        ];
        assert_eq!(
            PushgatewaySink::new("http://h:9091").url(&g),
            "http://h:9091/metrics/job/daily-backup/namespace/vault-warden/pvc@base64/="
        );
        assert_eq!(base64url(b"Man"), "TWFu");
        assert_eq!(base64url(b"Ma"), "TWE");
        assert_eq!(base64url(b"M"), "TQ");
    }
}
