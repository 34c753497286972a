//! Heard when the cluster is down: heartbeats and push messages that need nothing of the cluster
//! this toolkit protects (its Prometheus and Pushgateway go quiet with it, and silence reads as
//! "no alert").
//!
//! - **Healthchecks** (or any service that speaks its ping API): `<url>/start` when a job starts,
//!   `<url>` when it succeeded, `<url>/<exit code>` when it failed, with the last lines of its
//!   output as the body. From `[notify]`, `<url>` is the ping-key URL with the job's name
//!   appended (`?create=1`: the check is made on its first ping); from `[notify.job.<job>]` it is
//!   that check's own URL.
//! - **Uptime Kuma**: the push monitor's URL with `status=up` or `status=down` when a job ends.
//! - **ntfy**, **Gotify**, a **webhook** (JSON): a message when a job fails, and the summary of
//!   every `verify` and `drill`.
//!
//! A notification never fails or holds up a run: each request has `timeout-seconds` for all of
//! it, a failed one is tried `retries` times more after a short pause, and what still fails is a
//! warning on stderr and `backup_notify_failures{kind}` in the job's metrics. The URLs carry
//! tokens: they are read from files checked like every secret file, and only their scheme and
//! host are ever shown.

use std::time::Duration;

use backup_core::{NotifyConfig, NotifyUrls};
use camino::Utf8Path;

/// The kinds, as the config, the messages and the metric's label name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `healthchecks-url-file`.
    Healthchecks,
    /// `uptime-kuma-push-url-file`.
    UptimeKuma,
    /// `ntfy-url-file`.
    Ntfy,
    /// `gotify-url-file`.
    Gotify,
    /// `webhook-url-file`.
    Webhook,
}

impl Kind {
    /// The label: `healthchecks`, `uptime-kuma`, `ntfy`, `gotify`, `webhook`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Healthchecks => "healthchecks",
            Kind::UptimeKuma => "uptime-kuma",
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Webhook => "webhook",
        }
    }

    /// True for the kinds that carry messages (failures, summaries), not heartbeats.
    fn messages(self) -> bool {
        matches!(self, Kind::Ntfy | Kind::Gotify | Kind::Webhook)
    }
}

/// One configured place, its URL read from its file.
struct Target {
    kind: Kind,
    url: String,
    /// Healthchecks from `[notify]`: the job's name is appended to the URL.
    slugged: bool,
}

/// One request: where, how, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The kind it is for.
    pub kind: Kind,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The whole URL (a secret: never shown, see [`shown`]).
    pub url: String,
    /// `Content-Type` and other headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for `GET`).
    pub body: String,
}

/// A notification that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Its kind.
    pub kind: Kind,
    /// What went wrong, with the URL shown as [`shown`] shows it.
    pub why: String,
}

/// How a job ended, for its notifications.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// Its exit code (0: success).
    pub exit: u8,
    /// The last lines of what it printed (or its error).
    pub tail: &'a str,
    /// A `verify` or `drill`: its summary goes to the message kinds whatever the result.
    pub summary: bool,
}

/// Sends a job's notifications; collects what failed.
pub struct Notifier {
    job: String,
    host: String,
    targets: Vec<Target>,
    retries: u32,
    failed: Vec<Failed>,
    /// One HTTP client for all of the run's requests.
    agent: ureq::Agent,
}

impl Notifier {
    /// The notifications of `job` (as its metrics name it) from `[notify]`: each URL file read
    /// and checked now; one that cannot be is a failure of its kind (said, counted), never the
    /// run's.
    pub fn new(cfg: &NotifyConfig, job: &str) -> Self {
        let (urls, slugged) = cfg.for_job(job);
        let mut n = Notifier {
            job: job.to_owned(),
            host: hostname(),
            targets: Vec::new(),
            retries: cfg.retries,
            failed: Vec::new(),
            agent: agent(Duration::from_secs(cfg.timeout_seconds)),
        };
        for (kind, file) in files(&urls) {
            match read_url(file) {
                Ok(url) => n.targets.push(Target {
                    kind,
                    url,
                    slugged: slugged && kind == Kind::Healthchecks,
                }),
                Err(why) => n.failed.push(Failed { kind, why }),
            }
        }
        n
    }

    /// True when nothing is configured for the job.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.failed.is_empty()
    }

    /// The requests of a job's start: the Healthchecks `/start` ping.
    pub fn start_requests(&self) -> Vec<Request> {
        self.targets
            .iter()
            .filter(|t| t.kind == Kind::Healthchecks)
            .map(|t| self.healthchecks(t, "/start", String::new()))
            .collect()
    }

    /// A Healthchecks `/log` event (it changes no check's state): what `notify test` sends on a
    /// job's own check, which a test must not turn green.
    pub fn log_requests(&self, body: &str) -> Vec<Request> {
        self.targets
            .iter()
            .filter(|t| t.kind == Kind::Healthchecks)
            .map(|t| self.healthchecks(t, "/log", tail(body, 40)))
            .collect()
    }

    /// The requests of a job's end: the Healthchecks ping (success, or the exit code), Uptime
    /// Kuma up or down; a message to ntfy, Gotify and the webhook when it failed or is a summary.
    pub fn end_requests(&self, ended: &Ended<'_>) -> Vec<Request> {
        let ok = ended.exit == 0;
        self.targets
            .iter()
            .filter(|t| !t.kind.messages() || !ok || ended.summary)
            .map(|t| match t.kind {
                Kind::Healthchecks => {
                    let suffix = if ok {
                        String::new()
                    } else {
                        format!("/{}", ended.exit)
                    };
                    self.healthchecks(t, &suffix, tail(ended.tail, 40))
                }
                Kind::UptimeKuma => self.kuma(t, ended),
                kind => self.message(t, kind, ended),
            })
            .collect()
    }

    fn healthchecks(&self, t: &Target, suffix: &str, body: String) -> Request {
        let (base, query) = split_query(&t.url);
        let url = if t.slugged {
            format!(
                "{}/{}{suffix}?create=1",
                base.trim_end_matches('/'),
                self.job
            )
        } else {
            format!("{}{suffix}{query}", base.trim_end_matches('/'))
        };
        Request {
            kind: Kind::Healthchecks,
            method: "POST",
            url,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            body,
        }
    }

    fn kuma(&self, t: &Target, ended: &Ended<'_>) -> Request {
        let (base, _) = split_query(&t.url);
        let (status, msg) = if ended.exit == 0 {
            ("up", "OK".to_owned())
        } else {
            (
                "down",
                format!("{} failed on {} (exit {})", self.job, self.host, ended.exit),
            )
        };
        Request {
            kind: Kind::UptimeKuma,
            method: "GET",
            url: format!("{base}?status={status}&msg={}&ping=", percent(&msg)),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    fn message(&self, t: &Target, kind: Kind, ended: &Ended<'_>) -> Request {
        let ok = ended.exit == 0;
        let result = if ok { "success" } else { "failure" };
        let title = if ok {
            format!("{} on {}: done", self.job, self.host)
        } else {
            format!("{} FAILED on {} (exit {})", self.job, self.host, ended.exit)
        };
        let text = tail(ended.tail, 40);
        let (headers, body) = match kind {
            Kind::Ntfy => (
                vec![
                    ("Title", title),
                    ("Priority", if ok { "default" } else { "high" }.to_owned()),
                    (
                        "Tags",
                        if ok { "white_check_mark" } else { "warning" }.to_owned(),
                    ),
                    ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                ],
                text,
            ),
            Kind::Gotify => (
                vec![("Content-Type", "application/json".to_owned())],
                serde_json::json!({
                    "title": title,
                    "message": text,
                    "priority": if ok { 4 } else { 8 },
                })
                .to_string(),
            ),
            _ => (
                vec![("Content-Type", "application/json".to_owned())],
                serde_json::json!({
                    "job": self.job,
                    "result": result,
                    "exit": ended.exit,
                    "host": self.host,
                    "tail": text,
                    "summary": ended.summary,
                })
                .to_string(),
            ),
        };
        Request {
            kind,
            method: "POST",
            url: t.url.clone(),
            headers,
            body,
        }
    }

    /// Sends `requests`, each with its timeout and retries; what still fails is kept.
    pub fn send(&mut self, requests: &[Request]) {
        for r in requests {
            if let Err(why) = self.send_one(r) {
                self.failed.push(Failed { kind: r.kind, why });
            }
        }
    }

    fn send_one(&self, r: &Request) -> Result<(), String> {
        let agent = &self.agent;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            }
            let mut req = agent.request(r.method, &r.url);
            for (k, v) in &r.headers {
                req = req.set(k, v);
            }
            let sent = if r.method == "GET" {
                req.call()
            } else {
                req.send_string(&r.body)
            };
            match sent {
                Ok(resp) if (300..400).contains(&resp.status()) => {
                    last = format!(
                        "HTTP {} (a redirect: give the URL it points to)",
                        resp.status()
                    );
                    break;
                }
                Ok(_) => return Ok(()),
                Err(ureq::Error::Status(code, _)) => {
                    last = format!("HTTP {code}");
                    // the service said no: a retry would be told the same
                    if (400..500).contains(&code) && code != 429 {
                        break;
                    }
                }
                Err(ureq::Error::Transport(t)) => last = t.kind().to_string(),
            }
        }
        Err(format!(
            "{} ({}): {last} after {} tr{}",
            r.kind.name(),
            shown(&r.url),
            self.retries + 1,
            if self.retries == 0 { "y" } else { "ies" }
        ))
    }

    /// What could not be delivered so far (URL files that could not be read included).
    pub fn failed(&self) -> &[Failed] {
        &self.failed
    }

    /// `backup_notify_failures{kind}` for every kind configured (0 when all arrived: a failure
    /// of an earlier run does not stay); `None` when nothing is configured.
    pub fn failures_metric(&self) -> Option<backup_core::Metric> {
        if self.is_empty() {
            return None;
        }
        let configured = |k: Kind| {
            self.targets.iter().any(|t| t.kind == k) || self.failed.iter().any(|f| f.kind == k)
        };
        let mut m = backup_core::metric_names::NOTIFY_FAILURES.labelled();
        for kind in [
            Kind::Healthchecks,
            Kind::UptimeKuma,
            Kind::Ntfy,
            Kind::Gotify,
            Kind::Webhook,
        ] {
            let n = self.failed.iter().filter(|f| f.kind == kind).count();
            if configured(kind) {
                m = m.with_sample(&[("kind", kind.name())], n as f64);
            }
        }
        Some(m)
    }
}

/// The HTTP client: the timeout bounds connecting too (ureq's own is 30 s); a redirect is not
/// followed (a POST would arrive as a GET without its body and count as delivered).
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(timeout)
        .timeout_connect(timeout)
        .redirects(0)
        .user_agent(concat!("homelab-backup/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Each configured kind with its file.
fn files(urls: &NotifyUrls) -> Vec<(Kind, &Utf8Path)> {
    [
        (Kind::Healthchecks, &urls.healthchecks),
        (Kind::UptimeKuma, &urls.uptime_kuma),
        (Kind::Ntfy, &urls.ntfy),
        (Kind::Gotify, &urls.gotify),
        (Kind::Webhook, &urls.webhook),
    ]
    .into_iter()
    .filter_map(|(k, f)| f.as_deref().map(|f| (k, f)))
    .collect()
}

/// The URL a file holds (its first line that is not blank or a `#` comment), checked like
/// every secret file: owned by root up the path, nobody else may write it.
///
/// # Errors
/// Says why, naming the file, never its content.
pub fn read_url(file: &Utf8Path) -> Result<String, String> {
    crate::safe_read::check_trusted(file).map_err(|e| format!("{file}: {e}"))?;
    // it holds a token: nobody but its owner may read it either
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("{file}: cannot read it: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{file}: mode {:o}: others may read the token it holds; `chmod 600 {file}`",
            mode & 0o777
        ));
    }
    let text = crate::safe_read::read_regular_string(file)
        .map_err(|e| format!("{file}: cannot read it: {e}"))?;
    let url = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| format!("{file}: holds no URL"))?;
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{file}: expected one http:// or https:// URL without spaces (the line is not \
             shown: it holds a token)"
        ));
    }
    Ok(url.to_owned())
}

/// A URL as it may be shown: scheme and host, the rest (tokens, topics, keys) hidden.
pub fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // `user:password@host`: the host only
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(a URL)".to_owned(),
    }
}

/// `url` split at its query: (`…/path`, `?a=b` or empty).
fn split_query(url: &str) -> (&str, &str) {
    match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    }
}

/// The last `lines` lines of `text`, at most 10,000 bytes (Healthchecks keeps 100 kB of a body).
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if out.len() > 10_000 {
        let mut cut = out.len() - 10_000;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_owned();
    }
    out
}

/// `s` for a URL's query: unreserved characters as they are, the rest `%XX`.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// This host's name, as the kernel has it (`localhost` when it cannot be read): messages say
/// where it happened, restic snapshots are tagged with it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scheme_and_host_are_ever_shown() {
        assert_eq!(
            shown("https://hc-ping.com/abc-key/daily?create=1"),
            "https://hc-ping.com/…"
        );
        assert_eq!(
            shown("https://user:secret@gotify.lan/message?token=T"),
            "https://gotify.lan/…"
        );
        assert_eq!(shown("nonsense"), "(a URL)");
        assert_eq!(percent("a b/é"), "a%20b%2F%C3%A9");
        let long = "x\n".repeat(100);
        assert_eq!(tail(&long, 3), "x\nx\nx");
    }
}
