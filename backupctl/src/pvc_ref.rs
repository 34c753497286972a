//! One way to name a PVC on every command line: `NAMESPACE/PVC` as the output prints it, or the
//! volume (LV) that holds it, resolved through the same PV map the backups use (kubectl, its
//! cache, the static map).

use std::str::FromStr;

use backup_core::UNRESOLVED_NAMESPACE;

use backup_host::error::{Error, Result};
use backup_run::Context;

/// A PVC as the operator named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvcRef {
    /// `NAMESPACE/PVC`.
    Named {
        /// The namespace.
        namespace: String,
        /// The claim.
        pvc: String,
    },
    /// An LV (or, on the dir backend, a volume folder's name): `vm-100-pvc-0a1b`.
    Volume(String),
}

impl FromStr for PvcRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "expected NAMESPACE/PVC or a volume (LV) name, got `{s}`: {why}"
            ))
        };
        if s.is_empty() || s.starts_with('-') || s.chars().any(char::is_control) {
            return bad("empty, a leading `-` or a control character");
        }
        match s.split_once('/') {
            None => Ok(PvcRef::Volume(s.to_owned())),
            Some((ns, pvc)) if !ns.is_empty() && !pvc.is_empty() && !pvc.contains('/') => {
                Ok(PvcRef::Named {
                    namespace: ns.to_owned(),
                    pvc: pvc.to_owned(),
                })
            }
            Some(_) => bad("one `/` between two names"),
        }
    }
}

impl std::fmt::Display for PvcRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PvcRef::Named { namespace, pvc } => write!(f, "{namespace}/{pvc}"),
            PvcRef::Volume(lv) => write!(f, "{lv}"),
        }
    }
}

impl PvcRef {
    /// The `--namespace NS --pvc PVC` form of release 0.1 (deprecated: one release more):
    /// `--pvc` alone is a [`PvcRef`]; with `--namespace` it must be a bare claim name.
    ///
    /// # Errors
    /// [`Error::Usage`] for `--namespace` with a `--pvc` that is not a bare name.
    pub fn with_namespace(pvc: &str, namespace: Option<&str>) -> Result<Self> {
        match namespace {
            None => pvc.parse().map_err(Error::Usage),
            Some(ns) if !pvc.contains('/') => {
                eprintln!(
                    "backupctl: warning: --namespace is deprecated and goes in the next release: \
                     write --pvc {ns}/{pvc}"
                );
                format!("{ns}/{pvc}").parse().map_err(Error::Usage)
            }
            Some(ns) => Err(Error::Usage(format!(
                "--namespace {ns} with --pvc {pvc}: give the PVC once, as --pvc NAMESPACE/PVC"
            ))),
        }
    }

    /// `(namespace, pvc)`: a volume through the PV map (kubectl, its cache, the static map); a
    /// volume no claim names is backed up under `_unresolved/<volume>`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the map knows no claim for the volume and the backup root holds
    /// no unresolved copy of it.
    pub fn resolve(&self, ctx: &Context<'_>) -> Result<(String, String)> {
        self.resolve_with(ctx, true)
    }

    /// [`resolve`](Self::resolve) for what writes over live data (`restore pvc
    /// --into-volume`): a claim name alone is refused, since the backup disk alone decides
    /// that it is unique (a claim whose namespace is never backed up is not seen).
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve); [`Error::Usage`] for a claim name alone.
    pub fn resolve_exact(&self, ctx: &Context<'_>) -> Result<(String, String)> {
        self.resolve_with(ctx, false)
    }

    fn resolve_with(&self, ctx: &Context<'_>, claim_names: bool) -> Result<(String, String)> {
        let lv = match self {
            PvcRef::Named { namespace, pvc } => return Ok((namespace.clone(), pvc.clone())),
            PvcRef::Volume(lv) => lv,
        };
        let cfg = ctx.cfg()?;
        let (claims, warnings) = backup_host::setup::claims(cfg, ctx.runner().as_ref());
        if let Some(c) = claims.iter().find(|c| c.is_for_lv(lv)) {
            return Ok((c.namespace.clone(), c.pvc.clone()));
        }
        // each week folder on its own: one that cannot be read does not hide the others
        let unresolved = ctx
            .store()?
            .root()
            .root()
            .join("pvc-data")
            .read_dir_utf8()
            .into_iter()
            .flatten()
            .flatten()
            .any(|w| w.path().join(UNRESOLVED_NAMESPACE).join(lv).is_dir());
        if unresolved {
            return Ok((UNRESOLVED_NAMESPACE.to_owned(), lv.clone()));
        }
        // a claim name alone, when exactly one PVC on the backup disk has it
        let listed = ctx.store()?.list_versions(backup_core::Series::Pvc)?;
        if let Some((ns, pvc)) = only_claim_named(&listed, lv)? {
            if !claim_names {
                return Err(Error::Usage(format!(
                    "`{lv}` is a claim name: this writes over a live volume, so name the PVC \
                     whole: --pvc {ns}/{pvc}"
                )));
            }
            return Ok((ns, pvc));
        }
        Err(Error::NotFound(format!(
            "no PVC is known for the volume `{lv}` (the PV map{}): name it NAMESPACE/PVC as \
             `backupctl list` prints it",
            if warnings.is_empty() {
                String::new()
            } else {
                format!("; {}", warnings.join("; "))
            }
        )))
    }
}

/// The one PVC among `versions` whose claim is `name` (`None`: none is).
///
/// # Errors
/// [`Error::Usage`] when several PVCs have that claim name, each named.
fn only_claim_named(
    versions: &[backup_core::WeekVersion],
    name: &str,
) -> Result<Option<(String, String)>> {
    let mut named: Vec<(String, String)> = versions
        .iter()
        .filter(|v| v.pvc == name)
        .map(|v| (v.namespace.clone(), v.pvc.clone()))
        .collect();
    named.sort();
    named.dedup();
    match &named[..] {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        several => Err(Error::Usage(format!(
            "`{name}` is the claim of {} PVCs ({}): give --pvc NAMESPACE/PVC",
            several.len(),
            several
                .iter()
                .map(|(ns, p)| format!("{ns}/{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// When no version of `namespace/pvc` exists at all (any week, complete or not): the error that
/// says the PVC is unknown here, with the names closest to it (as clap suggests a flag);
/// `None` when the PVC has versions (the caller's own message fits then).
pub(crate) fn unknown_pvc(
    versions: &[backup_core::WeekVersion],
    (namespace, pvc): (&str, &str),
) -> Option<Error> {
    let known: std::collections::BTreeSet<String> = versions
        .iter()
        .map(|v| format!("{}/{}", v.namespace, v.pvc))
        .collect();
    let wanted = format!("{namespace}/{pvc}");
    if known.contains(&wanted) {
        return None;
    }
    let mut close: Vec<(usize, &String)> = known
        .iter()
        .map(|k| (distance(k, &wanted), k))
        .filter(|(d, k)| {
            // near in spelling, or one name inside the other (long enough to mean something)
            let claim = k.rsplit('/').next().unwrap_or(k);
            *d <= (wanted.len() / 3).max(2)
                || (pvc.len() >= 4 && claim.contains(pvc))
                || (claim.len() >= 4 && pvc.contains(claim))
        })
        .collect();
    close.sort();
    let hint = match &close[..] {
        [] => "`backupctl list` shows the PVCs there are".to_owned(),
        c => format!(
            "did you mean {}? (`backupctl list` shows every PVC)",
            c.iter()
                .take(3)
                .map(|(_, k)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some(Error::NotFound(format!(
        "no PVC `{wanted}` has a version on the backup disk: {hint}"
    )))
}

/// The edit distance of two names (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown PVC is said to be unknown, with the closest names; a known one is not.
    #[test]
    fn an_unknown_pvc_is_named_with_the_closest_ones() {
        let v = |ns: &str, pvc: &str| backup_core::WeekVersion {
            namespace: ns.into(),
            pvc: pvc.into(),
            week: "2026-10".parse().unwrap(),
            completed_at: None,
        };
        let versions = [
            v("vaultwarden", "vaultwarden-data"),
            v("nextcloud", "nextcloud-data"),
            v("immich", "library"),
        ];
        assert!(unknown_pvc(&versions, ("vaultwarden", "vaultwarden-data")).is_none());
        let e = unknown_pvc(&versions, ("vaultwarden", "nope"))
            .unwrap()
            .to_string();
        assert!(e.contains("no PVC `vaultwarden/nope`"), "{e}");
        let e = unknown_pvc(&versions, ("vaultwarden", "vaultwarden-dat"))
            .unwrap()
            .to_string();
        assert!(
            e.contains("did you mean `vaultwarden/vaultwarden-data`?"),
            "{e}"
        );
        let e = unknown_pvc(&versions, ("zzz", "qqq")).unwrap().to_string();
        assert!(
            e.contains("`backupctl list` shows the PVCs there are"),
            "{e}"
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn a_claim_name_alone_is_taken_when_only_one_pvc_has_it() {
        let v = |ns: &str, pvc: &str, week: &str| backup_core::WeekVersion {
            namespace: ns.into(),
            pvc: pvc.into(),
            week: week.parse().unwrap(),
            completed_at: None,
        };
        let versions = [
            v("vaultwarden", "data", "2026-09"),
            v("vaultwarden", "data", "2026-10"),
            v("gitea", "data", "2026-10"),
            v("gitea", "repos", "2026-10"),
        ];
        assert_eq!(
            only_claim_named(&versions, "repos").unwrap(),
            Some(("gitea".into(), "repos".into()))
        );
        assert_eq!(only_claim_named(&versions, "nope").unwrap(), None);
        let e = only_claim_named(&versions, "data").unwrap_err().to_string();
        assert!(
            e.contains("claim of 2 PVCs (gitea/data, vaultwarden/data): give --pvc NAMESPACE/PVC"),
            "{e}"
        );
    }

    #[test]
    fn names_parse_one_way() {
        assert_eq!(
            "vaultwarden/data".parse::<PvcRef>(),
            Ok(PvcRef::Named {
                namespace: "vaultwarden".into(),
                pvc: "data".into()
            })
        );
        assert_eq!(
            "vm-100-pvc-0a1b".parse::<PvcRef>(),
            Ok(PvcRef::Volume("vm-100-pvc-0a1b".into()))
        );
        for bad in ["", "a/b/c", "/b", "a/", "-x", "a\nb"] {
            assert!(bad.parse::<PvcRef>().is_err(), "{bad:?}");
        }
    }
}
