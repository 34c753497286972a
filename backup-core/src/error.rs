//! The one error type of `backup-core`.
//!
//! The rules are those of `backup_host::error` (a variant is a kind; the message names the input
//! at fault; a source is kept, never retold; no secret in a message). Here in particular: an OS
//! error is [`Error::Io`] with the `std::io::Error` as its source; an external command's failure
//! is a [`CommandError`] (could not start, failed with its status and stderr tail, interrupted,
//! printed what could not be read); a guard that held is a [`Refusal`], one message per guard;
//! [`Error::Adapter`] carries an adapter's own error through a trait, kind and source intact;
//! an adapter with no error type of its own says which kind of thing went wrong
//! ([`Error::Missing`], [`Error::Occupied`], [`Error::Unsupported`], [`Error::Unexpected`],
//! [`Error::Several`]) and names what was attempted. There is no variant for "some text": a
//! failure that fits no kind gets a new kind here, with its rule. A fake's injected failure is
//! an [`Error::Io`] (`std::io::Error::other("injected failure")`), as a real one would be.

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

    /// What an operation needs is not there: a volume, a snapshot, a folder, a version, a thin
    /// pool, a mount.
    #[error("{operation}: {what}")]
    Missing {
        /// What was being done ("activate vm-100-pvc-a", "remove snapshot x").
        operation: String,
        /// What is missing, in words ("no such snapshot").
        what: String,
    },

    /// The place an operation would take is taken: a name that exists, a mount point in use, an
    /// active snapshot, pods still running.
    #[error("{operation}: {what}")]
    Occupied {
        /// What was being done.
        operation: String,
        /// What is in the way, in words.
        what: String,
    },

    /// The backend cannot do this at all (a `dir` backend sets nothing aside; mounting a
    /// device needs root).
    #[error("{operation}: {reason}")]
    Unsupported {
        /// What was asked.
        operation: String,
        /// Why this backend cannot.
        reason: String,
    },

    /// The outside world answered, but not as it must: a mount that returned 0 and mounted
    /// nothing, `blkid` that names no file system, `lvs` without a pool's usage.
    #[error("{operation}: {what}")]
    Unexpected {
        /// What was being done.
        operation: String,
        /// What was found instead.
        what: String,
    },

    /// Independent operations of one step failed, each kept (one metrics sink of several).
    #[error("{operation}: {}", join_errors(.errors))]
    Several {
        /// The step.
        operation: String,
        /// Each failure.
        errors: Vec<Error>,
    },
}

fn join_errors(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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

    /// An adapter's own error carried through a trait (see [`Error::Adapter`]).
    pub fn adapter(
        operation: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Adapter {
            operation: operation.into(),
            source: Box::new(source),
        }
    }

    /// [`Error::Missing`].
    pub fn missing(operation: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Missing {
            operation: operation.into(),
            what: what.into(),
        }
    }

    /// [`Error::Occupied`].
    pub fn occupied(operation: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Occupied {
            operation: operation.into(),
            what: what.into(),
        }
    }

    /// [`Error::Unexpected`].
    pub fn unexpected(operation: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Unexpected {
            operation: operation.into(),
            what: what.into(),
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

    /// Several failures of one step are each kept, in order, and read as one line; an adapter's
    /// error keeps its type behind the trait.
    #[test]
    fn several_failures_are_each_kept_and_an_adapters_error_keeps_its_type() {
        use std::error::Error as _;
        let e = super::Error::Several {
            operation: "publish metrics".into(),
            errors: vec![
                super::Error::unexpected("push", "503"),
                super::Error::io("write /m", std::io::Error::other("disk full")),
            ],
        };
        assert_eq!(
            e.to_string(),
            "publish metrics: push: 503; write /m: disk full"
        );
        let inner = super::Error::missing("activate x", "no such snapshot");
        let e = super::Error::adapter("restore", inner);
        assert_eq!(e.to_string(), "restore: activate x: no such snapshot");
        let kept = e.source().and_then(|s| s.downcast_ref::<super::Error>());
        assert!(
            matches!(kept, Some(super::Error::Missing { .. })),
            "{kept:?}"
        );
    }

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
