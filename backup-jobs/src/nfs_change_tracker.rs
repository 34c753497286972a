//! `nfs-change-tracker`: one inotify instance and one thread per `[[offsite.tree]]`, appending
//! every changed path to that tree's change log, so `offsite-sync-backup` sends only what
//! changed.
//!
//! What the seed's `inotifywait -r` got wrong, and what this does instead:
//! - files created in a new folder before its watch existed were lost: a folder that appears
//!   (created, moved in) gets its watch first and is then scanned, and the folder itself is
//!   recorded (the sync sends it with `-r`, whatever it already holds);
//! - a queue overflow was silent: it marks the tree for a full pass, as does running out of
//!   watches, any watch error, and the tracker's own start (it cannot know what happened while
//!   it was down). One inotify instance per tree: an overflow costs only its own tree;
//! - names with newlines broke the log: records are NUL-terminated bytes.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backup_core::metric_names::{self as names, JOB_NFS_TRACKER};
use backup_core::{encode_record, Config, MetricGroup, Tree};
use backup_host::clock::Clock;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use serde::Serialize;

use backup_host::change_log::{ChangeLog, RootIdentity};

/// How often the tracker looks at each tree root's identity (a replaced or mounted-over root
/// sends no event to the watches of the old one).
const ROOT_CHECK: Duration = Duration::from_secs(1);
use backup_host::error::{Error, Result};
use backup_host::exit::Exit;
use backup_run::Outcome;

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::MOVE_SELF
        | WatchMask::DONT_FOLLOW
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

/// What one tree's tracker saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TreeStats {
    /// The tree's name.
    pub tree: String,
    /// Watches held at the end.
    pub watches: u64,
    /// Queue overflows and watch failures.
    pub overflows: u64,
    /// Records written.
    pub records: u64,
    /// Whether the tree waits for a full pass (its marker exists).
    pub full_pass_pending: bool,
}

/// What a tracker run did, until it was stopped.
#[derive(Debug, Clone, Serialize)]
pub struct TrackerReport {
    /// One entry per tree.
    pub trees: Vec<TreeStats>,
}

impl Outcome for TrackerReport {
    fn exit(&self) -> Exit {
        Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        let mut out = String::new();
        for t in &self.trees {
            out.push_str(&format!(
                "nfs-change-tracker: {}: {} records, {} watches, {} overflows{}\n",
                t.tree,
                t.records,
                t.watches,
                t.overflows,
                if t.full_pass_pending {
                    ", full pass pending"
                } else {
                    ""
                }
            ));
        }
        out.trim_end().to_owned()
    }

    fn metrics(&self) -> Vec<MetricGroup> {
        vec![tree_metrics(&self.trees)]
    }
}

/// The tracker's gauges, one sample per tree.
pub fn tree_metrics(trees: &[TreeStats]) -> MetricGroup {
    let mut watches = names::NFS_TRACKER_WATCHES.labelled();
    let mut overflows = names::NFS_TRACKER_OVERFLOWS.labelled();
    let mut pending = names::NFS_TRACKER_FULL_PASS_PENDING.labelled();
    for t in trees {
        let l = [("tree", t.tree.as_str())];
        watches = watches.with_sample(&l, t.watches as f64);
        overflows = overflows.with_sample(&l, t.overflows as f64);
        pending = pending.with_sample(&l, f64::from(u8::from(t.full_pass_pending)));
    }
    MetricGroup::new(JOB_NFS_TRACKER, vec![watches, overflows, pending])
}

/// Live counters of one tree, read by the metrics publisher while the tracker runs.
#[derive(Debug, Default)]
struct Counters {
    watches: AtomicU64,
    overflows: AtomicU64,
    records: AtomicU64,
}

/// One tree's watches: descriptor → folder relative to the tree.
struct Watches {
    inotify: Inotify,
    root: PathBuf,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

impl Watches {
    /// Watches `rel` and every folder below it; returns the first error (out of watches, a
    /// folder that cannot be read) after watching all it could.
    fn add_tree(&mut self, rel: &Path) -> std::result::Result<(), String> {
        let mut first_error = None;
        let mut stack = vec![rel.to_path_buf()];
        while let Some(rel) = stack.pop() {
            let abs = self.root.join(&rel);
            match self.inotify.watches().add(&abs, mask()) {
                Ok(wd) => {
                    self.dirs.insert(wd, rel.clone());
                }
                Err(e) => {
                    first_error.get_or_insert(format!("watch {}: {e}", abs.display()));
                    continue;
                }
            }
            // after the watch: what appears from now on is an event, what was there is found
            let Ok(rd) = std::fs::read_dir(&abs) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(rel.join(e.file_name()));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Compares the root with `root`, the identity the watches were set on: when it was
    /// replaced, mounted over, went or came back, drops every watch, watches the new root,
    /// marks a full pass and records the new identity.
    fn recheck_root(
        &mut self,
        tree: &Tree,
        log: &ChangeLog,
        counters: &Counters,
        root: &mut Option<RootIdentity>,
    ) -> Result<()> {
        let now = RootIdentity::of(&self.root);
        if now == *root {
            return Ok(());
        }
        let why = format!(
            "the tree root {} changed (device and inode {} -> {}): replaced, mounted over or \
             gone; watching it again",
            self.root.display(),
            RootIdentity::show(*root),
            RootIdentity::show(now)
        );
        // a fresh instance drops every watch of the old root at once
        self.inotify =
            Inotify::init().map_err(|e| Error::io("start inotify for", tree.source.clone(), e))?;
        self.dirs.clear();
        log.mark_full_pass(&tree.name, &why)?;
        if now.is_some() {
            if let Err(e) = self.add_tree(Path::new("")) {
                counters.overflows.fetch_add(1, Ordering::SeqCst);
                log.mark_full_pass(&tree.name, &e)?;
            }
        }
        log.write_root(&tree.name, now)?;
        *root = now;
        Ok(())
    }

    /// Forgets the watches of `rel` and below (a folder moved out or away).
    fn remove_tree(&mut self, rel: &Path) {
        let gone: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.starts_with(rel))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in gone {
            let _ = self.inotify.watches().remove(wd.clone());
            self.dirs.remove(&wd);
        }
    }
}

/// What one read of the inotify queue said beyond the changed paths (appended to `pending`).
#[derive(Default)]
struct Batch {
    new_dirs: Vec<PathBuf>,
    gone_dirs: Vec<PathBuf>,
    overflowed: bool,
    root_lost: bool,
}

/// Reads the events waiting (none: an empty batch), records every changed path.
fn take_events(
    w: &mut Watches,
    buffer: &mut [u8],
    pending: &mut Vec<u8>,
    counters: &Counters,
) -> std::io::Result<Batch> {
    let mut b = Batch::default();
    let events = match w.inotify.read_events(buffer) {
        Ok(events) => events,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(b),
        Err(e) => return Err(e),
    };
    for ev in events {
        if ev.mask.contains(EventMask::Q_OVERFLOW) {
            b.overflowed = true;
            continue;
        }
        if ev
            .mask
            .intersects(EventMask::IGNORED | EventMask::UNMOUNT | EventMask::MOVE_SELF)
        {
            // the root's own watch going means the root went: look at it now
            if w.dirs.get(&ev.wd).is_some_and(|d| d.as_os_str().is_empty()) {
                b.root_lost = true;
            }
            if ev.mask.contains(EventMask::IGNORED) {
                w.dirs.remove(&ev.wd);
            }
            continue;
        }
        let (Some(dir), Some(name)) = (w.dirs.get(&ev.wd), ev.name) else {
            continue;
        };
        let rel = dir.join(name);
        encode_record(rel.as_os_str().as_bytes(), pending);
        counters.records.fetch_add(1, Ordering::SeqCst);
        if ev.mask.contains(EventMask::ISDIR) {
            if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                b.new_dirs.push(rel);
            } else if ev.mask.contains(EventMask::MOVED_FROM) {
                b.gone_dirs.push(rel);
            }
        }
    }
    Ok(b)
}

/// Tracks one tree until `stop` is set.
fn track_tree(tree: &Tree, log: &ChangeLog, stop: &AtomicBool, counters: &Counters) -> Result<()> {
    let inotify =
        Inotify::init().map_err(|e| Error::io("start inotify for", tree.source.clone(), e))?;
    let mut w = Watches {
        inotify,
        root: tree.source.clone().into_std_path_buf(),
        dirs: HashMap::new(),
    };
    // whatever happened while no tracker ran is unknown: the next sync makes a full pass
    log.mark_full_pass(&tree.name, "nfs-change-tracker started")?;
    let mut root = RootIdentity::of(&w.root);
    log.write_root(&tree.name, root)?;
    if let Err(why) = w.add_tree(Path::new("")) {
        counters.overflows.fetch_add(1, Ordering::SeqCst);
        log.mark_full_pass(&tree.name, &why)?;
    }
    let mut root_checked = Instant::now();
    counters
        .watches
        .store(w.dirs.len() as u64, Ordering::SeqCst);
    let mut buffer = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    let mut last_flush = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let Batch {
            new_dirs,
            gone_dirs,
            overflowed,
            root_lost,
        } = match take_events(&mut w, &mut buffer, &mut pending, counters) {
            Ok(b) => b,
            Err(e) => {
                log.mark_full_pass(&tree.name, &format!("reading inotify events failed: {e}"))?;
                return Err(Error::io("read inotify events of", tree.source.clone(), e));
            }
        };
        for rel in gone_dirs {
            w.remove_tree(&rel);
        }
        for rel in new_dirs {
            if let Err(why) = w.add_tree(&rel) {
                counters.overflows.fetch_add(1, Ordering::SeqCst);
                log.mark_full_pass(&tree.name, &why)?;
            }
        }
        if overflowed {
            counters.overflows.fetch_add(1, Ordering::SeqCst);
            log.mark_full_pass(&tree.name, "the inotify queue overflowed: events were lost")?;
        }
        // the root itself: replaced, mounted over, gone or back; the watches are on the old one
        if root_lost || root_checked.elapsed() >= ROOT_CHECK {
            root_checked = Instant::now();
            w.recheck_root(tree, log, counters, &mut root)?;
        }
        counters
            .watches
            .store(w.dirs.len() as u64, Ordering::SeqCst);
        // batched: one append and fsync at most every 200 ms, and on the way out
        if !pending.is_empty() && (stopping || last_flush.elapsed() >= Duration::from_millis(200)) {
            log.append(&tree.name, &pending)?;
            pending.clear();
            last_flush = Instant::now();
        }
        if stopping {
            return Ok(());
        }
        if pending.is_empty() {
            std::thread::sleep(Duration::from_millis(25));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs the tracker for every tree of `[offsite]` until `stop` is set (SIGTERM, SIGINT), its
/// markings stamped by `clock`;
/// `publish` is called with the metrics every `every` and once at the end.
///
/// # Errors
/// Without `[offsite]` trees; when another tracker runs (exit 75); when a tree cannot be
/// tracked at all.
pub fn track(
    cfg: &Config,
    clock: Clock,
    stop: &AtomicBool,
    every: Duration,
    publish: &(dyn Fn(&MetricGroup) + Sync),
) -> Result<TrackerReport> {
    let offsite = cfg
        .offsite
        .as_ref()
        .filter(|o| !o.trees.is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "no [[offsite.tree]] in {}: nothing to track",
                cfg.file
            ))
        })?;
    let log = ChangeLog::new(&offsite.change_log).with_clock(clock);
    let _running = backup_host::lock::RunLock::acquire(&log.tracker_lock())?;
    let counters: Vec<Counters> = offsite.trees.iter().map(|_| Counters::default()).collect();
    let snapshot = || -> Vec<TreeStats> {
        offsite
            .trees
            .iter()
            .zip(&counters)
            .map(|(t, c)| TreeStats {
                tree: t.name.clone(),
                watches: c.watches.load(Ordering::SeqCst),
                overflows: c.overflows.load(Ordering::SeqCst),
                records: c.records.load(Ordering::SeqCst),
                full_pass_pending: backup_core::ChangeLogFiles::new(&offsite.change_log, &t.name)
                    .full_pass_marker()
                    .exists(),
            })
            .collect()
    };
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = offsite
            .trees
            .iter()
            .zip(&counters)
            .map(|(t, c)| s.spawn(|| track_tree(t, &log, stop, c)))
            .collect();
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) && !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= every {
                publish(&tree_metrics(&snapshot()));
                last = Instant::now();
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Internal("a tracker thread panicked".to_owned()))
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(TrackerReport { trees: snapshot() })
}

/// What `--check` found.
#[derive(Debug, Clone, Serialize)]
pub struct WatchCheck {
    /// Folders per tree.
    pub trees: Vec<(String, u64)>,
    /// `fs.inotify.max_user_watches`.
    pub max_user_watches: u64,
}

/// `--check`: counts the folders of every tree against `fs.inotify.max_user_watches`.
///
/// # Errors
/// Without `[offsite]` trees, or when the limit cannot be read.
pub fn check(cfg: &Config) -> Result<WatchCheck> {
    let offsite = cfg
        .offsite
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("no [offsite] in {}: nothing to track", cfg.file)))?;
    let path = "/proc/sys/fs/inotify/max_user_watches";
    let max_user_watches = std::fs::read_to_string(path)
        .map_err(|e| Error::io("read", path, e))?
        .trim()
        .parse()
        .unwrap_or(0);
    let trees = offsite
        .trees
        .iter()
        .map(|t| (t.name.clone(), count_dirs(t.source.as_std_path())))
        .collect();
    Ok(WatchCheck {
        trees,
        max_user_watches,
    })
}

fn count_dirs(root: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        n += 1;
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    n
}

impl Outcome for WatchCheck {
    fn exit(&self) -> Exit {
        if self.trees.iter().map(|(_, n)| n).sum::<u64>() <= self.max_user_watches {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn text(&self, _dry_run: bool) -> String {
        let total: u64 = self.trees.iter().map(|(_, n)| n).sum();
        let mut out = String::new();
        for (t, n) in &self.trees {
            out.push_str(&format!("  {t}: {n} folders\n"));
        }
        out.push_str(&if total <= self.max_user_watches {
            format!(
                "nfs-change-tracker: {total} watches needed, fs.inotify.max_user_watches = {}: fits",
                self.max_user_watches
            )
        } else {
            format!(
                "nfs-change-tracker: {total} watches needed but fs.inotify.max_user_watches = {}: \
                 raise it (sysctl fs.inotify.max_user_watches={}) or the tracker runs out and \
                 every sync makes full passes",
                self.max_user_watches,
                total.next_power_of_two().max(8192)
            )
        });
        out
    }
}
