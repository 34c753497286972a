//! Updating a PVC's version of a week atomically.
//!
//! A run never writes into the complete version it updates. It builds the update beside it
//! (`pvc-data/<week>/.staging/tree/<ns>/<pvc>`: a hardlink tree of the complete copy plus the
//! changes, and `.staging/record/<ns>/<pvc>`), and only when that is whole and on disk
//! ([`commit`]) swaps it in:
//!
//! 1. a journal (`.staging/commit/<ns>/<pvc>`) names the new tree's inode and the new marker,
//!    written atomically (only when the week has a complete version: its first run has no
//!    version a reader could mistake, and a copy without a marker is no version);
//! 2. `renameat2(RENAME_EXCHANGE)` swaps the new tree with the old copy (a plain rename when
//!    there was none);
//! 3. the new record replaces the old one (rename);
//! 4. the new marker is written (atomically), the journal removed;
//! 5. the version's damage list is cleared, and the old tree, now under `.staging/tree/`, is
//!    kept as the version's *spare* (`.staging/spare/<ns>/<pvc>`) when it has none, removed
//!    otherwise.
//!
//! The next update of the same week starts from the spare instead of an empty folder
//! ([`staging_tree_from_spare`]): the run removes from it what the new copy must not hold and
//! links in what it lacks, which costs the changes of two runs rather than a link of every file
//! and, after the swap, a removal of every file. The first run of the next week takes the last
//! week's spare the same way (a week's spare then goes with it; one left because that run had
//! no usable record goes when the week is pruned). The spare is never read as a version: whatever
//! it holds, the update built from it is the tree an empty folder would have given (every file
//! kept is the very inode the complete version holds, checked one by one). It holds one more
//! link to the files of the version it was, and keeps alive the files the last update replaced
//! until the next update of the week (or the week's removal).
//!
//! The marker is never removed: the version is complete at every moment. Before step 2 it is
//! the old version, untouched, whatever happens to the run (ENOSPC, SIGTERM, SIGKILL, a power
//! cut). From step 2 until the journal goes, the copy is the new tree: a reader that finds a
//! journal whose inode is the copy's takes the record from the journal's side
//! ([`record_path`]), so copy and record always agree. The next run of the volume finishes such
//! a commit, or drops one that never swapped ([`recover`]), and removes what a killed run
//! staged.

use backup_core::{format_marker, BackupRoot, IsoWeek, StagingPart};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::fsutil::{
    remove_file_if_present, remove_tree, sync_filesystem, write_atomic, write_atomic_unsynced,
};

/// The paths of one version and its update.
struct Paths {
    copy: Utf8PathBuf,
    record: Utf8PathBuf,
    marker: Utf8PathBuf,
    damaged: Utf8PathBuf,
    repaired: Utf8PathBuf,
    tree: Utf8PathBuf,
    next_record: Utf8PathBuf,
    journal: Utf8PathBuf,
    spare: Utf8PathBuf,
}

impl Paths {
    fn new(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Self {
        Self {
            copy: root.pvc_copy(week, ns, pvc),
            record: root.pvc_record(week, ns, pvc),
            marker: root.pvc_complete_marker(week, ns, pvc),
            damaged: root.pvc_damaged(week, ns, pvc),
            repaired: root.pvc_repaired(week, ns, pvc),
            tree: root.pvc_staging(StagingPart::Tree, week, ns, pvc),
            next_record: root.pvc_staging(StagingPart::Record, week, ns, pvc),
            journal: root.pvc_staging(StagingPart::Commit, week, ns, pvc),
            spare: root.pvc_staging(StagingPart::Spare, week, ns, pvc),
        }
    }
}

/// What the journal holds: enough to tell whether the swap happened, and to finish it.
struct Journal {
    /// Inode of the new tree (it keeps it through the renames).
    new_tree_inode: u64,
    /// The marker after.
    new_marker: String,
}

impl Journal {
    fn encode(&self) -> String {
        format!(
            "HBCOMMIT2\n{}\n{}\n",
            self.new_tree_inode,
            self.new_marker.trim()
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        (lines.next()? == "HBCOMMIT2").then_some(())?;
        Some(Self {
            new_tree_inode: lines.next()?.parse().ok()?,
            new_marker: format!("{}\n", lines.next()?),
        })
    }

    fn read(p: &Paths) -> Option<Self> {
        crate::safe_read::read_regular_string(&p.journal)
            .ok()
            .and_then(|t| Self::decode(&t))
    }

    /// The swap happened: the copy is the journal's tree.
    fn swapped(&self, p: &Paths) -> bool {
        inode(&p.copy) == Some(self.new_tree_inode)
    }
}

/// The record that describes the copy of `ns/pvc` in `week` now: its record, or, while a commit
/// that already swapped the copy in has not renamed the new record yet, the new one.
pub fn record_path(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Utf8PathBuf {
    let p = Paths::new(root, week, ns, pvc);
    match Journal::read(&p) {
        Some(j) if j.swapped(&p) && p.next_record.exists() => p.next_record,
        _ => p.record,
    }
}

/// The bytes of the record that describes the copy of `ns/pvc` in `week` now ([`record_path`]);
/// `None` when there is none or it cannot be read.
pub fn record_bytes(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Option<Vec<u8>> {
    crate::safe_read::read_regular(record_path(root, week, ns, pvc)).ok()
}

/// That record decoded; `None` when there is none or it does not decode.
pub fn read_record(
    root: &BackupRoot,
    week: IsoWeek,
    ns: &str,
    pvc: &str,
) -> Option<Vec<backup_core::FileEntry>> {
    backup_core::decode_record(&record_bytes(root, week, ns, pvc)?).ok()
}

fn inode(path: &Utf8Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// The folder a run builds the update of a version in (removed first when a killed run left
/// one). Its parent exists.
///
/// # Errors
/// When a leftover cannot be removed or the parent created.
pub fn fresh_staging_tree(
    root: &BackupRoot,
    week: IsoWeek,
    ns: &str,
    pvc: &str,
) -> Result<Utf8PathBuf> {
    let p = Paths::new(root, week, ns, pvc);
    remove_tree(&p.tree)?;
    remove_file_if_present(&p.next_record)?;
    if let Some(parent) = p.tree.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    Ok(p.tree)
}

/// [`fresh_staging_tree`], holding a spare when there is one (then `true`): the copy the last
/// swap of `week` replaced, else (a week's first run) the one of `earlier`, to be brought up to
/// date rather than built from nothing. Nothing of it is trusted: see the module.
///
/// # Errors
/// When a leftover cannot be removed, the parent created or the spare moved.
pub fn staging_tree_from_spare(
    root: &BackupRoot,
    week: IsoWeek,
    ns: &str,
    pvc: &str,
    earlier: Option<IsoWeek>,
) -> Result<(Utf8PathBuf, bool)> {
    let tree = fresh_staging_tree(root, week, ns, pvc)?;
    for w in std::iter::once(week).chain(earlier.filter(|w| *w != week)) {
        let spare = root.pvc_staging(StagingPart::Spare, w, ns, pvc);
        match std::fs::symlink_metadata(&spare) {
            Ok(m) if m.is_dir() => {
                // a spare is only a saving: one that cannot be moved goes
                if std::fs::rename(&spare, &tree).is_ok() {
                    return Ok((tree, true));
                }
                remove_tree(&spare)?;
            }
            Ok(_) => remove_tree(&spare)?,
            Err(_) => {}
        }
    }
    Ok((tree, false))
}

/// Makes the staged update the complete version of `ns/pvc` in `week`: see the module. When
/// nothing was staged (a rerun that changed nothing), only the record and marker are rewritten.
///
/// # Errors
/// When a step fails; the version is then either the old one, complete, or (after step 2) is
/// finished or undone by the next run's [`recover`].
pub fn commit(
    root: &BackupRoot,
    week: IsoWeek,
    ns: &str,
    pvc: &str,
    record: &[u8],
    at: DateTime<Utc>,
) -> Result<()> {
    let p = Paths::new(root, week, ns, pvc);
    // the new tree and record must be on disk before anything points at them: one syncfs
    // for both (the record needs no fsync of its own)
    write_atomic_unsynced(&p.next_record, record)?;
    sync_filesystem(root.root())?;
    let new_marker = format_marker(at);
    let Some(new_tree_inode) = inode(&p.tree) else {
        // nothing staged: the copy is already what the record describes
        write_atomic(&p.record, record)?;
        write_atomic(&p.marker, new_marker.as_bytes())?;
        remove_file_if_present(&p.next_record)?;
        return damaged_to_repaired(&p);
    };
    let journal = Journal {
        new_tree_inode,
        new_marker,
    };
    // Without a complete version of the week (its first run) there is nothing a reader could
    // take for the version while the swap is cut in the middle: no marker means no version,
    // and what a killed run left is replaced by the next. The journal is for the swap of a
    // complete version only.
    if p.marker.exists() {
        write_atomic(&p.journal, journal.encode().as_bytes())?;
    }
    swap_in(&p.tree, &p.copy)?;
    finish(&p, &journal)
}

/// Steps 4 to 6: the record, the marker, the journal, the old tree.
fn finish(p: &Paths, journal: &Journal) -> Result<()> {
    if p.next_record.exists() {
        if let Some(parent) = p.record.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
        }
        std::fs::rename(&p.next_record, &p.record)
            .map_err(|e| Error::io("rename the new record onto", &p.record, e))?;
    }
    write_atomic(&p.marker, journal.new_marker.as_bytes())?;
    remove_file_if_present(&p.journal)?;
    damaged_to_repaired(p)?;
    keep_as_spare(p)
}

/// The old tree a swap left at `.staging/tree/` becomes the version's spare when it has none
/// (one is enough: a second would only cost its removal); otherwise, or when it cannot be
/// moved there, it is removed. The version is complete by now: a spare is only a saving.
fn keep_as_spare(p: &Paths) -> Result<()> {
    let free = std::fs::symlink_metadata(&p.spare).is_err();
    let kept = free
        && std::fs::symlink_metadata(&p.tree).is_ok_and(|m| m.is_dir())
        && p.spare
            .parent()
            .is_some_and(|parent| std::fs::create_dir_all(parent).is_ok())
        && std::fs::rename(&p.tree, &p.spare).is_ok();
    if kept {
        Ok(())
    } else {
        remove_tree(&p.tree)
    }
}

/// The damage list of a version just updated (its damaged files were sent again) moves into
/// its repaired list, which offsite step 1 reads and clears ([`clear_repaired`]).
fn damaged_to_repaired(p: &Paths) -> Result<()> {
    let damaged = match crate::safe_read::read_regular(&p.damaged) {
        Ok(b) => parse_damaged(&b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &p.damaged, e)),
    };
    merge_repaired(p, damaged)?;
    remove_file_if_present(&p.damaged)
}

/// Adds `paths` to the repaired list of `ns/pvc` in `week`: files sent again from the
/// snapshot whose size and mtime did not change (another week's damage list named their
/// inode), which offsite step 1 must send again too.
///
/// # Errors
/// When the list cannot be written.
pub fn add_repaired(
    root: &BackupRoot,
    week: IsoWeek,
    ns: &str,
    pvc: &str,
    paths: &[Vec<u8>],
) -> Result<()> {
    merge_repaired(&Paths::new(root, week, ns, pvc), paths.to_vec())
}

fn merge_repaired(p: &Paths, paths: Vec<Vec<u8>>) -> Result<()> {
    let mut all: std::collections::BTreeSet<Vec<u8>> = crate::safe_read::read_regular(&p.repaired)
        .map(|b| parse_damaged(&b))
        .unwrap_or_default()
        .into_iter()
        .collect();
    all.extend(paths);
    if let Some(parent) = p.repaired.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    write_atomic(
        &p.repaired,
        &encode_damaged(&all.into_iter().collect::<Vec<_>>()),
    )
}

/// The paths of `ns/pvc` in `week` repaired since offsite step 1 last sent them (empty: none).
pub fn repaired(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Vec<Vec<u8>> {
    crate::safe_read::read_regular(root.pvc_repaired(week, ns, pvc))
        .map(|b| parse_damaged(&b))
        .unwrap_or_default()
}

/// Clears the repaired list of a version once offsite step 1 has sent those paths again.
///
/// # Errors
/// When it cannot be removed.
pub fn clear_repaired(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Result<()> {
    remove_file_if_present(&root.pvc_repaired(week, ns, pvc))
}

/// What [`recover_all`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// What was finished, dropped or removed, one line a version (`ns/pvc: …`).
    pub said: Vec<String>,
    /// Versions that could not be recovered (a damaged journal, an I/O error): (week,
    /// namespace, pvc, why). Their copy may be half swapped: never send them.
    pub failed: Vec<(IsoWeek, String, String, String)>,
}

/// Finishes or drops every update a killed run left, in every week ([`recover`] per version
/// with anything staged): the last run of a week killed mid-swap is finished even when no run
/// of that week comes again. A version that cannot be recovered is reported, never the end of
/// the others.
pub fn recover_all(root: &BackupRoot) -> Recovered {
    let names = |dir: &Utf8Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    };
    let mut out = Recovered::default();
    for w in names(&root.root().join("pvc-data")) {
        let Ok(week) = w.parse::<IsoWeek>() else {
            continue;
        };
        let staging = root.pvc_week(week).join(".staging");
        let mut versions = std::collections::BTreeSet::new();
        for part in ["tree", "record", "commit"] {
            for ns in names(&staging.join(part)) {
                for pvc in names(&staging.join(part).join(&ns)) {
                    versions.insert((ns.clone(), pvc));
                }
            }
        }
        for (ns, pvc) in versions {
            match recover(root, week, &ns, &pvc) {
                Ok(Some(s)) => out.said.push(format!("{ns}/{pvc}: {s}")),
                Ok(None) => {}
                Err(e) => out.failed.push((week, ns, pvc, e.to_string())),
            }
        }
    }
    out
}

/// Swaps `tree` in at `copy`: an exchange when `copy` exists (the old copy then sits at
/// `tree`), a rename that never replaces anything when it does not.
fn swap_in(tree: &Utf8Path, copy: &Utf8Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let exists = std::fs::symlink_metadata(copy).is_ok();
    if !exists {
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
        }
    }
    let flags = if exists {
        RenameFlags::EXCHANGE
    } else {
        RenameFlags::NOREPLACE
    };
    renameat_with(CWD, tree.as_std_path(), CWD, copy.as_std_path(), flags)
        .map_err(|e| Error::io("swap the new copy in at", copy, e.into()))
}

/// Finishes or drops a commit that a killed run left half done, and removes what a killed
/// run staged. Returns what it did when there was something to say.
///
/// # Errors
/// When a leftover cannot be removed or the marker written.
pub fn recover(root: &BackupRoot, week: IsoWeek, ns: &str, pvc: &str) -> Result<Option<String>> {
    let p = Paths::new(root, week, ns, pvc);
    let said = match crate::safe_read::read_regular_string(&p.journal) {
        Ok(text) => {
            let Some(j) = Journal::decode(&text) else {
                return Err(Error::Refused(format!(
                    "{}: a damaged commit journal; the version {week} of {ns}/{pvc} may be \
                     half swapped. Remove the journal to let the next run copy it again",
                    p.journal
                )));
            };
            if j.swapped(&p) {
                finish(&p, &j)?;
                Some(format!(
                    "finished the update of week {week} that an interrupted run had swapped in"
                ))
            } else {
                // never swapped: the copy, record and marker are the old ones, complete
                remove_file_if_present(&p.journal)?;
                Some(format!(
                    "dropped the update of week {week} an interrupted run had not swapped in"
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read", &p.journal, e)),
    };
    let leftover = p.tree.exists() || p.next_record.exists();
    remove_tree(&p.tree)?;
    remove_file_if_present(&p.next_record)?;
    Ok(said.or_else(|| {
        leftover.then(|| {
            format!("removed the unfinished update of week {week} an interrupted run left")
        })
    }))
}

/// The paths of a version `backupctl verify` found damaged (empty: none).
pub fn parse_damaged(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The damage list's bytes: the paths NUL-separated.
pub fn encode_damaged(paths: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, BackupRoot, IsoWeek) {
        let d = tempfile::tempdir().unwrap();
        let root = BackupRoot::new(Utf8Path::from_path(d.path()).unwrap());
        (d, root, "2026-02".parse().unwrap())
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_commit_swaps_the_tree_the_record_and_the_marker() {
        let (_d, root, w) = setup();
        let p = Paths::new(&root, w, "ns", "p");
        std::fs::create_dir_all(&p.copy).unwrap();
        std::fs::write(p.copy.join("f"), "old").unwrap();
        write_atomic(&p.record, b"old record").unwrap();
        write_atomic(&p.marker, b"2026-01-05T05:00:00Z\n").unwrap();
        write_atomic(&p.damaged, b"f\0").unwrap();
        let tree = fresh_staging_tree(&root, w, "ns", "p").unwrap();
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("f"), "new").unwrap();
        commit(
            &root,
            w,
            "ns",
            "p",
            b"new record",
            at("2026-01-06T05:00:00Z"),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(p.copy.join("f")).unwrap(), "new");
        assert_eq!(std::fs::read(&p.record).unwrap(), b"new record");
        assert!(std::fs::read_to_string(&p.marker)
            .unwrap()
            .starts_with("2026-01-06"));
        assert!(!p.tree.exists() && !p.journal.exists() && !p.damaged.exists());
        // the replaced copy is kept as the spare, and the next update starts from it
        assert_eq!(std::fs::read_to_string(p.spare.join("f")).unwrap(), "old");
        // the next week's first run takes it
        let next: IsoWeek = "2026-03".parse().unwrap();
        let (tree, reused) = staging_tree_from_spare(&root, next, "ns", "p", Some(w)).unwrap();
        assert!(reused && !p.spare.exists());
        assert_eq!(tree, Paths::new(&root, next, "ns", "p").tree);
        assert_eq!(std::fs::read_to_string(tree.join("f")).unwrap(), "old");
        // without a spare, an empty place
        std::fs::remove_dir_all(&tree).unwrap();
        let (tree, reused) = staging_tree_from_spare(&root, w, "ns", "p", None).unwrap();
        assert!(!reused && !tree.exists());
    }

    #[test]
    fn recovery_finishes_a_swapped_commit_and_undoes_an_unswapped_one() {
        for swapped in [false, true] {
            let (_d, root, w) = setup();
            let p = Paths::new(&root, w, "ns", "p");
            std::fs::create_dir_all(&p.copy).unwrap();
            std::fs::write(p.copy.join("f"), "old").unwrap();
            write_atomic(&p.record, b"old record").unwrap();
            let tree = fresh_staging_tree(&root, w, "ns", "p").unwrap();
            std::fs::create_dir(&tree).unwrap();
            std::fs::write(tree.join("f"), "new").unwrap();
            write_atomic(&p.next_record, b"new record").unwrap();
            write_atomic(&p.marker, b"2026-01-05T05:00:00Z\n").unwrap();
            let j = Journal {
                new_tree_inode: inode(&tree).unwrap(),
                new_marker: "2026-01-06T05:00:00Z".to_owned(),
            };
            write_atomic(&p.journal, j.encode().as_bytes()).unwrap();
            // the run died after the journal (and maybe after the swap)
            if swapped {
                swap_in(&p.tree, &p.copy).unwrap();
                // meanwhile a reader takes the record that goes with the copy
                assert_eq!(record_path(&root, w, "ns", "p"), p.next_record);
            } else {
                assert_eq!(record_path(&root, w, "ns", "p"), p.record);
            }
            let said = recover(&root, w, "ns", "p").unwrap().unwrap();
            let (content, record, marker) = if swapped {
                ("new", "new record", "2026-01-06")
            } else {
                ("old", "old record", "2026-01-05")
            };
            assert!(said.contains(if swapped { "finished" } else { "dropped" }));
            assert_eq!(std::fs::read_to_string(p.copy.join("f")).unwrap(), content);
            assert_eq!(std::fs::read_to_string(&p.record).unwrap(), record);
            assert!(std::fs::read_to_string(&p.marker)
                .unwrap()
                .starts_with(marker));
            assert!(!p.tree.exists() && !p.journal.exists() && !p.next_record.exists());
        }
    }

    #[test]
    fn damage_lists_round_trip() {
        let paths = vec![b"a".to_vec(), b"dir/with\nnewline".to_vec()];
        assert_eq!(parse_damaged(&encode_damaged(&paths)), paths);
        assert!(parse_damaged(b"").is_empty());
    }
}
