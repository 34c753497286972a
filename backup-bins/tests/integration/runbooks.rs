//! The runbooks in `docs/runbooks/` cannot rot: every `sh` block of every runbook runs here, as
//! written, against one small homelab (the `dir` backend, real rsync, a local offsite copy with
//! the NFS tree holding real dumps of PostgreSQL, MariaDB, etcd, Redis and a Vault snapshot),
//! real target servers (a fresh PostgreSQL, a fresh MariaDB), a stand-in `vault` on PATH, and
//! the binaries of this build first on PATH. Only the runbook's first block (its variables) is
//! given other values, through the environment (`NAME=${NAME:-example}`). The `sh lvm-vm` blocks
//! run inside the LVM VM (`scripts/test-lvm-vm`).

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};

use crate::dump_restore::{sources_into, Maria};
use crate::dump_servers::Pg;
use crate::harness::{text, write, Env, CTL};

const RUNBOOKS: [&str; 8] = [
    "restore-lvm-snapshot",
    "restore-pvc-from-backup",
    "restore-postgresql",
    "restore-mysql",
    "restore-vault",
    "restore-vaultwarden",
    "restore-etcd",
    "restore-full-cluster",
];

fn repo() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The commands `scripts/runbook-blocks` extracts from `name` for `tag`.
fn blocks(name: &str, tag: &str) -> String {
    let out = Command::new(repo().join("scripts/runbook-blocks"))
        .arg(repo().join(format!("docs/runbooks/{name}.md")))
        .arg(tag)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn secret_file(p: &Utf8Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs the `sh` blocks of `name` with bash (`-eu -o pipefail`: the first failing command stops
/// it), `vars` in the environment; returns the output, failing the test with it on an error.
fn run_runbook(env: &Env, name: &str, vars: &[(&str, String)], path: &str) -> String {
    let script = blocks(name, "");
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-x", "-c", &script])
        .env("PATH", path)
        .env("HOMELAB_BACKUP_CONFIG", env.config())
        .env("COLUMNS", "200")
        .current_dir(&env.root);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "runbook {name} failed (bash -x trace and output):\n{}",
        text(&out)
    );
    text(&out)
}

/// Every runbook has commands a test runs: here, or in the LVM VM.
#[test]
fn every_runbook_has_tested_commands_and_readme_links_them() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let index = std::fs::read_to_string(repo().join("docs/runbooks/README.md")).unwrap();
    for name in RUNBOOKS {
        let here = blocks(name, "").matches("# --- ").count();
        let vm = blocks(name, "lvm-vm").matches("# --- ").count();
        assert!(here + vm > 2, "{name}: no command block a test runs");
        assert!(
            readme.contains(&format!("docs/runbooks/{name}.md")),
            "README does not link {name}"
        );
        assert!(
            index.contains(&format!("({name}.md)")),
            "the index lacks {name}"
        );
    }
}

#[test]
fn every_runbook_runs_as_written() {
    // the homelab: a SQLite database in vaultwarden's volume, the dumps in the NFS tree
    let env = Env::new();
    fixtures::sqlite::clean(env.vol("vm-100-pvc-a").join("db.sqlite3").as_std_path());
    let nfs = env.root.join("nfs");
    let dumps = nfs.join("postgresql-backup");
    std::fs::create_dir_all(&dumps).unwrap();
    std::fs::create_dir(env.root.join("nas")).unwrap();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!(
            "{cfg}\n[offsite]\ndestination = \"{root}/nas\"\ndaily-wait-seconds = 5\n\
             [[offsite.tree]]\nsource = \"{nfs}\"\nname = \"nfs\"\n\
             [dumps]\nfolders = [\"{dumps}\"]\n",
            root = env.root
        ),
    )
    .unwrap();
    let (keep, _) = crate::dump_servers::tempdir();
    let _sources = sources_into(keep, dumps.clone());
    let out = env.day("2026-01-05");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = env.run(
        env!("CARGO_BIN_EXE_offsite-sync-backup"),
        &["--now", "2026-01-05T06:00:00Z", "--full"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // this build first on PATH, then a stand-in `vault`
    let bindir = Utf8Path::new(CTL).parent().unwrap().to_owned();
    let stand = env.root.join("standin");
    std::fs::create_dir(&stand).unwrap();
    write(
        &stand.join("vault"),
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"${0%/*}/vault.log\"\n",
    );
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(stand.join("vault"), mode).unwrap();
    let path = format!("{bindir}:{stand}:{}", std::env::var("PATH").unwrap());
    let secrets = env.root.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let fresh = env.root.join("out");
    let target = |n: &str| fresh.join(n).to_string();
    let dumps_var = ("DUMPS", dumps.to_string());

    run_runbook(
        &env,
        "restore-pvc-from-backup",
        &[
            ("PVC", "vaultwarden/data".to_owned()),
            ("TARGET", target("pvc")),
            ("FILE", "dir/file-0.txt".to_owned()),
        ],
        &path,
    );
    assert!(fresh.join("pvc/dir/file-4.txt").is_file());
    assert!(fresh.join("pvc-files/dir/file-0.txt").is_file());

    let pg = Pg::start(None);
    secret_file(&secrets.join("pg.env"), "PGPASSWORD=unused-by-trust\n");
    let out = run_runbook(
        &env,
        "restore-postgresql",
        &[
            dumps_var.clone(),
            ("PG", pg.root.to_string()),
            ("DB", "app".to_owned()),
            ("PG_ENV", secrets.join("pg.env").to_string()),
        ],
        &path,
    );
    assert!(out.contains("it holds: app: 2 tables, 5,003 rows"), "{out}");
    assert_eq!(
        pg.psql(
            None,
            "SELECT count(*) FROM pg_database WHERE datname = 'app'"
        ),
        "1\n"
    );

    let maria = Maria::start();
    secret_file(
        &secrets.join("my.cnf"),
        &format!("[client]\nuser=root\nsocket={}\n", maria.sock),
    );
    let out = run_runbook(
        &env,
        "restore-mysql",
        &[
            dumps_var.clone(),
            ("MY_CNF", secrets.join("my.cnf").to_string()),
            ("DB", "shop".to_owned()),
        ],
        &path,
    );
    assert!(
        out.contains("it holds: shop: 2 tables, 1,203 rows"),
        "{out}"
    );
    assert_eq!(maria.sql("SELECT COUNT(*) FROM shop.orders"), "1200\n");

    secret_file(
        &secrets.join("vault.env"),
        "VAULT_ADDR=http://127.0.0.1:1\nVAULT_TOKEN=s.runbook\n",
    );
    let out = run_runbook(
        &env,
        "restore-vault",
        &[
            dumps_var.clone(),
            ("VAULT_ENV", secrets.join("vault.env").to_string()),
        ],
        &path,
    );
    assert!(!out.contains("s.runbook"), "{out}");
    let said = std::fs::read_to_string(stand.join("vault.log")).unwrap();
    assert!(
        said.starts_with("operator raft snapshot restore "),
        "{said}"
    );

    let out = run_runbook(
        &env,
        "restore-vaultwarden",
        &[
            ("PVC", "vaultwarden/data".to_owned()),
            ("TARGET", target("vaultwarden")),
        ],
        &path,
    );
    assert!(fresh.join("vaultwarden/db.sqlite3").is_file(), "{out}");

    let out = run_runbook(
        &env,
        "restore-etcd",
        &[dumps_var.clone(), ("DATA_DIR", target("etcd-restored"))],
        &path,
    );
    assert!(out.contains("all keys: 42 keys"), "{out}");
    assert!(fresh.join("etcd-restored/member").is_dir());

    // the site: the backup disk renamed away, everything from the NAS
    let backup = env.root.join("backup");
    let gone = env.root.join("backup-gone");
    std::fs::rename(&backup, &gone).unwrap();
    let pg2 = Pg::start(None);
    let out = run_runbook(
        &env,
        "restore-full-cluster",
        &[
            ("OFFSITE", env.root.join("nas").to_string()),
            ("PVC", "vaultwarden/data".to_owned()),
            ("TARGET", target("rebuild")),
            ("PG", pg2.root.to_string()),
            ("PG_ENV", secrets.join("pg.env").to_string()),
        ],
        &path,
    );
    std::fs::rename(&gone, &backup).unwrap();
    assert!(out.contains("RTO site"), "{out}");
    assert!(!out.contains("MISSING"), "{out}");
    assert!(fresh
        .join("rebuild/vaultwarden/data/dir/file-0.txt")
        .is_file());
    assert_eq!(
        pg2.psql(
            None,
            "SELECT count(*) FROM pg_database WHERE datname = 'app'"
        ),
        "1\n"
    );
}
