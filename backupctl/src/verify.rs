//! `backupctl verify`: re-read the chosen versions against their records (md5, size, mode,
//! owner, times, xattrs, link structure), `integrity_check` every SQLite copy, check the pfSense
//! copies and read every dump's gzip stream to its end. Every difference is named by path; any
//! one fails the run.

use std::io::Read;

use backup_core::metric_names::{JobMetrics, VERIFY_DAMAGED_VERSIONS, VERIFY_DIFFERENCES};
use backup_core::{BackupStore, Config, IsoWeek, MetricGroup, Series, WeekVersion};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::check::{check_tree_with, CheckReport, Content, Difference, Digests};
use crate::inventory::{files_under, record};
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::repository::RepositoryTarget;
use backup_run::{Context, Outcome};

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyArgs {
    /// Only this week.
    pub week: Option<IsoWeek>,
    /// Only this PVC (`NAMESPACE/PVC` or its volume).
    pub pvc: Option<crate::PvcRef>,
    /// Read only this percent of the files (chosen from `--now`); metadata is checked for all.
    pub sample: Option<f64>,
    /// Only versions completed in the last N days.
    pub since_days: Option<u32>,
    /// Also check each tier repository (`restic check --read-data-subset`, `sample` percent of
    /// its packs, 10 when no sample is given).
    pub tier: bool,
}

/// The result for one thing checked.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// What (`pvc vaultwarden/data 2026-02`, `sqlite ...`, `dump ...`).
    pub what: String,
    /// Its differences or failure; empty: intact.
    pub differences: Vec<Difference>,
    /// Files read, bytes read (PVC versions).
    pub files_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// `backupctl verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Everything checked.
    pub checked: Vec<Checked>,
    /// Seconds it took.
    pub seconds: f64,
    /// Complete PVC versions with a damage list after this verify (checked now or before).
    pub damaged_versions: u64,
    #[serde(skip)]
    pub(crate) now_unix: i64,
    /// `verify --offsite`: its metrics go under the offsite verify's job.
    #[serde(skip)]
    pub(crate) offsite: bool,
}

impl VerifyReport {
    /// Differences over everything checked.
    pub fn differences(&self) -> usize {
        self.checked.iter().map(|c| c.differences.len()).sum()
    }
}

fn one(what: String, path: &str, why: String) -> Checked {
    Checked {
        what,
        differences: vec![Difference {
            path: path.to_owned(),
            what: why,
        }],
        files_read: 0,
        bytes_read: 0,
    }
}

/// Whether a file starts like a SQLite database.
fn is_database(p: &Utf8Path) -> bool {
    let mut head = [0u8; backup_core::SQLITE_HEADER_PROBE];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head.starts_with(backup_core::SQLITE_MAGIC)
}

/// Reads a gzip stream to its end.
pub(super) fn gzip_reads(p: &Utf8Path) -> std::result::Result<u64, String> {
    let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    std::io::copy(&mut dec, &mut std::io::sink()).map_err(|e| format!("gzip stream: {e}"))
}

/// Checks the SQLite copies under `dir`.
pub(super) fn check_sqlite_copies(dir: &Utf8Path, label: &str, out: &mut Vec<Checked>) {
    for (p, _) in files_under(dir) {
        if p.file_name().is_some_and(|n| n.starts_with('.')) {
            continue; // the sources file, scratch
        }
        let differences = match backup_sqlite::check_copy(p.as_std_path()) {
            Ok(()) => Vec::new(),
            Err(e) => vec![Difference {
                path: p.to_string(),
                what: e.to_string(),
            }],
        };
        out.push(Checked {
            what: format!("sqlite {label} {}", p.strip_prefix(dir).unwrap_or(&p)),
            differences,
            files_read: 1,
            bytes_read: 0,
        });
    }
}

/// Checks one version of a PVC against its record; with `mark`, keeps its damage list.
pub(super) fn check_version(
    root: &backup_core::BackupRoot,
    store: &dyn backup_core::BackupStore,
    v: &WeekVersion,
    (content, mark): (Content, bool),
    digests: &Digests,
) -> Checked {
    let what = format!("pvc {}/{} {}", v.namespace, v.pvc, v.week);
    let copy = root.pvc_copy(v.week, &v.namespace, &v.pvc);
    let Some(rec) = record(store, v) else {
        return one(
            what,
            root.pvc_record(v.week, &v.namespace, &v.pvc).as_str(),
            "no usable record: this version cannot be verified (the next daily run writes one)"
                .to_owned(),
        );
    };
    let (checked, paths) = match check_tree_with(copy.as_std_path(), &rec, content, Some(digests)) {
        Ok(CheckReport {
            files_read,
            bytes_read,
            differences,
            paths,
            ..
        }) => (
            Checked {
                what,
                differences,
                files_read,
                bytes_read,
            },
            Some(paths),
        ),
        Err(e) => (one(what, copy.as_str(), e.to_string()), None),
    };
    // A daily run of this week may have rewritten the version while it was read (it marks it
    // incomplete first, and complete again at the end): what was seen then proves nothing.
    let marker = store
        .read(backup_core::StoreFile::Marker(v.week, &v.namespace, &v.pvc))
        .ok()
        .flatten()
        .and_then(|b| backup_core::parse_marker(&String::from_utf8_lossy(&b)));
    if !checked.differences.is_empty() && marker != v.completed_at {
        return Checked {
            what: format!(
                "{} (rewritten by a daily run while it was read: not judged, verify it again)",
                checked.what
            ),
            differences: Vec::new(),
            ..checked
        };
    }
    if let Some(paths) = paths.filter(|_| mark) {
        mark_damaged(store, v, paths, content);
    }
    checked
}

/// Keeps the version's damage list (`pvc-data/<week>/.damaged/<ns>/<pvc>`) in step with what
/// the check found: the paths are added (the next daily run sends them again instead of
/// linking them); a whole read that found nothing clears it. A list that cannot be written
/// is not a verify failure: the differences are reported either way.
fn mark_damaged(
    store: &dyn backup_core::BackupStore,
    v: &WeekVersion,
    found: std::collections::BTreeSet<Vec<u8>>,
    content: Content,
) {
    let file = backup_core::StoreFile::Damaged(v.week, &v.namespace, &v.pvc);
    let path = file.path(store.root());
    let known: std::collections::BTreeSet<Vec<u8>> = store
        .read(file)
        .ok()
        .flatten()
        .map(|b| backup_host::version_commit::parse_damaged(&b))
        .unwrap_or_default()
        .into_iter()
        .collect();
    if found.is_empty() {
        if content == Content::All && !known.is_empty() {
            let _ = backup_host::fsutil::remove_file_if_present(&path);
        }
        return;
    }
    let all: Vec<Vec<u8>> = known.union(&found).cloned().collect();
    if all.len() != known.len() {
        if let Err(e) = store.write(file, &backup_host::version_commit::encode_damaged(&all)) {
            backup_host::out::eprintln_fit(&format!(
                "backupctl verify: warning: the damage list {path} cannot be written: {e}"
            ));
        }
    }
}

/// Runs the verify.
///
/// # Errors
/// When the backup root cannot be listed, or a filter names nothing.
pub fn verify(ctx: &Context<'_>, args: &VerifyArgs) -> Result<VerifyReport> {
    if ctx.offsite_view().is_some() {
        return Err(Error::Usage(
            "--from-offsite verify reads every file, and the offsite copy is reached over ssh: \
             `backupctl verify --offsite` has the NAS checksum its own bytes against the backup \
             disk instead (or mount the share and point offsite.destination at the mount)"
                .to_owned(),
        ));
    }
    let started = std::time::Instant::now();
    let cfg = ctx.cfg()?;
    let store = ctx.store()?;
    let content = content_of(args, ctx.now)?;
    let want = args.pvc.as_ref().map(|p| p.resolve(ctx)).transpose()?;
    let deps = VerifyDeps {
        cfg,
        now: ctx.now,
        store: store.as_ref(),
        from_offsite: ctx.from_offsite(),
        want,
        repositories: if args.tier {
            ctx.repositories()?
        } else {
            Vec::new()
        },
    };
    verify_of(&deps, args, content, started)
}

/// What `--sample` asks to read: a share of the files chosen from `now`, or all.
///
/// # Errors
/// A percent outside 0–100.
fn content_of(args: &VerifyArgs, now: DateTime<Utc>) -> Result<Content> {
    Ok(match args.sample {
        Some(p) if !(0.0..=100.0).contains(&p) => {
            return Err(Error::Usage(format!(
                "--sample {p}: expected a percent from 0 to 100"
            )))
        }
        Some(p) => Content::Sample {
            seed: now.timestamp() as u64,
            percent: p,
        },
        None => Content::All,
    })
}

/// What `verify` reads, and nothing else: built from the run by [`verify`], from fakes (and a
/// folder of real files for the copies) in a test.
pub(crate) struct VerifyDeps<'a> {
    /// The configuration (`[dumps] folders`).
    pub cfg: &'a Config,
    /// The run's time: the sample's seed, `--since-days`.
    pub now: DateTime<Utc>,
    /// The backup root: versions, records, damage lists (its copies are read from disk).
    pub store: &'a dyn BackupStore,
    /// The backup root is the offsite copy: read, never marked.
    pub from_offsite: bool,
    /// `--pvc` resolved to `NAMESPACE/PVC`.
    pub want: Option<(String, String)>,
    /// The tier's repositories to check (`--tier`); none without.
    pub repositories: Vec<Box<dyn RepositoryTarget + 'a>>,
}

/// [`verify`] from `deps`.
///
/// # Errors
/// Nothing matches `--week`/`--pvc`; the backup root cannot be listed.
pub(crate) fn verify_of(
    deps: &VerifyDeps<'_>,
    args: &VerifyArgs,
    content: Content,
    started: std::time::Instant,
) -> Result<VerifyReport> {
    let (cfg, store, now) = (deps.cfg, deps.store, deps.now);
    let root = store.root().clone();
    let versions = store.list_versions(Series::Pvc)?;
    let chosen = chosen_versions(now, deps.want.as_ref(), &versions, args)?;
    let _phase = backup_host::progress::start("verify", totals(store, &chosen, content));
    let mut checked = Vec::new();
    // an inode hardlinked into several weeks is read once
    let digests = Digests::default();
    // the offsite copy is read, never written: its damage is reported, not marked
    let mark = !deps.from_offsite;
    for v in &chosen {
        backup_host::progress::message(&format!("{}/{} {}", v.namespace, v.pvc, v.week));
        checked.push(check_version(&root, store, v, (content, mark), &digests));
        let label = format!("{}/{} {}", v.namespace, v.pvc, v.week);
        check_sqlite_copies(
            &root.sqlite_copy(v.week, &v.namespace, &v.pvc),
            &label,
            &mut checked,
        );
    }
    let whole = args.pvc.is_none();
    if whole {
        for w in store.list_versions(Series::Pfsense)? {
            if args.week.is_some_and(|x| x != w.week) {
                continue;
            }
            let dir = root.pfsense_week(w.week);
            checked.push(check_pfsense(&dir, &w.week.to_string()));
        }
        // the dump folders live on NFS, not in the backup root (nor its offsite copy)
        for folder in cfg.dumps.folders.iter().filter(|_| !deps.from_offsite) {
            check_dump_folder(folder, &mut checked);
        }
    }
    check_tier(
        &deps.repositories,
        args.sample.unwrap_or(10.0),
        &mut checked,
    );
    // read after the checks: they may have marked versions
    let damaged_versions = versions
        .iter()
        .filter(|v| v.is_complete() && crate::inventory::damaged_files(store, v) > 0)
        .count() as u64;
    Ok(VerifyReport {
        checked,
        damaged_versions,
        seconds: started.elapsed().as_secs_f64(),
        now_unix: now.timestamp(),
        offsite: deps.from_offsite,
    })
}

/// The complete versions `--week`, `--pvc` (resolved to `pvc`) and `--since-days` choose.
///
/// # Errors
/// `--week`/`--pvc` match nothing.
pub(crate) fn chosen_versions(
    now: DateTime<Utc>,
    pvc: Option<&(String, String)>,
    versions: &[WeekVersion],
    args: &VerifyArgs,
) -> Result<Vec<WeekVersion>> {
    let since = args.since_days.map(|d| now - Duration::days(i64::from(d)));
    let chosen: Vec<WeekVersion> = versions
        .iter()
        .filter(|v| v.is_complete())
        .filter(|v| args.week.is_none_or(|w| v.week == w))
        .filter(|v| pvc.is_none_or(|(ns, p)| &v.namespace == ns && &v.pvc == p))
        .filter(|v| since.is_none_or(|s| v.completed_at.is_some_and(|c| c >= s)))
        .cloned()
        .collect();
    if let (true, Some((ns, p))) = (chosen.is_empty(), pvc) {
        if let Some(e) = crate::pvc_ref::unknown_pvc(versions, (ns, p)) {
            return Err(e);
        }
    }
    if chosen.is_empty() && (args.week.is_some() || args.pvc.is_some()) {
        return Err(Error::NotFound(
            "no complete version matches --week/--pvc: `backupctl list` shows them".to_owned(),
        ));
    }
    Ok(chosen)
}

/// What is to be read, for the bar and the time left (a sample reads an unknown part of it).
fn totals(
    store: &dyn backup_core::BackupStore,
    chosen: &[WeekVersion],
    content: Content,
) -> backup_host::progress::Totals {
    match content {
        Content::All => {
            // scanned in place (no entry copied out): each record is decoded once more by
            // its check, which holds one version in memory at a time
            let (mut files, mut bytes) = (0, 0);
            for v in chosen {
                let (f, b) = crate::inventory::record_totals(store, v);
                files += f;
                bytes += b;
            }
            backup_host::progress::Totals {
                files: Some(files),
                bytes: Some(bytes),
            }
        }
        Content::Sample { .. } | Content::None => backup_host::progress::Totals::default(),
    }
}

/// Each `[[offsite.repository]]`, checked by restic with a share of its packs read back.
fn check_tier(targets: &[Box<dyn RepositoryTarget + '_>], percent: f64, out: &mut Vec<Checked>) {
    for target in targets {
        backup_host::progress::message(&format!("tier {}", target.name()));
        let what = format!("tier {} ({percent}% of its packs)", target.name());
        out.push(match target.check(percent) {
            Ok(()) => Checked {
                what,
                differences: Vec::new(),
                files_read: 0,
                bytes_read: 0,
            },
            Err(e) => one(what, &target.shown(), e.to_string()),
        });
    }
}

fn check_pfsense(dir: &Utf8Path, week: &str) -> Checked {
    let mut differences = Vec::new();
    let xml = dir.join(backup_core::CONFIG_XML);
    match std::fs::read(&xml) {
        Ok(b) if backup_core::is_whole_pfsense_config(&b) => {}
        Ok(_) => differences.push(Difference {
            path: xml.to_string(),
            what: "not a whole pfSense config.xml (no <pfsense> … </pfsense>)".to_owned(),
        }),
        Err(e) => differences.push(Difference {
            path: xml.to_string(),
            what: format!("cannot be read: {e}"),
        }),
    }
    for (p, _) in files_under(dir) {
        if p.as_str().ends_with(".gz") {
            if let Err(e) = gzip_reads(&p) {
                differences.push(Difference {
                    path: p.to_string(),
                    what: e,
                });
            }
        }
    }
    Checked {
        what: format!("pfsense {week}"),
        differences,
        files_read: 0,
        bytes_read: 0,
    }
}

fn check_dump_folder(folder: &Utf8PathBuf, out: &mut Vec<Checked>) {
    let entries = match folder.read_dir_utf8() {
        Ok(e) => e,
        Err(e) => {
            out.push(one(
                format!("dumps {folder}"),
                folder.as_str(),
                format!("cannot be read: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<Utf8PathBuf> = entries.flatten().map(|e| e.path().to_owned()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap_or("");
        if name.starts_with('.') || crate::inventory::parse_dump_name(name).is_none() {
            continue;
        }
        if p.is_dir() {
            // a sqlite-backup folder: its databases
            for (f, _) in files_under(&p) {
                if is_database(&f) {
                    let differences = match backup_sqlite::check_copy(f.as_std_path()) {
                        Ok(()) => Vec::new(),
                        Err(e) => vec![Difference {
                            path: f.to_string(),
                            what: e.to_string(),
                        }],
                    };
                    out.push(Checked {
                        what: format!("sqlite {f}"),
                        differences,
                        files_read: 1,
                        bytes_read: 0,
                    });
                }
            }
        } else if name.ends_with(".gz") {
            let (differences, bytes) = match gzip_reads(&p) {
                Ok(n) => (Vec::new(), n),
                Err(e) => (
                    vec![Difference {
                        path: p.to_string(),
                        what: e,
                    }],
                    0,
                ),
            };
            out.push(Checked {
                what: format!("dump {p}"),
                differences,
                files_read: 1,
                bytes_read: bytes,
            });
        }
    }
}

impl VerifyReport {
    /// Intact, and something was there to check: a verify of nothing proves nothing.
    pub fn passed(&self) -> bool {
        self.differences() == 0 && !self.checked.is_empty()
    }
}

impl Outcome for VerifyReport {
    fn exit(&self) -> Exit {
        if self.passed() {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        if self.checked.is_empty() {
            return "verify: FAILED: nothing to verify (no complete version, SQLite copy, pfSense \
                    copy or dump): has daily-backup ever completed?"
                .to_owned();
        }
        let mut out = String::new();
        let bytes: u64 = self.checked.iter().map(|c| c.bytes_read).sum();
        let files: u64 = self.checked.iter().map(|c| c.files_read).sum();
        for c in &self.checked {
            if c.differences.is_empty() {
                continue;
            }
            out.push_str(&format!("FAILED {}:\n", c.what));
            for d in &c.differences {
                out.push_str(&format!("  {}: {}\n", d.path, d.what));
            }
        }
        let bad = self
            .checked
            .iter()
            .filter(|c| !c.differences.is_empty())
            .count();
        if self.damaged_versions > 0 {
            out.push_str(&format!(
                "{} marked damaged: the next daily-backup sends the damaged files again from \
                 the snapshot (README: When verify fails)\n",
                backup_host::human::plural(self.damaged_versions, "version")
            ));
        }
        out.push_str(&format!(
            "verify: {} checked, {} with differences ({}); read {}, {} in {:.1} s ({}/s)",
            self.checked.len(),
            bad,
            backup_host::human::plural(self.differences() as u64, "difference"),
            backup_host::human::plural(files, "file"),
            backup_host::human::bytes(bytes),
            self.seconds,
            backup_host::human::bytes((bytes as f64 / self.seconds.max(0.001)) as u64),
        ));
        out
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = if self.offsite {
            JobMetrics::verify_offsite()
        } else {
            JobMetrics::verify()
        };
        let mut m = job.outcome(self.passed(), self.now_unix);
        m.push(VERIFY_DIFFERENCES.gauge(self.differences() as f64));
        m.push(VERIFY_DAMAGED_VERSIONS.gauge(self.damaged_versions as f64));
        vec![MetricGroup::new(&job.job, m)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::FakeStore;
    use backup_core::StoreFile;
    use chrono::TimeZone;

    use crate::fixture::{one_version, rewrite_keeping_mtime};

    fn run(store: &FakeStore, args: &VerifyArgs) -> Result<VerifyReport> {
        let cfg =
            Config::from_toml("/etc/hb/config.toml".into(), "backup-root = \"/b\"\n").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 6, 9, 0, 0).unwrap();
        let deps = VerifyDeps {
            cfg: &cfg,
            now,
            store,
            from_offsite: false,
            want: None,
            repositories: Vec::new(),
        };
        verify_of(
            &deps,
            args,
            content_of(args, now)?,
            std::time::Instant::now(),
        )
    }

    fn all() -> VerifyArgs {
        VerifyArgs {
            week: None,
            pvc: None,
            sample: None,
            since_days: None,
            tier: false,
        }
    }

    #[test]
    fn an_intact_copy_passes_and_a_flipped_byte_that_keeps_size_and_mtime_is_named_and_marked() {
        let (_dir, store, week, copy) = one_version();
        let r = run(&store, &all()).unwrap();
        assert_eq!(r.differences(), 0, "{:?}", r.checked);
        assert_eq!(r.damaged_versions, 0);
        // the rewrite a size-and-mtime check cannot see
        rewrite_keeping_mtime(&copy.join("attachments/a.pdf"), b"%PDF-1.7 invoicf");
        let r = run(&store, &all()).unwrap();
        let named: Vec<&str> = r
            .checked
            .iter()
            .flat_map(|c| &c.differences)
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(named, ["attachments/a.pdf"], "{:?}", r.checked);
        assert_eq!(
            r.damaged_versions, 1,
            "the damage list is written through the store"
        );
        let listed = store
            .read(StoreFile::Damaged(week, "vaultwarden", "data"))
            .unwrap()
            .unwrap();
        assert_eq!(
            backup_host::version_commit::parse_damaged(&listed),
            [b"attachments/a.pdf".to_vec()]
        );
    }

    #[test]
    fn a_sample_outside_0_to_100_and_a_week_with_nothing_are_refused() {
        let (_dir, store, ..) = one_version();
        let e = run(
            &store,
            &VerifyArgs {
                sample: Some(101.0),
                ..all()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit().code(), 2, "{e}");
        let e = run(
            &store,
            &VerifyArgs {
                week: Some("2026-11".parse().unwrap()),
                ..all()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit().code(), 66, "{e}");
    }
}
