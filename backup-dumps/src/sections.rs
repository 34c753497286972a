//! One database out of a whole-cluster SQL dump: what comes before the first database's section
//! (roles, session settings) and the named database's section, nothing else, filtered line by
//! line as the dump streams through.

use std::io::{BufRead, BufReader, Read};

use backup_core::{Invocation, Output, Runner};
use backup_host::error::{Error, Result};

use crate::{file, DumpFile};

/// Feeds `dump`, decompressed as it is read, into `inv`'s standard input: whole, or only the
/// preamble and the section of `database` (`header` tells a section's database).
///
/// # Errors
/// The dump cannot be read, the command cannot start, or the dump has no such database.
pub fn feed_sql(
    runner: &dyn Runner,
    inv: &Invocation,
    dump: &DumpFile,
    database: Option<&str>,
    header: fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<Output> {
    let reader = BufReader::new(file::open(&dump.path)?);
    let Some(db) = database else {
        return runner
            .feed(inv, &mut { reader }, &mut std::io::sink())
            .map_err(Error::Core);
    };
    let mut one = OneDatabase::new(reader, header, db);
    let out = runner
        .feed(inv, &mut one, &mut std::io::sink())
        .map_err(Error::Core)?;
    if !one.found {
        return Err(Error::NotFound(format!(
            "{}: no database `{db}` in this dump",
            dump.path
        )));
    }
    Ok(out)
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
    /// Whether the named section was seen at all.
    pub found: bool,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> OneDatabase<R> {
    /// `header` returns the database a section header line names (`None`: not a header).
    pub fn new(inner: R, header: fn(&[u8]) -> Option<Vec<u8>>, wanted: &str) -> Self {
        Self {
            inner,
            header,
            wanted: wanted.as_bytes().to_vec(),
            keep: true,
            found: false,
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
                self.keep = name == self.wanted;
                self.found |= self.keep;
            }
            if !self.keep {
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
        let mut r = OneDatabase::new(dump.as_bytes(), header, db);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        (out, r.found)
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
}
