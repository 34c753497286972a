//! `backupctl restore dump` and the dump drill against real servers: dumps made by `backup-dump`
//! from a real PostgreSQL, MariaDB, Redis and etcd (Debian 12's packages, which `scripts/test`
//! installs), then loaded by backupctl into throwaway servers it starts itself and into servers
//! an operator names, with what was loaded counted against the source. Vault cannot be installed
//! here: a stand-in `vault` on PATH records what it was asked. Without the servers these tests
//! fail, saying which package is missing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use crate::dump_real::dump_command;
use crate::dump_servers::{redis_cli, redis_server, tempdir, Killed, Pg};
use crate::harness::{is_root, text, CTL};
use crate::tier_real::free_port;

fn chmod(p: &Utf8Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn need(program: &str, package: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin"])
        .any(|d| Utf8Path::new(d).join(program).exists());
    assert!(
        found,
        "{program} is not installed: run scripts/test, which installs {package}"
    );
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A MariaDB server run as `nobody` on a socket in its folder.
pub struct Maria {
    _dir: tempfile::TempDir,
    pub sock: Utf8PathBuf,
    _server: Killed,
}

impl Maria {
    pub fn start() -> Self {
        need("mariadbd", "mariadb-server");
        let (dir, root) = tempdir();
        let data = root.join("data");
        let tmp = root.join("tmp");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        run(Command::new("chown").args(["nobody:nogroup", data.as_str(), tmp.as_str()]));
        let as_nobody = |c: &str| {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                c,
            ]);
            cmd
        };
        // its own temp folder: installs sharing /tmp collide on their temp tables
        run(as_nobody("mariadb-install-db").args([
            "--no-defaults",
            &format!("--datadir={data}"),
            &format!("--tmpdir={tmp}"),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]));
        let sock = data.join("mysqld.sock");
        let server = as_nobody("mariadbd")
            .args([
                "--no-defaults",
                &format!("--datadir={data}"),
                &format!("--socket={sock}"),
                &format!("--tmpdir={tmp}"),
                "--skip-networking",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Maria {
            _dir: dir,
            sock,
            _server: Killed(server),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(m.sock.exists() && m.try_sql("SELECT 1").is_some()) {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-S",
                self.sock.as_str(),
                "-u",
                "root",
                "-N",
                "-B",
            ])
            .args(["-e", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|| panic!("mariadb failed: {sql}"))
    }
}

/// An etcd member on loopback ports.
pub struct Etcd {
    _dir: tempfile::TempDir,
    pub url: String,
    _server: Killed,
}

impl Etcd {
    pub fn start() -> Self {
        need("etcd", "etcd-server");
        need("etcdctl", "etcd-client");
        let (dir, root) = tempdir();
        let (c, p) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{c}");
        let peer = format!("http://127.0.0.1:{p}");
        let server = Command::new("etcd")
            .args(["--name", "src", "--data-dir", root.join("data").as_str()])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("src={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let e = Etcd {
            _dir: dir,
            url,
            _server: Killed(server),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !e.ctl(&["endpoint", "health"]).status.success() {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        e
    }

    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url])
            .args(args)
            .output()
            .unwrap()
    }
}

/// The sources the dumps came from (kept running while the test looks) and their folder.
pub struct Sources {
    _dir: tempfile::TempDir,
    pub dumps: Utf8PathBuf,
    _pg: Pg,
    _maria: Maria,
}

/// Real sources filled with data and dumped by `backup-dump` into one folder: PostgreSQL (`app`:
/// 2 tables, 5 003 rows), MariaDB (`shop`: 2 tables, 1 203 rows), Redis (db0: 500 keys, db2:
/// 3), etcd (42 keys, 40 under /registry/), and a Vault raft snapshot archive.
fn sources() -> Sources {
    let (dir, root) = tempdir();
    let dumps = root.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    sources_into(dir, dumps)
}

/// [`sources`], dumped into `dumps` (an existing folder); `dir` is kept with them.
pub fn sources_into(dir: tempfile::TempDir, dumps: Utf8PathBuf) -> Sources {
    assert!(is_root(), "the dump drill tests run as root");
    let dump = |name: &str, ext: &str, cmd: &[&str]| {
        let out = dump_command(name, &dumps)
            .args(["--ext", ext, "--"])
            .args(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "backup-dump {name}: {}", text(&out));
    };
    // PostgreSQL
    let pg = Pg::start(None);
    pg.psql(None, "CREATE DATABASE app");
    // a name pg_dumpall quotes: `\encoding` and a quoted `\connect` around its section
    pg.psql(None, "CREATE DATABASE \"my-app\"");
    let psql = crate::dump_servers::pg_bin("psql");
    run(Command::new(&psql)
        .args([
            "-X",
            "-h",
            pg.root.as_str(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-c",
        ])
        .arg(
            "CREATE TABLE t (id int primary key, v text); \
             INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 5000) i; \
             CREATE TABLE \"we\"\"ird\" (x int); INSERT INTO \"we\"\"ird\" VALUES (1), (2), (3);",
        ));
    let pg_dumpall = crate::dump_servers::pg_bin("pg_dumpall");
    dump(
        "postgresql",
        "sql",
        &[
            pg_dumpall.as_str(),
            "-h",
            pg.root.as_str(),
            "-U",
            "postgres",
        ],
    );
    // MariaDB
    let maria = Maria::start();
    maria.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id int primary key, item text); \
         CREATE TABLE shop.`odd``name` (x int); INSERT INTO shop.`odd``name` VALUES (1),(2),(3); \
         INSERT INTO shop.orders SELECT seq, CONCAT('item ', seq) FROM shop.seq_1_to_1200;",
    );
    // more tables than one counting query takes
    let many: String = (0..150)
        .map(|i| format!("CREATE TABLE many.t{i} (x int); INSERT INTO many.t{i} VALUES ({i});"))
        .collect();
    maria.sql(&format!("CREATE DATABASE many; {many}"));
    dump(
        "mysql",
        "sql",
        &[
            "mariadb-dump",
            "--no-defaults",
            "-S",
            maria.sock.as_str(),
            "-u",
            "root",
            "--all-databases",
            "--single-transaction",
        ],
    );
    // Redis
    let (_r, rdir) = tempdir();
    let _redis = Killed(redis_server(&rdir, None, "dump.rdb"));
    let mut mset = vec!["MSET".to_owned()];
    for i in 0..500 {
        mset.extend([format!("key:{i}"), format!("value {i}")]);
    }
    redis_cli(
        &rdir,
        None,
        &mset.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    redis_cli(
        &rdir,
        None,
        &["-n", "2", "MSET", "a", "1", "b", "2", "c", "3"],
    );
    let sock = rdir.join("redis.sock");
    dump(
        "redis",
        "rdb",
        &["redis-cli", "-s", sock.as_str(), "--rdb", "{out}"],
    );
    // etcd
    let etcd = Etcd::start();
    for i in 0..40 {
        assert!(etcd
            .ctl(&["put", &format!("/registry/pods/default/p{i}"), "x"])
            .status
            .success());
    }
    etcd.ctl(&["put", "/other/a", "1"]);
    etcd.ctl(&["put", "/other/b", "2"]);
    let url = etcd.url.clone();
    dump(
        "etcd",
        "db",
        &["etcdctl", "--endpoints", &url, "snapshot", "save", "{out}"],
    );
    // Vault: a raft snapshot archive as Vault writes it (a gzipped tar)
    let (_v, vdir) = tempdir();
    for (f, body) in [("meta.json", "{}"), ("state.bin", "raft state")] {
        std::fs::write(vdir.join(f), body).unwrap();
    }
    let sums = run(Command::new("sha256sum")
        .args(["meta.json", "state.bin"])
        .current_dir(&vdir));
    std::fs::write(vdir.join("SHA256SUMS"), sums).unwrap();
    let snap = vdir.join("vault.snap");
    run(Command::new("tar")
        .args(["-czf", snap.as_str(), "-C", vdir.as_str()])
        .args(["meta.json", "state.bin", "SHA256SUMS"]));
    dump("vault", "snap", &["cp", snap.as_str(), "{out}"]);
    Sources {
        _dir: dir,
        dumps,
        _pg: pg,
        _maria: maria,
    }
}

fn ctl(args: &[&str]) -> Command {
    let mut c = Command::new(CTL);
    c.env_remove("HOMELAB_BACKUP_CONFIG")
        .env("COLUMNS", "200")
        .args(args);
    c
}

fn drill_json(dumps: &Utf8Path) -> (Option<i32>, Value, String) {
    let out = ctl(&[
        "--json",
        "drill",
        "--dumps-only",
        "--dump-folder",
        dumps.as_str(),
    ])
    .output()
    .unwrap();
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), v, text(&out))
}

/// `name: tables, rows` of one drilled dump.
fn loaded(v: &Value, name: &str) -> Vec<(String, u64, u64)> {
    let d = v["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dump"]["name"] == name)
        .unwrap_or_else(|| panic!("no dump {name} drilled: {v}"));
    assert!(d["failed"].is_null(), "{name}: {}", d["failed"]);
    d["loaded"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["tables"].as_u64().unwrap(),
                i["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every dump of the folder restored into a throwaway server of its kind, counted like the
/// source; one RTO row per kind; then a PostgreSQL dump cut mid-stream and gzipped again (it
/// reads as a fine gzip) fails the drill by name, and `restore dump` refuses it naming the next
/// older one.
#[test]
fn the_drill_restores_every_dump_into_a_throwaway_server() {
    let src = sources();
    let (code, v, out) = drill_json(&src.dumps);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        loaded(&v, "postgresql"),
        [("app".to_owned(), 2, 5003), ("my-app".to_owned(), 0, 0)],
        "{out}"
    );
    assert_eq!(
        loaded(&v, "mysql"),
        [("many".to_owned(), 150, 150), ("shop".to_owned(), 2, 1203)]
    );
    assert_eq!(
        loaded(&v, "redis"),
        [("db0".to_owned(), 0, 500), ("db2".to_owned(), 0, 3)]
    );
    assert_eq!(
        loaded(&v, "etcd"),
        [
            ("all keys".to_owned(), 0, 42),
            ("/registry (Kubernetes)".to_owned(), 0, 40)
        ]
    );
    let rto: Vec<&str> = v["rto"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["layer"].as_str().unwrap())
        .collect();
    assert_eq!(rto, ["postgresql", "mysql", "redis", "etcd", "vault"]);
    // no server is left running, no temp folder of the drill is left behind
    assert!(
        crate::harness::pids_mentioning("backupctl-dump-").is_empty(),
        "a throwaway server outlived the drill"
    );
    // the text names each kind with what it held
    let out = ctl(&["drill", "--dumps-only", "--dump-folder", src.dumps.as_str()])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("dump postgresql (postgresql) restored into a throwaway server"),
        "{t}"
    );
    assert!(t.contains("app: 2 tables, 5,003 rows"), "{t}");
    assert!(t.contains("RTO etcd"), "{t}");

    // a dump cut mid-stream and gzipped again: a whole gzip of half a dump
    let good = backup_dumps::list_dumps(&src.dumps)
        .unwrap()
        .into_iter()
        .find(|d| d.name == "postgresql")
        .unwrap();
    let sql = crate::dump_servers::gunzip(&good.path);
    let cut = src.dumps.join("postgresql-29991231-000000.sql.gz");
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&cut).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(&sql[..sql.len() / 2]).unwrap();
        gz.finish().unwrap();
    }
    let (code, v, out) = drill_json(&src.dumps);
    assert_eq!(code, Some(1), "{out}");
    let failed = v["differences"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["path"], cut.as_str());
    assert!(
        failed[0]["what"].as_str().unwrap().contains("cut short"),
        "{out}"
    );
    let out = ctl(&["restore", "dump", "postgresql", "--scratch"])
        .args(["--dump-folder", src.dumps.as_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        // the error is laid out to COLUMNS: its continuation lines joined back
        text(&out).replace("\n    ", " ").contains(&format!(
            "the next older one is {} (`backupctl restore dump postgresql --at {}`)",
            good.path,
            good.stamp_text()
        )),
        "{}",
        text(&out)
    );
    // that older one, named by --at, loads
    let out = ctl(&["restore", "dump", "postgresql", "--scratch"])
        .args([
            "--dump-folder",
            src.dumps.as_str(),
            "--at",
            &good.stamp_text(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("app: 2 tables, 5,003 rows"),
        "{}",
        text(&out)
    );
}

/// `restore dump` into servers and folders an operator names: one PostgreSQL database out of
/// the whole-cluster dump into a fresh cluster (refused the second time: the database exists),
/// one MariaDB database, Redis's RDB placed in a stopped server's folder (never over one), an
/// etcd data dir (must be new), Vault through a stand-in that records its argv and sees the
/// token only in its environment; `--dry-run` changes nothing.
#[test]
fn restore_dump_loads_into_the_named_target_and_counts_it() {
    let src = sources();
    let d = src.dumps.as_str();
    let restore = |args: &[&str]| {
        ctl(&["restore", "dump"])
            .args(args)
            .args(["--dump-folder", d])
            .output()
            .unwrap()
    };
    // PostgreSQL: only `app`, into a fresh cluster
    let fresh = Pg::start(None);
    let host = fresh.root.as_str();
    let dry = restore(&[
        "postgresql",
        "--host",
        host,
        "--database",
        "app",
        "--dry-run",
    ]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("psql -X -q -h"), "{}", text(&dry));
    assert_eq!(
        fresh.psql(
            None,
            "SELECT count(*) FROM pg_database WHERE datname = 'app'"
        ),
        "0\n"
    );
    // a live server's roles keep their passwords: a name the dump lacks changes nothing, and
    // one it holds creates missing roles but never alters existing ones
    fresh.psql(None, "ALTER ROLE postgres PASSWORD 'kept-on-the-server'");
    let secret = || {
        fresh.psql(
            None,
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'",
        )
    };
    let before = secret();
    let out = restore(&["postgresql", "--host", host, "--database", "nosuch"]);
    assert_eq!(out.status.code(), Some(66), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(secret(), before);
    let out = restore(&["postgresql", "--host", host, "--database", "app"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(secret(), before, "the restore changed a role of the server");
    let folder = restore(&["postgresql", "--host", host, "--data-dir", "/tmp"]);
    assert_eq!(folder.status.code(), Some(2), "{}", text(&folder));
    assert!(
        text(&out).contains("it holds: app: 2 tables, 5,003 rows"),
        "{}",
        text(&out)
    );
    let again = restore(&["postgresql", "--host", host, "--database", "app"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("database app exists on that server"));

    // MariaDB: `shop` into a fresh server
    let maria = Maria::start();
    let out = restore(&[
        "mysql",
        "--host",
        maria.sock.as_str(),
        "--user",
        "root",
        "--database",
        "shop",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("shop: 2 tables, 1,203 rows"),
        "{}",
        text(&out)
    );
    assert_eq!(maria.sql("SELECT COUNT(*) FROM shop.orders"), "1200\n");

    // Redis: placed for a stopped server, then never over it
    let (_r, rdir) = tempdir();
    let out = restore(&["redis", "--data-dir", rdir.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("503 keys"), "{}", text(&out));
    let _server = Killed(redis_server(&rdir, None, "dump.rdb"));
    assert_eq!(redis_cli(&rdir, None, &["DBSIZE"]), "500\n");
    let out = restore(&["redis", "--data-dir", rdir.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("exists: nothing was changed"),
        "{}",
        text(&out)
    );
    let out = restore(&["redis"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // etcd: a new data dir, counted through a throwaway member
    let (_e, edir) = tempdir();
    let data = edir.join("etcd-restored");
    let out = restore(&["etcd", "--data-dir", data.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all keys: 42 keys"), "{}", text(&out));
    assert!(data.join("member/snap/db").exists());
    let out = restore(&["etcd", "--data-dir", data.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Vault: through a stand-in on PATH
    let (_s, stand) = tempdir();
    let log = stand.join("vault.log");
    std::fs::write(
        stand.join("vault"),
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$VAULT_STANDIN_LOG\"\n\
         [ \"$VAULT_TOKEN\" = s.token-in-env ] && echo token-in-env >> \"$VAULT_STANDIN_LOG\"\n\
         tar -tzf \"$5\" >> \"$VAULT_STANDIN_LOG\"\n",
    )
    .unwrap();
    chmod(&stand.join("vault"), 0o755);
    let env = stand.join("vault.env");
    std::fs::write(
        &env,
        "VAULT_ADDR=http://127.0.0.1:1\nVAULT_TOKEN=s.token-in-env\n",
    )
    .unwrap();
    chmod(&env, 0o600);
    let path = format!("{stand}:{}", std::env::var("PATH").unwrap());
    let out = ctl(&["restore", "dump", "vault", "--env-file", env.as_str()])
        .args(["--dump-folder", d])
        .env("PATH", &path)
        .env("VAULT_STANDIN_LOG", log.as_str())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("s.token-in-env"), "{}", text(&out));
    let said = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        &lines[..4],
        ["operator", "raft", "snapshot", "restore"],
        "{said}"
    );
    assert!(lines[4].ends_with(".snap.gz"), "{said}");
    assert!(said.contains("token-in-env\n"), "{said}");
    assert!(
        said.contains("state.bin"),
        "the stand-in could not read the snapshot: {said}"
    );
}

/// A dump is a file on an NFS share that a pod can write, and the SQL clients run shell
/// commands from their input (`\! cmd` in psql, `system cmd` in the MySQL client). A dump that
/// carries one, framed to look whole, fails the drill and `restore dump`, and the command never
/// runs: psql reads it restricted (`\restrict` with a key the dump cannot know), the MariaDB
/// client in `--sandbox`.
#[test]
fn a_dump_cannot_run_shell_commands() {
    assert!(is_root(), "the dump drill tests run as root");
    need("mariadbd", "mariadb-server");
    let (_d, dir) = tempdir();
    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let pwned = dir.join("pwned");
    let gz = |name: &str, body: &str| {
        use std::io::Write;
        let p = dumps.join(name);
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(body.as_bytes()).unwrap();
        gz.finish().unwrap();
    };
    for (how, line) in [
        ("alone", format!("\\! touch {pwned}-pg1")),
        (
            "after a statement",
            format!("SELECT 1; \\! touch {pwned}-pg2"),
        ),
        (
            "on a connect line",
            format!("\\connect postgres \\! touch {pwned}-pg3"),
        ),
        (
            "after its own unrestrict",
            format!("\\unrestrict k\n\\! touch {pwned}-pg4"),
        ),
        (
            "backquoted in a connect line",
            format!("\\connect `touch {pwned}-pg5; echo postgres`"),
        ),
        (
            "a connection string to another host",
            "\\connect -reuse-previous=off \"host=127.0.0.1 port=1 dbname=x\"".to_owned(),
        ),
    ] {
        gz(
            "postgresql-20260101-000000.sql.gz",
            &format!(
                "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict k\nSELECT 1;\n{line}\n\
                 \\unrestrict k\n--\n-- PostgreSQL database cluster dump complete\n--\n\n"
            ),
        );
        let (code, v, out) = drill_json(&dumps);
        assert_eq!(code, Some(1), "{how}: {out}");
        let what = v["differences"][0]["what"].as_str().unwrap_or_default();
        assert!(what.contains("restricted"), "{how}: {out}");
    }
    gz(
        "mysql-20260101-000000.sql.gz",
        &format!(
            "-- MariaDB dump 10.19\nSELECT 1;\nsystem touch {pwned}-my1\n\\! touch {pwned}-my2\n\
             -- Dump completed on 2026-01-01  0:00:00\n"
        ),
    );
    std::fs::remove_file(dumps.join("postgresql-20260101-000000.sql.gz")).unwrap();
    let (code, _, out) = drill_json(&dumps);
    assert_eq!(code, Some(1), "{out}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    assert!(left.is_empty(), "a dump ran a shell command: {left:?}");
}

/// One byte of a Redis RDB flipped (its end marker and checksum kept): redis-server refuses it
/// while loading, so the drill must not count keys before loading is over (`async_loading:0`
/// read as `loading:0` once counted a server that was about to abort).
#[test]
fn a_corrupt_rdb_fails_the_drill() {
    let (_d, dir) = tempdir();
    let mut mset = vec!["MSET".to_owned()];
    for i in 0..20_000 {
        mset.extend([format!("key:{i}"), format!("value {i} {}", "x".repeat(40))]);
    }
    let dumps = dir.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    crate::dump_servers::redis_dump(&dumps, &mset.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, v, out) = drill_json(&dumps);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(loaded(&v, "redis"), [("db0".to_owned(), 0, 20_000)]);
    let good = backup_dumps::list_dumps(&dumps).unwrap().remove(0);
    let mut rdb = crate::dump_servers::gunzip(&good.path);
    let mid = rdb.len() / 2;
    rdb[mid] ^= 0x55;
    std::fs::remove_file(&good.path).unwrap();
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&good.path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(&rdb).unwrap();
        gz.finish().unwrap();
    }
    let (code, _, out) = drill_json(&dumps);
    assert_eq!(code, Some(1), "{out}");
}

/// A file whose name a stamp search would cut inside a multi-byte character: it is not a
/// dump, and no command panics over it (a panic once left the run waiting for good).
#[test]
fn a_name_with_multibyte_characters_is_not_a_dump_and_nothing_panics() {
    let (_d, dir) = tempdir();
    std::fs::write(dir.join("x-éééééééé.txt"), "x").unwrap();
    let started = Instant::now();
    let (code, v, out) = drill_json(&dir);
    assert_eq!(code, Some(66), "{out}");
    assert!(
        v["error"].as_str().unwrap().contains("no dump to drill"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
}

/// On a host without a kind's servers (the PVE host has no database server), the weekly drill
/// checks those dumps whole and says they were not loaded there, and passes; the dump drill's
/// own run (`--dumps-only`, the CronJob) fails on them, naming the missing package.
#[test]
fn a_host_without_the_servers_checks_the_dumps_and_the_dump_drill_fails() {
    let env = crate::harness::Env::new();
    let dumps = env.root.join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    crate::dump_servers::redis_dump(&dumps, &["SET", "a", "1"]);
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!("{cfg}\n[dumps]\nfolders = [\"{dumps}\"]\n"),
    )
    .unwrap();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    // a PATH with rsync and nothing of Redis
    let bin = env.root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/rsync", bin.join("rsync")).unwrap();
    let out = env
        .command(
            CTL,
            &["drill", "--no-tier", "--now", "2026-01-06T09:00:00Z"],
        )
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("dump redis (redis) checked")
            && text(&out).contains("not loaded on this host"),
        "{}",
        text(&out)
    );
    let out = env
        .command(
            CTL,
            &["drill", "--dumps-only", "--now", "2026-01-06T09:00:00Z"],
        )
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("redis-server is not installed (Debian package redis-server)"),
        "{}",
        text(&out)
    );
}

/// A drill killed outright (kill -9, the stop watchdog's exit) leaves its temp folder and
/// throwaway servers: the next run ends the servers that name a folder whose lock nobody
/// holds, removes it, and says so; a folder a live run holds is left alone.
#[test]
fn what_a_killed_drill_left_is_ended_by_the_next() {
    let tmp = std::env::temp_dir();
    let stale =
        Utf8PathBuf::from_path_buf(tmp.join(format!("backupctl-dump-stale{}", std::process::id())))
            .unwrap();
    let held =
        Utf8PathBuf::from_path_buf(tmp.join(format!("backupctl-dump-held{}", std::process::id())))
            .unwrap();
    for d in [&stale, &held] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join(".lock"), "").unwrap();
    }
    // a "server" of the killed run, and the lock of a live one
    let server = Command::new("python3")
        .args([
            "-c",
            "import time; time.sleep(600)",
            stale.join("data").as_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let live = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); \
             time.sleep(600)",
            held.join(".lock").as_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_server, _live) = (Killed(server), Killed(live));
    std::thread::sleep(Duration::from_millis(300));
    let (_d, dir) = tempdir();
    crate::dump_servers::redis_dump(&dir, &["SET", "a", "1"]);
    let (code, _, out) = drill_json(&dir);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "removed {stale} left by a run that was killed (1 of its servers stopped)"
        )),
        "{out}"
    );
    assert!(!stale.exists());
    assert!(held.exists(), "a folder a live run holds was removed");
    std::fs::remove_dir_all(&held).unwrap();
}
