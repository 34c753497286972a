//! `[[hooks]]`: commands around a job — an argument vector, never a shell — with the job's name,
//! the moment, its result and exit code in the environment, each within its timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::{Hook, HookWhen, Invocation};

use crate::runner::DuctRunner;

/// What a hook is told of the run, in its environment.
#[derive(Debug, Clone, Copy)]
pub struct HookEnv<'a> {
    /// `HOMELAB_BACKUP_JOB`: the job as its metrics name it.
    pub job: &'a str,
    /// `HOMELAB_BACKUP_RESULT` (`success` or `failure`) and `HOMELAB_BACKUP_EXIT`: after the
    /// job; `None` before it.
    pub ended: Option<u8>,
}

/// The hooks of `job` at `when`, in the order the config lists them.
pub fn hooks_of<'h>(hooks: &'h [Hook], job: &str, when: HookWhen) -> Vec<&'h Hook> {
    hooks
        .iter()
        .filter(|h| h.job == job && h.when == when)
        .collect()
}

/// The hook's command line with its environment, as it is run (and as `--dry-run` shows it).
pub fn invocation(hook: &Hook, env: &HookEnv<'_>) -> Invocation {
    let mut inv = Invocation::new(&hook.command[0], hook.command[1..].iter().cloned());
    inv.env = vec![
        ("HOMELAB_BACKUP_JOB".to_owned(), env.job.to_owned()),
        (
            "HOMELAB_BACKUP_WHEN".to_owned(),
            hook.when.word().to_owned(),
        ),
    ];
    if let Some(exit) = env.ended {
        let result = if exit == 0 { "success" } else { "failure" };
        inv.env
            .push(("HOMELAB_BACKUP_RESULT".to_owned(), result.to_owned()));
        inv.env
            .push(("HOMELAB_BACKUP_EXIT".to_owned(), exit.to_string()));
    }
    inv
}

/// The hook's command line as a person reads it (shell-quoted; its environment left out: it is
/// the run's own words).
pub fn command_line(hook: &Hook) -> String {
    Invocation::new(&hook.command[0], hook.command[1..].iter().cloned()).display()
}

/// Runs `hook`: killed when its timeout passes or the run is told to stop (`run_stop`).
///
/// # Errors
/// Why it failed, in words: it could not start, exited non-zero (with the end of its stderr),
/// ran out of time, or the run was stopped.
pub fn run_hook(hook: &Hook, env: &HookEnv<'_>, run_stop: &AtomicBool) -> Result<(), String> {
    let inv = invocation(hook, env);
    let stop = Arc::new(AtomicBool::new(false));
    let limit = Duration::from_secs(hook.timeout_seconds);
    let timed_out = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let what = format!(
        "hook `{}` ({} {})",
        command_line(hook),
        hook.when.word(),
        env.job
    );
    // run as root: a program someone else may replace would hand them root (as sshd's
    // StrictModes asks of its files); checked where it really is (`/bin/sh` is a link)
    let real = camino::Utf8Path::new(&hook.command[0])
        .canonicalize_utf8()
        .map_err(|e| format!("{what}: not run: {e}"))?;
    crate::safe_read::check_trusted(&real).map_err(|e| format!("{what}: not run: {e}"))?;
    let out = std::thread::scope(|s| {
        let timer = s.spawn(|| {
            let started = Instant::now();
            while !done.load(Ordering::SeqCst) {
                if started.elapsed() >= limit {
                    timed_out.store(true, Ordering::SeqCst);
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                if run_stop.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
        // a process group of its own: a timeout ends what the hook started too
        let out = DuctRunner::new(Arc::clone(&stop)).stream_to(&inv, &mut std::io::sink());
        done.store(true, Ordering::SeqCst);
        timer.thread().unpark();
        out
    });
    match out {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} exited {}{}",
            o.status
                .map_or_else(|| "on a signal".to_owned(), |c| c.to_string()),
            match backup_core::stderr_tail(&o.stderr, 3) {
                t if t.is_empty() => String::new(),
                t => format!(": {t}"),
            }
        )),
        Err(_) if timed_out.load(Ordering::SeqCst) => Err(format!(
            "{what} ran past its {} s (timeout-seconds) and was killed",
            hook.timeout_seconds
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &[&str], timeout_seconds: u64) -> Hook {
        Hook {
            job: "offsite-sync-backup".to_owned(),
            when: HookWhen::After,
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            timeout_seconds,
        }
    }

    const ENV: HookEnv<'static> = HookEnv {
        job: "offsite-sync-backup",
        ended: Some(3),
    };

    /// The job's name, the moment, the result and the exit code reach the hook's environment;
    /// its arguments arrive as they are (no shell: `$(…)` is a word).
    #[test]
    fn a_hook_is_told_the_job_and_its_result_and_no_shell_reads_its_words() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let script = format!(
            "printf '%s %s %s %s %s' \"$HOMELAB_BACKUP_JOB\" \"$HOMELAB_BACKUP_WHEN\" \
             \"$HOMELAB_BACKUP_RESULT\" \"$HOMELAB_BACKUP_EXIT\" \"$1\" > {}",
            out.display()
        );
        let h = hook(&["/bin/sh", "-c", &script, "sh", "$(reboot)"], 10);
        run_hook(&h, &ENV, &AtomicBool::new(false)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "offsite-sync-backup after failure 3 $(reboot)"
        );
    }

    /// A hook program others may write is not run (it would run as root whatever they put in).
    #[test]
    fn a_program_others_may_write_is_not_run() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("flush");
        std::fs::write(&prog, "#!/bin/sh\ntouch \"$0.ran\"\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o777)).unwrap();
        let h = hook(&[prog.to_str().unwrap()], 5);
        let e = run_hook(&h, &ENV, &AtomicBool::new(false)).unwrap_err();
        assert!(e.contains("not run") && e.contains("writable"), "{e}");
        assert!(!dir.path().join("flush.ran").exists());
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        run_hook(&h, &ENV, &AtomicBool::new(false)).unwrap();
        assert!(dir.path().join("flush.ran").exists());
    }

    /// A hook that fails says its exit code and last words; one past its timeout is killed and
    /// says so, within about its timeout.
    #[test]
    fn a_failing_or_slow_hook_is_said_and_a_slow_one_is_killed() {
        let e = run_hook(
            &hook(&["/bin/sh", "-c", "echo not today >&2; exit 4"], 10),
            &ENV,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(e.contains("exited 4: not today"), "{e}");
        for slow in [&["/bin/sleep", "30"][..], &["/bin/sh", "-c", "sleep 30; :"]] {
            // the second holds its output open from a child of its own
            let started = Instant::now();
            let e = run_hook(&hook(slow, 1), &ENV, &AtomicBool::new(false)).unwrap_err();
            assert!(e.contains("ran past its 1 s (timeout-seconds)"), "{e}");
            assert!(started.elapsed() < Duration::from_secs(10), "{slow:?}");
        }
        let e = run_hook(
            &hook(&["/nonexistent/hook"], 5),
            &ENV,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/hook"), "{e}");
    }
}
