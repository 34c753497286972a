//! The one builder of rsync command lines. Every constructor (`command`: the copies on the host;
//! `offsite`: the NAS) starts from [`Rsync::new`], takes its flags from the sets named here with
//! the reason for each, and ends with [`Rsync::paths`].

use backup_core::Invocation;
use camino::Utf8Path;

use crate::error::Error;
use crate::ssh::SshOptions;

/// `-aHAX --numeric-ids`: everything a restore needs — hardlinks (`-H`: the weekly versions stay
/// linked, without it four weeks take four times the space offsite), ACLs, extended attributes,
/// owners by number (the host's user database is not the pods').
pub(crate) const KEEP: [&str; 2] = ["-aHAX", "--numeric-ids"];

/// `--modify-window=-1`: modification times compared and kept to the nanosecond. The default
/// compares whole seconds, so a file rewritten with the same size within the second of the last
/// copy is taken as unchanged, and a restored folder whose recorded time falls in the second of
/// the restore keeps the restore's time.
pub(crate) const EXACT_TIMES: &str = "--modify-window=-1";

/// `--sparse`: runs of zeros are written as holes. A 1 GiB sparse disk image or database
/// preallocation holding 4 KiB of data otherwise takes 1 GiB in every week that changes it.
pub(crate) const HOLES: &str = "--sparse";

/// `--stats`: the numbers the report and the metrics read ([`crate::parse_stats`]).
pub(crate) const STATS: &str = "--stats";

/// `--from0`: a list's names are NUL-terminated, so a newline is part of a name.
pub(crate) const NUL_LIST: &str = "--from0";

/// One rsync command line being built; each step appends, in the order called.
pub(crate) struct Rsync(Invocation);

impl Rsync {
    /// `program`, over `ssh` when given (`-e`: the config's key and pinned host keys, failing
    /// closed).
    pub(crate) fn new(program: &str, ssh: Option<&SshOptions>) -> Self {
        let inv = Invocation::new(program, Vec::<String>::new());
        Self(match ssh {
            Some(s) => inv.arg("-e").arg(s.remote_shell()),
            None => inv,
        })
    }

    /// One more argument.
    pub(crate) fn arg(self, a: impl Into<String>) -> Self {
        Self(self.0.arg(a))
    }

    /// More arguments.
    pub(crate) fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(self.0.args(args))
    }

    /// `a` when `yes`.
    pub(crate) fn arg_if(self, yes: bool, a: &str) -> Self {
        if yes {
            self.arg(a)
        } else {
            self
        }
    }

    /// `--files-from=LIST`, an absolute path (`role`: what the list is, for the error).
    ///
    /// # Errors
    /// [`Error::RelativePath`] for a relative list.
    pub(crate) fn files_from(self, role: &'static str, list: &Utf8Path) -> Result<Self, Error> {
        let list = absolute(role, list)?;
        Ok(self.arg(format!("--files-from={list}")))
    }

    /// `--`, then the contents of `source` (`SOURCE/`: the folder's contents, not the folder)
    /// and `dest` as given. `--` ends the options: a folder named `-rf` stays a folder.
    pub(crate) fn paths(self, source: &str, dest: String) -> Invocation {
        self.0.arg("--").arg(contents_of(source)).arg(dest)
    }
}

/// `p` as a string when it is absolute.
///
/// # Errors
/// [`Error::RelativePath`] naming the role of the path.
pub(crate) fn absolute<'a>(role: &'static str, p: &'a Utf8Path) -> Result<&'a str, Error> {
    if p.is_absolute() {
        Ok(p.as_str())
    } else {
        Err(Error::RelativePath {
            role,
            path: p.to_string(),
        })
    }
}

/// `dir` with exactly one trailing slash: rsync copies the folder's contents, not the folder.
pub(crate) fn contents_of(dir: &str) -> String {
    format!("{}/", dir.trim_end_matches('/'))
}
