//! Names of the volumes a restore sets aside.

use chrono::{DateTime, NaiveDateTime, Utc};

const MARK: &str = "-pre-restore-";

/// `<lv>-pre-restore-<YYYYMMDDHHMMSS>` (UTC): the live volume, renamed aside by a restore.
pub fn pre_restore_name(lv: &str, at: DateTime<Utc>) -> String {
    format!("{lv}{MARK}{}", at.format("%Y%m%d%H%M%S"))
}

/// Splits a name made by [`pre_restore_name`].
pub fn parse_pre_restore_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    let (lv, stamp) = name.rsplit_once(MARK)?;
    let t = NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").ok()?;
    (!lv.is_empty() && stamp.len() == 14).then(|| (lv, t.and_utc()))
}
