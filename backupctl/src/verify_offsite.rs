//! `backupctl verify --offsite`: the offsite copy (the only one that survives a fire) read back.
//!
//! A local or mounted destination is read where it lies: every version against the records that
//! travelled with it, as `verify` reads the backup disk (the run wrapper made the offsite copy
//! the backup root). Over ssh, nothing is copied back: per version, `rsync -n -c` has the NAS
//! checksum its own bytes against the version on the backup disk (which `verify` checks against
//! its record) and every file it lacks, holds differently or holds besides is named.

use std::collections::BTreeSet;

use backup_core::{EntryKind, Series};
use backup_host::error::{Error, Result};
use backup_run::Context;

use crate::check::{Content, Difference};
use crate::verify::{chosen_versions, Checked, VerifyArgs, VerifyReport};

/// Runs `verify --offsite`.
///
/// # Errors
/// No `[offsite]`; as `verify`.
pub fn verify_offsite(ctx: &Context<'_>, args: &VerifyArgs) -> Result<VerifyReport> {
    if ctx.from_offsite() {
        return crate::verify(ctx, args);
    }
    let cfg = ctx.cfg()?;
    let Some(o) = cfg.offsite.as_ref().filter(|o| o.is_remote()) else {
        return Err(Error::Usage(format!(
            "--offsite: {} has no [offsite]: there is no offsite copy to read",
            cfg.file
        )));
    };
    if let Some(p) = args.sample.filter(|p| !(*p > 0.0 && *p <= 100.0)) {
        return Err(Error::Usage(format!(
            "--sample {p}: expected a percent above 0, at most 100"
        )));
    }
    let started = std::time::Instant::now();
    let store = ctx.store()?;
    let root = store.root().clone();
    let versions = store.list_versions(Series::Pvc)?;
    let want = args.pvc.as_ref().map(|p| p.resolve(ctx)).transpose()?;
    let chosen = chosen_versions(ctx.now, want.as_ref(), &versions, args)?;
    let ssh = backup_rsync::SshOptions::for_offsite(o);
    let runner = ctx.runner();
    let temp = tempfile::Builder::new()
        .prefix("backupctl-verify-offsite-")
        .tempdir()
        .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
    let mut checked = Vec::new();
    for (i, v) in chosen.iter().enumerate() {
        let label = format!("{}/{} {}", v.namespace, v.pvc, v.week);
        backup_host::progress::message(&label);
        let local = root.pvc_copy(v.week, &v.namespace, &v.pvc);
        let rel = local.strip_prefix(root.root()).unwrap_or(&local);
        let dest = backup_rsync::dest_folder(&o.destination, &format!("pve-backup/{rel}"));
        let list = match args.sample {
            Some(p) => Some(sample_list(
                store.as_ref(),
                v,
                ctx,
                p,
                &temp.path().join(i.to_string()),
            )?),
            None => None,
        };
        let inv = backup_rsync::compare_copy(
            ctx.rsync_program(),
            ssh.as_ref(),
            &local,
            &dest,
            list.as_deref(),
        )
        .map_err(|e| Error::Core(e.into()))?;
        let out = runner.run(&inv)?;
        let differences = differences_of(&out, rel.as_str(), &dest);
        checked.push(Checked {
            what: format!("offsite pvc {label}"),
            differences,
            files_read: 0,
            bytes_read: 0,
        });
    }
    Ok(VerifyReport {
        checked,
        seconds: started.elapsed().as_secs_f64(),
        damaged_versions: 0,
        now_unix: ctx.now.timestamp(),
        offsite: true,
    })
}

/// What rsync's itemized dry run `out` says differs between a version (`rel`, under the backup
/// root) and its offsite copy `dest`; a comparison that failed is a difference too.
fn differences_of(out: &backup_core::Output, rel: &str, dest: &str) -> Vec<Difference> {
    let mut differences: Vec<Difference> =
        backup_rsync::compared(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .map(|(path, what)| Difference {
                path: format!("{rel}/{path}"),
                what,
            })
            .collect();
    if !out.success() {
        differences.push(Difference {
            path: dest.to_owned(),
            what: format!(
                "the offsite copy could not be compared (rsync exit {}): {}",
                out.status.map_or(-1, |c| c),
                backup_core::stderr_tail(&out.stderr, 3)
            ),
        });
    }
    differences
}

/// The sampled files of `v` (from its record, chosen from `--now`) as a NUL-separated list.
fn sample_list(
    store: &dyn backup_core::BackupStore,
    v: &backup_core::WeekVersion,
    ctx: &Context<'_>,
    percent: f64,
    path: &std::path::Path,
) -> Result<camino::Utf8PathBuf> {
    let content = Content::Sample {
        seed: ctx.now.timestamp() as u64,
        percent,
    };
    let rec = crate::inventory::record(store, v).ok_or_else(|| {
        Error::NotFound(format!(
            "{}/{} {}: no usable record to sample from",
            v.namespace, v.pvc, v.week
        ))
    })?;
    let mut out = Vec::new();
    let chosen: BTreeSet<&[u8]> = rec
        .iter()
        .filter(|e| e.kind == EntryKind::File && content.chosen(&e.path))
        .map(|e| e.path.as_slice())
        .collect();
    for p in chosen {
        backup_core::encode_files_from(p, &mut out);
    }
    let path = camino::Utf8PathBuf::from_path_buf(path.to_owned())
        .map_err(|_| Error::Refused("the temp folder is not UTF-8 (TMPDIR)".to_owned()))?;
    std::fs::write(&path, out).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}
