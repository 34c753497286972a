//! PostgreSQL: a `pg_dumpall` (or `pg_dump`) plain SQL dump, loaded with `psql`; a throwaway
//! cluster from `initdb` and `pg_ctl`, on a Unix socket in its folder, no TCP.

use camino::{Utf8Path, Utf8PathBuf};

use backup_core::{Invocation, Runner};
use backup_host::error::{Error, Result};

use crate::scratch::{program, run_step, Identity};
use crate::sections::{feed_sql, postgres_header, require_database, server_target, sql_plan};
use crate::{DumpAdapter, DumpFile, DumpKind, Loaded, LoadedItem, Target};

pub(crate) struct Postgres;

const CLUSTER_END: &str = "-- PostgreSQL database cluster dump complete";
const DATABASE_END: &str = "-- PostgreSQL database dump complete";

/// PostgreSQL's own programs: `HOMELAB_BACKUP_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps `initdb` and `pg_ctl` there, off `PATH`).
fn bindirs() -> Vec<Utf8PathBuf> {
    if let Ok(d) = std::env::var("HOMELAB_BACKUP_PG_BINDIR") {
        return vec![Utf8PathBuf::from(d)];
    }
    let mut found: Vec<(u32, Utf8PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let v = name.parse::<u32>().ok()?;
                    Some((
                        v,
                        Utf8PathBuf::from(format!("/usr/lib/postgresql/{name}/bin")),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).collect()
}

fn tool(name: &str) -> Result<String> {
    program(&[name], &bindirs(), "postgresql")
}

/// Whether psql `version` (`psql (PostgreSQL) 15.18 (Debian …)`) reads a stream restricted
/// (`\\restrict`: 13.22, 14.19, 15.14, 16.10, 17.6 and every later release). An older one
/// takes `\\restrict` for an unknown command and goes on unrestricted.
fn reads_restricted(version: &str) -> bool {
    let Some(v) = version
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
    else {
        return false;
    };
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    match major {
        0..=12 => false,
        13 => minor >= 22,
        14 => minor >= 19,
        15 => minor >= 14,
        16 => minor >= 10,
        17 => minor >= 6,
        _ => true,
    }
}

/// `psql` aimed at `to`: `-h`, `-p`, `-U` (default `postgres`), the env file's variables, no
/// `.psqlrc`.
fn psql(to: &Target) -> Result<Invocation> {
    let mut inv = Invocation::new(&tool("psql")?, ["-X", "-q"]);
    if let Some(h) = &to.host {
        inv = inv.arg("-h").arg(h);
    }
    if let Some(p) = to.port {
        inv = inv.arg("-p").arg(p.to_string());
    }
    inv = inv
        .arg("-U")
        .arg(to.user.clone().unwrap_or_else(|| "postgres".to_owned()));
    for (k, v) in &to.env {
        inv = inv.env(k, v.clone());
    }
    Ok(inv)
}

/// A query's rows (`-At`, `|` between fields) in database `db` (through `PGDATABASE`: a name
/// is never parsed as a connection string).
fn query(runner: &dyn Runner, to: &Target, db: &str, sql: &str) -> Result<Vec<Vec<String>>> {
    let inv = psql(to)?
        .env("PGDATABASE", db)
        // fields apart by the unit separator: a database name may hold `|`
        .args(["-At", "-F", "\u{1f}", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .read_only();
    let out = run_step(runner, &format!("query database {db}"), &inv)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\u{1f}').map(str::to_owned).collect())
        .collect())
}

const COUNT_TABLES: &str = "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT \
     (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
     table_schema, table_name), false, true, '')))[1]::text::bigint AS n \
     FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', \
     'information_schema') AND table_type = 'BASE TABLE') t";

/// Per database (only `to.database` when set): its tables and their rows, counted exactly.
fn inspect(runner: &dyn Runner, to: &Target) -> Result<Loaded> {
    let dbs: Vec<String> = match &to.database {
        Some(d) => vec![d.clone()],
        None => query(
            runner,
            to,
            "postgres",
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect(),
    };
    let mut loaded = Loaded::default();
    for db in dbs {
        let row = query(runner, to, &db, COUNT_TABLES)?;
        let n = |i: usize| {
            row.first()
                .and_then(|r| r.get(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (tables, rows) = (n(0), n(1));
        // the empty `postgres` database every cluster has says nothing
        if db == "postgres" && tables == 0 && to.database.is_none() {
            continue;
        }
        loaded.items.push(LoadedItem {
            name: db,
            tables,
            rows,
        });
    }
    Ok(loaded)
}

/// Feeds the dump into `psql`. Errors are counted from what psql says; `role "…" already
/// exists` is expected (`pg_dumpall` creates every role, the bootstrap one included).
fn load(runner: &dyn Runner, dump: &DumpFile, to: &Target) -> Result<()> {
    let version = Invocation::new(&tool("psql")?, ["--version"]).read_only();
    let said = runner.run(&version).map_err(Error::Core)?;
    let said = String::from_utf8_lossy(&said.stdout).trim().to_owned();
    if !reads_restricted(&said) {
        return Err(Error::Refused(format!(
            "{said} cannot read a dump restricted (a dump's `\\!` would run as this user): \
             install psql 13.22, 14.19, 15.14, 16.10, 17.6 or later"
        )));
    }
    let inv = psql(to)?.env("PGDATABASE", "postgres").args(["-f", "-"]);
    let out = feed_sql(
        runner,
        &inv,
        dump,
        to.database.as_deref(),
        postgres_header,
        true,
    )?;
    let text = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text
        .lines()
        // the server's errors, and psql's own (`psql:<stdin>:12: error: backslash commands are
        // restricted`: a meta-command of the dump was refused)
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:") || l.contains(": error: "))
        .filter(|l| !(l.contains("ERROR:  role \"") && l.ends_with("already exists")))
        .collect();
    if !out.success() || !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(3).copied().collect();
        let half = to
            .database
            .as_ref()
            .map(|d| format!(" Database {d} may be half loaded: drop it before trying again."))
            .unwrap_or_default();
        return Err(Error::Refused(format!(
            "psql did not load {} (exit {}, {} error(s)): {}{half}",
            dump.path,
            out.status
                .map_or_else(|| "by a signal".into(), |c| c.to_string()),
            errors.len(),
            if shown.is_empty() {
                crate::scratch::said(&out)
            } else {
                shown.join(" | ")
            }
        )));
    }
    Ok(())
}

impl DumpAdapter for Postgres {
    fn kind(&self) -> DumpKind {
        DumpKind::Postgresql
    }

    fn servers_installed(&self) -> Result<()> {
        for t in ["initdb", "pg_ctl", "psql"] {
            tool(t)?;
        }
        Ok(())
    }

    fn complete(&self, head: &[u8], tail: &[u8]) -> std::result::Result<(), String> {
        let cluster = String::from_utf8_lossy(head).contains("-- PostgreSQL database cluster dump");
        let end = if cluster { CLUSTER_END } else { DATABASE_END };
        let tail = String::from_utf8_lossy(tail);
        let Some(at) = tail.rfind(end) else {
            return Err(format!(
                "not whole: it does not end with `{end}` (the dump was cut short)"
            ));
        };
        // after the closing line only comment dashes, blank lines and `\unrestrict`
        let rest_ok = tail[at + end.len()..].lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l == "--" || l.starts_with("\\unrestrict ")
        });
        if rest_ok {
            Ok(())
        } else {
            Err(format!("not whole: more follows its closing line `{end}`"))
        }
    }

    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>> {
        server_target(to, "PostgreSQL")?;
        Ok(sql_plan(
            dump,
            to.database.as_deref(),
            &psql(to)?.env("PGDATABASE", "postgres").args(["-f", "-"]),
        ))
    }

    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded> {
        server_target(to, "PostgreSQL")?;
        if let Some(db) = &to.database {
            require_database(dump, postgres_header, db)?;
            let there = query(
                runner,
                to,
                "postgres",
                &format!(
                    "SELECT 1 FROM pg_database WHERE datname = '{}'",
                    db.replace('\'', "''")
                ),
            )?;
            if !there.is_empty() {
                return Err(Error::Refused(format!(
                    "database {db} exists on that server: nothing was changed. Rename it \
                     first (ALTER DATABASE … RENAME TO …) or drop it, then restore"
                )));
            }
        }
        load(runner, dump, to)?;
        let mut loaded = inspect(runner, to)?;
        if to.database.is_some() {
            loaded.notes.push(
                "roles the dump names were created when missing, bare (no attributes, password \
                 or memberships: ALTER ROLE … LOGIN PASSWORD …, GRANT …); the dump's ALTER \
                 ROLE, GRANT and COMMENT ON ROLE lines were left out"
                    .to_owned(),
            );
        }
        Ok(loaded)
    }

    fn drill(&self, dump: &DumpFile, scratch: &Utf8Path, runner: &dyn Runner) -> Result<Loaded> {
        let id = Identity::for_servers();
        let dir = id.server_dir(scratch, "postgresql")?;
        let data = dir.join("data");
        run_step(
            runner,
            "initdb",
            &id.wrap(Invocation::new(
                &tool("initdb")?,
                [
                    "-D",
                    data.as_str(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )),
        )?;
        // the socket in its own folder, no TCP, no fsync: appended by the server's own user
        // (root never opens a path inside a folder another user owns), not through pg_ctl -o
        // (which a shell splits)
        let conf = data.join("postgresql.conf");
        let settings = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n",
            dir.as_str().replace('\'', "''")
        );
        run_step(
            runner,
            "configure the throwaway PostgreSQL",
            &id.wrap(Invocation::new("tee", ["-a", conf.as_str()]))
                .stdin(settings.into_bytes()),
        )?;
        let log = dir.join("server.log");
        let pg_ctl = tool("pg_ctl")?;
        let stop = Invocation::new(&pg_ctl, ["-D", data.as_str(), "-m", "immediate", "stop"]);
        run_step(
            runner,
            "start the throwaway PostgreSQL (pg_ctl start)",
            &id.wrap(Invocation::new(
                &pg_ctl,
                [
                    "-D",
                    data.as_str(),
                    "-w",
                    "-t",
                    "120",
                    "-l",
                    log.as_str(),
                    "start",
                ],
            )),
        )?;
        let _stop = Stopper(id.wrap(stop));
        let to = Target {
            host: Some(dir.to_string()),
            user: Some("postgres".to_owned()),
            ..Target::default()
        };
        load(runner, dump, &to)?;
        inspect(runner, &to)
    }
}

/// Runs its command (`pg_ctl stop`) when dropped, not through the run's runner: that one is
/// killed by SIGTERM/SIGINT, and the server must stop then above all.
struct Stopper(Invocation);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.0.program)
            .args(&self.0.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_psql_that_reads_restricted_is_used() {
        for (v, ok) in [
            ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", true),
            ("psql (PostgreSQL) 15.13", false),
            ("psql (PostgreSQL) 16.9", false),
            ("psql (PostgreSQL) 16.10", true),
            ("psql (PostgreSQL) 17.6", true),
            ("psql (PostgreSQL) 18.1", true),
            ("psql (PostgreSQL) 12.22", false),
            ("psql (PostgreSQL) 13.22", true),
            ("nonsense", false),
        ] {
            assert_eq!(reads_restricted(v), ok, "{v}");
        }
    }

    #[test]
    fn a_dump_is_whole_only_with_its_closing_line_last() {
        let p = Postgres;
        let head = b"--\n-- PostgreSQL database cluster dump\n--\n";
        let whole = b"...\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";
        assert_eq!(p.complete(head, whole), Ok(()));
        // cut after one database's own end: not the cluster's
        let cut = b"--\n-- PostgreSQL database dump complete\n--\n\\unrestrict x\n";
        assert!(p.complete(head, cut).unwrap_err().contains("cut short"));
        let more = b"-- PostgreSQL database cluster dump complete\n--\nDROP TABLE x;\n";
        assert!(p.complete(head, more).is_err());
        // pg_dump of one database
        assert_eq!(
            p.complete(b"--\n-- PostgreSQL database dump\n", cut),
            Ok(())
        );
    }
}
