//! Throwaway servers: the folder they live in, the user they run as, the processes that must
//! not outlive a drill, the tools they need.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use backup_core::Invocation;
use backup_host::error::{Error, Result};

/// The user a throwaway server runs as: the current one, or `nobody` when that is root
/// (PostgreSQL and MariaDB refuse to run as root; a drill has no reason to).
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// `(uid, gid)` to switch to; `None`: stay who we are.
    pub switch_to: Option<(u32, u32)>,
}

impl Identity {
    /// `nobody` (from `/etc/passwd`, else 65534) when running as root, else nobody to switch to.
    pub fn for_servers() -> Self {
        if !rustix::process::geteuid().is_root() {
            return Self { switch_to: None };
        }
        let from_passwd = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 3 && f[0] == "nobody")
                        .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                        .flatten()
                })
            });
        Self {
            switch_to: Some(from_passwd.unwrap_or((65534, 65534))),
        }
    }

    /// `inv` run as the server's user: `setpriv --reuid U --regid G --clear-groups -- …` when
    /// switching.
    pub fn wrap(&self, inv: Invocation) -> Invocation {
        let Some((uid, gid)) = self.switch_to else {
            return inv;
        };
        let mut w = Invocation::new(
            "setpriv",
            [
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                "--".to_owned(),
                inv.program.clone(),
            ],
        )
        .args(inv.args.iter().cloned());
        w.env = inv.env;
        w.stdin = inv.stdin;
        w.read_only = inv.read_only;
        w
    }

    /// A new folder `parent/name` the server's user owns (mode 0700); `parent` is opened to
    /// others for traversal only (0711), so that user can reach it.
    ///
    /// # Errors
    /// The folder exists or cannot be made.
    pub fn server_dir(&self, parent: &Utf8Path, name: &str) -> Result<Utf8PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("set the mode of", &dir, e))?;
        if let Some((uid, gid)) = self.switch_to {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| Error::io("set the mode of", parent, e))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| Error::io("change the owner of", &dir, e))?;
        }
        Ok(dir)
    }
}

/// The first of `names` found on `PATH` (or in `extra` folders, searched first), else an error
/// naming the Debian package that has it.
///
/// # Errors
/// None of them is installed.
pub fn program(names: &[&str], extra: &[Utf8PathBuf], package: &str) -> Result<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = extra.iter().cloned().chain(
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(Utf8PathBuf::from),
    );
    for dir in dirs {
        for n in names {
            let p = dir.join(n);
            if is_executable(&p) {
                return Ok(p.into_string());
            }
        }
    }
    Err(Error::NotFound(format!(
        "{} is not installed (Debian package {package})",
        names.join(" or ")
    )))
}

fn is_executable(p: &Utf8Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A server process started for a drill: stopped (SIGTERM, then SIGKILL after 10 s) when
/// dropped, whatever happened in between.
#[derive(Debug)]
pub struct Server {
    child: Child,
    what: String,
    log: Utf8PathBuf,
}

impl Server {
    /// Starts `inv` with its output into `log` (a new file).
    ///
    /// # Errors
    /// It cannot be started.
    pub fn spawn(what: &str, inv: &Invocation, log: &Utf8Path) -> Result<Self> {
        let out = std::fs::File::create(log).map_err(|e| Error::io("create", log, e))?;
        let err = out.try_clone().map_err(|e| Error::io("open", log, e))?;
        let mut cmd = Command::new(&inv.program);
        cmd.args(&inv.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in &inv.env {
            cmd.env(k, v);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| {
            Error::Refused(format!(
                "start the throwaway {what} (`{}`): {e}",
                inv.display()
            ))
        })?;
        Ok(Self {
            child,
            what: what.to_owned(),
            log: log.to_owned(),
        })
    }

    /// Waits until `ready` says yes, up to `limit`; an exit of the server first is the error,
    /// with the end of its log.
    ///
    /// # Errors
    /// The server exited, or was not ready in time.
    pub fn wait_ready(&mut self, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Refused(format!(
                    "the throwaway {} exited ({status}) before it was ready: {}",
                    self.what,
                    log_tail(&self.log)
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Refused(format!(
                    "the throwaway {} was not ready after {} s: {}",
                    self.what,
                    limit.as_secs(),
                    log_tail(&self.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of its log, for an error.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::Term);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::Kill);
        let _ = self.child.wait();
    }
}

/// The last lines of a server's log (at most 600 bytes), on one line.
pub fn log_tail(log: &Utf8Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(600)..]).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
    if tail.is_empty() {
        format!("(its log {log} is empty)")
    } else {
        format!("its log {log} ends: {tail}")
    }
}

/// A TCP port free on 127.0.0.1 right now (the kernel's pick).
///
/// # Errors
/// No port can be bound.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Refused(format!("no free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Refused(format!("no free port on 127.0.0.1: {e}")))
}

/// The command's stderr (or stdout when stderr is empty), for an error: its last lines.
pub fn said(out: &backup_core::Output) -> String {
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &out.stderr
    } else {
        &out.stdout
    };
    backup_core::stderr_tail(text, 5)
}

/// Runs `inv` and fails unless it exits 0 ([`Invocation::run_checked`]), naming `step`.
///
/// # Errors
/// It could not start, or did not exit 0.
pub fn run_step(
    runner: &dyn backup_core::Runner,
    step: &str,
    inv: &Invocation,
) -> Result<backup_core::Output> {
    inv.run_checked(runner).map_err(|e| match e {
        backup_core::Error::Command(backup_core::CommandError::Failed { .. }) => {
            Error::Refused(format!("{step} failed: {e}"))
        }
        other => Error::Core(other),
    })
}

/// The temp folder of one run's throwaway servers (`<TMPDIR>/backupctl-dump-XXXXXX`, 0711: the
/// servers' user may pass, not list), locked (`flock` on its `.lock`) while the run lives, and
/// removed when dropped. A run killed outright (kill -9, the stop watchdog's exit) leaves its
/// folder and servers behind: [`sweep_stale`] ends them on the next run.
#[derive(Debug)]
pub struct ScratchRoot {
    _lock: std::fs::File,
    dir: tempfile::TempDir,
    /// The folder.
    pub path: Utf8PathBuf,
}

/// The prefix of [`ScratchRoot`] folders in the temp folder.
const SCRATCH_PREFIX: &str = "backupctl-dump-";

impl ScratchRoot {
    /// A new, locked folder.
    ///
    /// # Errors
    /// The temp folder cannot be used.
    pub fn new() -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
        let path = Utf8Path::from_path(dir.path())
            .ok_or_else(|| Error::Refused("the temp folder is not UTF-8 (TMPDIR)".to_owned()))?
            .to_owned();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| Error::io("set the mode of", &path, e))?;
        let lock_path = path.join(".lock");
        let lock =
            std::fs::File::create(&lock_path).map_err(|e| Error::io("create", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io("lock", &lock_path, e.into()))?;
        Ok(Self {
            _lock: lock,
            dir,
            path,
        })
    }

    /// The folder (kept until the root is dropped).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Ends what killed runs left: every `backupctl-dump-*` folder in the temp folder whose lock
/// nobody holds has each process that names it on its command line (a server's `--datadir`,
/// `-D`, `--dir`) killed, and is removed. Returns what was cleaned, one line each.
pub fn sweep_stale() -> Vec<String> {
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return Vec::new();
    };
    let mut cleaned = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let is_ours = name.to_str().is_some_and(|n| n.starts_with(SCRATCH_PREFIX))
            && e.file_type().is_ok_and(|t| t.is_dir());
        let dir = e.path();
        if !is_ours {
            continue;
        }
        // a folder whose run still lives holds its lock; one without a lock is not ours to take
        let Ok(lock) = std::fs::File::open(dir.join(".lock")) else {
            continue;
        };
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        let killed = kill_naming(dir.as_os_str().as_encoded_bytes());
        let _ = std::fs::remove_dir_all(&dir);
        cleaned.push(format!(
            "removed {} left by a run that was killed ({killed} of its servers stopped)",
            dir.display()
        ));
    }
    cleaned
}

/// SIGKILL to every process (but this one) whose command line holds `needle`; how many.
fn kill_naming(needle: &[u8]) -> usize {
    let me = std::process::id();
    let mut n = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                if rustix::process::kill_process(pid, rustix::process::Signal::Kill).is_ok() {
                    n += 1;
                }
            }
        }
    }
    n
}
