//! Progress of long work, for a person and for the journal.
//!
//! On a terminal (stderr is one): a live `indicatif` bar on stderr with files and bytes done,
//! the rate and the time left, redrawn every 200 ms even while nothing moves. Not on a terminal
//! (systemd, cron, Kubernetes): no bar and no control character, but one plain line on stderr
//! every minute (`HOMELAB_BACKUP_PROGRESS_SECONDS`) for work that lasts longer, so the journal
//! shows a stuck run. stdout (the report, `--json`) never carries any of it.
//!
//! One phase at a time per process: a job calls [`start`] for a phase, the workers call [`add`]
//! (cheap atomics, from any thread), and [`finish`] ends it (also when the [`Phase`] drops).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static FILES: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);
/// `--no-progress` (or `--quiet`): no bar and no journal line.
static OFF: AtomicBool = AtomicBool::new(false);
/// `--quiet`: the per-item lines ([`println`]) are held back, for a run that fails or warns.
static QUIET: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What the run was asked for: `off` (`--no-progress`) shows no progress at all, `quiet`
/// (`--quiet`) also holds back the lines [`println`] prints while the work goes on: the run
/// prints them at its end when it failed or has a warning ([`take_held`]).
pub fn configure(off: bool, quiet: bool) {
    OFF.store(off || quiet, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
}

struct Active {
    bar: Option<ProgressBar>,
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    message: Arc<Mutex<String>>,
}

/// The totals of a phase, when known (they give the bar its length and the time left).
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Files to do.
    pub files: Option<u64>,
    /// Bytes to do.
    pub bytes: Option<u64>,
}

/// A phase in progress; [`finish`]ed when dropped.
#[must_use = "the phase ends when this is dropped"]
pub struct Phase(());

impl Drop for Phase {
    fn drop(&mut self) {
        finish();
    }
}

/// The longest `HOMELAB_BACKUP_PROGRESS_SECONDS` taken: a day.
const MAX_INTERVAL_SECONDS: f64 = 86_400.0;

/// `HOMELAB_BACKUP_PROGRESS_SECONDS` as a pause between journal lines (60 s when unset).
///
/// # Errors
/// A value that is not a number of seconds from 1 to a day (`inf`, `1e300`, `1e-10`, `-1`,
/// `abc`): said with the value, for the binaries to refuse before they start (exit 2).
pub fn check_env() -> Result<Duration, String> {
    match std::env::var("HOMELAB_BACKUP_PROGRESS_SECONDS") {
        Err(_) => Ok(Duration::from_secs(60)),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 1.0 && *s <= MAX_INTERVAL_SECONDS)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                format!(
                    "HOMELAB_BACKUP_PROGRESS_SECONDS={v:?}: expected the seconds between two \
                     progress lines, a number above 0 and at most {MAX_INTERVAL_SECONDS} (a \
                     day); unset it for the default of 60"
                )
            }),
    }
}

fn interval() -> Duration {
    check_env().unwrap_or(Duration::from_secs(60))
}

/// One line for the journal: `verify: 1,200 of 60,000 files, 1.2 GiB of 8.5 GiB, 45.0 MiB/s,
/// about 3 min left`.
fn line(what: &str, totals: Totals, started: Instant, message: &str) -> String {
    let (files, bytes) = (FILES.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut out = format!("{what}: ");
    out.push_str(&match totals.files {
        Some(t) => format!(
            "{} of {}",
            crate::human::count(files),
            crate::human::plural(t, "file")
        ),
        None => crate::human::plural(files, "file"),
    });
    out.push_str(&match totals.bytes {
        Some(t) => format!(
            ", {} of {}",
            crate::human::bytes(bytes),
            crate::human::bytes(t)
        ),
        None => format!(", {}", crate::human::bytes(bytes)),
    });
    let rate = bytes as f64 / secs;
    out.push_str(&format!(", {}/s", crate::human::bytes(rate as u64)));
    if let Some(t) = totals.bytes.filter(|_| rate > 0.0) {
        let left = t.saturating_sub(bytes) as f64 / rate;
        out.push_str(&format!(
            ", about {} left",
            crate::human::span(left as i64).replace("just now", "under a minute")
        ));
    }
    out.push_str(&format!(
        ", {} so far",
        crate::human::span(secs as i64).replace("just now", "under a minute")
    ));
    if !message.is_empty() {
        out.push_str(&format!(" ({message})"));
    }
    out
}

/// The bar's template for a terminal `width` columns wide: the numbers take at most 50 columns
/// (`12.3 GiB/45.6 GiB 123.4 MiB/s eta 1h`), the bar what the name leaves of the rest (at least
/// 10), and the message is cut to what remains (`wide_msg`), so a redraw is one line and never
/// leaves a stale one behind.
fn template(what: &str, total_known: bool, width: usize) -> String {
    let name = what.chars().count();
    if total_known {
        let bar = width.saturating_sub(name + 1 + 50 + 1).clamp(10, 30);
        format!(
            "{{prefix}} {{bar:{bar}}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} eta \
             {{eta}} {{wide_msg}}"
        )
    } else {
        "{prefix} {spinner} {bytes} {binary_bytes_per_sec} {elapsed} {wide_msg}".to_owned()
    }
}

/// Starts a phase (ending the one before): `what` names it (`verify`, `restore: checking`).
pub fn start(what: &str, totals: Totals) -> Phase {
    finish();
    FILES.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    let message = Arc::new(Mutex::new(String::new()));
    let started = Instant::now();
    let off = OFF.load(Ordering::Relaxed);
    let tty = std::io::stderr().is_terminal();
    let bar = (tty && !off).then(|| {
        let bar = match totals.bytes {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&template(
                what,
                totals.bytes.is_some(),
                crate::human::width_of(std::io::stderr()).unwrap_or(80),
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let ticker = (!tty && !off).then(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let (what, message, stop2) = (what.to_owned(), Arc::clone(&message), Arc::clone(&stop));
        let every = interval();
        let handle = std::thread::spawn(move || {
            let mut next = started + every;
            while !stop2.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    let m = message
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    eprintln!("{}", line(&what, totals, started, &m));
                    next = now + every;
                }
                std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
            }
        });
        (stop, handle)
    });
    *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Active {
        bar,
        ticker,
        message,
    });
    Phase(())
}

/// `files` and `bytes` more done (any thread).
pub fn add(files: u64, bytes: u64) {
    FILES.fetch_add(files, Ordering::Relaxed);
    let done = BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if let Ok(guard) = ACTIVE.try_lock() {
        if let Some(bar) = guard.as_ref().and_then(|a| a.bar.as_ref()) {
            bar.set_position(done);
            bar.set_message(crate::human::plural(FILES.load(Ordering::Relaxed), "file"));
        }
    }
}

/// What is being worked on now (`vaultwarden/data`), shown beside the numbers.
pub fn message(text: &str) {
    let guard = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(a) = guard.as_ref() {
        text.clone_into(&mut a.message.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(bar) = &a.bar {
            bar.set_message(text.to_owned());
        }
    }
}

/// Prints `text` above the bar (or plainly without one); held back under `--quiet`.
pub fn println(text: &str) {
    if QUIET.load(Ordering::Relaxed) {
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text.to_owned());
        return;
    }
    let guard = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    match guard.as_ref().and_then(|a| a.bar.as_ref()) {
        Some(bar) => bar.suspend(|| crate::out::println_fit(text)),
        None => crate::out::println_fit(text),
    }
}

/// The lines [`println`] held back under `--quiet`, in order (each taken once).
pub fn take_held() -> Vec<String> {
    std::mem::take(&mut *HELD.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Ends the phase: the bar is cleared, the ticker stopped.
pub fn finish() {
    let active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(a) = active {
        if let Some(bar) = a.bar {
            bar.finish_and_clear();
        }
        if let Some((stop, handle)) = a.ticker {
            stop.store(true, Ordering::Relaxed);
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_line_says_how_far_and_how_long() {
        FILES.store(1200, Ordering::Relaxed);
        BYTES.store(10 << 20, Ordering::Relaxed);
        let started = Instant::now() - Duration::from_secs(10);
        let l = line(
            "verify",
            Totals {
                files: Some(60_000),
                bytes: Some(100 << 20),
            },
            started,
            "vaultwarden/data",
        );
        assert!(
            l.starts_with("verify: 1,200 of 60,000 files, 10.0 MiB of 100.0 MiB, 1"),
            "{l}"
        );
        assert!(
            l.contains("MiB/s, about 1 min left, under a minute so far (vaultwarden/data)"),
            "{l}"
        );
        assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
    }
}
