//! The run's clock: every read of the time goes through here, so that `--now` moves all of them.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

/// The time as a run sees it: `--now` when given, else the system's clock at the run's start,
/// advancing with the monotonic clock from the moment the clock was made (a long-running
/// tracker started with `--now` still stamps distinct, increasing times; a wall clock that jumps
/// does not move it).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: DateTime<Utc>,
    at: Instant,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that reads `start` now and advances from there.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            at: Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.at.elapsed()).unwrap_or(TimeDelta::MAX);
        self.start.checked_add_signed(elapsed).unwrap_or(self.start)
    }

    /// The kernel's wall clock, the one that stamps files' mtimes. Only for comparing with
    /// mtimes the kernel wrote (for example "which folders changed since the last sync"):
    /// `--now` does not move it, because it does not move the kernel's stamps either.
    pub fn file_time() -> DateTime<Utc> {
        Utc::now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_started_at_a_given_time_reads_it_and_advances() {
        let start = DateTime::parse_from_rfc3339("2026-01-05T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::starting_at(start);
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = c.now();
        assert!(a >= start && b > a, "{start} {a} {b}");
        assert!(b - start < TimeDelta::seconds(60));
    }
}
