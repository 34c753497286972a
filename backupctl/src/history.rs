//! `backupctl find`, `diff` and `ls`: the questions asked during a restore ("which week still
//! has the file I deleted on Tuesday?", "what changed between these weeks?", "what did this
//! folder hold?"), answered from the per-file records of the complete versions, without walking
//! the copies.

use backup_core::{
    BackupStore, Comparison, EntryField, EntryKind, FileEntry, IsoWeek, Series, WeekVersion,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::check::show;
use crate::inventory::record;
use crate::PvcRef;
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::human;
use backup_run::{Context, Outcome};

/// One entry of one version, as the record holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The week.
    pub week: String,
    /// `NAMESPACE/PVC`.
    pub pvc: String,
    /// The path inside the volume.
    pub path: String,
    /// `file`, `folder`, `symlink`, `special`.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: DateTime<Utc>,
    /// Mode bits (permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Where a symlink points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn kind(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "folder",
        EntryKind::Symlink => "symlink",
        EntryKind::Special => "special",
    }
}

fn found(v: &WeekVersion, e: &FileEntry) -> Found {
    found_in(
        v.week.to_string(),
        format!("{}/{}", v.namespace, v.pvc),
        &backup_core::RecordEntry {
            path: &e.path,
            link_target: &e.link_target,
            fields: FileEntry {
                path: Vec::new(),
                link_target: Vec::new(),
                ..e.clone()
            },
        },
    )
}

fn found_in(week: String, pvc: String, e: &backup_core::RecordEntry<'_>) -> Found {
    let f = &e.fields;
    Found {
        week,
        pvc,
        path: show(e.path),
        kind: kind(f.kind),
        size: f.size,
        mtime: DateTime::from_timestamp_nanos(f.mtime_ns),
        mode: f.mode & 0o7777,
        uid: f.uid,
        gid: f.gid,
        target: (f.kind == EntryKind::Symlink).then(|| show(e.link_target)),
    }
}

/// A `find` pattern: with a `/` it matches the whole path inside the volume (`db/*.sqlite3`),
/// without one the last component (`*.sqlite3`), like `find -path` and `find -name`. `*` stays
/// within one folder and `**` crosses folders, as in gitignore and restic
/// ([`backup_core::path_glob_match`]).
fn matches(pattern: &str, path: &[u8]) -> bool {
    let p = pattern.trim_start_matches('/').as_bytes();
    if p.contains(&b'/') || p.windows(2).any(|w| w == b"**") {
        backup_core::path_glob_match(p, path)
    } else {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        backup_core::path_glob_match(p, name)
    }
}

/// A `--pvc` resolved: the reference as given (for messages) and the PVC it names.
type Wanted<'p> = (&'p PvcRef, (String, String));

/// The store and `--pvc` resolved to `NAMESPACE/PVC` (a volume name through the PV map).
///
/// # Errors
/// Without a backup root; a `--pvc` that names no known PVC.
fn store_and_pvc<'c, 'p>(
    ctx: &'c Context<'_>,
    pvc: Option<&'p PvcRef>,
) -> Result<(Box<dyn BackupStore + 'c>, Option<Wanted<'p>>)> {
    let store = ctx.store()?;
    let want = pvc.map(|p| p.resolve(ctx).map(|r| (p, r))).transpose()?;
    Ok((store, want))
}

/// The weeks holding a complete version (of the PVC `want`; of any without), oldest first.
///
/// # Errors
/// A `want` that has no version at all (named with the closest PVCs); a listing that fails.
fn complete_weeks(
    store: &dyn BackupStore,
    want: Option<&(String, String)>,
) -> Result<Vec<IsoWeek>> {
    let listed = store.list_versions(Series::Pvc)?;
    if let Some(e) = want.and_then(|(ns, p)| crate::pvc_ref::unknown_pvc(&listed, (ns, p))) {
        return Err(e);
    }
    let mut weeks: Vec<IsoWeek> = listed
        .iter()
        .filter(|v| v.is_complete())
        .filter(|v| want.is_none_or(|(ns, p)| &v.namespace == ns && &v.pvc == p))
        .map(|v| v.week)
        .collect();
    weeks.sort_unstable();
    weeks.dedup();
    Ok(weeks)
}

/// " of NAMESPACE/PVC" for messages, or nothing.
fn of(want: Option<&(String, String)>) -> String {
    want.map_or(String::new(), |(ns, p)| format!(" of {ns}/{p}"))
}

/// The complete versions chosen by `--pvc` and `--week`, oldest first, with their records.
fn versions(
    store: &dyn BackupStore,
    want: Option<&(String, String)>,
    week: Option<IsoWeek>,
) -> Result<Vec<(WeekVersion, Vec<FileEntry>)>> {
    versions_with(store, want, week, |store, v| record(store, v))
}

/// [`versions`], each record read by `read` (`None`: no usable record, left out).
fn versions_with<T: Send>(
    store: &dyn BackupStore,
    want: Option<&(String, String)>,
    week: Option<IsoWeek>,
    read: impl Fn(&dyn BackupStore, &WeekVersion) -> Option<T> + Sync,
) -> Result<Vec<(WeekVersion, T)>> {
    let listed = store.list_versions(Series::Pvc)?;
    if let Some(e) = want.and_then(|(ns, p)| crate::pvc_ref::unknown_pvc(&listed, (ns, p))) {
        return Err(e);
    }
    let mut chosen: Vec<WeekVersion> = listed
        .into_iter()
        .filter(WeekVersion::is_complete)
        .filter(|v| week.is_none_or(|w| v.week == w))
        .filter(|v| want.is_none_or(|(ns, p)| &v.namespace == ns && &v.pvc == p))
        .collect();
    if chosen.is_empty() {
        return Err(Error::NotFound(format!(
            "no complete version{}{}: `backupctl list` shows them",
            want.map_or(String::new(), |(ns, p)| format!(" of {ns}/{p}")),
            week.map_or(String::new(), |w| format!(" in week {w}"))
        )));
    }
    chosen.sort_by(|a, b| (&a.namespace, &a.pvc, a.week).cmp(&(&b.namespace, &b.pvc, b.week)));
    // records decode independently: one thread per core
    let read = &read;
    let records: Vec<Option<T>> = std::thread::scope(|s| {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = chosen.len().div_ceil(workers).max(1);
        let handles: Vec<_> = chosen
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|v| read(store, v)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    Ok(chosen
        .into_iter()
        .zip(records)
        .filter_map(|(v, r)| r.map(|r| (v, r)))
        .collect())
}

/// `backupctl find`.
#[derive(Debug, Clone, Serialize)]
pub struct FindReport {
    /// The pattern.
    pub pattern: String,
    /// Versions searched.
    pub versions: usize,
    /// Every matching entry of every version, by PVC, path, week.
    pub found: Vec<Found>,
}

/// Every version holding a path that matches `pattern`.
///
/// # Errors
/// No complete version matches `--pvc`/`--week`.
pub fn find(
    ctx: &Context<'_>,
    pattern: &str,
    pvc: Option<&PvcRef>,
    week: Option<IsoWeek>,
) -> Result<FindReport> {
    let (store, want) = store_and_pvc(ctx, pvc)?;
    find_in(store.as_ref(), pattern, want.map(|w| w.1).as_ref(), week)
}

/// [`find`] in `store`, of the PVC `want` (all without).
///
/// # Errors
/// No complete version matches.
fn find_in(
    store: &dyn BackupStore,
    pattern: &str,
    want: Option<&(String, String)>,
    week: Option<IsoWeek>,
) -> Result<FindReport> {
    // only the matches leave the record's bytes
    let all = versions_with(store, want, week, |store, v| {
        let file = backup_core::StoreFile::Record(v.week, &v.namespace, &v.pvc);
        let bytes = store.read(file).ok()??;
        let (week, pvc) = (v.week.to_string(), format!("{}/{}", v.namespace, v.pvc));
        let mut hits = Vec::new();
        backup_core::visit_record(&bytes, |e| {
            if e.path != b"." && matches(pattern, e.path) {
                hits.push(found_in(week.clone(), pvc.clone(), &e));
            }
        })
        .ok()?;
        Some(hits)
    })?;
    let versions = all.len();
    let mut hits: Vec<Found> = all.into_iter().flat_map(|(_, h)| h).collect();
    hits.sort_by(|a, b| (&a.pvc, &a.path, &a.week).cmp(&(&b.pvc, &b.path, &b.week)));
    Ok(FindReport {
        pattern: pattern.to_owned(),
        versions,
        found: hits,
    })
}

fn when(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

impl Outcome for FindReport {
    fn exit(&self) -> Exit {
        if self.found.is_empty() {
            Exit::NotFound
        } else {
            Exit::Success
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        let mut last: Option<(&str, &str)> = None;
        for f in &self.found {
            if last != Some((&f.pvc, &f.path)) {
                out.push_str(&format!("{}  {}\n", f.pvc, f.path));
                last = Some((&f.pvc, &f.path));
            }
            out.push_str(&format!(
                "  {}  {:>10}  {}\n",
                f.week,
                if f.kind == "file" {
                    human::bytes(f.size)
                } else {
                    f.kind.to_owned()
                },
                when(f.mtime)
            ));
        }
        let paths = {
            let mut p: Vec<(&str, &str)> = self
                .found
                .iter()
                .map(|f| (f.pvc.as_str(), f.path.as_str()))
                .collect();
            p.dedup();
            p.len() as u64
        };
        out.push_str(&format!(
            "find {}: {} in {} searched",
            self.pattern,
            human::plural(paths, "matching path"),
            human::plural(self.versions as u64, "version")
        ));
        out
    }
}

/// How a path differs between two weeks.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `NAMESPACE/PVC`.
    pub pvc: String,
    /// The path inside the volume.
    pub path: String,
    /// `added`, `removed`, `content` (the bytes changed), `metadata` (mode, owner, time,
    /// xattrs, link target, type).
    pub change: &'static str,
    /// What differs, for `metadata` and `content`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
}

/// `backupctl diff`.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The older week.
    pub from: String,
    /// The newer week.
    pub to: String,
    /// PVCs compared (a complete version in both weeks).
    pub pvcs: usize,
    /// Every path that differs.
    pub changes: Vec<Change>,
    /// PVCs with a complete version in only one of the two weeks: not compared.
    pub not_compared: Vec<NotCompared>,
}

/// A PVC `diff` could not compare: it has no complete version in `missing_in`, or that
/// version's record cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct NotCompared {
    /// `NAMESPACE/PVC`.
    pub pvc: String,
    /// The week without a complete version of it (or without a usable record).
    pub missing_in: String,
    /// Why, in words.
    pub why: String,
}

/// True when two records' entries for one path hold different content: their digests differ
/// (or, across the record format change, where one is an md5 and the other not, they are not
/// the same inode of the same size: a file carried over unchanged keeps its inode).
fn content_differs(x: &FileEntry, y: &FileEntry) -> bool {
    x.size != y.size
        || if x.digest_kind == y.digest_kind {
            x.digest != y.digest
        } else {
            x.inode != y.inode
        }
}

fn metadata_changes(a: &FileEntry, b: &FileEntry) -> Vec<String> {
    let mut fields = Comparison::HISTORY.differences(a, b);
    // the order `diff` shows them in: what the entry is, who may read it, then its times
    fields.sort_by_key(|f| match f {
        EntryField::Kind => 0,
        EntryField::Mode => 1,
        EntryField::Owner => 2,
        EntryField::LinkTarget => 3,
        EntryField::Xattrs => 4,
        _ => 5,
    });
    fields
        .into_iter()
        .map(|field| match field {
            EntryField::Kind => format!("{} → {}", kind(a.kind), kind(b.kind)),
            EntryField::Mode => format!("mode {:o} → {:o}", a.mode & 0o7777, b.mode & 0o7777),
            EntryField::Owner => format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid),
            EntryField::LinkTarget => {
                format!("target {} → {}", show(&a.link_target), show(&b.link_target))
            }
            EntryField::Xattrs => "xattrs".to_owned(),
            EntryField::Mtime => "mtime".to_owned(),
            EntryField::Size => "size".to_owned(),
            EntryField::Rdev => "device number".to_owned(),
            EntryField::Identity => "inode".to_owned(),
        })
        .collect()
}

fn by_path(rec: &[FileEntry]) -> std::collections::BTreeMap<&[u8], &FileEntry> {
    rec.iter().map(|e| (e.path.as_slice(), e)).collect()
}

/// What changed from week `from` to week `to`, per PVC.
///
/// # Errors
/// Neither week has a complete version (of `--pvc`).
pub fn diff(
    ctx: &Context<'_>,
    from: Option<IsoWeek>,
    to: Option<IsoWeek>,
    pvc: Option<&PvcRef>,
) -> Result<DiffReport> {
    let (store, want) = store_and_pvc(ctx, pvc)?;
    let (from, to) = diff_weeks(store.as_ref(), from, to, want.as_ref().map(|w| &w.1))?;
    diff_in(store.as_ref(), from, to, want)
}

/// `--from` and `--to` with their defaults: the newest complete week, and the complete week
/// before `--to`.
///
/// # Errors
/// No complete version at all, or none before `--to`.
fn diff_weeks(
    store: &dyn BackupStore,
    from: Option<IsoWeek>,
    to: Option<IsoWeek>,
    want: Option<&(String, String)>,
) -> Result<(IsoWeek, IsoWeek)> {
    let ordered = |f: IsoWeek, t: IsoWeek| {
        if f < t {
            Ok((f, t))
        } else {
            Err(Error::Usage(format!(
                "diff compares an older week with a newer one: got --from {f} --to {t}{}",
                if f == t {
                    " (the newest complete week: give an older --from)"
                } else {
                    " (swap them)"
                }
            )))
        }
    };
    if let (Some(f), Some(t)) = (from, to) {
        return ordered(f, t);
    }
    let weeks = complete_weeks(store, want)?;
    let to = match to {
        Some(t) => t,
        None => *weeks.last().ok_or_else(|| {
            Error::NotFound(format!(
                "no complete version{}: `backupctl list` shows them",
                of(want)
            ))
        })?,
    };
    let from = match from {
        Some(f) => f,
        None => weeks
            .iter()
            .rev()
            .copied()
            .find(|w| *w < to)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no complete version{} before week {to}: nothing to compare it with",
                    of(want)
                ))
            })?,
    };
    ordered(from, to)
}

/// [`diff`] in `store`, of the PVC `want` (all without).
///
/// # Errors
/// Neither week has a complete version.
fn diff_in(
    store: &dyn BackupStore,
    from: IsoWeek,
    to: IsoWeek,
    want: Option<Wanted<'_>>,
) -> Result<DiffReport> {
    let pvc = want.as_ref().map(|w| w.0);
    // every complete version, also one whose record cannot be read (said so, not "missing")
    let complete: std::collections::BTreeSet<(String, IsoWeek)> = store
        .list_versions(Series::Pvc)?
        .into_iter()
        .filter(WeekVersion::is_complete)
        .map(|v| (format!("{}/{}", v.namespace, v.pvc), v.week))
        .collect();
    let all = versions(store, want.as_ref().map(|w| &w.1), None)?;
    let of = |w: IsoWeek| -> std::collections::BTreeMap<String, &Vec<FileEntry>> {
        all.iter()
            .filter(|(v, _)| v.week == w)
            .map(|(v, r)| (format!("{}/{}", v.namespace, v.pvc), r))
            .collect()
    };
    let (a, b) = (of(from), of(to));
    for (w, m) in [(from, &a), (to, &b)] {
        if m.is_empty() {
            return Err(Error::NotFound(format!(
                "no complete version in week {w}{}: `backupctl list` shows the weeks",
                pvc.map_or(String::new(), |p| format!(" of {p}"))
            )));
        }
    }
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let mut changes = Vec::new();
    let mut not_compared = Vec::new();
    for name in &names {
        // a PVC missing from one week is said so, not listed as every path added or removed
        let (Some(old), Some(new)) = (a.get(*name), b.get(*name)) else {
            let week = if a.contains_key(*name) { to } else { from };
            let why = if complete.contains(&((*name).clone(), week)) {
                format!(
                    "its record in week {week} cannot be read (`backupctl verify --pvc {name} \
                     --week {week}` says why)"
                )
            } else {
                format!("no complete version in week {week}")
            };
            not_compared.push(NotCompared {
                pvc: (*name).clone(),
                missing_in: week.to_string(),
                why,
            });
            continue;
        };
        compare(name, &by_path(old), &by_path(new), &mut changes);
    }
    Ok(DiffReport {
        from: from.to_string(),
        to: to.to_string(),
        pvcs: names.len() - not_compared.len(),
        changes,
        not_compared,
    })
}

/// The changes of one PVC (`name`) from the version `old` to `new`, by path.
fn compare(
    name: &str,
    old: &std::collections::BTreeMap<&[u8], &FileEntry>,
    new: &std::collections::BTreeMap<&[u8], &FileEntry>,
    changes: &mut Vec<Change>,
) {
    let mut paths: Vec<&[u8]> = old.keys().chain(new.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    for p in paths.into_iter().filter(|p| *p != b".") {
        let change = |change, what| Change {
            pvc: name.to_owned(),
            path: show(p),
            change,
            what,
        };
        match (old.get(p), new.get(p)) {
            (None, Some(_)) => changes.push(change("added", Vec::new())),
            (Some(_), None) => changes.push(change("removed", Vec::new())),
            (Some(x), Some(y)) => {
                let meta = metadata_changes(x, y);
                if x.kind == EntryKind::File && content_differs(x, y) {
                    let mut what = vec![format!(
                        "{} → {}",
                        human::bytes(x.size),
                        human::bytes(y.size)
                    )];
                    what.extend(meta.into_iter().filter(|m| m != "mtime"));
                    changes.push(change("content", what));
                } else if !meta.is_empty() {
                    changes.push(change("metadata", meta));
                }
            }
            (None, None) => {}
        }
    }
}

impl Outcome for DiffReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        let mut last = "";
        for c in &self.changes {
            if c.pvc != last {
                out.push_str(&format!("{}\n", c.pvc));
                last = &c.pvc;
            }
            let mark = match c.change {
                "added" => "+",
                "removed" => "-",
                "content" => "M",
                _ => "m",
            };
            out.push_str(&format!("  {mark} {}", c.path));
            if !c.what.is_empty() {
                out.push_str(&format!("  ({})", c.what.join(", ")));
            }
            out.push('\n');
        }
        for n in &self.not_compared {
            out.push_str(&format!("{}\n  not compared: {}\n", n.pvc, n.why));
        }
        let count = |k: &str| self.changes.iter().filter(|c| c.change == k).count() as u64;
        out.push_str(&format!(
            "diff {} → {}: {} added, {} removed, {} changed in content, {} in metadata only \
             ({} compared)",
            self.from,
            self.to,
            count("added"),
            count("removed"),
            count("content"),
            count("metadata"),
            human::plural(self.pvcs as u64, "PVC")
        ));
        if !self.not_compared.is_empty() {
            out.push_str(&format!(
                "; {} not compared",
                human::plural(self.not_compared.len() as u64, "PVC")
            ));
        }
        out
    }
}

/// `backupctl ls`.
#[derive(Debug, Clone, Serialize)]
pub struct LsReport {
    /// The week.
    pub week: String,
    /// `NAMESPACE/PVC`.
    pub pvc: String,
    /// The folder listed (`.` for the volume's root).
    pub folder: String,
    /// Its entries, by name.
    pub entries: Vec<Found>,
}

/// The folder `path` of a version as it was: its entries with owners, modes, sizes and times.
///
/// # Errors
/// No such version, or no such folder in it.
pub fn ls(
    ctx: &Context<'_>,
    week: Option<IsoWeek>,
    pvc: &PvcRef,
    path: Option<&str>,
) -> Result<LsReport> {
    let (store, want) = store_and_pvc(ctx, Some(pvc))?;
    let want = want.map(|w| w.1);
    ls_in(store.as_ref(), week, pvc, want.as_ref(), path)
}

/// [`ls`] in `store` of the PVC `want` (`pvc` as given, for messages).
///
/// # Errors
/// No complete version of that week; a path that is not a folder of it.
fn ls_in(
    store: &dyn BackupStore,
    week: Option<IsoWeek>,
    pvc: &PvcRef,
    want: Option<&(String, String)>,
    path: Option<&str>,
) -> Result<LsReport> {
    let week = match week {
        Some(w) => w,
        None => *complete_weeks(store, want)?.last().ok_or_else(|| {
            Error::NotFound(format!(
                "no complete version of {pvc}: `backupctl list` shows them"
            ))
        })?,
    };
    let all = versions(store, want, Some(week))?;
    let (v, rec) = all
        .first()
        .ok_or_else(|| Error::Refused(format!("week {week} of {pvc} has no usable record")))?;
    let folder = path
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty() && *p != ".")
        .unwrap_or(".");
    let prefix = if folder == "." {
        Vec::new()
    } else {
        format!("{folder}/").into_bytes()
    };
    let is_dir = folder == "."
        || rec
            .iter()
            .any(|e| e.path == folder.as_bytes() && e.kind == EntryKind::Dir);
    if !is_dir {
        let what = if rec.iter().any(|e| e.path == folder.as_bytes()) {
            "is not a folder"
        } else {
            "is not in it"
        };
        return Err(Error::NotFound(format!(
            "{folder} {what} (week {week} of {}/{}): `backupctl find` searches every week",
            v.namespace, v.pvc
        )));
    }
    let entries = rec
        .iter()
        .filter(|e| {
            e.path != b"." && e.path.starts_with(&prefix) && !e.path[prefix.len()..].contains(&b'/')
        })
        .map(|e| found(v, e))
        .collect();
    Ok(LsReport {
        week: v.week.to_string(),
        pvc: format!("{}/{}", v.namespace, v.pvc),
        folder: folder.to_owned(),
        entries,
    })
}

/// `rwxr-x---` with the type letter first, as `ls -l` writes it.
fn mode_string(kind: &str, mode: u32) -> String {
    let t = match kind {
        "folder" => 'd',
        "symlink" => 'l',
        "special" => '?',
        _ => '-',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 0o400 >> i;
        let mut ch = if mode & bit != 0 { c } else { '-' };
        // set-uid, set-gid, sticky
        if i == 2 && mode & 0o4000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 5 && mode & 0o2000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 8 && mode & 0o1000 != 0 {
            ch = if ch == 'x' { 't' } else { 'T' };
        }
        s.push(ch);
    }
    s
}

impl Outcome for LsReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = format!("{} {} {}:\n", self.pvc, self.week, self.folder);
        for e in &self.entries {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            out.push_str(&format!(
                "{} {:>5}:{:<5} {:>10}  {}  {name}{}\n",
                mode_string(e.kind, e.mode),
                e.uid,
                e.gid,
                human::bytes(e.size),
                when(e.mtime),
                e.target
                    .as_ref()
                    .map_or(String::new(), |t| format!(" -> {t}"))
            ));
        }
        out.push_str(&human::plural(self.entries.len() as u64, "entry"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use backup_core::testing::{file_entry, FakeStore, Transcript};
    use chrono::TimeZone;

    /// A store with complete versions of `vaultwarden/data` in weeks 9 and 10, each with its
    /// record; `edit` changes week 10's entries.
    fn two_weeks(edit: impl Fn(&mut Vec<FileEntry>)) -> FakeStore {
        let store = FakeStore::new("/b".into(), &Transcript::default());
        let dir = |p: &str| FileEntry {
            kind: EntryKind::Dir,
            mode: 0o040_755,
            ..file_entry(p, 0)
        };
        let file = |p: &str, size, digest| FileEntry {
            digest: [digest; 16],
            ..file_entry(p, size)
        };
        let week9 = vec![
            dir("."),
            dir("attachments"),
            file("attachments/a.pdf", 10, 1),
            file("db.sqlite3", 100, 2),
        ];
        let mut week10 = week9.clone();
        edit(&mut week10);
        for (w, rec, day) in [("2026-09", &week9, 1), ("2026-10", &week10, 8)] {
            let week: IsoWeek = w.parse().unwrap();
            let at = Utc.with_ymd_and_hms(2026, 3, day, 3, 0, 0).unwrap();
            store.add_version(Series::Pvc, week, "vaultwarden", "data", Some(at));
            let file = backup_core::StoreFile::Record(week, "vaultwarden", "data");
            store
                .write(file, &backup_core::encode_file_record(rec))
                .unwrap();
        }
        store
    }

    fn want() -> (String, String) {
        ("vaultwarden".into(), "data".into())
    }

    #[test]
    fn find_lists_every_week_that_holds_a_match_by_path_then_week() {
        let store = two_weeks(|_| {});
        let r = find_in(&store, "*.pdf", None, None).unwrap();
        assert_eq!(r.versions, 2);
        let hits: Vec<(&str, &str)> = r
            .found
            .iter()
            .map(|f| (f.path.as_str(), f.week.as_str()))
            .collect();
        assert_eq!(
            hits,
            [
                ("attachments/a.pdf", "2026-09"),
                ("attachments/a.pdf", "2026-10")
            ]
        );
        let e = find_in(&store, "*", Some(&("x".into(), "y".into())), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("no PVC `x/y` has a version on the backup disk"),
            "{e}"
        );
    }

    #[test]
    fn ls_and_diff_default_to_the_newest_weeks_and_say_what_they_cannot_compare() {
        let store = two_weeks(|r| r.retain(|e| e.path != b"db.sqlite3"));
        let pvc: PvcRef = "vaultwarden/data".parse().unwrap();
        let r = ls_in(&store, None, &pvc, Some(&want()), None).unwrap();
        assert_eq!(r.week, "2026-10");
        let (from, to) = diff_weeks(&store, None, None, Some(&want())).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-09".into(), "2026-10".into())
        );
        let w9: IsoWeek = "2026-09".parse().unwrap();
        let e = diff_weeks(&store, None, Some(w9), Some(&want())).unwrap_err();
        assert!(e.to_string().contains("before week 2026-09"), "{e}");
        // a PVC that has a complete version in week 10 only
        let w10: IsoWeek = "2026-10".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 3, 8, 3, 0, 0).unwrap();
        store.add_version(Series::Pvc, w10, "gitea", "repos", Some(at));
        let rec = vec![file_entry("repo.git", 7)];
        let file = backup_core::StoreFile::Record(w10, "gitea", "repos");
        store
            .write(file, &backup_core::encode_file_record(&rec))
            .unwrap();
        let r = diff_in(&store, from, to, None).unwrap();
        assert!(r.changes.iter().all(|c| c.pvc == "vaultwarden/data"));
        assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
        assert_eq!(r.pvcs, 1);
        let text = r.text(false);
        assert!(
            text.contains("gitea/repos\n  not compared: no complete version in week 2026-09\n"),
            "{text}"
        );
        assert!(
            text.ends_with("(1 PVC compared); 1 PVC not compared"),
            "{text}"
        );
        // a record that cannot be read is said so, not taken for a missing version
        store.add_version(Series::Pvc, w9, "gitea", "repos", Some(at));
        let file = backup_core::StoreFile::Record(w9, "gitea", "repos");
        store.write(file, b"not a record").unwrap();
        let text = diff_in(&store, from, to, None).unwrap().text(false);
        assert!(
            text.contains("gitea/repos\n  not compared: its record in week 2026-09 cannot be read"),
            "{text}"
        );
        // an older week first, never the same twice
        for (f, t, says) in [
            (
                Some(w10),
                None,
                "the newest complete week: give an older --from",
            ),
            (
                Some(w10),
                Some(w9),
                "got --from 2026-10 --to 2026-09 (swap them)",
            ),
            (Some(w9), Some(w9), "got --from 2026-09 --to 2026-09"),
        ] {
            let e = diff_weeks(&store, f, t, Some(&want()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn diff_names_what_was_added_removed_rewritten_and_changed_in_place() {
        let store = two_weeks(|r| {
            r.retain(|e| e.path != b"attachments/a.pdf");
            r.push(FileEntry {
                digest: [3; 16],
                ..file_entry("attachments/b.pdf", 5)
            });
            let db = r.iter_mut().find(|e| e.path == b"db.sqlite3").unwrap();
            db.digest = [9; 16];
            db.mode = 0o100_600;
            r.sort_by(|a, b| a.path.cmp(&b.path));
        });
        let (w9, w10) = ("2026-09".parse().unwrap(), "2026-10".parse().unwrap());
        let pvc: PvcRef = "vaultwarden/data".parse().unwrap();
        let r = diff_in(&store, w9, w10, Some((&pvc, want()))).unwrap();
        let changes: Vec<(&str, &str, String)> = r
            .changes
            .iter()
            .map(|c| (c.path.as_str(), c.change, c.what.join("; ")))
            .collect();
        assert_eq!(
            changes,
            [
                ("attachments/a.pdf", "removed", String::new()),
                ("attachments/b.pdf", "added", String::new()),
                (
                    "db.sqlite3",
                    "content",
                    "100 B → 100 B; mode 644 → 600".to_owned()
                ),
            ]
        );
        let e = diff_in(&store, w9, "2026-11".parse().unwrap(), Some((&pvc, want()))).unwrap_err();
        assert!(
            e.to_string()
                .contains("no complete version in week 2026-11 of vaultwarden/data"),
            "{e}"
        );
    }

    #[test]
    fn ls_lists_a_folder_and_refuses_a_file() {
        let store = two_weeks(|_| {});
        let pvc: PvcRef = "vaultwarden/data".parse().unwrap();
        let week = "2026-10".parse().unwrap();
        let r = ls_in(&store, Some(week), &pvc, Some(&want()), Some("attachments")).unwrap();
        let names: Vec<&str> = r.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["attachments/a.pdf"]);
        let e = ls_in(&store, Some(week), &pvc, Some(&want()), Some("db.sqlite3")).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }

    /// `diff`'s metadata lines as they were written before the one comparison, as the oracle.
    fn metadata_changes_before(a: &FileEntry, b: &FileEntry) -> Vec<String> {
        let mut d = Vec::new();
        if a.kind != b.kind {
            d.push(format!("{} → {}", kind(a.kind), kind(b.kind)));
        }
        if a.mode & 0o7777 != b.mode & 0o7777 {
            d.push(format!(
                "mode {:o} → {:o}",
                a.mode & 0o7777,
                b.mode & 0o7777
            ));
        }
        if (a.uid, a.gid) != (b.uid, b.gid) {
            d.push(format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid));
        }
        if a.link_target != b.link_target {
            d.push(format!(
                "target {} → {}",
                show(&a.link_target),
                show(&b.link_target)
            ));
        }
        if a.xattr_md5 != b.xattr_md5 {
            d.push("xattrs".to_owned());
        }
        if a.mtime_ns != b.mtime_ns && a.kind != EntryKind::Dir {
            d.push("mtime".to_owned());
        }
        d
    }

    proptest::proptest! {
        #[test]
        fn diff_shows_the_metadata_lines_it_always_showed(
            kinds in (0usize..5, 0usize..5),
            perms in (0u32..2, 0u32..2),
            fields in proptest::collection::vec(proptest::bool::ANY, 6),
        ) {
            let k = [
                (EntryKind::File, 0o100_000u32),
                (EntryKind::Dir, 0o040_000),
                (EntryKind::Symlink, 0o120_000),
                (EntryKind::Special, 0o010_000),
                (EntryKind::Special, 0o140_000),
            ];
            let base = backup_core::testing::file_entry("a", 1);
            let a = FileEntry { kind: k[kinds.0].0, mode: k[kinds.0].1 | 0o644, ..base.clone() };
            let b = FileEntry {
                kind: k[kinds.1].0,
                mode: k[kinds.1].1 | if perms.0 == perms.1 { 0o644 } else { 0o600 },
                uid: u32::from(fields[0]),
                link_target: if fields[1] { b"x".to_vec() } else { Vec::new() },
                xattr_md5: [u8::from(fields[2]); 16],
                mtime_ns: i64::from(fields[3]) + 1,
                size: u64::from(fields[4]) + 1,
                rdev: u64::from(fields[5]),
                ..base
            };
            proptest::prop_assert_eq!(metadata_changes(&a, &b), metadata_changes_before(&a, &b));
        }
    }

    #[test]
    fn patterns_match_the_name_or_with_a_slash_the_path() {
        assert!(matches("*.db", b"data/app.db"));
        assert!(matches("app.db", b"data/app.db"));
        assert!(!matches("app", b"data/app.db"));
        assert!(matches("data/*.db", b"data/app.db"));
        // `*` stays in its folder, `**` crosses folders (gitignore, restic)
        assert!(!matches("/data/*", b"data/x/app.db"));
        assert!(matches("/data/**", b"data/x/app.db"));
        assert!(matches("**/app.db", b"data/x/app.db"));
        assert!(!matches("attachments/*", b"attachments/3f2a/invoice.pdf"));
        assert!(!matches("data/*.db", b"other/app.db"));
        assert!(matches("file-?.txt", b"dir/file-1.txt"));
        assert!(matches("*", b"x"));
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string("file", 0o644), "-rw-r--r--");
        assert_eq!(mode_string("folder", 0o2775), "drwxrwsr-x");
        assert_eq!(mode_string("file", 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string("folder", 0o1777), "drwxrwxrwt");
    }
}
