//! The encrypted tier: each PVC's newest complete version sent to restic repositories
//! (`[[offsite.repository]]`), so that the stock `restic` binary can list, check and restore it
//! even without this toolkit.
//!
//! Per repository: the password file is checked (owned by root, nobody else can read it); the
//! repository's id is read (`restic cat config`; a repository that does not exist yet is made,
//! on the first run only) and compared with the one the last run saw: a different id is refused
//! (the same identity rule as step 1; `--adopt` accepts it). Then, per PVC, the newest complete
//! version is bind-mounted read-only at the same path every run
//! (`<tier-mount-dir>/<namespace>/<pvc>`), and `restic backup --ignore-ctime` of that path runs
//! with the host, `namespace=`, `pvc=` and `week=` tags: restic takes the last snapshot of the
//! same host and path as its parent, and since the week folders are hardlink trees an unchanged
//! file keeps its inode, size and mtime from week to week (only its ctime moves, with its link
//! count), so it is never read again, across days and across weeks. Only when every PVC was sent
//! are the snapshots the policy no longer keeps forgotten (planned by the project's GFS planner
//! per PVC, never below the newest) and the repository pruned. A lock left by a dead restic is
//! reported with how to clear it, never cleared here.
//!
//! The repository and the password go to restic in its environment (`RESTIC_REPOSITORY`,
//! `RESTIC_PASSWORD_FILE`), never on its command line.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use backup_core::{
    decode_record, plan_gfs, same_tree, Action, BackupStore, Config, EntryKind, FileEntry,
    GfsPolicy, Invocation, IsoWeek, Mounter, Output, Runner, SentVersions, Series, SnapshotSource,
    TierItem, TierRepository, TierState, Timed, WeekVersion,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use backup_host::error::{Error, Result};
pub use backup_host::repository::{
    RepositoryTarget, Restored, SampleRestored, TierListed, TierListing, TierResult, TierSnapshot,
};

/// What the tier works with, and nothing else: built by the run's factory
/// (`backup_run::Context::tier_deps`), or from fakes in a test.
pub struct TierDeps<'a> {
    /// The configuration (`[offsite]`, `[[offsite.repository]]`, the backup root).
    pub cfg: &'a Config,
    /// The run's time (`--now`).
    pub now: DateTime<Utc>,
    /// Runs restic; a stop (SIGTERM) ends what it runs.
    pub runner: Box<dyn Runner + 'a>,
    /// Runs what must finish even after a stop (listings, a restore).
    pub steady: Box<dyn Runner + 'a>,
    /// The backup disk's versions and records.
    pub store: Box<dyn BackupStore + 'a>,
    /// Bind-mounts a version read-only where restic reads it.
    pub mounter: Box<dyn Mounter + 'a>,
    /// Set by SIGTERM/SIGINT: start no new upload.
    pub stop: &'a AtomicBool,
    /// `--dry-run`: say what would be sent, send nothing.
    pub dry_run: bool,
}

/// A version's identity for `TierState::sent`: its week and when it was completed.
fn version_key(v: &WeekVersion) -> String {
    format!(
        "{}@{}",
        v.week,
        v.completed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
    )
}

/// How often the tier prunes: forgetting is cheap and runs every time, pruning (the space back)
/// reads the whole index and rewrites half-empty packs.
const PRUNE_EVERY_DAYS: i64 = 7;

/// The newest complete version of every PVC, in `(namespace, pvc)` order.
pub fn newest_versions(all: Vec<WeekVersion>) -> Vec<WeekVersion> {
    backup_core::newest_complete(all, |v| v)
}

/// `[offsite] tier-mount-dir`.
fn tier_mount_dir(cfg: &Config) -> Utf8PathBuf {
    cfg.offsite.as_ref().map_or_else(
        || Utf8PathBuf::from("/run/homelab-backup/tier"),
        |o| o.tier_mount_dir.clone(),
    )
}

/// One repository as restic is given it: with, for an `sftp:` repository, the ssh command of
/// `[offsite]` (its key, pinned host key and port).
struct Restic<'a> {
    repo: &'a TierRepository,
    sftp_command: Option<String>,
    /// `environment-file`'s variables.
    env: Vec<(String, String)>,
}

impl<'a> Restic<'a> {
    /// `repo` after its password file is checked, reached the way `cfg` says.
    fn new(cfg: &Config, repo: &'a TierRepository) -> Result<Self> {
        check_password_file(&repo.password_file, "the repository's password")?;
        Ok(Self {
            repo,
            sftp_command: match &cfg.offsite {
                Some(o) => sftp_command(repo, o)?,
                None => None,
            },
            env: match &repo.environment_file {
                Some(f) => environment_file(f)?,
                None => Vec::new(),
            },
        })
    }

    fn inv(&self, args: &[&str]) -> Invocation {
        let mut inv = restic(self.repo, args);
        inv.env.extend(self.env.iter().cloned());
        if let Some(c) = &self.sftp_command {
            inv.args
                .splice(0..0, ["-o".to_owned(), format!("sftp.command={c}")]);
        }
        inv
    }
}

/// The ssh command restic runs for `sftp:USER@HOST:/PATH`: the same options as step 1's rsync
/// (batch mode, a pinned host key, only the configured key, `ssh-port`), then `USER@HOST -s
/// sftp`. restic splits it on spaces, so every word must be plain.
fn sftp_command(repo: &TierRepository, o: &backup_core::OffsiteConfig) -> Result<Option<String>> {
    let Some(rest) = repo
        .repository
        .strip_prefix("sftp:")
        .filter(|r| !r.starts_with("//"))
    else {
        return Ok(None);
    };
    let Some((user_host, _)) = rest.split_once(':') else {
        return Ok(None);
    };
    let mut words: Vec<String> = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    .map(str::to_owned)
    .into();
    words.extend(["-o".to_owned(), "ConnectTimeout=30".to_owned()]);
    if let Some(kh) = &o.ssh_known_hosts {
        words.extend(["-o".to_owned(), format!("UserKnownHostsFile={kh}")]);
    }
    if let Some(k) = &o.ssh_key_file {
        words.extend([
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-i".to_owned(),
            k.to_string(),
        ]);
    }
    words.extend(["-p".to_owned(), o.ssh_port.to_string()]);
    words.extend([user_host.to_owned(), "-s".to_owned(), "sftp".to_owned()]);
    if let Some(bad) = words.iter().find(|w| !backup_core::is_plain_word(w)) {
        return Err(Error::Refused(format!(
            "tier `{}`: `{bad}` cannot be part of restic's sftp command (it splits on spaces): \
             use key and known-hosts paths without spaces or quotes",
            repo.name
        )));
    }
    Ok(Some(words.join(" ")))
}

/// `restic ARGS` with the repository and its password in the environment.
fn restic(repo: &TierRepository, args: &[&str]) -> Invocation {
    // `offsite.bwlimit`: a global flag, before the command, so every upload keeps to it
    let limit = repo.limit_upload_kib.map(|k| k.to_string());
    let flags = limit.iter().flat_map(|k| ["--limit-upload", k.as_str()]);
    let mut inv = Invocation::new("restic", flags.chain(args.iter().copied()));
    inv.env = vec![
        ("RESTIC_REPOSITORY".to_owned(), repo.repository.clone()),
        (
            "RESTIC_PASSWORD_FILE".to_owned(),
            repo.password_file.to_string(),
        ),
        // restic's cache (indexes, trees) where the unit may write: its CacheDirectory, not
        // root's home (read-only under ProtectHome); RESTIC_CACHE_DIR set by the caller wins
        (
            "RESTIC_CACHE_DIR".to_owned(),
            std::env::var("RESTIC_CACHE_DIR")
                .unwrap_or_else(|_| "/var/cache/homelab-backup/restic".to_owned()),
        ),
    ];
    inv
}

/// `environment-file`: checked like the password file, then its `NAME=value` lines (blank lines
/// and `#` comments skipped). A bad line is named by its number, never by its value.
fn environment_file(path: &Utf8Path) -> Result<Vec<(String, String)>> {
    check_password_file(path, "restic's environment (its secrets)")?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Error::Secret {
            path: path.to_owned(),
            reason: format!("line {}: {why}", i + 1),
        };
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=value"))?;
        let plain = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(bad("expected a NAME of capitals, digits and `_`"));
        }
        if name.starts_with("RESTIC_") {
            return Err(bad(
                "RESTIC_* is set from the config (repository, password-file), not here",
            ));
        }
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// The password file: owned by root (or us) up the path, readable by nobody else, not empty.
fn check_password_file(path: &Utf8Path, what: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    backup_host::safe_read::check_trusted(path).map_err(|reason| Error::Secret {
        path: path.to_owned(),
        reason,
    })?;
    let m = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    if m.mode() & 0o077 != 0 {
        return Err(Error::Secret {
            path: path.to_owned(),
            reason: format!(
                "mode {:o}: {what} must be readable by its owner only (chmod 600)",
                m.mode() & 0o7777
            ),
        });
    }
    if m.len() == 0 {
        return Err(Error::Secret {
            path: path.to_owned(),
            reason: format!("empty: expected {what}"),
        });
    }
    Ok(())
}

/// restic's stderr without the Go stack traces it prints under some errors (a function's name,
/// then its file on a line that starts with a tab).
fn without_stack_traces(stderr: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = String::new();
    for (i, line) in lines.iter().enumerate() {
        let frame = line.starts_with('\t')
            || (!line.contains(' ') && lines.get(i + 1).is_some_and(|n| n.starts_with('\t')));
        if !frame {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.into_bytes()
}

/// The last lines of restic's stderr, with what to do about a lock or a server that refuses
/// deletions.
fn failure(repo: &TierRepository, what: &str, out: &Output) -> Error {
    let tail = backup_core::stderr_tail(&without_stack_traces(&out.stderr), 6);
    let hint = if tail.contains("already locked") {
        format!(
            "\n  the repository is locked by another restic (above: by whom). If that process is \
             gone (a run killed mid-way), clear the lock by hand: \
             RESTIC_REPOSITORY='{}' RESTIC_PASSWORD_FILE={} restic unlock",
            repo.shown(),
            repo.password_file
        )
    } else if what == "forget" && (tail.contains("403") || tail.contains("ermission denied")) {
        format!(
            "\n  the repository refuses deletions: if it is served append-only (`rest-server \
             --append-only`), set `append-only = true` in its [[offsite.repository]] ({}) and \
             leave forget and prune to the server's side",
            repo.name
        )
    } else {
        String::new()
    };
    Error::Refused(format!(
        "restic {what} ({}): exit {}: {tail}{hint}",
        repo.name,
        out.status.map_or("signal".to_owned(), |c| c.to_string())
    ))
}

/// Reads the repository's id; makes the repository when it does not exist and `may_init`.
fn repository_id(d: &TierDeps<'_>, r: &Restic<'_>, may_init: bool) -> Result<String> {
    let repo = r.repo;
    let runner = &d.steady;
    let mut cat = r.inv(&["cat", "config", "--json", "--no-lock"]);
    cat.read_only = true;
    let out = runner.run(&cat)?;
    if !out.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let missing = text.contains("does not exist") || text.contains("unable to open config");
        if !(missing && may_init) {
            return Err(failure(repo, "cat config", &out));
        }
        let init = runner.run(&r.inv(&["init"]))?;
        if !init.success() {
            return Err(failure(repo, "init", &init));
        }
        return repository_id(d, r, false);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Refused(format!("restic cat config ({}): {e}", repo.name)))?;
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Refused(format!("restic cat config ({}): no id", repo.name)))
}

/// This node's name, the snapshots' host (what restic finds a parent by).
fn hostname() -> String {
    backup_host::notify::hostname()
}

/// One snapshot to take: a PVC's version, or a tree (the SQLite copies, pfSense, PVE config, a
/// dump folder), each from its own stable mount point.
#[derive(Debug, Clone)]
struct Upload {
    /// `namespace/pvc`, the tree's name (`pfsense`) or `dumps:<folder>`: the key of
    /// [`TierState::sent`] and the report's label.
    label: String,
    /// What it holds now: a version's `week@completed`, a tree's fingerprint. The same is not
    /// sent twice.
    version: String,
    /// The folder sent.
    source: Utf8PathBuf,
    /// Where it is bind-mounted read-only, the same path every run (restic's parent is found by
    /// host and path).
    target: Utf8PathBuf,
    /// restic's tags, comma-separated.
    tags: String,
    /// The week it belongs to (a version's week, a tree's: this run's).
    week: String,
    /// The PVC version it sends (`None`: a tree).
    of: Option<WeekVersion>,
}

impl Upload {
    /// A PVC's version, at `<mount_dir>/<namespace>/<pvc>`.
    fn version(cfg: &Config, mount_dir: &Utf8Path, v: &WeekVersion) -> Self {
        Self {
            label: format!("{}/{}", v.namespace, v.pvc),
            version: version_key(v),
            source: cfg
                .backup_root
                .join("pvc-data")
                .join(v.week.to_string())
                .join(&v.namespace)
                .join(&v.pvc),
            target: mount_dir.join(&v.namespace).join(&v.pvc),
            tags: format!("namespace={},pvc={},week={}", v.namespace, v.pvc, v.week),
            week: v.week.to_string(),
            of: Some(v.clone()),
        }
    }

    /// A tree sent as it is, at `<mount_dir>/_files/<name>` (`_` starts no namespace).
    fn tree(
        item: TierItem,
        label: String,
        source: Utf8PathBuf,
        target: Utf8PathBuf,
        week: IsoWeek,
    ) -> Result<Self> {
        Ok(Self {
            version: fingerprint(&source)?,
            label,
            source,
            target,
            tags: format!("kind={},week={week}", item.name()),
            week: week.to_string(),
            of: None,
        })
    }
}

/// A tree's identity for [`TierState::sent`]: every entry's path, type, mode, size, mtime and
/// inode, hashed. Cheap (metadata only) for the small trees it is used on.
fn fingerprint(root: &Utf8Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = md5::Context::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read folder", &dir, e))?;
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p)
                .map_err(|e| Error::io("read", Utf8PathBuf::from(p.display().to_string()), e))?;
            h.consume(p.as_os_str().as_encoded_bytes());
            h.consume(
                format!(
                    "\0{} {} {} {}.{} {}\n",
                    m.mode(),
                    m.len(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.nlink()
                )
                .as_bytes(),
            );
            if m.is_dir() {
                if let Ok(p) = Utf8PathBuf::from_path_buf(p) {
                    stack.push(p);
                }
            }
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// What `repo` sends this run: each PVC's newest complete version (`pvc`), then each tree its
/// `send` names that exists (a configured dump folder that does not is an error).
fn uploads(
    cfg: &Config,
    repo: &TierRepository,
    mount_dir: &Utf8Path,
    versions: &[WeekVersion],
    now: DateTime<Utc>,
) -> Result<Vec<Upload>> {
    let week = IsoWeek::from_date(now.date_naive());
    let files = mount_dir.join("_files");
    let mut out = Vec::new();
    for item in &repo.send {
        match item {
            TierItem::Pvc => {
                out.extend(versions.iter().map(|v| Upload::version(cfg, mount_dir, v)))
            }
            TierItem::Dumps => {
                for folder in &cfg.dumps.folders {
                    if !folder.is_dir() {
                        return Err(Error::NotFound(format!(
                            "dump folder {folder} (`dumps.folders`): not a folder, so it cannot \
                             go to tier `{}` (mounted? or take it out of `send`)",
                            repo.name
                        )));
                    }
                    let target = files
                        .join("dumps")
                        .join(folder.as_str().trim_start_matches('/'));
                    let label = format!("dumps:{folder}");
                    out.push(Upload::tree(*item, label, folder.clone(), target, week)?);
                }
            }
            _ => {
                let source = cfg.backup_root.join(item.name());
                if source.is_dir() {
                    let target = files.join(item.name());
                    out.push(Upload::tree(
                        *item,
                        item.name().to_owned(),
                        source,
                        target,
                        week,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

/// What `restic backup --json` printed (`stdout`) says of the snapshot it took of `u`.
///
/// # Errors
/// Refused when it printed no summary.
fn snapshot_of(repo: &TierRepository, u: &Upload, stdout: &[u8]) -> Result<TierSnapshot> {
    let summary = String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|j| j["message_type"] == "summary")
        .ok_or_else(|| Error::Refused(format!("restic backup ({}): no summary", repo.name)))?;
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    Ok(TierSnapshot {
        pvc: u.label.clone(),
        week: u.week.clone(),
        snapshot_id: summary["snapshot_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        files_read: n("files_new") + n("files_changed"),
        files_unmodified: n("files_unmodified"),
        bytes_added: n("data_added"),
        retagged: false,
    })
}

/// The tag that names the digest of the record a PVC snapshot was sent with.
const RECORD_TAG: &str = "record=";

/// Where the records sent to `repo` are kept: `<backup-root>/.tier-records/<repo>/<digest>`.
fn kept_records_dir(cfg: &Config, repo: &TierRepository) -> Utf8PathBuf {
    cfg.backup_root.join(".tier-records").join(&repo.name)
}

fn hex(digest: &[u8; 16]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps the record of `v` as it is now under its digest (once), and returns the digest;
/// `None` when the version has no record.
fn keep_record(d: &TierDeps<'_>, repo: &TierRepository, v: &WeekVersion) -> Result<Option<String>> {
    let cfg = d.cfg;
    let store = &*d.store;
    let Some(bytes) =
        backup_host::version_commit::record_bytes(store.root(), v.week, &v.namespace, &v.pvc)
    else {
        return Ok(None);
    };
    let digest = hex(&backup_core::ContentHash::Xxh3.of(&bytes));
    let dir = kept_records_dir(cfg, repo);
    let kept = dir.join(&digest);
    if std::fs::symlink_metadata(&kept).is_err() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        store.write(
            backup_core::StoreFile::TierRecord(&repo.name, &digest),
            &bytes,
        )?;
    }
    Ok(Some(digest))
}

/// Removes the kept records no snapshot of `listed` names any more.
fn prune_kept_records(cfg: &Config, repo: &TierRepository, listed: &[Listed]) {
    let named: std::collections::BTreeSet<&str> = listed
        .iter()
        .flat_map(|s| &s.tags)
        .filter_map(|t| t.strip_prefix(RECORD_TAG))
        .collect();
    let dir = kept_records_dir(cfg, repo);
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name
            .to_str()
            .is_some_and(|n| !named.contains(n) && n.len() == 32)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The record a snapshot of `namespace/pvc` in `week` was sent with (`digest`: its `record=`
/// tag): kept under that digest, or the version's record on the disk when it is still that
/// one. `None` when neither is known (the check is then against nothing, and says so); a
/// snapshot sent before records were tagged is checked against the disk's record, as before.
pub fn sent_record(
    d: &TierDeps<'_>,
    repo: &TierRepository,
    digest: Option<&str>,
    (week, namespace, pvc): (IsoWeek, &str, &str),
) -> Option<Vec<FileEntry>> {
    let cfg = d.cfg;
    let store = &*d.store;
    let on_disk = || backup_host::version_commit::record_bytes(store.root(), week, namespace, pvc);
    match digest {
        // a tag is the repository's word: only 32 hex digits name a kept record
        Some(digest) if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) => {
            None
        }
        Some(digest) => {
            let kept = kept_records_dir(cfg, repo).join(digest);
            let bytes = backup_host::safe_read::read_regular(&kept)
                .ok()
                .or_else(|| {
                    on_disk().filter(|b| hex(&backup_core::ContentHash::Xxh3.of(b)) == digest)
                })?;
            decode_record(&bytes).ok()
        }
        None => decode_record(&on_disk()?).ok(),
    }
}

/// A version's decoded record, when it has a usable one.
fn record_of(
    d: &TierDeps<'_>,
    week: IsoWeek,
    namespace: &str,
    pvc: &str,
) -> Option<Vec<FileEntry>> {
    let store = &*d.store;
    backup_host::version_commit::read_record(store.root(), week, namespace, pvc)
}

/// A PVC upload whose version holds the very tree its last snapshot holds: the snapshot's id
/// and the version's regular files. The sent version must be of an earlier week and still be
/// the version sent (`all`: every version on the disk; its week not completed again since),
/// so that its record is the record of what the snapshot holds: a week's folder is made again
/// every day of that week, and its record with it.
fn unchanged_since_sent(
    d: &TierDeps<'_>,
    known: &TierState,
    all: &[WeekVersion],
    u: &Upload,
) -> Option<(String, u64)> {
    let v = u.of.as_ref()?;
    let (old_key, old_id) = known.sent.get(&u.label)?;
    let old_week: IsoWeek = old_key.split('@').next()?.parse().ok()?;
    let as_sent = all.iter().any(|o| {
        (&o.namespace, &o.pvc, o.week) == (&v.namespace, &v.pvc, old_week)
            && version_key(o) == *old_key
    });
    if old_week >= v.week || !as_sent {
        return None;
    }
    let new = record_of(d, v.week, &v.namespace, &v.pvc)?;
    let old = record_of(d, old_week, &v.namespace, &v.pvc)?;
    let files = new.iter().filter(|e| e.kind == EntryKind::File).count() as u64;
    (!old_id.is_empty() && same_tree(&old, &new)).then(|| (old_id.clone(), files))
}

/// Uploads answered by a tag, with their regular files.
type Tagged = Vec<(Upload, u64)>;

/// The PVC versions whose tree is the one their last snapshot holds (a new week with nothing
/// changed: the records say so, content digests included) get that snapshot tagged with their
/// week, by one `restic tag --add week=W` for all of them, instead of a `restic backup` each
/// that would start, load the index, walk the tree against its parent and find nothing new.
/// Returns the uploads so tagged (their new snapshot ids come from the run's listing: see
/// [`tagged_snapshots`]) and those left to back up (all of them on an append-only repository,
/// where a tag's rewrite cannot delete the old snapshot, or when the tag fails: a lock, a
/// snapshot gone).
fn retag(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    known: &TierState,
    unsent: Vec<Upload>,
) -> Result<(Tagged, Vec<Upload>)> {
    if r.repo.append_only {
        return Ok((Vec::new(), unsent));
    }
    let all = d.store.list_versions(Series::Pvc)?;
    let (mut same, mut rest) = (Vec::new(), Vec::new());
    for u in unsent {
        match unchanged_since_sent(d, known, &all, &u) {
            Some((id, files)) => same.push((u, id, files)),
            None => rest.push(u),
        }
    }
    let mut weeks: Vec<String> = same.iter().map(|(u, _, _)| u.week.clone()).collect();
    weeks.sort();
    weeks.dedup();
    let mut tagged = Vec::new();
    for week in weeks {
        let (these, others): (Vec<_>, Vec<_>) =
            same.into_iter().partition(|(u, _, _)| u.week == week);
        same = others;
        if these.is_empty() {
            continue; // never `restic tag` without ids: that tags every snapshot
        }
        let tag = format!("week={week}");
        let mut args = vec!["tag", "--add", tag.as_str(), "--"];
        args.extend(these.iter().map(|(_, id, _)| id.as_str()));
        let ok = d.runner.run(&r.inv(&args))?.success();
        for (u, _, files) in these {
            if ok {
                tagged.push((u, files));
            } else {
                rest.push(u);
            }
        }
    }
    Ok((tagged, rest))
}

/// The tagged uploads' snapshots as `listed` has them now (the tag gave each a new id): the
/// newest of this host at the upload's path tagged with its week. An upload not found there is
/// returned to be backed up.
fn tagged_snapshots(
    tagged: Tagged,
    listed: &[Listed],
) -> (Vec<(Upload, TierSnapshot)>, Vec<Upload>) {
    let host = hostname();
    let (mut found, mut lost) = (Vec::new(), Vec::new());
    for (u, files) in tagged {
        let week = format!("week={}", u.week);
        let s = listed
            .iter()
            .filter(|s| {
                s.hostname == host
                    && s.paths.first().map(String::as_str) == Some(u.target.as_str())
                    && s.tags.contains(&week)
            })
            .max_by_key(|s| s.time);
        match s {
            Some(s) => {
                let snapshot = TierSnapshot {
                    pvc: u.label.clone(),
                    week: u.week.clone(),
                    snapshot_id: s.id.chars().take(8).collect(),
                    files_read: 0,
                    files_unmodified: files,
                    bytes_added: 0,
                    retagged: true,
                };
                found.push((u, snapshot));
            }
            None => lost.push(u),
        }
    }
    (found, lost)
}

/// How many `restic backup` run at once.
const SENDERS: usize = 2;

/// The threads each of the [`SENDERS`] restics may run Go code on (`GOMAXPROCS`, unless the
/// caller set it): the cores shared out. Measured on 2 cores, ten PVCs of the benchmark's data
/// into an empty repository: two restics with 2 threads each took 13.4-14.7 s, with 1 thread
/// each 12.2-13.4 s, one restic over all the data 11.8-12.7 s; more restics at once were slower
/// (18-22 s for three or four).
fn go_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / SENDERS).max(1)
}

/// Sends one upload from its stable mount point; returns restic's summary.
fn send_upload(d: &TierDeps<'_>, r: &Restic<'_>, u: &Upload) -> Result<TierSnapshot> {
    let repo = r.repo;
    let target = &u.target;
    std::fs::create_dir_all(target).map_err(|e| Error::io("create folder", target, e))?;
    let mounter = &*d.mounter;
    // a run killed mid-upload left its mount: the path must hold this version, not that one
    while backup_host::mounts::mount_point_options(target)?.is_some() {
        mounter.unmount(target)?;
    }
    // the record of what is sent travels as a tag (its digest) and is kept here by it: a
    // restore from the tier is checked against it, not against a later record of the week.
    // Read before and after the mount: a daily run that swapped the version in between is
    // mounted again
    let mut tries = 0;
    let (tags, read, sent_record) = loop {
        let record = match &u.of {
            Some(v) => keep_record(d, r.repo, v)?,
            None => None,
        };
        let read = mounter.mount_ro(&SnapshotSource::Dir(u.source.clone()), target)?;
        let again = match &u.of {
            Some(v) => keep_record(d, r.repo, v)?,
            None => None,
        };
        tries += 1;
        if again == record || tries == 3 {
            let tags = match &again {
                Some(hex) => format!("{},{RECORD_TAG}{hex}", u.tags),
                None => u.tags.clone(),
            };
            break (tags, read, again);
        }
        if read == *target {
            mounter.unmount(target)?;
        }
    };
    // the tree mounted: a daily run that swaps another version in while restic reads it makes
    // the mounted tree its spare, and the next run rebuilds that in place
    let sent_from = identity(&read);
    let host = hostname();
    let mut inv = r.inv(&[
        "backup",
        "--json",
        "--ignore-ctime",
        "--host",
        &host,
        "--tag",
        &tags,
        "--",
        read.as_str(),
    ]);
    if std::env::var_os("GOMAXPROCS").is_none() {
        inv.env
            .push(("GOMAXPROCS".to_owned(), go_threads().to_string()));
    }
    let out = d.runner.run(&inv);
    let replaced = moved_on(d, u, sent_from, sent_record.as_deref());
    let unmounted = if read == *target {
        mounter.unmount(target)
    } else {
        Ok(())
    };
    let out = out?;
    unmounted?;
    if !out.success() {
        return Err(failure(repo, "backup", &out));
    }
    let sent = snapshot_of(repo, u, &out.stdout)?;
    if replaced {
        return Err(replaced_while_sent(d, r, u, &sent.snapshot_id));
    }
    Ok(sent)
}

/// (device, inode) of the folder at `p`.
fn identity(p: &Utf8Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether what `u` sends changed while restic read it: another tree swapped in at its source
/// (`sent_from` was the one mounted), or its record moved on from `sent_record` (a tree swapped
/// out and back in again).
fn moved_on(
    d: &TierDeps<'_>,
    u: &Upload,
    sent_from: Option<(u64, u64)>,
    sent_record: Option<&str>,
) -> bool {
    let record_now = u.of.as_ref().and_then(|v| {
        backup_host::version_commit::record_bytes(d.store.root(), v.week, &v.namespace, &v.pvc)
            .map(|b| hex(&backup_core::ContentHash::Xxh3.of(&b)))
    });
    (sent_from.is_some() && identity(&u.source) != sent_from)
        || (u.of.is_some() && record_now.as_deref() != sent_record)
}

/// A daily run replaced the version while restic read it: what restic read may be the old tree
/// being rebuilt into the next update, so its snapshot is forgotten (never a parent, never
/// restored; an append-only repository keeps it, and says so) and the version is sent again by
/// the next run.
fn replaced_while_sent(d: &TierDeps<'_>, r: &Restic<'_>, u: &Upload, id: &str) -> Error {
    let fate = if r.repo.append_only {
        format!(
            "stays (the repository is append-only: remove it where the repository is served, \
             `restic forget {id}`)"
        )
    } else if d
        .steady
        .run(&r.inv(&["forget", "--", id]))
        .is_ok_and(|o| o.success())
    {
        "was forgotten".to_owned()
    } else {
        format!("could not be forgotten: run `restic forget {id}` on the repository")
    };
    Error::Refused(format!(
        "{} ({}): a daily run replaced the version while it was sent; snapshot {id} may hold \
         parts of two versions and {fate}; the next run sends the version again",
        u.label, r.repo.name,
    ))
}

/// Sends the uploads two at a time (restic uses the cores too, but its start, index load and
/// lock of each PVC are idle time the other fills); in upload order in the result.
fn send_uploads(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    versions: &[Upload],
) -> Result<Vec<TierSnapshot>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<(usize, Result<TierSnapshot>)>> = Default::default();
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(v) = versions.get(i) else { return };
                let sent = send_upload(d, r, v);
                let failed = sent.is_err();
                if let Ok(mut list) = done.lock() {
                    list.push((i, sent));
                }
                if failed || d.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // the other worker finishes its PVC; nothing new starts
                    next.store(versions.len(), std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    let sent: Vec<TierSnapshot> = done.into_iter().map(|(_, s)| s).collect::<Result<_>>()?;
    if sent.len() < versions.len() {
        // stopped: nothing is forgotten after a run that did not send everything
        return Err(Error::Interrupted(format!(
            "sending to tier `{}` ({} of {} snapshots taken)",
            r.repo.name,
            sent.len(),
            versions.len()
        )));
    }
    Ok(sent)
}

/// One snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    time: DateTime<Utc>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// The snapshots of this host the policy no longer keeps: per path (one PVC), planned by the GFS
/// planner, which always keeps the newest.
fn to_forget(
    repo: &TierRepository,
    listed: &[Listed],
    host: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let policy = GfsPolicy {
        weekly: repo.keep_weekly,
        monthly: repo.keep_monthly,
        yearly: repo.keep_yearly,
        ..GfsPolicy::default()
    };
    let mut groups: BTreeMap<&[String], Vec<Timed>> = BTreeMap::new();
    for s in listed.iter().filter(|s| s.hostname == host) {
        groups.entry(&s.paths).or_default().push(Timed {
            name: s.id.clone(),
            time: s.time,
        });
    }
    groups
        .values()
        .filter_map(|items| plan_gfs(&policy, now, items).ok())
        .flatten()
        .filter(|d| d.action == Action::Remove)
        .map(|d| d.item.name)
        .collect()
}

/// `restic snapshots --json` (with `filter`, e.g. `--tag`), without a lock.
fn snapshots(d: &TierDeps<'_>, r: &Restic<'_>, filter: &[&str]) -> Result<Vec<Listed>> {
    let mut args = vec!["snapshots", "--json", "--no-lock"];
    args.extend(filter);
    let mut list = r.inv(&args);
    list.read_only = true;
    let out = d.steady.run(&list)?;
    if !out.success() {
        return Err(failure(r.repo, "snapshots", &out));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Refused(format!("restic snapshots ({}): {e}", r.repo.name)))
}

/// Forgets what the policy no longer keeps; prunes too when something was forgotten and a prune
/// is `due`. Returns (snapshots forgotten, pruned). Both take restic's exclusive lock: a run
/// with nothing to forget takes none (a stale lock of a killed run then stays harmless).
fn forget_and_prune(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    listed: &[Listed],
    due: bool,
) -> Result<(u64, bool)> {
    let repo = r.repo;
    let ids = to_forget(repo, listed, &hostname(), d.now);
    if !ids.is_empty() {
        let mut args = vec!["forget", "--"];
        args.extend(ids.iter().map(String::as_str));
        let out = d.runner.run(&r.inv(&args))?;
        if !out.success() {
            return Err(failure(repo, "forget", &out));
        }
    }
    let prune = due && !ids.is_empty();
    if prune {
        let out = d.runner.run(&r.inv(&["prune"]))?;
        if !out.success() {
            return Err(failure(repo, "prune", &out));
        }
    }
    Ok((ids.len() as u64, prune))
}

/// The bytes a repository holds: for a local one, its files (a walk: exact and cheap); for a
/// remote one, restic's raw data (`stats --mode raw-data`, which walks every snapshot) measured
/// when `measure` (after a prune, or never measured), else `known` plus what this run `added`.
fn repository_bytes(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    known: Option<u64>,
    added: u64,
    measure: bool,
) -> Result<Option<u64>> {
    if r.repo.repository.starts_with('/') {
        let root = Utf8Path::new(&r.repo.repository);
        let mut total = 0u64;
        let mut stack = vec![root.as_std_path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        return Ok(Some(total));
    }
    if !measure {
        return Ok(known.map(|k| k + added));
    }
    let mut inv = r.inv(&["stats", "--mode", "raw-data", "--json", "--no-lock"]);
    inv.read_only = true;
    let out = d.steady.run(&inv)?;
    if !out.success() {
        return Err(failure(r.repo, "stats", &out));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Refused(format!("restic stats ({}): {e}", r.repo.name)))?;
    Ok(v["total_size"].as_u64())
}

/// `restic check --read-data-subset=PERCENT%` of `repo`: the repository's structure, and that
/// share of its packs read back and checked. Fails with restic's words.
///
/// # Errors
/// A bad password file, a failed or failing check.
pub fn check(d: &TierDeps<'_>, repo: &TierRepository, percent: f64) -> Result<()> {
    let cfg = d.cfg;
    let r = Restic::new(cfg, repo)?;
    let subset = format!("--read-data-subset={percent}%");
    let mut inv = r.inv(&["check", &subset]);
    inv.read_only = true;
    let out = d.steady.run(&inv)?;
    if out.success() {
        Ok(())
    } else {
        Err(failure(repo, "check", &out))
    }
}

/// Every snapshot of `repo` (`restic snapshots`), by PVC then time.
///
/// # Errors
/// A bad password file, a failed restic.
pub fn listing(d: &TierDeps<'_>, repo: &TierRepository) -> Result<TierListing> {
    let r = Restic::new(d.cfg, repo)?;
    let listed = snapshots(d, &r, &[])?;
    // the last of a key's tags: a snapshot tagged again for a new week has two `week=`
    let tag = |s: &Listed, key: &str| {
        s.tags
            .iter()
            .filter_map(|t| t.strip_prefix(key).map(str::to_owned))
            .max()
            .unwrap_or_default()
    };
    let dumps = format!("{}/_files/dumps", tier_mount_dir(d.cfg));
    let mut snapshots: Vec<TierListed> = listed
        .iter()
        .map(|s| TierListed {
            pvc: match tag(s, "kind=").as_str() {
                "" => format!("{}/{}", tag(s, "namespace="), tag(s, "pvc=")),
                "dumps" => {
                    let path = s.paths.first().map_or("", String::as_str);
                    format!("dumps:{}", path.strip_prefix(&dumps).unwrap_or(path))
                }
                kind => kind.to_owned(),
            },
            week: tag(s, "week="),
            time: s.time,
            id: s.id.clone(),
        })
        .collect();
    snapshots.sort_by(|a, b| (&a.pvc, a.time).cmp(&(&b.pvc, b.time)));
    Ok(TierListing {
        repository: repo.name.clone(),
        snapshots,
    })
}

/// Restores a PVC's snapshot from `repo` into `to` (absent or an empty folder): the newest, or
/// the one of `week`. restic restores into a folder beside `to` (`--verify`: every file read
/// back against the repository), then the PVC's folder is renamed into place, so `to` holds the
/// volume's root.
///
/// # Errors
/// No such snapshot ([`Error::NotFound`]), a failed restic, a target that cannot be used.
pub fn restore(
    d: &TierDeps<'_>,
    repo: &TierRepository,
    (namespace, pvc): (&str, &str),
    week: Option<IsoWeek>,
    to: &Utf8Path,
) -> Result<Restored> {
    let cfg = d.cfg;
    let r = Restic::new(cfg, repo)?;
    let (snap, inside) = find_snapshot(d, &r, (namespace, pvc), week)?;
    let name = to.file_name().unwrap_or("restore");
    let staging = to.with_file_name(format!(".{name}.tier-restore"));
    let _ = std::fs::remove_dir_all(&staging);
    let out = d.steady.run(&r.inv(&[
        "restore",
        &snap.id,
        "--verify",
        "--target",
        staging.as_str(),
    ]))?;
    if !out.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(failure(repo, "restore", &out));
    }
    let tree = staging.join(inside.trim_start_matches('/'));
    let _ = std::fs::remove_dir(to); // an empty target: replaced by the restored folder
    let moved = std::fs::rename(&tree, to).map_err(|e| Error::io("rename into place", to, e));
    let _ = std::fs::remove_dir_all(&staging);
    moved?;
    Ok(Restored {
        snapshot_id: snap.id.clone(),
        record: snap
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(RECORD_TAG))
            .map(str::to_owned),
        // the week asked for, else the newest the snapshot is tagged with
        week: week.or_else(|| {
            snap.tags
                .iter()
                .filter_map(|t| t.strip_prefix("week=")?.parse().ok())
                .max()
        }),
    })
}

/// The newest snapshot of `namespace/pvc` in `r` (of `week`, when given) and the path it holds.
fn find_snapshot(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    (namespace, pvc): (&str, &str),
    week: Option<IsoWeek>,
) -> Result<(Listed, String)> {
    let mut tags = format!("namespace={namespace},pvc={pvc}");
    if let Some(w) = week {
        tags.push_str(&format!(",week={w}"));
    }
    let listed = snapshots(d, r, &["--tag", &tags])?;
    let snap = listed.into_iter().max_by_key(|s| s.time).ok_or_else(|| {
        Error::NotFound(format!(
            "tier `{}` holds no snapshot tagged {tags}: `restic snapshots` lists what it holds",
            r.repo.name
        ))
    })?;
    let inside = snap.paths.first().cloned().ok_or_else(|| {
        Error::Refused(format!(
            "snapshot {} of tier `{}` names no path",
            snap.id, r.repo.name
        ))
    })?;
    Ok((snap, inside))
}

/// Above this many bytes of `--include` patterns, a sample restore fetches the whole snapshot
/// (the command line has a limit; a large sample is most of the volume anyway).
const MAX_INCLUDE_BYTES: usize = 256 * 1024;

/// A path as a restic pattern that matches only itself: `\`, `*`, `?` and `[` escaped.
fn literal_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | '*' | '?' | '[') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Restores `files` (paths inside the PVC, as the record has them) of the snapshot of
/// `namespace/pvc` and `week` in `repo` into `to`, without taking restic's lock (a drill only
/// reads). Each path goes to restic as an `--include` pattern that matches only itself; a very
/// large sample restores the whole snapshot instead.
///
/// # Errors
/// No snapshot of that week ([`Error::NotFound`]), a failed restic.
pub fn restore_files(
    d: &TierDeps<'_>,
    repo: &TierRepository,
    (namespace, pvc): (&str, &str),
    week: IsoWeek,
    files: &[&[u8]],
    to: &Utf8Path,
) -> Result<SampleRestored> {
    let r = Restic::new(d.cfg, repo)?;
    let (snap, inside) = find_snapshot(d, &r, (namespace, pvc), Some(week))?;
    let mut includes = Vec::new();
    let mut unnamed = 0;
    for f in files {
        match std::str::from_utf8(f) {
            Ok(p) => includes.push(format!(
                "--include={}",
                literal_pattern(&format!("{}/{p}", inside.trim_end_matches('/')))
            )),
            Err(_) => unnamed += 1,
        }
    }
    if includes.iter().map(String::len).sum::<usize>() > MAX_INCLUDE_BYTES {
        includes.clear();
        unnamed = 0;
    }
    let mut args = vec![
        "--no-lock",
        "restore",
        snap.id.as_str(),
        "--target",
        to.as_str(),
    ];
    args.extend(includes.iter().map(String::as_str));
    let mut inv = r.inv(&args);
    inv.read_only = true;
    let out = d.steady.run(&inv)?;
    if !out.success() {
        return Err(failure(repo, "restore", &out));
    }
    Ok(SampleRestored {
        root: to.join(inside.trim_start_matches('/')),
        record: snap
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(RECORD_TAG))
            .map(str::to_owned),
        snapshot_id: snap.id,
        unnamed,
    })
}

/// Sends every PVC's newest complete version to `repo`; `known` is what the last run saw.
///
/// # Errors
/// A bad password file, a repository whose id changed (unless `adopt`), a failed restic.
pub fn send(
    d: &TierDeps<'_>,
    repo: &TierRepository,
    known: &TierState,
    adopt: bool,
    result: &mut TierResult,
) -> Result<TierState> {
    let cfg = d.cfg;
    let mount_dir = &tier_mount_dir(cfg);
    let versions = newest_versions(d.store.list_versions(Series::Pvc)?);
    let uploads = uploads(cfg, repo, mount_dir, &versions, d.now)?;
    if d.dry_run {
        result.planned = uploads
            .iter()
            .map(|u| format!("{} {}", u.label, u.week))
            .collect();
        return Ok(known.clone());
    }
    let r = Restic::new(cfg, repo)?;
    let id = repository_id(d, &r, known.repository_id.is_none())?;
    result.repository_id = Some(id.clone());
    if let Some(old) = known
        .repository_id
        .as_ref()
        .filter(|old| **old != id && !adopt)
    {
        return Err(Error::Refused(format!(
            "the repository of tier `{}` is not the one the last run sent to (id {old}, now \
             {id}): a replaced or re-created repository would start the history over. If that is \
             intended, run offsite-sync-backup --adopt once",
            repo.name
        )));
    }
    let (sent, listed) = take_snapshots(d, &r, known, uploads, result)?;
    let added: u64 = result.snapshots.iter().map(|s| s.bytes_added).sum();
    // the server keeps an append-only history; forgetting is its owner's job
    let (forgotten, pruned) = if repo.append_only {
        (0, false)
    } else {
        let due = known
            .last_prune
            .is_none_or(|t| d.now - t >= chrono::Duration::days(PRUNE_EVERY_DAYS));
        let done = forget_and_prune(d, &r, &listed, due)?;
        // what a forgotten snapshot was sent with goes at the next run's listing
        prune_kept_records(cfg, repo, &listed);
        done
    };
    result.forgotten = forgotten;
    let measure = pruned || known.repository_bytes.is_none();
    result.repository_bytes = repository_bytes(d, &r, known.repository_bytes, added, measure)?;
    Ok(TierState {
        repository_id: Some(id),
        last_success: Some(d.now),
        last_prune: if pruned {
            Some(d.now)
        } else {
            known.last_prune
        },
        sent,
        repository_bytes: result.repository_bytes,
    })
}

/// Takes this run's snapshots: what is already sent is reported with its snapshot, what is
/// unchanged since is tagged, the rest backed up. Returns what is sent now (for the state) and
/// the repository's snapshots after it all (empty on an append-only repository with nothing
/// tagged: nothing to look up, nothing to forget).
fn take_snapshots(
    d: &TierDeps<'_>,
    r: &Restic<'_>,
    known: &TierState,
    uploads: Vec<Upload>,
    result: &mut TierResult,
) -> Result<(SentVersions, Vec<Listed>)> {
    // what is already sent (a version of the same week completed at the same time, a tree with
    // the same fingerprint) has its snapshot
    let (unsent, already): (Vec<Upload>, Vec<Upload>) = uploads.into_iter().partition(|u| {
        known.sent.get(&u.label).map(|(k, _)| k.as_str()) != Some(u.version.as_str())
    });
    let mut sent = known.sent.clone();
    for u in &already {
        result.snapshots.push(TierSnapshot {
            snapshot_id: sent
                .get(&u.label)
                .map(|(_, id)| id.clone())
                .unwrap_or_default(),
            pvc: u.label.clone(),
            week: u.week.clone(),
            files_read: 0,
            files_unmodified: 0,
            bytes_added: 0,
            retagged: false,
        });
    }
    let (tagged, mut unsent) = retag(d, r, known, unsent)?;
    let mut new = send_uploads(d, r, &unsent)?;
    // one listing after everything is sent: the tagged snapshots' new ids, and what to forget
    let listing = |d: &TierDeps<'_>| -> Result<Vec<Listed>> {
        if tagged.is_empty() && r.repo.append_only {
            Ok(Vec::new())
        } else {
            snapshots(d, r, &[])
        }
    };
    let mut listed = listing(d)?;
    let (found, lost) = tagged_snapshots(tagged.clone(), &listed);
    if !lost.is_empty() {
        new.extend(send_uploads(d, r, &lost)?);
        unsent.extend(lost);
        listed = listing(d)?;
    }
    for (u, s) in found {
        sent.insert(u.label.clone(), (u.version.clone(), s.snapshot_id.clone()));
        result.snapshots.push(s);
    }
    for (u, s) in unsent.iter().zip(&new) {
        sent.insert(u.label.clone(), (u.version.clone(), s.snapshot_id.clone()));
    }
    result.snapshots.extend(new);
    result.snapshots.sort_by(|a, b| a.pvc.cmp(&b.pvc));
    Ok((sent, listed))
}

/// A restic repository of `[[offsite.repository]]` as a [`RepositoryTarget`].
pub struct ResticTarget<'a> {
    deps: TierDeps<'a>,
    repo: TierRepository,
}

impl<'a> ResticTarget<'a> {
    /// The repository `repo`, reached through `deps`.
    pub fn new(deps: TierDeps<'a>, repo: TierRepository) -> Self {
        Self { deps, repo }
    }
}

impl RepositoryTarget for ResticTarget<'_> {
    fn name(&self) -> &str {
        &self.repo.name
    }

    fn shown(&self) -> String {
        self.repo.shown()
    }

    fn send(&self, known: &TierState, adopt: bool, result: &mut TierResult) -> Result<TierState> {
        send(&self.deps, &self.repo, known, adopt, result)
    }

    fn listing(&self) -> Result<TierListing> {
        listing(&self.deps, &self.repo)
    }

    fn check(&self, percent: f64) -> Result<()> {
        check(&self.deps, &self.repo, percent)
    }

    fn restore(&self, pvc: (&str, &str), week: Option<IsoWeek>, to: &Utf8Path) -> Result<Restored> {
        restore(&self.deps, &self.repo, pvc, week, to)
    }

    fn restore_files(
        &self,
        pvc: (&str, &str),
        week: IsoWeek,
        files: &[&[u8]],
        to: &Utf8Path,
    ) -> Result<SampleRestored> {
        restore_files(&self.deps, &self.repo, pvc, week, files, to)
    }

    fn sent_record(
        &self,
        record: Option<&str>,
        version: (IsoWeek, &str, &str),
    ) -> Option<Vec<FileEntry>> {
        sent_record(&self.deps, &self.repo, record, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> TierRepository {
        TierRepository {
            name: "tier".into(),
            repository: "/r".into(),
            password_file: "/p".into(),
            keep_weekly: 2,
            keep_monthly: 0,
            keep_yearly: 0,
            send: TierItem::ALL.to_vec(),
            append_only: false,
            limit_upload_kib: None,
            environment_file: None,
        }
    }

    /// `offsite.bwlimit`: restic's global `--limit-upload`, before the command, on every
    /// command line; none without it. The repository and its password stay in the environment.
    #[test]
    fn the_upload_limit_goes_first_and_the_secrets_stay_out_of_argv() {
        let plain = restic(&repo(), &["snapshots", "--json"]);
        assert_eq!(plain.args, ["snapshots", "--json"]);
        let limited = restic(
            &TierRepository {
                limit_upload_kib: Some(2048),
                ..repo()
            },
            &["backup", "--json"],
        );
        assert_eq!(limited.args, ["--limit-upload", "2048", "backup", "--json"]);
        assert!(!limited.display().contains("/p"), "{}", limited.display());
    }

    fn snap(id: &str, path: &str, day: &str, host: &str) -> Listed {
        Listed {
            id: id.into(),
            time: format!("{day}T05:00:00Z").parse().unwrap(),
            paths: vec![path.into()],
            hostname: host.into(),
            tags: Vec::new(),
        }
    }

    /// Per PVC (path), of this host only, the policy's weeks kept, the newest always.
    #[test]
    fn forgetting_plans_per_pvc_and_keeps_the_newest() {
        let listed = vec![
            snap("a1", "/t/ns/a", "2026-01-05", "h"),
            snap("a2", "/t/ns/a", "2026-01-12", "h"),
            snap("a3", "/t/ns/a", "2026-01-19", "h"),
            snap("b1", "/t/ns/b", "2026-01-05", "h"),
            snap("x1", "/t/ns/a", "2026-01-01", "other-host"),
        ];
        let now = "2026-01-19T06:00:00Z".parse().unwrap();
        let mut gone = to_forget(&repo(), &listed, "h", now);
        gone.sort();
        assert_eq!(gone, ["a1"]);
        assert_eq!(newest_versions(Vec::new()), Vec::<WeekVersion>::new());
    }
}
