//! backup-bins end to end: the real binaries with real rsync, real files and (as root) real
//! read-only bind mounts. The transcripts of whole runs against fakes are the jobs' own tests
//! (`backup-jobs/tests/`, `backupctl/tests/`).

mod alerts;
mod config_guards;
mod ctl_real;
mod daily_real;
mod defects;
mod differential;
mod docs;
mod dump_real;
mod dump_restore;
mod dump_servers;
mod harness;
mod help;
mod history;
mod integrity;
mod layout;
mod manifests;
mod naming;
mod notify_real;
mod offsite_days;
mod offsite_real;
mod offsite_step_one;
mod output;
mod output80;
mod pfsense_real;
mod progress;
mod pushgateway_real;
mod run_paths;
mod runbooks;
mod snapshot_real;
mod sqlite_job_real;
mod tier_real;
mod units;
