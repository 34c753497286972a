//! Vault: a raft snapshot (`vault operator raft snapshot save`), a tar archive (gzipped by
//! Vault) of `meta.json`, `state.bin` and `SHA256SUMS`. A restore is `vault operator raft
//! snapshot restore` against the Vault of `VAULT_ADDR` (from `--env-file`, with `VAULT_TOKEN`).
//! A drill cannot start a throwaway Vault (a raft snapshot only loads into a Vault unsealed with
//! the keys of the cluster it came from): it reads the archive whole and checks its entries.

use std::io::Read;

use camino::Utf8Path;

use backup_core::{Invocation, Runner};
use backup_host::error::{Error, Result};

use crate::scratch::{program, run_step};
use crate::{file, DumpAdapter, DumpFile, DumpKind, Loaded, LoadedItem, Target};

pub(crate) struct Vault;

const ENTRIES: [&str; 3] = ["meta.json", "state.bin", "SHA256SUMS"];

/// One entry of a tar stream: its name, size and SHA-256 (and its bytes when it is the small
/// `SHA256SUMS`).
struct Entry {
    name: String,
    size: u64,
    sha256: String,
    text: Option<Vec<u8>>,
}

/// The entries of a tar stream, read to its end.
fn tar_entries(r: &mut dyn Read) -> std::io::Result<Vec<Entry>> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut header = [0u8; 512];
    loop {
        r.read_exact(&mut header)?;
        if header.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size = u64::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .map_err(|_| std::io::Error::other(format!("entry {name}: a bad size field")))?;
        let mut hasher = sha2::Sha256::new();
        let mut text = (name == "SHA256SUMS" && size <= 64 * 1024).then(Vec::new);
        let mut left = size;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            r.read_exact(&mut buf[..want])
                .map_err(|e| std::io::Error::new(e.kind(), format!("entry {name} cut short")))?;
            hasher.update(&buf[..want]);
            if let Some(t) = text.as_mut() {
                t.extend_from_slice(&buf[..want]);
            }
            left -= want as u64;
        }
        // the padding to the next 512-byte block
        let pad = usize::try_from(size.div_ceil(512) * 512 - size).unwrap_or(0);
        r.read_exact(&mut buf[..pad])?;
        out.push(Entry {
            name,
            size,
            sha256: hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            text,
        });
    }
}

/// Every entry `SHA256SUMS` names holds the digest it gives (`state.bin` must be named).
fn check_sums(entries: &[Entry]) -> std::result::Result<(), String> {
    let sums = entries
        .iter()
        .find_map(|e| e.text.as_ref())
        .ok_or("no readable SHA256SUMS")?;
    let mut named = Vec::new();
    for line in String::from_utf8_lossy(sums)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let (digest, name) = line.split_once(char::is_whitespace).ok_or_else(|| {
            format!("SHA256SUMS: a line that is not `<digest>  <name>`: {line:?}")
        })?;
        let name = name.trim().trim_start_matches('*');
        let entry = entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("SHA256SUMS names {name}, which the archive lacks"))?;
        if !entry.sha256.eq_ignore_ascii_case(digest) {
            return Err(format!("{name} does not match its SHA-256 in SHA256SUMS"));
        }
        named.push(name.to_owned());
    }
    if named.iter().any(|n| n == "state.bin") {
        Ok(())
    } else {
        Err("SHA256SUMS does not name state.bin".to_owned())
    }
}

/// The snapshot's tar stream: Vault gzips its archive, `backup-dump` keeps that gzip as it is
/// (one layer to undo) or wrapped in its own (two).
fn snapshot_tar(dump: &Utf8Path) -> Result<Box<dyn Read>> {
    let mut once = file::open(dump)?;
    let mut magic = [0u8; 2];
    let n = once
        .read(&mut magic)
        .map_err(|e| Error::Refused(format!("{dump}: the gzip stream does not read: {e}")))?;
    let rest = std::io::Cursor::new(magic[..n].to_vec()).chain(once);
    if magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(rest)))
    } else {
        Ok(Box::new(rest))
    }
}

fn check_archive(dump: &DumpFile) -> Result<Vec<(String, u64)>> {
    let entries = read_archive(dump)?;
    check_sums(&entries).map_err(|why| {
        Error::Refused(format!(
            "{}: the Vault snapshot is damaged: {why}",
            dump.path
        ))
    })?;
    Ok(entries.into_iter().map(|e| (e.name, e.size)).collect())
}

fn read_archive(dump: &DumpFile) -> Result<Vec<Entry>> {
    let entries = tar_entries(&mut snapshot_tar(&dump.path)?).map_err(|e| {
        Error::Refused(format!(
            "{}: the Vault snapshot archive does not read whole: {e}",
            dump.path
        ))
    })?;
    let missing: Vec<&str> = ENTRIES
        .iter()
        .filter(|want| !entries.iter().any(|e| e.name == **want))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(Error::Refused(format!(
            "{}: not a Vault raft snapshot: {} missing from the archive",
            dump.path,
            missing.join(", ")
        )));
    }
    Ok(entries)
}

fn vault_command(to: &Target, snapshot: &str) -> Result<Invocation> {
    if to.database.is_some() || to.data_dir.is_some() {
        return Err(Error::Usage(
            "a Vault snapshot is restored into a running Vault: VAULT_ADDR and VAULT_TOKEN \
             from --env-file (or --host URL for the address)"
                .to_owned(),
        ));
    }
    let mut inv = Invocation::new(
        &program(&["vault"], &[], "vault (HashiCorp)")?,
        ["operator", "raft", "snapshot", "restore"],
    );
    if let Some(h) = &to.host {
        inv = inv.arg(format!("-address={h}"));
    }
    for (k, v) in &to.env {
        inv = inv.env(k, v.clone());
    }
    Ok(inv.arg(snapshot))
}

impl DumpAdapter for Vault {
    fn kind(&self) -> DumpKind {
        DumpKind::Vault
    }

    fn complete(&self, head: &[u8], tail: &[u8]) -> std::result::Result<(), String> {
        let tar = head.get(257..262) == Some(b"ustar");
        if !(tar || head.starts_with(&[0x1f, 0x8b])) {
            return Err("not a Vault raft snapshot (neither a gzip nor a tar archive)".to_owned());
        }
        if tar && !tail.ends_with(&[0u8; 1024]) {
            return Err(
                "not whole: the archive does not end with its two empty blocks \
                        (the dump was cut short)"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn restore_plan(&self, dump: &DumpFile, to: &Target) -> Result<Vec<String>> {
        Ok(vec![
            format!(
                "read the archive of {} whole: {}",
                dump.path,
                ENTRIES.join(", ")
            ),
            vault_command(to, "<the snapshot, as Vault wrote it>")?.display(),
        ])
    }

    fn restore(&self, dump: &DumpFile, to: &Target, runner: &dyn Runner) -> Result<Loaded> {
        let entries = check_archive(dump)?;
        // Vault takes the gzipped archive it wrote: the stored file itself when backup-dump
        // kept it as it was, else that archive unwrapped once into a private temp file
        let mut head = [0u8; 2];
        let _ = file::open(&dump.path)?.read(&mut head);
        let temp = tempfile::Builder::new()
            .prefix("backupctl-vault-")
            .tempdir()
            .map_err(|e| Error::io("create a temp folder in", "/tmp", e))?;
        let snapshot = if head == [0x1f, 0x8b] {
            let p = Utf8Path::from_path(temp.path())
                .ok_or_else(|| Error::Refused("the temp folder is not UTF-8".to_owned()))?
                .join("vault.snap");
            file::decompress_to(&dump.path, &p, None)?;
            p
        } else {
            dump.path.clone()
        };
        run_step(
            runner,
            "vault operator raft snapshot restore",
            &vault_command(to, snapshot.as_str())?,
        )?;
        Ok(Loaded {
            items: entries
                .into_iter()
                .map(|(name, size)| LoadedItem {
                    name,
                    tables: 0,
                    rows: size,
                })
                .filter(|i| i.name == "state.bin")
                .collect(),
            notes: vec![
                "restored: unseal Vault with the keys of the cluster the snapshot \
                         came from, then `vault status` and a secret read"
                    .to_owned(),
            ],
        })
    }

    fn drill(&self, dump: &DumpFile, _scratch: &Utf8Path, _runner: &dyn Runner) -> Result<Loaded> {
        let entries = check_archive(dump)?;
        let state = entries
            .iter()
            .find(|(n, _)| n == "state.bin")
            .map_or(0, |(_, s)| *s);
        Ok(Loaded {
            items: Vec::new(),
            notes: vec![format!(
                "archive read whole ({}; state.bin {}); not loaded: a raft snapshot only \
                 loads into a Vault unsealed with its cluster's keys",
                ENTRIES.join(", "),
                backup_host::human::bytes(state)
            )],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in entries {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[257..262].copy_from_slice(b"ustar");
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn the_archive_is_read_whole() {
        let t = tar(&[
            ("meta.json", b"{}"),
            ("state.bin", b"xyz"),
            ("SHA256SUMS", b".."),
        ]);
        let e = tar_entries(&mut t.as_slice()).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[1].name.as_str(), e[1].size), ("state.bin", 3));
        assert!(tar_entries(&mut &t[..700]).is_err());
        assert_eq!(Vault.complete(&t, &t), Ok(()));
        assert!(Vault.complete(&t, &t[..t.len() - 1024]).is_err());
        assert!(check_sums(&e).is_err(), "SHA256SUMS `..` names nothing");
    }

    /// SHA256SUMS is checked: a state.bin whose digest differs is a damaged snapshot.
    #[test]
    fn the_sums_are_checked() {
        // sha256("xyz")
        let xyz = "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282";
        let sums = format!("{xyz}  state.bin\n");
        let good = tar(&[("state.bin", b"xyz"), ("SHA256SUMS", sums.as_bytes())]);
        assert_eq!(
            check_sums(&tar_entries(&mut good.as_slice()).unwrap()),
            Ok(())
        );
        let bad = tar(&[("state.bin", b"xyZ"), ("SHA256SUMS", sums.as_bytes())]);
        let why = check_sums(&tar_entries(&mut bad.as_slice()).unwrap()).unwrap_err();
        assert!(why.contains("state.bin does not match"), "{why}");
    }
}
