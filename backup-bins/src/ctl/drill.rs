//! `backupctl drill`: restore a random sample of files (seeded from `--now`, so a drill can be
//! replayed) and every SQLite copy of the newest complete versions into a scratch folder, check
//! them against the records, measure the restore rate, and project each layer's RTO against the
//! seed's table.

use std::collections::BTreeMap;

use backup_core::metric_names::{JobMetrics, DRILL_RATE};
use backup_core::{EntryKind, FileEntry, MetricGroup, Series, WeekVersion};
use camino::Utf8PathBuf;
use serde::Serialize;

use super::check::{compare, read_and_compare, show, Content, Difference};
use super::inventory::{files_under, record};
use super::restore::rsync_tree;
use crate::daily::incremental::walk_entries;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::run::{Context, Outcome};

/// `drill` flags.
#[derive(Debug, Clone)]
pub struct DrillArgs {
    /// Percent of each version's files restored.
    pub sample: f64,
    /// Where to restore (default: a temp folder, removed afterwards).
    pub scratch: Option<Utf8PathBuf>,
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
    /// Projected RTO per layer.
    pub rto: Vec<LayerRto>,
    #[serde(skip)]
    now_unix: i64,
}

/// The newest complete version of every PVC.
fn newest_versions(all: Vec<WeekVersion>) -> Vec<WeekVersion> {
    let mut by: BTreeMap<(String, String), WeekVersion> = BTreeMap::new();
    for v in all.into_iter().filter(WeekVersion::is_complete) {
        let k = (v.namespace.clone(), v.pvc.clone());
        if by.get(&k).is_none_or(|o| o.week < v.week) {
            by.insert(k, v);
        }
    }
    by.into_values().collect()
}

/// Runs the drill.
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
    let store = ctx.store()?;
    let root = store.root().clone();
    let versions = newest_versions(store.list_versions(Series::Pvc)?);
    if versions.is_empty() {
        return Err(Error::NotFound(
            "no complete version to drill: run daily-backup first".to_owned(),
        ));
    }
    let temp;
    let scratch = match &args.scratch {
        Some(s) => {
            std::fs::create_dir_all(s).map_err(|e| Error::io("create folder", s, e))?;
            s.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("backupctl-drill-")
                .tempdir()
                .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
            Utf8PathBuf::from_path_buf(temp.path().to_owned())
                .map_err(|p| Error::Usage(format!("temp folder {} is not UTF-8", p.display())))?
        }
    };
    let seed = ctx.now.timestamp() as u64;
    let content = Content::Sample {
        seed,
        percent: args.sample,
    };
    let runner = ctx.steady_runner();
    let started = std::time::Instant::now();
    let mut differences = Vec::new();
    let mut drilled = Vec::new();
    let mut bytes = 0u64;
    let mut largest_pvc = 0u64;
    for v in &versions {
        let label = format!("{}/{} {}", v.namespace, v.pvc, v.week);
        let Some(rec) = record(store.as_ref(), v) else {
            differences.push(Difference {
                path: label.clone(),
                what: "no usable record: this version cannot be drilled".to_owned(),
            });
            continue;
        };
        largest_pvc = largest_pvc.max(rec.iter().map(|e| e.size).sum());
        let mut chosen: Vec<&FileEntry> = rec
            .iter()
            .filter(|e| e.kind == EntryKind::File && content.chosen(&e.path))
            .collect();
        if chosen.is_empty() {
            // a small version: at least one file
            chosen.extend(rec.iter().find(|e| e.kind == EntryKind::File));
        }
        if chosen.is_empty() {
            drilled.push((label, 0));
            continue;
        }
        let to = scratch.join(&v.namespace).join(&v.pvc);
        std::fs::create_dir_all(&to).map_err(|e| Error::io("create folder", &to, e))?;
        let list = scratch.join(format!(".{}.{}.files", v.namespace, v.pvc));
        let mut nul = Vec::new();
        for e in &chosen {
            nul.extend_from_slice(&e.path);
            nul.push(0);
        }
        std::fs::write(&list, &nul).map_err(|e| Error::io("write", &list, e))?;
        let from = root.pvc_copy(v.week, &v.namespace, &v.pvc);
        rsync_tree(
            runner.as_ref(),
            &from,
            &to,
            false,
            &["--from0", &format!("--files-from={list}")],
        )?;
        let got: BTreeMap<Vec<u8>, FileEntry> = walk_entries(to.as_std_path())?
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect();
        for want in &chosen {
            match got.get(&want.path) {
                None => differences.push(Difference {
                    path: format!("{label}: {}", show(&want.path)),
                    what: "not restored".to_owned(),
                }),
                Some(g) => {
                    differences.extend(compare(want, g).into_iter().map(|what| Difference {
                        path: format!("{label}: {}", show(&want.path)),
                        what,
                    }))
                }
            }
        }
        let sized: Vec<(&FileEntry, u64)> = chosen.iter().map(|e| (*e, e.size)).collect();
        let (_, read, bad) = read_and_compare(to.as_std_path(), &sized);
        bytes += read;
        differences.extend(bad.into_iter().map(|(p, what)| Difference {
            path: format!("{label}: {}", show(&p)),
            what,
        }));
        drilled.push((label, chosen.len() as u64));
        let _ = std::fs::remove_file(&list);
    }
    let file_seconds = started.elapsed().as_secs_f64();
    let file_rate = bytes as f64 / file_seconds.max(0.001);
    // every SQLite copy of those versions
    let sq_started = std::time::Instant::now();
    let mut sq_bytes = 0u64;
    let mut sq_largest = 0u64;
    let mut sqlite_copies = 0;
    for v in &versions {
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
    let seconds = started.elapsed().as_secs_f64();
    let total = bytes + sq_bytes;
    let rto = vec![
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
            projected_seconds: (bytes > 0).then(|| largest_pvc as f64 / file_rate),
            basis: format!(
                "the largest PVC version ({}) at the drilled rate ({}/s)",
                crate::human::bytes(largest_pvc),
                crate::human::bytes(file_rate as u64)
            ),
        },
        LayerRto {
            layer: "sqlite",
            target_minutes: 5,
            projected_seconds: (sqlite_copies > 0)
                .then(|| sq_largest as f64 / (sq_bytes as f64 / sq_seconds.max(0.001))),
            basis: format!(
                "the largest SQLite copy ({}) at the drilled rate",
                crate::human::bytes(sq_largest)
            ),
        },
    ];
    Ok(DrillReport {
        seed,
        versions: drilled,
        sqlite_copies,
        differences,
        bytes: total,
        seconds,
        rate: total as f64 / seconds.max(0.001),
        rto,
        now_unix: ctx.now.timestamp(),
    })
}

impl Outcome for DrillReport {
    fn exit(&self) -> Exit {
        if self.differences.is_empty() {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        for d in &self.differences {
            out.push_str(&format!("FAILED {}: {}\n", d.path, d.what));
        }
        let files: u64 = self.versions.iter().map(|(_, n)| n).sum();
        out.push_str(&format!(
            "drill (seed {}): {} files from {} versions and {} SQLite copies restored and \
             checked, {} in {:.1} s ({}/s), {} differences\n",
            self.seed,
            files,
            self.versions.len(),
            self.sqlite_copies,
            crate::human::bytes(self.bytes),
            self.seconds,
            crate::human::bytes(self.rate as u64),
            self.differences.len()
        ));
        for r in &self.rto {
            let verdict = match r.projected_seconds {
                Some(s) if s <= f64::from(r.target_minutes) * 60.0 => {
                    format!("{s:.0} s, within {} min", r.target_minutes)
                }
                Some(s) => format!("{s:.0} s, OVER the {} min target", r.target_minutes),
                None => format!("not measured (target {} min)", r.target_minutes),
            };
            out.push_str(&format!("  RTO {:<13} {verdict}: {}\n", r.layer, r.basis));
        }
        out.trim_end().to_owned()
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        let job = JobMetrics::drill();
        let mut m = job.outcome(self.differences.is_empty(), self.now_unix);
        m.push(DRILL_RATE.gauge(self.rate));
        vec![MetricGroup::new(&job.job, m)]
    }
}
