//! What a scheduled job tells, and runs, outside itself: its `[[hooks]]` and its `[notify]`
//! heartbeats and messages. Neither ever changes the job's result, except a `before` hook that
//! fails: the job then does not run.

use std::sync::atomic::AtomicBool;

use backup_core::{metric_names, Config, HookWhen, Metric};
use backup_host::dry_run::Would;
use backup_host::error::Error;
use backup_host::hooks::{hooks_of, run_hook, HookEnv};
use backup_host::notify::{shown, Ended, Notifier, Request};

/// A scheduled run's hooks and notifications.
pub(crate) struct Outside<'a> {
    cfg: &'a Config,
    job: String,
    notifier: Notifier,
    would: Option<&'a Would>,
    stop: &'a AtomicBool,
}

impl<'a> Outside<'a> {
    /// The hooks and notifications of `job` (as its metrics name it); under `--dry-run`
    /// (`would`) they are recorded, not run or sent.
    pub(crate) fn new(
        cfg: &'a Config,
        job: &str,
        would: Option<&'a Would>,
        stop: &'a AtomicBool,
    ) -> Self {
        Self {
            cfg,
            job: job.to_owned(),
            notifier: Notifier::new(&cfg.notify, job),
            would,
            stop,
        }
    }

    /// The start heartbeat.
    pub(crate) fn start(&mut self) {
        let requests = self.notifier.start_requests();
        self.send(&requests, "start");
    }

    /// The `before` hooks, in order; the first that fails stops them and the job.
    ///
    /// # Errors
    /// [`Error::Refused`] naming the hook and how it failed: the job did not run.
    pub(crate) fn before(&self) -> Result<(), Error> {
        let env = HookEnv {
            job: &self.job,
            ended: None,
        };
        for hook in hooks_of(&self.cfg.hooks, &self.job, HookWhen::Before) {
            if let Some(w) = self.would {
                w.push(would_run(hook, &env));
                continue;
            }
            run_hook(hook, &env, self.stop)
                .map_err(|why| Error::Refused(format!("{why}: the job did not run")))?;
        }
        Ok(())
    }

    /// After the job: its `after` or `on-failure` hooks, then its end heartbeat and (failed,
    /// or a summary) its messages. Returns what went wrong, as warnings.
    pub(crate) fn ended(&mut self, exit: u8, tail: &str) -> Vec<String> {
        let when = if exit == 0 {
            HookWhen::After
        } else {
            HookWhen::OnFailure
        };
        let env = HookEnv {
            job: &self.job,
            ended: Some(exit),
        };
        let mut warnings = Vec::new();
        for hook in hooks_of(&self.cfg.hooks, &self.job, when) {
            if let Some(w) = self.would {
                w.push(would_run(hook, &env));
            } else if let Err(why) = run_hook(hook, &env, self.stop) {
                warnings.push(why);
            }
        }
        let summary = [
            metric_names::JOB_VERIFY,
            metric_names::JOB_VERIFY_OFFSITE,
            metric_names::JOB_DRILL,
            metric_names::JOB_DUMP_DRILL,
        ]
        .contains(&self.job.as_str());
        let requests = self.notifier.end_requests(&Ended {
            exit,
            tail,
            summary,
        });
        self.send(&requests, if exit == 0 { "success" } else { "failure" });
        warnings.extend(
            self.notifier
                .failed()
                .iter()
                .map(|f| format!("notification not delivered: {}", f.why)),
        );
        warnings
    }

    /// `backup_notify_failures{kind}`, when a notification failed.
    pub(crate) fn failures_metric(&self) -> Option<Metric> {
        self.notifier.failures_metric()
    }

    fn send(&mut self, requests: &[Request], what: &str) {
        match self.would {
            Some(w) => {
                for r in requests {
                    w.push(format!(
                        "notify {} ({}): {what}",
                        r.kind.name(),
                        shown(&r.url)
                    ));
                }
            }
            None => self.notifier.send(requests),
        }
    }
}

/// What `--dry-run` says of a hook: its command line (its environment is the run's words).
fn would_run(hook: &backup_core::Hook, _env: &HookEnv<'_>) -> String {
    format!(
        "run the hook {} ({})",
        backup_host::hooks::command_line(hook),
        hook.when.word()
    )
}
