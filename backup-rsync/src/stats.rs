//! Reading `rsync --stats`.

use backup_core::SyncStats;

use crate::error::Error;

/// Parses the `--stats` block of rsync's standard output (3.1 and later: numbers with thousands
/// separators, `Number of files: N (reg: R, dir: D)`).
///
/// `files` is the count of regular files (`reg:`); `deleted_files` is 0 when rsync prints no
/// deletion line (it does not without `--delete`).
///
/// # Errors
/// [`Error::Stats`] when a required line is missing or a number does not parse.
pub fn parse_stats(stdout: &str) -> Result<SyncStats, Error> {
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let required = |prefix: &'static str| {
        line(prefix).ok_or_else(|| Error::Stats(format!("no `{prefix}` line")))
    };

    let files_line = required("Number of files:")?;
    let files = match files_line.split_once("reg: ") {
        // `reg: 1,201, dir: 2)`: the separator is ", " (a bare "," is a thousands mark)
        Some((_, rest)) => number(
            rest.split(", ").next().unwrap_or("").trim_end_matches(')'),
            "reg:",
        )?,
        // an empty transfer prints just "Number of files: 0"; a tree without regular files
        // (a fresh ext4 with only `lost+found`, a folder of symlinks, devices) prints
        // `3 (dir: 1, link: 2)` with no `reg:` part: it has no regular file
        None => {
            number(
                files_line.split(" (").next().unwrap_or(files_line),
                "Number of files:",
            )?;
            0
        }
    };
    let count = |prefix: &'static str| -> Result<u64, Error> {
        let v = required(prefix)?;
        number(v.split(" (").next().unwrap_or(v), prefix)
    };
    let bytes = |prefix: &'static str| -> Result<u64, Error> {
        let v = required(prefix)?;
        number(v.trim_end_matches("bytes").trim(), prefix)
    };
    Ok(SyncStats {
        files,
        transferred_files: count("Number of regular files transferred:")?,
        total_bytes: bytes("Total file size:")?,
        transferred_bytes: bytes("Total transferred file size:")?,
        deleted_files: match line("Number of deleted files:") {
            Some(v) => number(
                v.split(" (").next().unwrap_or(v),
                "Number of deleted files:",
            )?,
            None => 0,
        },
    })
}

/// `1,234` → 1234. rsync's separator follows the locale; `,` and `.` are both thousands marks
/// here because none of these fields has a fraction.
fn number(text: &str, what: &str) -> Result<u64, Error> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '.' | '\''))
        .collect();
    digits
        .parse()
        .map_err(|_| Error::Stats(format!("`{what}` is not a number: `{}`", text.trim())))
}
