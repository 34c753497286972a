//! `backup-dump`: what the application CronJobs run instead of `pg_dumpall | gzip > file` and
//! `find -mtime +14 -delete`.
//!
//! The command runs without a shell. Its standard output is streamed through gzip into a temp
//! file in the destination (nothing is held in memory); or, when an argument is the literal
//! `{out}`, the tool writes its own file there (`etcdctl snapshot save {out}`), which is then
//! compressed (or, when it is gzip already, read through to its end and kept as it is). The dump
//! counts only when the command exited 0, wrote at least `min-bytes`, and the stored gzip stream
//! reads back to the same length; then it is fsynced and renamed to
//! `<name>-<YYYYMMDD-HHMMSS>.<ext>.gz`. On any failure the temp file goes and nothing in the
//! destination changes. Rotation runs only after a success and never goes below `min-keep`, so a
//! fortnight of failures never deletes the last good dump.
//!
//! Secrets: `--env-file` (KEY=VALUE lines) sets the command's environment (`PGPASSWORD`,
//! `VAULT_TOKEN`, `REDISCLI_AUTH`); values never reach argv, the output or a log line.

use std::io::{Read, Seek, Write};
use std::time::Instant;

use backup_core::metric_names::{
    JobMetrics, BACKUP_DUMP_BYTES, BACKUP_DUMP_COMPRESSED_BYTES, BACKUP_DUMP_DURATION,
};
use backup_core::{
    dated_file_name_nth, plan_dated_file_rotation, removals, DumpPolicy, Invocation, MetricGroup,
    Runner,
};
use camino::{Utf8Path, Utf8PathBuf};
use chrono::{DateTime, Utc};
use serde::Serialize;

use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_run::Outcome;

/// The argument a tool that writes its own file gets in place of a path.
pub const OUT_PLACEHOLDER: &str = "{out}";

/// The flags of `backup-dump`.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    /// Name of the dump: file prefix and metric job <NAME>-backup (letters, digits, `.`, `_`, `-`).
    #[arg(long)]
    pub name: String,
    /// Folder the dump files go into. It must exist: an NFS volume that did not mount must not be
    /// replaced by a folder in the container.
    #[arg(long, value_name = "DIR")]
    pub dest: Utf8PathBuf,
    /// Remove this name's dumps older than this many days (after a success only) [default:
    /// `[dumps] keep-days`, else 14]...
    #[arg(long, value_name = "N")]
    pub keep_days: Option<u32>,
    /// ...but always keep the newest this many [default: `[dumps] min-keep`, else 3].
    #[arg(long, value_name = "N")]
    pub min_keep: Option<u32>,
    /// Output smaller than this many bytes (before compression) is a failed dump [default:
    /// `[dumps] min-bytes`, else 1].
    #[arg(long, value_name = "N")]
    pub min_bytes: Option<u64>,
    /// File extension before `.gz`: the file is <NAME>-<YYYYMMDD-HHMMSS>.<EXT>.gz.
    #[arg(long, default_value = "dump", value_name = "EXT")]
    pub ext: String,
    /// KEY=VALUE lines added to the command's environment (secrets: PGPASSWORD, VAULT_TOKEN,
    /// REDISCLI_AUTH). Blank lines and lines starting with # are skipped; values may be quoted.
    /// Repeatable.
    #[arg(long, value_name = "PATH")]
    pub env_file: Vec<Utf8PathBuf>,
    /// The dump command and its arguments, after `--`; never run through a shell. An argument
    /// `{out}` is replaced by a path the tool writes its file to.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// One dump's inputs.
#[derive(Debug, Clone)]
pub struct DumpJob {
    /// File prefix and metric job `<name>-backup`.
    pub name: String,
    /// Destination folder.
    pub dest: Utf8PathBuf,
    /// Rotation.
    pub policy: DumpPolicy,
    /// Smallest acceptable output, before compression.
    pub min_bytes: u64,
    /// Extension before `.gz`.
    pub ext: String,
    /// Environment for the command (values are secrets).
    pub env: Vec<(String, String)>,
    /// The command.
    pub command: Vec<String>,
}

fn plain_name(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && !value.starts_with(['.', '-'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{what} `{value}`: expected letters, digits, `.`, `_` and `-`, not starting with `.` or `-`"
        )))
    }
}

impl DumpArgs {
    /// The job these flags describe; the config's `[dumps]` fills what they leave out.
    ///
    /// # Errors
    /// A bad name or extension, a policy that keeps nothing, an unreadable or malformed env file.
    pub fn job(&self, cfg: Option<&backup_core::Config>) -> Result<DumpJob> {
        plain_name("--name", &self.name)?;
        plain_name("--ext", &self.ext)?;
        let defaults = cfg.map(|c| c.dumps.clone()).unwrap_or_default();
        let policy = DumpPolicy {
            keep_days: self.keep_days.unwrap_or(defaults.policy.keep_days),
            min_keep: self.min_keep.unwrap_or(defaults.policy.min_keep),
        };
        if policy.min_keep == 0 {
            return Err(Error::Usage(
                "--min-keep 0 would let rotation remove every dump; at least 1".to_owned(),
            ));
        }
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(backup_host::env_file::read_env_file(f)?);
        }
        Ok(DumpJob {
            name: self.name.clone(),
            dest: self.dest.clone(),
            policy,
            min_bytes: self.min_bytes.unwrap_or(defaults.min_bytes),
            ext: self.ext.clone(),
            env,
            command: self.command.clone(),
        })
    }
}

/// What a dump run did.
#[derive(Debug, Clone, Serialize)]
pub struct DumpReport {
    /// The dump's name.
    pub name: String,
    /// The file written (or that a dry run would write).
    pub file: Utf8PathBuf,
    /// The command line (environment values hidden).
    pub command: String,
    /// Bytes the command wrote, before compression.
    pub bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Seconds the dump took: command, compression, read-back, fsync.
    pub seconds: f64,
    /// Dumps rotation removed (or would remove).
    pub removed: Vec<String>,
    /// Dumps of this name kept.
    pub kept: usize,
    /// Rotation failures: the dump is stored, the run is partial.
    pub rotation_errors: Vec<String>,
    /// `--dry-run`: nothing was run or written.
    pub dry_run: bool,
    #[serde(skip)]
    now_unix: i64,
}

impl Outcome for DumpReport {
    fn exit(&self) -> Exit {
        if self.rotation_errors.is_empty() {
            Exit::Success
        } else {
            Exit::Partial
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = if self.dry_run {
            format!(
                "backup-dump {}: would run {}\n  and store its output as {}",
                self.name, self.command, self.file
            )
        } else {
            format!(
                "backup-dump {}: stored {} ({} from {} of output, {:.1} s)",
                self.name,
                self.file,
                backup_host::human::bytes(self.stored_bytes),
                backup_host::human::bytes(self.bytes),
                self.seconds
            )
        };
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if self.removed.is_empty() {
            out.push_str(&format!(
                "\n  rotation: nothing to remove ({} of {} kept)",
                self.kept, self.name
            ));
        } else {
            out.push_str(&format!(
                "\n  rotation: {verb} {} ({} kept)",
                self.removed.join(", "),
                self.kept
            ));
        }
        for e in &self.rotation_errors {
            out.push_str(&format!("\n  FAILED rotation: {e}"));
        }
        out
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        if self.dry_run {
            return Vec::new();
        }
        let job = JobMetrics::backup(&self.name);
        let mut m = job.outcome(true, self.now_unix);
        m.push(BACKUP_DUMP_BYTES.gauge(self.bytes as f64));
        m.push(BACKUP_DUMP_COMPRESSED_BYTES.gauge(self.stored_bytes as f64));
        m.push(BACKUP_DUMP_DURATION.gauge(self.seconds));
        vec![MetricGroup::new(&job.job, m)]
    }
}

fn failed(job: &DumpJob, step: &str, reason: impl std::fmt::Display) -> Error {
    Error::Dump {
        name: job.name.clone(),
        step: step.to_owned(),
        reason: reason.to_string(),
        dest: job.dest.clone(),
    }
}

/// Names of the regular files in `dir`.
fn file_names(dir: &Utf8Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in dir.read_dir_utf8().map_err(|e| Error::io("list", dir, e))? {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            out.push(e.file_name().to_owned());
        }
    }
    Ok(out)
}

/// The invocation: `{out}` replaced by `out`, the environment from the env files.
fn invocation(job: &DumpJob, out: Option<&Utf8Path>) -> Result<Invocation> {
    let (program, args) = job
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("no command after `--`".to_owned()))?;
    let args = args.iter().map(|a| match (a.as_str(), out) {
        (OUT_PLACEHOLDER, Some(o)) => o.to_string(),
        _ => a.clone(),
    });
    let mut inv = Invocation::new(program, args);
    for (k, v) in &job.env {
        inv = inv.env(k, v.clone());
    }
    Ok(inv)
}

impl DumpJob {
    /// The tool writes its own file (an argument is `{out}`) instead of standard output.
    fn uses_out(&self) -> bool {
        self.command.iter().any(|a| a == OUT_PLACEHOLDER)
    }
}

/// Counts what passes through to the inner writer.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        backup_host::progress::add(0, n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Runs one dump: the command, the checks, the rename, then rotation.
///
/// # Errors
/// [`Error::Dump`] naming the step that failed; nothing in the destination changed then.
pub fn run_dump(
    job: &DumpJob,
    runner: &dyn Runner,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<DumpReport> {
    let started = Instant::now();
    let _phase = (!dry_run).then(|| {
        backup_host::progress::start(
            &format!("dump {}", job.name),
            backup_host::progress::Totals::default(),
        )
    });
    if !job.dest.is_dir() {
        return Err(failed(
            job,
            "check the destination",
            "it is not a folder (is the volume mounted?)",
        ));
    }
    // a manual run right after the CronJob's, in the same second: the next free name
    let Some(file_name) = (1..=99)
        .filter_map(|n| dated_file_name_nth(&job.name, now, &job.ext, n))
        .find(|f| std::fs::symlink_metadata(job.dest.join(f)).is_err())
    else {
        return Err(failed(
            job,
            "check the destination",
            format!(
                "99 dumps of {} were taken in the second of {now} already: refusing to overwrite one",
                job.name
            ),
        ));
    };
    let file = job.dest.join(&file_name);
    if dry_run {
        return planned_dump(job, &file_name, now);
    }
    // one run per name and folder at a time; leftovers of a killed run are ours to remove
    let _lock = backup_host::lock::RunLock::acquire(&job.dest.join(format!(".{}.lock", job.name)))?;
    remove_leftovers(job)?;
    let temp = job.dest.join(format!(".{file_name}.partial"));
    let out_dir = job.dest.join(format!(".{file_name}.out"));
    let result = dump_into(job, runner, &temp, &out_dir);
    let _ = backup_host::fsutil::remove_tree(&out_dir);
    let (inv, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let stored_bytes = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
    if let Err(e) = rename_noreplace(&temp, &file) {
        let _ = std::fs::remove_file(&temp);
        return Err(failed(job, "store the dump", e));
    }
    sync_dir(&job.dest);
    let seconds = started.elapsed().as_secs_f64();
    // rotation, only now that a good dump is in place
    let (removed, kept, rotation_errors) = rotate(job, now);
    Ok(DumpReport {
        name: job.name.clone(),
        file,
        command: inv.display(),
        bytes,
        stored_bytes,
        seconds,
        removed,
        kept,
        rotation_errors,
        dry_run: false,
        now_unix: now.timestamp(),
    })
}

/// What a dry run of `job` reports: the file it would write as `file_name`, the command, and
/// what rotation would remove with that file in place.
fn planned_dump(job: &DumpJob, file_name: &str, now: DateTime<Utc>) -> Result<DumpReport> {
    let file = job.dest.join(file_name);
    let mut existing = file_names(&job.dest)?;
    existing.push(file_name.to_owned());
    let plan = plan_dated_file_rotation(&job.name, &job.ext, &existing, job.policy, now)?;
    let removed: Vec<String> = removals(&plan).map(|d| d.name.clone()).collect();
    let out_path = job
        .uses_out()
        .then(|| job.dest.join(format!(".{file_name}.out")));
    Ok(DumpReport {
        name: job.name.clone(),
        file,
        command: invocation(job, out_path.as_deref())?.display(),
        bytes: 0,
        stored_bytes: 0,
        seconds: 0.0,
        kept: plan.len() - removed.len(),
        removed,
        rotation_errors: Vec::new(),
        dry_run: true,
        now_unix: now.timestamp(),
    })
}

/// Rotation after a good dump: of the name's dumps, those the policy lets go are removed;
/// returns what was removed, how many are kept, and what could not be removed.
fn rotate(job: &DumpJob, now: DateTime<Utc>) -> (Vec<String>, usize, Vec<String>) {
    let mut removed = Vec::new();
    let mut rotation_errors = Vec::new();
    let mut kept = 0;
    match file_names(&job.dest).and_then(|f| {
        Ok(plan_dated_file_rotation(
            &job.name, &job.ext, &f, job.policy, now,
        )?)
    }) {
        Ok(plan) => {
            kept = plan.len();
            for d in removals(&plan) {
                match std::fs::remove_file(job.dest.join(&d.name)) {
                    Ok(()) => {
                        kept -= 1;
                        removed.push(d.name.clone());
                    }
                    Err(e) => rotation_errors.push(format!("remove {}: {e}", d.name)),
                }
            }
        }
        Err(e) => rotation_errors.push(e.to_string()),
    }
    (removed, kept, rotation_errors)
}

/// Removes `.<name>-*.partial` files and `.<name>-*.out` folders a killed run left (we hold the
/// name's lock: none is in use).
fn remove_leftovers(job: &DumpJob) -> Result<()> {
    let prefix = format!(".{}-", job.name);
    for e in job
        .dest
        .read_dir_utf8()
        .map_err(|e| Error::io("list", &job.dest, e))?
        .flatten()
    {
        let n = e.file_name();
        let ours = n.starts_with(&prefix)
            && backup_core::parse_dated_folder_name(
                &job.name,
                n[1..].split('.').next().unwrap_or(""),
            )
            .is_some();
        if ours && (n.ends_with(".partial") || n.ends_with(".out")) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                backup_host::fsutil::remove_tree(e.path())?;
            } else {
                backup_host::fsutil::remove_file_if_present(e.path())?;
            }
        }
    }
    Ok(())
}

/// Runs the command and writes the checked gzip file `temp`; returns the invocation and the
/// bytes of output.
/// A new temp file for the dump, mode 0600; an existing one is an error.
fn create_temp(job: &DumpJob, p: &Utf8Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map_err(|e| failed(job, "create the temp file", format!("{p}: {e}")))
}

/// A dump tool that writes a file (`{out}` in its command line, inside `out_dir`): run it, check
/// the file, and store it gzipped in `temp` (as it is when it is gzip already). Returns the
/// command, the bytes it wrote, and whether they were gzip.
fn dump_via_file(
    job: &DumpJob,
    runner: &dyn Runner,
    temp: &Utf8Path,
    out_dir: &Utf8Path,
) -> Result<(Invocation, u64, bool)> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(out_dir)
        .map_err(|e| failed(job, "create the temp folder", format!("{out_dir}: {e}")))?;
    let out = out_dir.join(format!("{}.{}", job.name, job.ext));
    let inv = invocation(job, Some(&out))?;
    let output = runner
        .stream(&inv, &mut std::io::sink())
        .map_err(|e| failed(job, "run the dump command", e))?;
    if !output.success() {
        return Err(failed(job, "run the dump command", output.failure(&inv)));
    }
    let meta = std::fs::symlink_metadata(&out).map_err(|_| {
        failed(
            job,
            "check the output",
            format!("`{}` exited 0 but wrote no file at {{out}}", inv.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(failed(
            job,
            "check the output",
            "{out} is not a regular file",
        ));
    }
    let mut src = std::fs::File::open(&out)
        .map_err(|e| failed(job, "read the output", format!("{out}: {e}")))?;
    let mut magic = [0u8; 2];
    let gz = src.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let bytes = meta.len();
    check_size(job, bytes)?;
    src.rewind()
        .map_err(|e| failed(job, "read the output", format!("{out}: {e}")))?;
    let mut dst = create_temp(job, temp)?;
    if gz {
        std::io::copy(&mut src, &mut dst)
            .map_err(|e| failed(job, "write the dump", format!("{temp}: {e}")))?;
    } else {
        let mut enc = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, &mut dst),
            flate2::Compression::default(),
        );
        std::io::copy(&mut src, &mut enc)
            .and_then(|_| enc.finish()?.flush())
            .map_err(|e| failed(job, "compress the output", format!("{temp}: {e}")))?;
    }
    dst.sync_all()
        .map_err(|e| failed(job, "fsync the dump", format!("{temp}: {e}")))?;
    Ok((inv, bytes, gz))
}

fn dump_into(
    job: &DumpJob,
    runner: &dyn Runner,
    temp: &Utf8Path,
    out_dir: &Utf8Path,
) -> Result<(Invocation, u64)> {
    let create = |p: &Utf8Path| create_temp(job, p);
    let (inv, bytes, gzip_already) = if job.uses_out() {
        dump_via_file(job, runner, temp, out_dir)?
    } else {
        let inv = invocation(job, None)?;
        let mut dst = create(temp)?;
        let bytes = {
            let mut enc = Counting {
                inner: flate2::write::GzEncoder::new(
                    std::io::BufWriter::with_capacity(1 << 20, &mut dst),
                    flate2::Compression::default(),
                ),
                count: 0,
            };
            let output = runner
                .stream(&inv, &mut enc)
                .map_err(|e| failed(job, "run the dump command", e))?;
            if !output.success() {
                return Err(failed(job, "run the dump command", output.failure(&inv)));
            }
            let bytes = enc.count;
            check_size(job, bytes)?;
            enc.inner
                .finish()
                .and_then(|mut w| w.flush())
                .map_err(|e| failed(job, "compress the output", format!("{temp}: {e}")))?;
            bytes
        };
        dst.sync_all()
            .map_err(|e| failed(job, "fsync the dump", format!("{temp}: {e}")))?;
        (inv, bytes, false)
    };
    // the stored gzip stream must read back to its end (and, when we compressed it, to the
    // same length)
    let f = std::fs::File::open(temp)
        .map_err(|e| failed(job, "read the dump back", format!("{temp}: {e}")))?;
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    let read = std::io::copy(&mut dec, &mut std::io::sink())
        .map_err(|e| failed(job, "read the dump back", format!("{temp}: {e}")))?;
    if gzip_already {
        check_size(job, read)?;
    } else if read != bytes {
        return Err(failed(
            job,
            "read the dump back",
            format!("{temp} holds {read} bytes, the command wrote {bytes}"),
        ));
    }
    Ok((inv, bytes))
}

fn check_size(job: &DumpJob, bytes: u64) -> Result<()> {
    if bytes < job.min_bytes.max(1) {
        return Err(failed(
            job,
            "check the output",
            format!(
                "the command wrote {bytes} bytes, below --min-bytes {}",
                job.min_bytes.max(1)
            ),
        ));
    }
    Ok(())
}

fn rename_noreplace(from: &Utf8Path, to: &Utf8Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from.as_std_path(),
        rustix::fs::CWD,
        to.as_std_path(),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(Into::into)
}

fn sync_dir(dir: &Utf8Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        for bad in ["", ".x", "-x", "a/b", "a b", "../x"] {
            assert!(plain_name("--name", bad).is_err(), "{bad}");
        }
        plain_name("--name", "postgresql_all-1.2").unwrap();
    }
}
