//! One database out of a whole-cluster SQL dump: what comes before the first database's section
//! (roles, session settings) and the named database's section, nothing else, filtered line by
//! line as the dump streams through.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backup_core::{Invocation, Output, Runner};
use backup_host::error::{Error, Result};

use crate::{file, DumpFile};

/// Feeds `dump`, decompressed as it is read, into `inv`'s standard input: whole, or only the
/// preamble and the section of `database` (`header` tells a section's database); with
/// `restrict`, through [`Restricted`] (psql: no meta-command of the dump runs).
///
/// # Errors
/// The dump cannot be read, the command cannot start, or the dump has no such database.
pub fn feed_sql(
    runner: &dyn Runner,
    inv: &Invocation,
    dump: &DumpFile,
    database: Option<&str>,
    header: fn(&[u8]) -> Option<Vec<u8>>,
    restrict: bool,
) -> Result<Output> {
    let reader = BufReader::new(file::open(&dump.path)?);
    let found = Arc::new(AtomicBool::new(false));
    let filtered: Box<dyn Read + Send> = match database {
        Some(db) => {
            let mut one = OneDatabase::new(reader, header, db, Arc::clone(&found));
            if restrict {
                // into a live server: its roles keep their attributes, passwords, memberships
                one.drop_in_preamble = &[b"ALTER ROLE ", b"GRANT ", b"COMMENT ON ROLE "];
            }
            Box::new(one)
        }
        None => Box::new(reader),
    };
    let mut input: Box<dyn Read + Send> = if restrict {
        Box::new(Restricted::new(BufReader::new(filtered)))
    } else {
        filtered
    };
    let out = runner
        .feed(inv, &mut input, &mut std::io::sink())
        .map_err(Error::Core)?;
    // a client that died first is its own failure, not a missing database
    if let Some(db) = database.filter(|_| out.success() && !found.load(Ordering::SeqCst)) {
        return Err(Error::NotFound(format!(
            "{}: no database `{db}` in this dump",
            dump.path
        )));
    }
    Ok(out)
}

/// A random key for psql's `\restrict`: 32 hex digits from the kernel.
fn restrict_key() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // no urandom: the standard library's hash keys come from the kernel's getrandom
        use std::hash::{BuildHasher, Hasher};
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SQL dump for psql with every meta-command of its own kept from running: a dump is a file
/// on an NFS share a pod can write, and psql runs `\! <shell command>` (as whoever runs psql,
/// root on the host). The stream starts with `\restrict KEY` (psql 15.14 and later: only
/// `\unrestrict KEY` is then accepted; KEY is random, so the dump cannot know it); the dump's
/// own `\restrict`/`\unrestrict` lines are dropped; a `\connect` line of pg_dumpall (alone on
/// its line, no other backslash) is let through between `\unrestrict KEY` and `\restrict KEY`.
/// Anything else with a backslash command stays restricted: psql refuses it, and the load fails.
pub struct Restricted<R> {
    inner: R,
    key: String,
    line: Vec<u8>,
    pos: usize,
    started: bool,
}

impl<R: BufRead> Restricted<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            key: restrict_key(),
            line: Vec::new(),
            pos: 0,
            started: false,
        }
    }

    /// The next lines to pass on, for the dump line in `self.line`.
    fn rewrite(&mut self) {
        let line = trim_newline(&self.line);
        if line.starts_with(b"\\restrict ") || line.starts_with(b"\\unrestrict ") {
            self.line.clear();
        } else if let Some(cmd) = allowed_meta(line) {
            // never the dump's own line: one written here from what it names
            self.line =
                format!("\\unrestrict {k}\n{cmd}\n\\restrict {k}\n", k = self.key).into_bytes();
        }
    }
}

/// The meta-commands pg_dumpall writes between databases, rewritten from what they name:
/// `\\connect NAME` or `\\connect -reuse-previous=on "dbname='NAME'"` (a name without `'`,
/// `\\`, a backquote, `:` or a control character: psql runs backquoted text in a meta-command
/// through the shell, and a dump's own connection string could name another host and be handed
/// the password) becomes `\\connect -reuse-previous=on "dbname='NAME'"`; `\\encoding WORD`
/// stays. Anything else: `None` (it stays restricted, psql refuses it, the load fails).
fn allowed_meta(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    if let Some(enc) = line.strip_prefix("\\encoding ") {
        let plain = !enc.is_empty() && enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        return plain.then(|| format!("\\encoding {enc}"));
    }
    let rest = line.strip_prefix("\\connect ")?;
    let name = match rest
        .strip_prefix("-reuse-previous=on \"dbname='")
        .and_then(|r| r.strip_suffix("'\""))
    {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None if !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            rest.to_owned()
        }
        None => return None,
    };
    let unsafe_char = |c: char| matches!(c, '\'' | '\\' | '`' | ':') || c.is_control();
    if name.is_empty() || name.contains(unsafe_char) {
        return None;
    }
    Some(format!(
        "\\connect -reuse-previous=on \"dbname='{}'\"",
        name.replace('"', "\"\"")
    ))
}

impl<R: BufRead> Read for Restricted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.line.len() {
            self.line.clear();
            self.pos = 0;
            if !self.started {
                self.started = true;
                self.line = format!("\\restrict {}\n", self.key).into_bytes();
                break;
            }
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(0);
            }
            self.rewrite();
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Refuses a `database` the dump has no section for, before anything is loaded (a name it
/// does not hold must change nothing on the server).
///
/// # Errors
/// The dump cannot be read, or has no such database ([`Error::NotFound`]).
pub fn require_database(
    dump: &DumpFile,
    header: fn(&[u8]) -> Option<Vec<u8>>,
    database: &str,
) -> Result<()> {
    if holds_database(dump, header, database)? {
        Ok(())
    } else {
        Err(Error::NotFound(format!(
            "{}: no database `{database}` in this dump: nothing was changed",
            dump.path
        )))
    }
}

/// Whether `dump` has a section for `database`, read through once.
fn holds_database(
    dump: &DumpFile,
    header: fn(&[u8]) -> Option<Vec<u8>>,
    database: &str,
) -> Result<bool> {
    let mut r = BufReader::new(file::open(&dump.path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Refused(format!("{}: {e}", dump.path)))?;
        if n == 0 {
            return Ok(false);
        }
        if header(trim_newline(&line)).is_some_and(|n| n == database.as_bytes()) {
            return Ok(true);
        }
    }
}

/// A SQL dump goes into a server (`--host`, or the tool's defaults), never a folder.
///
/// # Errors
/// `--data-dir` given.
pub fn server_target(to: &crate::Target, kind: &str) -> Result<()> {
    match &to.data_dir {
        Some(d) => Err(Error::Usage(format!(
            "--data-dir {d}: a {kind} dump is loaded into a server (--host, --port, --user), \
             not a folder; --data-dir is for Redis and etcd"
        ))),
        None => Ok(()),
    }
}

/// What a SQL restore runs, for `--dry-run`: the dump decompressed (filtered to one database)
/// into `command`, then the count.
pub fn sql_plan(dump: &DumpFile, database: Option<&str>, command: &Invocation) -> Vec<String> {
    let filter = database
        .map(|d| format!(" | (only the preamble and database {d})"))
        .unwrap_or_default();
    vec![
        format!(
            "gunzip -c {}{filter} | {command}",
            backup_core::quote(dump.path.as_str())
        ),
        "count the tables and rows of each database loaded".to_owned(),
    ]
}

/// A reader of `inner` that passes the preamble and the section `header` names `wanted`.
pub struct OneDatabase<R> {
    inner: R,
    header: fn(&[u8]) -> Option<Vec<u8>>,
    wanted: Vec<u8>,
    keep: bool,
    /// Before the first section.
    preamble: bool,
    /// Lines of the preamble starting so are left out.
    pub drop_in_preamble: &'static [&'static [u8]],
    /// Set once the named section is seen.
    found: Arc<AtomicBool>,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> OneDatabase<R> {
    /// `header` returns the database a section header line names (`None`: not a header).
    pub fn new(
        inner: R,
        header: fn(&[u8]) -> Option<Vec<u8>>,
        wanted: &str,
        found: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            header,
            wanted: wanted.as_bytes().to_vec(),
            keep: true,
            preamble: true,
            drop_in_preamble: &[],
            found,
            line: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: BufRead> Read for OneDatabase<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.line.len() {
            self.line.clear();
            self.pos = 0;
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(0);
            }
            if let Some(name) = (self.header)(trim_newline(&self.line)) {
                self.preamble = false;
                self.keep = name == self.wanted;
                if self.keep {
                    self.found.store(true, Ordering::SeqCst);
                }
            }
            let dropped = self.preamble
                && self
                    .drop_in_preamble
                    .iter()
                    .any(|p| self.line.starts_with(p));
            if !self.keep || dropped {
                self.line.clear();
            }
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// `pg_dumpall`: `-- Database "app" dump` (the name as it is, quotes not doubled).
pub fn postgres_header(line: &[u8]) -> Option<Vec<u8>> {
    line.strip_prefix(b"-- Database \"")?
        .strip_suffix(b"\" dump")
        .map(<[u8]>::to_vec)
}

/// `mysqldump --all-databases`: ``-- Current Database: `app` `` (backticks doubled).
pub fn mysql_header(line: &[u8]) -> Option<Vec<u8>> {
    let quoted = line
        .strip_prefix(b"-- Current Database: `")?
        .strip_suffix(b"`")?;
    let text = String::from_utf8_lossy(quoted).replace("``", "`");
    Some(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(dump: &str, header: fn(&[u8]) -> Option<Vec<u8>>, db: &str) -> (String, bool) {
        let found = Arc::new(AtomicBool::new(false));
        let mut r = OneDatabase::new(dump.as_bytes(), header, db, Arc::clone(&found));
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        (out, found.load(Ordering::SeqCst))
    }

    #[test]
    fn one_database_keeps_the_preamble_and_its_section() {
        let dump = "CREATE ROLE bob;\n--\n-- Database \"template1\" dump\n--\nT1\n\
                    -- Database \"app\" dump\nCREATE DATABASE app;\nA\n\
                    -- Database \"app2\" dump\nB\n-- Database \"odd\"name\" dump\nC\n";
        let (out, found) = filtered(dump, postgres_header, "app");
        assert!(found);
        assert_eq!(
            out,
            "CREATE ROLE bob;\n--\n-- Database \"app\" dump\nCREATE DATABASE app;\nA\n"
        );
        assert!(filtered(dump, postgres_header, "odd\"name")
            .0
            .ends_with("C\n"));
        assert!(!filtered(dump, postgres_header, "ap").1);
        let my = "SET x;\n-- Current Database: `a``b`\nA\n-- Current Database: `c`\nC";
        assert_eq!(
            filtered(my, mysql_header, "a`b").0,
            "SET x;\n-- Current Database: `a``b`\nA\n"
        );
        assert_eq!(
            filtered(my, mysql_header, "c").0,
            "SET x;\n-- Current Database: `c`\nC"
        );
    }

    /// psql runs `\\! cmd` and backquoted text in meta-commands: a dump's own meta-commands stay
    /// restricted; the `\\connect` and `\\encoding` lines of pg_dumpall are written anew from
    /// what they name, under a key the dump cannot know.
    #[test]
    fn a_dump_runs_no_meta_command_of_its_own() {
        let dump = "\\restrict theirs\nSELECT 1;\n\\unrestrict theirs\n\\connect app\n\\! id\n\
                    SELECT 2; \\! id\n\\connect app \\! id\n\\connect `id`\n\
                    \\connect -reuse-previous=off \"host=evil dbname=x\"\n\\encoding SQL_ASCII\n\
                    \\connect -reuse-previous=on \"dbname='odd\"\"name'\"\n";
        let mut r = Restricted::new(dump.as_bytes());
        let key = r.key.clone();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        let open = |cmd: &str| format!("\\unrestrict {key}\n{cmd}\n\\restrict {key}\n");
        assert_eq!(
            out,
            format!(
                "\\restrict {key}\nSELECT 1;\n{}\\! id\nSELECT 2; \\! id\n\\connect app \\! id\n\
                 \\connect `id`\n\\connect -reuse-previous=off \"host=evil dbname=x\"\n{}{}",
                open("\\connect -reuse-previous=on \"dbname='app'\""),
                open("\\encoding SQL_ASCII"),
                open("\\connect -reuse-previous=on \"dbname='odd\"\"name'\""),
            )
        );
        assert_eq!(key.len(), 32);
        assert_ne!(Restricted::new(&b""[..]).key, key);
    }
}
