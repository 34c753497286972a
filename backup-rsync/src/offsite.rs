//! The offsite command lines: the backup disk to `<destination>/pve-backup/`, and each NFS tree
//! to `<destination>/<name>/`, either whole (`--delete`, bounded) or only what the change log
//! names (`--files-from`). A remote destination goes over ssh that fails closed.

use backup_core::Invocation;
use camino::Utf8Path;

use crate::argv::{absolute, contents_of, Rsync, EXACT_TIMES, KEEP, NUL_LIST, STATS};
use crate::error::Error;
use crate::ssh::SshOptions;

/// `<destination>/<sub>/`: a folder under the destination, local or remote.
pub fn dest_folder(destination: &str, sub: &str) -> String {
    format!("{}/{sub}/", destination.trim_end_matches('/'))
}

/// Step 1: the backup root to `<destination>/pve-backup/`.
///
/// - `-aHAX --numeric-ids`: `-H` keeps the weekly versions hardlinked (without it four weeks
///   take four times the space offsite); owners by number;
/// - `--delete`: pruned weeks go offsite too (the backup root was checked to be the backup disk);
/// - `--filter` each of `filters` first (`P <path>`: protect offsite versions the backup disk
///   does not hold from `--delete`; `- <path>`: withhold an incomplete version);
/// - `--exclude` each of `excludes` (anchored at the root: locks, the change log, temp files of
///   atomic writes, SQLite scratch);
/// - `--stats` for the numbers.
///
/// # Errors
/// [`Error::RelativePath`] for a relative source.
pub fn backup_root_copy(
    program: &str,
    source: &Utf8Path,
    dest: &str,
    filters: &[String],
    excludes: &[String],
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    let mut rsync = Rsync::new(program, ssh).args(KEEP).args([
        "--delete",
        "--delete-excluded",
        EXACT_TIMES,
        STATS,
    ]);
    for f in filters {
        rsync = rsync.arg(format!("--filter={f}"));
    }
    for e in excludes {
        rsync = rsync.arg(format!("--exclude={e}"));
    }
    Ok(rsync.paths(source, dest.to_owned()))
}

/// Mirrors into the local folder `local`, in one read-only rsync, what step 1 needs to know
/// of `<dest>/pve-backup/`: the disk's id (`.backup-root-id`), the completion markers
/// `pvc-data/<week>/.complete/<namespace>/<pvc>` (times kept), the week folders of
/// `pve-config/` (with their markers) and `pfsense/` (empty here), and with `records` the
/// per-file records
/// `pvc-data/<week>/.records/...`. `--delete`: what is gone offsite goes here too; what did not
/// change since the last mirror is not sent again. A destination without `pve-backup/` makes
/// rsync exit 23 ("No such file or directory"): nothing is there yet.
///
/// # Errors
/// [`Error::RelativePath`] for a relative `local`.
pub fn mirror_offsite(
    program: &str,
    pve_backup: &str,
    local: &Utf8Path,
    records: bool,
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let local = absolute("destination", local)?;
    let rsync = Rsync::new(program, ssh).args([
        "-rt",
        "--delete",
        "--no-motd",
        "--include=/.backup-root-id",
        "--include=/pvc-data/",
        "--include=/pvc-data/*/",
        "--include=/pvc-data/*/.complete/***",
        "--include=/pve-config/",
        "--include=/pve-config/*/",
        "--include=/pve-config/*/.complete",
        "--include=/pfsense/",
        "--include=/pfsense/*/",
    ]);
    Ok(rsync
        .arg_if(records, "--include=/pvc-data/*/.records/***")
        .arg("--exclude=*")
        .paths(pve_backup, contents_of(local))
        .read_only())
}

/// `rsync <flags> --files-from=<list> -- <source>/ <dest>`: the shape of every list-driven
/// offsite copy.
fn listed_copy(
    program: &str,
    ssh: Option<&SshOptions>,
    flags: &[&str],
    source: &Utf8Path,
    dest: &str,
    files_from: &Utf8Path,
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    Ok(Rsync::new(program, ssh)
        .args(flags.iter().copied())
        .files_from("files-from list", files_from)?
        .paths(source, dest.to_owned()))
}

/// `--from-offsite` over ssh: what a read command needs of the offsite copy `remote`
/// (`host:/path/pve-backup`), into the local folder `view`, without the PVC versions' files:
/// every week's markers, records, damage and repair lists (`pvc-data/<week>/.<name>/`), the
/// versions' folders (empty), and
/// everything outside `pvc-data/` (SQLite copies, pfSense, PVE config, the tier's records, the
/// identity). A restore then reads a version's files from `remote` itself.
///
/// # Errors
/// [`Error::RelativePath`] for a relative view.
pub fn offsite_view(
    program: &str,
    ssh: Option<&SshOptions>,
    remote: &str,
    view: &Utf8Path,
) -> Result<Invocation, Error> {
    let view = absolute("destination", view)?;
    Ok(Rsync::new(program, ssh)
        .args([
            "-aAX",
            "--numeric-ids",
            "--include=/pvc-data/",
            "--include=/pvc-data/*/",
            "--include=/pvc-data/*/.*/***",
            // the versions' folders, empty: what lists them
            "--include=/pvc-data/*/*/",
            "--include=/pvc-data/*/*/*/",
            "--exclude=/pvc-data/*/*/*/*",
            "--exclude=/pvc-data/*/*",
        ])
        .paths(remote, contents_of(view))
        .read_only())
}

/// `verify --offsite` over ssh: what of `local` (a version on the backup disk) the offsite copy
/// `dest` lacks or holds differently, by content (`-c`: the NAS reads its own bytes, nothing is
/// copied back), without changing anything (`-n`), one itemized line a difference (`%i %n`).
/// Without `files_from`, `--delete` lists what only the offsite copy holds too; with it (a
/// sample, NUL-separated, relative to `local`), only the listed files are compared.
///
/// # Errors
/// [`Error::RelativePath`] for a relative folder or list.
pub fn compare_copy(
    program: &str,
    ssh: Option<&SshOptions>,
    local: &Utf8Path,
    dest: &str,
    files_from: Option<&Utf8Path>,
) -> Result<Invocation, Error> {
    let flags = [
        "-n",
        "-rlc",
        NUL_LIST,
        "--itemize-changes",
        "--out-format=%i %n",
    ];
    let inv = match files_from {
        Some(list) => listed_copy(program, ssh, &flags, local, dest, list)?,
        None => {
            let local = absolute("source", local)?;
            Rsync::new(program, ssh)
                .args(flags)
                .arg("--delete")
                .paths(local, dest.to_owned())
        }
    };
    Ok(inv.read_only())
}

/// The differences [`compare_copy`] printed: (path, what).
pub fn compared(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            if let Some(p) = l.strip_prefix("*deleting ") {
                return Some((
                    p.trim().to_owned(),
                    "only in the offsite copy, not in the version on the backup disk".to_owned(),
                ));
            }
            let (flags, path) = l.split_once(' ')?;
            if flags.len() != 11 || path.is_empty() {
                return None;
            }
            let what = if flags.ends_with("+++++++++") {
                "missing from the offsite copy".to_owned()
            } else if flags.as_bytes()[2] == b'c' {
                "content differs in the offsite copy (checksum)".to_owned()
            } else {
                format!("differs in the offsite copy (rsync: {flags})")
            };
            Some((path.to_owned(), what))
        })
        .collect()
}

/// Sends the listed files of the backup root (NUL-separated, relative to `root`) to
/// `<destination>/pve-backup/` again whatever their size and mtime (`--ignore-times`): files
/// whose content or attributes differ from the record the offsite copy holds. rsync writes
/// each into a new file and renames it over the old one, so an offsite inode another week
/// shares is never written through; `-H` links the listed ones that are linked here.
///
/// # Errors
/// [`Error::RelativePath`] for a relative root or list.
pub fn resend_files(
    program: &str,
    root: &Utf8Path,
    dest: &str,
    files_from: &Utf8Path,
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let flags = [
        KEEP[0],
        KEEP[1],
        "--ignore-times",
        EXACT_TIMES,
        NUL_LIST,
        STATS,
    ];
    listed_copy(program, ssh, &flags, root, dest, files_from)
}

/// A full pass of one tree: `-aHAX --numeric-ids --delete --max-delete=<n>`. With `preview`,
/// `--dry-run` too: the deletions are counted before any is made.
///
/// # Errors
/// [`Error::RelativePath`] for a relative source.
pub fn tree_full_pass(
    program: &str,
    source: &Utf8Path,
    dest: &str,
    max_delete: Option<u64>,
    preview: bool,
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let source = absolute("source", source)?;
    let mut rsync = Rsync::new(program, ssh)
        .args(KEEP)
        .args(["--delete", EXACT_TIMES, STATS]);
    if let Some(n) = max_delete {
        rsync = rsync.arg(format!("--max-delete={n}"));
    }
    let inv = rsync
        .arg_if(preview, "--dry-run")
        .paths(source, dest.to_owned());
    Ok(if preview { inv.read_only() } else { inv })
}

/// The sending half of an incremental pass of one tree: the listed paths (NUL-separated,
/// relative), each of which existed when the list was made.
///
/// - `-r` explicitly: `--files-from` turns off the recursion `-a` implies, and a listed folder
///   (created, or moved in) must bring its contents;
/// - `--from0`: names are NUL-terminated, so a newline is part of a name;
/// - `--force`: a file that replaces a folder offsite deletes the folder with its contents;
/// - `--ignore-missing-args`: a path gone since the list was made is skipped (its deletion is
///   in the change log for the next sync), not an error.
///
/// Nothing gone is listed (never `--delete-missing-args`: the mode-0 entries it sends are
/// rejected below the top folder by Debian 12's rsync 3.2.7-1+deb12u5 and later); deletions
/// are [`tree_folders`]'s.
///
/// # Errors
/// [`Error::RelativePath`] for a relative source or list.
pub fn tree_incremental(
    program: &str,
    source: &Utf8Path,
    dest: &str,
    files_from: &Utf8Path,
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let flags = [
        KEEP[0],
        "-r",
        KEEP[1],
        EXACT_TIMES,
        NUL_LIST,
        "--force",
        "--ignore-missing-args",
        STATS,
    ];
    listed_copy(program, ssh, &flags, source, dest, files_from)
}

/// The folders half of an incremental pass (see `backup_core::IncrementalPlan::folders`):
/// `--dirs --delete` and no `-r`, so a folder listed with a trailing slash is sent one level
/// deep and what the offsite copy holds beyond that level there is deleted (a folder with its
/// contents), and a folder listed bare gets its attributes (mtime included) only. `--existing`:
/// nothing new is created there (what is new was recorded and came with [`tree_incremental`];
/// what appeared since the records were taken waits for the next sync). Bounded by
/// `--max-delete` when given; `preview` (`--dry-run`) counts the deletions first.
///
/// # Errors
/// [`Error::RelativePath`] for a relative source or list.
pub fn tree_folders(
    program: &str,
    source: &Utf8Path,
    dest: &str,
    files_from: &Utf8Path,
    max_delete: Option<u64>,
    preview: bool,
    ssh: Option<&SshOptions>,
) -> Result<Invocation, Error> {
    let max = max_delete.map(|n| format!("--max-delete={n}"));
    let mut flags = vec![
        KEEP[0],
        "--dirs",
        "--existing",
        "--delete",
        "--force",
        KEEP[1],
        EXACT_TIMES,
        NUL_LIST,
        "--ignore-missing-args",
        STATS,
    ];
    flags.extend(max.as_deref());
    if preview {
        flags.push("--dry-run");
    }
    let inv = listed_copy(program, ssh, &flags, source, dest, files_from)?;
    Ok(if preview { inv.read_only() } else { inv })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::rsync_word;

    #[test]
    fn compared_lines_name_each_difference() {
        let out = ">fc........ db/a.bin\n>f+++++++++ new.txt\n*deleting   stray\ncL......... ln\n\
                   cd+++++++++ dir/\n";
        let d = compared(out);
        assert_eq!(d.len(), 5, "{d:?}");
        assert!(d[0].1.contains("content differs"));
        assert!(d[1].1.contains("missing"));
        assert_eq!(d[2].0, "stray");
        assert!(d[3].1.contains("cL"));
    }

    #[test]
    fn rsync_words_double_their_quotes() {
        assert_eq!(rsync_word("/etc/hb/key"), "/etc/hb/key");
        assert_eq!(rsync_word("it's"), "'it''s'");
        assert_eq!(rsync_word("a b"), "'a b'");
        assert_eq!(rsync_word(""), "''");
    }

    #[test]
    fn argv() {
        let ssh = SshOptions {
            key_file: Some("/etc/hb/offsite key".into()),
            known_hosts: Some("/etc/hb/known_hosts".into()),
            port: None,
        };
        let inv = backup_root_copy(
            "rsync",
            Utf8Path::new("/mnt/backup"),
            &dest_folder("backup@nas:/vol/Backup/", "pve-backup"),
            &[],
            &["/.daily-backup.lock".to_owned()],
            Some(&ssh),
        )
        .unwrap();
        assert_eq!(
            inv.display(),
            "rsync -e 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ConnectTimeout=30 -o UserKnownHostsFile=/etc/hb/known_hosts -i '\\''/etc/hb/offsite key'\\''' -aHAX --numeric-ids --delete --delete-excluded --modify-window=-1 --stats --exclude=/.daily-backup.lock -- /mnt/backup/ backup@nas:/vol/Backup/pve-backup/"
        );
        let inc = tree_incremental(
            "rsync",
            Utf8Path::new("/srv/nfs"),
            "/nas/nfs/",
            Utf8Path::new("/tmp/list"),
            None,
        )
        .unwrap();
        assert_eq!(
            inc.display(),
            "rsync -aHAX -r --numeric-ids --modify-window=-1 --from0 --force --ignore-missing-args --stats --files-from=/tmp/list -- /srv/nfs/ /nas/nfs/"
        );
        let full = tree_full_pass(
            "rsync",
            Utf8Path::new("/srv/nfs"),
            "/nas/nfs/",
            Some(10),
            true,
            None,
        )
        .unwrap();
        assert!(full.read_only);
        assert!(full.args.contains(&"--max-delete=10".to_owned()));
    }
}
