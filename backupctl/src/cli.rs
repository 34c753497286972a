//! The command line of `backupctl`, kept here so the binary stays wiring.

use std::process::ExitCode;

use backup_core::metric_names::JobMetrics;
use backup_core::IsoWeek;
use camino::Utf8PathBuf;

use backup_host::error::Error;
use backup_run::{run, GlobalArgs, Locks, RunSpec, SinkArgs};

use crate::PvcRef;

fn parse_week(s: &str) -> Result<IsoWeek, String> {
    s.parse::<IsoWeek>().map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<backup_dumps::DumpKind, String> {
    s.parse()
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every backup there is: per PVC its snapshots, weekly versions (complete or not, files,
    /// bytes, bytes only that version holds) and SQLite copies; pfSense and PVE config weeks;
    /// the dumps in `[dumps] folders`.
    List {
        /// Also each encrypted tier repository's snapshots, per PVC (asks restic, which may
        /// be remote).
        #[arg(long)]
        tier: bool,
    },
    /// The protection matrix from live state, gaps first: per PVC the age of its newest snapshot
    /// and complete version, its SQLite copies, the last offsite sync, excluded namespaces,
    /// unresolved volumes, pending full passes. Exit 1 when there is a gap.
    Status {
        /// A PVC without a snapshot or complete version this recent is a gap [default:
        /// `[status] stale-hours`, else 36].
        #[arg(long, value_name = "HOURS")]
        stale_hours: Option<u32>,
    },
    /// Re-read backups against their records (content digest, size, mode, owner, times,
    /// xattrs, hardlinks),
    /// integrity_check every SQLite copy, check pfSense copies and every dump's gzip stream.
    /// Every difference is named by path; exit 1 on any.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyFlags),
    /// Print the Prometheus alerting rules for every job (the app jobs from `[[alerts.job]]`,
    /// else the architecture's six); `deploy/prometheus/backup-alerts.yaml` is this output with no
    /// config.
    Alerts,
    /// Print the systemd units (services and timers, hardened), or write them with --write.
    /// `deploy/systemd/` is this output with no config and --bindir /usr/bin.
    Units {
        /// Write each unit into this folder (e.g. /etc/systemd/system) instead of printing.
        #[arg(long, value_name = "DIR")]
        write: Option<Utf8PathBuf>,
        /// Where the binaries are installed.
        #[arg(long, value_name = "DIR", default_value = "/usr/bin")]
        bindir: String,
        /// Write, for each service, a drop-in `DIR/<service>.d/50-homelab-backup-paths.conf`
        /// holding the `ReadWritePaths` the config needs (the package's systemd generator runs
        /// this at every daemon-reload, so the shipped units follow the config).
        #[arg(long, value_name = "DIR", conflicts_with = "write")]
        dropins: Option<Utf8PathBuf>,
    },
    /// The configuration: `check` validates it and prints the effective values (defaults
    /// filled in); `example` prints the commented default configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The heartbeats and messages of `[notify]`: `test` sends one of each kind configured.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Bring a backup back, checked against its record.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Every complete version holding a path that matches PATTERN (from the per-file records,
    /// no copy is walked): with a `/` the pattern matches the whole path inside the volume
    /// (`db/*.sqlite3`), without one the file name (`*.sqlite3`). `*` and `?` never match a
    /// `/`; `**` matches across folders (`attachments/**`, `**/config.php`). Exit 66 when
    /// nothing matches.
    #[command(after_help = FIND_EXAMPLES)]
    Find {
        /// The pattern.
        pattern: String,
        /// Only this PVC: NAMESPACE/PVC, or the volume (LV) that holds it.
        #[arg(long, value_name = "NAMESPACE/PVC")]
        pvc: Option<PvcRef>,
        /// Only this ISO week (YYYY-WW).
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
    },
    /// What changed from one week's versions to another's, per PVC: added (+), removed (-),
    /// changed content (M) or metadata only (m: mode, owner, time, xattrs, link target).
    ///
    /// A PVC with a complete version in only one of the two weeks is named as not compared.
    #[command(after_help = DIFF_EXAMPLES)]
    Diff {
        /// Only this PVC: NAMESPACE/PVC, the volume (LV) that holds it, or a claim name that
        /// only one PVC has.
        #[arg(long, value_name = "NAMESPACE/PVC")]
        pvc: Option<PvcRef>,
        /// The older week [default: the complete week before --to].
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        from: Option<IsoWeek>,
        /// The newer week [default: the newest complete week].
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        to: Option<IsoWeek>,
        /// The two weeks as positionals (`diff 2026-48 2026-49`), the same as --from and --to.
        #[arg(value_parser = parse_week, value_name = "WEEK", conflicts_with_all = ["from", "to"])]
        weeks: Vec<IsoWeek>,
    },
    /// A folder of a version as it was: each entry's type and mode, owner, size, time, name.
    #[command(after_help = LS_EXAMPLES)]
    Ls {
        /// The PVC: NAMESPACE/PVC, the volume (LV) that holds it, or a claim name that only one
        /// PVC has.
        #[arg(long, value_name = "NAMESPACE/PVC")]
        pvc: Option<PvcRef>,
        /// The ISO week [default: the PVC's newest complete version].
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
        /// The folder inside the volume [default: its root]. The older form `ls WEEK PVC
        /// [FOLDER]` is taken too: a leading week and PVC stand for --week and --pvc.
        #[arg(value_name = "FOLDER")]
        args: Vec<String>,
    },
    /// Restore a sample of files (seeded from --now: replayable) and every SQLite copy of the
    /// newest versions into a scratch folder, check them, and project each layer's RTO; the
    /// same sample from each encrypted tier repository too (restic, without a lock).
    #[command(after_help = DRILL_EXAMPLES)]
    Drill(DrillFlags),
    /// Print the shell completion script of backupctl (the Debian package installs the
    /// scripts of every binary for bash, zsh and fish).
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  backupctl completions bash > /etc/bash_completion.d/backupctl
  backupctl completions zsh > ~/.zfunc/_backupctl
  backupctl completions fish > ~/.config/fish/completions/backupctl.fish";

const VERIFY_EXAMPLES: &str = "\
Examples:
  backupctl verify                   every complete version, every file read
  backupctl verify --sample 10       content of 10 % of the files, metadata of all
  backupctl verify --pvc vaultwarden/vaultwarden-data --week 2026-49
  backupctl verify --offsite         the NAS copy against its records";

const DRILL_EXAMPLES: &str = "\
Examples:
  backupctl drill                    1 % of each newest version, SQLite, dumps
  backupctl drill --dumps-only       every dump into a throwaway server
  backupctl drill --site             the site disaster, from the offsite copy";

const FIND_EXAMPLES: &str = "\
Examples:
  backupctl find '*.sqlite3'         every database, in every week
  backupctl find 'attachments/**' --pvc vaultwarden/vaultwarden-data
  backupctl find '**/config.php' --week 2026-49";

const RESTORE_PVC_EXAMPLES: &str = "\
Examples:
  backupctl restore pvc --pvc vaultwarden/vaultwarden-data --to /root/vw
  backupctl restore pvc --pvc vaultwarden-data --week 2026-48 \\
      --path attachments/3f2a --to /root/vw-attachments
  backupctl restore pvc --pvc vaultwarden/vaultwarden-data --into-volume
  backupctl restore pvc --pvc vaultwarden-data --from-tier --to /root/vw";

const LS_EXAMPLES: &str = "\
Examples:
  backupctl ls --pvc vaultwarden/vaultwarden-data
  backupctl ls --pvc vaultwarden/vaultwarden-data --week 2026-49 attachments
  backupctl ls vaultwarden-data attachments";

const DIFF_EXAMPLES: &str = "\
Examples:
  backupctl diff --pvc vaultwarden/vaultwarden-data     (the two newest complete weeks)
  backupctl diff --from 2026-48 --to 2026-49
  backupctl diff 2026-48 2026-49 --pvc vaultwarden-data";

/// `ls`'s operands: `[WEEK] [PVC] [FOLDER]`, a week and a PVC taken only where --week and
/// --pvc are not given.
///
/// # Errors
/// [`Error::Usage`]: no PVC, a week or PVC that does not parse, more than one folder.
fn ls_operands(
    mut week: Option<IsoWeek>,
    pvc: Option<PvcRef>,
    mut args: &[String],
) -> Result<(Option<IsoWeek>, PvcRef, Option<&str>), Error> {
    // `ls WEEK PVC [FOLDER]`, the older form: only without --pvc (with it, a folder named
    // like a date is a folder)
    if let (None, None, Some((first, rest))) = (week, &pvc, args.split_first()) {
        // what starts like a week is one (a typo in it is said as such, not taken as a PVC)
        let b = first.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
            week = Some(parse_week(first).map_err(|e| {
                Error::Usage(format!(
                    "{e} (a folder named like that: `ls --pvc NAMESPACE/PVC {first}`)"
                ))
            })?);
            args = rest;
        }
    }
    let pvc = match pvc {
        Some(p) => p,
        None => {
            let (first, rest) = args.split_first().ok_or_else(|| {
                Error::Usage(
                    "which PVC? give --pvc NAMESPACE/PVC (`backupctl list` shows them)".into(),
                )
            })?;
            args = rest;
            first.parse().map_err(Error::Usage)?
        }
    };
    match args {
        [] => Ok((week, pvc, None)),
        [folder] => Ok((week, pvc, Some(folder.trim_start_matches("./")))),
        more => Err(Error::Usage(format!(
            "ls lists one folder, got {}: `backupctl ls --pvc NAMESPACE/PVC [--week YYYY-WW] \
             [FOLDER]`",
            more.join(" ")
        ))),
    }
}

/// `backupctl verify` flags.
#[derive(Debug, clap::Args)]
pub struct VerifyFlags {
    /// Only this ISO week (YYYY-WW).
    #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
    pub week: Option<IsoWeek>,
    /// Only this PVC: NAMESPACE/PVC, or the volume (LV) that holds it.
    #[arg(long, value_name = "NAMESPACE/PVC")]
    pub pvc: Option<PvcRef>,
    /// Read the content of only this percent of the files (chosen from --now; metadata is
    /// checked for all).
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<f64>,
    /// Only versions completed in the last N days.
    #[arg(long, value_name = "N")]
    pub since_days: Option<u32>,
    /// Also check each encrypted tier repository ([[offsite.repository]]) with restic:
    /// its structure, and --sample percent of its packs read back (10 without --sample).
    #[arg(long)]
    pub tier: bool,
    /// Read the offsite copy back instead (the monthly timer): a local or mounted
    /// destination against the records that travelled with it; over ssh, `rsync -n -c`
    /// has the NAS checksum its own bytes against each version on the backup disk (nothing
    /// is copied back). Every difference is named; metrics under job
    /// backupctl-verify-offsite.
    #[arg(long, conflicts_with = "tier")]
    pub offsite: bool,
}

/// `backupctl drill` flags.
#[derive(Debug, clap::Args)]
pub struct DrillFlags {
    /// Percent of each version's files to restore.
    #[arg(long, default_value_t = 1.0, value_name = "PERCENT")]
    pub sample: f64,
    /// Restore here and keep it (default: a temp folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<Utf8PathBuf>,
    /// Only the backup disk: do not restore the sample from the encrypted tier's
    /// repositories too.
    #[arg(long)]
    pub no_tier: bool,
    /// Do not load the dumps into throwaway servers.
    #[arg(long, conflicts_with = "dumps_only")]
    pub no_dumps: bool,
    /// Only the dumps: the newest of every name loaded into a throwaway server of its kind
    /// (PostgreSQL, MariaDB, Redis, etcd on loopback or a socket in a temp folder), checked
    /// and removed; no backup disk is read (the weekly CronJob beside the dumps runs this).
    #[arg(long)]
    pub dumps_only: bool,
    /// The dump folders to drill instead of `[dumps] folders` (repeatable).
    #[arg(long = "dump-folder", value_name = "DIR")]
    pub dump_folders: Vec<Utf8PathBuf>,
    /// The site disaster rehearsed: everything from the offsite copy (implies
    /// --from-offsite; the backup disk is never opened): every PVC's newest version (the
    /// --sample of its files), every SQLite copy, the newest dump of every name from the
    /// trees' offsite copy into a throwaway server, pfSense, the PVE config; each layer
    /// projected to the whole data set, the total against the 4-hour target, what is
    /// missing named. Exit 1 when anything is missing or the projection is over.
    #[arg(long, conflicts_with_all = ["dumps_only", "no_dumps", "dump_folders"])]
    pub site: bool,
}

/// `backupctl config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (exit 2 naming the key at fault) and print every effective value.
    Check,
    /// Print the commented example configuration (deploy/config.example.toml).
    Example,
}

/// `backupctl notify`.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send one of each kind configured in `[notify]` (a Healthchecks start and success ping
    /// of the check `backupctl-notify-test`, Uptime Kuma `up`, a test message to ntfy, Gotify
    /// and the webhook), and say which were delivered. Exit 1 when one was not.
    ///
    /// Example: `backupctl notify test --job daily-backup` (that job's own settings: its
    /// Healthchecks check gets a log event, which changes no state, and Uptime Kuma nothing).
    Test {
        /// Send as this job would (its `[notify.job.<job>]` settings).
        #[arg(long, value_name = "JOB", default_value = "backupctl-notify-test")]
        job: String,
    },
}

/// What to restore.
#[derive(Debug, clap::Subcommand)]
pub enum RestoreCommand {
    /// A PVC's weekly version: into a folder (--to), or into its live volume (--into-volume:
    /// workloads scaled to 0, a safety snapshot, the volume mounted, restored with --delete,
    /// checked, unmounted, workloads scaled back; any failure undoes the scale-down).
    #[command(after_help = RESTORE_PVC_EXAMPLES)]
    Pvc {
        /// The PVC: NAMESPACE/PVC as `backupctl list` prints it, or the volume (LV) that
        /// holds it.
        #[arg(long, value_name = "NAMESPACE/PVC")]
        pvc: String,
        /// Deprecated (goes in the next release): the namespace of a bare --pvc name.
        #[arg(long, hide_short_help = true, value_name = "NS")]
        namespace: Option<String>,
        /// ISO week (default: the newest complete version).
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
        /// Restore into this folder (created when missing; must be empty without --force).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "into_volume",
            conflicts_with = "into_volume"
        )]
        to: Option<Utf8PathBuf>,
        /// Restore into the PVC's live volume.
        #[arg(long)]
        into_volume: bool,
        /// Write into a non-empty folder; what it holds beyond the version is deleted.
        #[arg(long)]
        force: bool,
        /// Restore only this file or folder (a path inside the volume, as `backupctl find` or
        /// `ls` print it; repeatable). With --force, nothing else in DIR is deleted.
        #[arg(long = "path", value_name = "PATH", conflicts_with = "into_volume")]
        paths: Vec<String>,
        /// From the encrypted tier instead of the backup disk: the PVC's newest snapshot (or
        /// the one of --week) in the repository named (the first [[offsite.repository]]
        /// without a name), restored by restic with --verify; checked against the week's record
        /// too when the backup disk still has it.
        #[arg(
            long,
            value_name = "REPOSITORY",
            num_args = 0..=1,
            default_missing_value = "",
            conflicts_with_all = ["into_volume", "paths", "force"]
        )]
        from_tier: Option<String>,
    },
    /// SQLite copies of a PVC's week (all, or the one at --path inside the volume).
    Sqlite {
        /// The PVC: NAMESPACE/PVC as `backupctl list` prints it, or the volume (LV) that
        /// holds it.
        #[arg(long, value_name = "NAMESPACE/PVC")]
        pvc: String,
        /// Deprecated (goes in the next release): the namespace of a bare --pvc name.
        #[arg(long, hide_short_help = true, value_name = "NS")]
        namespace: Option<String>,
        /// ISO week (default: the newest complete version).
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
        /// The database's path inside the volume.
        #[arg(long)]
        path: Option<String>,
        /// Restore into this folder.
        #[arg(long, value_name = "DIR")]
        to: Utf8PathBuf,
        /// Write into a non-empty folder.
        #[arg(long)]
        force: bool,
    },
    /// A week's pfSense config.xml and full tar.
    Pfsense {
        /// ISO week (default: the newest).
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
        /// Restore into this folder.
        #[arg(long, value_name = "DIR")]
        to: Utf8PathBuf,
        /// Write into a non-empty folder.
        #[arg(long)]
        force: bool,
    },
    /// A database dump of the CronJobs (`backup-dump`), the newest of NAME unless --at:
    /// checked whole first (a dump cut short or too small is refused, the next older one
    /// named), loaded by the tool of its kind (PostgreSQL: psql; MySQL/MariaDB: mariadb;
    /// Redis: the RDB placed in --data-dir for a stopped server; etcd: snapshot restore into a
    /// new --data-dir; Vault: vault operator raft snapshot restore), then what it holds is
    /// counted and printed (databases, tables, rows; keys). --scratch loads it into a
    /// throwaway server instead, to look.
    Dump(DumpFlags),
    /// A week's copy of the PVE host config.
    PveConfig {
        /// ISO week (default: the newest complete).
        #[arg(long, value_parser = parse_week, value_name = "YYYY-WW")]
        week: Option<IsoWeek>,
        /// Restore into this folder.
        #[arg(long, value_name = "DIR")]
        to: Utf8PathBuf,
        /// Write into a non-empty folder.
        #[arg(long)]
        force: bool,
    },
}

/// `restore dump`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpFlags {
    /// The dump's name, as `backupctl list` shows it (`postgresql`).
    pub name: String,
    /// That dump instead of the newest: its stamp (`20260220-000000`) or a prefix of it
    /// (`20260220`: the newest of that day).
    #[arg(long, value_name = "STAMP")]
    pub at: Option<String>,
    /// Its kind, when neither its name, `[dumps] kinds` nor its content says it.
    #[arg(long, value_parser = parse_kind, value_name = "KIND")]
    pub kind: Option<backup_dumps::DumpKind>,
    /// Look in this folder instead of `[dumps] folders` (repeatable).
    #[arg(long = "dump-folder", value_name = "DIR")]
    pub dump_folders: Vec<Utf8PathBuf>,
    /// Load it into a throwaway server in a temp folder, print what it holds, remove it.
    #[arg(long, conflicts_with_all = ["host", "port", "user", "defaults_extra_file", "data_dir", "database"])]
    pub scratch: bool,
    /// The server: a host name, or a socket folder (PostgreSQL) or socket path (MySQL);
    /// Vault's address (https://vault:8200).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The server's port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// The user to connect as (PostgreSQL: default postgres).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// KEY=VALUE lines for the tool (PGPASSWORD, MYSQL_PWD, VAULT_ADDR, VAULT_TOKEN),
    /// never on argv or in output (repeatable; must be owned by root, not writable by
    /// others).
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<Utf8PathBuf>,
    /// The MySQL client's option file (user, password, host).
    #[arg(long, value_name = "PATH")]
    pub defaults_extra_file: Option<Utf8PathBuf>,
    /// Redis: the stopped server's folder (dump.rdb goes there, never over one); etcd: the
    /// new data dir.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<Utf8PathBuf>,
    /// Only this database of a whole-cluster dump (PostgreSQL, MySQL); refused when the
    /// server has one of that name already.
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
}

impl DumpFlags {
    /// What `restore dump` is asked.
    fn args(&self) -> crate::DumpRestoreArgs {
        crate::DumpRestoreArgs {
            name: self.name.clone(),
            at: self.at.clone(),
            kind: self.kind,
            folders: self.dump_folders.clone(),
            env_files: self.env_files.clone(),
            scratch: self.scratch,
            target: backup_dumps::Target {
                host: self.host.clone(),
                port: self.port,
                user: self.user.clone(),
                env: Vec::new(),
                defaults_file: self.defaults_extra_file.clone(),
                data_dir: self.data_dir.clone(),
                database: self.database.clone(),
            },
        }
    }
}

/// The spec of a command that only prints (alerts, units, the example config): a config file
/// is optional and no backup disk is needed.
fn generator(spec: RunSpec) -> RunSpec {
    RunSpec {
        config_required: false,
        needs_backup_root: false,
        ..spec
    }
}

/// `diff`'s weeks: `--from`/`--to`, or the two positionals that stand for them.
///
/// # Errors
/// [`Error::Usage`] for one positional week or more than two.
fn diff_operands(
    from: Option<IsoWeek>,
    to: Option<IsoWeek>,
    weeks: &[IsoWeek],
) -> Result<(Option<IsoWeek>, Option<IsoWeek>), Error> {
    match weeks {
        [] => Ok((from, to)),
        [f, t] => Ok((Some(*f), Some(*t))),
        _ => Err(Error::Usage(
            "diff takes two weeks (`diff 2026-48 2026-49`), or --from and --to".into(),
        )),
    }
}

/// `backupctl completions SHELL`: the script for the whole command line.
fn completions(shell: clap_complete::Shell, whole: fn() -> clap::Command) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut whole(), "backupctl", &mut script);
    backup_host::out::print(&String::from_utf8_lossy(&script));
    backup_host::out::exit(backup_host::exit::Exit::Success).into()
}

/// Runs one `backupctl` command through the run wrapper.
pub fn main(
    command: &Command,
    global: &GlobalArgs,
    sinks: &SinkArgs,
    from_offsite: bool,
    whole: fn() -> clap::Command,
) -> ExitCode {
    let spec = RunSpec {
        needs_backup_root: true,
        from_offsite,
        ..RunSpec::new("backupctl")
    }
    .with_sinks(sinks);
    match command {
        Command::Completions { shell } => completions(*shell, whole),
        Command::List { tier } => run(&spec, global, |ctx| crate::list(ctx, *tier)),
        Command::Units {
            write,
            bindir,
            dropins,
        } => {
            let spec = generator(spec);
            run(&spec, global, |ctx| match dropins {
                Some(dir) => crate::write_dropins(ctx.cfg_opt(), dir, ctx.dry_run()),
                None => crate::write_units(ctx.cfg_opt(), bindir, write.as_deref(), ctx.dry_run()),
            })
        }
        Command::Config(ConfigCommand::Example) => {
            let spec = generator(spec);
            run(&spec, global, |_| Ok(crate::ConfigText::example()))
        }
        Command::Config(ConfigCommand::Check) => {
            let spec = RunSpec {
                needs_backup_root: false,
                ..spec
            };
            run(&spec, global, |ctx| crate::ConfigText::check(ctx.cfg()?))
        }
        Command::Notify(NotifyCommand::Test { job }) => {
            let spec = RunSpec {
                needs_backup_root: false,
                ..spec
            };
            run(&spec, global, |ctx| {
                Ok(crate::notify_test(ctx.cfg()?, job, ctx.dry_run()))
            })
        }
        Command::Alerts => {
            let spec = generator(spec);
            run(&spec, global, |ctx| Ok(crate::alerts(ctx.cfg_opt())))
        }
        Command::Status { stale_hours } => {
            run(&spec, global, |ctx| crate::status(ctx, *stale_hours))
        }
        Command::Verify(v) => verify(v, spec, global),
        Command::Drill(d) => drill(d, spec, global),
        Command::Restore(r) => restore(r, spec, global),
        Command::Find { pattern, pvc, week } => run(&spec, global, |ctx| {
            crate::find(ctx, pattern, pvc.as_ref(), *week)
        }),
        Command::Diff {
            pvc,
            from,
            to,
            weeks,
        } => run(&spec, global, |ctx| {
            let (from, to) = diff_operands(*from, *to, weeks)?;
            crate::diff(ctx, from, to, pvc.as_ref())
        }),
        Command::Ls { pvc, week, args } => run(&spec, global, |ctx| {
            let (week, pvc, folder) = ls_operands(*week, pvc.clone(), args)?;
            crate::ls(ctx, week, &pvc, folder)
        }),
    }
}

fn verify(v: &VerifyFlags, spec: RunSpec, global: &GlobalArgs) -> ExitCode {
    let spec = RunSpec {
        metrics: Some(if v.offsite {
            JobMetrics::verify_offsite()
        } else {
            JobMetrics::verify()
        }),
        from_offsite: spec.from_offsite || v.offsite,
        offsite_check: v.offsite,
        // every file read as it was recorded: another user's would read as damage
        needs_root: true,
        ..spec
    };
    let args = crate::VerifyArgs {
        week: v.week,
        pvc: v.pvc.clone(),
        sample: v.sample,
        since_days: v.since_days,
        tier: v.tier,
    };
    if v.offsite {
        run(&spec, global, |ctx| crate::verify_offsite(ctx, &args))
    } else {
        run(&spec, global, |ctx| crate::verify(ctx, &args))
    }
}

fn drill(d: &DrillFlags, spec: RunSpec, global: &GlobalArgs) -> ExitCode {
    let spec = RunSpec {
        metrics: Some(if d.dumps_only {
            JobMetrics::dump_drill()
        } else {
            JobMetrics::drill()
        }),
        // the dump drill's CronJob has no backup disk, and needs no config with --dump-folder
        needs_backup_root: !d.dumps_only,
        config_required: !d.dumps_only || d.dump_folders.is_empty(),
        from_offsite: spec.from_offsite || d.site,
        // restored files keep their owners; the dump drill (a CronJob as another user) loads
        // dumps only
        needs_root: !d.dumps_only,
        ..spec
    };
    let args = crate::DrillArgs {
        sample: d.sample,
        scratch: d.scratch.clone(),
        no_tier: d.no_tier,
        dumps: match (d.no_dumps, d.dumps_only) {
            (true, _) => crate::DumpsInDrill::No,
            (_, true) => crate::DumpsInDrill::Only,
            _ => crate::DumpsInDrill::Too,
        },
        dump_folders: d.dump_folders.clone(),
        site: d.site,
    };
    if d.site {
        run(&spec, global, |ctx| crate::drill_site(ctx, &args))
    } else {
        run(&spec, global, |ctx| crate::drill(ctx, &args))
    }
}

fn restore(r: &RestoreCommand, spec: RunSpec, global: &GlobalArgs) -> ExitCode {
    // a restore keeps owners and modes
    let spec = RunSpec {
        needs_root: true,
        ..spec
    };
    match r {
        RestoreCommand::Pvc {
            namespace,
            pvc,
            week,
            to,
            into_volume,
            force,
            paths,
            from_tier,
        } => {
            let args = || -> backup_host::error::Result<crate::PvcRestoreArgs> {
                Ok(crate::PvcRestoreArgs {
                    from_tier: from_tier.clone(),
                    paths: paths.clone(),
                    pvc: PvcRef::with_namespace(pvc, namespace.as_deref())?,
                    week: *week,
                    to: to.clone(),
                    force: *force,
                    into_volume: *into_volume,
                })
            };
            if *into_volume {
                // no daily-backup or snapshot run mounts or prunes beside a restore
                let spec = RunSpec {
                    locks: Locks::Snapshots,
                    ..spec
                };
                run(&spec, global, |ctx| {
                    crate::restore_into_volume(ctx, &args()?)
                })
            } else {
                run(&spec, global, |ctx| crate::restore_pvc(ctx, &args()?))
            }
        }
        RestoreCommand::Sqlite {
            namespace,
            pvc,
            week,
            path,
            to,
            force,
        } => run(&spec, global, |ctx| {
            let pvc = PvcRef::with_namespace(pvc, namespace.as_deref())?;
            crate::restore_sqlite(ctx, &pvc, *week, path.as_deref(), to, *force)
        }),
        RestoreCommand::Pfsense { week, to, force } => run(&spec, global, |ctx| {
            crate::restore_pfsense(ctx, *week, to, *force)
        }),
        RestoreCommand::Dump(flags) => {
            let args = flags.args();
            // a dump folder is on NFS, not on the backup disk
            let spec = RunSpec {
                needs_backup_root: false,
                config_required: flags.dump_folders.is_empty(),
                // a dump is loaded into a database server: any user the server accepts
                needs_root: false,
                ..spec
            };
            run(&spec, global, |ctx| crate::restore_dump(ctx, &args))
        }
        RestoreCommand::PveConfig { week, to, force } => run(&spec, global, |ctx| {
            crate::restore_pve_config(ctx, *week, to, *force)
        }),
    }
}
