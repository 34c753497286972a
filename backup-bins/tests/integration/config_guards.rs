//! Config values are data, never code (issue 19, items 2, 5, 6, 8): a quote in an ssh path
//! cannot become an ssh option, the offsite copy cannot sit inside what it copies, a file
//! anyone can write is refused when running as root, and every error names its key.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

use crate::harness::*;

fn check(config: &Utf8Path) -> Output {
    Command::new(CTL)
        .args(["--config", config.as_str(), "config", "check"])
        .output()
        .unwrap()
}

/// A folder with a config holding `offsite` and a fake `ssh` on PATH that records its argv
/// instead of connecting: what rsync really hands to ssh.
struct Site {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(root.join("backup/pvc-data")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let ssh = root.join("bin/ssh");
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done >> {root}/ssh-argv\nexit 255\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { _dir: dir, root }
    }

    fn config(&self, offsite: &str) -> Utf8PathBuf {
        let p = self.root.join("config.toml");
        std::fs::write(
            &p,
            format!(
                "backup-root = \"{}/backup\"\n[snapshots]\nbackend = \"dir\"\nvolumes-dir = \
                 \"{0}/v\"\nsnapshots-dir = \"{0}/s\"\n[pvc-backup]\nmount-dir = \"{0}/mnt\"\n\
                 [offsite]\n{offsite}\n",
                self.root
            ),
        )
        .unwrap();
        p
    }

    fn argv(&self) -> Vec<String> {
        std::fs::read(self.root.join("ssh-argv"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

/// The exact string of the report: a quote in `ssh-key-file` injected `-oProxyCommand` and ran
/// a command as root. It is refused by `config check` naming the key, and whatever rsync is
/// given as a remote shell, a quoted key path stays one argument after `-i`, behind the fixed
/// options (ssh keeps the first value of an option).
#[test]
fn a_quote_in_an_ssh_path_never_becomes_an_ssh_option() {
    let site = Site::new();
    let evil = site.root.join("evil.sh");
    let pwned = site.root.join("pwned");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch {pwned}\n")).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (key, value) in [
        (
            "ssh-key-file",
            format!("/x/k' -oProxyCommand={evil} -oSendEnv=x'"),
        ),
        ("ssh-key-file", "/x/k\" -oProxyCommand=x".to_owned()),
        ("ssh-key-file", "/x/with space".to_owned()),
        ("ssh-key-file", "/x/$(touch /tmp/pwned)".to_owned()),
        ("ssh-key-file", "/x/`id`".to_owned()),
        ("ssh-key-file", "/x/a;b".to_owned()),
        ("ssh-key-file", "/x/a\\nb".to_owned()),
        (
            "ssh-known-hosts",
            "/x/kh -oStrictHostKeyChecking=no".to_owned(),
        ),
        ("ssh-key-file", "-oProxyCommand=x".to_owned()),
    ] {
        let config = site.config(&format!(
            "destination = \"backup@nas.invalid:/vol\"\n{key} = \"{}\"",
            value.replace('"', "\\\"")
        ));
        let out = check(&config);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{key} = {value:?}: {t}");
        assert!(
            t.contains(&format!("offsite.{key}")),
            "{key} = {value:?}: {t}"
        );
    }
    // below the config check: the remote shell rsync really runs, split by rsync itself
    let key = format!("/x/k' -oProxyCommand={evil} -oSendEnv=x'");
    let ssh = backup_rsync::SshOptions {
        key_file: Some(key.clone()),
        known_hosts: Some("/x/it's known".to_owned()),
        port: None,
    };
    let inv = backup_rsync::backup_root_copy(
        "rsync",
        &site.root.join("backup"),
        "backup@nas.invalid:/vol/pve-backup/",
        &[],
        &[],
        Some(&ssh),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        site.root.join("bin"),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(&inv.program)
        .args(&inv.args)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        !pwned.exists(),
        "the injected ProxyCommand ran: {}",
        text(&out)
    );
    let argv = site.argv();
    let i = argv
        .iter()
        .position(|a| a == "-i")
        .unwrap_or_else(|| panic!("no -i in what ssh got: {argv:?} ({})", text(&out)));
    assert_eq!(argv[i + 1], key, "{argv:?}");
    assert!(
        argv.contains(&"UserKnownHostsFile=/x/it's known".to_owned()),
        "{argv:?}"
    );
    let strict = argv
        .iter()
        .position(|a| a == "StrictHostKeyChecking=yes")
        .unwrap();
    assert!(strict < i, "the fixed options come first: {argv:?}");
    assert!(
        !argv.iter().any(|a| a.starts_with("-oProxyCommand")),
        "{argv:?}"
    );
}

/// The offsite destination apart from what it copies: inside the backup root each run nested the
/// last copy in itself; around it, or equal to a tree, or holding the change log, the copy would
/// be sent into itself. Each is a configuration error naming both keys.
#[test]
fn an_offsite_destination_inside_what_it_copies_is_refused() {
    let site = Site::new();
    let root = &site.root;
    for (offsite, other) in [
        (format!("destination = \"{root}/backup/offsite\""), "backup-root"),
        (format!("destination = \"{root}\""), "backup-root"),
        (
            format!(
                "destination = \"{root}/nas\"\n[[offsite.tree]]\nsource = \"{root}/nas/nfs\"\nname = \"nfs\""
            ),
            "offsite.tree[0].source",
        ),
        (
            format!("destination = \"{root}/nas\"\nchange-log = \"{root}/nas/changes.log\""),
            "offsite.change-log",
        ),
    ] {
        let out = check(&site.config(&offsite));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{offsite}: {t}");
        assert!(t.contains("offsite.destination") && t.contains(other), "{t}");
    }
    let out = check(&site.config(&format!(
        "destination = \"nas:/vol\"\n[[offsite.tree]]\nsource = \"{root}/backup/pvc-data\"\nname = \"x\""
    )));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("offsite.tree[0].source") && t.contains("backup-root"),
        "{t}"
    );
}

/// As root, a config, key file or env file that someone else could write (or in a folder they
/// could write) is refused with exit 2 naming the file, its mode and owner.
#[test]
fn files_anyone_can_write_are_refused_when_running_as_root() {
    assert!(
        is_root(),
        "the ownership checks only apply to root: run scripts/test as root"
    );
    let site = Site::new();
    let config = site.config("destination = \"/srv/offsite\"");
    assert_eq!(
        check(&config).status.code(),
        Some(0),
        "{}",
        text(&check(&config))
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let t = text(&check(&config));
    assert!(t.contains("exit Some(2)") && t.contains("mode 666"), "{t}");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    // a folder above it that its group can write
    std::fs::set_permissions(&site.root, std::fs::Permissions::from_mode(0o775)).unwrap();
    let t = text(&check(&config));
    assert!(t.contains("exit Some(2)") && t.contains("its group"), "{t}");
    std::fs::set_permissions(&site.root, std::fs::Permissions::from_mode(0o700)).unwrap();
    // owned by another user
    std::os::unix::fs::chown(&config, Some(1000), Some(1000)).unwrap();
    let t = text(&check(&config));
    assert!(
        t.contains("exit Some(2)") && t.contains("owned by uid 1000"),
        "{t}"
    );
    std::os::unix::fs::chown(&config, Some(0), Some(0)).unwrap();
    // the ssh key file it names
    let key = site.root.join("key");
    std::fs::write(&key, "not really a key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = site.config(&format!(
        "destination = \"backup@nas:/vol\"\nssh-key-file = \"{key}\""
    ));
    let t = text(&check(&config));
    assert!(
        t.contains("exit Some(2)") && t.contains("offsite.ssh-key-file") && t.contains("mode 666"),
        "{t}"
    );
    // backup-dump's env file
    let env_file = site.root.join("secrets.env");
    std::fs::write(&env_file, "PGPASSWORD=x\n").unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o646)).unwrap();
    let dest = site.root.join("dumps");
    std::fs::create_dir_all(&dest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_backup-dump"))
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args([
            "--name",
            "pg",
            "--dest",
            dest.as_str(),
            "--env-file",
            env_file.as_str(),
        ])
        .args(["--", "true"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("exit Some(2)") && t.contains("writable by everyone"),
        "{t}"
    );
}

/// A number too large for its key named the key as `(file)`: now the key and the file.
#[test]
fn a_number_too_large_names_its_key() {
    let site = Site::new();
    let config = site.root.join("config.toml");
    std::fs::write(
        &config,
        "backup-root = \"/b\"\n[pvc-backup]\nmax-snapshot-age-hours = 18446744073709551615\n",
    )
    .unwrap();
    let t = text(&check(&config));
    assert!(t.contains("exit Some(2)"), "{t}");
    assert!(t.contains("`pvc-backup.max-snapshot-age-hours`"), "{t}");
    assert!(!t.contains("(file)"), "{t}");
}

/// Every other config value that reaches a command line (issue 19, item 5), fed quotes, spaces,
/// a leading `-`, `$(…)`, backquotes, `;` and a newline: a host that goes to ssh as an argument,
/// a tree name, are refused naming the key; a local destination and a tree source are data
/// (after `--`, no shell anywhere): the sync works with them and nothing runs.
#[test]
fn hostile_values_are_refused_by_key_or_carried_as_data() {
    let site = Site::new();
    let pf = |host: &str| {
        format!(
            "destination = \"/srv/x\"\n[pfsense]\napi-url = \"https://pf\"\napi-key-file = \
             \"/k\"\nssh-host = \"{host}\"\nssh-key-file = \"/k2\""
        )
    };
    let cases: Vec<(String, &str)> = [
        "-oProxyCommand=x:/vol",
        "ho st:/vol",
        "host$(id):/vol",
        "host`id`:/vol",
        "host;id:/vol",
        "it's:/vol",
        "/nas\\nx",
    ]
    .iter()
    .map(|d| (format!("destination = \"{d}\""), "offsite.destination"))
    .chain(["-x", "a\\nb"].iter().map(|n| {
        (
            format!(
                "destination = \"/srv/x\"\n[[offsite.tree]]\nsource = \"/srv/nfs\"\nname = \"{n}\""
            ),
            "offsite.tree[0].name",
        )
    }))
    .chain(
        [
            "pf lan",
            "$(id)",
            "-oProxyCommand=x",
            "a;b",
            "`id`",
            "pf\\nlan",
        ]
        .iter()
        .map(|h| (pf(h), "pfsense.ssh-host")),
    )
    .collect();
    for (offsite, key) in cases {
        let out = check(&site.config(&offsite));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{offsite}: {t}");
        assert!(t.contains(&format!("`{key}`")), "{offsite}: {t}");
    }
    // data: a local destination and a tree source full of shell syntax
    let pwned = site.root.join("pwned");
    let odd = format!("n a's $(touch {pwned}) `touch {pwned}`; -x");
    let dest = site.root.join(&odd);
    let src = site.root.join(format!("src {odd}"));
    std::fs::create_dir_all(&dest).unwrap();
    write(&src.join("f.txt"), "data\n");
    let config = site.config(&format!(
        "destination = \"{}\"\n[[offsite.tree]]\nsource = \"{}\"\nname = \"t $(id)\"",
        dest.as_str().replace('\\', "\\\\").replace('"', "\\\""),
        src.as_str().replace('\\', "\\\\").replace('"', "\\\""),
    ));
    assert_eq!(
        check(&config).status.code(),
        Some(0),
        "{}",
        text(&check(&config))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_offsite-sync-backup"))
        .args(["--config", config.as_str()])
        .output()
        .unwrap();
    assert!(!pwned.exists(), "a config value ran: {}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dest.join("t $(id)/f.txt")).unwrap(),
        "data\n",
        "{}",
        text(&out)
    );
}

/// The first run on a new host, without a config: exit 2 naming the file, `--config` and where
/// a config comes from; `-c` is `--config`.
#[test]
fn a_missing_config_says_how_to_get_one_and_c_is_config() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("config.toml");
    let out = std::process::Command::new(crate::harness::DAILY)
        .arg("-c")
        .arg(&missing)
        .output()
        .unwrap();
    let said = crate::harness::text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("{}: cannot read it", missing.display())),
        "{said}"
    );
    assert!(said.contains("--config PATH"), "{said}");
    assert!(
        said.contains(&format!("backupctl config example > {}", missing.display())),
        "{said}"
    );
    // what the example prints is a config the same flag then reads
    let example = std::process::Command::new(crate::harness::CTL)
        .args(["config", "example"])
        .output()
        .unwrap();
    std::fs::write(&missing, &example.stdout).unwrap();
    let out = std::process::Command::new(crate::harness::CTL)
        .arg("-c")
        .arg(&missing)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", crate::harness::text(&out));
}

/// Run by another user than root, what needs root whole (owners kept, every file read, volumes
/// mounted) is refused first: exit 77, said, nothing read (the config is not even opened) or
/// written. What any user may run (`backupctl list`, `restore dump`, the dump drill) is not.
#[test]
fn a_job_that_needs_root_refuses_another_user_first_with_exit_77() {
    assert!(
        is_root(),
        "the test switches to nobody: run the tests as root"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let missing = dir.path().join("config.toml");
    let as_nobody = |bin: &str, args: &[&str]| -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
            .arg("--config")
            .arg(&missing)
            .args(args)
            .output()
            .unwrap()
    };
    for (bin, args) in [
        (DAILY, &[][..]),
        (SNAPSHOT, &["create"][..]),
        (CTL, &["verify"][..]),
        (CTL, &["drill"][..]),
        (
            CTL,
            &["restore", "pvc", "--pvc", "ns/p", "--to", "/tmp/never"][..],
        ),
    ] {
        let out = as_nobody(bin, args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(77), "{bin} {args:?}: {said}");
        assert!(said.contains("must run as root"), "{said}");
        assert!(said.contains("nothing was done"), "{said}");
    }
    assert!(!std::path::Path::new("/tmp/never").exists());
    // not root's alone: the config's absence is what it says (exit 2), not 77
    let out = as_nobody(CTL, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = as_nobody(CTL, &["drill", "--dumps-only"]);
    assert_ne!(out.status.code(), Some(77), "{}", text(&out));
}
