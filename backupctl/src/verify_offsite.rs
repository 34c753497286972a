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
    let store = ctx.store()?;
    let nas = ctx.offsite_copy(o);
    let deps = OffsiteVerifyDeps {
        now: ctx.now,
        store: store.as_ref(),
        nas: nas.as_ref(),
        want: args.pvc.as_ref().map(|p| p.resolve(ctx)).transpose()?,
    };
    verify_offsite_of(&deps, args)
}

/// The ports of `verify --offsite` over ssh: the NAS, the backup disk it is compared with, the
/// run's time (the sample's seed).
pub(crate) struct OffsiteVerifyDeps<'a> {
    /// The run's time.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The backup disk.
    pub store: &'a dyn backup_core::BackupStore,
    /// The NAS: it compares its own copy (nothing is written on either side).
    pub nas: &'a dyn backup_core::OffsiteCopy,
    /// `--pvc` resolved to `NAMESPACE/PVC`.
    pub want: Option<(String, String)>,
}

/// [`verify_offsite`] over ssh from `deps`.
///
/// # Errors
/// Nothing matches `--week`/`--pvc`; the backup root cannot be listed; a version sampled has
/// no record.
pub(crate) fn verify_offsite_of(
    deps: &OffsiteVerifyDeps<'_>,
    args: &VerifyArgs,
) -> Result<VerifyReport> {
    let (store, now) = (deps.store, deps.now);
    let started = std::time::Instant::now();
    let root = store.root().clone();
    let versions = store.list_versions(Series::Pvc)?;
    let chosen = chosen_versions(now, deps.want.as_ref(), &versions, args)?;
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
        let list = match args.sample {
            Some(p) => Some(sample_list(
                store,
                v,
                now,
                p,
                &temp.path().join(i.to_string()),
            )?),
            None => None,
        };
        let compared = deps.nas.compare(&local, rel.as_str(), list.as_deref())?;
        let dest = deps.nas.folder(&format!("pve-backup/{rel}"));
        let differences = differences_of(compared, rel.as_str(), &dest);
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
        now_unix: now.timestamp(),
        offsite: true,
    })
}

/// What the NAS found for a version (`rel`, under the backup root) and its offsite copy `dest`,
/// as differences; a comparison that failed is one too.
fn differences_of(compared: backup_core::Compared, rel: &str, dest: &str) -> Vec<Difference> {
    let mut differences: Vec<Difference> = compared
        .differences
        .into_iter()
        .map(|(path, what)| Difference {
            path: format!("{rel}/{path}"),
            what,
        })
        .collect();
    if let Some(why) = compared.failed {
        differences.push(Difference {
            path: dest.to_owned(),
            what: why,
        });
    }
    differences
}

/// The sampled files of `v` (from its record, chosen from `--now`) as a NUL-separated list.
fn sample_list(
    store: &dyn backup_core::BackupStore,
    v: &backup_core::WeekVersion,
    now: chrono::DateTime<chrono::Utc>,
    percent: f64,
    path: &std::path::Path,
) -> Result<camino::Utf8PathBuf> {
    let content = Content::Sample {
        seed: now.timestamp() as u64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::one_version;
    use backup_core::testing::{RecordingRunner, Transcript};
    use backup_core::Output;
    use chrono::TimeZone;

    fn offsite() -> backup_core::Config {
        backup_core::Config::from_toml(
            "/etc/hb/config.toml".into(),
            "backup-root = \"/b\"\n[offsite]\ndestination = \"backup@nas:/volume1/homelab\"\n",
        )
        .unwrap()
    }

    fn args(sample: Option<f64>) -> VerifyArgs {
        VerifyArgs {
            week: None,
            pvc: None,
            sample,
            since_days: None,
            tier: false,
        }
    }

    /// Each version is compared by the NAS itself (`rsync -n -c`, read only) against the
    /// version on the backup disk; what it lacks, holds differently or holds besides is named
    /// under the version's path, and a comparison that fails is a difference too.
    #[test]
    fn the_nas_compares_its_own_bytes_and_every_difference_is_named() {
        let (_dir, store, week, _) = one_version();
        let cfg = offsite();
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);
        runner.answer(
            &["rsync"],
            Output::ok(">fc.T...... attachments/a.pdf\n*deleting   stray.tmp\n"),
        );
        let nas = backup_rsync::RsyncOffsite::new(
            Box::new(&runner),
            "rsync",
            cfg.offsite.as_ref().unwrap(),
            false,
        );
        let deps = OffsiteVerifyDeps {
            now: chrono::Utc.with_ymd_and_hms(2026, 3, 9, 6, 0, 0).unwrap(),
            store: &store,
            nas: &nas,
            want: None,
        };
        let r = verify_offsite_of(&deps, &args(None)).unwrap();
        let rel = format!("pvc-data/{week}/vaultwarden/data");
        let found: Vec<(String, String)> = r.checked[0]
            .differences
            .iter()
            .map(|d| (d.path.clone(), d.what.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    format!("{rel}/attachments/a.pdf"),
                    "content differs in the offsite copy (checksum)".to_owned()
                ),
                (
                    format!("{rel}/stray.tmp"),
                    "only in the offsite copy, not in the version on the backup disk".to_owned()
                ),
            ]
        );
        let line = &t.lines()[0];
        assert!(
            line.starts_with("$ rsync -e 'ssh -o BatchMode=yes"),
            "{line}"
        );
        assert!(line.contains(" -n -rlc "), "{line}");
        assert!(
            line.ends_with(&format!("backup@nas:/volume1/homelab/pve-backup/{rel}/")),
            "{line}"
        );

        runner.answer(
            &["rsync"],
            Output::failed(255, "ssh: connect to host nas: timed out"),
        );
        let r = verify_offsite_of(&deps, &args(Some(50.0))).unwrap();
        let d = &r.checked[0].differences;
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].what.contains("could not be compared (rsync exit 255)"),
            "{d:?}"
        );
        assert!(t.lines()[1].contains("--files-from="), "{:?}", t.lines());
    }
}
