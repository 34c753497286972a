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
    fn stream(
        &self,
        inv: &Invocation,
        sink: &mut dyn std::io::Write,
    ) -> backup_core::Result<Output> {
        self.stream_to(inv, sink)
    }

    fn feed(
        &self,
        inv: &Invocation,
        input: &mut (dyn std::io::Read + Send),
        sink: &mut dyn std::io::Write,
    ) -> backup_core::Result<Output> {
        self.pipe_through(inv, Some(input), sink)
    }

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
        let (out, killed) = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                self.watch(&done, || {
                    let _ = handle.kill();
                })
            });
            let out = handle.wait().map(|o| Output {
                status: o.status.code(),
                stdout: o.stdout.clone(),
                stderr: o.stderr.clone(),
            });
            done.store(true, Ordering::SeqCst);
            watcher.thread().unpark();
            (out, watcher.join().unwrap_or(false))
        });
        if killed {
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

impl DuctRunner {
    /// Until `done`, calls `kill` once `stop` is set (SIGTERM, SIGINT); returns whether it did.
    fn watch(&self, done: &AtomicBool, kill: impl FnOnce()) -> bool {
        while !done.load(Ordering::SeqCst) {
            if self.stop.load(Ordering::SeqCst) {
                kill();
                return true;
            }
            std::thread::park_timeout(Duration::from_millis(25));
        }
        false
    }
}

/// SIGKILL to the streaming child's whole process group (it leads one of its own): a dump tool's
/// own children (`pg_dumpall` runs `pg_dump`, `sh -c` runs its command) hold the output pipe
/// too, and the read would wait for them.
fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::Kill);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::Kill);
    }
}

/// Keeps the last `cap` bytes read from `r` (stderr of a long dump can be long; its tail says why
/// it failed).
fn read_tail(mut r: impl std::io::Read, cap: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * cap {
            tail.drain(..tail.len() - cap);
        }
    }
    if tail.len() > cap {
        tail.drain(..tail.len() - cap);
    }
    tail
}

/// The streaming form: standard output goes to the sink as it comes, in 256 KiB reads; stderr
/// is kept (its last 64 KiB). A sink that fails (a full disk) kills the command.
impl DuctRunner {
    /// See [`Runner::stream`].
    ///
    /// # Errors
    /// When the command cannot start, is interrupted, or the sink fails.
    pub fn stream_to(
        &self,
        inv: &Invocation,
        sink: &mut dyn std::io::Write,
    ) -> backup_core::Result<Output> {
        self.pipe_through(inv, None, sink)
    }

    /// Starts `inv` leading a process group of its own (a stop reaches its children too: see
    /// `kill`), stdout and stderr piped, stdin piped when `stdin`.
    fn spawn_piped(&self, inv: &Invocation, stdin: bool) -> std::io::Result<std::process::Child> {
        use std::process::Stdio;
        if self.verbose {
            eprintln!("+ {}", inv.display());
        }
        let mut cmd = std::process::Command::new(&inv.program);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(&inv.args)
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        for (k, v) in &inv.env {
            cmd.env(k, v);
        }
        cmd.spawn()
    }

    /// [`DuctRunner::stream_to`], with standard input copied from `input` (else from
    /// `inv.stdin`, else none). A failed read of `input` stops the command and is the error.
    fn pipe_through(
        &self,
        inv: &Invocation,
        input: Option<&mut (dyn std::io::Read + Send)>,
        sink: &mut dyn std::io::Write,
    ) -> backup_core::Result<Output> {
        use std::io::Write;
        let start_err = |e: std::io::Error| {
            Error::Command(CommandError::Start {
                argv: inv.display(),
                reason: e.to_string(),
            })
        };
        let mut child = self
            .spawn_piped(inv, inv.stdin.is_some() || input.is_some())
            .map_err(start_err)?;
        let pid = child.id();
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            kill(pid);
            let _ = child.wait();
            return Err(start_err(std::io::Error::other("no pipes")));
        };
        let stdin = child.stdin.take();
        let done = AtomicBool::new(false);
        let (killed, stderr, sink_failed, read_failed, input_failed) = std::thread::scope(|s| {
            let watcher = s.spawn(|| self.watch(&done, || kill(pid)));
            let errs = s.spawn(move || read_tail(stderr, 64 * 1024));
            let feeder = match (stdin, input, inv.stdin.as_ref()) {
                (Some(mut w), Some(input), _) => Some(s.spawn(move || {
                    let failed = copy_input(input, &mut w);
                    if failed.is_some() {
                        kill(pid);
                    }
                    failed
                })),
                (Some(mut w), None, Some(bytes)) => {
                    s.spawn(move || {
                        let _ = w.write_all(bytes);
                    });
                    None
                }
                _ => None,
            };
            let (sink_failed, read_failed) = pump(&mut stdout, sink, pid);
            drop(stdout);
            let input_failed = feeder.and_then(|f| f.join().ok().flatten());
            let stderr = errs.join().unwrap_or_default();
            done.store(true, Ordering::SeqCst);
            watcher.thread().unpark();
            let killed = watcher.join().unwrap_or(false);
            (killed, stderr, sink_failed, read_failed, input_failed)
        });
        let status = child.wait().map_err(|e| {
            Error::Command(CommandError::Start {
                argv: inv.display(),
                reason: format!("lost it while waiting: {e}"),
            })
        })?;
        if killed {
            return Err(Error::Command(CommandError::Interrupted {
                argv: inv.display(),
            }));
        }
        // what failed on the way in or out, first one first
        let failures = [
            (
                input_failed,
                "reading its input failed (the command was stopped)",
            ),
            (
                sink_failed,
                "writing its output failed (the command was stopped)",
            ),
            (read_failed, "reading its output failed"),
        ];
        if let Some((e, what)) = failures.into_iter().find_map(|(e, w)| e.map(|e| (e, w))) {
            return Err(Error::Command(CommandError::Output {
                argv: inv.display(),
                reason: format!("{what}: {e}"),
            }));
        }
        Ok(Output {
            status: status.code(),
            stdout: Vec::new(),
            stderr,
        })
    }
}

/// Copies `input` into a child's stdin, then closes it. Returns the error of reading `input`;
/// a write that fails (the child exited or closed its stdin) ends the copy quietly: the child's
/// exit status says why.
fn copy_input(
    input: &mut (dyn std::io::Read + Send),
    w: &mut impl std::io::Write,
) -> Option<std::io::Error> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                if w.write_all(&buf[..n]).is_err() {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(e),
        }
    }
}

/// Copies a child's stdout into `sink` until it ends; a failure on either side stops the child
/// (`pid`'s group) and is returned: (writing failed, reading failed).
fn pump(
    stdout: &mut impl std::io::Read,
    sink: &mut dyn std::io::Write,
    pid: u32,
) -> (Option<std::io::Error>, Option<std::io::Error>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => return (None, None),
            Ok(n) => {
                if let Err(e) = sink.write_all(&buf[..n]) {
                    kill(pid);
                    return (Some(e), None);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                kill(pid);
                return (None, Some(e));
            }
        }
    }
}

/// Registers SIGTERM and SIGINT to set the returned flags instead of killing the process, so a
/// run can unmount what it mounted before it exits: (`stop`, which the run may also set itself
/// — `offsite.stop-at` — and `signalled`, set only by a signal: the watchdog and the hooks after
/// a job watch that one).
///
/// # Errors
/// When the handlers cannot be installed.
pub fn stop_on_signals() -> std::io::Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&signalled))?;
    }
    Ok((stop, signalled))
}
