//! Redis: an RDB file (`redis-cli --rdb`). A restore places it for a stopped server
//! (`--data-dir`), checked by `redis-check-rdb`; a drill starts `redis-server` on it (a socket in
//! its folder, no TCP) and reads its keyspace.

use std::time::Duration;

use camino::Utf8Path;

use backup_core::{Invocation, Runner};
use backup_host::error::{Error, Result};

use crate::scratch::{program, run_step, Identity, Server};
use crate::{file, DumpAdapter, DumpFile, DumpKind, Loaded, LoadedItem, Target};

pub(crate) struct Redis;

/// `db0:keys=2,expires=0,avg_ttl=0` lines of `INFO keyspace`.
fn keyspace(info: &str) -> Vec<LoadedItem> {
    info.lines()
        .filter_map(|l| {
            let (db, rest) = l.trim().split_once(':')?;
            let keys = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("keys="))?
                .parse()
                .ok()?;
            Some(LoadedItem {
                name: db.to_owned(),
                tables: 0,
                rows: keys,
            })
        })
        .collect()
}

/// `[info] 3 keys read` of `redis-check-rdb`.
fn keys_read(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        l.trim()
            .strip_prefix("[info] ")?
            .strip_suffix(" keys read")?
            .parse()
            .ok()
    })
}

fn target_dir(to: &Target) -> Result<&Utf8Path> {
    if to.database.is_some() || to.host.is_some() {
        return Err(Error::Usage(
            "a Redis dump is an RDB file: it is placed for a stopped server with --data-dir \
             DIR (the server's `dir`), not loaded into a running one; --scratch loads it into \
             a throwaway server to look at"
                .to_owned(),
        ));
    }
    let dir = to.data_dir.as_deref().ok_or_else(|| {
        Error::Usage(
            "a Redis restore needs --data-dir DIR (the stopped server's `dir`, where dump.rdb \
             goes), or --scratch to look at it in a throwaway server"
                .to_owned(),
        )
    })?;
    if !dir.is_dir() {
        return Err(Error::Refused(format!(
            "{dir} is not a folder: --data-dir is the stopped server's existing `dir`"
        )));
    }
    let dest = dir.join("dump.rdb");
    if dest.symlink_metadata().is_ok() {
        return Err(Error::Refused(format!(
            "{dest} exists: nothing was changed. Stop the server, move its dump.rdb (and \
             appendonly files) away, then restore"
        )));
    }
    Ok(dir)
}

impl DumpAdapter for Redis {
    fn kind(&self) -> DumpKind {
        DumpKind::Redis
    }

    fn servers_installed(&self) -> Result<()> {
        program(&["redis-server"], &[], "redis-server")?;
        program(&["redis-cli"], &[], "redis-tools")?;
        Ok(())
    }

    fn complete(&self, head: &[u8], tail: &[u8]) -> std::result::Result<(), String> {
        if !head.starts_with(b"REDIS") {
            return Err("not an RDB file (it does not start with `REDIS`)".to_owned());
        }
        // the end-of-file opcode, then the 8-byte checksum
        if tail.len() < 9 || tail[tail.len() - 9] != 0xff {
            return Err(
                "not whole: the RDB file does not end with its EOF marker and \
                        checksum (the dump was cut short)"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>> {
        let dir = target_dir(to)?;
        Ok(vec![
            format!(
                "gunzip -c {} > {}",
                backup_core::quote(dump.path.as_str()),
                backup_core::quote(dir.join(".dump.rdb.partial").as_str())
            ),
            format!("redis-check-rdb {}", dir.join(".dump.rdb.partial")),
            format!(
                "rename it to {} (never over an existing file)",
                dir.join("dump.rdb")
            ),
        ])
    }

    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded> {
        let dir = target_dir(to)?;
        let dest = dir.join("dump.rdb");
        // owned like the folder: the server that reads it runs as that folder's owner
        let meta = std::fs::metadata(dir).map_err(|e| {
            Error::Refused(format!(
                "{dir}: {e}: --data-dir is the stopped server's existing `dir`"
            ))
        })?;
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        let group = std::os::unix::fs::MetadataExt::gid(&meta);
        let partial = dir.join(".dump.rdb.partial");
        let _ = std::fs::remove_file(&partial);
        file::decompress_to(&dump.path, &partial, Some((owner, group)))?;
        let checked = program(&["redis-check-rdb"], &[], "redis-tools").and_then(|p| {
            run_step(
                runner,
                "redis-check-rdb",
                &Invocation::new(&p, [partial.as_str()]).read_only(),
            )
        });
        let out = match checked {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        // hard link, then unlink: never over a file that appeared meanwhile
        std::fs::hard_link(&partial, &dest).map_err(|e| Error::io("place", &dest, e))?;
        let _ = std::fs::remove_file(&partial);
        let keys = keys_read(&String::from_utf8_lossy(&out.stdout)).unwrap_or(0);
        Ok(Loaded {
            items: vec![LoadedItem {
                name: dest.to_string(),
                tables: 0,
                rows: keys,
            }],
            notes: vec![
                "start the server with this `dir` (appendonly off, or its AOF moved away: an \
                 AOF wins over the RDB)"
                    .to_owned(),
            ],
        })
    }

    fn drill(&self, dump: &DumpFile, scratch: &Utf8Path, runner: &dyn Runner) -> Result<Loaded> {
        let id = Identity::for_servers();
        let dir = id.server_dir(scratch, "redis")?;
        let rdb = dir.join("dump.rdb");
        file::decompress_to(&dump.path, &rdb, id.switch_to)?;
        let server = program(&["redis-server"], &[], "redis-server")?;
        let cli = program(&["redis-cli"], &[], "redis-tools")?;
        let sock = dir.join("redis.sock");
        let mut guard = Server::spawn(
            "redis-server",
            &id.wrap(Invocation::new(
                &server,
                [
                    "--port",
                    "0",
                    "--unixsocket",
                    sock.as_str(),
                    "--dir",
                    dir.as_str(),
                    "--dbfilename",
                    "dump.rdb",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
            )),
            &dir.join("server.log"),
        )?;
        let info = Invocation::new(&cli, ["-s", sock.as_str(), "INFO", "persistence"]).read_only();
        guard.wait_ready(Duration::from_secs(120), || {
            sock.exists()
                && runner.run(&info).is_ok_and(|o| {
                    // `loading:0` exactly (Redis 7 also says `async_loading:0` while loading)
                    o.success()
                        && String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .any(|l| l.trim() == "loading:0")
                })
        })?;
        let out = run_step(
            runner,
            "read the keyspace",
            &Invocation::new(&cli, ["-s", sock.as_str(), "INFO", "keyspace"]).read_only(),
        )?;
        drop(guard);
        Ok(Loaded {
            items: keyspace(&String::from_utf8_lossy(&out.stdout)),
            notes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_and_check_output_parse() {
        let items =
            keyspace("# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\ndb3:keys=1,expires=0\r\n");
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].name.as_str(), items[1].rows), ("db3", 1));
        assert_eq!(keys_read("[offset 197] ok\n[info] 3 keys read\n"), Some(3));
        let r = Redis;
        let mut whole = b"REDIS0011".to_vec();
        whole.extend([0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(r.complete(&whole, &whole), Ok(()));
        assert!(r.complete(&whole, &whole[..whole.len() - 1]).is_err());
    }
}
