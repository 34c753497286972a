//! `backupctl drill`: restore a random sample of files (seeded from `--now`, so a drill can be
//! replayed) and every SQLite copy of the newest complete versions into a scratch folder, check
//! them against the records, measure the restore rate, and project each layer's RTO against the
//! seed's table.

use std::collections::BTreeMap;

use backup_core::metric_names::{JobMetrics, DRILL_RATE};
use backup_core::{
    BackupStore, EntryKind, FileEntry, MetricGroup, Series, TreeCopier, TreeCopy, WeekVersion,
};
use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::check::{compare, read_and_compare, show, Content, Difference, ToRead};
use crate::inventory::{files_under, record};
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::repository::RepositoryTarget;
use backup_host::tree::walk_entries;
use backup_run::{Context, Outcome};

/// `drill` flags.
#[derive(Debug, Clone)]
pub struct DrillArgs {
    /// Percent of each version's files restored.
    pub sample: f64,
    /// Where to restore (default: a temp folder, removed afterwards).
    pub scratch: Option<Utf8PathBuf>,
    /// `--no-tier`: only the backup disk, not the tier's repositories.
    pub no_tier: bool,
    /// Whether the dumps are loaded into throwaway servers too, not, or alone.
    pub dumps: DumpsInDrill,
    /// `--dump-folder`: instead of `[dumps] folders`.
    pub dump_folders: Vec<Utf8PathBuf>,
    /// `--site`: the site disaster rehearsed from the offsite copy ([`crate::site`]).
    pub site: bool,
}

/// The dump part of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpsInDrill {
    /// With the rest (the default; skipped when no dump folder is configured).
    Too,
    /// `--no-dumps`.
    No,
    /// `--dumps-only`: no backup disk is read.
    Only,
}

/// One layer's projected restore time against the seed's target.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRto {
    /// `lvm-snapshot`, `file-level`, `sqlite`.
    pub layer: &'static str,
    /// The seed's target, minutes.
    pub target_minutes: u32,
    /// Projected seconds for the largest item of the layer; `None`: not measured by a drill.
    pub projected_seconds: Option<f64>,
    /// How it was projected.
    pub basis: String,
}

/// `backupctl drill`.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The seed the sample came from (`--now` as a unix time).
    pub seed: u64,
    /// Versions drilled (`ns/pvc week`) and files restored from each.
    pub versions: Vec<(String, u64)>,
    /// SQLite copies restored and checked.
    pub sqlite_copies: u64,
    /// Every difference found.
    pub differences: Vec<Difference>,
    /// Bytes restored.
    pub bytes: u64,
    /// Seconds restoring and checking.
    pub seconds: f64,
    /// Bytes per second.
    pub rate: f64,
    /// Per tier repository: the same sample restored from it by restic.
    pub tier: Vec<TierDrill>,
    /// The newest dump of every name, loaded into a throwaway server.
    pub dumps: Vec<crate::DumpDrilled>,
    /// Projected RTO per layer.
    pub rto: Vec<LayerRto>,
    #[serde(skip)]
    now_unix: i64,
    /// `--dumps-only`: its metrics go under the dump drill's job.
    #[serde(skip)]
    dumps_only: bool,
    /// Each drilled version's restore: (seconds, files, bytes).
    #[serde(skip)]
    pub(crate) runs: Vec<(f64, u64, u64)>,
    /// `--site`: what the site rehearsal found.
    pub site: Option<SiteReport>,
}

/// The drill's sample restored from one tier repository.
#[derive(Debug, Clone, Serialize)]
pub struct TierDrill {
    /// The repository's `name`.
    pub repository: String,
    /// Files restored and checked.
    pub files: u64,
    /// Bytes read back.
    pub bytes: u64,
    /// Seconds restoring and checking.
    pub seconds: f64,
}

/// How long a whole restore of a version would take, from the drill's own restores: each
/// version's rsync run costs a fixed part (the fastest run: process start, file list) and then
/// time per file and per byte. A sample of a few small files measures mostly the fixed part; a
/// projection by bytes alone from it once promised 34 s for a volume that restored in 0.8 s.
pub(crate) struct Projection {
    /// Seconds of the fastest run: the fixed cost of one rsync run.
    fixed: f64,
    /// Seconds per file beyond it.
    per_file: f64,
    /// Bytes per second beyond it.
    rate: f64,
    /// Files and bytes drilled.
    files: u64,
    bytes: u64,
}

impl Projection {
    pub(crate) fn from_runs(runs: &[(f64, u64, u64)]) -> Self {
        let fixed = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let fixed = if fixed.is_finite() { fixed } else { 0.0 };
        let work: f64 = runs
            .iter()
            .map(|r| (r.0 - fixed).max(0.0))
            .sum::<f64>()
            .max(1e-6);
        let files: u64 = runs.iter().map(|r| r.1).sum();
        let bytes: u64 = runs.iter().map(|r| r.2).sum();
        Self {
            fixed,
            per_file: work / files.max(1) as f64,
            rate: bytes as f64 / work,
            files,
            bytes,
        }
    }

    /// Below this many bytes drilled, time per byte is not measured: per-file costs drown it.
    const BYTES_TO_MEASURE: u64 = 1 << 20;

    /// The fixed part, then the larger of the two ways to spend the rest (bytes only when the
    /// drill read enough of them to tell).
    pub(crate) fn seconds(&self, files: u64, bytes: u64) -> f64 {
        let by_files = files as f64 * self.per_file;
        let by_bytes = if self.bytes >= Self::BYTES_TO_MEASURE {
            bytes as f64 / self.rate.max(1.0)
        } else {
            0.0
        };
        self.fixed + by_files.max(by_bytes)
    }

    fn basis(&self, files: u64, bytes: u64, drilled_seconds: f64) -> String {
        let rate = if self.bytes >= Self::BYTES_TO_MEASURE {
            format!(
                " or {}/s, whichever is slower",
                backup_host::human::bytes(self.rate as u64)
            )
        } else {
            " (too few bytes drilled to measure a byte rate)".to_owned()
        };
        format!(
            "the largest PVC version ({}, {}): {:.2} s a run, then {:.1} ms a file{rate}; \
             measured on {} of {} in {:.1} s",
            backup_host::human::plural(files, "file"),
            backup_host::human::bytes(bytes),
            self.fixed,
            self.per_file * 1000.0,
            backup_host::human::plural(self.files, "file"),
            backup_host::human::bytes(self.bytes),
            drilled_seconds
        )
    }
}

/// What a drill will restore, decided before anything is written: per version, the files of
/// the sample (at least one when the version has files), or that it cannot be drilled.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillPlan {
    /// The sample's seed (`--now` as a unix time: the same `--now`, the same files).
    pub seed: u64,
    /// The newest complete version of every PVC, in order.
    pub items: Vec<DrillItem>,
    /// The largest version drilled: (bytes, files), what the file-level RTO is projected for.
    pub largest: (u64, u64),
}

/// A complete version and its record (`None`: no usable one), what [`plan_drill`] plans from.
pub type Listed = (WeekVersion, Option<Vec<FileEntry>>);

/// One version of a [`DrillPlan`].
#[derive(Debug, Clone, PartialEq)]
pub struct DrillItem {
    /// The version.
    pub version: WeekVersion,
    /// `ns/pvc week`.
    pub label: String,
    /// The record's entries of the files to restore (empty: a version with no file; `None`:
    /// no usable record, the version cannot be drilled).
    pub chosen: Option<Vec<FileEntry>>,
}

/// Plans a drill of the newest complete version of every PVC in `all` (with its record, `None`
/// when it has no usable one): `percent` of each version's files, chosen by `seed`. Pure: the
/// same listing and seed give the same plan.
pub fn plan_drill(all: Vec<Listed>, seed: u64, percent: f64) -> DrillPlan {
    let content = Content::Sample { seed, percent };
    let mut plan = DrillPlan {
        seed,
        items: Vec::new(),
        largest: (0, 0),
    };
    for (v, rec) in backup_core::newest_complete(all, |(v, _)| v) {
        let label = format!("{}/{} {}", v.namespace, v.pvc, v.week);
        let Some(rec) = rec else {
            plan.items.push(DrillItem {
                version: v,
                label,
                chosen: None,
            });
            continue;
        };
        let files = rec.iter().filter(|e| e.kind == EntryKind::File);
        let files_in = files.clone().count() as u64;
        plan.largest = plan
            .largest
            .max((rec.iter().map(|e| e.size).sum(), files_in));
        let mut chosen: Vec<FileEntry> = files
            .clone()
            .filter(|e| content.chosen(&e.path))
            .cloned()
            .collect();
        if chosen.is_empty() {
            // a small version: at least one file
            chosen.extend(files.take(1).cloned());
        }
        plan.items.push(DrillItem {
            version: v,
            label,
            chosen: Some(chosen),
        });
    }
    plan
}

/// What drilling the sampled files of each planned version gave: (label, files) per version,
/// the bytes read, and each drilled version's (seconds, files, bytes).
type VersionsDrilled = (Vec<(String, u64)>, u64, Vec<(f64, u64, u64)>);

/// Restores the sampled files of each planned version into `scratch` and checks them; what
/// differs goes to `differences`.
fn drill_versions(
    deps: &DrillDeps<'_>,
    scratch: &camino::Utf8Path,
    plan: &DrillPlan,
    differences: &mut Vec<Difference>,
) -> Result<VersionsDrilled> {
    let mut drilled = Vec::new();
    let mut bytes = 0u64;
    // each drilled version's (seconds, files, bytes)
    let mut runs: Vec<(f64, u64, u64)> = Vec::new();
    for item in &plan.items {
        backup_host::progress::message(&item.label);
        let Some(chosen) = &item.chosen else {
            differences.push(Difference {
                path: item.label.clone(),
                what: "no usable record: this version cannot be drilled".to_owned(),
            });
            continue;
        };
        if chosen.is_empty() {
            drilled.push((item.label.clone(), 0));
            continue;
        }
        let chosen: Vec<&FileEntry> = chosen.iter().collect();
        let (seconds, read) = restore_sample(deps, scratch, &item.version, &chosen, differences)?;
        bytes += read;
        runs.push((seconds, chosen.len() as u64, read));
        drilled.push((item.label.clone(), chosen.len() as u64));
    }
    Ok((drilled, bytes, runs))
}

/// The ports of a drill: the backup root, how a sample comes out of it, the tier's
/// repositories, and the dump part.
pub(crate) struct DrillDeps<'a> {
    /// The run's time: the sample's seed, the report's stamp.
    pub now: DateTime<Utc>,
    /// The backup root (the offsite copy's view under `--from-offsite`).
    pub store: Box<dyn BackupStore + 'a>,
    /// Copies a sample out of the backup root (from the offsite copy over ssh, too).
    pub copier: Box<dyn TreeCopier + 'a>,
    /// The tier's repositories to restore the sample from; none with `--no-tier`.
    pub repositories: Vec<Box<dyn RepositoryTarget + 'a>>,
    /// The dumps loaded into throwaway servers ([`drill_dump_part`]).
    pub dumps: Box<DumpPart<'a>>,
}

/// The dump part of a drill: the dumps loaded into throwaway servers; each that fails is pushed
/// as a difference naming it.
pub(crate) type DumpPart<'a> = dyn Fn(&mut Vec<Difference>) -> Result<Vec<crate::DumpDrilled>> + 'a;

impl<'a> DrillDeps<'a> {
    /// The run's ports for `args`.
    ///
    /// # Errors
    /// No backup root; a tier repository that cannot be set up.
    fn of(ctx: &'a Context<'a>, args: &'a DrillArgs) -> Result<Self> {
        Ok(Self {
            now: ctx.now,
            store: ctx.store()?,
            copier: ctx.copier(),
            repositories: if args.no_tier {
                Vec::new()
            } else {
                ctx.repositories()?
            },
            dumps: Box::new(move |differences| drill_dump_part(ctx, args, differences)),
        })
    }
}

/// Runs the drill: plans it ([`plan_drill`]), then restores and checks each version's sample
/// and every SQLite copy, and projects the RTOs.
///
/// # Errors
/// No complete version, a scratch folder that cannot be used.
pub fn drill(ctx: &Context<'_>, args: &DrillArgs) -> Result<DrillReport> {
    if !(0.0..=100.0).contains(&args.sample) || args.sample == 0.0 {
        return Err(Error::Usage(format!(
            "--sample {}: expected a percent above 0, at most 100",
            args.sample
        )));
    }
    if args.dumps == DumpsInDrill::Only {
        // nothing is read from the backup disk: no backup root, no configuration needed
        return drill_only_dumps(ctx.now, &|d| drill_dump_part(ctx, args, d));
    }
    drill_of(&DrillDeps::of(ctx, args)?, args)
}

/// [`drill`] from `deps` (`--sample` checked; not `--dumps-only`).
///
/// # Errors
/// No complete version, a scratch folder that cannot be used.
pub(crate) fn drill_of(deps: &DrillDeps<'_>, args: &DrillArgs) -> Result<DrillReport> {
    let store = deps.store.as_ref();
    let root = store.root().clone();
    let listed: Vec<Listed> = store
        .list_versions(Series::Pvc)?
        .into_iter()
        .filter(WeekVersion::is_complete)
        .map(|v| {
            let rec = record(store, &v);
            (v, rec)
        })
        .collect();
    let plan = plan_drill(listed, deps.now.timestamp() as u64, args.sample);
    if plan.items.is_empty() {
        return Err(Error::NotFound(
            "no complete version to drill: run daily-backup first".to_owned(),
        ));
    }
    let (_temp, scratch) = scratch_folder(args)?;
    let started = std::time::Instant::now();
    let _phase = backup_host::progress::start("drill", backup_host::progress::Totals::default());
    let mut differences = Vec::new();
    let (drilled, bytes, runs) = drill_versions(deps, &scratch, &plan, &mut differences)?;
    let file_seconds = started.elapsed().as_secs_f64();
    let projection = Projection::from_runs(&runs);
    // every SQLite copy of those versions
    let versions: Vec<WeekVersion> = plan.items.iter().map(|i| i.version.clone()).collect();
    let sq = drill_sqlite(&root, &scratch, &versions, &mut differences)?;
    let tiers = drill_tiers(&deps.repositories, &scratch, &plan, &mut differences)?;
    let dumps = (deps.dumps)(&mut differences)?;
    let seconds = started.elapsed().as_secs_f64();
    let total = bytes + sq.bytes + tiers.iter().map(|(t, _)| t.bytes).sum::<u64>();
    let mut rto = layer_rtos(
        &projection,
        plan.largest,
        file_seconds,
        !runs.is_empty(),
        &sq,
    );
    rto.extend(tier_rtos(&tiers, plan.largest));
    rto.extend(dump_rtos(&dumps));
    Ok(DrillReport {
        seed: plan.seed,
        versions: drilled,
        sqlite_copies: sq.copies,
        differences,
        bytes: total,
        seconds,
        rate: total as f64 / seconds.max(0.001),
        tier: tiers.into_iter().map(|(t, _)| t).collect(),
        dumps,
        rto,
        now_unix: deps.now.timestamp(),
        dumps_only: false,
        runs,
        site: None,
    })
}

/// One RTO row per tier repository: the largest version, projected from its restore of the
/// sample, against the 4 hours of a site disaster.
fn tier_rtos(tiers: &[(TierDrill, Projection)], (bytes, files): (u64, u64)) -> Vec<LayerRto> {
    tiers
        .iter()
        .map(|(t, p)| LayerRto {
            layer: "offsite-tier",
            target_minutes: 240,
            projected_seconds: (t.files > 0).then(|| p.seconds(files, bytes)),
            basis: format!(
                "tier `{}`: {}",
                t.repository,
                p.basis(files, bytes, t.seconds)
            ),
        })
        .collect()
}

/// `--dumps-only`: the dumps loaded into throwaway servers, nothing read from the backup disk.
fn drill_only_dumps(now: DateTime<Utc>, dump_part: &DumpPart<'_>) -> Result<DrillReport> {
    let started = std::time::Instant::now();
    let mut differences = Vec::new();
    let dumps = dump_part(&mut differences)?;
    if dumps.is_empty() {
        return Err(Error::NotFound(
            "no dump to drill in the dump folders (`backupctl list` shows them)".to_owned(),
        ));
    }
    let bytes = dumps.iter().map(|d| d.dump.bytes).sum();
    let seconds = started.elapsed().as_secs_f64();
    Ok(DrillReport {
        seed: now.timestamp() as u64,
        versions: Vec::new(),
        sqlite_copies: 0,
        differences,
        bytes,
        seconds,
        rate: bytes as f64 / seconds.max(0.001),
        tier: Vec::new(),
        rto: dump_rtos(&dumps),
        dumps,
        now_unix: now.timestamp(),
        dumps_only: true,
        runs: Vec::new(),
        site: None,
    })
}

/// The dumps of the drill (none with `--no-dumps`, or when no dump folder is configured and
/// none named); each that fails is a difference naming the dump.
fn drill_dump_part(
    ctx: &Context<'_>,
    args: &DrillArgs,
    differences: &mut Vec<Difference>,
) -> Result<Vec<crate::DumpDrilled>> {
    let folders = match (
        args.dumps,
        crate::dumps::dump_folders(ctx, &args.dump_folders),
    ) {
        (DumpsInDrill::No, _) | (DumpsInDrill::Too, Err(Error::Usage(_))) => return Ok(Vec::new()),
        (_, r) => r?,
    };
    let dumps = crate::drill_dumps(ctx, &folders, args.dumps == DumpsInDrill::Only)?;
    for d in &dumps {
        if let Some(why) = &d.failed {
            differences.push(Difference {
                path: d.dump.path.to_string(),
                what: format!("the dump does not restore: {why}"),
            });
        }
    }
    Ok(dumps)
}

/// One RTO row per dump kind: the slowest newest dump of that kind, measured whole.
fn dump_rtos(dumps: &[crate::DumpDrilled]) -> Vec<LayerRto> {
    let mut out = Vec::new();
    for kind in backup_dumps::DumpKind::ALL {
        let Some(d) = dumps
            .iter()
            .filter(|d| d.kind == Some(kind))
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        else {
            continue;
        };
        let loaded = d.loaded.as_ref();
        let measured = loaded.is_some_and(|l| !l.items.is_empty());
        out.push(LayerRto {
            layer: kind.as_str(),
            target_minutes: kind.rto_minutes(),
            projected_seconds: measured.then_some(d.seconds),
            basis: match (loaded, &d.failed) {
                (_, Some(_)) => format!("{}: did not restore (above)", d.dump.path),
                (Some(l), None) if measured => format!(
                    "{} ({}) loaded whole into a throwaway server and checked: {}",
                    d.dump.path.file_name().unwrap_or(""),
                    backup_host::human::bytes(d.dump.bytes),
                    l.summary(kind)
                ),
                (Some(l), None) => format!(
                    "{}: {}",
                    d.dump.path.file_name().unwrap_or(""),
                    l.summary(kind)
                ),
                (None, None) => String::new(),
            },
        });
    }
    out
}

/// Where the drill restores: `--scratch`, kept, or a temp folder removed with the guard.
fn scratch_folder(args: &DrillArgs) -> Result<(Option<tempfile::TempDir>, Utf8PathBuf)> {
    if let Some(s) = &args.scratch {
        std::fs::create_dir_all(s).map_err(|e| Error::io("create folder", s, e))?;
        return Ok((None, s.clone()));
    }
    let temp = tempfile::Builder::new()
        .prefix("backupctl-drill-")
        .tempdir()
        .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
    let path = Utf8PathBuf::from_path_buf(temp.path().to_owned()).map_err(|p| {
        Error::Refused(format!(
            "the temp folder {} is not UTF-8 (TMPDIR)",
            p.display()
        ))
    })?;
    Ok((Some(temp), path))
}

/// Restores the `chosen` files of `v` into the scratch folder with rsync and checks each
/// against the record (metadata, then content); returns the run's seconds and bytes read.
fn restore_sample(
    deps: &DrillDeps<'_>,
    scratch: &camino::Utf8Path,
    v: &WeekVersion,
    chosen: &[&FileEntry],
    differences: &mut Vec<Difference>,
) -> Result<(f64, u64)> {
    let label = format!("{}/{} {}", v.namespace, v.pvc, v.week);
    let root = deps.store.root().clone();
    let run_started = std::time::Instant::now();
    let to = scratch.join(&v.namespace).join(&v.pvc);
    std::fs::create_dir_all(&to).map_err(|e| Error::io("create folder", &to, e))?;
    let list = scratch.join(format!(".{}.{}.files", v.namespace, v.pvc));
    let mut nul = Vec::new();
    for e in chosen {
        backup_core::encode_files_from(&e.path, &mut nul);
    }
    std::fs::write(&list, &nul).map_err(|e| Error::io("write", &list, e))?;
    let from = root.pvc_copy(v.week, &v.namespace, &v.pvc);
    let how = TreeCopy {
        files_from: Some(&list),
        ..TreeCopy::default()
    };
    deps.copier.copy_tree(&from, &to, &how)?;
    let _ = std::fs::remove_file(&list);
    let read = check_restored(&label, &to, chosen, differences)?;
    Ok((run_started.elapsed().as_secs_f64(), read))
}

/// Checks the `chosen` files restored under `to` against their record entries: each present,
/// its metadata, then its content. Returns the bytes read.
fn check_restored(
    label: &str,
    to: &camino::Utf8Path,
    chosen: &[&FileEntry],
    differences: &mut Vec<Difference>,
) -> Result<u64> {
    let got: BTreeMap<Vec<u8>, FileEntry> = walk_entries(to.as_std_path())?
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    for want in chosen {
        match got.get(&want.path) {
            None => differences.push(Difference {
                path: format!("{label}: {}", show(&want.path)),
                what: "not restored".to_owned(),
            }),
            Some(g) => differences.extend(compare(want, g).into_iter().map(|what| Difference {
                path: format!("{label}: {}", show(&want.path)),
                what,
            })),
        }
    }
    let sized: Vec<ToRead<'_>> = chosen
        .iter()
        .map(|e| ToRead {
            want: e,
            size: e.size,
            id: None,
        })
        .collect();
    let (_, read, bad) = read_and_compare(to.as_std_path(), &sized, None);
    differences.extend(bad.into_iter().map(|(p, what)| Difference {
        path: format!("{label}: {}", show(&p)),
        what,
    }));
    Ok(read)
}

/// Restores one version's sampled files (`chosen`) from the tier repository `repo` and checks
/// them against the record the snapshot was sent with: (seconds, files, bytes read), or `None`
/// when the restore failed (said in `differences`).
fn drill_tier_version(
    target: &dyn RepositoryTarget,
    item: &DrillItem,
    chosen: &[FileEntry],
    scratch: &camino::Utf8Path,
    differences: &mut Vec<Difference>,
) -> Result<Option<(f64, u64, u64)>> {
    let v = &item.version;
    let label = format!("tier {} {}", target.name(), item.label);
    backup_host::progress::message(&label);
    let run_started = std::time::Instant::now();
    let to = scratch
        .join(".tier")
        .join(target.name())
        .join(&v.namespace)
        .join(&v.pvc);
    let paths: Vec<&[u8]> = chosen.iter().map(|e| e.path.as_slice()).collect();
    let got = match target.restore_files((&v.namespace, &v.pvc), v.week, &paths, &to) {
        Ok(g) => g,
        Err(e) => {
            differences.push(Difference {
                path: label,
                what: e.to_string(),
            });
            return Ok(None);
        }
    };
    // judged by the record the snapshot was sent with: a run later in the week may
    // have changed (or added) a sampled file the snapshot holds as it was
    let sent: Option<BTreeMap<Vec<u8>, FileEntry>> = target
        .sent_record(got.record.as_deref(), (v.week, &v.namespace, &v.pvc))
        .map(|r| r.into_iter().map(|e| (e.path.clone(), e)).collect());
    let asked: Vec<&FileEntry> = chosen
        .iter()
        .filter_map(|e| match &sent {
            Some(sent) => sent.get(&e.path),
            None => Some(e),
        })
        .filter(|e| got.unnamed == 0 || std::str::from_utf8(&e.path).is_ok())
        .collect();
    let read = check_restored(&label, &got.root, &asked, differences)?;
    Ok(Some((
        run_started.elapsed().as_secs_f64(),
        asked.len() as u64,
        read,
    )))
}

/// Restores every version's sample from each tier repository with restic (the week's
/// snapshot) and checks it against the same record entries. A repository that cannot give it
/// back is a difference, not the drill's end.
fn drill_tiers(
    repositories: &[Box<dyn RepositoryTarget + '_>],
    scratch: &camino::Utf8Path,
    plan: &DrillPlan,
    differences: &mut Vec<Difference>,
) -> Result<Vec<(TierDrill, Projection)>> {
    let mut out = Vec::new();
    for target in repositories {
        let started = std::time::Instant::now();
        let (mut files, mut bytes, mut runs) = (0u64, 0u64, Vec::new());
        for item in &plan.items {
            let Some(chosen) = item.chosen.as_ref().filter(|c| !c.is_empty()) else {
                continue;
            };
            let Some((seconds, n, read)) =
                drill_tier_version(target.as_ref(), item, chosen, scratch, differences)?
            else {
                continue;
            };
            runs.push((seconds, n, read));
            files += n;
            bytes += read;
        }
        let drilled = TierDrill {
            repository: target.name().to_owned(),
            files,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
        };
        out.push((drilled, Projection::from_runs(&runs)));
    }
    Ok(out)
}

/// What the SQLite part of a drill measured.
struct SqliteDrill {
    copies: u64,
    bytes: u64,
    largest: u64,
    seconds: f64,
}

/// Copies every SQLite copy of `versions` into the scratch folder and runs its integrity check.
fn drill_sqlite(
    root: &backup_core::BackupRoot,
    scratch: &camino::Utf8Path,
    versions: &[WeekVersion],
    differences: &mut Vec<Difference>,
) -> Result<SqliteDrill> {
    let sq_started = std::time::Instant::now();
    let mut sq_bytes = 0u64;
    let mut sq_largest = 0u64;
    let mut sqlite_copies = 0;
    for v in versions {
        let from = root.sqlite_copy(v.week, &v.namespace, &v.pvc);
        for (f, size) in files_under(&from) {
            if f.file_name().is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            let rel = f.strip_prefix(&from).unwrap_or(&f);
            let dest = scratch
                .join("sqlite")
                .join(&v.namespace)
                .join(&v.pvc)
                .join(rel);
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::io("create folder", p, e))?;
            }
            std::fs::copy(&f, &dest).map_err(|e| Error::io("copy", f.clone(), e))?;
            if let Err(e) = backup_sqlite::check_copy(dest.as_std_path()) {
                differences.push(Difference {
                    path: f.to_string(),
                    what: e.to_string(),
                });
            }
            sqlite_copies += 1;
            sq_bytes += size;
            sq_largest = sq_largest.max(size);
        }
    }
    let sq_seconds = sq_started.elapsed().as_secs_f64();
    Ok(SqliteDrill {
        copies: sqlite_copies,
        bytes: sq_bytes,
        largest: sq_largest,
        seconds: sq_seconds,
    })
}

/// The projected RTO of each layer.
fn layer_rtos(
    projection: &Projection,
    largest_pvc: (u64, u64),
    file_seconds: f64,
    drilled: bool,
    sq: &SqliteDrill,
) -> Vec<LayerRto> {
    let (sqlite_copies, sq_bytes, sq_largest, sq_seconds) =
        (sq.copies, sq.bytes, sq.largest, sq.seconds);
    vec![
        LayerRto {
            layer: "lvm-snapshot",
            target_minutes: 5,
            projected_seconds: None,
            basis: "a swap of volumes (`lvm-pvc-snapshot restore`): no data is copied, its time \
                    is the workloads' stop and start; not drilled here"
                .to_owned(),
        },
        LayerRto {
            layer: "file-level",
            target_minutes: 15,
            projected_seconds: drilled.then(|| projection.seconds(largest_pvc.1, largest_pvc.0)),
            basis: projection.basis(largest_pvc.1, largest_pvc.0, file_seconds),
        },
        LayerRto {
            layer: "sqlite",
            target_minutes: 5,
            projected_seconds: (sqlite_copies > 0)
                .then(|| sq_largest as f64 / (sq_bytes as f64 / sq_seconds.max(0.001))),
            basis: format!(
                "the largest SQLite copy ({}) at the rate of the {} drilled ({}/s)",
                backup_host::human::bytes(sq_largest),
                backup_host::human::plural(sqlite_copies, "copy"),
                backup_host::human::bytes((sq_bytes as f64 / sq_seconds.max(0.001)) as u64)
            ),
        },
    ]
}

/// The architecture's budget for the whole cluster from offsite, minutes.
pub const SITE_TARGET_MINUTES: u32 = 240;

/// What `--site` adds to a drill.
#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    /// The offsite copy the drill read.
    pub offsite_root: Utf8PathBuf,
    /// What is missing to rebuild (a PVC with no offsite version, a dump folder no tree
    /// carries offsite, no etcd snapshot in the last 30 days, no pfSense copy, ...).
    pub missing: Vec<String>,
    /// Per layer: (layer, projected seconds for the whole data set, how).
    pub layers: Vec<(String, f64, String)>,
    /// Their sum.
    pub total_seconds: f64,
}

impl SiteReport {
    /// Whether the rehearsal passed: nothing missing, within the 4 hours.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.total_seconds <= f64::from(SITE_TARGET_MINUTES) * 60.0
    }
}

/// The site part of a drill's text.
fn site_text(s: &SiteReport) -> String {
    let mut out = format!(
        "site drill: from the offsite copy {}, nothing read from the backup disk\n",
        s.offsite_root
    );
    for m in &s.missing {
        out.push_str(&format!("  MISSING {m}\n"));
    }
    for (layer, seconds, how) in &s.layers {
        out.push_str(&format!("  {layer:<11} {seconds:>8.1} s  {how}\n"));
    }
    let target = f64::from(SITE_TARGET_MINUTES) * 60.0;
    let verdict = if s.total_seconds <= target {
        "within"
    } else {
        "OVER"
    };
    out.push_str(&format!(
        "  RTO site        {:.1} s projected for the whole data set, {verdict} the {} h target\n",
        s.total_seconds,
        SITE_TARGET_MINUTES / 60
    ));
    if !s.missing.is_empty() {
        out.push_str(&format!(
            "  the site cannot be rebuilt whole: {} missing\n",
            backup_host::human::plural(s.missing.len() as u64, "thing")
        ));
    }
    out
}

impl Outcome for DrillReport {
    fn exit(&self) -> Exit {
        if self.differences.is_empty() && self.site.as_ref().is_none_or(|s| s.passed()) {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn text(&self, dry_run: bool) -> String {
        let mut out = String::new();
        for d in &self.differences {
            out.push_str(&format!("FAILED {}: {}\n", d.path, d.what));
        }
        let files: u64 = self.versions.iter().map(|(_, n)| n).sum();
        let what = if self.versions.is_empty() && self.sqlite_copies == 0 {
            let whole = self.dumps.iter().filter(|d| d.failed.is_none()).count() as u64;
            format!("{whole} of the {} newest dumps", self.dumps.len())
        } else {
            let dumps = match self.dumps.len() as u64 {
                0 => String::new(),
                n => format!(", {}", backup_host::human::plural(n, "dump")),
            };
            format!(
                "{} from {}{dumps} and {}",
                backup_host::human::plural(files, "file"),
                backup_host::human::plural(self.versions.len() as u64, "version"),
                backup_host::human::plural(self.sqlite_copies, "SQLite copy"),
            )
        };
        out.push_str(&format!(
            "drill (seed {}): {what} restored and checked, {} in {:.1} s; {}\n",
            self.seed,
            backup_host::human::bytes(self.bytes),
            self.seconds,
            backup_host::human::plural(self.differences.len() as u64, "difference")
        ));
        let done = if dry_run {
            "would be restored into a throwaway server"
        } else {
            "restored into a throwaway server"
        };
        for d in self.dumps.iter().filter(|d| d.failed.is_none()) {
            // checked whole but not loaded (no server of its kind on this host, --dry-run)
            let loaded = d.loaded.as_ref().is_some_and(|l| !l.items.is_empty());
            let done = if loaded { done } else { "checked" };
            out.push_str(&format!(
                "  dump {} ({}) {done} in {:.1} s: {}\n",
                d.dump.name,
                d.kind.map_or("?", backup_dumps::DumpKind::as_str),
                d.seconds,
                d.loaded
                    .as_ref()
                    .zip(d.kind)
                    .map_or_else(String::new, |(l, k)| l.summary(k))
            ));
        }
        for t in &self.tier {
            out.push_str(&format!(
                "  tier {}: the same sample restored by restic, {} checked, {} in {:.1} s\n",
                t.repository,
                backup_host::human::plural(t.files, "file"),
                backup_host::human::bytes(t.bytes),
                t.seconds
            ));
        }
        for r in &self.rto {
            let verdict = match r.projected_seconds {
                Some(s) if s <= f64::from(r.target_minutes) * 60.0 => {
                    format!("{s:.1} s, within {} min", r.target_minutes)
                }
                Some(s) => format!("{s:.1} s, OVER the {} min target", r.target_minutes),
                None => format!("not measured (target {} min)", r.target_minutes),
            };
            out.push_str(&format!("  RTO {:<13} {verdict}: {}\n", r.layer, r.basis));
        }
        if let Some(s) = &self.site {
            out.push_str(&site_text(s));
        }
        out.trim_end().to_owned()
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = if self.dumps_only {
            JobMetrics::dump_drill()
        } else {
            JobMetrics::drill()
        };
        let mut m = job.outcome(self.exit() == Exit::Success, self.now_unix);
        m.push(DRILL_RATE.gauge(self.rate));
        vec![MetricGroup::new(&job.job, m)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> FileEntry {
        backup_core::testing::file_entry(path, size)
    }

    fn version(pvc: &str, week: &str, complete: bool) -> WeekVersion {
        WeekVersion {
            namespace: "ns".to_owned(),
            pvc: pvc.to_owned(),
            week: week.parse().unwrap(),
            completed_at: complete.then_some(chrono::DateTime::UNIX_EPOCH),
        }
    }

    /// Issue 22, item 4: the drill's choices as a value. The newest complete week of each PVC;
    /// an incomplete newer week ignored; a version without a record kept as undrillable; a
    /// tiny version still drills one file; the same seed, the same files.
    #[test]
    fn the_plan_picks_the_newest_complete_version_and_a_seeded_sample() {
        let big: Vec<FileEntry> = (0..1000).map(|i| file(&format!("f{i}"), 10)).collect();
        let listing = || {
            vec![
                (version("a", "2026-05", true), Some(vec![file("old", 1)])),
                (version("a", "2026-06", true), Some(big.clone())),
                (version("a", "2026-07", false), Some(vec![file("half", 1)])),
                (version("b", "2026-06", true), None),
                (version("c", "2026-06", true), Some(vec![file("only", 5)])),
            ]
        };
        let plan = plan_drill(listing(), 7, 10.0);
        let labels: Vec<&str> = plan.items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["ns/a 2026-06", "ns/b 2026-06", "ns/c 2026-06"]);
        let a = plan.items[0].chosen.as_ref().unwrap();
        assert!((50..150).contains(&a.len()), "{}", a.len());
        assert_eq!(plan.items[1].chosen, None);
        assert_eq!(plan.items[2].chosen.as_ref().unwrap().len(), 1);
        assert_eq!(plan.largest, (10_000, 1000));
        assert_eq!(plan_drill(listing(), 7, 10.0), plan);
        assert_ne!(
            plan_drill(listing(), 8, 10.0).items[0].chosen,
            plan.items[0].chosen
        );
    }

    /// The case that was wrong: three tiny files drilled, a volume of 2 001 files and 1.6 GiB.
    /// By bytes alone the drill's rate (overhead over a few hundred bytes) promised minutes.
    #[test]
    fn a_tiny_sample_projects_by_files_not_bytes() {
        let p = Projection::from_runs(&[(0.030, 1, 40), (0.034, 1, 50), (0.041, 1, 40)]);
        let s = p.seconds(2001, 1_600_000_000);
        assert!(s < 60.0, "{s}");
        assert!(p.basis(2001, 1_600_000_000, 0.1).contains("too few bytes"));
        // a sample that read enough bytes: slow bytes are not hidden behind fast files
        let p = Projection::from_runs(&[(0.05, 10, 1), (1.05, 10, 100 << 20)]);
        let s = p.seconds(20, 1_000 << 20);
        assert!(s > 9.0, "{s}");
    }
}

#[cfg(test)]
mod drilled {
    use super::*;
    use crate::fixture::{one_version, rewrite_keeping_mtime};
    use backup_host::local_copy::FakeTreeCopier;
    use backup_host::repository::FakeRepository;
    use chrono::TimeZone;

    fn args(scratch: &camino::Utf8Path) -> DrillArgs {
        DrillArgs {
            sample: 100.0,
            scratch: Some(scratch.to_owned()),
            no_tier: false,
            dumps: DumpsInDrill::Too,
            dump_folders: Vec::new(),
            site: false,
        }
    }

    fn ports(
        store: backup_core::testing::FakeStore,
        repositories: Vec<Box<dyn RepositoryTarget>>,
    ) -> (DrillDeps<'static>, FakeTreeCopier) {
        let copier = FakeTreeCopier::default();
        let deps = DrillDeps {
            now: Utc.with_ymd_and_hms(2026, 3, 9, 6, 0, 0).unwrap(),
            store: Box::new(store),
            copier: Box::new(copier.clone()),
            repositories,
            dumps: Box::new(|_| Ok(Vec::new())),
        };
        (deps, copier)
    }

    /// The sample of the newest complete version comes out through the copier as a list of
    /// its files, and each is checked against the record; a rewrite that keeps size and mtime
    /// is found by the content check.
    #[test]
    fn the_sample_is_restored_through_the_copier_and_checked_against_the_record() {
        let (dir, store, _, copy) = one_version();
        let scratch = camino::Utf8PathBuf::from_path_buf(dir.path().join("scratch")).unwrap();
        let (deps, copier) = ports(store, Vec::new());
        let r = drill_of(&deps, &args(&scratch)).unwrap();
        assert!(r.differences.is_empty(), "{:?}", r.differences);
        assert_eq!(r.versions, [("vaultwarden/data 2026-10".to_owned(), 2)]);
        assert_eq!(r.exit(), Exit::Success);
        let calls = copier.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0].contains("list: "), "{calls:?}");
        assert!(calls[0].contains("attachments/a.pdf") && calls[0].contains("db.sqlite3"));

        rewrite_keeping_mtime(&copy.join("db.sqlite3"), &[8u8; 4096]);
        let scratch2 = camino::Utf8PathBuf::from_path_buf(dir.path().join("scratch2")).unwrap();
        let r = drill_of(&deps, &args(&scratch2)).unwrap();
        let named: Vec<&str> = r.differences.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(named.len(), 1, "{:?}", r.differences);
        assert!(named[0].ends_with("db.sqlite3"), "{named:?}");
        assert_eq!(r.exit(), Exit::Failed);
    }

    /// A tier repository that cannot give the sample back is a difference naming it, not the
    /// drill's end; with no complete version there is nothing to drill (exit 66).
    #[test]
    fn a_repository_that_cannot_restore_is_a_difference_and_nothing_to_drill_is_not_found() {
        let (dir, store, ..) = one_version();
        let scratch = camino::Utf8PathBuf::from_path_buf(dir.path().join("scratch")).unwrap();
        let nas = FakeRepository {
            name: "b2".to_owned(),
            ..FakeRepository::default()
        };
        let (deps, _) = ports(store, vec![Box::new(nas)]);
        let r = drill_of(&deps, &args(&scratch)).unwrap();
        let named: Vec<&str> = r.differences.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            named,
            ["tier b2 vaultwarden/data 2026-10"],
            "{:?}",
            r.differences
        );
        assert_eq!(r.tier.len(), 1);

        let empty = tempfile::tempdir().unwrap();
        let root = camino::Utf8PathBuf::from_path_buf(empty.path().to_owned()).unwrap();
        let store = backup_core::testing::FakeStore::new(&root, &Default::default());
        let (deps, _) = ports(store, Vec::new());
        let e = drill_of(&deps, &args(&scratch)).unwrap_err();
        assert_eq!(e.exit().code(), 66, "{e}");
    }
}
