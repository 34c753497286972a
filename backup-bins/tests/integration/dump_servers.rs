//! backup-dump against real servers, started on Unix sockets in temp folders: PostgreSQL
//! (`pg_dumpall` → a fresh cluster → the data compares equal) and Redis (`redis-cli --rdb {out}`
//! → a fresh `redis-server` loads it → the keys compare equal). The passwords go through
//! `--env-file`. `scripts/test` installs both servers; without them these tests fail, saying so.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use crate::dump_real::dump_command;
use crate::harness::{is_root, text};

pub fn gunzip(p: &Utf8Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, root)
}

/// The one dump file in `dir`.
fn only_dump(dir: &Utf8Path, name: &str) -> Utf8PathBuf {
    let files: Vec<Utf8PathBuf> = dir
        .read_dir_utf8()
        .unwrap()
        .map(|e| e.unwrap().path().to_owned())
        .filter(|p| p.file_name().unwrap().starts_with(&format!("{name}-")))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

pub fn pg_bin(tool: &str) -> Utf8PathBuf {
    let mut found: Vec<Utf8PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| Utf8PathBuf::from_path_buf(e.path().join("bin").join(tool)).unwrap())
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's {tool} is not installed: run scripts/test, which installs postgresql")
    })
}

/// A PostgreSQL cluster owned by `postgres`, listening only on a socket in its folder.
pub struct Pg {
    _dir: tempfile::TempDir,
    pub root: Utf8PathBuf,
}

impl Pg {
    pub fn start(password: Option<&str>) -> Self {
        assert!(
            is_root(),
            "the PostgreSQL round trip runs as root (initdb runs as postgres)"
        );
        let (dir, root) = tempdir();
        let owner = Command::new("chown")
            .args(["postgres:postgres", root.as_str()])
            .status()
            .unwrap();
        assert!(owner.success());
        let mut init = Command::new("runuser");
        init.args(["-u", "postgres", "--"])
            .arg(pg_bin("initdb"))
            .args([
                "-D",
                root.join("data").as_str(),
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ]);
        if let Some(pw) = password {
            let pwfile = root.join("pw");
            std::fs::write(&pwfile, pw).unwrap();
            Command::new("chown")
                .args(["postgres", pwfile.as_str()])
                .status()
                .unwrap();
            init.args(["--auth=scram-sha-256", "--pwfile", pwfile.as_str()]);
        } else {
            init.arg("--auth=trust");
        }
        let out = init.output().unwrap();
        assert!(out.status.success(), "initdb: {}", text(&out));
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args(["-D", root.join("data").as_str(), "-w", "-l"])
            .arg(root.join("log"))
            .args(["-o", &format!("-k {root} -c listen_addresses=''")])
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            text(&out),
            std::fs::read_to_string(root.join("log")).unwrap_or_default()
        );
        Pg { _dir: dir, root }
    }

    pub fn psql(&self, password: Option<&str>, sql: &str) -> String {
        let mut c = Command::new(pg_bin("psql"));
        c.args([
            "-h",
            self.root.as_str(),
            "-U",
            "postgres",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-c", sql]);
        if let Some(pw) = password {
            c.env("PGPASSWORD", pw);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args([
                "-D",
                self.root.join("data").as_str(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

#[test]
fn postgresql_dump_restores_into_a_fresh_cluster_with_equal_data() {
    let secret = "pg-S3cret-only-in-the-env-file";
    let src = Pg::start(Some(secret));
    src.psql(Some(secret), "CREATE DATABASE app");
    let mut c = Command::new(pg_bin("psql"));
    let out = c
        .args([
            "-h",
            src.root.as_str(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args([
            "-c",
            "CREATE TABLE t (id int primary key, name text, data bytea); \
             INSERT INTO t SELECT i, 'row ' || i || E'\\nwith newline', sha256(i::text::bytea) \
             FROM generate_series(1, 5000) i;",
        ])
        .env("PGPASSWORD", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (_d, dest) = tempdir();
    let env = dest.join("pg.env");
    std::fs::write(&env, format!("PGPASSWORD={secret}\n")).unwrap();
    std::fs::create_dir(dest.join("dumps")).unwrap();
    let dumps = dest.join("dumps");
    let dump_all = |extra: &[&str]| {
        dump_command("postgresql", &dumps)
            .args(["--ext", "sql", "--env-file", env.as_str()])
            .args(extra)
            .arg("--")
            .arg(pg_bin("pg_dumpall"))
            .args(["-h", src.root.as_str(), "-U", "postgres"])
            .output()
            .unwrap()
    };
    let out = dump_all(&["--min-bytes", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(secret));
    let sql = gunzip(&only_dump(&dumps, "postgresql"));
    // restore into a fresh cluster
    let fresh = Pg::start(None);
    let mut restore = Command::new(pg_bin("psql"))
        .args(["-h", fresh.root.as_str(), "-U", "postgres", "-q", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        restore.stdin.take().unwrap().write_all(&sql).unwrap();
    }
    let out = restore.wait_with_output().unwrap();
    assert!(out.status.success(), "restore: {}", text(&out));
    let query = "SELECT id, name, encode(data, 'hex') FROM t ORDER BY id";
    let dump_of = |pg: &Pg, pw: Option<&str>| {
        let mut c = Command::new(pg_bin("psql"));
        c.args([
            "-h",
            pg.root.as_str(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-At",
            "-c",
            query,
        ]);
        if let Some(pw) = pw {
            c.env("PGPASSWORD", pw);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out.stdout
    };
    let (a, b) = (dump_of(&src, Some(secret)), dump_of(&fresh, None));
    assert_eq!(String::from_utf8_lossy(&a).lines().count(), 5000 * 2);
    assert!(a == b, "the restored data differs");
    // a wrong password: the dump fails, nothing is stored, the tail of stderr says why
    std::fs::write(&env, "PGPASSWORD=wrong\n").unwrap();
    let out = dump_all(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    only_dump(&dumps, "postgresql");
}

// ---------------------------------------------------------------------------------------------
// Redis

pub fn redis_server(dir: &Utf8Path, password: Option<&str>, dbfilename: &str) -> Child {
    let ok = Command::new("redis-server").arg("--version").output();
    assert!(
        ok.is_ok_and(|o| o.status.success()),
        "redis-server is not installed: run scripts/test, which installs redis-server"
    );
    let mut c = Command::new("redis-server");
    c.args(["--port", "0", "--unixsocket"])
        .arg(dir.join("redis.sock"))
        .args([
            "--dir",
            dir.as_str(),
            "--dbfilename",
            dbfilename,
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no"])
        // the RDB transfer would wait 5 s for more replicas first
        .args(["--repl-diskless-sync-delay", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(pw) = password {
        // the test's own server: the password on its argv is the test's, not backup-dump's
        c.args(["--requirepass", pw]);
    }
    let child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("redis.sock").exists() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

pub fn redis_cli(dir: &Utf8Path, password: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.arg("-s").arg(dir.join("redis.sock")).args(args);
    if let Some(pw) = password {
        c.env("REDISCLI_AUTH", pw);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redis_rdb_dump_loads_into_a_fresh_server_with_equal_keys() {
    let secret = "redis-S3cret-in-the-env-file";
    let (_s, src) = tempdir();
    let _server = Killed(redis_server(&src, Some(secret), "dump.rdb"));
    let mut mset = vec!["MSET".to_owned()];
    for i in 0..500 {
        mset.push(format!("key:{i}"));
        mset.push(format!("value {i}\n"));
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    redis_cli(&src, Some(secret), &mset);
    redis_cli(&src, Some(secret), &["RPUSH", "list", "a", "b", "c"]);
    let (_d, dest) = tempdir();
    std::fs::create_dir(dest.join("dumps")).unwrap();
    let env = dest.join("redis.env");
    std::fs::write(&env, format!("REDISCLI_AUTH={secret}\n")).unwrap();
    let sock = src.join("redis.sock");
    let out = dump_command("redis", &dest.join("dumps"))
        .args([
            "--ext",
            "rdb",
            "--min-bytes",
            "100",
            "--env-file",
            env.as_str(),
        ])
        .args(["--", "redis-cli", "-s", sock.as_str(), "--rdb", "{out}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(secret));
    let rdb = gunzip(&only_dump(&dest.join("dumps"), "redis"));
    assert!(rdb.starts_with(b"REDIS"), "not an RDB file");
    let (_f, fresh) = tempdir();
    std::fs::write(fresh.join("restored.rdb"), &rdb).unwrap();
    let _restored = Killed(redis_server(&fresh, None, "restored.rdb"));
    let keys = |dir: &Utf8Path, pw| {
        let mut k: Vec<String> = redis_cli(dir, pw, &["KEYS", "*"])
            .lines()
            .map(String::from)
            .collect();
        k.sort();
        k
    };
    let (a, b) = (keys(&src, Some(secret)), keys(&fresh, None));
    assert_eq!(a.len(), 501);
    assert_eq!(a, b);
    let mut mget = vec!["MGET"];
    mget.extend(
        a.iter()
            .filter(|k| k.starts_with("key:"))
            .map(String::as_str),
    );
    assert_eq!(
        redis_cli(&src, Some(secret), &mget),
        redis_cli(&fresh, None, &mget)
    );
    assert_eq!(
        redis_cli(&fresh, None, &["LRANGE", "list", "0", "-1"]),
        "a\nb\nc\n"
    );
    // without the password, redis-cli fails: refused, nothing stored beside the good one
    let out = dump_command("redis", &dest.join("dumps"))
        .env_remove("REDISCLI_AUTH")
        .args(["--ext", "rdb", "--now", "2030-01-01T00:00:00Z"])
        .args(["--", "redis-cli", "-s", sock.as_str(), "--rdb", "{out}"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    only_dump(&dest.join("dumps"), "redis");
}

/// A Redis server holding `cmd` (one redis-cli command, e.g. `MSET a 1`), dumped by
/// `backup-dump --name redis --ext rdb` into `dumps`; the server is stopped again.
pub fn redis_dump(dumps: &Utf8Path, cmd: &[&str]) {
    let (_r, rdir) = tempdir();
    let _server = Killed(redis_server(&rdir, None, "dump.rdb"));
    redis_cli(&rdir, None, cmd);
    let sock = rdir.join("redis.sock");
    let out = dump_command("redis", dumps)
        .args(["--ext", "rdb", "--", "redis-cli", "-s", sock.as_str()])
        .args(["--rdb", "{out}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
