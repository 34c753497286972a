//! One rsync-shaped transfer: the `FileSync` trait.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What kind of source a transfer reads: it decides whether vanished files are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A read-only snapshot: nothing can vanish from it, so a vanished file means trouble.
    Snapshot,
    /// A live tree: files vanish while it is read, and that is only a warning.
    Live,
}

/// One transfer: `source/` mirrored into `dest/`, unchanged files hardlinked against `link_dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRequest {
    /// The folder to copy (its contents, not the folder itself).
    pub source: Utf8PathBuf,
    /// The folder to mirror into; created when missing.
    pub dest: Utf8PathBuf,
    /// An earlier complete copy to hardlink unchanged files against.
    pub link_dest: Option<Utf8PathBuf>,
    /// Snapshot or live source.
    pub source_kind: SourceKind,
    /// Only these paths (a NUL-separated list file): what changed since the version `dest`
    /// holds or was built from. `None`: the whole tree, with `--delete`.
    pub files_from: Option<Utf8PathBuf>,
    /// Compare file contents, not size and mtime, before linking or skipping a file (`-c`):
    /// for a copy against a `link_dest` whose record cannot vouch for its files.
    pub checksum: bool,
}

/// Numbers of one transfer (from `rsync --stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    /// Regular files in the source.
    pub files: u64,
    /// Regular files transferred (new or changed).
    pub transferred_files: u64,
    /// Bytes of all regular files in the source.
    pub total_bytes: u64,
    /// Bytes of the files transferred.
    pub transferred_bytes: u64,
    /// Files deleted from the destination.
    pub deleted_files: u64,
}

impl SyncStats {
    /// Adds the numbers of another transfer of the same run.
    pub fn add(&mut self, other: &SyncStats) {
        self.files += other.files;
        self.transferred_files += other.transferred_files;
        self.total_bytes += other.total_bytes;
        self.transferred_bytes += other.transferred_bytes;
        self.deleted_files += other.deleted_files;
    }
}

/// How a transfer ended when it did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncOutcome {
    /// Its numbers.
    pub stats: SyncStats,
    /// Warnings that did not fail it (files vanished from a live tree).
    pub warnings: Vec<String>,
}

/// Runs one transfer.
pub trait FileSync: Send + Sync {
    /// Mirrors `request.source` into `request.dest`.
    ///
    /// # Errors
    /// When the transfer fails or would be unsafe (a missing `link_dest` folder).
    fn sync(&self, request: &SyncRequest) -> Result<SyncOutcome>;
}

/// How [`TreeCopier::copy_tree`] copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeCopy<'a> {
    /// Delete what the target holds beyond the source (a `--force`d restore, a restore into the
    /// live volume).
    pub delete: bool,
    /// Only these paths: a NUL-separated list file, relative to the source.
    pub files_from: Option<&'a camino::Utf8Path>,
    /// rsync `--exclude` patterns (`/.complete`).
    pub exclude: &'a [&'a str],
}

/// Where a restore's files come from: a folder under the backup root copied out of it with
/// everything it carries (owners by number, modes, ACLs, xattrs, hard links, times to the
/// nanosecond, holes). The backup disk, or the offsite copy standing in for it over ssh.
pub trait TreeCopier {
    /// Makes `to` hold what `from` (a folder under the backup root) holds, as `how` says.
    ///
    /// # Errors
    /// The copy failed or was refused (a relative path, a list that cannot be read).
    fn copy_tree(
        &self,
        from: &camino::Utf8Path,
        to: &camino::Utf8Path,
        how: &TreeCopy<'_>,
    ) -> Result<()>;
}
