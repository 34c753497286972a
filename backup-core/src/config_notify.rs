//! `[notify]` and `[[hooks]]`: who hears of a run when the cluster (and its Prometheus) is down,
//! and what runs around a job. Validated here like every other section; the URLs themselves
//! are secrets (a token in a path or a query) and live in files of their own, read at run time
//! and never shown.

use std::collections::BTreeMap;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use crate::config_check::Check;
use crate::error::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct RawNotify {
    #[serde(flatten)]
    urls: RawUrls,
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
    #[serde(default)]
    job: BTreeMap<String, RawUrls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct RawUrls {
    healthchecks_url_file: Option<String>,
    uptime_kuma_push_url_file: Option<String>,
    ntfy_url_file: Option<String>,
    gotify_url_file: Option<String>,
    webhook_url_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct RawHook {
    job: String,
    when: String,
    command: Vec<String>,
    timeout_seconds: Option<u64>,
}

/// Where each kind of notification goes: files that hold the URL (owned by root, nobody else
/// may write them, as every secret file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifyUrls {
    /// `healthchecks-url-file`. In `[notify]`: `https://hc-ping.com/<ping-key>` (or a
    /// self-hosted one's), each job pinging `<url>/<job>` (`/start`, or `/<exit code>` when it
    /// failed); in `[notify.job.<job>]`: one check's own ping URL, used as it is.
    pub healthchecks: Option<Utf8PathBuf>,
    /// `uptime-kuma-push-url-file`: a push monitor's URL (`…/api/push/<token>`), sent `up` or
    /// `down` when the job ends.
    pub uptime_kuma: Option<Utf8PathBuf>,
    /// `ntfy-url-file`: `https://ntfy.sh/<topic>`; failures and `verify`/`drill` summaries.
    pub ntfy: Option<Utf8PathBuf>,
    /// `gotify-url-file`: `https://gotify.example/message?token=<app token>`; as ntfy.
    pub gotify: Option<Utf8PathBuf>,
    /// `webhook-url-file`: any URL that takes a JSON POST
    /// (`{job, result, exit, host, tail, summary}`); as ntfy.
    pub webhook: Option<Utf8PathBuf>,
}

impl NotifyUrls {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self == &NotifyUrls::default()
    }

    /// `self`, with each kind `over` names taken from it.
    #[must_use]
    pub fn overridden_by(&self, over: &NotifyUrls) -> NotifyUrls {
        NotifyUrls {
            healthchecks: over
                .healthchecks
                .clone()
                .or_else(|| self.healthchecks.clone()),
            uptime_kuma: over
                .uptime_kuma
                .clone()
                .or_else(|| self.uptime_kuma.clone()),
            ntfy: over.ntfy.clone().or_else(|| self.ntfy.clone()),
            gotify: over.gotify.clone().or_else(|| self.gotify.clone()),
            webhook: over.webhook.clone().or_else(|| self.webhook.clone()),
        }
    }
}

/// `[notify]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifyConfig {
    /// For every job.
    pub urls: NotifyUrls,
    /// `[notify.job.<job>]`: a job's own, over the defaults (the job as its metrics name it:
    /// `daily-backup`, `backupctl-verify`, `vaultwarden-backup`).
    pub jobs: BTreeMap<String, NotifyUrls>,
    /// `timeout-seconds` (default 10): each try of a request, connecting included (a name that
    /// does not resolve can take longer: DNS is not interrupted).
    pub timeout_seconds: u64,
    /// `retries` (default 2): tries after a failed one, each after a short pause.
    pub retries: u32,
}

impl NotifyConfig {
    /// What `job` notifies: its own kinds over the defaults. Healthchecks from the defaults
    /// pings `<url>/<job>`; a job's own is its check's URL.
    pub fn for_job(&self, job: &str) -> (NotifyUrls, bool) {
        match self.jobs.get(job) {
            Some(own) => {
                let slugged = own.healthchecks.is_none();
                (self.urls.overridden_by(own), slugged)
            }
            None => (self.urls.clone(), true),
        }
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookWhen {
    /// Before the job; a hook that fails stops the job.
    Before,
    /// After the job succeeded.
    After,
    /// After the job failed.
    OnFailure,
}

impl HookWhen {
    /// The word in the config and in messages.
    pub fn word(self) -> &'static str {
        match self {
            HookWhen::Before => "before",
            HookWhen::After => "after",
            HookWhen::OnFailure => "on-failure",
        }
    }
}

/// One `[[hooks]]` entry: a command (an argument vector, never a shell) around a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// `job`: the job as its metrics name it (`lvm-pvc-snapshot`, `offsite-sync-backup`).
    pub job: String,
    /// `when`.
    pub when: HookWhen,
    /// `command`: the program (an absolute path) and its arguments.
    pub command: Vec<String>,
    /// `timeout-seconds` (default 60): then it is killed (and counts as failed).
    pub timeout_seconds: u64,
}

impl Check<'_> {
    fn urls(&self, table: &str, raw: &RawUrls) -> Result<NotifyUrls, ConfigError> {
        let file = |k: &str, v: &Option<String>| {
            v.as_deref()
                .map(|p| self.abs(&format!("{table}.{k}"), p))
                .transpose()
        };
        Ok(NotifyUrls {
            healthchecks: file("healthchecks-url-file", &raw.healthchecks_url_file)?,
            uptime_kuma: file("uptime-kuma-push-url-file", &raw.uptime_kuma_push_url_file)?,
            ntfy: file("ntfy-url-file", &raw.ntfy_url_file)?,
            gotify: file("gotify-url-file", &raw.gotify_url_file)?,
            webhook: file("webhook-url-file", &raw.webhook_url_file)?,
        })
    }

    /// `[notify]`: absolute URL files, a timeout above 0, job names that are names.
    pub(crate) fn notify(&self, raw: RawNotify) -> Result<NotifyConfig, ConfigError> {
        let mut jobs = BTreeMap::new();
        for (name, urls) in &raw.job {
            let key = format!("notify.job.{name}");
            self.name(&key, name)?;
            jobs.insert(name.clone(), self.urls(&key, urls)?);
        }
        let timeout_seconds = raw.timeout_seconds.unwrap_or(10);
        if timeout_seconds == 0 || timeout_seconds > 300 {
            return Err(self.err(
                "notify.timeout-seconds",
                format!("expected 1 to 300 (a notification must never hold a backup up), found {timeout_seconds}"),
            ));
        }
        let retries = raw.retries.unwrap_or(2);
        if retries > 5 {
            return Err(self.err(
                "notify.retries",
                format!("expected at most 5, found {retries}"),
            ));
        }
        Ok(NotifyConfig {
            urls: self.urls("notify", &raw.urls)?,
            jobs,
            timeout_seconds,
            retries,
        })
    }

    /// `[[hooks]]`: a known `when`, a command whose program is an absolute path, a timeout above 0.
    pub(crate) fn hooks(&self, raw: Vec<RawHook>) -> Result<Vec<Hook>, ConfigError> {
        let mut out = Vec::new();
        for (i, h) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("hooks[{i}].{k}");
            let job = self.name(&key("job"), &h.job)?;
            let when = match h.when.as_str() {
                "before" => HookWhen::Before,
                "after" => HookWhen::After,
                "on-failure" => HookWhen::OnFailure,
                other => {
                    return Err(self.err(
                        &key("when"),
                        format!(
                            "expected `before`, `after` or `on-failure`, found `{}`",
                            other.escape_debug()
                        ),
                    ))
                }
            };
            let Some(program) = h.command.first() else {
                return Err(self.err(
                    &key("command"),
                    "expected the program and its arguments, found an empty list",
                ));
            };
            self.abs_plain(&key("command"), program)?;
            if let Some(bad) = h.command.iter().find(|a| a.contains('\0')) {
                return Err(self.err(
                    &key("command"),
                    format!(
                        "expected arguments without a NUL byte, found `{}`",
                        bad.escape_debug()
                    ),
                ));
            }
            let timeout_seconds = h.timeout_seconds.unwrap_or(60);
            if timeout_seconds == 0 {
                return Err(self.err(&key("timeout-seconds"), "expected above 0, found 0"));
            }
            out.push(Hook {
                job,
                when,
                command: h.command,
                timeout_seconds,
            });
        }
        Ok(out)
    }
}
