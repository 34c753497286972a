//! The real `Runner`: duct, with output captured and the child killed when we are told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backup_core::{Error, Invocation, Output, Runner};

/// Runs commands with duct. When `stop` turns true (SIGTERM, SIGINT) the running child is killed,
/// so the caller gets an error back at once and can unmount before exiting.
#[derive(Debug, Clone, Default)]
pub struct DuctRunner {
    stop: Arc<AtomicBool>,
}

impl DuctRunner {
    /// A runner that kills its children once `stop` is set.
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        Self { stop }
    }
}

impl Runner for DuctRunner {
    fn run(&self, inv: &Invocation) -> backup_core::Result<Output> {
        let mut expr = duct::cmd(&inv.program, &inv.args)
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in &inv.env {
            expr = expr.env(k, v);
        }
        match &inv.stdin {
            Some(bytes) => expr = expr.stdin_bytes(bytes.clone()),
            None => expr = expr.stdin_null(),
        }
        let handle = expr
            .start()
            .map_err(|e| Error::backend(format!("start `{}`", inv.display()), e.to_string()))?;
        loop {
            match handle.try_wait() {
                Ok(Some(out)) => {
                    return Ok(Output {
                        status: out.status.code(),
                        stdout: out.stdout.clone(),
                        stderr: out.stderr.clone(),
                    })
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::backend(
                        format!("wait for `{}`", inv.display()),
                        e.to_string(),
                    ))
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                let _ = handle.kill();
                return Err(Error::backend(
                    format!("run `{}`", inv.display()),
                    "stopped: the run was interrupted (SIGTERM/SIGINT)",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
