//! The change log that `nfs-change-tracker` writes and `offsite-sync-backup` reads, as names and
//! bytes. No I/O here: where the files are, how records are encoded, and when a log can be
//! trusted.
//!
//! Per tree, beside `offsite.change-log` (`/mnt/backup/.nfs-changes.log`):
//!
//! ```text
//! <change-log>.<tree>                  the live log: the tracker appends to it
//! <change-log>.<tree>.sealed-<stamp>   segments a sync took (renamed under the lock); deleted
//!                                      only after the sync that read them succeeded
//! <change-log>.<tree>.full-pass        present while the log cannot be trusted: the tracker
//!                                      started (it cannot know what happened while it was
//!                                      down), its queue overflowed, a watch failed
//! <change-log>.lock                    flock held while the live log is appended to or sealed
//! ```
//!
//! A record is a path relative to its tree followed by one NUL byte: any byte string is a name
//! (newlines included), and `rsync --from0 --files-from` reads the records as they are.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

/// The files of one tree's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLogFiles {
    base: Utf8PathBuf,
    tree: String,
}

impl ChangeLogFiles {
    /// The files of `tree` beside `change_log`.
    pub fn new(change_log: &Utf8Path, tree: &str) -> Self {
        Self {
            base: change_log.to_owned(),
            tree: tree.to_owned(),
        }
    }

    /// The live log.
    pub fn live(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.{}", self.base, self.tree))
    }

    /// The marker of a log that cannot be trusted.
    pub fn full_pass_marker(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.{}.full-pass", self.base, self.tree))
    }

    /// The identity of the tree root the tracker watches (`<device> <inode>`, or `absent`).
    pub fn root_identity(&self) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.{}.root", self.base, self.tree))
    }

    /// A sealed segment, named by a sortable stamp.
    pub fn sealed(&self, stamp: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{}.{}.sealed-{stamp}", self.base, self.tree))
    }

    /// The stamp of `file_name` when it is a sealed segment of this tree.
    pub fn sealed_stamp<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        let base = self.base.file_name()?;
        file_name
            .strip_prefix(base)?
            .strip_prefix('.')?
            .strip_prefix(self.tree.as_str())?
            .strip_prefix(".sealed-")
    }

    /// The lock shared by every tree of one change log.
    pub fn lock(change_log: &Utf8Path) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("{change_log}.lock"))
    }
}

/// One record: `path` and its NUL terminator. A path holding a NUL cannot be a file name and is
/// never written.
pub fn encode_record(path: &[u8], out: &mut Vec<u8>) {
    if path.is_empty() || path.contains(&0) {
        return;
    }
    out.extend_from_slice(path);
    out.push(0);
}

/// One path of an `rsync --from0 --files-from` list: `./` before a path that starts with `#`
/// or `;` (rsync drops such lines as comments, `--from0` or not: a file named `#notes` was
/// silently never copied), then the path and its NUL terminator. A path holding a NUL cannot
/// be a file name and is never written.
pub fn encode_files_from(path: &[u8], out: &mut Vec<u8>) {
    if path.is_empty() || path.contains(&0) {
        return;
    }
    if matches!(path.first(), Some(b'#' | b';')) {
        out.extend_from_slice(b"./");
    }
    out.extend_from_slice(path);
    out.push(0);
}

/// The distinct records of one or more segments, sorted. A last record without its NUL (a
/// write cut short) is dropped: the tracker re-records what it did not finish writing only by a
/// full pass, which a crash forces anyway.
pub fn parse_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bytes
        .split(|b| *b == 0)
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, complete)| complete.to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The records as `rsync --from0 --files-from` reads them: each path, NUL-terminated. Paths
/// inside a listed folder stay listed: one that was deleted must be named to be deleted offsite
/// (`-r` sends a folder, it does not delete what it no longer holds).
pub fn files_from(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        encode_files_from(r, &mut out);
    }
    out
}

/// An incremental pass of one tree, as two rsync runs (no `--delete-missing-args`: its mode-0
/// entries for a gone path are rejected below the top folder by Debian 12's rsync
/// 3.2.7-1+deb12u5 and later, "invalid file mode 00", exit 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalPlan {
    /// The recorded paths that exist in the tree now, sent with `-r` (a folder with what it
    /// holds).
    pub send: Vec<Vec<u8>>,
    /// Then, with `--dirs --delete` (no `-r`): for each gone path the nearest folder above it
    /// that exists, with a trailing slash (`./` for the top), so rsync sends that one level and
    /// deletes what the offsite copy holds beyond it there (a folder with its contents); and the
    /// folder holding each recorded path, without a slash, so its mode and mtime are set after
    /// its entries changed. rsync reads a bare `.` as `./`.
    pub folders: Vec<Vec<u8>>,
    /// Whether the folders pass lists a level (a gone path, or the top folder): it may delete,
    /// bounded by `max-delete`.
    pub deletes: bool,
}

/// The folder holding `path` (`.` for a top-level name; `None` for `.` itself).
fn parent_of(path: &[u8]) -> Option<&[u8]> {
    if path == b"." || path.is_empty() {
        return None;
    }
    Some(
        path.iter()
            .rposition(|b| *b == b'/')
            .map_or(b".".as_slice(), |i| &path[..i]),
    )
}

/// What a recorded path is in the tree now, for [`plan_incremental`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Not there, or below something that is not a real folder (a symlink to a folder is not
    /// one: what is under it is not the tree's).
    Missing,
    /// A real folder (not a symlink).
    Folder,
    /// A file, a symlink, a device.
    Other,
}

/// Plans an incremental pass from a tree's records; `kind` says what a path (relative to the
/// tree) is now, without following symlinks, and `touched` whether a folder's mtime may have
/// changed since the last sync (a folder whose entries were only written to keeps its mtime,
/// and needs no second rsync).
pub fn plan_incremental(
    records: &[Vec<u8>],
    kind: impl Fn(&[u8]) -> PathKind,
    touched: impl Fn(&[u8]) -> bool,
) -> IncrementalPlan {
    let mut send = std::collections::BTreeSet::new();
    let mut levels = std::collections::BTreeSet::new();
    let mut entries = std::collections::BTreeSet::new();
    for r in records.iter().filter(|r| r.as_slice() != b".") {
        if kind(r) != PathKind::Missing {
            send.insert(r.clone());
            if let Some(p) = parent_of(r).filter(|p| touched(p)) {
                entries.insert(p.to_vec());
            }
            continue;
        }
        // the nearest real folder above it: a symlink listed as `link/` would be followed
        let mut up = parent_of(r);
        while let Some(p) = up {
            if p == b"." || kind(p) == PathKind::Folder {
                levels.insert(p.to_vec());
                break;
            }
            up = parent_of(p);
        }
    }
    let mut folders = Vec::new();
    for l in &levels {
        let mut s = l.clone();
        s.push(b'/');
        folders.push(s);
    }
    for e in entries.iter().filter(|e| !levels.contains(*e)) {
        // a bare `.` is a level: listed only as `./`
        if e.as_slice() == b"." {
            folders.push(b"./".to_vec());
        } else {
            folders.push(e.clone());
        }
    }
    folders.sort();
    folders.dedup();
    // any level (`./` for the top folder's mtime included) may delete what the copy holds
    // beyond it: counted against max-delete
    let deletes = folders.iter().any(|f| f.ends_with(b"/"));
    IncrementalPlan {
        send: send.into_iter().collect(),
        folders,
        deletes,
    }
}

/// How one tree is sent in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "pass")]
pub enum TreePass {
    /// Only what the log names.
    Incremental {
        /// How many records.
        records: usize,
    },
    /// The whole tree, with `--delete`.
    Full {
        /// Why.
        reason: String,
    },
}

/// Decides the pass of one tree: full when the log cannot be trusted (`full_pass_reason`: the
/// marker's text), when the tree was never synced, when `monthly` and no full pass succeeded in
/// this month yet, or when asked; otherwise incremental.
pub fn plan_tree_pass(
    full_pass_reason: Option<&str>,
    last_success: Option<chrono::DateTime<chrono::Utc>>,
    last_full_success: Option<chrono::DateTime<chrono::Utc>>,
    monthly: bool,
    forced: bool,
    now: chrono::DateTime<chrono::Utc>,
    records: usize,
) -> TreePass {
    use chrono::Datelike;
    let reason = if forced {
        Some("asked for (--full)".to_owned())
    } else if let Some(why) = full_pass_reason {
        Some(format!("the change log cannot be trusted: {}", why.trim()))
    } else if last_success.is_none() {
        Some("never synced before".to_owned())
    } else if monthly
        && last_full_success.is_none_or(|t| (t.year(), t.month()) != (now.year(), now.month()))
    {
        Some("first run of the month (monthly-full-pass)".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => TreePass::Full { reason },
        None => TreePass::Incremental { records },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_names() {
        let f = ChangeLogFiles::new(Utf8Path::new("/b/.nfs-changes.log"), "nfs");
        assert_eq!(f.live(), "/b/.nfs-changes.log.nfs");
        assert_eq!(f.full_pass_marker(), "/b/.nfs-changes.log.nfs.full-pass");
        assert_eq!(
            f.sealed("20260105"),
            "/b/.nfs-changes.log.nfs.sealed-20260105"
        );
        assert_eq!(
            f.sealed_stamp(".nfs-changes.log.nfs.sealed-20260105"),
            Some("20260105")
        );
        assert_eq!(
            f.sealed_stamp(".nfs-changes.log.nfs-ssd.sealed-20260105"),
            None
        );
        assert_eq!(
            ChangeLogFiles::lock(Utf8Path::new("/b/.nfs-changes.log")),
            "/b/.nfs-changes.log.lock"
        );
    }

    #[test]
    fn a_cut_record_is_dropped_and_folders_cover_their_contents() {
        let recs = parse_records(b"b\0a/x\0a\0a\0new\nline\0-rf\0half");
        assert_eq!(
            recs,
            [
                b"-rf".to_vec(),
                b"a".to_vec(),
                b"a/x".to_vec(),
                b"b".to_vec(),
                b"new\nline".to_vec()
            ]
        );
        assert_eq!(files_from(&recs), b"-rf\0a\0a/x\0b\0new\nline\0");
    }

    proptest! {
        #[test]
        fn records_round_trip(paths in prop::collection::vec(prop::collection::vec(1u8..=255, 1..20), 0..30)) {
            let mut bytes = Vec::new();
            for p in &paths {
                encode_record(p, &mut bytes);
            }
            let mut want = paths.clone();
            want.sort();
            want.dedup();
            prop_assert_eq!(parse_records(&bytes), want);
        }
    }

    #[test]
    fn passes() {
        use chrono::TimeZone;
        let t = |m, d| chrono::Utc.with_ymd_and_hms(2026, m, d, 6, 0, 0).unwrap();
        let inc = TreePass::Incremental { records: 3 };
        assert_eq!(
            plan_tree_pass(None, Some(t(2, 1)), Some(t(2, 1)), true, false, t(2, 9), 3),
            inc
        );
        assert!(matches!(
            plan_tree_pass(
                Some("tracker started"),
                Some(t(2, 1)),
                Some(t(2, 1)),
                true,
                false,
                t(2, 9),
                3
            ),
            TreePass::Full { .. }
        ));
        assert!(matches!(
            plan_tree_pass(None, None, None, false, false, t(2, 9), 3),
            TreePass::Full { .. }
        ));
        assert!(matches!(
            plan_tree_pass(None, Some(t(2, 1)), Some(t(1, 31)), true, false, t(2, 9), 3),
            TreePass::Full { .. }
        ));
        assert_eq!(
            plan_tree_pass(
                None,
                Some(t(2, 1)),
                Some(t(1, 31)),
                false,
                false,
                t(2, 9),
                3
            ),
            inc
        );
        assert!(matches!(
            plan_tree_pass(None, Some(t(2, 1)), Some(t(2, 1)), true, true, t(2, 9), 3),
            TreePass::Full { .. }
        ));
    }

    #[test]
    fn an_incremental_pass_never_names_a_gone_path_only_the_level_above_it() {
        let dirs: Vec<&[u8]> = vec![b"a", b"b", b"link"];
        let files: Vec<&[u8]> = vec![b"a/keep", b"b/new", b"top", b"x"];
        let exists = |p: &[u8]| {
            if dirs.contains(&p) {
                PathKind::Folder
            } else if files.contains(&p) {
                PathKind::Other
            } else {
                PathKind::Missing
            }
        };
        let records: Vec<Vec<u8>> = [
            "a/gone/deep/f", // a folder moved out: the level a/ is listed
            "a/gone",
            "b/new",     // created: sent, and b's mtime set
            "old/sub/f", // a top-level folder gone: the top level
            "top",
            "x",
            ".",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let plan = plan_incremental(&records, exists, |_| true);
        let show = |v: &[Vec<u8>]| {
            v.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&plan.send), ["b/new", "top", "x"]);
        assert_eq!(show(&plan.folders), ["./", "a/", "b"]);
        assert!(plan.deletes);
        let writes = plan_incremental(&[b"b/new".to_vec()], exists, |_| true);
        assert_eq!(show(&writes.folders), ["b"]);
        assert!(!writes.deletes);
        // a write into a folder whose mtime did not move needs no folders pass
        let quiet = plan_incremental(&[b"b/new".to_vec()], exists, |_| false);
        assert!(quiet.folders.is_empty());
        assert_eq!(show(&quiet.send), ["b/new"]);
        // a gone path always lists its level
        let gone = plan_incremental(&[b"a/gone".to_vec()], exists, |_| false);
        assert_eq!(show(&gone.folders), ["a/"]);
        assert!(gone.deletes);
        // a level is never a symlink (rsync would follow `link/`): the real folder above it
        let dirs_only = |p: &[u8]| match p {
            b"link" => PathKind::Other,
            other => exists(other),
        };
        let under_link = plan_incremental(&[b"link/x".to_vec()], dirs_only, |_| false);
        assert_eq!(show(&under_link.folders), ["./"]);
        // the top folder's mtime lists the top level: that may delete, so it is counted
        let top = plan_incremental(&[b"top".to_vec()], exists, |_| true);
        assert_eq!(show(&top.folders), ["./"]);
        assert!(top.deletes);
    }
}
