//! `backupctl restore dump` and the dump part of `drill`: which dump (the newest of a name, or
//! `--at`), which kind, whether it is whole. Loading, checking and throwaway servers are the
//! adapters' of `backup-dumps`.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use camino::Utf8PathBuf;
use serde::Serialize;

use backup_dumps::{adapter, check_whole, list_dumps, DumpFile, DumpKind, Loaded, Target};
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_run::{Context, Outcome};

/// The ports of a dump restore or drill: `[dumps]` (none without a config), the runner of the
/// clients and throwaway servers, `--dry-run`.
pub(crate) struct DumpDeps<'a> {
    /// `[dumps]`: folders, kinds, the least size of a whole dump.
    pub config: Option<&'a backup_core::DumpsConfig>,
    /// Runs the database clients and the throwaway servers.
    pub runner: Box<dyn backup_core::Runner + 'a>,
    /// `--dry-run`: nothing is loaded, no server started.
    pub dry_run: bool,
}

impl<'a> DumpDeps<'a> {
    /// The run's ports.
    pub(crate) fn of(ctx: &'a Context<'_>) -> Self {
        Self {
            config: ctx.cfg_opt().map(|c| &c.dumps),
            runner: ctx.runner(),
            dry_run: ctx.dry_run(),
        }
    }

    /// `[dumps] kinds`.
    fn kinds(&self) -> BTreeMap<String, String> {
        self.config.map(|c| c.kinds.clone()).unwrap_or_default()
    }

    /// `[dumps] min-bytes` (1 without a config).
    fn min_bytes(&self) -> u64 {
        self.config.map_or(1, |c| c.min_bytes)
    }
}

/// The dump folders: `--dump-folder` when given, else `[dumps] folders`.
///
/// # Errors
/// None at all.
pub fn dump_folders(ctx: &Context<'_>, given: &[Utf8PathBuf]) -> Result<Vec<Utf8PathBuf>> {
    folders_of(ctx.cfg_opt().map(|c| &c.dumps), given)
}

/// [`dump_folders`] from `[dumps]`.
///
/// # Errors
/// Neither names a folder.
fn folders_of(
    config: Option<&backup_core::DumpsConfig>,
    given: &[Utf8PathBuf],
) -> Result<Vec<Utf8PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let folders = config.map(|c| c.folders.clone()).unwrap_or_default();
    if folders.is_empty() {
        return Err(Error::Usage(
            "no dump folder: list them in the config's `[dumps] folders`, or name one with \
             --dump-folder DIR"
                .to_owned(),
        ));
    }
    Ok(folders)
}

/// The kind of `dump`: `--kind`, else `[dumps] kinds`, else its name and extension, else its
/// first bytes.
///
/// # Errors
/// None of them tells.
pub fn kind_of(
    dump: &DumpFile,
    flag: Option<DumpKind>,
    kinds: &BTreeMap<String, String>,
) -> Result<DumpKind> {
    if let Some(k) = flag {
        return Ok(k);
    }
    if let Some(k) = kinds.get(&dump.name).and_then(|k| k.parse().ok()) {
        return Ok(k);
    }
    if let Some(k) = DumpKind::from_name(&dump.name, &dump.ext) {
        return Ok(k);
    }
    let mut head = vec![0u8; 4096];
    let mut r = backup_dumps::file::open(&dump.path)?;
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    DumpKind::sniff(&head[..n]).ok_or_else(|| {
        Error::Usage(format!(
            "{}: cannot tell what kind of dump this is from its name or content: say it with \
             --kind, or in the config (`[dumps] kinds = {{ \"{}\" = \"postgresql\" }}`)",
            dump.path, dump.name
        ))
    })
}

/// Every dump of `name` in `folders`, oldest first.
fn dumps_named(folders: &[Utf8PathBuf], name: &str) -> Result<Vec<DumpFile>> {
    let mut all = Vec::new();
    for f in folders {
        all.extend(list_dumps(f)?.into_iter().filter(|d| d.name == name));
    }
    all.sort_by(|a, b| (a.stamp, a.path.as_str()).cmp(&(b.stamp, b.path.as_str())));
    Ok(all)
}

/// The newest dump of every name in `folders`.
///
/// # Errors
/// A folder cannot be read.
pub fn newest_dumps(folders: &[Utf8PathBuf]) -> Result<Vec<DumpFile>> {
    let mut newest: BTreeMap<String, DumpFile> = BTreeMap::new();
    for f in folders {
        for d in list_dumps(f)? {
            let newer = newest
                .get(&d.name)
                .is_none_or(|n| (d.stamp, d.path.as_str()) > (n.stamp, n.path.as_str()));
            if newer {
                newest.insert(d.name.clone(), d);
            }
        }
    }
    Ok(newest.into_values().collect())
}

/// `restore dump` flags.
#[derive(Debug, Clone, Default)]
pub struct DumpRestoreArgs {
    /// The dump's name (`postgresql`).
    pub name: String,
    /// `--at STAMP`: that dump (`20260220-000000`, or a prefix: `20260220`), else the newest.
    pub at: Option<String>,
    /// `--kind`.
    pub kind: Option<DumpKind>,
    /// `--dump-folder`: where to look instead of `[dumps] folders`.
    pub folders: Vec<Utf8PathBuf>,
    /// `--env-file` (repeatable): variables for the tool (passwords, `VAULT_TOKEN`).
    pub env_files: Vec<Utf8PathBuf>,
    /// `--scratch`: load into a throwaway server, show what it holds, remove it.
    pub scratch: bool,
    /// Where to load it (`--host`, `--port`, `--user`, `--defaults-extra-file`, `--data-dir`,
    /// `--database`); the env files are read into it.
    pub target: Target,
}

/// `backupctl restore dump`.
#[derive(Debug, Clone, Serialize)]
pub struct DumpRestoreReport {
    /// The dump.
    pub dump: DumpFile,
    /// Its kind.
    pub kind: DumpKind,
    /// Where it went, as a person would say it.
    pub into: String,
    /// Its content's size.
    pub content_bytes: u64,
    /// What it holds there.
    pub loaded: Loaded,
    /// Seconds loading and checking.
    pub seconds: f64,
    /// Under `--dry-run`: what would run.
    pub would_run: Vec<String>,
}

fn describe(t: &Target, scratch: bool) -> String {
    if scratch {
        return "a throwaway server (removed again)".to_owned();
    }
    if let Some(d) = &t.data_dir {
        return format!("the folder {d}");
    }
    let mut s = match (&t.host, t.port) {
        (Some(h), Some(p)) => format!("the server at {h} port {p}"),
        (Some(h), None) => format!("the server at {h}"),
        (None, Some(p)) => format!("the local server on port {p}"),
        (None, None) => "the server of the tool's defaults (its env file or socket)".to_owned(),
    };
    if let Some(db) = &t.database {
        s.push_str(&format!(", database {db} only"));
    }
    s
}

/// Which of `all` (one name's dumps, oldest first) to restore: the one taken at `at` (a prefix of
/// its stamp, the newest that matches), else the newest.
///
/// # Errors
/// Not found when there is no dump of that name, or none taken at `at` (the message lists them).
fn pick_dump(
    all: &[DumpFile],
    name: &str,
    at: Option<&str>,
    folders: &[Utf8PathBuf],
) -> Result<usize> {
    if all.is_empty() {
        return Err(Error::NotFound(format!(
            "no dump named `{}` in {} (`backupctl list` shows the dumps there are)",
            name,
            folders
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(match at {
        Some(at) => all
            .iter()
            .rposition(|d| d.stamp_text().starts_with(at))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no dump `{}` taken at {at}: there are {}",
                    name,
                    all.iter()
                        .map(DumpFile::stamp_text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => all.len() - 1,
    })
}

/// Picks the dump (`--at` or the newest), checks it is whole (the next older one is named when
/// not), and loads it: into the target, or a throwaway server with `--scratch`.
///
/// # Errors
/// No dump of that name; a dump that is not whole or too small; a bad target; a failed load.
pub fn restore_dump(ctx: &Context<'_>, args: &DumpRestoreArgs) -> Result<DumpRestoreReport> {
    restore_dump_of(&DumpDeps::of(ctx), args)
}

/// [`restore_dump`] from `deps`.
///
/// # Errors
/// No dump of that name; a dump that is not whole or too small; a bad target; a failed load.
pub(crate) fn restore_dump_of(
    deps: &DumpDeps<'_>,
    args: &DumpRestoreArgs,
) -> Result<DumpRestoreReport> {
    let folders = folders_of(deps.config, &args.folders)?;
    let all = dumps_named(&folders, &args.name)?;
    let at = pick_dump(&all, &args.name, args.at.as_deref(), &folders)?;
    let dump = &all[at];
    let kind = kind_of(dump, args.kind, &deps.kinds())?;
    let a = adapter(kind);
    let content_bytes = check_whole(dump, a.as_ref(), deps.min_bytes()).map_err(|e| {
        let older = at
            .checked_sub(1)
            .map(|i| {
                format!(
                    "; the next older one is {} (`backupctl restore dump {} --at {}`)",
                    all[i].path,
                    args.name,
                    all[i].stamp_text()
                )
            })
            .unwrap_or_else(|| "; there is no older one".to_owned());
        Error::Refused(format!("refused: {e}{older}"))
    })?;
    let mut target = args.target.clone();
    for f in &args.env_files {
        target.env.extend(backup_host::env_file::read_env_file(f)?);
    }
    let into = describe(&target, args.scratch);
    let mut report = DumpRestoreReport {
        dump: dump.clone(),
        kind,
        into,
        content_bytes,
        loaded: Loaded::default(),
        seconds: 0.0,
        would_run: Vec::new(),
    };
    if deps.dry_run {
        report.would_run = if args.scratch {
            vec![format!("start a throwaway {kind} server in a temp folder, load the dump, count what it holds, remove it")]
        } else {
            a.restore_plan(dump, &target)?
        };
        return Ok(report);
    }
    let started = Instant::now();
    report.loaded = if args.scratch {
        let (_temp, dir) = scratch_temp()?;
        a.drill(dump, &dir, deps.runner.as_ref())?
    } else {
        a.restore(dump, &target, deps.runner.as_ref())?
    };
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A temp folder for throwaway servers, removed with the guard; first, what killed runs left
/// is ended ([`backup_dumps::scratch::sweep_stale`], said on stderr).
fn scratch_temp() -> Result<(backup_dumps::scratch::ScratchRoot, Utf8PathBuf)> {
    for line in backup_dumps::scratch::sweep_stale() {
        eprintln!("backupctl: {line}");
    }
    let root = backup_dumps::scratch::ScratchRoot::new()?;
    let path = root.path.clone();
    Ok((root, path))
}

impl Outcome for DumpRestoreReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, dry_run: bool) -> String {
        let what = format!(
            "{} ({}, {} of content, taken {})",
            self.dump.path,
            self.kind,
            backup_host::human::bytes(self.content_bytes),
            self.dump.stamp.format("%Y-%m-%d %H:%M UTC")
        );
        if dry_run {
            let mut out = format!(
                "restore dump {what} into {} (dry run: nothing was changed). A real run would:",
                self.into
            );
            for (i, l) in self.would_run.iter().enumerate() {
                out.push_str(&format!("\n  {}. {l}", i + 1));
            }
            return out;
        }
        let mut out = format!(
            "restored {what}\n  into {} in {:.1} s\n  it holds: {}",
            self.into,
            self.seconds,
            self.loaded.summary(self.kind)
        );
        for n in &self.loaded.notes {
            out.push_str(&format!("\n  {n}"));
        }
        out
    }

    fn metrics(&self) -> Vec<backup_core::MetricGroup> {
        Vec::new()
    }
}

/// One dump loaded by a drill.
#[derive(Debug, Clone, Serialize)]
pub struct DumpDrilled {
    /// The dump.
    pub dump: DumpFile,
    /// Its kind (`None`: it could not be told).
    pub kind: Option<DumpKind>,
    /// Seconds: check, start, load, look, stop.
    pub seconds: f64,
    /// What the throwaway server held.
    pub loaded: Option<Loaded>,
    /// Why it failed.
    pub failed: Option<String>,
}

/// The newest dump of every name in `folders`, each loaded into a throwaway server of its kind
/// in a temp folder of its own (the servers may run as `nobody`, who must reach it), checked
/// and removed. A kind whose servers this host lacks is checked whole only and said so, unless
/// `servers_required` (the dump drill's own run), where that fails it.
///
/// # Errors
/// A dump folder cannot be read, or no temp folder can be made.
pub fn drill_dumps(
    ctx: &Context<'_>,
    folders: &[Utf8PathBuf],
    servers_required: bool,
) -> Result<Vec<DumpDrilled>> {
    drill_dumps_of(&DumpDeps::of(ctx), folders, servers_required)
}

/// [`drill_dumps`] from `deps`.
///
/// # Errors
/// A dump folder cannot be read, or no temp folder can be made.
pub(crate) fn drill_dumps_of(
    deps: &DumpDeps<'_>,
    folders: &[Utf8PathBuf],
    servers_required: bool,
) -> Result<Vec<DumpDrilled>> {
    let (kinds, min_bytes) = (deps.kinds(), deps.min_bytes());
    let (_temp, base) = scratch_temp()?;
    let mut out = Vec::new();
    for (i, dump) in newest_dumps(folders)?.into_iter().enumerate() {
        backup_host::progress::message(&format!("dump {}", dump.name));
        let started = Instant::now();
        let kind = kind_of(&dump, None, &kinds);
        let result = kind.as_ref().map_err(|e| e.to_string()).and_then(|k| {
            let a = adapter(*k);
            let dir = base.join(format!("{i:03}"));
            std::fs::create_dir(&dir).map_err(|e| format!("create folder {dir}: {e}"))?;
            check_whole(&dump, a.as_ref(), min_bytes).map_err(|e| e.to_string())?;
            if let Err(e) = a.servers_installed() {
                if servers_required {
                    return Err(format!("no throwaway {k} server here: {e}"));
                }
                // the PVE host: the dump is whole; the dump-drill CronJob loads it
                return Ok(Loaded {
                    items: Vec::new(),
                    notes: vec![format!(
                        "whole; not loaded on this host ({e}): the dump-drill CronJob loads it"
                    )],
                });
            }
            if deps.dry_run {
                // a throwaway server is still a process and files: none under --dry-run
                return Ok(Loaded {
                    items: Vec::new(),
                    notes: vec![format!(
                        "dry run: whole; a real run loads it into a throwaway {k} server"
                    )],
                });
            }
            let loaded = a
                .drill(&dump, &dir, deps.runner.as_ref())
                .map_err(|e| e.to_string());
            let _ = std::fs::remove_dir_all(&dir);
            loaded
        });
        out.push(DumpDrilled {
            kind: kind.ok(),
            seconds: started.elapsed().as_secs_f64(),
            loaded: result.as_ref().ok().cloned(),
            failed: result.err(),
            dump,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::{RecordingRunner, Transcript};

    const WHOLE: &str = "--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE app;\n\
                         --\n-- PostgreSQL database cluster dump complete\n--\n\n";

    /// A dump folder with two `postgresql` dumps: the older whole, the newer as given.
    fn folder(newer: &str) -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        gzip(&path.join("postgresql-20260301-000000.sql.gz"), WHOLE);
        gzip(&path.join("postgresql-20260308-000000.sql.gz"), newer);
        (dir, path)
    }

    fn gzip(path: &camino::Utf8Path, text: &str) {
        use std::io::Write as _;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(text.as_bytes()).unwrap();
        std::fs::write(path, z.finish().unwrap()).unwrap();
    }

    fn ports(t: &Transcript, dry_run: bool) -> DumpDeps<'static> {
        DumpDeps {
            config: None,
            runner: Box::new(RecordingRunner::new(t)),
            dry_run,
        }
    }

    fn args(folder: &camino::Utf8Path, name: &str) -> DumpRestoreArgs {
        DumpRestoreArgs {
            name: name.to_owned(),
            at: None,
            kind: None,
            folders: vec![folder.to_owned()],
            env_files: Vec::new(),
            scratch: false,
            target: Target::default(),
        }
    }

    /// The newest dump is picked and its kind told from its name; a dry run lists what a real
    /// run would do and runs nothing.
    #[test]
    fn a_dry_run_picks_the_newest_and_runs_nothing() {
        let (_d, f) = folder(WHOLE);
        let t = Transcript::new();
        let r = restore_dump_of(&ports(&t, true), &args(&f, "postgresql")).unwrap();
        assert!(
            r.dump.path.as_str().ends_with("20260308-000000.sql.gz"),
            "{}",
            r.dump.path
        );
        assert_eq!(r.kind, DumpKind::Postgresql);
        assert!(!r.would_run.is_empty());
        assert!(t.lines().is_empty(), "{:?}", t.lines());
    }

    /// A newest dump cut short is refused before anything runs, and the message names the
    /// next older one with the command that restores it.
    #[test]
    fn a_cut_dump_is_refused_naming_the_next_older_one() {
        let (_d, f) = folder("--\n-- PostgreSQL database cluster dump\n--\nCREATE TA");
        let t = Transcript::new();
        let e = restore_dump_of(&ports(&t, false), &args(&f, "postgresql")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("cut short") || text.contains("complete"),
            "{text}"
        );
        assert!(
            text.contains("backupctl restore dump postgresql --at 20260301-000000"),
            "{text}"
        );
        assert!(t.lines().is_empty(), "{:?}", t.lines());
    }

    /// A name no dump has is not found (66), and no folder at all is a usage error (2).
    #[test]
    fn an_unknown_name_and_no_folder_are_said() {
        let (_d, f) = folder(WHOLE);
        let t = Transcript::new();
        let e = restore_dump_of(&ports(&t, false), &args(&f, "mysql")).unwrap_err();
        assert_eq!(e.exit().code(), 66, "{e}");
        let mut none = args(&f, "postgresql");
        none.folders.clear();
        let e = restore_dump_of(&ports(&t, false), &none).unwrap_err();
        assert_eq!(e.exit().code(), 2, "{e}");
    }

    /// The drill: the newest of each name; a whole one passes (loaded, or checked whole where
    /// this host has no server, or planned under --dry-run), a cut one fails naming why.
    #[test]
    fn the_drill_fails_a_cut_dump_and_passes_a_whole_one() {
        let t = Transcript::new();
        let (_d, f) = folder(WHOLE);
        let got = drill_dumps_of(&ports(&t, true), std::slice::from_ref(&f), false).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].failed.is_none(), "{:?}", got[0].failed);
        let (_d, f) = folder("--\n-- PostgreSQL database cluster dump\n--\nCREATE TA");
        let got = drill_dumps_of(&ports(&t, true), std::slice::from_ref(&f), false).unwrap();
        assert!(got[0].failed.is_some(), "{:?}", got[0]);
        assert!(t.lines().is_empty(), "{:?}", t.lines());
    }
}
