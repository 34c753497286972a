//! The NAS as an offsite target: a mirror of the backup root (`pve-backup/`) and of each NFS
//! tree, kept by rsync, locally or over ssh. The other kind of target, a repository of
//! snapshots (restic), is `backup_host::repository::RepositoryTarget`.

use camino::Utf8Path;

use crate::config::Tree;
use crate::error::Result;
use crate::sync::SyncStats;

/// What a transfer did: its numbers; `None` when `--dry-run` recorded it instead of making it.
pub type Sent = Option<SyncStats>;

/// How the offsite copy of the backup root answered step 1's read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorRead {
    /// Its id, markers (and records) are mirrored.
    Read,
    /// Nothing is there yet (a first run).
    Nothing,
    /// It could not be read: why, with the transfer's last words.
    Failed(String),
}

/// What of a tree is sent, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeSend<'a> {
    /// The whole tree, with `--delete`.
    Full {
        /// The bound on deletions rsync holds to (`None`: none: `--force`, or a count).
        max_delete: Option<u64>,
    },
    /// Only the listed paths (NUL-separated, relative to the tree), without `--delete`: only
    /// a listed file that replaces a folder (or the reverse) replaces it offsite.
    Listed {
        /// The list file.
        list: &'a Utf8Path,
    },
    /// The listed folders one level deep, with `--delete` (what went from them goes offsite).
    Folders {
        /// The list file.
        list: &'a Utf8Path,
        /// The bound on deletions rsync holds to (`None`: none: `--force`, or a count).
        max_delete: Option<u64>,
    },
}

/// What the NAS found comparing its copy of a version with the version on the backup disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compared {
    /// (path inside the version, what differs) for each file it lacks, holds differently or
    /// holds besides.
    pub differences: Vec<(String, String)>,
    /// The comparison itself failed: why.
    pub failed: Option<String>,
}

/// The NAS: the offsite copy of the backup root and of each tree.
pub trait OffsiteCopy: Send + Sync {
    /// Where `folder` (`pve-backup`, a tree's name) lies on it, as a person reads it.
    fn folder(&self, folder: &str) -> String;

    /// Mirrors what step 1 needs of its copy of the backup root (the disk's id, the markers,
    /// with `records` the records) into the local folder `into`. Read only, even under
    /// `--dry-run`.
    ///
    /// # Errors
    /// The transfer could not be started or built.
    fn read_root(&self, into: &Utf8Path, records: bool) -> Result<MirrorRead>;

    /// Step 1: the backup root `root` sent whole, hard links kept, `--delete`; `filters` first
    /// (the first rule that matches wins), then `excludes`.
    ///
    /// # Errors
    /// The transfer failed.
    fn send_root(&self, root: &Utf8Path, filters: &[String], excludes: &[String]) -> Result<Sent>;

    /// The listed files of `root` (NUL-separated, relative to it) sent again whatever their
    /// size and mtime: a new file renamed over the old, never written through a shared inode.
    ///
    /// # Errors
    /// The transfer failed.
    fn resend(&self, root: &Utf8Path, list: &Utf8Path) -> Result<Sent>;

    /// Sends `tree` as `how` says.
    ///
    /// # Errors
    /// The transfer failed (more deletions than its bound included).
    fn send_tree(&self, tree: &Tree, how: TreeSend<'_>) -> Result<Sent>;

    /// How many paths sending `tree` as `how` says would delete offsite: counted by a run that
    /// changes nothing, before any deletion is made (a whole or folders send; a listed send is
    /// counted through the folders pass that goes with it).
    ///
    /// # Errors
    /// The count could not be made; a listed send.
    fn count_deletions(&self, tree: &Tree, how: TreeSend<'_>) -> Result<u64>;

    /// Copies what its `folder` (a path under the destination: `media/dumps`) holds into the
    /// local folder `into`, changing nothing on the NAS (the site drill's dump folders).
    ///
    /// # Errors
    /// The copy failed (the folder is not there, the NAS cannot be reached).
    fn fetch(&self, folder: &str, into: &Utf8Path) -> Result<()>;

    /// `verify --offsite`: the NAS reads its own copy of the version `local` (`rel` under the
    /// backup root) and names what differs from `local`; only the files `sample` lists, or all
    /// (and what it holds besides).
    ///
    /// # Errors
    /// The comparison could not be started or built.
    fn compare(&self, local: &Utf8Path, rel: &str, sample: Option<&Utf8Path>) -> Result<Compared>;
}
