//! MySQL and MariaDB: a `mysqldump` / `mariadb-dump` SQL dump, loaded with the `mariadb` (or
//! `mysql`) client, which stops at the first error; a throwaway server from
//! `mariadb-install-db` and `mariadbd`, on a socket in its folder, no TCP.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use backup_core::{Invocation, Runner};
use backup_host::error::{Error, Result};

use crate::scratch::{program, run_step, Identity, Server};
use crate::sections::{feed_sql, mysql_header, require_database, server_target, sql_plan};
use crate::{DumpAdapter, DumpFile, DumpKind, Loaded, LoadedItem, Target};

pub(crate) struct Mysql;

const END: &str = "-- Dump completed";

/// MariaDB's client (`mysql` is its name on some hosts; Oracle's client has no `--sandbox`
/// and is refused by it).
fn client() -> Result<String> {
    program(&["mariadb", "mysql"], &[], "mariadb-client")
}

/// The client aimed at `to`: `--defaults-extra-file` first (the client takes it only there),
/// then `--sandbox --binary-mode --local-infile=0` (a dump is a file a pod can write: its
/// `system`, `\!`, `tee`, `source`, `connect` must not run; MariaDB's client 10.11.8 and later),
/// `-h`, `-P`, `-u`, the env file's variables (`MYSQL_PWD`).
fn mysql(to: &Target) -> Result<Invocation> {
    let mut inv = Invocation::new(&client()?, Vec::<String>::new());
    match &to.defaults_file {
        Some(f) => inv = inv.arg(format!("--defaults-extra-file={f}")),
        None if to.host.as_deref().is_some_and(|h| h.starts_with('/')) => {
            inv = inv.arg("--no-defaults");
        }
        None => {}
    }
    // no client command of the dump runs: --binary-mode parses none but DELIMITER (no
    // `connect`/`\\r` to another host with these credentials), --sandbox refuses the file and
    // shell ones, --local-infile=0 keeps LOAD DATA LOCAL from reading this host's files
    inv = inv.args(["--sandbox", "--binary-mode", "--local-infile=0"]);
    if let Some(h) = &to.host {
        // a path is the server's socket
        let flag = if h.starts_with('/') { "-S" } else { "-h" };
        inv = inv.arg(flag).arg(h);
    }
    if let Some(p) = to.port {
        inv = inv.arg("-P").arg(p.to_string());
    }
    if let Some(u) = &to.user {
        inv = inv.arg("-u").arg(u);
    }
    for (k, v) in &to.env {
        inv = inv.env(k, v.clone());
    }
    Ok(inv)
}

/// A literal for MySQL: quotes doubled, backslashes escaped.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// An identifier: backticks doubled.
fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// A query's rows (tab-separated, no header), the SQL on stdin (never on argv: a thousand
/// tables make a long query).
fn query(runner: &dyn Runner, to: &Target, sql: &str) -> Result<Vec<Vec<String>>> {
    let inv = mysql(to)?
        .args(["-N", "-B"])
        .stdin(sql.as_bytes().to_vec())
        .read_only();
    let out = run_step(runner, "query the server", &inv)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

const SYSTEM: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

fn inspect(runner: &dyn Runner, to: &Target) -> Result<Loaded> {
    let dbs: Vec<String> = match &to.database {
        Some(d) => vec![d.clone()],
        None => query(
            runner,
            to,
            &format!(
                "SELECT schema_name FROM information_schema.schemata \
                 WHERE schema_name NOT IN {SYSTEM} ORDER BY 1"
            ),
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect(),
    };
    let mut loaded = Loaded::default();
    for db in dbs {
        let tables: Vec<String> = query(
            runner,
            to,
            &format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = {} \
                 AND table_type = 'BASE TABLE' ORDER BY 1",
                literal(&db)
            ),
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
        // exact counts (information_schema's table_rows is InnoDB's estimate), a hundred
        // tables a query (a thousand in one overran the server's thread stack)
        let mut rows = 0u64;
        for chunk in tables.chunks(100) {
            let sum = chunk
                .iter()
                .map(|t| format!("(SELECT COUNT(*) FROM {}.{})", ident(&db), ident(t)))
                .collect::<Vec<_>>()
                .join(" + ");
            rows += query(runner, to, &format!("SELECT {sum}"))?
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        loaded.items.push(LoadedItem {
            name: db,
            tables: tables.len() as u64,
            rows,
        });
    }
    Ok(loaded)
}

fn load(runner: &dyn Runner, dump: &DumpFile, to: &Target) -> Result<()> {
    let inv = mysql(to)?;
    let out = feed_sql(
        runner,
        &inv,
        dump,
        to.database.as_deref(),
        mysql_header,
        false,
    )?;
    if !out.success() {
        let half = to
            .database
            .as_ref()
            .map(|d| format!(" Database {d} may be half loaded: drop it before trying again."))
            .unwrap_or_default();
        return Err(Error::Refused(format!(
            "{} did not load {} (exit {}): {}{half}",
            inv.program,
            dump.path,
            out.status
                .map_or_else(|| "by a signal".into(), |c| c.to_string()),
            crate::scratch::said(&out)
        )));
    }
    Ok(())
}

impl DumpAdapter for Mysql {
    fn kind(&self) -> DumpKind {
        DumpKind::Mysql
    }

    fn servers_installed(&self) -> Result<()> {
        client()?;
        program(
            &["mariadb-install-db", "mysql_install_db"],
            &[],
            "mariadb-server",
        )?;
        program(
            &["mariadbd", "mysqld"],
            &[Utf8PathBuf::from("/usr/sbin")],
            "mariadb-server",
        )?;
        Ok(())
    }

    fn complete(&self, _head: &[u8], tail: &[u8]) -> std::result::Result<(), String> {
        let tail = String::from_utf8_lossy(tail);
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        if last.starts_with(END) {
            Ok(())
        } else {
            Err(format!(
                "not whole: its last line is not `{END} on …` (the dump was cut short, or \
                 made with --skip-comments)"
            ))
        }
    }

    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>> {
        server_target(to, "MySQL")?;
        Ok(sql_plan(dump, to.database.as_deref(), &mysql(to)?))
    }

    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded> {
        server_target(to, "MySQL")?;
        if let Some(db) = &to.database {
            require_database(dump, mysql_header, db)?;
            let there = query(
                runner,
                to,
                &format!(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = {}",
                    literal(db)
                ),
            )?;
            if !there.is_empty() {
                return Err(Error::Refused(format!(
                    "database {db} exists on that server: nothing was changed. Rename or \
                     drop it first, then restore"
                )));
            }
        }
        load(runner, dump, to)?;
        inspect(runner, to)
    }

    fn drill(&self, dump: &DumpFile, scratch: &Utf8Path, runner: &dyn Runner) -> Result<Loaded> {
        let id = Identity::for_servers();
        let dir = id.server_dir(scratch, "mysql")?;
        let data = dir.join("data");
        let sbin = [Utf8PathBuf::from("/usr/sbin")];
        let install = program(
            &["mariadb-install-db", "mysql_install_db"],
            &[],
            "mariadb-server",
        )?;
        run_step(
            runner,
            "mariadb-install-db",
            &id.wrap(Invocation::new(
                &install,
                [
                    "--no-defaults".to_owned(),
                    format!("--datadir={data}"),
                    // its own temp folder: two installs sharing /tmp collide on temp tables
                    format!("--tmpdir={dir}"),
                    "--auth-root-authentication-method=normal".to_owned(),
                    "--skip-test-db".to_owned(),
                ],
            )),
        )?;
        let sock = dir.join("mysqld.sock");
        let server = program(&["mariadbd", "mysqld"], &sbin, "mariadb-server")?;
        // no grant tables: a dump of the `mysql` schema replaces the users, and the drill must
        // still be able to look
        let mut guard = Server::spawn(
            "MariaDB",
            &id.wrap(Invocation::new(
                &server,
                [
                    "--no-defaults".to_owned(),
                    format!("--datadir={data}"),
                    format!("--socket={sock}"),
                    format!("--tmpdir={dir}"),
                    // INTO OUTFILE and LOAD_FILE of a dump stay in the server's own folder
                    format!("--secure-file-priv={dir}"),
                    format!("--pid-file={}", dir.join("mysqld.pid")),
                    "--skip-networking".to_owned(),
                    "--skip-grant-tables".to_owned(),
                    "--innodb-flush-log-at-trx-commit=0".to_owned(),
                ],
            )),
            &dir.join("server.log"),
        )?;
        let to = Target {
            host: Some(sock.to_string()),
            user: Some("root".to_owned()),
            ..Target::default()
        };
        let ping = mysql(&to)?.args(["-e", "SELECT 1"]).read_only();
        guard.wait_ready(Duration::from_secs(120), || {
            sock.exists() && runner.run(&ping).is_ok_and(|o| o.success())
        })?;
        load(runner, dump, &to)?;
        let loaded = inspect(runner, &to);
        drop(guard);
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_is_whole_only_with_its_closing_line_last() {
        let m = Mysql;
        assert_eq!(
            m.complete(
                b"",
                b"/*!40111 SET x */;\n\n-- Dump completed on 2026-12-07 12:07:16\n"
            ),
            Ok(())
        );
        assert!(m.complete(b"", b"INSERT INTO t VALUES (1),(2);\n").is_err());
        assert_eq!(literal("a'b\\"), "'a''b\\\\'");
        assert_eq!(ident("t`x"), "`t``x`");
    }
}
