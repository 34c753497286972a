//! The Pushgateway sink against a real Pushgateway on loopback: a failed run keeps the last
//! success timestamp, and a failed PVC keeps its own.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backup_core::{Metric, MetricGroup, MetricsSink};
use backup_host::metrics_sink::PushgatewaySink;

const BIN: &str = "/usr/bin/prometheus-pushgateway";

pub struct Gateway(Child, pub u16);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn gateway() -> Gateway {
    assert!(
        std::path::Path::new(BIN).exists(),
        "{BIN} is missing: run scripts/test, which installs prometheus-pushgateway"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Pushgateway did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Gateway(child, port)
}

fn scrape(port: u16) -> String {
    let mut s = String::new();
    ureq_get(port).read_to_string(&mut s).unwrap();
    s.lines()
        .filter(|l| l.starts_with("daily_backup_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Everything the Pushgateway at `port` exposes.
pub fn scrape_all(port: u16) -> String {
    let mut s = String::new();
    ureq_get(port).read_to_string(&mut s).unwrap();
    s
}

fn ureq_get(port: u16) -> impl Read {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    stream
}

fn pvc(ns: &str, pvc: &str, t: f64) -> MetricGroup {
    let mut g = MetricGroup::new(
        "daily-backup",
        vec![Metric::gauge(
            "daily_backup_pvc_last_success_timestamp",
            "p",
            t,
        )],
    );
    g.grouping = vec![("namespace".into(), ns.into()), ("pvc".into(), pvc.into())];
    g
}

#[test]
fn a_failed_run_keeps_the_last_success_in_the_pushgateway() {
    let gw = gateway();
    let sink = PushgatewaySink::new(&format!("http://127.0.0.1:{}", gw.1));
    sink.publish(&MetricGroup::new(
        "daily-backup",
        vec![
            Metric::gauge("daily_backup_last_success_timestamp", "t", 100.0),
            Metric::gauge("daily_backup_last_run_success", "s", 1.0),
        ],
    ))
    .unwrap();
    sink.publish(&pvc("vaultwarden", "data", 100.0)).unwrap();
    sink.publish(&pvc("media", "lib/with slash", 100.0))
        .unwrap();
    // the next run fails, and only vaultwarden/data succeeds
    sink.publish(&MetricGroup::new(
        "daily-backup",
        vec![Metric::gauge("daily_backup_last_run_success", "s", 0.0)],
    ))
    .unwrap();
    sink.publish(&pvc("vaultwarden", "data", 200.0)).unwrap();
    let text = scrape(gw.1);
    assert!(
        text.contains("daily_backup_last_run_success{instance=\"\",job=\"daily-backup\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "daily_backup_last_success_timestamp{instance=\"\",job=\"daily-backup\"} 100"
        ),
        "{text}"
    );
    assert!(text.contains("daily_backup_pvc_last_success_timestamp{instance=\"\",job=\"daily-backup\",namespace=\"vaultwarden\",pvc=\"data\"} 200"), "{text}");
    assert!(text.contains("daily_backup_pvc_last_success_timestamp{instance=\"\",job=\"daily-backup\",namespace=\"media\",pvc=\"lib/with slash\"} 100"), "{text}");
}

#[test]
fn an_unreachable_pushgateway_is_an_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PushgatewaySink::new(&format!("http://127.0.0.1:{port}"))
        .publish(&MetricGroup::new("daily-backup", vec![]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}/metrics/job/daily-backup")),
        "{err}"
    );
}
