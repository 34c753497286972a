//! The one error type of `backup-core`.
//!
//! The rules are those of `backup_host::error` (a variant is a kind; the message names the input
//! at fault; a source is kept, never retold; no secret in a message). Here in particular: an OS
//! error is [`Error::Io`] with the `std::io::Error` as its source; an external command's failure
//! is a [`CommandError`] (could not start, failed with its status and stderr tail, interrupted,
//! printed what could not be read); a guard that held is a [`Refusal`], one message per guard;
//! [`Error::Adapter`] carries an adapter's own error through a trait, kind and source intact;
//! [`Error::Backend`] is for an adapter that has nothing more precise to say, and says what was
//! attempted and why in words.

use camino::Utf8PathBuf;

use crate::refusal::Refusal;
use crate::week::WeekParseError;

/// Everything `backup-core` can fail at. Messages are lowercase fragments that read after
/// "failed to …" and name the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A week id that is not `YYYY-WW` or names a week its year does not have.
    #[error(transparent)]
    InvalidWeek(#[from] WeekParseError),

    /// A retention policy that keeps nothing: applying it would delete every version.
    #[error("empty retention policy ({what}): refusing to plan, it would remove every version")]
    EmptyPolicy {
        /// Which policy.
        what: &'static str,
    },

    /// A glob pattern that cannot be used.
    #[error("invalid pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The configuration file is wrong; the inner error names the file and key.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// An external command could not start, failed, or printed what could not be read.
    #[error(transparent)]
    Command(#[from] CommandError),

    /// A guard held: nothing was done (see [`Refusal`]).
    #[error(transparent)]
    Refused(#[from] Refusal),

    /// `--dry-run`: a step that cannot be previewed without changing something (activating or
    /// mounting a snapshot) was not carried out; the item is reported as planned.
    #[error("dry run: {what} not carried out")]
    NotCarriedOut {
        /// The step.
        what: String,
    },

    /// An argument that names nothing this run knows (`--allow-empty ns/typo`).
    #[error("{arg}: {reason}")]
    InvalidArgument {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A file system call failed; the OS error is kept as the source.
    #[error("{operation}: {source}")]
    Io {
        /// What was being done ("list /srv/volumes", "mount /dev/pve/x").
        operation: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An adapter's own error, carried through one of the traits with its kind intact (the
    /// caller that knows the adapter's error type can look at it: its exit code, its source).
    #[error("{operation}: {source}")]
    Adapter {
        /// What was being done.
        operation: String,
        /// The adapter's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An outside-world operation behind one of the traits failed.
    #[error("{operation}: {message}")]
    Backend {
        /// What was being done ("snapshot vm-100-pvc-a", "mount /dev/pve/x").
        operation: String,
        /// Why it failed, with whatever the backend knows (argv, status, stderr).
        message: String,
    },
}

impl Error {
    /// A failed file system call: `operation` says what was attempted; the OS error stays the
    /// source (its kind, its errno), not just its text.
    pub fn io(operation: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            operation: operation.into(),
            source,
        }
    }

    /// A backend failure: `operation` says what was attempted, `message` why it failed.
    pub fn backend(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Backend {
            operation: operation.into(),
            message: message.into(),
        }
    }
}

/// A configuration error that names the file, the key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", key_part(.key))]
pub struct ConfigError {
    /// The configuration file.
    pub file: Utf8PathBuf,
    /// The dotted key at fault (`snapshots.keep-days`), or `(file)` for the whole file.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

/// "`key`: " for an error of one key; nothing for one of the whole file (`(file)`).
fn key_part(key: &str) -> String {
    if key == "(file)" {
        String::new()
    } else {
        format!("`{key}`: ")
    }
}

/// An external command that did not do its job, told apart by how: it could not be started, it
/// ran and failed, or it printed what could not be read. Each keeps the command line (shell
/// quoted, secrets never on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not installed, not executable, no resources to fork.
    #[error("start `{argv}`: {reason}")]
    Start {
        /// The command line.
        argv: String,
        /// The OS error.
        reason: String,
    },

    /// It ran and exited non-zero, or was killed.
    #[error("run `{argv}`: {}{}", status_text(*status), if stderr_tail.is_empty() { String::new() } else { format!(": {stderr_tail}") })]
    Failed {
        /// The command line.
        argv: String,
        /// The exit status; `None` when a signal ended it.
        status: Option<i32>,
        /// The last lines of its standard error.
        stderr_tail: String,
    },

    /// It was killed because the run was told to stop (SIGTERM, SIGINT).
    #[error("run `{argv}`: stopped: the run was interrupted (SIGTERM/SIGINT)")]
    Interrupted {
        /// The command line.
        argv: String,
    },

    /// It succeeded, but its output is not what was expected.
    #[error("read the output of `{argv}`: {reason}")]
    Output {
        /// The command line.
        argv: String,
        /// What did not parse.
        reason: String,
    },
}

fn status_text(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// The last `lines` non-empty lines of `stderr`, joined with ` | `, at most 2000 bytes.
pub fn stderr_tail(stderr: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    // a line said again (kubectl retries and logs each try with a klog header) counts once
    let mut all: Vec<&str> = Vec::new();
    for l in text.lines().map(|l| strip_klog(l.trim())) {
        if !l.is_empty() && !all.contains(&l) {
            all.push(l);
        }
    }
    let mut tail = all[all.len().saturating_sub(lines)..].join(" | ");
    if tail.len() > 2000 {
        let mut cut = tail.len() - 2000;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("...{}", &tail[cut..]);
    }
    tail
}

/// A line without its klog header (`E1201 05:31:25.937130   25510 memcache.go:265] `), which
/// Kubernetes tools put before every message.
fn strip_klog(line: &str) -> &str {
    let b = line.as_bytes();
    let header = b.len() > 6
        && b"IWEF".contains(&b[0])
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' ';
    match line.find("] ") {
        Some(i) if header && i < 80 => line[i + 2..].trim(),
        _ => line,
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::stderr_tail;

    /// A failed file system call keeps its OS error as the source (issue 22, item 3): a caller
    /// can ask for its kind; the text reads as before.
    #[test]
    fn an_io_failure_keeps_its_source() {
        use std::error::Error as _;
        let e = super::Error::io(
            "list /srv/volumes",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.to_string(), "list /srv/volumes: permission denied");
        let source = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );
    }

    #[test]
    fn a_line_said_again_counts_once_klog_headers_aside() {
        let mut err = String::new();
        for i in 0..4 {
            err.push_str(&format!(
                "E1201 05:31:25.93{i}   255{i} memcache.go:265] couldn't get the API: refused\n"
            ));
        }
        err.push_str("The connection to the server localhost:8080 was refused\n");
        assert_eq!(
            stderr_tail(err.as_bytes(), 5),
            "couldn't get the API: refused | The connection to the server localhost:8080 was refused"
        );
        // not a klog header: kept whole
        assert_eq!(stderr_tail(b"E12 x] y\n", 5), "E12 x] y");
    }
}
