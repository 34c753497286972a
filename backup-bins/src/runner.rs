//! The real `Runner`: duct, with output captured and the child killed when we are told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backup_core::{CommandError, Error, Invocation, Output, Runner};

/// Runs commands with duct. When `stop` turns true (SIGTERM, SIGINT) the running child is killed,
/// so the caller gets an error back at once and can unmount before exiting.
#[derive(Debug, Clone, Default)]
pub struct DuctRunner {
    stop: Arc<AtomicBool>,
    verbose: bool,
}

impl DuctRunner {
    /// A runner that kills its children once `stop` is set.
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        Self {
            stop,
            verbose: false,
        }
    }

    /// Also prints each command line (shell-quoted, secrets hidden) to stderr before running it.
    #[must_use]
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }
}

impl Runner for DuctRunner {
    fn run(&self, inv: &Invocation) -> backup_core::Result<Output> {
        if self.verbose {
            eprintln!("+ {}", inv.display());
        }
        let mut expr = duct::cmd(&inv.program, &inv.args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            // children inherit the run lock's descriptor on purpose (lock.rs); LVM would warn
            // "File descriptor N leaked" on every call
            .env("LVM_SUPPRESS_FD_WARNINGS", "1");
        for (k, v) in &inv.env {
            expr = expr.env(k, v);
        }
        match &inv.stdin {
            Some(bytes) => expr = expr.stdin_bytes(bytes.clone()),
            None => expr = expr.stdin_null(),
        }
        let handle = expr.start().map_err(|e| {
            Error::Command(CommandError::Start {
                argv: inv.display(),
                reason: e.to_string(),
            })
        })?;
        // wait in this thread; a watcher kills the child as soon as `stop` is set
        let done = AtomicBool::new(false);
        let killed = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if self.stop.load(Ordering::SeqCst) {
                        killed.store(true, Ordering::SeqCst);
                        let _ = handle.kill();
                        return;
                    }
                    std::thread::park_timeout(Duration::from_millis(25));
                }
            });
            let out = handle.wait().map(|o| Output {
                status: o.status.code(),
                stdout: o.stdout.clone(),
                stderr: o.stderr.clone(),
            });
            done.store(true, Ordering::SeqCst);
            watcher.thread().unpark();
            out
        });
        if killed.load(Ordering::SeqCst) {
            return Err(Error::Command(CommandError::Interrupted {
                argv: inv.display(),
            }));
        }
        out.map_err(|e| {
            Error::Command(CommandError::Start {
                argv: inv.display(),
                reason: format!("lost it while waiting: {e}"),
            })
        })
    }
}

/// Registers SIGTERM and SIGINT to set the returned flag instead of killing the process, so a
/// run can unmount what it mounted before it exits.
///
/// # Errors
/// When the handlers cannot be installed.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}
