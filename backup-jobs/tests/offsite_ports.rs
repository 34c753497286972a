//! `offsite-sync-backup` through its ports: a backup root in a temp folder, the NAS adapter
//! over a recording runner that answers as rsync would (its `--stats` as captured from the real
//! one), the tier's repositories faked. What only the real rsync and a NAS can show is in the end-to-end suite.

use backup_core::testing::{FakeStore, RecordingRunner, Transcript};
use backup_core::{BackupStore, Config, OffsiteState, Output, StoreFile};
use backup_host::repository::{FakeRepository, RepositoryTarget};
use backup_jobs::offsite_sync_backup::{job_of, OffsiteDeps, OffsiteOptions};
use backup_run::Outcome;
use camino::Utf8PathBuf;
use chrono::{DateTime, Utc};

struct World {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    cfg: Config,
    transcript: Transcript,
    runner: RecordingRunner,
    store: FakeStore,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let base = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let root = base.join("backup");
    std::fs::create_dir_all(root.join("pvc-data")).unwrap();
    std::fs::create_dir_all(base.join("nas")).unwrap();
    let cfg = Config::from_toml(
        &base.join("config.toml"),
        &format!(
            "backup-root = \"{root}\"\n[offsite]\ndestination = \"{base}/nas\"\n\
             require-mount = false\n"
        ),
    )
    .unwrap();
    let transcript = Transcript::new();
    let runner = RecordingRunner::new(&transcript);
    let stats =
        std::fs::read_to_string(fixtures::data_dir().join("rsync/stats-nothing.txt")).unwrap();
    runner.answer(&["rsync"], Output::ok(stats));
    let store = FakeStore::new(&root, &transcript);
    World {
        _dir: dir,
        root,
        cfg,
        transcript,
        runner,
        store,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-09T04:00:00Z")
        .unwrap()
        .to_utc()
}

fn opts() -> OffsiteOptions {
    OffsiteOptions::default()
}

fn run(
    w: &World,
    targets: &[Box<dyn RepositoryTarget>],
) -> backup_host::Result<backup_jobs::offsite_sync_backup::OffsiteReport> {
    run_as(w, targets, false)
}

fn run_as(
    w: &World,
    targets: &[Box<dyn RepositoryTarget>],
    dry_run: bool,
) -> backup_host::Result<backup_jobs::offsite_sync_backup::OffsiteReport> {
    // the NAS is the real adapter (every rsync command line as it is run), over a runner
    // that records them and answers as rsync would
    let nas = backup_rsync::RsyncOffsite::new(
        Box::new(&w.runner),
        "rsync",
        w.cfg.offsite.as_ref().unwrap(),
        dry_run,
    );
    let deps = OffsiteDeps {
        cfg: &w.cfg,
        now: now(),
        dry_run,
        nas: &nas,
        store: &w.store,
    };
    job_of(&deps, targets, opts())
}

fn state(w: &World) -> OffsiteState {
    let bytes = w.store.read(StoreFile::OffsiteState).unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The rsync lines of the run, with the temp folder named `BASE`.
fn rsync_lines(w: &World) -> Vec<String> {
    let base = w.root.parent().unwrap().as_str();
    w.transcript
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("$ rsync"))
        .map(|l| l.replace(base, "BASE"))
        .collect()
}

/// Step 1 reads what the NAS holds (the mirror), then sends the backup root whole, hard links
/// and all, to `pve-backup/`; the state says when it last succeeded.
#[test]
fn step_one_sends_the_backup_root_and_stamps_the_state() {
    let w = world();
    let r = run(&w, &[]).unwrap();
    assert_eq!(r.exit().code(), 0, "{}", r.text(false));
    let lines = rsync_lines(&w);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].ends_with("-- BASE/nas/pve-backup/ BASE/backup/.offsite-mirror/"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("$ rsync -aHAX --numeric-ids --delete"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("--exclude=/.offsite-state.json"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with("-- BASE/backup/ BASE/nas/pve-backup/"),
        "{}",
        lines[1]
    );
    assert_eq!(state(&w).backup_root, Some(now()));
}

/// A backup root that is not the backup disk (no `pvc-data/`: an unmounted disk's empty
/// folder) is never sent with `--delete`: step 1 fails, the NAS and the state are untouched.
#[test]
fn a_backup_root_that_is_not_the_disk_sends_nothing() {
    let w = world();
    std::fs::remove_dir(w.root.join("pvc-data")).unwrap();
    let r = run(&w, &[]).unwrap();
    assert_eq!(r.exit().code(), 1, "{}", r.text(false));
    assert!(
        r.text(false).contains("no pvc-data/ folder"),
        "{}",
        r.text(false)
    );
    assert!(rsync_lines(&w).is_empty(), "{:#?}", rsync_lines(&w));
    assert_eq!(state(&w).backup_root, None);
}

/// rsync failing fails step 1 with its words, and the state keeps the last success it had.
#[test]
fn a_failed_send_keeps_the_last_success() {
    let w = world();
    let before = DateTime::parse_from_rfc3339("2026-03-02T04:00:00Z")
        .unwrap()
        .to_utc();
    let known = OffsiteState {
        backup_root: Some(before),
        ..OffsiteState::default()
    };
    let json = serde_json::to_vec(&known).unwrap();
    w.store.write(StoreFile::OffsiteState, &json).unwrap();
    w.runner.answer(
        &["rsync", "-aHAX"],
        Output::failed(23, "rsync: [sender] some files vanished"),
    );
    let r = run(&w, &[]).unwrap();
    let text = r.text(false);
    assert_eq!(r.exit().code(), 1, "{text}");
    assert!(text.contains("exit status 23: partial transfer"), "{text}");
    assert!(text.contains("some files vanished"), "{text}");
    assert_eq!(state(&w).backup_root, Some(before));
}

/// A tier repository that fails is a failed step of its own: step 1 stands (exit 3, some
/// failed), and the state holds nothing for the repository.
#[test]
fn a_failing_tier_repository_is_its_own_failed_step() {
    let w = world();
    let b2 = FakeRepository {
        name: "b2".to_owned(),
        snapshots: Some(Vec::new()),
        send_fails: Some("the repository is locked".to_owned()),
    };
    let r = run(&w, &[Box::new(b2)]).unwrap();
    let text = r.text(false);
    assert_eq!(r.exit().code(), 3, "{text}");
    assert!(
        text.contains("tier:b2") && text.contains("the repository is locked"),
        "{text}"
    );
    let st = state(&w);
    assert_eq!(st.backup_root, Some(now()));
    assert!(!st.tier.contains_key("b2"), "{st:?}");
}

/// The world with one NFS tree `media` (one file) and `max-delete` as given.
fn with_tree(max_delete: u64) -> World {
    let mut w = world();
    let base = w.root.parent().unwrap().to_owned();
    std::fs::create_dir_all(base.join("media")).unwrap();
    std::fs::write(base.join("media/a.jpg"), b"jpeg").unwrap();
    w.cfg = Config::from_toml(
        &base.join("config.toml"),
        &format!(
            "backup-root = \"{root}\"\n[offsite]\ndestination = \"{base}/nas\"\n\
             require-mount = false\nmax-delete = {max_delete}\n\
             [[offsite.tree]]\nname = \"media\"\nsource = \"{base}/media\"\n",
            root = w.root
        ),
    )
    .unwrap();
    w
}

/// A tree whose change log cannot be trusted (no tracker ran) gets a full pass: its deletions
/// counted first by a dry run, then sent with rsync's own `--max-delete` as a second guard; the
/// state says a full pass succeeded.
#[test]
fn an_untrusted_change_log_makes_a_full_pass_counted_before_it_deletes() {
    let w = with_tree(1000);
    let r = run(&w, &[]).unwrap();
    let text = r.text(false);
    assert_eq!(r.exit().code(), 0, "{text}");
    assert!(
        text.contains("full pass (the change log cannot be trusted"),
        "{text}"
    );
    let tree: Vec<String> = rsync_lines(&w)
        .into_iter()
        .filter(|l| l.ends_with("-- BASE/media/ BASE/nas/media/"))
        .collect();
    assert_eq!(tree.len(), 2, "{tree:#?}");
    assert!(tree[0].contains(" --dry-run "), "{}", tree[0]);
    assert!(tree[1].contains(" --max-delete=1000 "), "{}", tree[1]);
    let st = state(&w);
    assert_eq!(st.trees["media"].last_full_success, Some(now()));
}

/// More deletions than `max-delete` in the count: the tree fails and nothing is sent to it (a
/// wiped source must not wipe the NAS); step 1 stands.
#[test]
fn more_deletions_than_max_delete_fail_the_tree_before_anything_is_sent() {
    let w = with_tree(0);
    let counted =
        std::fs::read_to_string(fixtures::data_dir().join("rsync/stats-with-deletions.txt"))
            .unwrap();
    w.runner.answer(
        &[
            "rsync",
            "-aHAX",
            "--numeric-ids",
            "--delete",
            "--modify-window=-1",
            "--stats",
            "--dry-run",
        ],
        Output::ok(counted),
    );
    let r = run(&w, &[]).unwrap();
    let text = r.text(false);
    assert_eq!(r.exit().code(), 3, "{text}");
    assert!(text.contains("max-delete"), "{text}");
    let sent: Vec<String> = rsync_lines(&w)
        .into_iter()
        .filter(|l| l.ends_with("BASE/nas/media/") && !l.contains("--dry-run"))
        .collect();
    assert!(sent.is_empty(), "{sent:#?}");
    let st = state(&w);
    assert_eq!(st.backup_root, Some(now()));
    assert!(
        st.trees
            .get("media")
            .is_none_or(|t| t.last_success.is_none()),
        "{st:?}"
    );
}

/// `--dry-run`: step 1 reads the NAS into a temp folder (not the backup root's mirror, no
/// records), hands its send to the runner to record and reports it planned; no disk id is
/// written, nothing recovered.
#[test]
fn a_dry_run_reads_into_a_temp_folder_and_plans_the_send() {
    let w = with_tree(1000);
    let r = run_as(&w, &[], true).unwrap();
    let text = r.text(true);
    let lines = rsync_lines(&w);
    let read = lines
        .iter()
        .find(|l| l.contains("--include=/pvc-data/"))
        .unwrap();
    assert!(!read.contains(".offsite-mirror"), "{read}");
    assert!(
        !read.contains(".records"),
        "a dry run reads no records: {read}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("-- BASE/backup/ BASE/nas/pve-backup/")),
        "{lines:#?}"
    );
    assert!(!w.root.join(".offsite-mirror").exists());
    assert!(!w.root.join(backup_host::root_id::ROOT_ID_FILE).exists());
    assert!(text.contains("backup-root"), "{text}");
    assert_eq!(r.exit().code(), 0, "{text}");
}
