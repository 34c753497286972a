//! `backupctl alerts`: the Prometheus rule file, from the metric names and the config's
//! application jobs.

use backup_core::{alert_rules, default_app_jobs, render_alert_rules, AlertRule, Config};
use serde::Serialize;

use backup_host::exit::Exit;
use backup_run::Outcome;

/// The rules; text is the rule file itself.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsReport {
    /// Every rule.
    pub rules: Vec<AlertRule>,
}

/// The rules for `cfg` (the seed's six application jobs without one).
pub fn alerts(cfg: Option<&Config>) -> AlertsReport {
    let jobs = cfg.map_or_else(default_app_jobs, |c| c.alert_jobs.clone());
    AlertsReport {
        rules: alert_rules(&jobs),
    }
}

impl Outcome for AlertsReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        render_alert_rules(&self.rules).trim_end().to_owned()
    }
}
