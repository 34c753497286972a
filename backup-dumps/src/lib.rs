//! The database dumps of the Kubernetes CronJobs (`backup-dump`) brought back.
//!
//! One adapter per kind ([`DumpKind`]): PostgreSQL (`pg_dumpall` SQL), MySQL/MariaDB
//! (`mysqldump` SQL), Redis (an RDB file), etcd (a v3 snapshot) and Vault (a raft snapshot). Each
//! knows three things behind the [`DumpAdapter`] trait, which `backupctl restore dump`, the drill
//! and the site drill share:
//!
//! - whether a dump is whole ([`DumpAdapter::complete`]: a SQL dump's closing line, an RDB's
//!   magic; a gzip stream that reads to its end is not enough: a `pg_dumpall` cut mid-way and
//!   gzipped again reads fine);
//! - how to load it into a server or folder an operator names ([`DumpAdapter::restore`]), and
//!   what to run for it (`--dry-run`: [`DumpAdapter::restore_plan`]);
//! - how to start a throwaway server of its kind in a temp folder, load the dump into it, look
//!   at what it holds and remove it again ([`DumpAdapter::drill`]).
//!
//! Every command goes through a [`backup_core::Runner`] as an argument vector; servers that
//! stay up while they are looked at (`mariadbd`, `redis-server`, `etcd`) are children of this
//! process, killed when their guard drops. As root, the servers that refuse root (PostgreSQL,
//! MariaDB) run as `nobody` through `setpriv`.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use backup_core::Runner;
use backup_host::error::Result;

mod etcd;
pub mod file;
mod kind;
mod mysql;
mod postgres;
mod redis;
pub mod scratch;
mod sections;
mod vault;

pub use file::{list_dumps, parse_dump_name, DumpFile};
pub use kind::DumpKind;

/// Where `restore dump` loads a dump.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--host`: the server's host (PostgreSQL and MySQL also take a socket folder or path).
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--user`.
    pub user: Option<String>,
    /// Variables from `--env-file` (`PGPASSWORD`, `MYSQL_PWD`, `REDISCLI_AUTH`, `VAULT_ADDR`,
    /// `VAULT_TOKEN`): passed in the environment, never on argv or in output.
    pub env: Vec<(String, String)>,
    /// `--defaults-extra-file` for the MySQL client (user, password, host).
    pub defaults_file: Option<Utf8PathBuf>,
    /// `--data-dir`: a new folder for the files (Redis's RDB for a stopped server, etcd's
    /// restored data dir).
    pub data_dir: Option<Utf8PathBuf>,
    /// `--database`: only this database of a whole-cluster dump (PostgreSQL, MySQL).
    pub database: Option<String>,
}

/// What a loaded dump holds: per database (or keyspace), its tables and rows (or keys).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Loaded {
    /// One line per database, keyspace or prefix.
    pub items: Vec<LoadedItem>,
    /// What could not be looked at, said instead of guessed (a Vault snapshot without Vault).
    pub notes: Vec<String>,
}

/// One database, keyspace or key prefix of a [`Loaded`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoadedItem {
    /// `app`, `db0`, `/registry`.
    pub name: String,
    /// Tables (0 for key-value stores).
    pub tables: u64,
    /// Rows, or keys.
    pub rows: u64,
}

impl Loaded {
    /// Total rows (or keys) over every item.
    pub fn rows(&self) -> u64 {
        self.items.iter().map(|i| i.rows).sum()
    }

    /// `app: 3 tables, 5,000 rows; shop: 1 table, 2 rows`.
    pub fn summary(&self, kind: DumpKind) -> String {
        if self.items.is_empty() {
            return self
                .notes
                .first()
                .cloned()
                .unwrap_or_else(|| "nothing".to_owned());
        }
        let unit = kind.row_word();
        self.items
            .iter()
            .map(|i| {
                if kind.has_tables() {
                    format!(
                        "{}: {}, {}",
                        i.name,
                        backup_host::human::plural(i.tables, "table"),
                        backup_host::human::plural(i.rows, unit)
                    )
                } else {
                    format!("{}: {}", i.name, backup_host::human::plural(i.rows, unit))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One kind of dump: whole or not, loaded where an operator says, drilled in a throwaway server.
pub trait DumpAdapter: Send + Sync {
    /// The kind.
    fn kind(&self) -> DumpKind;

    /// Whether a dump whose decompressed content starts with `head` and ends with `tail` (at
    /// most 64 KiB each) is whole: `Err` says what is missing.
    ///
    /// # Errors
    /// The reason the dump is not whole.
    fn complete(&self, head: &[u8], tail: &[u8]) -> std::result::Result<(), String>;

    /// The commands a restore of `dump` into `to` would run, as a person would type them
    /// (`--dry-run`); nothing runs.
    ///
    /// # Errors
    /// A target this kind cannot take (no `--data-dir` for etcd, `--database` for Redis).
    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>>;

    /// Loads `dump` into `to`, then looks at what it holds there.
    ///
    /// # Errors
    /// A target this kind cannot take, a load that fails (named with the tool's stderr), a
    /// folder that exists already.
    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded>;

    /// Whether this host has what [`DumpAdapter::drill`] starts (`Err`: what is missing, with
    /// its Debian package): the PVE host has no database server; the dump drill's CronJob image
    /// has them all.
    ///
    /// # Errors
    /// The first missing program.
    fn servers_installed(&self) -> Result<()> {
        Ok(())
    }

    /// Starts a throwaway server of this kind in `scratch` (a new, empty folder; loopback or a
    /// socket only), loads `dump` into it, looks at what it holds, and stops it.
    ///
    /// # Errors
    /// The server cannot start (the tool missing: named, with the package), the dump does not
    /// load, or what it loaded cannot be read back.
    fn drill(&self, dump: &DumpFile, scratch: &Utf8Path, runner: &dyn Runner) -> Result<Loaded>;
}

/// The adapter of `kind`.
pub fn adapter(kind: DumpKind) -> Box<dyn DumpAdapter> {
    match kind {
        DumpKind::Postgresql => Box::new(postgres::Postgres),
        DumpKind::Mysql => Box::new(mysql::Mysql),
        DumpKind::Redis => Box::new(redis::Redis),
        DumpKind::Etcd => Box::new(etcd::Etcd),
        DumpKind::Vault => Box::new(vault::Vault),
    }
}

/// Checks that `dump` is whole before it is loaded anywhere: its gzip stream read to the end,
/// at least `min_bytes` of content, and the adapter's own check of its head and tail. Returns
/// the content's size.
///
/// # Errors
/// The reason, naming the file.
pub fn check_whole(dump: &DumpFile, adapter: &dyn DumpAdapter, min_bytes: u64) -> Result<u64> {
    let (head, tail, size) = file::read_ends(&dump.path)?;
    let refused = |why: String| backup_host::Error::Refused(format!("{}: {why}", dump.path));
    if size < min_bytes {
        return Err(refused(format!(
            "{} of content, below the {min_bytes} bytes a dump of it must hold",
            backup_host::human::bytes(size)
        )));
    }
    adapter.complete(&head, &tail).map_err(refused)?;
    Ok(size)
}
