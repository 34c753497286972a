//! The CronJob manifests in `deploy/kubernetes/` cannot drift from the binaries or the seed's
//! schedule: each is parsed, checked against the table below (schedule, one image, Forbid, a
//! backoff limit, requests, secrets only from files), and its command line is run through the
//! real binary with `--dry-run`, its mount paths mapped to temp folders. The Containerfile must
//! ship every binary and client tool the manifests run.

use std::collections::BTreeSet;
use std::process::Command;

use camino::Utf8PathBuf;
use serde_yaml::Value;

use crate::harness::text;

const DUMP: &str = env!("CARGO_BIN_EXE_backup-dump");
const SQLITE: &str = env!("CARGO_BIN_EXE_sqlite-backup");

/// (file, schedule, binary, name after --name, keep-days): the seed's table.
const JOBS: [(&str, &str, &str, &str, Option<&str>); 7] = [
    (
        "postgresql-backup",
        "0 0 * * *",
        "backup-dump",
        "postgresql",
        Some("14"),
    ),
    (
        "mysql-backup",
        "30 0 * * *",
        "backup-dump",
        "mysql",
        Some("14"),
    ),
    (
        "etcd-backup",
        "0 1 * * 0",
        "backup-dump",
        "etcd",
        Some("30"),
    ),
    (
        "vault-backup",
        "0 2 * * 0",
        "backup-dump",
        "vault",
        Some("30"),
    ),
    (
        "redis-backup",
        "0 3 * * 0",
        "backup-dump",
        "redis",
        Some("30"),
    ),
    (
        "vaultwarden-backup",
        "0 */6 * * *",
        "sqlite-backup",
        "vaultwarden",
        Some("30"),
    ),
    (
        "vaultwarden-integrity-check",
        "0 * * * *",
        "sqlite-backup",
        "vaultwarden",
        None,
    ),
];

/// The Debian package (or download) in the Containerfile that brings each client tool.
const TOOLS: [(&str, &str); 5] = [
    ("pg_dumpall", "postgresql-client"),
    ("mysqldump", "default-mysql-client"),
    ("etcdctl", "etcd-client"),
    ("redis-cli", "redis-tools"),
    ("vault", "releases.hashicorp.com/vault"),
];

fn repo() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn load(file: &str) -> Value {
    let path = repo()
        .join("deploy/kubernetes")
        .join(format!("{file}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut v = v;
    for p in path {
        v = match p.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*p],
        };
    }
    v
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The container's mount paths.
fn mount_paths(c: &Value) -> Vec<String> {
    c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v["mountPath"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_cronjob_follows_the_schedule_and_the_rules() {
    let mut images = BTreeSet::new();
    let listed =
        std::fs::read_to_string(repo().join("deploy/kubernetes/kustomization.yaml")).unwrap();
    for (file, schedule, binary, name, keep) in JOBS {
        assert!(
            listed.contains(&format!("{file}.yaml")),
            "{file} not in kustomization.yaml"
        );
        let m = load(file);
        assert_eq!(s(&m, &["apiVersion"]).as_str(), Some("batch/v1"), "{file}");
        assert_eq!(s(&m, &["kind"]).as_str(), Some("CronJob"), "{file}");
        assert_eq!(s(&m, &["metadata", "name"]).as_str(), Some(file));
        assert_eq!(
            s(&m, &["spec", "schedule"]).as_str(),
            Some(schedule),
            "{file}"
        );
        assert_eq!(
            s(&m, &["spec", "concurrencyPolicy"]).as_str(),
            Some("Forbid"),
            "{file}"
        );
        let job = s(&m, &["spec", "jobTemplate", "spec"]);
        assert!(
            job["backoffLimit"].as_u64().is_some(),
            "{file}: backoffLimit"
        );
        let pod = s(job, &["template", "spec"]);
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{file}"
        );
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{file}");
        let c = &containers[0];
        images.insert(c["image"].as_str().unwrap().to_owned());
        for r in ["cpu", "memory"] {
            assert!(
                !c["resources"]["requests"][r].is_null(),
                "{file}: requests.{r}"
            );
        }
        let command = strs(&c["command"]);
        assert_eq!(command, [binary], "{file}");
        let args = strs(&c["args"]);
        let flag = |f: &str| {
            args.iter()
                .position(|a| a == f)
                .map(|i| args[i + 1].as_str())
        };
        assert_eq!(flag("--name"), Some(name), "{file}");
        assert_eq!(flag("--keep-days"), keep, "{file}");
        assert!(
            flag("--pushgateway").is_some_and(|u| u.starts_with("http://")),
            "{file}: the Pushgateway address"
        );
        // secrets: only as files; nothing that looks like one in an env value or an argument
        for e in c["env"].as_sequence().into_iter().flatten() {
            let n = e["name"].as_str().unwrap();
            let secretish = ["PASSWORD", "TOKEN", "AUTH", "SECRET", "KEY"]
                .iter()
                .any(|w| n.contains(w));
            assert!(!secretish, "{file}: env {n} holds a secret in the manifest");
        }
        for a in &args {
            let l = a.to_lowercase();
            assert!(
                !(l.contains("password=")
                    || l.starts_with("-p") && l.len() > 2 && !l.starts_with("--")),
                "{file}: `{a}` looks like a secret on argv"
            );
        }
        let mounts = mount_paths(c);
        if binary == "backup-dump" || args.first().is_some_and(|a| a == "backup") {
            assert!(
                mounts.iter().any(|m| m == "/backup"),
                "{file}: the dump folder on NFS"
            );
            let vols = pod["volumes"].as_sequence().unwrap();
            let backup = vols.iter().find(|v| v["name"] == "backup").unwrap();
            assert!(
                backup["nfs"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/srv/nfs/")),
                "{file}: the seed's NFS folder"
            );
        }
    }
    assert_eq!(images.len(), 1, "one image for every job: {images:?}");
}

/// Runs each manifest's command line through the real binary with `--dry-run`, its mount
/// paths mapped into a temp folder: every flag must be accepted and the job must plan.
#[test]
fn every_cronjob_command_line_is_accepted_by_its_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    for (file, _, binary, _, _) in JOBS {
        let m = load(file);
        let c = s(
            &m,
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
                "0",
            ],
        );
        let mounts = mount_paths(c);
        let base = root.join(file);
        for mp in &mounts {
            std::fs::create_dir_all(base.join(mp.trim_start_matches('/'))).unwrap();
        }
        // what the Secrets and the data volume would hold
        let secrets = base.join("secrets");
        if secrets.is_dir() {
            for (f, body) in [
                ("pg.env", "PGPASSWORD=x\n"),
                ("vault.env", "VAULT_TOKEN=x\n"),
                ("redis.env", "REDISCLI_AUTH=x\n"),
                ("my.cnf", "[client]\npassword=x\n"),
            ] {
                std::fs::write(secrets.join(f), body).unwrap();
            }
        }
        if base.join("data").is_dir() {
            fixtures::sqlite::clean(base.join("data/db.sqlite3").as_std_path());
        }
        let map = |a: &str| -> String {
            for mp in &mounts {
                if a == mp || a.starts_with(&format!("{mp}/")) {
                    return format!("{base}{a}");
                }
                if let Some((flag, path)) = a.split_once('=') {
                    if path.starts_with(&format!("{mp}/")) {
                        return format!("{flag}={base}{path}");
                    }
                }
            }
            a.to_owned()
        };
        let mut args: Vec<String> = strs(&c["args"]).iter().map(|a| map(a)).collect();
        // --dry-run before `--` (after it, everything is the dump command's)
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.insert(at, "--dry-run".to_owned());
        let program = match binary {
            "backup-dump" => DUMP,
            _ => SQLITE,
        };
        let out = Command::new(program)
            .env_remove("HOMELAB_BACKUP_CONFIG")
            .env_remove("PUSHGATEWAY_URL")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {program} {args:?}\n{}",
            text(&out)
        );
    }
}

#[test]
fn the_containerfile_ships_every_binary_and_tool_the_manifests_run() {
    let cf = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    assert!(cf.contains(" AS build"), "multi-stage");
    assert!(cf.contains("USER 10001"), "a non-root user");
    for (file, _, binary, _, _) in JOBS {
        assert!(
            cf.contains(&format!("--bin {binary}"))
                && cf.contains(&format!("/usr/local/bin/{binary}")),
            "{file}: the image lacks {binary}"
        );
        let c = &load(file)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        let args = strs(&c["args"]);
        if let Some(i) = args.iter().position(|a| a == "--") {
            let tool = &args[i + 1];
            let (_, package) = TOOLS
                .iter()
                .find(|(t, _)| t == tool)
                .unwrap_or_else(|| panic!("{file}: no package known for {tool}"));
            assert!(
                cf.contains(package),
                "{file}: the image lacks {package} for {tool}"
            );
        }
    }
}

/// The weekly dump drill: the seed's rules for a CronJob, every dump folder of the jobs above
/// mounted read-only from its NFS folder and named by `--dump-folder`, the image's `backupctl`
/// and servers; its command line runs through the real `backupctl` with `--dry-run` (a whole
/// PostgreSQL dump in one folder: checked, no server started).
#[test]
fn the_dump_drill_reads_every_dump_folder_read_only() {
    let m = load("dump-drill");
    let listed =
        std::fs::read_to_string(repo().join("deploy/kubernetes/kustomization.yaml")).unwrap();
    assert!(listed.contains("dump-drill.yaml"));
    assert_eq!(s(&m, &["spec", "schedule"]).as_str(), Some("0 6 * * 0"));
    assert_eq!(
        s(&m, &["spec", "concurrencyPolicy"]).as_str(),
        Some("Forbid")
    );
    let pod = s(&m, &["spec", "jobTemplate", "spec", "template", "spec"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    assert_eq!(strs(&c["command"]), ["backupctl"]);
    let args = strs(&c["args"]);
    assert_eq!(&args[..2], ["drill", "--dumps-only"]);
    let folders: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--dump-folder")
        .map(|w| w[1].as_str())
        .collect();
    let vols = pod["volumes"].as_sequence().unwrap();
    for (file, _, binary, name, _) in JOBS {
        if binary != "backup-dump" {
            continue;
        }
        let folder = format!("/dumps/{name}");
        assert!(folders.contains(&folder.as_str()), "{file}: not drilled");
        let mount = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["mountPath"] == folder.as_str())
            .unwrap_or_else(|| panic!("{folder} not mounted"));
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "{folder}");
        let vol = vols.iter().find(|v| v["name"] == mount["name"]).unwrap();
        // the same NFS folder the dump job writes
        let job = load(file);
        let jvols = s(
            &job,
            &["spec", "jobTemplate", "spec", "template", "spec", "volumes"],
        );
        let written = jvols
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "backup")
            .unwrap();
        assert_eq!(vol["nfs"]["path"], written["nfs"]["path"], "{file}");
    }
    let cf = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    assert!(cf.contains("--bin backupctl") && cf.contains("/usr/local/bin/backupctl"));
    for server in [
        "postgresql ",
        "mariadb-server",
        "redis-server",
        "etcd-server",
    ] {
        assert!(cf.contains(server), "the image lacks {server}");
    }
    // the command line, its folders mapped into a temp folder, under --dry-run
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let mut mapped = vec!["--dry-run".to_owned()];
    for a in &args {
        if a.starts_with("/dumps/") {
            let p = root.join(a.trim_start_matches('/'));
            std::fs::create_dir_all(&p).unwrap();
            mapped.push(p.to_string());
        } else if a.starts_with("http://") {
            mapped.push("http://127.0.0.1:1".to_owned());
        } else {
            mapped.push(a.clone());
        }
    }
    let pg = root.join("dumps/postgresql/postgresql-20260101-000000.sql.gz");
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&pg).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(
            b"--\n-- PostgreSQL database cluster dump\n--\n\n\
              --\n-- PostgreSQL database cluster dump complete\n--\n\n",
        )
        .unwrap();
        gz.finish().unwrap();
    }
    let out = Command::new(crate::harness::CTL)
        .env_remove("HOMELAB_BACKUP_CONFIG")
        .args(&mapped)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{mapped:?}\n{}", text(&out));
    assert!(
        text(&out).contains("a real run loads it into a throwaway postgresql server"),
        "{}",
        text(&out)
    );
}
