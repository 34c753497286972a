//! The PVE config stage: each of `pve-config.paths` into `pve-config/<week>/<path>/`, hardlinked
//! against the newest complete earlier week, so a VM config deleted by mistake is still in last
//! week's version. The week is marked complete when every path was copied.

use backup_core::{DailyPlan, Refusal, Series, SourceKind, SyncRequest, PVE_CONFIG_SERIES};
use camino::{Utf8Path, Utf8PathBuf};

use crate::outcome::{ItemResult, Status};
use backup_host::error::{Error, Result};

use super::DailyDeps;

/// Copies every configured path; one result per path.
pub(super) fn copy_pve_config(deps: &DailyDeps<'_>, plan: &DailyPlan) -> Vec<ItemResult> {
    if plan.pve_config.is_empty() {
        return Vec::new();
    }
    let root = deps.store.root();
    let week_dir = root.pve_config_week(plan.week);
    let started = deps.store.mark_incomplete(
        Series::PveConfig,
        plan.week,
        PVE_CONFIG_SERIES,
        PVE_CONFIG_SERIES,
    );
    if let Err(e) = started {
        return vec![ItemResult::from_result(week_dir.to_string(), Err(e))];
    }
    let link_week = plan.pve_config_link.map(|w| root.pve_config_week(w));
    let mut items: Vec<ItemResult> = plan
        .pve_config
        .iter()
        .map(|(src, dest)| {
            let link = link_week
                .as_ref()
                .map(|w| w.join(src.as_str().trim_start_matches('/')))
                .filter(|l| l.is_dir());
            // the copy keeps the source's path under the week: naming the week says where
            let week = week_dir.strip_prefix(root.root()).unwrap_or(&week_dir);
            ItemResult::from_result(
                format!("{src} -> {week}/"),
                copy_path(deps, src, dest, link),
            )
        })
        .collect();
    if items.iter().all(|i| i.status == Status::Ok) {
        let marked = deps.store.mark_complete(
            Series::PveConfig,
            plan.week,
            PVE_CONFIG_SERIES,
            PVE_CONFIG_SERIES,
            plan.now,
        );
        if let Err(e) = marked {
            items.push(ItemResult::from_result(week_dir.to_string(), Err(e)));
        }
    }
    items
}

fn copy_path(
    deps: &DailyDeps<'_>,
    src: &Utf8Path,
    dest: &Utf8Path,
    link_dest: Option<Utf8PathBuf>,
) -> Result<()> {
    if !src.is_dir() {
        return Err(Error::Core(
            Refusal::NotAFolder {
                path: src.to_owned(),
            }
            .into(),
        ));
    }
    deps.stages.prepare_copy(src, dest)?;
    deps.sync.sync(&SyncRequest {
        source: src.to_owned(),
        dest: dest.to_owned(),
        link_dest,
        source_kind: SourceKind::Live,
        files_from: None,
        checksum: false,
    })?;
    Ok(())
}
