//! `backupctl restore`: a version comes back as it was, and is then checked against its record.
//!
//! - `pvc --to DIR`: `rsync -aHAX --numeric-ids --sparse --modify-window=-1` of the version's copy into DIR
//!   (ownership, modes, ACLs, xattrs, hardlinks, times, sparse files), then every file of DIR
//!   checked against the record, content included;
//! - `pvc --into-volume`: the seed's restore-from-file-backup runbook as one command: the PVC's
//!   workloads scaled to 0, a safety snapshot of the live volume, the volume mounted read-write,
//!   the version copied in with `--delete`, checked, unmounted, the workloads scaled back up; any
//!   failure undoes what can be undone and says what state it left;
//! - `sqlite`, `pfsense`, `pve-config --to DIR`: the copies of a week, checked.
//!
//! A restore never writes into a non-empty DIR unless `--force` (which then makes DIR the
//! version: what it held beyond it is deleted).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use backup_core::{
    run_with_undo, BackupRoot, BackupStore, Cluster, Config, IsoWeek, Mounter, OnFailure, Series,
    StepsRun, TreeCopier, TreeCopy, UndoableSteps, VolumeManager, WeekVersion, Workload,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::check::{check_tree, CheckReport, Content, Difference};
use crate::inventory::{files_under, pick_version, record};
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::repository::RepositoryTarget;
use backup_run::{Context, Outcome};

/// `restore pvc` flags.
#[derive(Debug, Clone)]
pub struct PvcRestoreArgs {
    /// The PVC (`NAMESPACE/PVC` or its volume).
    pub pvc: crate::PvcRef,
    /// Week (default: the newest complete version).
    pub week: Option<IsoWeek>,
    /// Target folder.
    pub to: Option<Utf8PathBuf>,
    /// Write into a non-empty folder, deleting what the version does not hold.
    pub force: bool,
    /// Restore into the live volume instead.
    pub into_volume: bool,
    /// Restore only these files or folders (paths inside the volume); all when empty.
    pub paths: Vec<String>,
    /// From this tier repository (`""`: the first) instead of the backup disk.
    pub from_tier: Option<String>,
}

/// What a restore to a folder did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// What was restored (`pvc vaultwarden/data 2026-02`).
    pub what: String,
    /// From where.
    pub from: Utf8PathBuf,
    /// Into where.
    pub to: Utf8PathBuf,
    /// Bytes restored.
    pub bytes: u64,
    /// Seconds: copy and check.
    pub seconds: f64,
    /// The check of what was written; `None` under `--dry-run`.
    pub check: Option<CheckReport>,
    /// `--dry-run`: nothing written.
    pub dry_run: bool,
}

impl Outcome for RestoreReport {
    fn exit(&self) -> Exit {
        match &self.check {
            Some(c) if !c.differences.is_empty() => Exit::Failed,
            _ => Exit::Success,
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        if self.dry_run {
            return format!(
                "restore {} (dry run: nothing written)\n  from {}\n  into {}",
                self.what, self.from, self.to
            );
        }
        let mut out = format!(
            "restored {} ({} in {:.1} s)\n  into {}",
            self.what,
            backup_host::human::bytes(self.bytes),
            self.seconds,
            self.to
        );
        if let Some(c) = &self.check {
            if c.differences.is_empty() {
                out.push_str(&format!(
                    "\n  checked against the record: {} (folders and links included), {} read \
                     back, all as recorded",
                    backup_host::human::plural(c.entries, "entry"),
                    backup_host::human::plural(c.files_read, "file")
                ));
            } else {
                out.push_str(&format!(
                    "\n  FAILED: {} from the record:",
                    backup_host::human::plural(c.differences.len() as u64, "difference")
                ));
                for d in &c.differences {
                    out.push_str(&format!("\n    {}: {}", d.path, d.what));
                }
            }
        }
        out
    }
}

/// What a `--dry-run` reports: the restore it would make.
fn planned(what: &str, from: &Utf8Path, to: &Utf8Path, bytes: u64) -> RestoreReport {
    RestoreReport {
        what: what.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        bytes,
        seconds: 0.0,
        check: None,
        dry_run: true,
    }
}

/// `path` with symlinks resolved as far as it exists, the rest appended (`..` refused).
fn resolve(path: &Utf8Path) -> Result<Utf8PathBuf> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
        Utf8PathBuf::from_path_buf(cwd)
            .map_err(|p| Error::Usage(format!("{} is not UTF-8", p.display())))?
            .join(path)
    };
    if abs
        .components()
        .any(|c| c == camino::Utf8Component::ParentDir)
    {
        return Err(Error::Usage(format!(
            "{path}: give the target without `..`"
        )));
    }
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                rest.push(n.to_owned());
                existing = p.to_owned();
            }
            _ => break,
        }
    }
    let mut real = existing
        .canonicalize_utf8()
        .map_err(|e| Error::io("resolve", existing.clone(), e))?;
    for n in rest.iter().rev() {
        real.push(n);
    }
    Ok(real)
}

/// Refuses a target where a restore could destroy what it should not: `/`, the backup root,
/// the backup disk's root, a local offsite destination, a folder inside one or around it
/// ([`Context::protected_roots`]); with `--force` (which deletes what the version does not
/// hold), also any top-level folder (`/etc`, `/var`, ...).
fn check_target(to: &Utf8Path, protected: &[Utf8PathBuf], force: bool) -> Result<()> {
    let real = resolve(to)?;
    if real == Utf8Path::new("/") {
        return Err(Error::Usage(format!(
            "{to} is /: restore into a folder of its own"
        )));
    }
    for p in protected {
        let root = p.canonicalize_utf8().unwrap_or_else(|_| p.clone());
        if real.starts_with(&root) || root.starts_with(&real) {
            return Err(Error::Usage(format!(
                "{to} ({real}) is on or around {root} (the backup root or an offsite copy): a \
                 restore there could overwrite or delete backups; restore into a folder outside \
                 it"
            )));
        }
    }
    if force && real.components().count() <= 2 {
        return Err(Error::Usage(format!(
            "--force into the top-level folder {real} would delete everything there that the \
             version does not hold: restore into a folder of its own"
        )));
    }
    Ok(())
}

/// Refuses a non-empty target without `--force`; creates a missing one.
fn prepare_target(to: &Utf8Path, force: bool, dry_run: bool) -> Result<()> {
    match std::fs::read_dir(to) {
        Ok(mut d) => {
            if d.next().is_some() && !force {
                return Err(Error::Usage(format!(
                    "{to} is not empty: a restore never writes into a non-empty folder; \
                     --force makes it the version (what it holds beyond it is deleted)"
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !dry_run {
                std::fs::create_dir_all(to).map_err(|e| Error::io("create folder", to, e))?;
            }
            Ok(())
        }
        Err(e) => Err(Error::io("read", to, e)),
    }
}

/// The ports of a restore to a folder: where the versions are, how their files come out, what
/// must never be written into.
pub(crate) struct RestoreDeps<'a> {
    /// The backup root (the offsite copy's view under `--from-offsite`).
    pub store: Box<dyn BackupStore + 'a>,
    /// `rsync -aHAX --numeric-ids --sparse --modify-window=-1 [--delete] FROM/ TO/`, from the
    /// backup disk or from the offsite copy over ssh. The window is what makes rsync set every
    /// time it differs from, even within the same second: with the default a folder whose
    /// recorded mtime falls in the second of the restore keeps the restore's time, and the
    /// check calls a correct restore failed.
    pub copier: Box<dyn TreeCopier + 'a>,
    /// What a restore must never write into or around ([`Context::protected_roots`]).
    pub protected: Vec<Utf8PathBuf>,
    /// `--dry-run`: nothing is written.
    pub dry_run: bool,
    /// A whole version into an empty folder may be copied in process (the local copy).
    pub local_copies: bool,
    /// SIGTERM/SIGINT: the in-process copy stops.
    pub stop: Arc<AtomicBool>,
}

impl<'a> RestoreDeps<'a> {
    /// The run's ports.
    ///
    /// # Errors
    /// No backup root.
    pub(crate) fn of(ctx: &'a Context<'_>) -> Result<Self> {
        Ok(Self {
            store: ctx.store()?,
            copier: ctx.copier(),
            protected: ctx.protected_roots(),
            dry_run: ctx.dry_run(),
            local_copies: ctx.local_copies(),
            stop: Arc::clone(&ctx.stop),
        })
    }

    /// Copies `from` (under the backup root) into `to` with the copier.
    pub(crate) fn copy(&self, from: &Utf8Path, to: &Utf8Path, how: &TreeCopy<'_>) -> Result<()> {
        Ok(self.copier.copy_tree(from, to, how)?)
    }
}

/// `restore pvc --to DIR`.
///
/// # Errors
/// No such version, a non-empty DIR without `--force`, a failed copy.
pub fn restore_pvc(ctx: &Context<'_>, args: &PvcRestoreArgs) -> Result<RestoreReport> {
    let to = args
        .to
        .clone()
        .ok_or_else(|| Error::Usage("restore pvc needs --to DIR or --into-volume".to_owned()))?;
    if let Some(name) = &args.from_tier {
        return restore_from_tier(ctx, args, name, &to);
    }
    let deps = RestoreDeps::of(ctx)?;
    let want = args.pvc.resolve(ctx)?;
    restore_pvc_of(&deps, &want, args, &to)
}

/// [`restore_pvc`] from `deps`, for the PVC `want` (resolved) into `to`.
///
/// # Errors
/// No such version, a version without a record, a target refused, a failed copy.
pub(crate) fn restore_pvc_of(
    deps: &RestoreDeps<'_>,
    (namespace, pvc): &(String, String),
    args: &PvcRestoreArgs,
    to: &Utf8Path,
) -> Result<RestoreReport> {
    let store = deps.store.as_ref();
    let v = pick_version(store, namespace, pvc, args.week)?;
    let from = store.root().pvc_copy(v.week, &v.namespace, &v.pvc);
    let what = format!("pvc {}/{} week {}", v.namespace, v.pvc, v.week);
    let rec = record(store, &v).ok_or_else(|| {
        Error::Refused(format!(
            "{what} has no usable record: it can be copied by hand (rsync -aHAX --numeric-ids \
             {from}/ DIR/) but not checked"
        ))
    })?;
    let chosen = (!args.paths.is_empty())
        .then(|| choose(&rec, &args.paths, &what))
        .transpose()?;
    let rec = chosen.as_ref().map_or(rec, |c| c.entries.clone());
    let what = match &args.paths[..] {
        [] => what,
        p => format!("{what}, {}", p.join(", ")),
    };
    check_target(to, &deps.protected, args.force)?;
    prepare_target(to, args.force, deps.dry_run)?;
    let bytes = rec.iter().map(|e| e.size).sum();
    if deps.dry_run {
        return Ok(planned(&what, &from, to, bytes));
    }
    let started = std::time::Instant::now();
    let check = copy_and_check(deps, &from, to, &rec, args.force, chosen.as_ref())?;
    Ok(RestoreReport {
        what,
        from,
        to: to.to_owned(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        check: Some(check),
        dry_run: false,
    })
}

/// `restore pvc --from-tier`: restic brings the snapshot back (verified against the
/// repository); the week's record on the backup disk, when there is one, checks it once more.
fn restore_from_tier(
    ctx: &Context<'_>,
    args: &PvcRestoreArgs,
    name: &str,
    to: &Utf8Path,
) -> Result<RestoreReport> {
    let cfg = ctx.cfg()?;
    let target = ctx
        .repositories()?
        .into_iter()
        .find(|t| name.is_empty() || t.name() == name)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no [[offsite.repository]] named `{name}` in {}",
                cfg.file
            ))
        })?;
    let want = args.pvc.resolve(ctx)?;
    let deps = RestoreDeps::of(ctx)?;
    restore_from_tier_of(&deps, target.as_ref(), &want, args.week, to)
}

/// [`restore_from_tier`] from `deps` and the repository `target`.
///
/// # Errors
/// A target refused, the repository's restore failed.
pub(crate) fn restore_from_tier_of(
    deps: &RestoreDeps<'_>,
    target: &dyn RepositoryTarget,
    (namespace, pvc): &(String, String),
    week: Option<IsoWeek>,
    to: &Utf8Path,
) -> Result<RestoreReport> {
    check_target(to, &deps.protected, false)?;
    prepare_target(to, false, deps.dry_run)?;
    let from = Utf8PathBuf::from(target.shown());
    let what = format!("pvc {namespace}/{pvc} from tier {}", target.name());
    if deps.dry_run {
        return Ok(planned(&what, &from, to, 0));
    }
    let started = std::time::Instant::now();
    let got = target.restore((namespace, pvc), week, to)?;
    let week = got.week.map_or("?".to_owned(), |w| w.to_string());
    // checked against the record the snapshot was sent with (a later run of the same week
    // rewrote the week's record on the disk)
    let check = got
        .week
        .and_then(|w| {
            let version = (w, namespace.as_str(), pvc.as_str());
            target.sent_record(got.record.as_deref(), version)
        })
        .and_then(|rec| check_tree(to.as_std_path(), &rec, Content::All).ok());
    let bytes = backup_host::tree::walk_entries(to.as_std_path())
        .map(|e| e.iter().map(|e| e.size).sum())
        .unwrap_or(0);
    Ok(RestoreReport {
        what: format!("{what}, week {week}, snapshot {}", got.snapshot_id),
        from,
        to: to.to_owned(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        check,
        dry_run: false,
    })
}

/// The restore's copy (all of the version: into an empty folder with the local copy, over a
/// `--force`d one with rsync `--delete`; or only the chosen entries with rsync, nothing
/// deleted) and its check against `rec`, with progress for both.
fn copy_and_check(
    deps: &RestoreDeps<'_>,
    from: &Utf8Path,
    to: &Utf8Path,
    rec: &[backup_core::FileEntry],
    force: bool,
    chosen: Option<&Chosen>,
) -> Result<CheckReport> {
    let bytes = rec.iter().map(|e| e.size).sum();
    let files = rec
        .iter()
        .filter(|e| e.kind == backup_core::EntryKind::File)
        .count() as u64;
    let copying =
        backup_host::progress::start("restore: copying", backup_host::progress::Totals::default());
    backup_host::progress::message(&format!("copying into {to}"));
    let checking = || {
        backup_host::progress::start(
            "restore: checking",
            backup_host::progress::Totals {
                files: Some(files),
                bytes: Some(bytes),
            },
        )
    };
    let check = match chosen {
        None => {
            // into an empty folder the local copy (what rsync -aHAX --sparse would write, in
            // one process, a worker per core); over what --force keeps, rsync with --delete
            let empty = std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_none());
            let empty = empty && deps.local_copies;
            if empty {
                backup_host::local_copy::copy_tree(
                    from.as_std_path(),
                    to.as_std_path(),
                    Some(&deps.stop),
                )?;
            } else {
                let how = TreeCopy {
                    delete: force,
                    ..TreeCopy::default()
                };
                deps.copy(from, to, &how)?;
            }
            drop(copying);
            let _checking = checking();
            check_tree(to.as_std_path(), rec, Content::All)?
        }
        Some(c) => {
            // exactly the chosen entries (and the folders above them), nothing deleted
            let list = tempfile::NamedTempFile::new()
                .map_err(|e| Error::io("create a temp file", "(temp folder)", e))?;
            let mut names = Vec::new();
            for e in &c.entries {
                backup_core::encode_files_from(&e.path, &mut names);
            }
            std::fs::write(list.path(), &names)
                .map_err(|e| Error::io("write", list.path().to_string_lossy().as_ref(), e))?;
            let list_path = Utf8Path::from_path(list.path()).ok_or_else(|| {
                Error::Refused("the temp folder (TMPDIR) is not a UTF-8 path".to_owned())
            })?;
            let how = TreeCopy {
                files_from: Some(list_path),
                ..TreeCopy::default()
            };
            deps.copy(from, to, &how)?;
            drop(copying);
            let _checking = checking();
            let mut check = check_tree(to.as_std_path(), rec, Content::All)?;
            // what DIR held before (--force) is not the restore's to judge
            check
                .differences
                .retain(|d| d.what != "not in the record" || c.covers(d.path.as_bytes()));
            check
        }
    };
    Ok(check)
}

/// The entries `restore pvc --path` brings back: each chosen path, everything under a chosen
/// folder, and the folders above them (so their modes and times come back too).
struct Chosen {
    entries: Vec<backup_core::FileEntry>,
    roots: Vec<Vec<u8>>,
}

impl Chosen {
    /// True for a path inside (or above) a chosen one.
    fn covers(&self, path: &[u8]) -> bool {
        self.roots.iter().any(|r| {
            path == r.as_slice()
                || (path.starts_with(r) && path.get(r.len()) == Some(&b'/'))
                || (r.starts_with(path) && r.get(path.len()) == Some(&b'/'))
        })
    }
}

fn choose(rec: &[backup_core::FileEntry], paths: &[String], what: &str) -> Result<Chosen> {
    let mut roots = Vec::new();
    for p in paths {
        let p = p.trim_matches('/');
        if p.is_empty() || p.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
            return Err(Error::Usage(format!(
                "--path {p:?}: expected a path inside the volume, as `backupctl find` prints it"
            )));
        }
        if !rec.iter().any(|e| e.path == p.as_bytes()) {
            return Err(Error::NotFound(format!(
                "{what} holds no {p}: `backupctl find` searches every week"
            )));
        }
        roots.push(p.as_bytes().to_vec());
    }
    let chosen = Chosen {
        entries: Vec::new(),
        roots,
    };
    // never `.`: rsync copies the contents of a listed `.` (every top-level entry); the top
    // folder is the target's own
    let entries = rec
        .iter()
        .filter(|e| e.path != b"." && chosen.covers(&e.path))
        .cloned()
        .collect();
    Ok(Chosen { entries, ..chosen })
}

fn newest_week(versions: &[WeekVersion], week: Option<IsoWeek>, what: &str) -> Result<IsoWeek> {
    let mut complete: Vec<&WeekVersion> = versions.iter().filter(|v| v.is_complete()).collect();
    complete.sort_by_key(|v| v.week);
    match week {
        Some(w) if complete.iter().any(|v| v.week == w) => Ok(w),
        Some(w) => Err(Error::NotFound(format!(
            "no complete {what} copy of week {w}: `backupctl list` shows them"
        ))),
        None => complete.last().map(|v| v.week).ok_or_else(|| {
            Error::NotFound(format!(
                "no complete {what} copy at all: `backupctl list` shows what there is"
            ))
        }),
    }
}

/// `restore sqlite`: the SQLite copies of a PVC's week (or the one at `path` inside the volume)
/// into DIR, each checked with `integrity_check`.
///
/// # Errors
/// No such copy, a non-empty DIR without `--force`.
pub fn restore_sqlite(
    ctx: &Context<'_>,
    pvc: &crate::PvcRef,
    week: Option<IsoWeek>,
    path: Option<&str>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    let deps = RestoreDeps::of(ctx)?;
    let want = pvc.resolve(ctx)?;
    restore_sqlite_of(&deps, &want, week, path, to, force)
}

/// [`restore_sqlite`] from `deps`, for the PVC `want` (resolved).
///
/// # Errors
/// No such copy, a non-empty DIR without `--force`.
pub(crate) fn restore_sqlite_of(
    deps: &RestoreDeps<'_>,
    (namespace, pvc): &(String, String),
    week: Option<IsoWeek>,
    path: Option<&str>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    let (namespace, pvc) = (namespace.as_str(), pvc.as_str());
    let store = deps.store.as_ref();
    let v = pick_version(store, namespace, pvc, week)?;
    let from = store.root().sqlite_copy(v.week, namespace, pvc);
    let mut files: Vec<(Utf8PathBuf, u64)> = files_under(&from)
        .into_iter()
        .filter(|(p, _)| !p.file_name().is_some_and(|n| n.starts_with('.')))
        .collect();
    if let Some(want) = path {
        let want = want.trim_start_matches('/');
        files.retain(|(p, _)| p.strip_prefix(&from).is_ok_and(|r| r.as_str() == want));
    }
    let what = format!("sqlite copies of {namespace}/{pvc} week {}", v.week);
    if files.is_empty() {
        return Err(Error::NotFound(format!(
            "no SQLite copy {}in {what}: `backupctl list` shows the counts",
            path.map_or(String::new(), |p| format!("at {p} "))
        )));
    }
    check_target(to, &deps.protected, force)?;
    prepare_target(to, force, deps.dry_run)?;
    let bytes = files.iter().map(|(_, b)| b).sum();
    if deps.dry_run {
        return Ok(planned(&what, &from, to, bytes));
    }
    let started = std::time::Instant::now();
    let mut check = CheckReport::default();
    for (f, size) in &files {
        let rel = f.strip_prefix(&from).unwrap_or(f);
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
        }
        std::fs::copy(f, &dest).map_err(|e| Error::io("copy", f.clone(), e))?;
        check.entries += 1;
        check.files_read += 1;
        check.bytes_read += size;
        if let Err(e) = backup_sqlite::check_copy(dest.as_std_path()) {
            check.differences.push(Difference {
                path: dest.to_string(),
                what: e.to_string(),
            });
        }
    }
    Ok(RestoreReport {
        what,
        from,
        to: to.to_owned(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        check: Some(check),
        dry_run: false,
    })
}

/// `restore pfsense`: a week's `config.xml` and full tar into DIR, checked.
///
/// # Errors
/// No such week, a non-empty DIR without `--force`.
pub fn restore_pfsense(
    ctx: &Context<'_>,
    week: Option<IsoWeek>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    restore_pfsense_of(&RestoreDeps::of(ctx)?, week, to, force)
}

/// [`restore_pfsense`] from `deps`.
///
/// # Errors
/// No such week, a non-empty DIR without `--force`.
pub(crate) fn restore_pfsense_of(
    deps: &RestoreDeps<'_>,
    week: Option<IsoWeek>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    let store = deps.store.as_ref();
    let w = newest_week(&store.list_versions(Series::Pfsense)?, week, "pfSense")?;
    let from = store.root().pfsense_week(w);
    restore_folder(
        deps,
        &format!("pfSense week {w}"),
        &from,
        to,
        force,
        &[],
        |to| {
            let mut check = CheckReport::default();
            let xml = to.join(backup_core::CONFIG_XML);
            let whole = std::fs::read(&xml).is_ok_and(|b| backup_core::is_whole_pfsense_config(&b));
            if !whole {
                check.differences.push(Difference {
                    path: xml.to_string(),
                    what: "not a whole pfSense config.xml".to_owned(),
                });
            }
            for (p, _) in files_under(to) {
                check.entries += 1;
                if p.as_str().ends_with(".gz") {
                    if let Err(e) = crate::verify::gzip_reads(&p) {
                        check.differences.push(Difference {
                            path: p.to_string(),
                            what: e,
                        });
                    }
                }
            }
            check
        },
    )
}

/// `restore pve-config`: a week's copy of the PVE host config into DIR, compared with the copy.
///
/// # Errors
/// No such week, a non-empty DIR without `--force`.
pub fn restore_pve_config(
    ctx: &Context<'_>,
    week: Option<IsoWeek>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    restore_pve_config_of(&RestoreDeps::of(ctx)?, week, to, force)
}

/// [`restore_pve_config`] from `deps`.
///
/// # Errors
/// No such week, a non-empty DIR without `--force`.
pub(crate) fn restore_pve_config_of(
    deps: &RestoreDeps<'_>,
    week: Option<IsoWeek>,
    to: &Utf8Path,
    force: bool,
) -> Result<RestoreReport> {
    let store = deps.store.as_ref();
    let w = newest_week(&store.list_versions(Series::PveConfig)?, week, "PVE config")?;
    let from = store.root().pve_config_week(w);
    let source = from.clone();
    restore_folder(
        deps,
        &format!("PVE config week {w}"),
        &from,
        to,
        force,
        &["/.complete"],
        move |to| compare_trees(&source, to),
    )
}

/// Every file of `from` (but the marker) present in `to` with the same content and mode.
fn compare_trees(from: &Utf8Path, to: &Utf8Path) -> CheckReport {
    let mut check = CheckReport::default();
    for (p, size) in files_under(from) {
        let rel = p.strip_prefix(from).unwrap_or(&p);
        if rel.as_str() == ".complete" {
            continue;
        }
        check.entries += 1;
        let dest = to.join(rel);
        let same = std::fs::read(&p).ok() == std::fs::read(&dest).ok()
            && std::fs::symlink_metadata(&dest).is_ok();
        check.files_read += 1;
        check.bytes_read += size;
        if !same {
            check.differences.push(Difference {
                path: dest.to_string(),
                what: "differs from the backup copy or is missing".to_owned(),
            });
        }
    }
    check
}

fn restore_folder(
    deps: &RestoreDeps<'_>,
    what: &str,
    from: &Utf8Path,
    to: &Utf8Path,
    force: bool,
    exclude: &[&str],
    check: impl FnOnce(&Utf8Path) -> CheckReport,
) -> Result<RestoreReport> {
    check_target(to, &deps.protected, force)?;
    prepare_target(to, force, deps.dry_run)?;
    let bytes = files_under(from).iter().map(|(_, b)| b).sum();
    if deps.dry_run {
        return Ok(planned(what, from, to, bytes));
    }
    let started = std::time::Instant::now();
    let how = TreeCopy {
        delete: force,
        exclude,
        ..TreeCopy::default()
    };
    deps.copy(from, to, &how)?;
    Ok(RestoreReport {
        what: what.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        check: Some(check(to)),
        dry_run: false,
    })
}

// ---------------------------------------------------------------------------------------------
// --into-volume

/// One step of a restore into the live volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum IntoVolumeStep {
    /// Scale a workload using the PVC to 0.
    ScaleDown {
        /// It.
        workload: Workload,
    },
    /// Wait until its pods are gone (the volume is then free).
    WaitPodsGone {
        /// It.
        workload: Workload,
    },
    /// Snapshot the live volume first: what the restore overwrites stays recoverable.
    SafetySnapshot {
        /// The volume.
        lv: String,
        /// The snapshot's name.
        name: String,
    },
    /// Activate the live volume on this host and mount it read-write.
    Mount {
        /// The volume.
        lv: String,
        /// Where.
        target: Utf8PathBuf,
    },
    /// Copy the version in (`rsync --delete`).
    Copy {
        /// The version's copy.
        from: Utf8PathBuf,
        /// The mount point.
        target: Utf8PathBuf,
    },
    /// Check the volume against the version's record.
    Check {
        /// The mount point.
        target: Utf8PathBuf,
    },
    /// Unmount it.
    Unmount {
        /// The mount point.
        target: Utf8PathBuf,
    },
    /// Scale a workload back to its replicas.
    ScaleUp {
        /// It.
        workload: Workload,
    },
}

impl IntoVolumeStep {
    /// The step in words.
    pub fn describe(&self) -> String {
        match self {
            IntoVolumeStep::ScaleDown { workload: w } => {
                format!("scale {} {}/{} to 0", w.kind, w.namespace, w.name)
            }
            IntoVolumeStep::WaitPodsGone { workload: w } => {
                format!("wait for the pods of {}/{} to go", w.namespace, w.name)
            }
            IntoVolumeStep::SafetySnapshot { lv, name } => {
                format!("snapshot the live volume {lv} as {name}")
            }
            IntoVolumeStep::Mount { lv, target } => {
                format!("activate {lv} and mount it read-write on {target}")
            }
            IntoVolumeStep::Copy { from, target } => {
                format!("copy {from}/ into {target}/ (rsync -aHAX --delete)")
            }
            IntoVolumeStep::Check { target } => {
                format!("check {target} against the version's record")
            }
            IntoVolumeStep::Unmount { target } => format!("unmount {target}"),
            IntoVolumeStep::ScaleUp { workload: w } => format!(
                "scale {} {}/{} back to {}",
                w.kind, w.namespace, w.name, w.replicas
            ),
        }
    }
}

/// What a restore into the volume did.
#[derive(Debug, Clone, Serialize)]
pub struct IntoVolumeReport {
    /// The plan.
    pub steps: Vec<String>,
    /// Steps done.
    pub done: Vec<String>,
    /// The step that failed, and why.
    pub failed: Option<(String, String)>,
    /// Undo steps run after a failure, with their outcome.
    pub undone: Vec<(String, std::result::Result<(), String>)>,
    /// The state left, in words.
    pub state: String,
    /// The check of the volume, when it ran.
    pub check: Option<CheckReport>,
    /// `--dry-run`: the plan only.
    pub dry_run: bool,
}

/// Plans a restore of `version` into the live volume `lv`.
///
/// # Errors
/// When the cluster cannot be asked for the PVC's workloads.
pub fn plan_into_volume(
    cluster: &dyn Cluster,
    root: &BackupRoot,
    version: &WeekVersion,
    lv: &str,
    target: &Utf8Path,
    now: DateTime<Utc>,
) -> backup_core::Result<Vec<IntoVolumeStep>> {
    let workloads = cluster.workloads_using(&version.namespace, &version.pvc)?;
    Ok(into_volume_steps(
        &workloads, root, version, lv, target, now,
    ))
}

/// The steps of a restore into the volume, given the workloads that mount the PVC.
fn into_volume_steps(
    workloads: &[backup_core::Workload],
    root: &BackupRoot,
    version: &WeekVersion,
    lv: &str,
    target: &Utf8Path,
    now: DateTime<Utc>,
) -> Vec<IntoVolumeStep> {
    let mut steps: Vec<IntoVolumeStep> = workloads
        .iter()
        .map(|w| IntoVolumeStep::ScaleDown {
            workload: w.clone(),
        })
        .collect();
    steps.extend(workloads.iter().map(|w| IntoVolumeStep::WaitPodsGone {
        workload: w.clone(),
    }));
    steps.push(IntoVolumeStep::SafetySnapshot {
        lv: lv.to_owned(),
        name: format!("{lv}-pre-restore-{}", now.format("%Y%m%d%H%M%S")),
    });
    steps.push(IntoVolumeStep::Mount {
        lv: lv.to_owned(),
        target: target.to_owned(),
    });
    steps.push(IntoVolumeStep::Copy {
        from: root.pvc_copy(version.week, &version.namespace, &version.pvc),
        target: target.to_owned(),
    });
    steps.push(IntoVolumeStep::Check {
        target: target.to_owned(),
    });
    steps.push(IntoVolumeStep::Unmount {
        target: target.to_owned(),
    });
    steps.extend(workloads.iter().map(|w| IntoVolumeStep::ScaleUp {
        workload: w.clone(),
    }));
    steps
}

/// The outside world a restore into the volume acts on.
pub struct IntoVolumeDeps<'a> {
    /// Scales workloads.
    pub cluster: &'a dyn Cluster,
    /// Snapshots and activates the volume.
    pub volumes: &'a dyn VolumeManager,
    /// Mounts it.
    pub mounter: &'a dyn Mounter,
    /// Copies the version into the mount point.
    pub copy: &'a dyn Fn(&Utf8Path, &Utf8Path) -> Result<()>,
    /// Checks the mount point against the record.
    pub check: &'a dyn Fn(&Utf8Path) -> Result<CheckReport>,
}

/// A restore into the volume's steps on its ports; what the steps found on the way (whether
/// anything was written, the safety snapshot's name, the check's report).
struct IntoVolume<'a, 'd> {
    deps: &'a IntoVolumeDeps<'d>,
    now: DateTime<Utc>,
    wrote: bool,
    safety: Option<String>,
    check: Option<CheckReport>,
}

impl UndoableSteps<IntoVolumeStep> for IntoVolume<'_, '_> {
    fn describe(&self, step: &IntoVolumeStep) -> String {
        step.describe()
    }

    fn run(&mut self, step: &IntoVolumeStep) -> std::result::Result<(), String> {
        let deps = self.deps;
        match step {
            IntoVolumeStep::ScaleDown { workload } => {
                deps.cluster.scale(workload, 0).map_err(Error::from)
            }
            IntoVolumeStep::WaitPodsGone { workload } => deps
                .cluster
                .wait_pods_gone(workload, 300)
                .map_err(Error::from),
            IntoVolumeStep::SafetySnapshot { lv, name } => deps
                .volumes
                .create_snapshot(lv, name, self.now)
                .map(|_| self.safety = Some(name.clone()))
                .map_err(Error::from),
            IntoVolumeStep::Mount { lv, target } => deps
                .volumes
                .activate_volume(lv)
                .and_then(|src| deps.mounter.mount_rw(&src, target))
                .map(|_| ())
                .map_err(Error::from),
            IntoVolumeStep::Copy { from, target } => {
                self.wrote = true;
                (deps.copy)(from, target)
            }
            IntoVolumeStep::Check { target } => match (deps.check)(target) {
                Ok(c) => {
                    let n = c.differences.len();
                    self.check = Some(c);
                    if n == 0 {
                        Ok(())
                    } else {
                        Err(Error::Refused(format!(
                            "the volume differs from the version's record in {n} places"
                        )))
                    }
                }
                Err(e) => Err(e),
            },
            IntoVolumeStep::Unmount { target } => deps.mounter.unmount(target).map_err(Error::from),
            IntoVolumeStep::ScaleUp { workload } => deps
                .cluster
                .scale(workload, workload.replicas)
                .map_err(Error::from),
        }
        .map_err(|e| e.to_string())
    }

    /// Workloads are scaled back and the volume unmounted; the copy is not undone (the safety
    /// snapshot holds the volume as it was).
    fn undo(&mut self, step: &IntoVolumeStep) -> Option<(String, std::result::Result<(), String>)> {
        let (what, r) = match step {
            IntoVolumeStep::ScaleDown { workload } => (
                format!(
                    "scale {}/{} back to {}",
                    workload.namespace, workload.name, workload.replicas
                ),
                self.deps.cluster.scale(workload, workload.replicas),
            ),
            IntoVolumeStep::Mount { target, .. } => (
                format!("unmount {target}"),
                self.deps.mounter.unmount(target),
            ),
            _ => return None,
        };
        Some((what, r.map_err(|e| e.to_string())))
    }

    fn on_failure(&self, step: &IntoVolumeStep) -> OnFailure {
        match step {
            // the restore is done: the other workloads still go back up
            IntoVolumeStep::ScaleUp { .. } => OnFailure::Continue,
            // restored and checked, but still mounted here: starting the workloads now would
            // mount one file system twice
            IntoVolumeStep::Unmount { .. } => OnFailure::Stop,
            _ => OnFailure::Undo,
        }
    }
}

/// Runs the steps; on a failure undoes what was done, newest first, and says what state is left.
pub fn run_into_volume(
    deps: &IntoVolumeDeps<'_>,
    steps: &[IntoVolumeStep],
    now: DateTime<Utc>,
) -> IntoVolumeReport {
    let mut plan = IntoVolume {
        deps,
        now,
        wrote: false,
        safety: None,
        check: None,
    };
    let run = run_with_undo(&mut plan, steps);
    let state = into_volume_state(&run, steps, plan.wrote, plan.safety.as_deref());
    IntoVolumeReport {
        steps: steps.iter().map(IntoVolumeStep::describe).collect(),
        done: run.done,
        failed: run.failed,
        undone: run.undone,
        state,
        check: plan.check,
        dry_run: false,
    }
}

/// The state a restore into the volume left, in words.
fn into_volume_state(
    run: &StepsRun,
    steps: &[IntoVolumeStep],
    wrote: bool,
    safety: Option<&str>,
) -> String {
    let safety_name = safety.unwrap_or_default();
    match run.ended_at {
        None if run.passed_over.is_empty() => format!(
            "restored and checked; the volume as it was before is in the snapshot {safety_name}"
        ),
        None => format!(
            "the volume is restored and checked; did not happen, do it by hand: {}",
            run.passed_over.join("; ")
        ),
        Some((i, OnFailure::Stop)) => format!(
            "the volume is restored and checked but may still be mounted on this host at {}: \
             unmount it by hand, then scale the workloads back up (they stay at 0: a second \
             mount of the same file system corrupts it); the volume as it was before is in the \
             snapshot {safety_name}",
            match &steps[i] {
                IntoVolumeStep::Unmount { target } => target.as_str(),
                _ => "",
            },
        ),
        Some(_) => {
            let undo_ok = run.undo_ok();
            let mut state = match (wrote, safety) {
                (false, _) if undo_ok => {
                    "nothing was written: the volume and the workloads are as they were".to_owned()
                }
                (true, Some(s)) => format!(
                    "the volume was partly or wrongly overwritten and the workloads run on it \
                     again; it is kept as it was before in the snapshot {s} \
                     (`lvm-pvc-snapshot restore` brings that back)"
                ),
                (true, None) => "the volume was partly overwritten".to_owned(),
                (false, _) => "an undo step failed: see above, and fix by hand".to_owned(),
            };
            if !undo_ok && wrote {
                state.push_str("; an undo step failed as well: see above");
            }
            state
        }
    }
}

/// The live volume of `v`'s PVC, as the backend and the cluster name it.
///
/// # Errors
/// Not found when no volume of the backend belongs to the PVC.
fn live_volume_of(ctx: &Context<'_>, cfg: &Config, v: &WeekVersion) -> Result<String> {
    let live = crate::inventory::live(ctx, cfg);
    live.selection
        .selected
        .iter()
        .chain(&live.selection.excluded)
        .find(|s| s.namespace == v.namespace && s.pvc == v.pvc)
        .map(|s| s.lv.clone())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no volume of the backend belongs to {}/{}: restore it --to a folder instead",
                v.namespace, v.pvc
            ))
        })
}

/// A dry run's plan when the cluster did not say which workloads mount the PVC: the steps
/// without them, and the one cluster call that failed, once.
fn plan_without_cluster(
    root: &BackupRoot,
    v: &WeekVersion,
    lv: &str,
    target: &Utf8Path,
    now: DateTime<Utc>,
    e: &backup_core::Error,
) -> IntoVolumeReport {
    let unknown = format!(
        "the workloads that mount {}/{} (not known: the cluster did not answer)",
        v.namespace, v.pvc
    );
    let mut steps = vec![format!("scale {unknown} to 0, wait for their pods to go")];
    steps.extend(
        into_volume_steps(&[], root, v, lv, target, now)
            .iter()
            .map(IntoVolumeStep::describe),
    );
    steps.push(format!("scale {unknown} back"));
    IntoVolumeReport {
        steps,
        done: Vec::new(),
        failed: Some((
            format!(
                "ask the cluster which workloads mount {}/{}",
                v.namespace, v.pvc
            ),
            e.to_string(),
        )),
        undone: Vec::new(),
        state: "a real run would stop at step 1".to_owned(),
        check: None,
        dry_run: true,
    }
}

/// `restore pvc --into-volume`.
///
/// # Errors
/// No such version or volume, a backend that cannot be asked.
pub fn restore_into_volume(ctx: &Context<'_>, args: &PvcRestoreArgs) -> Result<IntoVolumeReport> {
    let cfg = ctx.cfg()?;
    let store = ctx.store()?;
    let (namespace, pvc) = args.pvc.resolve_exact(ctx)?;
    let v = pick_version(store.as_ref(), &namespace, &pvc, args.week)?;
    let rec = record(store.as_ref(), &v).ok_or_else(|| {
        Error::Refused(format!(
            "week {} of {}/{} has no usable record: it cannot be checked after the restore",
            v.week, v.namespace, v.pvc
        ))
    })?;
    let lv = live_volume_of(ctx, cfg, &v)?;
    let runner = ctx.steady_runner();
    let cluster = backup_kubectl::KubectlCluster::new(
        runner.as_ref(),
        cfg.kubernetes.kubeconfig.as_ref().map(ToString::to_string),
    );
    let target = backup_host::setup::mount_root(cfg)?.join(format!("restore-{lv}"));
    let planned = plan_into_volume(&cluster, store.root(), &v, &lv, &target, ctx.now);
    if let (true, Err(e)) = (ctx.dry_run(), &planned) {
        return Ok(plan_without_cluster(
            store.root(),
            &v,
            &lv,
            &target,
            ctx.now,
            e,
        ));
    }
    let steps = planned?;
    if ctx.dry_run() {
        return Ok(IntoVolumeReport {
            steps: steps.iter().map(IntoVolumeStep::describe).collect(),
            done: Vec::new(),
            failed: None,
            undone: Vec::new(),
            state: "dry run: nothing was changed".to_owned(),
            check: None,
            dry_run: true,
        });
    }
    std::fs::create_dir_all(&target).map_err(|e| Error::io("create folder", &target, e))?;
    let volumes = ctx.volumes()?;
    let mounter = ctx.mounter();
    let copier = ctx.copier();
    let how = TreeCopy {
        delete: true,
        ..TreeCopy::default()
    };
    let copy = |from: &Utf8Path, to: &Utf8Path| Ok(copier.copy_tree(from, to, &how)?);
    let check = |to: &Utf8Path| check_tree(to.as_std_path(), &rec, Content::All);
    Ok(run_into_volume(
        &IntoVolumeDeps {
            cluster: &cluster,
            volumes: volumes.as_ref(),
            mounter: mounter.as_ref(),
            copy: &copy,
            check: &check,
        },
        &steps,
        ctx.now,
    ))
}

impl Outcome for IntoVolumeReport {
    fn exit(&self) -> Exit {
        if self.failed.is_some() {
            Exit::Failed
        } else {
            Exit::Success
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        if self.dry_run {
            out.push_str("restore into the volume (dry run: nothing is changed):");
            for (i, s) in self.steps.iter().enumerate() {
                out.push_str(&format!("\n  {}. {s}", i + 1));
            }
            if let Some((step, why)) = &self.failed {
                out.push_str(&format!(
                    "\n  FAILED  {step}: {why}\nbackupctl restore: {}",
                    self.state
                ));
            }
            return out;
        }
        for d in &self.done {
            out.push_str(&format!("  done    {d}\n"));
        }
        if let Some((step, why)) = &self.failed {
            out.push_str(&format!("  FAILED  {step}: {why}\n"));
        }
        if let Some(c) = &self.check {
            for d in c.differences.iter().take(20) {
                out.push_str(&format!("    {}: {}\n", d.path, d.what));
            }
        }
        for (what, r) in &self.undone {
            match r {
                Ok(()) => out.push_str(&format!("  undone  {what}\n")),
                Err(e) => out.push_str(&format!("  UNDO FAILED {what}: {e}\n")),
            }
        }
        out.push_str(&format!("backupctl restore: {}", self.state));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{one_version, rewrite_keeping_mtime};
    use backup_host::local_copy::FakeTreeCopier;

    /// The ports of a restore over the fixture's backup root; the copier's log is kept.
    fn ports(store: backup_core::testing::FakeStore) -> (RestoreDeps<'static>, FakeTreeCopier) {
        let copier = FakeTreeCopier::default();
        let deps = RestoreDeps {
            protected: vec![store.root().root().to_owned()],
            store: Box::new(store),
            copier: Box::new(copier.clone()),
            dry_run: false,
            local_copies: false,
            stop: Arc::default(),
        };
        (deps, copier)
    }

    fn args(paths: &[&str], force: bool) -> PvcRestoreArgs {
        PvcRestoreArgs {
            pvc: "vaultwarden/data".parse().unwrap(),
            week: None,
            to: None,
            force,
            into_volume: false,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            from_tier: None,
        }
    }

    fn want() -> (String, String) {
        ("vaultwarden".to_owned(), "data".to_owned())
    }

    fn target(dir: &tempfile::TempDir) -> Utf8PathBuf {
        Utf8PathBuf::from_path_buf(dir.path().join("restored")).unwrap()
    }

    /// The newest complete version comes back through the copier, whole, and every entry is
    /// checked against its record; in process when the target is empty and that is allowed.
    #[test]
    fn a_version_comes_back_whole_and_is_checked_against_its_record() {
        let (dir, store, week, copy) = one_version();
        let (mut deps, copier) = ports(store);
        let to = target(&dir);
        let r = restore_pvc_of(&deps, &want(), &args(&[], false), &to).unwrap();
        assert_eq!(r.what, format!("pvc vaultwarden/data week {week}"));
        let check = r.check.as_ref().unwrap();
        assert!(check.differences.is_empty(), "{:?}", check.differences);
        assert_eq!((check.entries, check.files_read), (4, 2));
        assert_eq!(r.exit(), Exit::Success);
        assert_eq!(copier.calls(), [format!("copy {copy} -> {to}")]);
        // in process: the copier is not asked
        deps.local_copies = true;
        let to2 = Utf8PathBuf::from_path_buf(dir.path().join("again")).unwrap();
        let r = restore_pvc_of(&deps, &want(), &args(&[], false), &to2).unwrap();
        assert!(r.check.unwrap().differences.is_empty());
        assert_eq!(copier.calls().len(), 1);
    }

    /// A restore that brings back bytes other than the record's fails its check, naming the
    /// file: the rewrite keeps size and mtime, so only the content check sees it.
    #[test]
    fn a_copy_whose_content_differs_from_the_record_fails_naming_the_file() {
        let (dir, store, _, copy) = one_version();
        rewrite_keeping_mtime(&copy.join("attachments/a.pdf"), b"%PDF-1.7 invoicf");
        let (deps, _) = ports(store);
        let r = restore_pvc_of(&deps, &want(), &args(&[], false), &target(&dir)).unwrap();
        let named: Vec<&str> = r
            .check
            .as_ref()
            .unwrap()
            .differences
            .iter()
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(named, ["attachments/a.pdf"]);
        assert_eq!(r.exit(), Exit::Failed);
        assert!(
            r.text(false).contains("FAILED: 1 difference"),
            "{}",
            r.text(false)
        );
    }

    /// `--path`: the copier gets a list of exactly the chosen entries (the folder and what is
    /// inside it), and only they are checked.
    #[test]
    fn only_the_chosen_paths_are_listed_and_checked() {
        let (dir, store, ..) = one_version();
        let (deps, copier) = ports(store);
        let r = restore_pvc_of(
            &deps,
            &want(),
            &args(&["attachments"], false),
            &target(&dir),
        )
        .unwrap();
        let check = r.check.unwrap();
        assert!(check.differences.is_empty(), "{:?}", check.differences);
        assert_eq!(check.entries, 2);
        let calls = copier.calls();
        assert_eq!(calls.len(), 1);
        assert!(
            calls[0].ends_with("list: attachments, attachments/a.pdf"),
            "{calls:?}"
        );
        let e = restore_pvc_of(&deps, &want(), &args(&["nope"], false), &target(&dir));
        assert_eq!(e.unwrap_err().exit().code(), 66);
        let e = restore_pvc_of(&deps, &want(), &args(&["../etc"], false), &target(&dir));
        assert_eq!(e.unwrap_err().exit().code(), 2);
    }

    /// Nothing is copied into a non-empty folder without `--force`, into or around the backup
    /// root, or under `--dry-run` (which does not even create the folder).
    #[test]
    fn refused_targets_and_a_dry_run_copy_nothing() {
        let (dir, store, _, copy) = one_version();
        let (mut deps, copier) = ports(store);
        let full = target(&dir);
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("keep"), b"mine").unwrap();
        let e = restore_pvc_of(&deps, &want(), &args(&[], false), &full).unwrap_err();
        assert_eq!(e.exit().code(), 2, "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        let inside = copy.parent().unwrap().join("elsewhere");
        let e = restore_pvc_of(&deps, &want(), &args(&[], false), &inside).unwrap_err();
        assert!(e.to_string().contains("the backup root"), "{e}");
        deps.dry_run = true;
        let fresh = Utf8PathBuf::from_path_buf(dir.path().join("fresh")).unwrap();
        let r = restore_pvc_of(&deps, &want(), &args(&[], false), &fresh).unwrap();
        assert!(r.dry_run && r.check.is_none());
        assert!(!fresh.exists());
        assert!(copier.calls().is_empty(), "{:?}", copier.calls());
        assert_eq!(std::fs::read(full.join("keep")).unwrap(), b"mine");
    }

    /// A version whose record is gone cannot be checked, so it is not restored (the message
    /// says how to copy it by hand); a copy that fails is an error, not a report.
    #[test]
    fn no_record_is_refused_and_a_failed_copy_is_an_error() {
        let (dir, store, week, _) = one_version();
        let record = backup_core::StoreFile::Record(week, "vaultwarden", "data");
        std::fs::remove_file(record.path(store.root())).ok();
        store.write(record, b"").unwrap();
        let (deps, copier) = ports(store);
        let e = restore_pvc_of(&deps, &want(), &args(&[], false), &target(&dir)).unwrap_err();
        assert!(e.to_string().contains("has no usable record"), "{e}");
        assert!(copier.calls().is_empty());

        let (dir, store, ..) = one_version();
        let (mut deps, _) = ports(store);
        deps.copier = Box::new(FakeTreeCopier {
            fails: Some("connection reset".to_owned()),
            ..FakeTreeCopier::default()
        });
        let e = restore_pvc_of(&deps, &want(), &args(&[], false), &target(&dir)).unwrap_err();
        assert!(e.to_string().contains("connection reset"), "{e}");
    }
}
