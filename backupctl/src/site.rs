//! `backupctl drill --site`: the site disaster rehearsed. The backup disk is assumed gone:
//! everything comes from the offsite copy (the run reads `<offsite.destination>/pve-backup` as
//! its backup root, as `--from-offsite` does, and never opens the disk): every PVC's newest
//! version (a sample of its files, or all of them), every SQLite copy, the newest dump of every
//! name from the NFS trees' offsite copy into a throwaway server, pfSense and the PVE config.
//! Each layer is measured and projected to the whole data set; the total is held against the
//! seed's 4 hours, and what is missing to rebuild is named. Exit 1 when anything is missing,
//! differs, or the projection misses the 4 hours.

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};

use backup_core::{Config, Series, WeekVersion};
use backup_host::error::{Error, Result};
use backup_run::Context;

use crate::drill::{DrillArgs, DrillReport, DumpsInDrill, Projection, SiteReport};

/// Each `[dumps] folders` entry where the offsite copy holds it: `<tree>/<rel>` under the
/// destination, for the tree whose source holds it; the folders no tree holds are returned
/// apart.
fn offsite_dump_folders(cfg: &backup_core::Config) -> (Vec<String>, Vec<Utf8PathBuf>) {
    let (mut found, mut none) = (Vec::new(), Vec::new());
    let Some(o) = cfg.offsite.as_ref() else {
        return (found, cfg.dumps.folders.clone());
    };
    for f in &cfg.dumps.folders {
        match o.trees.iter().find(|t| f.starts_with(&t.source)) {
            Some(t) => {
                let rel = f.strip_prefix(&t.source).unwrap_or(Utf8Path::new(""));
                found.push(Utf8Path::new(&t.name).join(rel).into_string());
            }
            None => none.push(f.clone()),
        }
    }
    (found, none)
}

/// The offsite dump folders (`<tree>/<rel>` under the destination) as local folders: as they
/// are on a local or mounted destination; over ssh, each pulled into the view (a dump folder is
/// small: its retention keeps weeks). A folder that cannot be pulled is missing (returned
/// apart, with why).
fn local_dump_folders(
    ctx: &Context<'_>,
    nas: &dyn backup_core::OffsiteCopy,
    folders: Vec<String>,
) -> Result<(Vec<Utf8PathBuf>, Vec<String>)> {
    let on_nas = |sub: &str| nas.folder(sub).trim_end_matches('/').to_owned();
    let Some(view) = ctx.offsite_view() else {
        return Ok((
            folders
                .iter()
                .map(|f| Utf8PathBuf::from(on_nas(f)))
                .collect(),
            Vec::new(),
        ));
    };
    let (mut out, mut missing) = (Vec::new(), Vec::new());
    for (i, sub) in folders.iter().enumerate() {
        let local = view.root.join(format!(".site-dumps/{i}"));
        std::fs::create_dir_all(&local).map_err(|e| Error::io("create folder", &local, e))?;
        match nas.fetch(sub, &local) {
            Ok(()) => out.push(local),
            Err(e) => missing.push(format!(
                "dump folder {}: cannot be read offsite: {e}",
                on_nas(sub)
            )),
        }
    }
    Ok((out, missing))
}

/// The pfSense and PVE config layers, each restored into `scratch` and checked; only what the
/// config backs up (a host without pfSense misses nothing there).
fn config_layers(
    ctx: &Context<'_>,
    cfg: &Config,
    scratch: &Utf8Path,
    report: &mut DrillReport,
    layers: &mut Vec<(String, f64, String)>,
    missing: &mut Vec<String>,
) {
    let mut configs = Vec::new();
    if cfg.pfsense.is_some() {
        configs.push((
            "pfsense",
            crate::restore_pfsense(ctx, None, &scratch.join("pfsense"), false),
        ));
    }
    if !cfg.pve_config.paths.is_empty() {
        configs.push((
            "pve-config",
            crate::restore_pve_config(ctx, None, &scratch.join("pve-config"), false),
        ));
    }
    for (layer, result) in configs {
        match result {
            Ok(r) => {
                if let Some(c) = &r.check {
                    report.differences.extend(c.differences.iter().cloned());
                }
                layers.push((layer.to_owned(), r.seconds, r.what.clone()));
            }
            Err(e) => missing.push(format!("{layer}: {e}")),
        }
    }
}

/// Runs the site drill.
///
/// # Errors
/// As `drill`; no `[offsite]`.
pub fn drill_site(ctx: &Context<'_>, args: &DrillArgs) -> Result<DrillReport> {
    if !ctx.from_offsite() {
        return Err(Error::Usage(
            "--site reads the offsite copy: a local or mounted offsite.destination".to_owned(),
        ));
    }
    let cfg = ctx.cfg()?;
    let (folders, not_offsite) = offsite_dump_folders(cfg);
    let (folders, unreadable) = match cfg.offsite.as_ref() {
        Some(o) => local_dump_folders(ctx, ctx.offsite_copy(o).as_ref(), folders)?,
        None => (Vec::new(), Vec::new()),
    };
    let inner = DrillArgs {
        dumps: if folders.is_empty() {
            DumpsInDrill::No
        } else {
            DumpsInDrill::Too
        },
        dump_folders: folders,
        site: false,
        ..args.clone()
    };
    let mut report = crate::drill(ctx, &inner)?;
    let mut missing: Vec<String> = not_offsite
        .iter()
        .map(|f| {
            format!("dump folder {f}: inside no [[offsite.tree]], so no offsite copy of its dumps")
        })
        .chain(unreadable)
        .collect();
    let store = ctx.store()?;
    let versions = store.list_versions(Series::Pvc)?;
    missing.extend(stale_dumps(ctx, &report));
    let mut layers = Vec::new();
    layers.push(pvc_layer(store.as_ref(), &versions, &report));
    let scratch = tempfile::Builder::new()
        .prefix("backupctl-site-")
        .tempdir()
        .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
    let scratch = Utf8Path::from_path(scratch.path())
        .ok_or_else(|| Error::Refused("the temp folder is not UTF-8 (TMPDIR)".to_owned()))?
        .to_owned();
    // the PVCs the offsite copy lacks: from the encrypted tier, or missing
    let (tier, lost) = from_tier(ctx, cfg, missing_pvcs(ctx, cfg, &versions), &scratch);
    layers.extend(tier);
    missing.extend(lost);
    config_layers(ctx, cfg, &scratch, &mut report, &mut layers, &mut missing);
    let dumps: f64 = report.dumps.iter().map(|d| d.seconds).sum();
    if !report.dumps.is_empty() {
        layers.push((
            "dumps".to_owned(),
            dumps,
            format!(
                "the newest of {} loaded whole, one after the other",
                backup_host::human::plural(report.dumps.len() as u64, "dump name")
            ),
        ));
    }
    let total_seconds = layers.iter().map(|l| l.1).sum();
    report.site = Some(SiteReport {
        offsite_root: ctx.offsite_view().map_or_else(
            || store.root().root().to_owned(),
            |v| Utf8PathBuf::from(&v.remote),
        ),
        missing,
        layers,
        total_seconds,
    });
    Ok(report)
}

/// Every PVC version's whole restore, projected from the drill's runs: its fixed cost per
/// run, then per file or per byte, summed over the newest complete version of every PVC (they
/// are restored one after the other).
fn pvc_layer(
    store: &dyn backup_core::BackupStore,
    versions: &[WeekVersion],
    report: &DrillReport,
) -> (String, f64, String) {
    let p = Projection::from_runs(&report.runs);
    let (mut seconds, mut files, mut bytes) = (0.0, 0u64, 0u64);
    let newest = backup_core::newest_complete(versions.to_vec(), |v| v);
    for v in &newest {
        let (f, b) = crate::inventory::record_totals(store, v);
        seconds += p.seconds(f, b);
        files += f;
        bytes += b;
    }
    (
        "pvc-data".to_owned(),
        seconds,
        format!(
            "{} ({}, {}), projected from the drill's restores",
            backup_host::human::plural(newest.len() as u64, "PVC version"),
            backup_host::human::plural(files, "file"),
            backup_host::human::bytes(bytes)
        ),
    )
}

/// PVCs the cluster has (kubectl, its cache, the static map; excluded namespaces left out) or
/// the offsite copy names, that have no complete version in the offsite copy.
fn missing_pvcs(
    ctx: &Context<'_>,
    cfg: &backup_core::Config,
    versions: &[WeekVersion],
) -> Vec<(String, String)> {
    let complete: BTreeSet<(String, String)> = versions
        .iter()
        .filter(|v| v.is_complete())
        .map(|v| (v.namespace.clone(), v.pvc.clone()))
        .collect();
    let (claims, _) = backup_host::setup::claims(cfg, ctx.runner().as_ref());
    let known: BTreeSet<(String, String)> = claims
        .into_iter()
        .filter(|c| !cfg.snapshots.exclude_namespaces.contains(&c.namespace))
        .map(|c| (c.namespace, c.pvc))
        .chain(
            versions
                .iter()
                .map(|v| (v.namespace.clone(), v.pvc.clone())),
        )
        .collect();
    known.difference(&complete).cloned().collect()
}

/// Each PVC the offsite copy lacks, brought back whole from the first tier repository
/// (`restore pvc --from-tier`: restic, checked against the record it was sent with) into
/// `scratch`; what the tier cannot give back (or no tier) is missing.
fn from_tier(
    ctx: &Context<'_>,
    cfg: &backup_core::Config,
    lacking: Vec<(String, String)>,
    scratch: &Utf8Path,
) -> (Option<(String, f64, String)>, Vec<String>) {
    let tier = cfg
        .offsite
        .as_ref()
        .and_then(|o| o.repositories.first())
        .map(|r| r.name.clone());
    let (mut seconds, mut restored, mut unchecked, mut missing) = (0.0, 0u64, 0u64, Vec::new());
    for (ns, pvc) in lacking {
        let lost =
            |why: String| format!("{ns}/{pvc}: no complete version in the offsite copy{why}");
        let Some(name) = &tier else {
            missing.push(lost(String::new()));
            continue;
        };
        let args = crate::PvcRestoreArgs {
            pvc: match format!("{ns}/{pvc}").parse() {
                Ok(p) => p,
                Err(e) => {
                    missing.push(lost(format!(" ({e})")));
                    continue;
                }
            },
            week: None,
            to: Some(scratch.join("tier").join(&ns).join(&pvc)),
            force: false,
            into_volume: false,
            paths: Vec::new(),
            from_tier: Some(name.clone()),
        };
        match crate::restore_pvc(ctx, &args) {
            Ok(r) if r.check.as_ref().is_none_or(|c| c.differences.is_empty()) => {
                // no check: the record it was sent with has not reached the offsite copy yet
                unchecked += u64::from(r.check.is_none());
                seconds += r.seconds;
                restored += 1;
            }
            Ok(_) => missing.push(lost(format!(
                ", and tier `{name}` gave back a copy that does not match its record"
            ))),
            Err(e) => missing.push(lost(format!(", nor in tier `{name}`: {e}"))),
        }
    }
    let layer = (restored > 0).then(|| {
        (
            "tier".to_owned(),
            seconds,
            format!(
                "{} the offsite copy lacks, restored whole from tier `{}` ({} of them \
                 not checked: no record of it in the offsite copy)",
                backup_host::human::plural(restored, "PVC"),
                tier.unwrap_or_default(),
                unchecked
            ),
        )
    });
    (layer, missing)
}

/// A dump name whose newest is over 30 days old, and no etcd snapshot at all when there are
/// dumps (the cluster cannot be rebuilt without one).
fn stale_dumps(ctx: &Context<'_>, report: &DrillReport) -> Vec<String> {
    let mut out = Vec::new();
    let month = chrono::Duration::days(30);
    for d in &report.dumps {
        if ctx.now - d.dump.stamp > month {
            out.push(format!(
                "dump {}: the newest offsite is from {}, over 30 days old",
                d.dump.name,
                d.dump.stamp.format("%Y-%m-%d")
            ));
        }
    }
    let etcd = report
        .dumps
        .iter()
        .any(|d| d.kind == Some(backup_dumps::DumpKind::Etcd));
    if !report.dumps.is_empty() && !etcd {
        out.push("no etcd snapshot in the offsite copy of the dump folders".to_owned());
    }
    out
}
