//! ISO 8601 week ids: the name of every weekly folder in the backup root.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 8601 week: the week-based year and the week number (`%G-%V`).
///
/// Shown as `YYYY-WW` (`2026-01`). 2025-12-29 is in `2026-01` and 2027-01-01 is in `2026-53`:
/// the calendar year (`%Y`) would put those days in the wrong week folder and make the newest
/// backup sort as the oldest at New Year. The derived order (year, then week) is the order of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    year: i32,
    week: u32,
}

impl IsoWeek {
    /// The week that contains `date`.
    pub fn from_date(date: NaiveDate) -> Self {
        let iso = date.iso_week();
        Self {
            year: iso.year(),
            week: iso.week(),
        }
    }

    /// Builds a week from its parts; `None` when the year has no such week.
    pub fn new(year: i32, week: u32) -> Option<Self> {
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).map(|_| Self { year, week })
    }

    /// The ISO week-based year (not always the calendar year of every day in it).
    pub fn year(self) -> i32 {
        self.year
    }

    /// The week number, 1..=53.
    pub fn week(self) -> u32 {
        self.week
    }

    /// The Monday that starts this week.
    pub fn monday(self) -> NaiveDate {
        NaiveDate::from_isoywd_opt(self.year, self.week, Weekday::Mon)
            .expect("an IsoWeek is only built for weeks that exist")
    }

    /// The week after this one.
    pub fn next(self) -> Self {
        Self::from_date(self.monday() + chrono::Duration::days(7))
    }

    /// The week before this one.
    pub fn previous(self) -> Self {
        Self::from_date(self.monday() - chrono::Duration::days(7))
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.week)
    }
}

/// A week id that is not `YYYY-WW` or names a week its year does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ISO week `{input}`: {reason}")]
pub struct WeekParseError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for IsoWeek {
    type Err = WeekParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &'static str| WeekParseError {
            input: s.to_owned(),
            reason,
        };
        let (year, week) = s
            .split_once('-')
            .ok_or_else(|| invalid("expected YYYY-WW"))?;
        if year.len() != 4 || week.len() != 2 {
            return Err(invalid("expected YYYY-WW"));
        }
        if !year.bytes().chain(week.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(invalid("expected digits in YYYY-WW"));
        }
        let year: i32 = year.parse().map_err(|_| invalid("bad year"))?;
        let week: u32 = week.parse().map_err(|_| invalid("bad week"))?;
        Self::new(year, week).ok_or_else(|| invalid("that year has no such ISO week"))
    }
}

impl Serialize for IsoWeek {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoWeek {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn new_year_edges_use_the_iso_year() {
        assert_eq!(IsoWeek::from_date(d(2025, 12, 29)).to_string(), "2026-01");
        assert_eq!(IsoWeek::from_date(d(2027, 1, 1)).to_string(), "2026-53");
        assert_eq!(IsoWeek::from_date(d(2021, 1, 3)).to_string(), "2020-53");
        assert_eq!(IsoWeek::from_date(d(2026, 1, 5)).to_string(), "2026-02");
    }

    #[test]
    fn parse_rejects_bad_input() {
        for bad in [
            "2026", "2026-1", "26-01", "2026-00", "2025-53", "2026-54", "2026-W1", "+026-01",
            "2026-0a",
        ] {
            assert!(bad.parse::<IsoWeek>().is_err(), "{bad} parsed");
        }
        assert_eq!("2026-53".parse::<IsoWeek>().unwrap().week(), 53);
    }

    #[test]
    fn next_and_previous_cross_new_year() {
        let w: IsoWeek = "2026-53".parse().unwrap();
        assert_eq!(w.next().to_string(), "2027-01");
        assert_eq!(w.next().previous(), w);
    }

    #[test]
    fn every_day_1970_to_2100_round_trips_and_never_goes_back() {
        let mut day = d(1970, 1, 1);
        let mut last = IsoWeek::from_date(day);
        while day <= d(2100, 12, 31) {
            let w = IsoWeek::from_date(day);
            assert!(w >= last, "{day}: {w} sorts before {last}");
            assert!(w.to_string() >= last.to_string());
            assert_eq!(w.to_string().parse::<IsoWeek>().unwrap(), w);
            last = w;
            day = day.succ_opt().unwrap();
        }
    }

    const DAY_1970: i32 = 719_163; // days from 0001-01-01 (CE day 1) to 1970-01-01
    const DAY_2100: i32 = 767_010; // 2100-12-31

    proptest! {
        #[test]
        fn round_trips_and_sorts_like_time(a in DAY_1970..=DAY_2100, b in DAY_1970..=DAY_2100) {
            let da = NaiveDate::from_num_days_from_ce_opt(a).unwrap();
            let db = NaiveDate::from_num_days_from_ce_opt(b).unwrap();
            let (wa, wb) = (IsoWeek::from_date(da), IsoWeek::from_date(db));
            prop_assert_eq!(wa.to_string().parse::<IsoWeek>().unwrap(), wa);
            // the text form sorts like the value: directory listings sort right too
            prop_assert_eq!(wa.cmp(&wb), wa.to_string().cmp(&wb.to_string()));
            if da <= db {
                prop_assert!(wa <= wb, "{da} -> {wa} but {db} -> {wb}");
            }
            prop_assert!(wa.monday() <= da && da < wa.monday() + chrono::Duration::days(7));
        }
    }
}
