//! etcd: a v3 snapshot (`etcdctl snapshot save`), restored into a new data dir by `etcdutl`
//! (etcd 3.5 and later) or `etcdctl snapshot restore` (3.4, Debian 12), which check its hash; a
//! drill starts `etcd` on the restored data dir on loopback ports and counts its keys.

use std::time::Duration;

use camino::Utf8Path;

use backup_core::{Invocation, Runner};
use backup_host::error::{Error, Result};

use crate::scratch::{free_port, program, run_step, Server};
use crate::{file, DumpAdapter, DumpFile, DumpKind, Loaded, LoadedItem, Target};

pub(crate) struct Etcd;

/// `snapshot restore SNAP --data-dir DIR` and the members flags, by the tool there is.
fn restore_command(snap: &Utf8Path, data_dir: &Utf8Path, member: &[String]) -> Result<Invocation> {
    let inv = match program(&["etcdutl"], &[], "etcd-server") {
        Ok(p) => Invocation::new(&p, ["snapshot", "restore"]),
        Err(_) => Invocation::new(
            &program(&["etcdctl"], &[], "etcd-client")?,
            ["snapshot", "restore"],
        )
        .env("ETCDCTL_API", "3"),
    };
    Ok(inv
        .arg(snap.as_str())
        .arg("--data-dir")
        .arg(data_dir.as_str())
        .args(member.iter().cloned()))
}

fn target_dir(to: &Target) -> Result<&Utf8Path> {
    if to.database.is_some() || to.host.is_some() {
        return Err(Error::Usage(
            "an etcd snapshot is restored into a new data dir (--data-dir DIR), not into a \
             running member"
                .to_owned(),
        ));
    }
    let dir = to.data_dir.as_deref().ok_or_else(|| {
        Error::Usage(
            "an etcd restore needs --data-dir DIR (a new folder: the restored member's data \
             dir), or --scratch to look at it in a throwaway etcd"
                .to_owned(),
        )
    })?;
    if dir.symlink_metadata().is_ok() {
        return Err(Error::Refused(format!(
            "{dir} exists: nothing was changed. The data dir of a restore must be new \
             (etcd would refuse to restore into it)"
        )));
    }
    Ok(dir)
}

/// `"count":N` of `etcdctl get -w json`.
fn count(json: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()?
        .get("count")?
        .as_u64()
}

impl DumpAdapter for Etcd {
    fn kind(&self) -> DumpKind {
        DumpKind::Etcd
    }

    fn servers_installed(&self) -> Result<()> {
        program(&["etcd"], &[], "etcd-server")?;
        program(&["etcdctl"], &[], "etcd-client")?;
        Ok(())
    }

    fn complete(&self, head: &[u8], _tail: &[u8]) -> std::result::Result<(), String> {
        if head.get(16..20) == Some(&[0xed, 0xda, 0x0c, 0xed]) {
            Ok(())
        } else {
            Err("not an etcd snapshot (no bbolt magic at its start)".to_owned())
        }
    }

    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>> {
        let dir = target_dir(to)?;
        let snap = dir
            .parent()
            .unwrap_or(Utf8Path::new("/"))
            .join(".etcd-restore-XXXXXX/snapshot.db");
        Ok(vec![
            format!(
                "gunzip -c {} > {}",
                backup_core::quote(dump.path.as_str()),
                backup_core::quote(snap.as_str())
            ),
            restore_command(&snap, dir, &[])?.display(),
            "start a throwaway etcd on a copy and count its keys".to_owned(),
        ])
    }

    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded> {
        let dir = target_dir(to)?;
        let parent = dir.parent().unwrap_or(Utf8Path::new("/"));
        let temp = tempfile::Builder::new()
            .prefix(".etcd-restore-")
            .tempdir_in(parent)
            .map_err(|e| Error::io("create a temp folder in", parent, e))?;
        let temp_path = Utf8Path::from_path(temp.path())
            .ok_or_else(|| Error::Refused(format!("{parent}: not UTF-8")))?;
        // what it holds, from a throwaway member of its own, first: a snapshot that does not
        // start leaves no data dir behind
        let look = temp_path.join("look");
        std::fs::create_dir(&look).map_err(|e| Error::io("create folder", &look, e))?;
        let mut loaded = self.drill(dump, &look, runner)?;
        let snap = temp_path.join("snapshot.db");
        file::decompress_to(&dump.path, &snap, None)?;
        run_step(
            runner,
            "etcd snapshot restore",
            &restore_command(&snap, dir, &[])?,
        )?;
        loaded.notes.push(format!(
            "start the member with --data-dir {dir} (kubeadm: the etcd manifest's hostPath): \
             it is restored as a single member named `default`; a cluster of several is \
             restored member by member with etcdutl's --name, --initial-cluster and \
             --initial-advertise-peer-urls"
        ));
        Ok(loaded)
    }

    fn drill(&self, dump: &DumpFile, scratch: &Utf8Path, runner: &dyn Runner) -> Result<Loaded> {
        let dir = scratch.join("etcd");
        std::fs::create_dir(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        let snap = dir.join("snapshot.db");
        file::decompress_to(&dump.path, &snap, None)?;
        let (client, peer) = (free_port()?, free_port()?);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let client_url = format!("http://127.0.0.1:{client}");
        let data = dir.join("data");
        let member = [
            "--name".to_owned(),
            "drill".to_owned(),
            "--initial-cluster".to_owned(),
            format!("drill={peer_url}"),
            "--initial-advertise-peer-urls".to_owned(),
            peer_url.clone(),
        ];
        run_step(
            runner,
            "etcd snapshot restore",
            &restore_command(&snap, &data, &member)?,
        )?;
        let server = program(&["etcd"], &[], "etcd-server")?;
        let mut guard = Server::spawn(
            "etcd",
            &Invocation::new(&server, ["--data-dir", data.as_str()])
                .args(member.iter().cloned())
                .args([
                    "--listen-peer-urls",
                    &peer_url,
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                ]),
            &dir.join("server.log"),
        )?;
        let ctl = program(&["etcdctl"], &[], "etcd-client")?;
        let get = |prefix: &str| {
            Invocation::new(
                &ctl,
                [
                    "--endpoints",
                    &client_url,
                    "get",
                    prefix,
                    "--prefix",
                    "--keys-only",
                    "--limit",
                    "1",
                    "-w",
                    "json",
                ],
            )
            .env("ETCDCTL_API", "3")
            .read_only()
        };
        guard.wait_ready(Duration::from_secs(120), || {
            runner.run(&get("")).is_ok_and(|o| o.success())
        })?;
        let mut items = Vec::new();
        for (name, prefix) in [("all keys", ""), ("/registry (Kubernetes)", "/registry/")] {
            let out = run_step(runner, "count the keys", &get(prefix))?;
            let n = count(&String::from_utf8_lossy(&out.stdout)).unwrap_or(0);
            if prefix.is_empty() || n > 0 {
                items.push(LoadedItem {
                    name: name.to_owned(),
                    tables: 0,
                    rows: n,
                });
            }
        }
        drop(guard);
        Ok(Loaded {
            items,
            notes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_of_a_get() {
        assert_eq!(
            count(r#"{"header":{"revision":4},"kvs":[{"key":"L3I="}],"more":true,"count":3}"#),
            Some(3)
        );
        assert_eq!(count(r#"{"header":{}}"#), None);
    }
}
