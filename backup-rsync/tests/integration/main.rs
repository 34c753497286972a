//! backup-rsync against captured rsync output, and against the real rsync.

mod real_rsync;
mod stats_samples;
