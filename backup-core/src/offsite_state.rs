//! What the backup root remembers of earlier offsite syncs (`.offsite-state.json`): step 1's
//! and each tree's last successes, and each tier repository's identity, sent versions and size.
//! Written by `offsite-sync-backup`, read by `backupctl status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the backup root remembers of earlier syncs (`.offsite-state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OffsiteState {
    /// Step 1's last success.
    pub backup_root: Option<DateTime<Utc>>,
    /// Per tree: (last success, last full-pass success).
    pub trees: BTreeMap<String, TreeState>,
    /// Per tier repository: its id and last success.
    #[serde(default)]
    pub tier: BTreeMap<String, TierState>,
}

/// One tree's remembered successes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TreeState {
    /// The last successful sync of any kind.
    pub last_success: Option<DateTime<Utc>>,
    /// The last successful full pass.
    pub last_full_success: Option<DateTime<Utc>>,
    /// The real clock at the start of the last successful sync (not `--now`): a folder whose
    /// mtime is older has its mtime offsite already.
    #[serde(default)]
    pub last_success_wall: Option<DateTime<Utc>>,
}

/// The state file's name in the backup root.
pub const STATE_FILE: &str = ".offsite-state.json";

/// What the tier remembers per repository, in the offsite state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TierState {
    /// The repository's id at the last run.
    pub repository_id: Option<String>,
    /// The last run that sent every PVC.
    pub last_success: Option<DateTime<Utc>>,
    /// The last prune (at most one a week: it reads the whole index and rewrites packs).
    #[serde(default)]
    pub last_prune: Option<DateTime<Utc>>,
    /// Per PVC (`namespace/pvc`): the version its newest snapshot holds (`week@completed`) and
    /// that snapshot's id. The same version is not sent twice: a rerun with nothing new runs
    /// no restic for it.
    #[serde(default)]
    pub sent: SentVersions,
    /// A remote repository's size at the last measure (after a prune), counted up since by what
    /// each run added.
    #[serde(default)]
    pub repository_bytes: Option<u64>,
}

/// Per upload label (`namespace/pvc`, a tree's name): what its newest snapshot holds (a
/// version's `week@completed`, a tree's fingerprint) and that snapshot's id.
pub type SentVersions = BTreeMap<String, (String, String)>;
