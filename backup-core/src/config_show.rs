//! The effective configuration as TOML, with the file's own keys: what `backupctl config check`
//! prints. Every value is shown, defaults filled in and marked `# default`, so the output can
//! be read next to the file (and pasted back into it).

use toml::{Table, Value};

use crate::config::{Backend, Config, Resolver};
use crate::retention::VersionPolicy;

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

fn n(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

/// A `u64` as TOML (whose integers are signed): a value too large for it is shown as text.
fn big(v: u64) -> Value {
    i64::try_from(v).map_or_else(|_| s(v), Value::Integer)
}

fn strings<T: std::fmt::Display>(v: &[T]) -> Value {
    Value::Array(v.iter().map(s).collect())
}

fn table(pairs: Vec<(&str, Option<Value>)>) -> Table {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
}

/// The effective configuration as a TOML table with the file's keys.
pub fn effective_table(c: &Config) -> Table {
    let mut top = Table::new();
    top.insert("backup-root".into(), s(&c.backup_root));
    top.insert("snapshots".into(), Value::Table(snapshots(c)));
    top.insert("kubernetes".into(), Value::Table(kubernetes(c)));
    top.insert("pvc-backup".into(), Value::Table(pvc_backup(c)));
    top.insert(
        "pve-config".into(),
        Value::Table(table(vec![("paths", Some(strings(&c.pve_config.paths)))])),
    );
    if let Some(pf) = &c.pfsense {
        top.insert("pfsense".into(), Value::Table(pfsense(pf)));
    }
    if let Some(o) = &c.offsite {
        top.insert("offsite".into(), Value::Table(offsite(o)));
    }
    top.insert(
        "metrics".into(),
        Value::Table(table(vec![
            ("pushgateway", c.metrics.pushgateway.as_ref().map(s)),
            ("textfile-dir", c.metrics.textfile_dir.as_ref().map(s)),
        ])),
    );
    top.insert(
        "sqlite-backup".into(),
        Value::Table(table(vec![
            ("keep-days", Some(n(c.sqlite_backup.keep_days))),
            ("min-keep", Some(n(c.sqlite_backup.min_keep))),
        ])),
    );
    top.insert(
        "dumps".into(),
        Value::Table(table(vec![
            ("keep-days", Some(n(c.dumps.policy.keep_days))),
            ("min-keep", Some(n(c.dumps.policy.min_keep))),
            ("min-bytes", Some(big(c.dumps.min_bytes))),
            ("folders", Some(strings(&c.dumps.folders))),
            (
                "kinds",
                Some(Value::Table(
                    c.dumps
                        .kinds
                        .iter()
                        .map(|(k, v)| (k.clone(), s(v)))
                        .collect(),
                )),
            ),
        ])),
    );
    top.insert(
        "status".into(),
        Value::Table(table(vec![
            ("stale-hours", Some(n(c.status.stale_hours))),
            ("offsite-stale-days", Some(n(c.status.offsite_stale_days))),
        ])),
    );
    top.insert("alerts".into(), Value::Table(alerts(c)));
    top.insert("notify".into(), Value::Table(notify(&c.notify)));
    if !c.hooks.is_empty() {
        top.insert("hooks".into(), hooks(c));
    }
    top
}

fn alerts(c: &Config) -> Table {
    let jobs = c
        .alert_jobs
        .iter()
        .map(|j| {
            Value::Table(table(vec![
                ("name", Some(s(&j.name))),
                ("title", Some(s(&j.title))),
                ("stale-hours", Some(n(j.stale_hours))),
            ]))
        })
        .collect();
    let mut alerts = Table::new();
    alerts.insert("job".into(), Value::Array(jobs));
    alerts
}

fn hooks(c: &Config) -> Value {
    Value::Array(
        c.hooks
            .iter()
            .map(|h| {
                Value::Table(table(vec![
                    ("job", Some(s(&h.job))),
                    ("when", Some(s(h.when.word()))),
                    ("command", Some(strings(&h.command))),
                    ("timeout-seconds", Some(big(h.timeout_seconds))),
                ]))
            })
            .collect(),
    )
}

/// The files of each kind (never the URLs they hold).
fn notify_urls(u: &crate::NotifyUrls) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("healthchecks-url-file", u.healthchecks.as_ref().map(s)),
        ("uptime-kuma-push-url-file", u.uptime_kuma.as_ref().map(s)),
        ("ntfy-url-file", u.ntfy.as_ref().map(s)),
        ("gotify-url-file", u.gotify.as_ref().map(s)),
        ("webhook-url-file", u.webhook.as_ref().map(s)),
    ]
}

fn notify(nc: &crate::NotifyConfig) -> Table {
    let mut out = notify_urls(&nc.urls);
    out.push(("timeout-seconds", Some(big(nc.timeout_seconds))));
    out.push(("retries", Some(n(nc.retries))));
    let mut t = table(out);
    if !nc.jobs.is_empty() {
        let jobs = nc
            .jobs
            .iter()
            .map(|(k, u)| (k.clone(), Value::Table(table(notify_urls(u)))))
            .collect();
        t.insert("job".into(), Value::Table(jobs));
    }
    t
}

fn snapshots(c: &Config) -> Table {
    let sn = &c.snapshots;
    let mut snapshots = Table::new();
    match &sn.backend {
        Backend::Lvm {
            volume_group,
            thin_pool,
        } => {
            snapshots.insert("backend".into(), s("lvm"));
            snapshots.insert("volume-group".into(), s(volume_group));
            snapshots.insert("thin-pool".into(), s(thin_pool));
            snapshots.insert(
                "min-pool-free-percent".into(),
                Value::Float(sn.min_pool_free_percent),
            );
        }
        Backend::Dir {
            volumes_dir,
            snapshots_dir,
        } => {
            snapshots.insert("backend".into(), s("dir"));
            snapshots.insert("volumes-dir".into(), s(volumes_dir));
            snapshots.insert("snapshots-dir".into(), s(snapshots_dir));
        }
    }
    snapshots.extend(table(vec![
        ("lv-pattern", Some(s(sn.lv_pattern.as_str()))),
        ("exclude-namespaces", Some(strings(&sn.exclude_namespaces))),
        ("keep-days", Some(n(sn.retention.keep_days))),
        ("lock-file", Some(s(&sn.lock_file))),
    ]));
    snapshots
}

fn kubernetes(c: &Config) -> Table {
    let k = &c.kubernetes;
    let mut kubernetes = table(vec![
        (
            "resolver",
            Some(s(match k.resolver {
                Resolver::Kubectl => "kubectl",
                Resolver::Static => "static",
            })),
        ),
        ("cache-file", Some(s(&k.cache_file))),
        ("kubeconfig", k.kubeconfig.as_ref().map(s)),
    ]);
    if !k.static_volumes.is_empty() {
        let volumes = k
            .static_volumes
            .iter()
            .map(|v| {
                Value::Table(table(vec![
                    ("lv", Some(s(&v.volume_handle))),
                    ("namespace", Some(s(&v.namespace))),
                    ("pvc", Some(s(&v.pvc))),
                ]))
            })
            .collect();
        kubernetes.insert("volume".into(), Value::Array(volumes));
    }
    kubernetes
}

fn pvc_backup(c: &Config) -> Table {
    let p = &c.pvc_backup;
    let mut pvc = table(vec![
        ("mount-dir", Some(s(&p.mount_dir))),
        ("parallel", Some(n(p.parallel))),
        (
            "monthly-full-pass",
            Some(Value::Boolean(p.monthly_full_pass)),
        ),
        ("max-snapshot-age-hours", Some(n(p.max_snapshot_age_hours))),
    ]);
    match &p.policy {
        VersionPolicy::Newest(w) => {
            pvc.insert("weekly-versions".into(), n(*w));
        }
        VersionPolicy::Gfs(g) => {
            let v = Value::try_from(g).unwrap_or_else(|_| Value::Table(Table::new()));
            pvc.insert("retention".into(), v);
        }
    }
    pvc
}

fn pfsense(pf: &crate::config::PfsenseConfig) -> Table {
    table(vec![
        ("api-url", Some(s(&pf.api_url))),
        ("api-key-file", Some(s(&pf.api_key_file))),
        ("ssh-host", Some(s(&pf.ssh_host))),
        ("ssh-user", Some(s(&pf.ssh_user))),
        ("ssh-port", Some(n(pf.ssh_port))),
        ("ssh-key-file", Some(s(&pf.ssh_key_file))),
        ("ssh-known-hosts", pf.ssh_known_hosts.as_ref().map(s)),
        ("tar-paths", Some(strings(&pf.tar_paths))),
        ("insecure-tls", Some(Value::Boolean(pf.insecure_tls))),
    ])
}

fn offsite(o: &crate::config::OffsiteConfig) -> Table {
    let mut off = table(vec![
        ("destination", Some(s(&o.destination))),
        ("change-log", Some(s(&o.change_log))),
        ("ssh-key-file", o.ssh_key_file.as_ref().map(s)),
        ("ssh-known-hosts", o.ssh_known_hosts.as_ref().map(s)),
        ("ssh-port", Some(n(o.ssh_port))),
        ("max-delete", Some(big(o.max_delete))),
        ("require-mount", Some(Value::Boolean(o.require_mount))),
        (
            "monthly-full-pass",
            Some(Value::Boolean(o.monthly_full_pass)),
        ),
        ("daily-wait-seconds", Some(big(o.daily_wait_seconds))),
        ("weekly-versions", o.weekly_versions.map(n)),
        ("tier-mount-dir", Some(s(&o.tier_mount_dir))),
        ("bwlimit-kib", o.bwlimit_kib.map(big)),
        ("stop-at", o.stop_at.map(s)),
    ]);
    if !o.repositories.is_empty() {
        let repos = o
            .repositories
            .iter()
            .map(|r| {
                Value::Table(table(vec![
                    ("name", Some(s(&r.name))),
                    ("repository", Some(s(r.shown()))), // a URL's password never printed
                    ("password-file", Some(s(&r.password_file))),
                    ("keep-weekly", Some(n(r.keep_weekly))),
                    ("keep-monthly", Some(n(r.keep_monthly))),
                    ("keep-yearly", Some(n(r.keep_yearly))),
                    (
                        "send",
                        Some(Value::Array(r.send.iter().map(|i| s(i.name())).collect())),
                    ),
                    ("append-only", Some(Value::Boolean(r.append_only))),
                    ("environment-file", r.environment_file.as_ref().map(s)),
                ]))
            })
            .collect();
        off.insert("repository".into(), Value::Array(repos));
    }
    if !o.trees.is_empty() {
        let trees = o
            .trees
            .iter()
            .map(|t| {
                Value::Table(table(vec![
                    ("source", Some(s(&t.source))),
                    ("name", Some(s(&t.name))),
                ]))
            })
            .collect();
        off.insert("tree".into(), Value::Array(trees));
    }
    off
}

/// Keys the file sets that the chosen backend or resolver never reads, each with why: a value
/// an operator believes is in force and is not.
pub fn ignored_keys(c: &Config, file: &Table) -> Vec<String> {
    let set = |section: &str, key: &str| {
        file.get(section)
            .and_then(Value::as_table)
            .is_some_and(|t| t.contains_key(key))
    };
    let mut out = Vec::new();
    let lvm = matches!(c.snapshots.backend, Backend::Lvm { .. });
    let (backend, others): (&str, &[&str]) = if lvm {
        ("lvm", &["volumes-dir", "snapshots-dir"])
    } else {
        (
            "dir",
            &["volume-group", "thin-pool", "min-pool-free-percent"],
        )
    };
    for key in others {
        if set("snapshots", key) {
            out.push(format!(
                "`snapshots.{key}` is set but ignored: `snapshots.backend` is \"{backend}\""
            ));
        }
    }
    if c.kubernetes.resolver == Resolver::Static {
        for key in ["cache-file", "kubeconfig"] {
            if set("kubernetes", key) {
                out.push(format!(
                    "`kubernetes.{key}` is set but ignored: `kubernetes.resolver` is \"static\" \
                     (kubectl is never run)"
                ));
            }
        }
    }
    out
}

/// `table` as TOML text, every key the file does not set marked `# default`; `path` is the
/// table's place (`""` for the top).
pub fn render(table: &Table, file: &Table, path: &str) -> String {
    let mut out = String::new();
    let mut subs = Vec::new();
    for (k, v) in table {
        match v {
            Value::Table(t) => subs.push((k, Some(t), None)),
            Value::Array(a) if a.iter().all(Value::is_table) && !a.is_empty() => {
                subs.push((k, None, Some(a)));
            }
            _ => {
                let mark = if file.contains_key(k) {
                    ""
                } else {
                    "  # default"
                };
                out.push_str(&format!("{} = {v}{mark}\n", key(k)));
            }
        }
    }
    for (k, t, a) in subs {
        let name = if path.is_empty() {
            key(k)
        } else {
            format!("{path}.{}", key(k))
        };
        let own = file.get(k);
        if let Some(t) = t {
            let empty = Table::new();
            let own = own.and_then(Value::as_table).unwrap_or(&empty);
            let mark = if file.contains_key(k) {
                ""
            } else {
                "  # default"
            };
            out.push_str(&format!("\n[{name}]{mark}\n"));
            out.push_str(&render(t, own, &name));
        }
        for (i, item) in a.into_iter().flatten().enumerate() {
            let empty = Table::new();
            let mine = own
                .and_then(Value::as_array)
                .and_then(|a| a.get(i))
                .and_then(Value::as_table);
            let mark = if mine.is_some() { "" } else { "  # default" };
            out.push_str(&format!("\n[[{name}]]{mark}\n"));
            if let Some(t) = item.as_table() {
                out.push_str(&render(t, mine.unwrap_or(&empty), &name));
            }
        }
    }
    out
}

/// A key as TOML writes it: bare when it can be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed configuration is the file's own: read back, it is the same configuration.
    #[test]
    fn the_effective_config_reads_back_as_the_same_config() {
        let text = "backup-root = \"/b\"\n[snapshots]\nbackend = \"dir\"\nvolumes-dir = \"/v\"\n\
                    snapshots-dir = \"/s\"\nvolume-group = \"pve\"\n[pvc-backup.retention]\n\
                    weekly = 4\nmonthly = 6\n[kubernetes]\ncache-file = \"/c/p \\\"q\\\".json\"\n\
                    [[kubernetes.volume]]\nlv = \"vm-1\"\nnamespace = \"n\"\npvc = \"p\"\n\
                    [offsite]\ndestination = \"nas:/vol\"\nmax-delete = 5\n[[offsite.tree]]\n\
                    source = \"/srv/nfs\"\nname = \"nfs\"\n[[offsite.repository]]\n\
                    repository = \"/srv/restic\"\npassword-file = \"/etc/p\"\n\
                    send = [\"pvc\", \"dumps\", \"pvc\"]\nappend-only = true\n\
                    [[offsite.repository]]\nrepository = \"rest:https://u:s3cr3t@far/r\"\n\
                    password-file = \"/etc/p\"\n";
        let path = camino::Utf8Path::new("/etc/homelab-backup/config.toml");
        let c = Config::from_toml(path, text).unwrap();
        let file: Table = text.parse().unwrap();
        let shown = render(&effective_table(&c), &file, "");
        let back = Config::from_toml(path, &shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
        // a repository URL's password is the one thing not printed
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("rest:https://u:***@far/r"), "{shown}");
        let mut c = c;
        c.offsite.as_mut().unwrap().repositories[1].repository = "rest:https://u:***@far/r".into();
        assert_eq!(back, c, "{shown}");
        assert!(
            shown.contains("send = [\"pvc\", \"dumps\"]\nappend-only = true\n"),
            "{shown}"
        );
        assert!(
            shown.contains("send = [\"pvc\", \"sqlite-backup\", \"pfsense\", \"pve-config\", \"dumps\"]  # default"),
            "{shown}"
        );
        assert!(shown.contains("backup-root = \"/b\"\n"), "{shown}");
        assert!(shown.contains("keep-days = 7  # default\n"), "{shown}");
        assert!(shown.contains("\n[pvc-backup.retention]\n"), "{shown}");
        assert!(
            shown.contains("\n[[offsite.tree]]\nsource = \"/srv/nfs\"\n"),
            "{shown}"
        );
        assert!(shown.contains("\n[status]  # default\n"), "{shown}");
        assert_eq!(
            ignored_keys(&c, &file),
            [
                "`snapshots.volume-group` is set but ignored: `snapshots.backend` is \"dir\"",
                "`kubernetes.cache-file` is set but ignored: `kubernetes.resolver` is \"static\" (kubectl is never run)"
            ]
        );
    }
}
