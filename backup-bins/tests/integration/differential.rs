//! The differential property test of the copy from a diff: random changes to a volume across
//! days and weeks (create, write, same-size rewrite, truncate, chmod, chown, rename of files and
//! folders, delete, hardlink, symlink, xattr, a file replaced by a folder, a folder by a file, a
//! rewrite that keeps size and mtime, two files of equal size and mtime swapped), with `--full`
//! passes on random days. After every run each file of the version has the md5 its record says;
//! the version equals the volume (rsync -n -aHAXc --delete --itemize-changes lists nothing,
//! hardlink groups kept) unless a change only a full pass can see on the `dir` backend was made
//! since the last one; and no older version changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use proptest::prelude::*;

use crate::harness::*;

#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Append(u8),
    SameSize(u8),
    Truncate(u8),
    Chmod(u8, u32),
    Chown(u8, u32),
    RenameFile(u8, u8),
    RenameDir(u8, u8),
    Delete(u8),
    Hardlink(u8, u8),
    Symlink(u8),
    Xattr(u8, u8),
    FileToDir(u8),
    DirToFile(u8),
    /// A rewrite that keeps size and mtime: only the content (or, on LVM, ctime) tells.
    KeepMtime(u8),
    /// Two files of the same size and mtime (made by `Twins`) swapped by name.
    Twins(u8),
    SwapTwins(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, 0u8..4).prop_map(|(f, d)| Op::Create(f, d)),
        (0u8..12).prop_map(Op::Append),
        (0u8..12).prop_map(Op::SameSize),
        (0u8..12).prop_map(Op::Truncate),
        (
            0u8..12,
            prop::sample::select(vec![0o600, 0o644, 0o755, 0o2755])
        )
            .prop_map(|(f, m)| Op::Chmod(f, m)),
        (0u8..12, prop::sample::select(vec![0, 999, 1000, 65534]))
            .prop_map(|(f, u)| Op::Chown(f, u)),
        (0u8..12, 0u8..12).prop_map(|(a, b)| Op::RenameFile(a, b)),
        (0u8..4, 0u8..4).prop_map(|(a, b)| Op::RenameDir(a, b)),
        (0u8..12).prop_map(Op::Delete),
        (0u8..12, 0u8..12).prop_map(|(a, b)| Op::Hardlink(a, b)),
        (0u8..12).prop_map(Op::Symlink),
        (0u8..12, 0u8..3).prop_map(|(f, v)| Op::Xattr(f, v)),
        (0u8..12).prop_map(Op::FileToDir),
        (0u8..12).prop_map(Op::DirToFile),
        (0u8..12).prop_map(Op::KeepMtime),
        (0u8..3).prop_map(Op::Twins),
        (0u8..3).prop_map(Op::SwapTwins),
    ]
}

/// The regular files (not symlinks) under `vol`.
fn files(vol: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![vol.to_owned()];
    while let Some(d) = stack.pop() {
        for e in d.read_dir_utf8().unwrap().flatten() {
            let p = e.path().to_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The folders under `vol` (not `vol`).
fn dirs(vol: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![vol.to_owned()];
    while let Some(d) = stack.pop() {
        for e in d.read_dir_utf8().unwrap().flatten() {
            let p = e.path().to_owned();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                out.push(p.clone());
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn pick(list: &[Utf8PathBuf], i: u8) -> Option<&Utf8PathBuf> {
    (!list.is_empty()).then(|| &list[i as usize % list.len()])
}

/// Gives `p` the mtime 2026-01-01 00:00 UTC.
fn set_old_mtime(p: &Utf8Path) -> std::io::Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
    std::fs::File::options()
        .write(true)
        .open(p)?
        .set_modified(t)
}

/// True for the operations an incremental run on the `dir` backend cannot see (only a full
/// pass reads the content): twins made again over earlier ones keep their size and old mtime.
fn hidden(op: &Op) -> bool {
    matches!(op, Op::KeepMtime(_) | Op::Twins(_) | Op::SwapTwins(_))
}

fn apply(vol: &Utf8Path, op: &Op, day: usize) {
    let fs = files(vol);
    let _ = match op {
        Op::KeepMtime(f) => pick(&fs, *f).map_or(Ok(()), |p| {
            let m = std::fs::metadata(p).unwrap();
            let mut content = std::fs::read(p).unwrap();
            if let Some(b) = content.first_mut() {
                *b ^= 0x01;
            }
            std::fs::write(p, content)?;
            std::fs::File::options()
                .write(true)
                .open(p)?
                .set_modified(m.modified().unwrap())
        }),
        Op::Twins(t) => {
            let (x, y) = (
                vol.join(format!("twins{t}/x")),
                vol.join(format!("twins{t}/y")),
            );
            std::fs::create_dir_all(x.parent().unwrap())
                .and_then(|()| std::fs::write(&x, format!("twin-x-{day}\n")))
                .and_then(|()| std::fs::write(&y, format!("twin-y-{day}\n")))
                .and_then(|()| set_old_mtime(&x))
                .and_then(|()| set_old_mtime(&y))
        }
        Op::SwapTwins(t) => {
            let (x, y) = (
                vol.join(format!("twins{t}/x")),
                vol.join(format!("twins{t}/y")),
            );
            let tmp = vol.join(format!("twins{t}/swap"));
            if x.is_file() && y.is_file() {
                std::fs::rename(&x, &tmp)
                    .and_then(|()| std::fs::rename(&y, &x))
                    .and_then(|()| std::fs::rename(&tmp, &y))
            } else {
                Ok(())
            }
        }
        Op::Create(f, d) => {
            // `d{d}` may have become a file: then there is nothing to create in
            let p = vol.join(format!("d{d}/sub/new-{day}-{f}"));
            std::fs::create_dir_all(p.parent().unwrap())
                .and_then(|()| std::fs::write(&p, format!("created {day} {f}\n")))
        }
        Op::Append(f) => pick(&fs, *f).map_or(Ok(()), |p| {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(p)
                .and_then(|mut h| h.write_all(b"more\n"))
        }),
        Op::SameSize(f) => pick(&fs, *f).map_or(Ok(()), |p| {
            // the same size, the same mtime: only ctime and inode tell (or nothing, on `dir`)
            let m = std::fs::metadata(p).unwrap();
            let len = m.len() as usize;
            std::fs::write(p, "Z".repeat(len)).unwrap();
            Ok(())
        }),
        Op::Truncate(f) => pick(&fs, *f).map_or(Ok(()), |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .and_then(|h| h.set_len(1))
        }),
        Op::Chmod(f, m) => pick(&fs, *f).map_or(Ok(()), |p| {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(*m))
        }),
        Op::Chown(f, u) => {
            pick(&fs, *f).map_or(Ok(()), |p| std::os::unix::fs::chown(p, Some(*u), Some(*u)))
        }
        Op::RenameFile(a, b) => pick(&fs, *a).map_or(Ok(()), |p| {
            std::fs::rename(p, vol.join(format!("d{}/moved-{day}-{b}", b % 4)))
                .or_else(|_| std::fs::rename(p, vol.join(format!("moved-{day}-{b}"))))
        }),
        Op::RenameDir(a, b) => {
            let from = vol.join(format!("d{a}"));
            let to = vol.join(format!("renamed-{day}-{b}"));
            if from.is_dir() && !to.exists() {
                std::fs::rename(from, to)
            } else {
                Ok(())
            }
        }
        Op::Delete(f) => pick(&fs, *f).map_or(Ok(()), std::fs::remove_file),
        Op::Hardlink(a, b) => pick(&fs, *a).map_or(Ok(()), |p| {
            std::fs::hard_link(p, vol.join(format!("link-{day}-{b}")))
        }),
        Op::Symlink(f) => {
            std::os::unix::fs::symlink(format!("target-{f}"), vol.join(format!("sym-{day}-{f}")))
        }
        Op::Xattr(f, v) => pick(&fs, *f).map_or(Ok(()), |p| {
            let ok = Command::new("setfattr")
                .args(["-n", "user.test", "-v", &format!("value{v}")])
                .arg(p)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "setfattr failed (attr package; scripts/test installs it)"
            );
            Ok(())
        }),
        Op::DirToFile(f) => {
            // not `dir`: the PVE config stage of the harness reads it as a folder
            let dirs: Vec<Utf8PathBuf> = dirs(vol)
                .into_iter()
                .filter(|d| !d.starts_with(vol.join("dir")))
                .collect();
            pick(&dirs, *f).map_or(Ok(()), |d| {
                std::fs::remove_dir_all(d)?;
                std::fs::write(d, "now a file\n")
            })
        }
        Op::FileToDir(f) => pick(&fs, *f).map_or(Ok(()), |p| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir_all(p.join("inside"))?;
            std::fs::write(p.join("inside/f"), "now a folder\n")
        }),
    };
}

/// Every entry of `dir`: path → (mode, uid, gid, size, mtime, content, xattrs).
fn state(dir: &Utf8Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in d.read_dir_utf8().unwrap().flatten() {
            let p = e.path().to_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                format!("{:?}", std::fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.insert(
                p.strip_prefix(dir).unwrap().to_string(),
                format!(
                    "{:o} {}:{} {} {}.{} {content}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec()
                ),
            );
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn rsync_differences(src: &Utf8Path, copy: &Utf8Path) -> String {
    let out = Command::new("rsync")
        .args([
            "-n",
            "-aHAXc",
            "--delete",
            "--numeric-ids",
            "--itemize-changes",
        ])
        .arg(format!("{src}/"))
        .arg(format!("{copy}/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hardlink_groups(dir: &Utf8Path) -> Vec<Vec<String>> {
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for p in files(dir) {
        let ino = std::fs::metadata(&p).unwrap().ino();
        by_inode
            .entry(ino)
            .or_default()
            .push(p.strip_prefix(dir).unwrap().to_string());
    }
    let mut groups: Vec<Vec<String>> = by_inode.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

const DAYS: [&str; 6] = [
    "2026-01-05",
    "2026-01-06",
    "2026-01-12",
    "2026-01-13",
    "2026-01-14",
    "2026-01-19",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_version_equals_its_snapshot_and_no_older_one_changes(
        days in prop::collection::vec(prop::collection::vec(op(), 0..6), DAYS.len()),
        full in prop::collection::vec(any::<bool>(), DAYS.len()),
    ) {
        assert!(is_root(), "the differential test chowns files: run scripts/test as root");
        let env = Env::new();
        let vol = env.vol("vm-100-pvc-a");
        for d in 0..4 {
            write(&vol.join(format!("d{d}/sub/f{d}")), &format!("file {d}\n"));
        }
        let mut weeks_seen: Vec<String> = Vec::new();
        // a change only a full pass can see was made since the last full pass
        let mut hidden_pending = false;
        for (i, (day, ops)) in DAYS.iter().zip(&days).enumerate() {
            for op in ops {
                apply(&vol, op, i);
            }
            hidden_pending |= ops.iter().any(hidden);
            let older: Vec<(String, BTreeMap<String, String>)> = weeks_seen
                .iter()
                .map(|w| (w.clone(), state(&env.copy(w, "vaultwarden", "data"))))
                .collect();
            let out = env.day(day);
            prop_assert_eq!(out.status.code(), Some(0), "{}: {}", day, text(&out));
            if full[i] {
                // the full pass, later the same day
                let out = env.run(DAILY, &["--now", &format!("{day}T06:00:00Z"), "--full"]);
                prop_assert_eq!(out.status.code(), Some(0), "{} --full: {}", day, text(&out));
                hidden_pending = false;
            }
            let week = env.weeks().last().unwrap().clone();
            let copy = env.copy(&week, "vaultwarden", "data");
            // the invariant of every run: each file of the version has the md5 its record says
            let wrong = record_mismatches(&env, "vaultwarden", "data", &week);
            prop_assert!(wrong.is_empty(), "{} ({:?}): files differ from the record: {:?}", day, ops, wrong);
            if i == 0 {
                // the first copy reads everything
                hidden_pending = false;
            }
            let diff = rsync_differences(&vol, &copy);
            prop_assert!(hidden_pending || diff.trim().is_empty(), "{} ({:?}): the copy differs:\n{}", day, ops, diff);
            prop_assert_eq!(hardlink_groups(&vol), hardlink_groups(&copy), "{} hardlink groups", day);
            for (w, before) in older.iter().filter(|(w, _)| *w != week) {
                prop_assert_eq!(before, &state(&env.copy(w, "vaultwarden", "data")), "week {} changed on {}", w, day);
            }
            if !weeks_seen.contains(&week) {
                weeks_seen.push(week);
            }
        }
    }
}

#[test]
fn a_damaged_record_means_a_full_copy_with_a_warning_never_a_wrong_one() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let record = env
        .root
        .join("backup/pvc-data/2026-02/.records/vaultwarden/data");
    let mut bytes = std::fs::read(&record).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&record, &bytes).unwrap();
    // a change the damaged record could hide
    write(
        &env.vol("vm-100-pvc-a").join("dir/file-0.txt"),
        "changed!\n",
    );
    let out = env.day("2026-01-12");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("cannot be used") && text(&out).contains("copied in full"),
        "{}",
        text(&out)
    );
    let copy = env.copy("2026-03", "vaultwarden", "data");
    assert_eq!(
        rsync_differences(&env.vol("vm-100-pvc-a"), &copy).trim(),
        ""
    );
    // the new version has a good record again, and the next week builds on it
    assert!(backup_core::decode_record(
        &std::fs::read(
            env.root
                .join("backup/pvc-data/2026-03/.records/vaultwarden/data")
        )
        .unwrap()
    )
    .is_ok());
    // a truncated record too
    let record = env
        .root
        .join("backup/pvc-data/2026-03/.records/vaultwarden/data");
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() - 20]).unwrap();
    let out = env.day("2026-01-13");
    assert!(text(&out).contains("copied in full"), "{}", text(&out));
}

/// The record and version of a complete week, as bytes and a stat-and-hash state.
fn week_snapshot(env: &Env, week: &str) -> (Vec<u8>, BTreeMap<String, String>, bool) {
    let record = env
        .root
        .join(format!("backup/pvc-data/{week}/.records/vaultwarden/data"));
    let copy = env.copy(week, "vaultwarden", "data");
    (
        std::fs::read(record).unwrap_or_default(),
        if copy.is_dir() {
            state(&copy)
        } else {
            BTreeMap::new()
        },
        env.marker(week, "vaultwarden", "data").exists(),
    )
}

/// Stopping daily-backup (SIGTERM or SIGKILL) at any point of a same-week rerun never touches the
/// previous week, and never takes the week's complete version away: it stays complete, equal to
/// one of the snapshots, verifies clean and restores; the next run completes the week correctly.
#[test]
fn killing_the_run_at_any_point_leaves_the_previous_version_and_record_intact() {
    let env = Env::new();
    let vol = env.vol("vm-100-pvc-a");
    for i in 0..300 {
        write(&vol.join(format!("many/f{i:03}")), &format!("file {i}\n"));
    }
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let before = week_snapshot(&env, "2026-02");
    assert!(before.2 && backup_core::decode_record(&before.0).is_ok());
    // how long an uninterrupted run of this week takes; the kills are spread over it
    let snap = env.run(SNAPSHOT, &["--now", "2026-01-12T03:00:00Z", "create"]);
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
    let started = std::time::Instant::now();
    let first = env.run(DAILY, &["--now", "2026-01-12T05:00:00Z"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let whole = started.elapsed().as_millis() as u64;
    let mut interrupted = 0;
    let mut snapshots = vec![state(&env.copy("2026-03", "vaultwarden", "data"))];
    for round in 1..=12u64 {
        // a change each round, so each run has work to do
        write(
            &vol.join(format!("many/f{round:03}")),
            &format!("round {round}\n"),
        );
        write(&vol.join(format!("new/r{round}")), "new\n");
        let at = format!("2026-01-13T03:{round:02}:00Z");
        let snap = env.run(SNAPSHOT, &["--now", &at, "create"]);
        assert_eq!(snap.status.code(), Some(0), "{}", text(&snap));
        snapshots.push(state(
            &env.root.join("snapshots").join(latest_snapshot(&env)),
        ));
        let mut child = env
            .command(DAILY, &["--now", &format!("2026-01-13T05:{round:02}:00Z")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay_ms = whole * round / 13;
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // odd rounds SIGTERM (systemctl stop), even rounds SIGKILL
        let signal = if round % 2 == 1 {
            rustix::process::Signal::Term
        } else {
            rustix::process::Signal::Kill
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            signal,
        );
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        kill_all_mentioning(env.root.as_str());
        let what = format!("{signal:?} after {delay_ms} ms of {whole}");
        assert_eq!(
            week_snapshot(&env, "2026-02"),
            before,
            "{what}: the previous week changed"
        );
        // the week's version was completed before this rerun: whatever the signal hit, it is
        // still complete, whole (its record decodes and it is one of the snapshots, this
        // round's or an earlier one's), verifies clean and restores
        let (record, _, complete) = week_snapshot(&env, "2026-03");
        assert!(
            complete,
            "{what}: the interrupted rerun took the complete version away"
        );
        let copy = env.copy("2026-03", "vaultwarden", "data");
        assert!(
            backup_core::decode_record(&record).is_ok(),
            "{what}: complete without a good record"
        );
        assert!(
            snapshots.contains(&state(&copy)),
            "{what}: a version marked complete is none of the snapshots"
        );
        let verify = env.run(CTL, &["verify", "--week", "2026-03"]);
        assert_eq!(verify.status.code(), Some(0), "{what}: {}", text(&verify));
        let dest = env.root.join(format!("restored-{round}"));
        let restore = env.restore_vaultwarden(&dest);
        assert_eq!(restore.status.code(), Some(0), "{what}: {}", text(&restore));
        assert_eq!(state(&dest), state(&copy), "{what}: the restore differs");
        std::fs::remove_dir_all(&dest).unwrap();
    }
    // the next run completes the week, equal to the source
    let out = env.day("2026-01-14");
    assert!(
        interrupted > 3,
        "only {interrupted} runs were interrupted: the test proves little"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        rsync_differences(&vol, &env.copy("2026-03", "vaultwarden", "data")).trim(),
        ""
    );
    assert_eq!(week_snapshot(&env, "2026-02"), before);
}

/// The newest snapshot of vm-100-pvc-a under the dir backend's snapshots folder.
fn latest_snapshot(env: &Env) -> String {
    let mut names: Vec<String> = std::fs::read_dir(env.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("vm-100-pvc-a"))
        .collect();
    names.sort();
    names.pop().unwrap()
}
