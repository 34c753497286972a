//! The one path every binary takes: global flags, the config (exit 2), signals, the named locks
//! (exit 75), the backup root, the job, text or `--json` rendered from the same report value,
//! metrics on every exit path once the config is loaded, and the exit code from the table.
//!
//! A job is a closure from a [`Context`] to a report implementing [`Outcome`]; it never prints
//! and never publishes. When it fails, for any reason (an unmounted backup disk, a listing that
//! failed, a lock held), the wrapper still publishes `*_last_run_success 0`, and never a success
//! timestamp, so the alert on that metric fires for the most common failures too.

mod outside;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backup_core::metric_names::JobMetrics;
use backup_core::{
    BackupStore, Config, CopyStages, FileSync, MetricGroup, MetricsSink, Mounter, Refusal, Runner,
    VolumeManager, DEFAULT_CONFIG_PATH,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use backup_host::clock::Clock;
use backup_host::disk_store::DiskStore;
use backup_host::dry_run::{
    DryRunMounter, DryRunRunner, DryRunSink, DryRunStages, DryRunStore, DryRunSync, DryRunVolumes,
    Would,
};
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_host::lock::RunLock;
use backup_host::metrics_sink::{PushgatewaySink, Sinks, TextfileSink};
use backup_host::repository::RepositoryTarget;
use backup_host::runner::{stop_on_signals, DuctRunner};

/// Flags every binary takes, before or after a subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Configuration file (`-`: read it from stdin).
    #[arg(short, long, global = true, value_name = "PATH", env = "HOMELAB_BACKUP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: Utf8PathBuf,

    /// Print what would be done and change nothing: no snapshot, mount, copy, removal, lock,
    /// metric or file. Reads (listings, `lvs`, `kubectl get`) still happen.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Run as if the clock said this (RFC 3339, e.g. 2026-01-05T05:00:00Z): for tests and replays.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// More detail: every command as it runs (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When another run holds the lock, wait up to this long for it instead of exiting 75.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,

    /// Only what needs a person: no progress, and no report from a job that succeeded without
    /// a warning (its exit code says so); a run that fails or warns prints in full. What was
    /// asked for (list, status, find, --json, --dry-run) still prints.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// No progress bar on a terminal and no progress line in the journal.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

impl GlobalArgs {
    /// The time the run starts at: exactly `--now`, or the clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(|| Clock::system().now())
    }
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time like 2026-01-05T05:00:00Z: {e}"))
}

/// Metrics sinks given on the command line, beside the config's `[metrics]` (a CronJob often has
/// no config file).
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Write metrics as <DIR>/<job>.prom for node_exporter's textfile collector.
    #[arg(long, global = true, value_name = "DIR")]
    pub textfile_dir: Option<Utf8PathBuf>,
    /// Push metrics to this Pushgateway (http://host:9091).
    #[arg(long, global = true, value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// What a job's report must offer the wrapper.
pub trait Outcome: Serialize {
    /// The exit code.
    fn exit(&self) -> Exit;
    /// The text for people; under `--dry-run` it says what would be done.
    fn text(&self, dry_run: bool) -> String;
    /// The metric groups to publish (the job's `*_last_run_success` among them).
    fn metrics(&self) -> Vec<MetricGroup> {
        Vec::new()
    }
    /// True when the report says something a person should read even though the run
    /// succeeded (a warning): `--quiet` prints it then.
    fn needs_attention(&self) -> bool {
        false
    }
}

/// Which locks a job holds for its whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locks {
    /// None (reading, or a job with its own destination).
    None,
    /// The snapshot lock (`snapshots.lock-file`), shared by `lvm-pvc-snapshot` and
    /// `daily-backup`: a prune never removes the snapshot a backup reads.
    Snapshots,
    /// The snapshot lock and `<backup-root>/.daily-backup.lock`.
    Daily,
    /// `<offsite.change-log>.lock.offsite` (beside the tracker's `.lock.tracker`): one
    /// offsite-sync-backup at a time (two would replay the same change log into the same trees).
    Offsite,
}

/// How a binary runs one job.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The binary's name, in messages.
    pub binary: &'static str,
    /// False when the job runs without a config file (a CronJob with flags only).
    pub config_required: bool,
    /// What to publish when the run fails before it has a report (`None`: nothing).
    pub metrics: Option<JobMetrics>,
    /// Locks held for the run.
    pub locks: Locks,
    /// The backup root must be there (an unmounted backup disk is refused).
    pub needs_backup_root: bool,
    /// Metrics sinks given by flags, beside the config's.
    pub textfile_dir: Option<Utf8PathBuf>,
    /// Pushgateway given by a flag, beside the config's.
    pub pushgateway: Option<String>,
    /// Read the offsite copy (`<offsite.destination>/pve-backup/`, a local or mounted
    /// destination) as the backup root, writing nothing into it and publishing no metrics.
    pub from_offsite: bool,
    /// With `from_offsite`: a check of the offsite copy itself (`verify --offsite`), whose
    /// metrics are published; a remote destination is then not refused but left to the job
    /// (the backup root stays the disk's, [`Context::from_offsite`] is false).
    pub offsite_check: bool,
    /// Only root can do this job whole (owners kept, every file read, volumes and mounts): any
    /// other user is refused first, exit 77, nothing read or written.
    pub needs_root: bool,
}

impl RunSpec {
    /// A job of `binary` that needs the config and nothing else.
    pub fn new(binary: &'static str) -> Self {
        Self {
            binary,
            config_required: true,
            metrics: None,
            locks: Locks::None,
            needs_backup_root: false,
            textfile_dir: None,
            pushgateway: None,
            from_offsite: false,
            offsite_check: false,
            needs_root: false,
        }
    }
}

impl RunSpec {
    /// The spec with the sinks of `args` added.
    #[must_use]
    pub fn with_sinks(self, args: &SinkArgs) -> Self {
        Self {
            textfile_dir: args.textfile_dir.clone(),
            pushgateway: args.pushgateway.clone(),
            ..self
        }
    }
}

/// What a job gets: the config, the clock, and backends that are real, or dry-run decorators of
/// the real ones under `--dry-run`.
pub struct Context<'a> {
    cfg: Option<&'a Config>,
    /// The global flags.
    pub global: &'a GlobalArgs,
    /// The run's time.
    pub now: DateTime<Utc>,
    /// Set by SIGTERM/SIGINT: start nothing new.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGTERM/SIGINT only (`stop` is also the job's own: `offsite.stop-at`).
    pub signalled: Arc<AtomicBool>,
    runner: DuctRunner,
    steady: DuctRunner,
    would: Option<Would>,
    sink: &'a dyn MetricsSink,
    rsync: String,
    /// `HOMELAB_BACKUP_RSYNC` names the program: every copy goes through it.
    rsync_chosen: bool,
    /// The backup root is the offsite copy, read only ([`RunSpec::from_offsite`]).
    from_offsite: bool,
    /// The backup disk's root as the config names it (the backup root, unless the offsite
    /// copy stands in for it).
    disk_root: Option<Utf8PathBuf>,
    /// `--from-offsite` of a remote destination: the local view standing in as backup root.
    view: Option<&'a OffsiteView>,
}

/// `--from-offsite` of a destination reached over ssh: a local folder holding what the read
/// commands read of the offsite copy (markers, records, SQLite copies, pfSense, PVE config:
/// [`backup_rsync::offsite_view`]) stands in as the backup root; a version's files are read
/// from the offsite copy itself ([`Context::copier`]). Removed when the run ends.
pub struct OffsiteView {
    _dir: tempfile::TempDir,
    /// The view: the run's backup root.
    pub root: Utf8PathBuf,
    /// `host:/path/pve-backup`.
    pub remote: String,
    /// ssh with the config's key and pinned host keys.
    pub ssh: Option<backup_rsync::SshOptions>,
}

impl OffsiteView {
    /// The offsite copy this view stands in for.
    pub fn remote_root(&self) -> backup_rsync::RemoteRoot {
        backup_rsync::RemoteRoot {
            local: self.root.clone(),
            remote: self.remote.clone(),
            ssh: self.ssh.clone(),
        }
    }
}

impl<'a> Context<'a> {
    /// True when the backup root is the offsite copy: nothing may be written into it (no
    /// damage list, no state).
    pub fn from_offsite(&self) -> bool {
        self.from_offsite
    }

    /// What a restore must never write into or around: the backup root, the backup disk's root
    /// (when the offsite copy stands in for it) and a local offsite destination (the copy of
    /// the backup root and of every tree).
    pub fn protected_roots(&self) -> Vec<Utf8PathBuf> {
        let mut out: Vec<Utf8PathBuf> = self.disk_root.iter().cloned().collect();
        if let Some(cfg) = self.cfg {
            out.push(cfg.backup_root.clone());
            if let Some(o) = cfg.offsite.as_ref().filter(|o| !o.is_remote()) {
                out.push(Utf8PathBuf::from(o.destination.as_str()));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The configuration.
    ///
    /// # Errors
    /// [`Error::Usage`] when the job ran without one.
    pub fn cfg(&self) -> Result<&'a Config> {
        self.cfg.ok_or_else(|| {
            Error::Usage(format!(
                "no configuration file at {} (--config PATH)",
                self.global.config
            ))
        })
    }

    /// The configuration when there is one.
    pub fn cfg_opt(&self) -> Option<&'a Config> {
        self.cfg
    }

    /// Publishes metrics now (a long-running job's periodic gauges); failures are warnings.
    pub fn publish(&self, group: &MetricGroup) {
        if let Err(e) = self.sink.publish(group) {
            backup_host::out::eprintln_fit(&format!("warning: metrics not published: {e}"));
        }
    }

    /// True under `--dry-run`.
    pub fn dry_run(&self) -> bool {
        self.would.is_some()
    }

    /// What a dry run would have changed, so far.
    pub fn would(&self) -> Vec<String> {
        self.would.as_ref().map(Would::lines).unwrap_or_default()
    }

    /// Runs commands; killed by SIGTERM/SIGINT.
    pub fn runner(&self) -> Box<dyn Runner + '_> {
        self.wrap_runner(&self.runner)
    }

    /// Runs commands that must finish even after SIGTERM (unmounts, a restore and its undo).
    pub fn steady_runner(&self) -> Box<dyn Runner + '_> {
        self.wrap_runner(&self.steady)
    }

    fn wrap_runner<'r>(&self, r: &'r DuctRunner) -> Box<dyn Runner + 'r> {
        match &self.would {
            Some(w) => Box::new(DryRunRunner::new(Box::new(r.clone()), w)),
            None => Box::new(r.clone()),
        }
    }

    /// The snapshot backend of the config.
    ///
    /// # Errors
    /// Without a config.
    pub fn volumes(&self) -> Result<Box<dyn VolumeManager + '_>> {
        let inner = backup_host::setup::volume_manager(self.cfg()?, &self.runner);
        Ok(match &self.would {
            Some(w) => Box::new(DryRunVolumes::new(inner, w)),
            None => inner,
        })
    }

    /// Read-only mounts (never killed: the unmount after SIGTERM must happen).
    pub fn mounter(&self) -> Box<dyn Mounter + '_> {
        match &self.would {
            Some(w) => Box::new(DryRunMounter::new(w)),
            None => backup_host::setup::mounter(&self.steady),
        }
    }

    /// Whether copies may be made in process (the local copy); not when `HOMELAB_BACKUP_RSYNC`
    /// names an rsync program, which is then meant to see every copy.
    pub fn local_copies(&self) -> bool {
        !self.rsync_chosen && self.view.is_none()
    }

    /// `--from-offsite` over ssh: the view standing in as backup root.
    pub fn offsite_view(&self) -> Option<&OffsiteView> {
        self.view
    }

    /// The NAS of `offsite`, reached by the run's rsync (under `--dry-run` its transfers are
    /// recorded, not made).
    pub fn offsite_copy(
        &self,
        offsite: &backup_core::OffsiteConfig,
    ) -> Box<dyn backup_core::OffsiteCopy + '_> {
        Box::new(backup_rsync::RsyncOffsite::new(
            self.runner(),
            self.rsync_program(),
            offsite,
            self.dry_run(),
        ))
    }

    /// A restore's copies out of the backup root (never cut short): from the backup disk, or
    /// from the offsite copy over ssh under `--from-offsite`.
    pub fn copier(&self) -> Box<dyn backup_core::TreeCopier + '_> {
        Box::new(backup_rsync::RsyncTreeCopier::new(
            self.steady_runner(),
            self.rsync_program(),
            self.view.map(OffsiteView::remote_root),
        ))
    }

    /// The rsync program, read once per run (`HOMELAB_BACKUP_RSYNC`, else `rsync`).
    pub fn rsync_program(&self) -> &str {
        &self.rsync
    }

    /// The copies: the first copy of a volume and the changed paths of an update in process
    /// ([`backup_host::local_copy::LocalFirstSync`]), everything else with rsync; every copy
    /// with rsync when `HOMELAB_BACKUP_RSYNC` names a program (a wrapper is meant to see them
    /// all).
    pub fn file_sync(&self) -> Box<dyn FileSync + '_> {
        let rsync = Box::new(backup_rsync::RsyncFileSync::new(
            &self.runner,
            self.rsync.clone(),
        ));
        match &self.would {
            Some(w) => Box::new(DryRunSync::new(w)),
            None if self.rsync_chosen => rsync,
            None => Box::new(backup_host::local_copy::LocalFirstSync::new(
                rsync, &self.stop,
            )),
        }
    }

    /// The offsite repository targets, one per `[[offsite.repository]]`, in config order.
    ///
    /// # Errors
    /// Without a configuration.
    pub fn repositories(&self) -> Result<Vec<Box<dyn RepositoryTarget + '_>>> {
        let repos = self.cfg()?.offsite.iter().flat_map(|o| &o.repositories);
        let mut out: Vec<Box<dyn RepositoryTarget + '_>> = Vec::new();
        for repo in repos {
            // the kind of target is chosen here, the one place that knows the adapters
            out.push(Box::new(backup_restic::ResticTarget::new(
                self.tier_deps()?,
                repo.clone(),
            )));
        }
        Ok(out)
    }

    /// The encrypted tier's ports: the config, the time, both runners, the store, the mounter,
    /// the stop flag and whether this is a dry run.
    ///
    /// # Errors
    /// Without a configuration.
    pub fn tier_deps(&self) -> Result<backup_restic::TierDeps<'_>> {
        Ok(backup_restic::TierDeps {
            cfg: self.cfg()?,
            now: self.now,
            runner: self.runner(),
            steady: self.steady_runner(),
            store: self.store()?,
            mounter: self.mounter(),
            stop: &self.stop,
            dry_run: self.dry_run(),
        })
    }

    /// The backup root.
    ///
    /// # Errors
    /// Without a config.
    pub fn store(&self) -> Result<Box<dyn BackupStore + '_>> {
        let inner: Box<dyn BackupStore> = Box::new(DiskStore::new(&self.cfg()?.backup_root));
        Ok(match &self.would {
            Some(w) => Box::new(DryRunStore::new(inner, w)),
            None => inner,
        })
    }

    /// The hardlink guard and the SQLite stage of daily-backup (under `--dry-run`: say what).
    pub fn copy_stages(&self) -> Box<dyn CopyStages> {
        match &self.would {
            Some(w) => Box::new(DryRunStages::new(w)),
            None => Box::new(backup_host::copy_stages::HostCopyStages),
        }
    }
}

/// Runs one job the one way: see the module documentation.
pub fn run<O, J>(spec: &RunSpec, global: &GlobalArgs, job: J) -> ExitCode
where
    O: Outcome,
    J: FnOnce(&Context<'_>) -> Result<O>,
{
    let bin = spec.binary;
    backup_host::progress::configure(global.no_progress, global.quiet);
    if let Err(why) = backup_host::progress::check_env() {
        return fail(bin, global, &Error::Usage(why));
    }
    if let Err(e) = require_root(spec) {
        return fail(bin, global, &e);
    }
    // the config first: without it there is nowhere to publish, and exit 2 says "fix the config"
    let loaded = match load(spec, global) {
        Ok(c) => c,
        Err(e) => return fail(bin, global, &e),
    };
    // the backup disk's root, also when the offsite copy stands in for it: never a target
    let disk_root = loaded.as_ref().map(|c| c.backup_root.clone());
    let (cfg, view) = match offsite_root(spec, loaded) {
        Ok(c) => c,
        Err(e) => return fail(bin, global, &e),
    };
    let now = global.now();
    let would = global.dry_run.then(Would::new);
    // what is read from the offsite copy says nothing about the backup disk's metrics
    let real_sinks = if spec.from_offsite && !spec.offsite_check {
        Sinks(Vec::new())
    } else {
        sinks(spec, cfg.as_ref())
    };
    let dry_sink = would.as_ref().map(DryRunSink::new);
    let sink: &dyn MetricsSink = match &dry_sink {
        Some(d) => d,
        None => &real_sinks,
    };
    let publish_failure = |e: &Error| {
        if let Some(m) = &spec.metrics {
            let group = MetricGroup::new(&m.job, m.outcome(false, now.timestamp()));
            if let Err(pe) = sink.publish(&group) {
                backup_host::out::eprintln_fit(&format!(
                    "{bin}: warning: metrics not published: {pe}"
                ));
            }
        }
        fail(bin, global, e)
    };
    let (stop, signalled) = match stop_on_signals() {
        Ok(s) => s,
        Err(e) => return publish_failure(&Error::io("install signal handlers", "-", e)),
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // a signal, not the job's own stop (`offsite.stop-at`), starts the grace period
        let watched = Arc::clone(&signalled);
        let (done, publish_failure) = (&done, &publish_failure);
        let mount_dir = cfg.as_ref().map(|c| c.pvc_backup.mount_dir.clone());
        let watchdog = scope.spawn(move || {
            if let Some(grace) = watch_for_a_stuck_stop(&watched, done) {
                let left = unmount_all_under(mount_dir.as_deref());
                let _ = publish_failure(&Error::Refused(format!(
                    "still running {grace} s after SIGTERM/SIGINT (a step blocked in the \
                     kernel or a child holding its output): stopped without waiting{left}"
                )));
                std::process::exit(i32::from(Exit::Failed.code()));
            }
        });
        // the watchdog ends with the job, also when the job panics (the scope would wait for
        // it forever: a panicking run hung until SIGTERM)
        let _done = Done(done, watchdog.thread());
        run_job(
            spec,
            global,
            job,
            (cfg.as_ref(), disk_root.as_deref(), view.as_ref()),
            now,
            (stop, signalled),
            would,
            sink,
            &publish_failure,
        )
    })
}

/// Sets the job's `done` flag and wakes the watchdog when dropped: at the end of the job, or
/// while a panic unwinds it.
struct Done<'a>(&'a AtomicBool, &'a std::thread::Thread);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.unpark();
    }
}

/// How long a run may go on after SIGTERM/SIGINT before the watchdog ends it: 10 s, or
/// `HOMELAB_BACKUP_STOP_GRACE_SECONDS` (tests). systemd sends SIGKILL after 90 s by default;
/// the watchdog ends the run long before, after unmounting and publishing the failure.
fn stop_grace() -> u64 {
    std::env::var("HOMELAB_BACKUP_STOP_GRACE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Waits until the job is `done` (`None`) or `stop` has been set for the grace period
/// (`Some(seconds)`): then the job is stuck and must be ended from here.
fn watch_for_a_stuck_stop(stop: &AtomicBool, done: &AtomicBool) -> Option<u64> {
    let grace = stop_grace();
    let mut stopped_at: Option<std::time::Instant> = None;
    while !done.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            let at = *stopped_at.get_or_insert_with(std::time::Instant::now);
            if at.elapsed() >= std::time::Duration::from_secs(grace) {
                return Some(grace);
            }
        }
        // woken at once when the job is done (every command used to end up to 50 ms late)
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
    None
}

/// Detaches every mount under the run's mount folder (the run holds the lock: they are its
/// own); says what it did, for the error.
fn unmount_all_under(mount_dir: Option<&Utf8Path>) -> String {
    let Some(dir) = mount_dir.and_then(|d| d.canonicalize_utf8().ok()) else {
        return String::new();
    };
    let mut done = Vec::new();
    for m in backup_host::mounts::mounts_under(&dir).unwrap_or_default() {
        if rustix::mount::unmount(m.as_std_path(), rustix::mount::UnmountFlags::DETACH).is_ok() {
            done.push(m.to_string());
        }
    }
    if done.is_empty() {
        String::new()
    } else {
        format!("; unmounted {}", done.join(", "))
    }
}

/// The report on stdout: as JSON with `--json` (a dry run's `would` and the metric warnings in
/// it), else as text, then what a dry run (`would`: `Some`) would have done.
fn print_outcome<O: Outcome>(
    outcome: &O,
    json: bool,
    would: Option<Vec<String>>,
    warnings: &[String],
) {
    if json {
        let mut v = serde_json::to_value(outcome).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            if let Some(would) = would {
                obj.insert("dry_run".into(), true.into());
                obj.insert("would".into(), would.into());
            }
            if !warnings.is_empty() {
                obj.insert("metric_warnings".into(), warnings.to_vec().into());
            }
        }
        backup_host::out::println(&serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        backup_host::out::println_fit(&outcome.text(would.is_some()));
        match would {
            Some(would) if would.is_empty() => {
                backup_host::out::println("dry run: nothing was changed.");
            }
            Some(would) => {
                backup_host::out::println("dry run: nothing was changed. A real run would:");
                for w in &would {
                    backup_host::out::println(&format!("  {w}"));
                }
            }
            None => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_job<O, J>(
    spec: &RunSpec,
    global: &GlobalArgs,
    job: J,
    (cfg, disk_root, view): (Option<&Config>, Option<&Utf8Path>, Option<&OffsiteView>),
    now: DateTime<Utc>,
    (stop, signalled): (Arc<AtomicBool>, Arc<AtomicBool>),
    would: Option<Would>,
    sink: &dyn MetricsSink,
    publish_failure: &dyn Fn(&Error) -> ExitCode,
) -> ExitCode
where
    O: Outcome,
    J: FnOnce(&Context<'_>) -> Result<O>,
{
    let bin = spec.binary;
    let verbose = global.verbose > 0;
    let chosen_rsync = backup_host::setup::rsync_program();
    let ctx = Context {
        cfg,
        global,
        now,
        stop: stop.clone(),
        signalled,
        runner: DuctRunner::new(stop).verbose(verbose),
        steady: DuctRunner::default().verbose(verbose),
        would,
        sink,
        rsync: chosen_rsync.clone().unwrap_or_else(|| "rsync".to_owned()),
        rsync_chosen: chosen_rsync.is_some(),
        // a remote destination under `offsite_check` left the disk as the backup root
        from_offsite: spec.from_offsite && cfg.map(|c| c.backup_root.as_path()) != disk_root,
        disk_root: disk_root.map(Utf8Path::to_owned),
        view,
    };
    let _locks = match (ctx.dry_run(), cfg) {
        (false, Some(cfg)) => match take_locks(spec, cfg, global) {
            Ok(l) => l,
            Err(e) => return publish_failure(&e),
        },
        _ => Vec::new(),
    };
    // a scheduled job (one with metrics) has hooks and heartbeats that need nothing of the
    // cluster: from here on, its start and its end are heard
    let mut outside = spec
        .metrics
        .as_ref()
        .zip(cfg)
        .map(|(m, cfg)| outside::Outside::new(cfg, &m.job, ctx.would.as_ref(), &ctx.signalled));
    let failed = |outside: &mut Option<outside::Outside<'_>>, e: &Error| {
        if let Some(o) = outside {
            for w in o.ended(e.exit().code(), &e.to_string()) {
                backup_host::out::eprintln_fit(&format!("{bin}: warning: {w}"));
            }
            publish_notify_failures(sink, spec, o);
        }
        publish_failure(e)
    };
    if let Some(o) = &mut outside {
        o.start();
    }
    if spec.needs_backup_root {
        if let Err(e) = ctx.cfg().and_then(require_backup_root) {
            return failed(&mut outside, &e);
        }
    }
    if let Some(Err(e)) = outside.as_ref().map(outside::Outside::before) {
        return failed(&mut outside, &e);
    }
    let outcome = match job(&ctx) {
        Ok(o) => o,
        Err(e) => return failed(&mut outside, &e),
    };
    report(spec, &ctx, &outcome, outside.as_mut(), sink)
}

/// After the job: its hooks and notifications, its metrics (the notifications' failures with
/// them), what it did, its exit code.
fn report<O: Outcome>(
    spec: &RunSpec,
    ctx: &Context<'_>,
    outcome: &O,
    outside: Option<&mut outside::Outside<'_>>,
    sink: &dyn MetricsSink,
) -> ExitCode {
    let mut warnings = Vec::new();
    let publish = |group: &MetricGroup, warnings: &mut Vec<String>| {
        if let Err(e) = sink.publish(group) {
            warnings.push(format!("metrics not published: {e}"));
        }
    };
    // the job's metrics first: a hook or an endpoint that hangs must not lose them
    for group in outcome.metrics() {
        publish(&group, &mut warnings);
    }
    if let Some(o) = outside {
        warnings.extend(o.ended(outcome.exit().code(), &outcome.text(ctx.dry_run())));
        if let (Some(m), Some(failures)) = (&spec.metrics, o.failures_metric()) {
            publish(&MetricGroup::new(&m.job, vec![failures]), &mut warnings);
        }
    }
    warnings.dedup();
    // `--quiet`: a job (what publishes metrics or needs root) that succeeded with nothing to
    // say says nothing; otherwise what it held back while it ran comes first
    let job = spec.metrics.is_some() || spec.needs_root;
    let silent = ctx.global.quiet
        && job
        && !ctx.global.json
        && !ctx.dry_run()
        && outcome.exit() == Exit::Success
        && !outcome.needs_attention();
    let held = backup_host::progress::take_held();
    if !silent {
        for line in &held {
            backup_host::out::println_fit(line);
        }
        print_outcome(
            outcome,
            ctx.global.json,
            ctx.dry_run().then(|| ctx.would()),
            &warnings,
        );
    }
    for w in &warnings {
        backup_host::out::eprintln_fit(&format!("{}: warning: {w}", spec.binary));
    }
    backup_host::out::exit(outcome.exit()).into()
}

/// A job only root can do whole, run by another user: refused before anything is read.
///
/// # Errors
/// [`Error::NotRoot`] (exit 77).
fn require_root(spec: &RunSpec) -> Result<()> {
    let uid = rustix::process::geteuid();
    if !spec.needs_root || uid.is_root() {
        return Ok(());
    }
    Err(Error::NotRoot(format!(
        "must run as root: it keeps owners and modes, reads every file and mounts volumes (run \
         it with sudo, or as the shipped systemd unit does); nothing was done (user id {})",
        uid.as_raw()
    )))
}

fn load(spec: &RunSpec, global: &GlobalArgs) -> Result<Option<Config>> {
    if !spec.config_required
        && global.config.as_str() == DEFAULT_CONFIG_PATH
        && !global.config.exists()
    {
        // a CronJob usually has no config file, only flags
        return Ok(None);
    }
    backup_host::setup::load_config(&global.config).map(Some)
}

/// With [`RunSpec::from_offsite`], the config with its backup root moved to the offsite copy:
/// `<offsite.destination>/pve-backup`, which must be a local or mounted folder.
fn offsite_root(
    spec: &RunSpec,
    cfg: Option<Config>,
) -> Result<(Option<Config>, Option<OffsiteView>)> {
    let mut cfg = match cfg {
        Some(c) if spec.from_offsite => c,
        other => return Ok((other, None)),
    };
    let Some(o) = cfg.offsite.as_ref() else {
        return Err(Error::Usage(format!(
            "--from-offsite: {} has no [offsite]: there is no offsite copy to read",
            cfg.file
        )));
    };
    if o.is_remote() && spec.offsite_check {
        return Ok((Some(cfg), None));
    }
    if o.is_remote() {
        let view = remote_view(o)?;
        cfg.backup_root = view.root.clone();
        return Ok((Some(cfg), Some(view)));
    }
    let root = Utf8PathBuf::from(o.destination.trim_end_matches('/')).join("pve-backup");
    if !root.join("pvc-data").is_dir() {
        return Err(Error::Usage(format!(
            "--from-offsite: {root} holds no pvc-data/: not an offsite copy (is the share \
             mounted?)"
        )));
    }
    cfg.backup_root = root;
    Ok((Some(cfg), None))
}

/// Pulls the view of the remote offsite copy of `o` ([`OffsiteView`]).
fn remote_view(o: &backup_core::OffsiteConfig) -> Result<OffsiteView> {
    let dir = tempfile::Builder::new()
        .prefix("homelab-backup-offsite-view-")
        .tempdir()
        .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned())
        .map_err(|_| Error::Refused("the temp folder is not UTF-8 (TMPDIR)".to_owned()))?;
    let remote = backup_rsync::dest_folder(&o.destination, "pve-backup");
    let ssh = backup_rsync::SshOptions::for_offsite(o);
    let rsync = backup_host::setup::rsync_program().unwrap_or_else(|| "rsync".to_owned());
    let inv = backup_rsync::offsite_view(&rsync, ssh.as_ref(), &remote, &root)
        .map_err(|e| Error::Core(e.into()))?;
    let out = DuctRunner::default().run(&inv)?;
    if !out.success() {
        return Err(Error::Refused(format!(
            "--from-offsite: the offsite copy {remote} could not be read over ssh (rsync exit \
             {}): {}",
            out.status.map_or(-1, |c| c),
            backup_core::stderr_tail(&out.stderr, 3)
        )));
    }
    if !root.join("pvc-data").is_dir() {
        return Err(Error::Usage(format!(
            "--from-offsite: {remote} holds no pvc-data/: not an offsite copy"
        )));
    }
    Ok(OffsiteView {
        _dir: dir,
        root,
        remote: remote.trim_end_matches('/').to_owned(),
        ssh,
    })
}

fn sinks(spec: &RunSpec, cfg: Option<&Config>) -> Sinks {
    let mut sinks: Vec<Box<dyn MetricsSink>> = Vec::new();
    let textfile = spec
        .textfile_dir
        .clone()
        .or_else(|| cfg.and_then(|c| c.metrics.textfile_dir.clone()));
    if let Some(dir) = textfile {
        sinks.push(Box::new(TextfileSink::new(&dir)));
    }
    let push = spec
        .pushgateway
        .clone()
        .or_else(|| cfg.and_then(|c| c.metrics.pushgateway.clone()));
    if let Some(url) = push {
        sinks.push(Box::new(PushgatewaySink::new(&url)));
    }
    Sinks(sinks)
}

fn take_locks(spec: &RunSpec, cfg: &Config, global: &GlobalArgs) -> Result<Vec<RunLock>> {
    let wait = std::time::Duration::from_secs(global.wait);
    let mut paths: Vec<Utf8PathBuf> = Vec::new();
    if matches!(spec.locks, Locks::Snapshots | Locks::Daily) {
        paths.push(cfg.snapshots.lock_file.clone());
    }
    if spec.locks == Locks::Daily {
        require_backup_root(cfg)?;
        paths.push(backup_core::BackupRoot::new(&cfg.backup_root).lock_file());
    }
    if let (Locks::Offsite, Some(o)) = (spec.locks, cfg.offsite.as_ref()) {
        paths.push(Utf8PathBuf::from(format!("{}.lock.offsite", o.change_log)));
    }
    paths
        .iter()
        .map(|p| RunLock::acquire_within(p, wait))
        .collect()
}

/// Fails unless the backup root exists: an unmounted backup disk leaves an empty folder (or none)
/// on the root file system, and a backup written there fills `/` and is lost at the next mount.
///
/// # Errors
/// [`Refusal::BackupRootMissing`] naming the path and the file.
pub fn require_backup_root(cfg: &Config) -> Result<()> {
    if cfg.backup_root.is_dir() {
        Ok(())
    } else {
        Err(Error::Core(
            Refusal::BackupRootMissing {
                path: cfg.backup_root.clone(),
                file: cfg.file.clone(),
            }
            .into(),
        ))
    }
}

/// `backup_notify_failures{kind}` of a run that failed, when a notification failed too.
fn publish_notify_failures(sink: &dyn MetricsSink, spec: &RunSpec, o: &outside::Outside<'_>) {
    if let (Some(m), Some(failures)) = (&spec.metrics, o.failures_metric()) {
        let _ = sink.publish(&MetricGroup::new(&m.job, vec![failures]));
    }
}

fn fail(bin: &str, global: &GlobalArgs, e: &Error) -> ExitCode {
    let exit = e.exit();
    // what `--quiet` held back while the job ran: the run failed, so it is wanted
    for line in backup_host::progress::take_held() {
        backup_host::out::println_fit(&line);
    }
    if global.json {
        backup_host::out::println(
            &serde_json::json!({ "error": e.to_string(), "exit": exit.code() }).to_string(),
        );
    }
    backup_host::out::eprintln_fit(&format!("{bin}: error: {e}"));
    exit.into()
}
