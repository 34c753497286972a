//! `offsite-sync-backup`: the only copy that survives a fire.
//!
//! Step 1 sends the backup disk to `<destination>/pve-backup/` (`-aHAX`: the hardlinked weeks
//! stay hardlinked), after waiting for a running daily-backup, and only when the backup root is
//! really the backup disk. Step 2 sends each `[[offsite.tree]]` to `<destination>/<name>/`: only
//! the paths its change log names when the log can be trusted, else a full pass, which is also
//! made on the first run of each month. A full pass refuses an empty source and counts its
//! deletions before making any: more than `max-delete` fails the tree (`--force` overrides).

use std::sync::atomic::{AtomicBool, Ordering};

use backup_core::metric_names::{self as names, JobMetrics};
use backup_core::{
    files_from, plan_tree_pass, Config, MetricGroup, MirrorRead, OffsiteConfig, OffsiteCopy,
    OffsiteState, StoreFile, SyncStats, Tree, TreePass, TreeSend, TreeState, STATE_FILE,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::outcome::Status;
use backup_host::change_log::{ChangeLog, Sealed};
use backup_host::clock::Clock;
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::repository::{RepositoryTarget, TierResult};
use backup_run::{Context, Outcome};

/// One step or tree of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// `backup-root` or the tree's name.
    pub name: String,
    /// Where it went.
    pub dest: String,
    /// Full or incremental (trees only).
    pub pass: Option<TreePass>,
    /// How it ended.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// rsync's numbers.
    pub stats: Option<SyncStats>,
    /// Wall time.
    pub seconds: f64,
    /// What it kept back (step 1: versions protected offsite, withheld, an adopted disk).
    pub note: Option<String>,
}

/// Everything a run did.
#[derive(Debug, Clone, Serialize)]
pub struct OffsiteReport {
    /// Step 1, then each tree.
    pub steps: Vec<StepResult>,
    /// The run's time, for the metrics.
    pub now_unix: i64,
    /// Whether every tree got a full pass that succeeded.
    pub full_sync: bool,
    /// Each tier repository.
    pub tier: Vec<TierResult>,
}

impl OffsiteReport {
    /// Every step done (or planned): a stopped one is not a failure, but not done either.
    fn ok(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.status, Status::Ok | Status::Planned))
    }

    fn stopped(&self) -> bool {
        self.steps.iter().any(|s| s.status == Status::Stopped)
    }

    /// `offsite.stop-at` was reached at `at`: each step the stop cut short is stopped, not
    /// failed (a step that failed for a reason of its own stays failed).
    fn stopped_at(&mut self, at: backup_core::StopAt) {
        for s in &mut self.steps {
            let cut = s
                .error
                .as_deref()
                .is_some_and(|e| e.contains("the run was interrupted"));
            if s.status == Status::Failed && cut {
                s.status = Status::Stopped;
                s.error = Some(format!(
                    "stopped at {at} (offsite.stop-at): what was sent stays, the next run goes on"
                ));
            }
        }
    }
}

impl Outcome for OffsiteReport {
    fn exit(&self) -> Exit {
        let good = self.steps.iter().filter(|s| s.status.is_good()).count();
        Exit::from_counts(good, self.steps.len() - good)
    }

    fn text(&self, dry_run: bool) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let pass = match &s.pass {
                Some(TreePass::Full { reason }) => format!(" full pass ({reason})"),
                Some(TreePass::Incremental { records }) => {
                    format!(
                        " {}",
                        backup_host::human::plural(*records as u64, "changed path")
                    )
                }
                None => String::new(),
            };
            let numbers = s
                .stats
                .map(|st| {
                    format!(
                        ": {}, {} sent, {} deleted",
                        backup_host::human::plural(st.transferred_files, "file"),
                        backup_host::human::bytes(st.transferred_bytes),
                        backup_host::human::count(st.deleted_files)
                    )
                })
                .unwrap_or_default();
            let word = if dry_run && s.status == Status::Ok {
                "would"
            } else {
                s.status.word()
            };
            out.push_str(&format!(
                "  {word:<7} {:<12} -> {}{pass}{numbers} in {:.1} s{}\n",
                s.name,
                s.dest,
                s.seconds,
                s.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
            if let Some(n) = &s.note {
                out.push_str(&format!("          {n}\n"));
            }
        }
        let named = |status: Status| -> Vec<&str> {
            self.steps
                .iter()
                .filter(|s| s.status == status)
                .map(|s| s.name.as_str())
                .collect()
        };
        let (failed, stopped) = (named(Status::Failed), named(Status::Stopped));
        let list = |what: &str, names: &[&str]| {
            if names.is_empty() {
                String::new()
            } else {
                format!(", {what}: {}", names.join(", "))
            }
        };
        out.push_str(&format!(
            "offsite-sync-backup: {} of {} ok{}{}; exit {}",
            self.steps.len() - failed.len() - stopped.len(),
            self.steps.len(),
            list("stopped", &stopped),
            list("failed", &failed),
            self.exit().code()
        ));
        out
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = JobMetrics::offsite_sync();
        let mut m = if self.stopped() && !self.steps.iter().any(|s| s.status == Status::Failed) {
            // stopped at its time, nothing failed: the run did what it was told (no failure),
            // but the offsite copy is not current (the last success does not move)
            vec![job.run_success.gauge(1.0)]
        } else {
            job.outcome(self.ok(), self.now_unix)
        };
        if self.ok() && self.full_sync {
            m.push(names::OFFSITE_FULL_SYNC_LAST_SUCCESS.gauge(self.now_unix as f64));
        }
        let mut trees = names::OFFSITE_TREE_LAST_SUCCESS.labelled();
        for s in self
            .steps
            .iter()
            .filter(|s| s.status == Status::Ok && s.pass.is_some())
        {
            trees = trees.with_sample(&[("tree", s.name.as_str())], self.now_unix as f64);
        }
        if !trees.samples.is_empty() {
            m.push(trees);
        }
        let (mut sent, mut added, mut size, mut ran) = (
            names::OFFSITE_TIER_LAST_SUCCESS.labelled(),
            names::OFFSITE_TIER_BYTES_ADDED.labelled(),
            names::OFFSITE_TIER_REPOSITORY_BYTES.labelled(),
            names::OFFSITE_TIER_LAST_RUN_SUCCESS.labelled(),
        );
        // a repository the stop cut short neither succeeded nor failed: no sample
        let stopped: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.status == Status::Stopped)
            .filter_map(|s| s.name.strip_prefix("tier:").map(str::to_owned))
            .collect();
        for t in self
            .tier
            .iter()
            .filter(|t| t.planned.is_empty() && !stopped.contains(&t.name))
        {
            let ok = if t.error.is_none() { 1.0 } else { 0.0 };
            ran = ran.with_sample(&[("repository", t.name.as_str())], ok);
        }
        if !ran.samples.is_empty() {
            m.push(ran);
        }
        for t in self
            .tier
            .iter()
            .filter(|t| t.error.is_none() && t.planned.is_empty())
        {
            let bytes: u64 = t.snapshots.iter().map(|s| s.bytes_added).sum();
            sent = sent.with_sample(&[("repository", t.name.as_str())], self.now_unix as f64);
            added = added.with_sample(&[("repository", t.name.as_str())], bytes as f64);
            if let Some(b) = t.repository_bytes {
                size = size.with_sample(&[("repository", t.name.as_str())], b as f64);
            }
        }
        if !sent.samples.is_empty() {
            m.push(sent);
            m.push(added);
        }
        if !size.samples.is_empty() {
            m.push(size);
        }
        vec![MetricGroup::new(&job.job, m)]
    }
}

/// What a run may override.
#[derive(Debug, Clone, Copy, Default)]
pub struct OffsiteOptions {
    /// Full passes of every tree.
    pub full: bool,
    /// Accept an empty source and more deletions than `max-delete`, for this run.
    pub force: bool,
    /// Step 1 to a copy last synced from another backup disk: this disk replaces it; a tier
    /// repository whose id changed: it replaces the old one.
    pub adopt: bool,
    /// Only the encrypted tier (`[[offsite.repository]]`), not step 1 or the trees.
    pub tier_only: bool,
}

/// What step 1 leaves out: locks, the change log and its segments, the offsite state, temp
/// files of atomic writes, SQLite scratch, partial snapshot copies and the updates a daily run
/// stages beside a version (`pvc-data/<week>/.staging/`).
fn excludes(cfg: &Config, o: &OffsiteConfig) -> Vec<String> {
    let mut out = vec![
        "/.daily-backup.lock".to_owned(),
        format!("/{STATE_FILE}"),
        ".*.tmp-*".to_owned(),
        ".sqlite-recover-*/".to_owned(),
        ".sqlite-copy-*".to_owned(),
        ".*.partial*".to_owned(),
        "/pvc-data/*/.staging/".to_owned(),
        "/pvc-data/*/.repaired/".to_owned(),
        format!("/{MIRROR_DIR}/"),
    ];
    if let Ok(rel) = o.change_log.strip_prefix(&cfg.backup_root) {
        out.push(format!("/{rel}*"));
    }
    out
}

/// Refuses a backup root that is not the backup disk, and waits for a running daily-backup
/// (its lock, held until step 1 ends: a week is never sent half written). `None` under
/// `--dry-run`.
fn step_one_may_run(
    deps: &OffsiteDeps<'_>,
    cfg: &Config,
    o: &OffsiteConfig,
) -> Result<Option<backup_host::lock::RunLock>> {
    let root = &cfg.backup_root;
    // a backup root that is not the backup disk (unmounted: an empty folder on `/`) would
    // make --delete wipe pve-backup/ offsite
    if !root.join("pvc-data").is_dir() {
        return Err(Error::Core(
            backup_core::Refusal::NotTheBackupDisk {
                path: root.clone(),
                why: "it has no pvc-data/ folder".to_owned(),
            }
            .into(),
        ));
    }
    if o.require_mount && backup_host::mounts::mount_point_options(root)?.is_none() {
        return Err(Error::Core(
            backup_core::Refusal::NotTheBackupDisk {
                path: root.clone(),
                why: "it is not a mount point (offsite.require-mount = true)".to_owned(),
            }
            .into(),
        ));
    }
    // a week is never sent half written: wait for a running daily-backup
    Ok(if deps.dry_run {
        None
    } else {
        Some(
            backup_host::lock::RunLock::acquire_within(
                &backup_core::BackupRoot::new(root).lock_file(),
                std::time::Duration::from_secs(o.daily_wait_seconds),
            )
            .map_err(|e| match e {
                Error::Locked { path } => Error::Refused(format!(
                    "daily-backup still holds {path} after {} s (offsite.daily-wait-seconds): \
                     step 1 not run",
                    o.daily_wait_seconds
                )),
                other => other,
            })?,
        )
    })
}

/// A version is never sent half swapped: what a killed daily run left is finished or dropped
/// first, in every week (the daily lock is held). Returns what was done, and the versions that
/// cannot be recovered: those are not sent.
fn recover_before_sending(
    deps: &OffsiteDeps<'_>,
    root: &Utf8Path,
) -> (Vec<String>, Vec<backup_core::WeekVersion>) {
    let (mut notes, mut held) = (Vec::new(), Vec::new());
    if deps.dry_run {
        return (notes, held);
    }
    let recovered = backup_host::version_commit::recover_all(&backup_core::BackupRoot::new(root));
    notes.extend(recovered.said);
    for (week, ns, pvc, why) in recovered.failed {
        notes.push(format!(
            "not sent, its update cannot be finished: {ns}/{pvc} {week} ({why})"
        ));
        held.push(backup_core::WeekVersion {
            week,
            namespace: ns,
            pvc,
            completed_at: None,
        });
    }
    (notes, held)
}

fn step_one(
    deps: &OffsiteDeps<'_>,
    cfg: &Config,
    o: &OffsiteConfig,
    opts: OffsiteOptions,
) -> Result<(Option<SyncStats>, Option<String>)> {
    let root = &cfg.backup_root;
    let _daily = step_one_may_run(deps, cfg, o)?;
    let (mut notes, unsafe_versions) = recover_before_sending(deps, root);
    let mut guard = step_one_guard(deps, cfg, o, opts)?;
    notes.extend(guard.note.clone());
    let (held, _) = guard_filters(
        &backup_core::StepOnePlan {
            protect: Vec::new(),
            withhold: unsafe_versions.clone(),
        },
        backup_core::Series::Pvc,
    );
    // first: rsync takes the first rule that matches
    guard.filters.splice(0..0, held);
    let (resend, repaired) = if deps.dry_run {
        (Vec::new(), Vec::new())
    } else {
        resend_list(deps, cfg, &guard.mirror, &unsafe_versions)?
    };
    let mut stats = None;
    if !resend.is_empty() {
        let (_list, list_path) = temp_list(&resend)?;
        stats = deps.nas.resend(root, &list_path)?;
        notes.push(format!(
            "sent again {} whose offsite copy its record there does not vouch for",
            backup_host::human::plural(resend.len() as u64, "file")
        ));
    }
    let main = deps
        .nas
        .send_root(root, &guard.filters, &excludes(cfg, o))?;
    let store_root = backup_core::BackupRoot::new(root);
    for v in &repaired {
        backup_host::version_commit::clear_repaired(&store_root, v.week, &v.namespace, &v.pvc)?;
    }
    if let (Some(total), Some(m)) = (stats.as_mut(), main.as_ref()) {
        total.add(m);
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok((stats.or(main), note))
}

/// Where step 1 keeps its mirror of what it reads of the offsite copy (the disk's id, the
/// markers, the weekly trees' weeks, the records): `<backup-root>/.offsite-mirror/`.
const MIRROR_DIR: &str = ".offsite-mirror";

/// The files of the backup root that step 1 must send again whatever their size and mtime
/// (paths relative to the root), and the versions whose repaired lists they include: for each
/// complete version, every file the record offsite does not vouch for
/// ([`backup_core::resend_paths`]: a rerun that rewrote a file keeping its size and mtime, a
/// mode or ACL changed in a new inode) and every file repaired since step 1 last ran. A version
/// offsite has no record of yet is sent whole by rsync anyway.
fn resend_list(
    deps: &OffsiteDeps<'_>,
    cfg: &Config,
    mirror: &Utf8Path,
    skip: &[backup_core::WeekVersion],
) -> Result<(Vec<Vec<u8>>, Vec<backup_core::WeekVersion>)> {
    let root = backup_core::BackupRoot::new(&cfg.backup_root);
    let store = deps.store;
    let mut list = Vec::new();
    let mut repaired = Vec::new();
    for v in store.list_versions(backup_core::Series::Pvc)? {
        let held = skip
            .iter()
            .any(|h| (h.week, &h.namespace, &h.pvc) == (v.week, &v.namespace, &v.pvc));
        if !v.is_complete() || held {
            continue;
        }
        let (w, ns, pvc) = (v.week, &v.namespace, &v.pvc);
        let theirs = mirror
            .join("pvc-data")
            .join(w.to_string())
            .join(".records")
            .join(ns)
            .join(pvc);
        // the record offsite is the one here (step 1 sent it with its size and mtime): no
        // record is read, the common case of every run for every older week
        let same_record =
            |mine: &Utf8Path| match (std::fs::metadata(mine), std::fs::metadata(&theirs)) {
                (Ok(a), Ok(b)) => a.len() == b.len() && a.modified().ok() == b.modified().ok(),
                _ => false,
            };
        let mine = backup_host::version_commit::record_path(&root, w, ns, pvc);
        let compare = std::fs::symlink_metadata(&theirs).is_ok() && !same_record(&mine);
        let fixed = backup_host::version_commit::repaired(&root, w, ns, pvc);
        if !compare && fixed.is_empty() {
            continue;
        }
        let Some(here) = backup_host::version_commit::read_record(&root, w, ns, pvc) else {
            continue; // no record here: nothing to judge by
        };
        let mut paths = std::collections::BTreeSet::new();
        if compare {
            // a record offsite that does not decode vouches for nothing
            let sent = backup_host::safe_read::read_regular(&theirs)
                .ok()
                .and_then(|b| backup_core::decode_record(&b).ok())
                .unwrap_or_default();
            paths.extend(backup_core::resend_paths(&sent, &here));
        }
        if !fixed.is_empty() {
            let files: std::collections::BTreeSet<&[u8]> = here
                .iter()
                .filter(|e| e.kind == backup_core::EntryKind::File)
                .map(|e| e.path.as_slice())
                .collect();
            paths.extend(fixed.into_iter().filter(|p| files.contains(p.as_slice())));
            repaired.push(v.clone());
        }
        let prefix = format!("pvc-data/{w}/{ns}/{pvc}/");
        list.extend(paths.into_iter().map(|p| [prefix.as_bytes(), &p].concat()));
    }
    Ok((list, repaired))
}

/// What step 1 must not do, worked out before rsync runs.
struct StepOneGuard {
    /// `--filter` rules: protect offsite versions the disk lacks, withhold incomplete ones.
    filters: Vec<String>,
    /// What was kept back, for the report.
    note: Option<String>,
    /// Where the offsite copy's id, markers and records were mirrored.
    mirror: Utf8PathBuf,
    /// Holds a dry run's mirror (a temp folder) while step 1 runs.
    _scratch: Option<tempfile::TempDir>,
}

/// The identity check and the deletion rule of step 1: the backup root must be the one the
/// offsite copy was last synced from (else refused, unless `--adopt`), and a version leaves the
/// offsite copy only when the backup disk's retention removed it (see
/// [`backup_core::plan_step_one`]).
fn step_one_guard(
    deps: &OffsiteDeps<'_>,
    cfg: &Config,
    o: &OffsiteConfig,
    opts: OffsiteOptions,
) -> Result<StepOneGuard> {
    let root = &cfg.backup_root;
    let pve_backup = deps.nas.folder("pve-backup");
    let local_id = if deps.dry_run {
        backup_host::root_id::read(root)?
    } else {
        Some(backup_host::root_id::ensure(root)?)
    };
    let view = read_offsite(deps, cfg, &pve_backup)?;
    let offsite_id = view.id.clone();
    if let (Some(theirs), Some(ours)) = (&offsite_id, &local_id) {
        if theirs != ours && !opts.adopt {
            return Err(Error::Refused(format!(
                "the backup disk ({root}, id {ours}) is not the disk {pve_backup} was synced \
                 from (id {theirs}): a new, wiped or other disk would make step 1 delete the \
                 offsite history. Nothing was sent. If this disk replaces the old one on \
                 purpose, run `offsite-sync-backup --adopt` once: the offsite versions stay \
                 until this disk's own retention would have removed them"
            )));
        }
    }
    // a version leaves the offsite copy only when this disk's retention removed it: the PVCs'
    // versions, and the weeks of pve-config/ and pfsense/ beside them
    let (mut filters, mut notes) = (Vec::new(), Vec::new());
    for series in [
        backup_core::Series::Pvc,
        backup_core::Series::PveConfig,
        backup_core::Series::Pfsense,
    ] {
        let offsite: Vec<backup_core::WeekVersion> = match series {
            backup_core::Series::Pvc => view.versions.clone(),
            tree => view
                .trees
                .iter()
                .filter(|v| v.namespace == tree_name(tree))
                .cloned()
                .collect(),
        };
        let plan = backup_core::plan_step_one(
            &cfg.pvc_backup.policy,
            o.weekly_versions,
            &deps.store.list_versions(series)?,
            &offsite,
            deps.now,
        )?;
        let (f, n) = guard_filters(&plan, series);
        filters.extend(f);
        notes.extend(n);
    }
    if offsite_id.is_some() && offsite_id != local_id && opts.adopt {
        notes.push(format!(
            "adopted: {pve_backup} now follows this disk ({})",
            local_id.as_deref().unwrap_or("id written by the real run")
        ));
    }
    Ok(StepOneGuard {
        filters,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        mirror: view.dir,
        _scratch: view.scratch,
    })
}

/// What step 1 read of the offsite copy ([`OffsiteCopy::read_root`]).
struct OffsiteView {
    /// The mirror: `<backup-root>/.offsite-mirror/`, or a temp folder under `--dry-run`
    /// (without the records: a dry run sends nothing again).
    dir: Utf8PathBuf,
    /// The temp folder of a dry run.
    scratch: Option<tempfile::TempDir>,
    /// The id of the disk the offsite copy was last synced from (`None`: none yet).
    id: Option<String>,
    /// The complete PVC versions, from their markers (completed at the time a marker holds).
    versions: Vec<backup_core::WeekVersion>,
    /// The weeks of `pve-config/` and `pfsense/` (namespace and pvc: the tree's name; completed
    /// at its marker's time, else its folder's mtime: what the policy's time buckets need).
    trees: Vec<backup_core::WeekVersion>,
}

/// The entries of `dir` that parse as `T`, with their metadata (none when `dir` is missing).
fn parsed_entries<T: std::str::FromStr>(dir: &Utf8Path) -> Vec<(String, T, std::fs::Metadata)> {
    let mut out: Vec<(String, T, std::fs::Metadata)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let parsed = name.parse().ok()?;
            Some((name, parsed, e.metadata().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// When a version offsite was completed: the time its marker holds (what the disk's own
/// policy reads too), else the mtime of the marker or folder (`m`), else `now`.
fn completed(marker: &Utf8Path, m: &std::fs::Metadata, now: DateTime<Utc>) -> DateTime<Utc> {
    backup_host::safe_read::read_regular_string(marker)
        .ok()
        .and_then(|t| backup_core::parse_marker(&t))
        .or_else(|| m.modified().ok().map(DateTime::<Utc>::from))
        .unwrap_or(now)
}

/// The complete versions the mirror of the offsite copy in `dir` shows: the PVCs' (from their
/// markers), and the PVE config's and pfSense's weeks; a marker's time is its completion.
fn mirrored_versions(
    dir: &Utf8Path,
    now: DateTime<Utc>,
) -> (Vec<backup_core::WeekVersion>, Vec<backup_core::WeekVersion>) {
    let mut versions = Vec::new();
    for (_, week, _) in parsed_entries::<backup_core::IsoWeek>(&dir.join("pvc-data")) {
        let complete = dir
            .join("pvc-data")
            .join(week.to_string())
            .join(".complete");
        for (namespace, _, _) in parsed_entries::<String>(&complete) {
            for (pvc, _, m) in parsed_entries::<String>(&complete.join(&namespace)) {
                if !m.is_file() {
                    continue;
                }
                let at = completed(&complete.join(&namespace).join(&pvc), &m, now);
                versions.push(backup_core::WeekVersion {
                    week,
                    namespace: namespace.clone(),
                    pvc,
                    completed_at: Some(at),
                });
            }
        }
    }
    let mut trees = Vec::new();
    for tree in [
        tree_name(backup_core::Series::PveConfig),
        tree_name(backup_core::Series::Pfsense),
    ] {
        for (_, week, m) in parsed_entries::<backup_core::IsoWeek>(&dir.join(tree)) {
            if m.is_dir() {
                let marker = dir.join(tree).join(week.to_string()).join(".complete");
                let at = completed(&marker, &m, now);
                trees.push(backup_core::WeekVersion {
                    week,
                    namespace: tree.to_owned(),
                    pvc: tree.to_owned(),
                    completed_at: Some(at),
                });
            }
        }
    }
    (versions, trees)
}

/// Mirrors what step 1 needs of `<pve_backup>` and reads it.
fn read_offsite(deps: &OffsiteDeps<'_>, cfg: &Config, pve_backup: &str) -> Result<OffsiteView> {
    let (dir, scratch) = if deps.dry_run {
        let t = tempfile::tempdir().map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
        let dir = Utf8PathBuf::from_path_buf(t.path().to_owned()).map_err(|_| {
            Error::Refused("the temp folder (TMPDIR) is not a UTF-8 path".to_owned())
        })?;
        (dir, Some(t))
    } else {
        let dir = cfg.backup_root.join(MIRROR_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        (dir, None)
    };
    match deps.nas.read_root(&dir, !deps.dry_run)? {
        MirrorRead::Read => {}
        MirrorRead::Failed(why) => {
            return Err(Error::Refused(format!(
                "cannot read {pve_backup} (the disk's id, the versions and their records): {why}"
            )));
        }
        MirrorRead::Nothing => {
            // nothing offsite yet: the mirror must not keep what an older copy held
            backup_host::fsutil::remove_tree(&dir)?;
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        }
    }
    let id = backup_host::safe_read::read_regular(dir.join(backup_host::root_id::ROOT_ID_FILE))
        .ok()
        .and_then(|b| backup_host::root_id::parse(&b));
    let (versions, trees) = mirrored_versions(&dir, deps.now);
    Ok(OffsiteView {
        dir,
        scratch,
        id,
        versions,
        trees,
    })
}

/// rsync `--filter` rules for a plan (protect what stays offsite, withhold what is incomplete
/// here), and what they keep back, for the report.
fn guard_filters(
    plan: &backup_core::StepOnePlan,
    series: backup_core::Series,
) -> (Vec<String>, Vec<String>) {
    let paths = |v: &backup_core::WeekVersion| {
        let (w, ns, pvc) = (v.week, &v.namespace, &v.pvc);
        match series {
            backup_core::Series::Pvc => vec![
                format!("/pvc-data/{w}/{ns}/{pvc}/"),
                format!("/pvc-data/{w}/.complete/{ns}/{pvc}"),
                format!("/pvc-data/{w}/.records/{ns}/{pvc}"),
                format!("/pvc-data/{w}/.damaged/{ns}/{pvc}"),
                format!("/sqlite-backup/{w}/{ns}/{pvc}/"),
            ],
            tree => vec![format!("/{}/{w}/", tree_name(tree))],
        }
    };
    let mut filters = Vec::new();
    for v in plan.protect.iter().chain(&plan.withhold) {
        filters.extend(paths(v).into_iter().map(|p| format!("P {p}")));
    }
    for v in &plan.withhold {
        filters.extend(paths(v).into_iter().map(|p| format!("- {p}")));
    }
    let name = |v: &backup_core::WeekVersion| match series {
        backup_core::Series::Pvc => format!("{}/{} {}", v.namespace, v.pvc, v.week),
        tree => format!("{} {}", tree_name(tree), v.week),
    };
    let list = |vs: &[backup_core::WeekVersion]| vs.iter().map(name).collect::<Vec<_>>().join(", ");
    let mut notes = Vec::new();
    if !plan.protect.is_empty() {
        notes.push(format!(
            "kept offsite, not on this disk: {}",
            list(&plan.protect)
        ));
    }
    if !plan.withhold.is_empty() {
        notes.push(format!(
            "not sent, incomplete here and complete offsite: {}",
            list(&plan.withhold)
        ));
    }
    (filters, notes)
}

/// The folder of a weekly tree under the backup root (`pve-config`, `pfsense`; `pvc-data` for
/// the PVCs).
fn tree_name(series: backup_core::Series) -> &'static str {
    match series {
        backup_core::Series::Pvc => "pvc-data",
        backup_core::Series::PveConfig => "pve-config",
        backup_core::Series::Pfsense => "pfsense",
    }
}

/// Why the change log cannot speak for the tree's root as it is now: the root is not the one
/// the tracker says it watches (replaced, mounted over, gone), or the tracker never said.
fn root_not_watched(log: &ChangeLog, tree: &backup_core::Tree) -> Option<String> {
    let now = backup_host::change_log::RootIdentity::show(
        backup_host::change_log::RootIdentity::of(tree.source.as_std_path()),
    );
    match log.read_root(&tree.name) {
        Some(watched) if watched == now => None,
        Some(watched) => Some(format!(
            "the tree root is not the one the tracker watched (device and inode {watched}, now \
             {now})"
        )),
        None => Some("the tracker has not recorded which tree root it watches".to_owned()),
    }
}

fn tree_step(
    deps: &OffsiteDeps<'_>,
    o: &OffsiteConfig,
    tree: &backup_core::Tree,
    log: &ChangeLog,
    state: &TreeState,
    opts: OffsiteOptions,
    taken: Result<Sealed>,
) -> (Option<TreePass>, Result<Option<SyncStats>>) {
    let taken = match taken {
        Ok(t) => t,
        Err(e) => return (None, Err(e)),
    };
    let untrusted = taken
        .full_pass
        .clone()
        .or_else(|| {
            (!log.tracker_running()).then(|| "nfs-change-tracker is not running".to_owned())
        })
        .or_else(|| root_not_watched(log, tree));
    let pass = plan_tree_pass(
        untrusted.as_deref(),
        state.last_success,
        state.last_full_success,
        o.monthly_full_pass,
        opts.full,
        deps.now,
        taken.records.len(),
    );
    let result = (|| -> Result<Option<SyncStats>> {
        let stats = match &pass {
            TreePass::Incremental { records: 0 } => Some(SyncStats::default()),
            TreePass::Incremental { .. } => incremental_pass(
                deps,
                tree,
                &taken.records,
                state.last_success_wall,
                (!opts.force).then_some(o.max_delete),
            )?,
            TreePass::Full { .. } => full_pass(deps, o, tree, opts)?,
        };
        if !deps.dry_run {
            log.finish(&tree.name, &taken, matches!(pass, TreePass::Full { .. }))?;
        }
        Ok(stats)
    })();
    (Some(pass), result)
}

/// A NUL-separated list of `paths` in a temp file, for `--from0 --files-from`.
fn temp_list(paths: &[Vec<u8>]) -> Result<(tempfile::NamedTempFile, Utf8PathBuf)> {
    let list = tempfile::NamedTempFile::new()
        .map_err(|e| Error::io("create a temp file in", "/tmp", e))?;
    std::fs::write(list.path(), files_from(paths))
        .map_err(|e| Error::io("write", list.path().display().to_string(), e))?;
    let path = Utf8PathBuf::from_path_buf(list.path().to_owned()).map_err(|p| {
        Error::Refused(format!(
            "the temp path {} is not UTF-8 (TMPDIR)",
            p.display()
        ))
    })?;
    Ok((list, path))
}

/// What `rel` (relative to `root`) is, never through a symlink: missing when it, or anything
/// above it, is not there or not a real folder.
fn kind_in(root: &Utf8Path, rel: &[u8]) -> backup_core::PathKind {
    use backup_core::PathKind;
    use std::os::unix::ffi::OsStrExt;
    let mut path = root.as_std_path().to_path_buf();
    let parts: Vec<&[u8]> = rel
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(std::ffi::OsStr::from_bytes(part));
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) if i + 1 == parts.len() => return PathKind::Other,
            _ => return PathKind::Missing,
        }
    }
    PathKind::Folder
}

/// The incremental pass of a tree ([`backup_core::plan_incremental`]): the recorded paths that
/// exist sent with `-r`, then the folders above the gone ones one level deep with `--delete`
/// (counted first: more than `max_delete` refuses; `None`: `--force`), and the folders
/// that hold a changed path given their times.
fn incremental_pass(
    deps: &OffsiteDeps<'_>,
    tree: &backup_core::Tree,
    records: &[Vec<u8>],
    last_wall: Option<DateTime<Utc>>,
    max_delete: Option<u64>,
) -> Result<Option<SyncStats>> {
    // a folder is touched when its mtime is not older than the last sync's start (2 s of
    // margin for coarse time stamps); without a known start, every folder is
    let since = last_wall.map(|t| t - chrono::Duration::seconds(2));
    let touched = |p: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        let path = tree
            .source
            .as_std_path()
            .join(std::ffi::OsStr::from_bytes(p));
        match (
            since,
            std::fs::symlink_metadata(path).and_then(|m| m.modified()),
        ) {
            (Some(since), Ok(m)) => DateTime::<Utc>::from(m) >= since,
            _ => true,
        }
    };
    let plan = backup_core::plan_incremental(records, |p| kind_in(&tree.source, p), touched);
    let mut stats: Option<SyncStats> = None;
    let mut add = |s: Option<SyncStats>| {
        if let Some(s) = s {
            let t = stats.get_or_insert_with(SyncStats::default);
            t.add(&s);
        }
    };
    let (_send_list, send_list) = temp_list(&plan.send)?;
    let (_folders_list, folders_list) = temp_list(&plan.folders)?;
    let max = max_delete.filter(|_| plan.deletes);
    if let Some(max) = max {
        // what the folders pass would delete, counted before any deletion is made; a folder a
        // file now replaces is counted there too (what it held is recorded gone, so its level
        // is listed): counting the sending pass as well would count it twice
        let count = deps.nas.count_deletions(
            tree,
            TreeSend::Folders {
                list: &folders_list,
                max_delete: None,
            },
        )?;
        check_deletions(count, tree, "the incremental pass", max)?;
    }
    if !plan.send.is_empty() {
        add(deps
            .nas
            .send_tree(tree, TreeSend::Listed { list: &send_list })?);
    }
    if !plan.folders.is_empty() {
        let how = TreeSend::Folders {
            list: &folders_list,
            max_delete: max,
        };
        add(deps.nas.send_tree(tree, how)?);
    }
    Ok(stats.or(Some(SyncStats::default())))
}

/// Refuses a pass that would delete `count` paths offsite when that is more than `max`:
/// counted before any deletion is made, so tripping the bound loses nothing.
fn check_deletions(
    count: u64,
    tree: &backup_core::Tree,
    pass: &'static str,
    max: u64,
) -> Result<()> {
    if count > max {
        return Err(Error::Core(
            backup_core::Refusal::TooManyDeletions {
                tree: tree.name.clone(),
                pass,
                count,
                max,
            }
            .into(),
        ));
    }
    Ok(())
}

fn full_pass(
    deps: &OffsiteDeps<'_>,
    o: &OffsiteConfig,
    tree: &backup_core::Tree,
    opts: OffsiteOptions,
) -> Result<Option<SyncStats>> {
    let source: &Utf8Path = &tree.source;
    let empty = backup_host::fsutil::has_entries(source).map(|has| !has)?;
    if empty && !opts.force {
        return Err(Error::Core(
            backup_core::Refusal::EmptyTree {
                tree: tree.name.clone(),
                source_dir: source.to_owned(),
            }
            .into(),
        ));
    }
    let max = (!opts.force).then_some(o.max_delete);
    if let Some(max) = max {
        let count = deps
            .nas
            .count_deletions(tree, TreeSend::Full { max_delete: None })?;
        check_deletions(count, tree, "a full pass", max)?;
    }
    Ok(deps
        .nas
        .send_tree(tree, TreeSend::Full { max_delete: max })?)
}

/// `p` with symlinks and `..` resolved as far as it exists (the rest appended as written).
fn resolved(p: &Utf8Path) -> Utf8PathBuf {
    let mut existing = p.to_owned();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(str::to_owned), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut real = existing.canonicalize_utf8().unwrap_or(existing);
    for n in rest.iter().rev() {
        real.push(n);
    }
    real
}

/// Refuses a local destination that is, once symlinks and `..` are resolved, inside or around
/// the backup root or a tree's source: the config check compares the paths as written, and a
/// symlink there nested a deeper copy of the backup root into itself every run.
fn destination_apart(cfg: &Config, o: &OffsiteConfig) -> Result<()> {
    if o.is_remote() {
        return Ok(());
    }
    let dest = resolved(Utf8Path::new(&o.destination));
    let sources = std::iter::once(("backup-root", &cfg.backup_root))
        .chain(o.trees.iter().map(|t| ("a tree's source", &t.source)));
    for (what, p) in sources {
        let real = resolved(p);
        if dest.starts_with(&real) || real.starts_with(&dest) {
            return Err(Error::Usage(format!(
                "offsite.destination {} is {dest} once symlinks are followed, inside or around \
                 {what} {p} ({real}): the copy would be sent into itself; give a destination \
                 apart from both",
                o.destination
            )));
        }
    }
    Ok(())
}

/// The whole `offsite-sync-backup` job.
///
/// # Errors
/// Without `[offsite]`; when the state cannot be read. Steps and trees that fail are in the
/// report (exit 3, or 1 when none succeeded).
pub fn job(ctx: &Context<'_>, opts: OffsiteOptions) -> Result<OffsiteReport> {
    let cfg = ctx.cfg()?;
    let o = cfg
        .offsite
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("no [offsite] in {}: nowhere to send to", cfg.file)))?;
    let store = ctx.store()?;
    let nas = ctx.offsite_copy(o);
    let deps = OffsiteDeps {
        cfg,
        now: ctx.now,
        dry_run: ctx.dry_run(),
        nas: nas.as_ref(),
        store: store.as_ref(),
    };
    let targets = ctx.repositories()?;
    let Some(at) = o.stop_at.filter(|_| !ctx.dry_run()) else {
        return job_of(&deps, &targets, opts);
    };
    // at `stop-at` the run is told to stop as SIGTERM would tell it (running transfers are
    // ended, nothing new starts), and what that cut short is reported stopped
    let wait = (stop_deadline(ctx.now, at) - ctx.now)
        .to_std()
        .unwrap_or_default();
    let (done, reached) = (AtomicBool::new(false), AtomicBool::new(false));
    let mut report = std::thread::scope(|s| {
        let timer = s.spawn(|| {
            let started = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) {
                if started.elapsed() >= wait {
                    // a signal first: the stop is the signal's, not the clock's
                    if !ctx.signalled.load(Ordering::SeqCst) {
                        reached.store(true, Ordering::SeqCst);
                    }
                    ctx.stop.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::park_timeout(std::time::Duration::from_millis(100));
            }
        });
        // the timer ends with the job, also when the job panics (the scope would wait for it
        // until the stop time)
        let _ends = Ends(&done, timer.thread());
        job_of(&deps, &targets, opts)
    })?;
    if reached.load(Ordering::SeqCst) {
        report.stopped_at(at);
    }
    Ok(report)
}

/// Sets `done` and wakes the timer when dropped: at the end of the job, or while a panic
/// unwinds it.
struct Ends<'a>(&'a AtomicBool, &'a std::thread::Thread);

impl Drop for Ends<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.unpark();
    }
}

/// The first `at` (the host's local time) after `now`: tonight's, or tomorrow's when it has
/// passed. A time the clock skips (a DST change) is taken an hour later.
pub fn stop_deadline(now: DateTime<Utc>, at: backup_core::StopAt) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    let local = now.with_timezone(&chrono::Local).date_naive();
    (0..3)
        .filter_map(|day| {
            let date = local + chrono::Days::new(day);
            let naive = date.and_hms_opt(at.hour, at.minute, 0)?;
            // in a gap of the local clock, an hour later exists
            chrono::Local
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    chrono::Local
                        .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })
        })
        .map(|t| t.with_timezone(&Utc))
        .find(|t| *t > now)
        .unwrap_or(now)
}

/// The ports of the offsite job: the configuration, the run's time, the NAS (under `--dry-run`
/// it records what would change), the backup root. The tier's
/// repositories are passed beside them (they are not shared with step 1's thread).
pub struct OffsiteDeps<'a> {
    /// The configuration (`[offsite]`).
    pub cfg: &'a Config,
    /// The run's time (`--now`): the change log's seal, the state's stamps, the full pass.
    pub now: DateTime<Utc>,
    /// `--dry-run`: transfers are recorded, not made; nothing is written.
    pub dry_run: bool,
    /// The NAS: its copy of the backup root and of each tree.
    pub nas: &'a dyn OffsiteCopy,
    /// The backup root: its versions, the offsite state.
    pub store: &'a dyn backup_core::BackupStore,
}

/// [`job`] from `deps`, sending to the tier's `targets` after step 1 and the trees.
///
/// # Errors
/// Without `[offsite]`; a destination inside the backup root; when the state cannot be
/// written. Steps and trees that fail are in the report.
pub fn job_of(
    deps: &OffsiteDeps<'_>,
    targets: &[Box<dyn RepositoryTarget + '_>],
    opts: OffsiteOptions,
) -> Result<OffsiteReport> {
    let cfg = deps.cfg;
    let o = cfg
        .offsite
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("no [offsite] in {}: nowhere to send to", cfg.file)))?;
    destination_apart(cfg, o)?;
    let store = deps.store;
    let mut state: OffsiteState = store
        .read(StoreFile::OffsiteState)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let (mut steps, full_sync) = if opts.tier_only {
        (Vec::new(), false)
    } else {
        rsync_steps(deps, o, &mut state, opts)?
    };
    let tier = run_tier(deps.dry_run, targets, &mut state, opts.adopt, &mut steps);
    let json = serde_json::to_vec_pretty(&state).unwrap_or_default();
    store.write(StoreFile::OffsiteState, &json)?;
    Ok(OffsiteReport {
        steps,
        now_unix: deps.now.timestamp(),
        full_sync,
        tier,
    })
}

/// Step 1 and the trees, side by side; the state updated with their successes.
fn rsync_steps(
    deps: &OffsiteDeps<'_>,
    o: &OffsiteConfig,
    state: &mut OffsiteState,
    opts: OffsiteOptions,
) -> Result<(Vec<StepResult>, bool)> {
    let cfg = deps.cfg;
    // the kernel's clock, not `--now`: it is compared with folders' mtimes by the next sync
    let wall = Clock::file_time();
    // the records present when the sync starts: what is logged from here on waits for the next
    let log = ChangeLog::new(&o.change_log);
    let stamp = deps.now.format("%Y%m%dT%H%M%S%.9fZ").to_string();
    let mut taken: Vec<Result<Sealed>> = o
        .trees
        .iter()
        .map(|t| log.take(&t.name, &stamp, !deps.dry_run))
        .collect();
    // rsync reports nothing until it ends: the bar (or the journal's line a minute) says what
    // runs and for how long
    let _phase = (!deps.dry_run).then(|| {
        let p = backup_host::progress::start("offsite", backup_host::progress::Totals::default());
        backup_host::progress::message("step 1 (the backup disk) and the trees");
        p
    });
    // step 1 and the trees go to different folders and share nothing: side by side, a run
    // costs the longer of the two, not their sum
    let (one, trees) = std::thread::scope(|s| {
        let one = s.spawn(|| {
            let started = std::time::Instant::now();
            (step_one(deps, cfg, o, opts), started)
        });
        let trees: Vec<_> = o
            .trees
            .iter()
            .zip(taken.drain(..))
            .map(|(tree, taken)| {
                backup_host::progress::message(&format!("step 1 and the tree {}", tree.name));
                let started = std::time::Instant::now();
                let ts = state.trees.get(&tree.name).cloned().unwrap_or_default();
                let (pass, result) = tree_step(deps, o, tree, &log, &ts, opts, taken);
                (tree, pass, result, started)
            })
            .collect();
        let one = one.join().unwrap_or_else(|_| {
            (
                Err(Error::Internal("step 1 panicked".to_owned())),
                std::time::Instant::now(),
            )
        });
        (one, trees)
    });
    let (one, started) = one;
    if one.is_ok() {
        state.backup_root = Some(deps.now);
    }
    let (one, note) = match one {
        Ok((stats, note)) => (Ok(stats), note),
        Err(e) => (Err(e), None),
    };
    let mut first = step_result(
        "backup-root",
        deps.nas.folder("pve-backup"),
        None,
        one,
        started,
    );
    first.note = note;
    let mut steps = vec![first];
    let full_sync = tree_results(deps.nas, state, o, trees, (deps.now, wall), &mut steps);
    Ok((steps, full_sync))
}

/// One tree's sync as it ended: the tree, its pass, its result and when it started.
type TreeRun<'t> = (
    &'t Tree,
    Option<TreePass>,
    Result<Option<SyncStats>>,
    std::time::Instant,
);

/// The trees' results into `steps` and their successes into `state` (`now` the run's time,
/// `wall` the kernel's at its start); whether every tree made a full pass that succeeded.
fn tree_results(
    nas: &dyn OffsiteCopy,
    state: &mut OffsiteState,
    o: &OffsiteConfig,
    trees: Vec<TreeRun<'_>>,
    (now, wall): (DateTime<Utc>, DateTime<Utc>),
    steps: &mut Vec<StepResult>,
) -> bool {
    let mut full_sync = !o.trees.is_empty();
    for (tree, pass, result, started) in trees {
        let ts = state.trees.entry(tree.name.clone()).or_default();
        let is_full = matches!(pass, Some(TreePass::Full { .. }));
        full_sync &= is_full && result.is_ok();
        if result.is_ok() {
            ts.last_success = Some(now);
            ts.last_success_wall = Some(wall);
            if is_full {
                ts.last_full_success = Some(now);
            }
        }
        steps.push(step_result(
            &tree.name,
            nas.folder(&tree.name),
            pass,
            result,
            started,
        ));
    }
    full_sync
}

/// The encrypted tier, after step 1 and the trees: each repository in turn, as one more step.
fn run_tier(
    dry_run: bool,
    targets: &[Box<dyn RepositoryTarget + '_>],
    state: &mut OffsiteState,
    adopt: bool,
    steps: &mut Vec<StepResult>,
) -> Vec<TierResult> {
    let mut out = Vec::new();
    for target in targets {
        let started = std::time::Instant::now();
        let mut result = TierResult::new(target.name());
        let known = state.tier.get(target.name()).cloned().unwrap_or_default();
        let sent = target.send(&known, adopt, &mut result);
        let step = StepResult {
            name: format!("tier:{}", target.name()),
            dest: target.shown(),
            pass: None,
            status: match &sent {
                Ok(_) if dry_run => Status::Planned,
                Ok(_) => Status::Ok,
                Err(_) => Status::Failed,
            },
            error: sent.as_ref().err().map(ToString::to_string),
            stats: None,
            seconds: started.elapsed().as_secs_f64(),
            note: Some(result.summary()),
        };
        match sent {
            Ok(new) => {
                state.tier.insert(target.name().to_owned(), new);
            }
            Err(e) => result.error = Some(e.to_string()),
        }
        steps.push(step);
        out.push(result);
    }
    out
}

fn step_result(
    name: &str,
    dest: String,
    pass: Option<TreePass>,
    result: Result<Option<SyncStats>>,
    started: std::time::Instant,
) -> StepResult {
    StepResult {
        name: name.to_owned(),
        dest,
        pass,
        status: match &result {
            Ok(Some(_)) => Status::Ok,
            Ok(None) => Status::Planned,
            Err(_) => Status::Failed,
        },
        error: result.as_ref().err().map(ToString::to_string),
        stats: result.ok().flatten(),
        seconds: started.elapsed().as_secs_f64(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::TierState;

    /// The stop comes the first time the host's clock shows `stop-at` after the run starts:
    /// tonight's when it is still ahead, else tomorrow's; never in the past, never more than a
    /// day (and a DST hour) away.
    #[test]
    fn the_stop_is_the_next_time_the_clock_shows_stop_at() {
        use chrono::Timelike as _;
        let at: backup_core::StopAt = "06:30".parse().unwrap();
        for start in [
            "2026-01-05T05:00:00Z",
            "2026-01-05T07:00:00Z",
            "2026-03-29T01:30:00Z",
        ] {
            let now: DateTime<Utc> = start.parse().unwrap();
            let d = stop_deadline(now, at);
            assert!(d > now, "{start}: {d}");
            assert!(d - now <= chrono::Duration::hours(25), "{start}: {d}");
            let local = d.with_timezone(&chrono::Local);
            assert!(
                (local.hour(), local.minute()) == (6, 30) || local.hour() == 7,
                "{local}"
            );
        }
        for bad in ["6:30", "24:00", "06:60", "06-30", "", "06:30\n"] {
            assert!(bad.parse::<backup_core::StopAt>().is_err(), "{bad:?}");
        }
    }

    /// A step the stop cut short is stopped (exit 0, the last success not moved, the run's
    /// success 1); one that failed of its own stays failed.
    #[test]
    fn a_step_cut_short_by_stop_at_is_stopped_and_another_failure_stays() {
        let step = |name: &str, error: &str| StepResult {
            name: name.to_owned(),
            dest: String::new(),
            pass: None,
            status: Status::Failed,
            error: Some(error.to_owned()),
            stats: None,
            seconds: 1.0,
            note: None,
        };
        let mut r = OffsiteReport {
            steps: vec![step(
                "a",
                "run `rsync …`: stopped: the run was interrupted (SIGTERM/SIGINT)",
            )],
            now_unix: 1,
            full_sync: false,
            tier: Vec::new(),
        };
        r.stopped_at("06:30".parse().unwrap());
        assert_eq!(r.steps[0].status, Status::Stopped);
        assert_eq!(r.exit().code(), 0);
        let m = &r.metrics()[0].metrics;
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["offsite_backup_sync_last_run_success"], "{m:?}");
        r.steps.push(step(
            "b",
            "run `rsync …`: exit status 255: Host key verification failed.",
        ));
        r.stopped_at("06:30".parse().unwrap());
        assert_eq!(r.steps[1].status, Status::Failed);
        assert_ne!(r.exit().code(), 0);
    }
    use backup_host::repository::FakeRepository;

    #[test]
    fn each_repository_is_a_step_and_only_a_success_moves_its_state() {
        let targets: Vec<Box<dyn RepositoryTarget>> = vec![
            Box::new(FakeRepository {
                name: "b2".into(),
                ..FakeRepository::default()
            }),
            Box::new(FakeRepository {
                name: "usb".into(),
                send_fails: Some("the repository was replaced".into()),
                ..FakeRepository::default()
            }),
        ];
        let mut state = OffsiteState::default();
        let old = TierState {
            repository_id: Some("usb-old".into()),
            ..TierState::default()
        };
        state.tier.insert("usb".into(), old.clone());
        let mut steps = Vec::new();
        let results = run_tier(false, &targets, &mut state, false, &mut steps);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[0].name.as_str(), steps[0].status),
            ("tier:b2", Status::Ok)
        );
        assert_eq!(steps[0].dest, "fake:b2");
        assert_eq!(
            (steps[1].name.as_str(), steps[1].status),
            ("tier:usb", Status::Failed)
        );
        assert!(steps[1].error.as_deref().unwrap().contains("replaced"));
        assert_eq!(state.tier["b2"].repository_id.as_deref(), Some("b2-id"));
        assert_eq!(
            state.tier["usb"], old,
            "a failed send keeps what the last run saw"
        );
        assert_eq!(results[0].forgotten, 2);
        assert!(results[1].error.is_some());
        // a dry run plans
        let mut steps = Vec::new();
        run_tier(true, &targets[..1], &mut state, false, &mut steps);
        assert_eq!(steps[0].status, Status::Planned);
    }
}
