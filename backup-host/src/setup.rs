//! Building the real backends from the config: the snapshot backend, the mounter, rsync's
//! program, the PV map.

use backup_core::{
    Backend, Config, ConfigError, Mounter, PvClaim, Resolver, Runner, VolumeManager,
};
use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::mounts::{InPlaceMounter, SystemMounter};
use backup_dir::DirVolumeManager;

/// The text of the configuration this process loaded (`backupctl config check` shows which
/// keys it sets).
static LOADED_TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The configuration text [`load_config`] read, when it ran.
pub fn loaded_text() -> Option<&'static str> {
    LOADED_TEXT.get().map(String::as_str)
}

/// Reads and validates the configuration (`-`: from stdin).
///
/// # Errors
/// [`Error::Config`] naming the file and key.
pub fn load_config(path: &Utf8Path) -> Result<Config> {
    let stdin = path.as_str() == "-";
    let text = if stdin {
        // `--config -`: the text comes from whoever runs us, who is trusted with it
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        crate::safe_read::read_regular_string(path)
    }
    .map_err(|e| ConfigError {
        file: path.to_owned(),
        key: "(file)".to_owned(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            // the first run on a new host: say where a config comes from
            format!(
                "cannot read it: {e}. Name another with --config PATH (-c), or start from the \
                 commented example: `backupctl config example > {path}`"
            )
        } else {
            format!("cannot read it: {e}")
        },
    })?;
    let _ = LOADED_TEXT.set(text.clone());
    let trusted = if stdin {
        Ok(())
    } else {
        crate::safe_read::check_trusted(path)
    };
    if let Err(message) = trusted {
        return Err(ConfigError {
            file: path.to_owned(),
            key: "(file)".to_owned(),
            message,
        }
        .into());
    }
    let cfg = Config::from_toml(path, &text)?;
    // the files it names that steer ssh and curl as root
    let mut steering: Vec<(&str, &Utf8Path)> = Vec::new();
    if let Some(o) = &cfg.offsite {
        steering.extend(
            o.ssh_key_file
                .as_deref()
                .map(|p| ("offsite.ssh-key-file", p)),
        );
        steering.extend(
            o.ssh_known_hosts
                .as_deref()
                .map(|p| ("offsite.ssh-known-hosts", p)),
        );
        steering.extend(o.repositories.iter().map(|r| {
            (
                "offsite.repository.password-file",
                r.password_file.as_path(),
            )
        }));
    }
    if let Some(p) = &cfg.pfsense {
        steering.push(("pfsense.api-key-file", &p.api_key_file));
        steering.push(("pfsense.ssh-key-file", &p.ssh_key_file));
        steering.extend(
            p.ssh_known_hosts
                .as_deref()
                .map(|k| ("pfsense.ssh-known-hosts", k)),
        );
    }
    for (key, file) in steering {
        if let Err(message) = crate::safe_read::check_trusted(file) {
            return Err(ConfigError {
                file: path.to_owned(),
                key: key.to_owned(),
                message,
            }
            .into());
        }
    }
    Ok(cfg)
}

/// The snapshot backend the config names.
pub fn volume_manager<'r>(cfg: &Config, runner: &'r dyn Runner) -> Box<dyn VolumeManager + 'r> {
    match &cfg.snapshots.backend {
        Backend::Dir {
            volumes_dir,
            snapshots_dir,
        } => Box::new(DirVolumeManager::new(volumes_dir, snapshots_dir, runner)),
        Backend::Lvm {
            volume_group,
            thin_pool,
        } => Box::new(backup_lvm::LvmVolumeManager::new(
            volume_group,
            thin_pool,
            runner,
        )),
    }
}

/// The rsync program `HOMELAB_BACKUP_RSYNC` names, when set (tests and benchmarks point it at
/// a wrapper; then every copy goes through it); `None`: `rsync` on `PATH`. Read by the run
/// wrapper into the context: every rsync of a run comes from `backup-rsync` with this program.
pub fn rsync_program() -> Option<String> {
    std::env::var("HOMELAB_BACKUP_RSYNC").ok()
}

/// Root mounts for real; anyone else reads `dir` snapshots in place.
pub fn mounter(runner: &dyn Runner) -> Box<dyn Mounter + '_> {
    if rustix::process::geteuid().is_root() {
        Box::new(SystemMounter::new(runner))
    } else {
        Box::new(InPlaceMounter)
    }
}

/// PV → PVC claims for selection, and warnings for the operator.
///
/// With `resolver = "kubectl"` the API's answer comes first and is cached (atomically) in
/// `kubernetes.cache-file`; when the API server does not answer, the last cached answer is used
/// with a warning, so the backup goes on. The static `[[kubernetes.volume]]` map always follows.
pub fn claims(cfg: &Config, runner: &dyn Runner) -> (Vec<PvClaim>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut claims = Vec::new();
    if cfg.kubernetes.resolver == Resolver::Kubectl {
        let cluster = backup_kubectl::KubectlCluster::new(
            runner,
            cfg.kubernetes.kubeconfig.as_ref().map(ToString::to_string),
        );
        let cache = &cfg.kubernetes.cache_file;
        match backup_core::Cluster::pv_claims(&cluster) {
            Ok(found) => {
                let json = serde_json::to_vec_pretty(&found).unwrap_or_default();
                if let Err(e) = crate::fsutil::write_atomic(cache, &json) {
                    warnings.push(format!("could not cache the PV map in {cache}: {e}"));
                }
                claims = found;
            }
            Err(e) => match crate::safe_read::read_regular(cache).ok().and_then(|b| serde_json::from_slice::<Vec<PvClaim>>(&b).ok()) {
                Some(cached) => {
                    warnings.push(format!("kubectl failed ({e}); using the PV map cached in {cache}"));
                    claims = cached;
                }
                None => warnings.push(format!(
                    "kubectl failed ({e}) and there is no usable cache at {cache}: only the static map resolves volumes"
                )),
            },
        }
    }
    claims.extend(cfg.kubernetes.static_volumes.iter().cloned());
    (claims, warnings)
}

/// `mount-dir`, created when missing, as its canonical path: mountinfo shows canonical paths,
/// so a mount-dir through a symlink (`/var/run` on Debian) or with `//` would never be found
/// mounted, and every run would stack another mount.
///
/// # Errors
/// When it cannot be created or resolved; the error names the key.
pub fn mount_root(cfg: &Config) -> Result<Utf8PathBuf> {
    let dir = &cfg.pvc_backup.mount_dir;
    let key = |action: &'static str, source: std::io::Error| Error::ConfiguredPath {
        key: "pvc-backup.mount-dir",
        file: cfg.file.clone(),
        action,
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| key("create the mount folder", e))?;
    dir.canonicalize_utf8()
        .map_err(|e| key("resolve the mount folder", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_core::testing::{RecordingRunner, Transcript};
    use backup_core::Output;

    fn cfg(dir: &Utf8Path) -> Config {
        Config::from_toml(
            &dir.join("config.toml"),
            &format!("backup-root = \"/b\"\n[kubernetes]\nresolver = \"kubectl\"\ncache-file = \"{dir}/pv-cache.json\"\n[[kubernetes.volume]]\nlv = \"vm-9-pvc-s\"\nnamespace = \"st\"\npvc = \"static\"\n"),
        )
        .unwrap()
    }

    const PV: &str = r#"{"kind":"List","items":[{"spec":{"claimRef":{"namespace":"vw","name":"data"},"csi":{"volumeHandle":"c/n/s:vm-1-pvc-a"}}}]}"#;

    #[test]
    fn kubectl_answers_are_cached_and_the_cache_is_used_when_the_api_is_down() {
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        let cfg = cfg(dir);
        assert_eq!(cfg.kubernetes.cache_file, dir.join("pv-cache.json"));
        let t = Transcript::new();
        let runner = RecordingRunner::new(&t);

        // the API is down and there is no cache yet: only the static map, with a warning
        runner.answer(
            &["kubectl"],
            Output::failed(1, "Unable to connect to the server: dial tcp: i/o timeout"),
        );
        let (found, warnings) = claims(&cfg, &runner);
        assert_eq!(
            found.iter().map(|c| c.pvc.as_str()).collect::<Vec<_>>(),
            ["static"]
        );
        assert!(warnings[0].contains("no usable cache"), "{warnings:?}");

        // the API answers: its map is used and cached
        runner.answer(&["kubectl"], Output::ok(PV));
        let (found, warnings) = claims(&cfg, &runner);
        assert_eq!(
            found.iter().map(|c| c.pvc.as_str()).collect::<Vec<_>>(),
            ["data", "static"]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(dir.join("pv-cache.json").is_file());

        // down again: the cached map, with a warning that says so
        runner.answer(
            &["kubectl"],
            Output::failed(1, "Unable to connect to the server"),
        );
        let (found, warnings) = claims(&cfg, &runner);
        assert_eq!(
            found.iter().map(|c| c.pvc.as_str()).collect::<Vec<_>>(),
            ["data", "static"]
        );
        assert!(
            warnings[0].contains("using the PV map cached in"),
            "{warnings:?}"
        );
    }
}
