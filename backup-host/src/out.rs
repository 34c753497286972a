//! Standard output that a closed pipe or a full disk cannot turn into a panic.
//!
//! `println!` panics when stdout is gone (`backupctl alerts | head -1`: EPIPE) or full
//! (`> /dev/full`: ENOSPC), after the job did its work, with a backtrace and exit 101. Output
//! goes through here instead: an error is remembered, later output is dropped, and the job
//! finishes, publishes its metrics and exits with its own code. Like ripgrep and coreutils, a
//! closed pipe is quiet (the reader wanted no more); any other write error is said on stderr
//! and makes a successful run exit 1, since what it was asked to print is lost.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::exit::Exit;

/// 0: fine; 1: the reader closed the pipe; 2: another write error (said on stderr).
static STATE: AtomicU8 = AtomicU8::new(0);

/// Writes `text` to stdout unless an earlier write failed.
pub fn print(text: &str) {
    if STATE.load(Ordering::SeqCst) != 0 {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STATE.store(1, Ordering::SeqCst);
        } else {
            STATE.store(2, Ordering::SeqCst);
            eprintln!("error: cannot write the output to stdout: {e}");
        }
    }
}

/// [`print`] with a newline.
pub fn println(text: &str) {
    print(&format!("{text}\n"));
}

/// Text for people, laid out to the terminal's width ([`crate::human::width`]).
pub fn println_fit(text: &str) {
    match crate::human::width() {
        Some(w) => println(&crate::human::fit(text, w)),
        None => println(text),
    }
}

/// A message for people on stderr (an error, a warning), laid out like the reports: to
/// `COLUMNS`, else to the terminal stderr is; a pipe or the journal gets it whole.
pub fn eprintln_fit(text: &str) {
    match crate::human::width_of(std::io::stderr()) {
        Some(w) => eprintln!("{}", crate::human::fit(text, w)),
        None => eprintln!("{text}"),
    }
}

/// The exit of a job whose output went through here: its own, but a run that succeeded and
/// could not write what it was asked to print (not a closed pipe) fails.
pub fn exit(job: Exit) -> Exit {
    match (STATE.load(Ordering::SeqCst), job) {
        (2, Exit::Success) => Exit::Failed,
        _ => job,
    }
}
