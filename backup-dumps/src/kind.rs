//! Which kind a dump is: from a config mapping, else its name and extension, else its content.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The kinds of dump the CronJobs make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpKind {
    /// `pg_dumpall` (or `pg_dump`) plain SQL.
    Postgresql,
    /// `mysqldump` / `mariadb-dump` SQL.
    Mysql,
    /// `redis-cli --rdb`: an RDB file.
    Redis,
    /// `etcdctl snapshot save`: a v3 snapshot (a bbolt file with its hash).
    Etcd,
    /// `vault operator raft snapshot save`: a raft snapshot (a gzipped tar).
    Vault,
}

impl DumpKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [DumpKind; 5] = [
        DumpKind::Postgresql,
        DumpKind::Mysql,
        DumpKind::Redis,
        DumpKind::Etcd,
        DumpKind::Vault,
    ];

    /// The name used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpKind::Postgresql => "postgresql",
            DumpKind::Mysql => "mysql",
            DumpKind::Redis => "redis",
            DumpKind::Etcd => "etcd",
            DumpKind::Vault => "vault",
        }
    }

    /// The seed's recovery time objective for this kind, minutes ("a single PostgreSQL database
    /// < 5 min, the MySQL cluster < 15 min, Vault < 10 min, etcd < 20 min"; Redis, not in the
    /// seed's table, gets PostgreSQL's 5).
    pub fn rto_minutes(self) -> u32 {
        match self {
            DumpKind::Postgresql | DumpKind::Redis => 5,
            DumpKind::Mysql => 15,
            DumpKind::Vault => 10,
            DumpKind::Etcd => 20,
        }
    }

    pub(crate) fn has_tables(self) -> bool {
        matches!(self, DumpKind::Postgresql | DumpKind::Mysql)
    }

    pub(crate) fn row_word(self) -> &'static str {
        if self.has_tables() {
            "row"
        } else {
            "key"
        }
    }

    /// The kind of the dump `name` with extension `ext` (`postgresql`, `sql`), from the name
    /// and extension alone: `rdb` is Redis; `snap` Vault; a name holding `etcd` etcd; `sql`
    /// with a name holding `mysql`, `mariadb` or `maria` MySQL, holding `postgres`, `pg` or
    /// `psql` PostgreSQL. `None`: look at the content ([`DumpKind::sniff`]).
    pub fn from_name(name: &str, ext: &str) -> Option<DumpKind> {
        // whole words of the name (`pg-main`, `etcd_weekly`), never parts of one
        // (`vaultwarden` is no Vault dump, `upgrade-db` no PostgreSQL one)
        let name = name.to_ascii_lowercase();
        let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
        match ext.to_ascii_lowercase().as_str() {
            "rdb" => Some(DumpKind::Redis),
            "snap" => Some(DumpKind::Vault),
            _ if has(&["etcd"]) => Some(DumpKind::Etcd),
            _ if has(&["vault"]) => Some(DumpKind::Vault),
            _ if has(&["redis"]) => Some(DumpKind::Redis),
            "sql" | "dump" if has(&["mysql", "mariadb", "maria"]) => Some(DumpKind::Mysql),
            "sql" | "dump" if has(&["postgres", "postgresql", "pg", "psql", "pgsql"]) => {
                Some(DumpKind::Postgresql)
            }
            _ => None,
        }
    }

    /// The kind from the first bytes of the decompressed content.
    pub fn sniff(head: &[u8]) -> Option<DumpKind> {
        let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
        if text.contains("-- PostgreSQL database") {
            Some(DumpKind::Postgresql)
        } else if text.contains("-- MySQL dump") || text.contains("-- MariaDB dump") {
            // (MariaDB 10.11.8 and later put a sandbox line first)
            Some(DumpKind::Mysql)
        } else if head.starts_with(b"REDIS") {
            Some(DumpKind::Redis)
        } else if head.get(16..20) == Some(&[0xed, 0xda, 0x0c, 0xed]) {
            // a bbolt file: the meta page's magic after its 16-byte page header
            Some(DumpKind::Etcd)
        } else if head.starts_with(&[0x1f, 0x8b]) || head.get(257..262) == Some(b"ustar") {
            Some(DumpKind::Vault)
        } else {
            None
        }
    }
}

impl fmt::Display for DumpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DumpKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DumpKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || (s == "mariadb" && *k == DumpKind::Mysql))
            .ok_or_else(|| {
                format!("unknown dump kind `{s}`: expected postgresql, mysql, redis, etcd or vault")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names_the_cronjobs_write() {
        assert_eq!(
            DumpKind::from_name("postgresql", "sql"),
            Some(DumpKind::Postgresql)
        );
        assert_eq!(DumpKind::from_name("mysql", "sql"), Some(DumpKind::Mysql));
        assert_eq!(DumpKind::from_name("etcd", "db"), Some(DumpKind::Etcd));
        assert_eq!(DumpKind::from_name("vault", "snap"), Some(DumpKind::Vault));
        assert_eq!(DumpKind::from_name("redis", "rdb"), Some(DumpKind::Redis));
        assert_eq!(DumpKind::from_name("nightly", "sql"), None);
        assert_eq!(DumpKind::from_name("vaultwarden", "sql"), None);
        assert_eq!(DumpKind::from_name("upgrade-db", "sql"), None);
        assert_eq!(
            DumpKind::from_name("pg-main", "sql"),
            Some(DumpKind::Postgresql)
        );
        assert_eq!(
            DumpKind::sniff(b"/*M!999999\\- enable the sandbox mode */\n-- MariaDB dump 10.19"),
            Some(DumpKind::Mysql)
        );
        assert_eq!(
            DumpKind::sniff(b"--\n-- PostgreSQL database cluster dump\n"),
            Some(DumpKind::Postgresql)
        );
        assert_eq!(
            DumpKind::sniff(b"-- MariaDB dump 10.19"),
            Some(DumpKind::Mysql)
        );
        assert_eq!(DumpKind::sniff(b"REDIS0011"), Some(DumpKind::Redis));
        assert_eq!("mariadb".parse(), Ok(DumpKind::Mysql));
        assert!("oracle".parse::<DumpKind>().is_err());
    }
}
