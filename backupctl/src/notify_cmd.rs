//! `backupctl notify test`: one of each kind of `[notify]` sent, and what became of it.

use serde::Serialize;

use backup_core::Config;
use backup_host::exit::Exit;
use backup_host::notify::{shown, Ended, Kind, Notifier};

/// The check `notify test` pings unless `--job` names another.
pub const TEST_JOB: &str = "backupctl-notify-test";
use backup_run::Outcome;

/// What each kind did.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyTestReport {
    /// (kind, URL as shown, delivered; why not).
    pub sent: Vec<(String, String, Result<(), String>)>,
    /// `--dry-run`: nothing was sent.
    pub dry_run: bool,
}

/// Sends, as `job` would, a start and a success ping and a test message to each configured kind.
pub fn notify_test(cfg: &Config, job: &str, dry_run: bool) -> NotifyTestReport {
    let mut n = Notifier::new(&cfg.notify, job);
    let text = format!(
        "a test of homelab-backup's notifications (backupctl notify test --job {job}): \
         nothing failed"
    );
    let ended = Ended {
        exit: 0,
        tail: &text,
        summary: true,
    };
    let requests: Vec<_> = if job == TEST_JOB {
        let mut r = n.start_requests();
        r.extend(n.end_requests(&ended));
        r
    } else {
        // a real job's checks: a Healthchecks log event (a success ping would turn a check that
        // is down for a real failure green) and no Uptime Kuma push (it would say `up`)
        let mut r = n.log_requests(&text);
        r.extend(
            n.end_requests(&ended)
                .into_iter()
                .filter(|r| !matches!(r.kind, Kind::Healthchecks | Kind::UptimeKuma)),
        );
        r
    };
    let unreadable: Vec<_> = n.failed().to_vec();
    let mut sent = Vec::new();
    for f in unreadable {
        sent.push((f.kind.name().to_owned(), String::new(), Err(f.why)));
    }
    for r in &requests {
        let before = n.failed().len();
        if !dry_run {
            n.send(std::slice::from_ref(r));
        }
        let result = match n.failed().get(before) {
            Some(f) => Err(f.why.clone()),
            None => Ok(()),
        };
        sent.push((r.kind.name().to_owned(), shown(&r.url), result));
    }
    NotifyTestReport { sent, dry_run }
}

impl Outcome for NotifyTestReport {
    fn exit(&self) -> Exit {
        if self.sent.iter().any(|(_, _, r)| r.is_err()) {
            Exit::Failed
        } else {
            Exit::Success
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        if self.sent.is_empty() {
            return "notify test: nothing is configured in [notify]".to_owned();
        }
        let mut out = String::new();
        for (kind, url, result) in &self.sent {
            let word = match (result, self.dry_run) {
                (Ok(()), true) => "would".to_owned(),
                (Ok(()), false) => "sent".to_owned(),
                (Err(why), _) => format!("FAILED: {why}"),
            };
            out.push_str(&format!("  {kind:<13} {url:<28} {word}\n"));
        }
        let failed = self.sent.iter().filter(|(_, _, r)| r.is_err()).count();
        out.push_str(&format!(
            "notify test: {} of {} delivered; exit {}",
            self.sent.len() - failed,
            self.sent.len(),
            self.exit().code()
        ));
        out
    }
}
