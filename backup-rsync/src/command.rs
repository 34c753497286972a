//! rsync command lines as data, built by named constructors.

use backup_core::Invocation;
use camino::Utf8Path;

use crate::argv::{absolute, contents_of, Rsync, EXACT_TIMES, HOLES, KEEP, NUL_LIST, STATS};
use crate::error::Error;

/// The weekly copy of one snapshot: `source/` mirrored into `dest/`, unchanged files hardlinked
/// against `link_dest`.
///
/// - [`KEEP`], [`EXACT_TIMES`], [`HOLES`], [`STATS`] (each with its reason in `argv`);
/// - `--delete`: the week folder mirrors the snapshot; files deleted in the PVC go;
/// - never `--inplace`: it would write through the hardlinks into every older week;
/// - `--checksum` (when asked): a link-dest file is linked, and a destination file kept, only
///   when its content is the same; for a link-dest whose record cannot vouch for it.
///
/// # Errors
/// [`Error::RelativePath`] for any path that is not absolute.
pub fn weekly_copy(
    program: &str,
    source: &Utf8Path,
    dest: &Utf8Path,
    link_dest: Option<&Utf8Path>,
    checksum: bool,
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    let dest = absolute("destination", dest)?;
    let mut rsync = Rsync::new(program, None)
        .args(KEEP)
        .arg("--delete")
        .args([EXACT_TIMES, HOLES, STATS])
        .arg_if(checksum, "--checksum");
    if let Some(link) = link_dest {
        rsync = rsync.arg(format!("--link-dest={}", absolute("link-dest", link)?));
    }
    Ok(rsync.paths(source, contents_of(dest)))
}

/// A restore of a version (or, with `files_from`, of the listed paths of it) from `source/` into
/// `dest/`: the flags of [`weekly_copy`] for what a restore must bring back exactly (owners,
/// modes, ACLs, xattrs, hardlinks, holes, times to the nanosecond: without
/// `--modify-window=-1` a folder whose recorded time falls in the second of the restore keeps
/// the restore's time), `--delete` when the target is to become the version, `--exclude` patterns, and for
/// `files_from` (NUL-separated, relative to `source`) `--from0 --files-from`, nothing deleted.
///
/// # Errors
/// [`Error::RelativePath`] for any path that is not absolute.
pub fn restore_copy(
    program: &str,
    source: &Utf8Path,
    dest: &Utf8Path,
    delete: bool,
    files_from: Option<&Utf8Path>,
    exclude: &[&str],
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    restore_copy_from(program, None, source, dest, delete, files_from, exclude)
}

/// [`restore_copy`] from a source rsync names as it is: a local folder, or `host:/path` of an
/// offsite copy read over ssh (`ssh`: the config's key and pinned host keys).
///
/// # Errors
/// [`Error::RelativePath`] for a relative destination or list.
pub fn restore_copy_from(
    program: &str,
    ssh: Option<&crate::ssh::SshOptions>,
    source: &str,
    dest: &Utf8Path,
    delete: bool,
    files_from: Option<&Utf8Path>,
    exclude: &[&str],
) -> Result<Invocation, Error> {
    let dest = absolute("destination", dest)?;
    let mut rsync = Rsync::new(program, ssh)
        .args(KEEP)
        .args([HOLES, EXACT_TIMES])
        .arg_if(delete, "--delete");
    for pattern in exclude {
        rsync = rsync.arg(format!("--exclude={pattern}"));
    }
    if let Some(list) = files_from {
        rsync = rsync.arg(NUL_LIST).files_from("file list", list)?;
    }
    Ok(rsync.paths(source, contents_of(dest)))
}

/// A copy of only the listed paths of `source/` into `dest/` (the paths that changed since the
/// version `dest` holds or links): `files_from` lists them NUL-separated, relative to `source`.
///
/// The flags of [`weekly_copy`], minus `--delete` (nothing unlisted is looked at), plus
/// `--from0 --files-from`. No `-r`: a listed folder brings its own attributes, its entries are
/// listed one by one. Nothing is deleted: every listed path must exist in `source` (a path gone
/// from the snapshot is removed from the staging tree by the caller, never listed: rsync's
/// `--delete-missing-args` sends mode-0 entries that Debian 12's rsync 3.2.7-1+deb12u5 and
/// later reject below the top folder).
///
/// # Errors
/// [`Error::RelativePath`] for any path that is not absolute.
pub fn changed_copy(
    program: &str,
    source: &Utf8Path,
    dest: &Utf8Path,
    files_from: &Utf8Path,
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    let dest = absolute("destination", dest)?;
    Ok(Rsync::new(program, None)
        .args(KEEP)
        .args([EXACT_TIMES, HOLES, NUL_LIST, STATS])
        .files_from("files-from list", files_from)?
        .paths(source, contents_of(dest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_copy_argv() {
        let inv = restore_copy(
            "rsync",
            Utf8Path::new("/b/pvc-data/2026-02/ns/-rf"),
            Utf8Path::new("/root/r/"),
            true,
            Some(Utf8Path::new("/tmp/list")),
            &["/.complete"],
        )
        .unwrap();
        assert_eq!(
            inv.display(),
            "rsync -aHAX --numeric-ids --sparse --modify-window=-1 --delete --exclude=/.complete --from0 --files-from=/tmp/list -- /b/pvc-data/2026-02/ns/-rf/ /root/r/"
        );
        assert!(restore_copy(
            "rsync",
            Utf8Path::new("r"),
            Utf8Path::new("/t"),
            false,
            None,
            &[]
        )
        .is_err());
    }

    #[test]
    fn weekly_copy_argv() {
        let inv = weekly_copy(
            "rsync",
            Utf8Path::new("/run/mnt/vm-1"),
            Utf8Path::new("/b/pvc-data/2026-02/ns/p/"),
            Some(Utf8Path::new("/b/pvc-data/2026-01/ns/p")),
            false,
        )
        .unwrap();
        assert_eq!(
            inv.display(),
            "rsync -aHAX --numeric-ids --delete --modify-window=-1 --sparse --stats --link-dest=/b/pvc-data/2026-01/ns/p -- /run/mnt/vm-1/ /b/pvc-data/2026-02/ns/p/"
        );
        assert!(!inv.args.iter().any(|a| a == "--inplace"));
    }

    #[test]
    fn relative_paths_are_refused() {
        let err = weekly_copy(
            "rsync",
            Utf8Path::new("nas:backup"),
            Utf8Path::new("/b"),
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "use `nas:backup` as the rsync source: expected an absolute path"
        );
        assert!(weekly_copy(
            "rsync",
            Utf8Path::new("/a"),
            Utf8Path::new("/b"),
            Some(Utf8Path::new("w/x")),
            false,
        )
        .is_err());
    }
}
