//! rsync for homelab-backup: command lines as data, exit codes classified, `--stats` parsed.
//!
//! Every transfer is an [`backup_core::Invocation`] built by a named constructor
//! ([`weekly_copy`]) from absolute paths only, run through a
//! [`backup_core::Runner`]. [`RsyncFileSync`] adds the checks rsync itself does not make: a missing
//! `--link-dest` folder is an error (rsync only warns and copies everything), and exit 24
//! (vanished files) fails a copy from a read-only snapshot.
//!
//! ```
//! use backup_rsync::weekly_copy;
//! use camino::Utf8Path;
//!
//! let inv = weekly_copy(
//!     "rsync",
//!     Utf8Path::new("/run/homelab-backup/mnt/vm-100-pvc-a"),
//!     Utf8Path::new("/mnt/backup/pvc-data/2026-02/vaultwarden/data"),
//!     Some(Utf8Path::new("/mnt/backup/pvc-data/2026-01/vaultwarden/data")),
//!     false,
//! )
//! .unwrap();
//! assert!(inv.args.contains(&"--link-dest=/mnt/backup/pvc-data/2026-01/vaultwarden/data".to_owned()));
//! ```

mod argv;
mod command;
mod error;
mod exit;
mod nas;
mod offsite;
mod ssh;
mod stats;
mod transfer;

pub use command::{changed_copy, restore_copy, restore_copy_from, weekly_copy};
pub use error::Error;
pub use exit::{classify, meaning, ExitVerdict};
pub use nas::{rsync_failure, RsyncOffsite};
pub use offsite::{
    backup_root_copy, compare_copy, compared, dest_folder, mirror_offsite, offsite_view,
    resend_files, tree_folders, tree_full_pass, tree_incremental,
};
pub use ssh::{rsync_word, SshOptions};
pub use stats::parse_stats;
pub use transfer::{execute, RemoteRoot, RsyncFileSync, RsyncTreeCopier};
