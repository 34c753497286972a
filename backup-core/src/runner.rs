//! External commands as data, and the one `Runner` trait that runs them.

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};

/// One external command: a program and its argument vector, never a shell string.
///
/// `Debug` and `Display` show the command line with environment values and stdin hidden.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Invocation {
    /// The program (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set; values are never shown (they may hold secrets).
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    /// Bytes for standard input (secrets go here or in `env`, never on argv).
    #[serde(skip)]
    pub stdin: Option<Vec<u8>>,
    /// True when running it changes nothing anywhere (`lvs`, `blkid`, `kubectl get`, a fetch):
    /// a `--dry-run` runs these for real and only records the others.
    #[serde(skip)]
    pub read_only: bool,
}

impl Invocation {
    /// `program args...`.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            stdin: None,
            read_only: false,
        }
    }

    /// Marks the command as one that changes nothing (see [`Invocation::read_only`]).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command.
    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Feeds `bytes` to the command's standard input.
    #[must_use]
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// The command line as a person would type it, each word shell-quoted; environment values
    /// are shown as `KEY=***`.
    pub fn display(&self) -> String {
        let env = self.env.iter().map(|(k, _)| format!("{k}=***"));
        let words = std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(quote);
        env.chain(words).collect::<Vec<_>>().join(" ")
    }

    /// Runs it on `runner` and fails unless it exits 0.
    ///
    /// # Errors
    /// [`Error::Command`] with the command line, the exit status and stderr.
    pub fn run_checked(&self, runner: &dyn Runner) -> Result<Output> {
        let out = runner.run(self)?;
        if out.success() {
            Ok(out)
        } else {
            Err(out.failure(self))
        }
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("command", &self.display())
            .field(
                "stdin",
                &self.stdin.as_ref().map(|b| format!("<{} bytes>", b.len())),
            )
            .finish()
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Quotes one word for a POSIX shell, only when it needs it.
pub fn quote(word: &str) -> String {
    if is_plain_word(word) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// True when `word` needs no quoting, for a shell or for rsync's `-e` splitting: letters,
/// digits and `_@%+=:,./-` only.
pub fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b))
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when a signal ended it.
    pub status: Option<i32>,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// A successful run printing `stdout`.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            status: Some(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    /// A run that exited with `code`, printing `stderr`.
    pub fn failed(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            status: Some(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    /// Exited 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// The error for this output having come from `invocation`: argv, status, stderr.
    pub fn failure(&self, invocation: &Invocation) -> Error {
        Error::Command(crate::error::CommandError::Failed {
            argv: invocation.display(),
            status: self.status,
            stderr_tail: crate::error::stderr_tail(&self.stderr, 5),
        })
    }
}

/// Runs external commands and captures their output; the status is the caller's to check.
pub trait Runner: Send + Sync {
    /// Runs `invocation` to completion.
    ///
    /// # Errors
    /// Only when the command could not be started at all.
    fn run(&self, invocation: &Invocation) -> Result<Output>;

    /// Runs `invocation` with its standard output written to `sink` as it comes (a 20 GB
    /// `pg_dumpall` never sits in memory); the returned [`Output`] has stderr, not stdout. This
    /// default runs it whole and then writes what it printed: enough for fakes.
    ///
    /// # Errors
    /// When the command could not be started, or `sink` failed (the command is then stopped).
    fn stream(&self, invocation: &Invocation, sink: &mut dyn std::io::Write) -> Result<Output> {
        let mut out = self.run(invocation)?;
        sink.write_all(&out.stdout).map_err(|e| {
            Error::Command(crate::error::CommandError::Output {
                argv: invocation.display(),
                reason: format!("writing its output failed: {e}"),
            })
        })?;
        out.stdout.clear();
        Ok(out)
    }

    /// Runs `invocation` with `input` copied to its standard input as it is read (a 20 GB SQL
    /// dump decompressed on the way into `psql`, never held whole) and its standard output
    /// written to `sink`, like [`Runner::stream`]. This default reads `input` whole first: enough
    /// for fakes.
    ///
    /// # Errors
    /// When the command could not be started, `input` could not be read (a gzip stream cut
    /// short: the command is then stopped), or `sink` failed.
    fn feed(
        &self,
        invocation: &Invocation,
        input: &mut (dyn std::io::Read + Send),
        sink: &mut dyn std::io::Write,
    ) -> Result<Output> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|e| {
            Error::Command(crate::error::CommandError::Output {
                argv: invocation.display(),
                reason: format!("reading its input failed: {e}"),
            })
        })?;
        self.stream(&invocation.clone().stdin(bytes), sink)
    }
}

/// A borrowed runner runs as the runner does (an adapter that owns its runner can be given one
/// the caller keeps).
impl<R: Runner + ?Sized> Runner for &R {
    fn run(&self, invocation: &Invocation) -> Result<Output> {
        (**self).run(invocation)
    }

    fn stream(&self, invocation: &Invocation, sink: &mut dyn std::io::Write) -> Result<Output> {
        (**self).stream(invocation, sink)
    }

    fn feed(
        &self,
        invocation: &Invocation,
        input: &mut (dyn std::io::Read + Send),
        sink: &mut dyn std::io::Write,
    ) -> Result<Output> {
        (**self).feed(invocation, input, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_hides_env() {
        let inv = Invocation::new("rsync", ["-a", "/src/it's here/", "--link-dest=/b/2026-01"])
            .env("RSYNC_PASSWORD", "hunter2");
        assert_eq!(
            inv.display(),
            r"RSYNC_PASSWORD=*** rsync -a '/src/it'\''s here/' --link-dest=/b/2026-01"
        );
        assert!(!format!("{inv:?}").contains("hunter2"));
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn failures_keep_argv_status_and_stderr() {
        let inv = Invocation::new("lvs", ["pve"]);
        let err = Output::failed(5, "  Volume group \"pve\" not found\n").failure(&inv);
        assert_eq!(
            err.to_string(),
            "run `lvs pve`: exit status 5: Volume group \"pve\" not found"
        );
    }
}
