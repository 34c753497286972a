//! The pfSense stage of `daily-backup`: `config.xml` from the API and the full tar over ssh,
//! into `pfsense/<YYYY-WW>/`.
//!
//! Secrets stay off argv and out of logs: the API key goes to curl as a config file on stdin
//! (`--config -`), the ssh key by file name. Each file is fetched completely and checked
//! (`config.xml` must be pfSense XML, the tar must be gzip) before it replaces this week's copy.

use backup_core::{quote, BackupStore, CommandError, Invocation, IsoWeek, PfsenseConfig, Runner};
use base64::Engine as _;
use camino::Utf8Path;
use serde::Serialize;

use backup_host::error::{Error, Result};

use backup_core::{looks_like_pfsense, StoreFile};
pub use backup_core::{CONFIG_XML, FULL_TAR};

/// What the stage fetched.
#[derive(Debug, Clone, Serialize)]
pub struct PfsenseResult {
    /// Bytes of `config.xml`.
    pub config_bytes: usize,
    /// Bytes of the tar.
    pub tar_bytes: usize,
}

/// The curl call that fetches the API document; the key is in the config on stdin.
pub fn api_request(cfg: &PfsenseConfig, key: &str) -> Invocation {
    let mut args = vec![
        "--fail",
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        "--config",
        "-",
    ];
    if cfg.insecure_tls {
        // pfSense ships a self-signed certificate
        args.push("--insecure");
    }
    let header = key.replace('\\', "\\\\").replace('"', "\\\"");
    // fetching the configuration changes nothing anywhere: a --dry-run fetches it too
    Invocation::new("curl", args)
        .read_only()
        .arg("--")
        .arg(cfg.api_url.clone())
        .stdin(format!("header = \"Authorization: {header}\"\n").into_bytes())
}

/// The ssh call that streams `tar czf -` of the configured paths.
pub fn tar_request(cfg: &PfsenseConfig) -> Invocation {
    let mut inv = Invocation::new(
        "ssh",
        [
            "-i",
            cfg.ssh_key_file.as_str(),
            "-p",
            &cfg.ssh_port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "StrictHostKeyChecking=yes",
        ],
    );
    if let Some(kh) = &cfg.ssh_known_hosts {
        inv = inv.arg("-o").arg(format!("UserKnownHostsFile={kh}"));
    }
    // ssh hands the remote command to the remote shell as one string: quote each word
    let remote: Vec<String> = ["tar", "czf", "-"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(cfg.tar_paths.iter().map(|p| quote(p)))
        .collect();
    // `tar czf -` reads the box and writes to stdout only
    inv.read_only()
        .arg("-l")
        .arg(cfg.ssh_user.clone())
        .arg("--")
        .arg(cfg.ssh_host.clone())
        .arg(remote.join(" "))
}

/// Pulls the base64 `config.xml` out of the API's JSON answer: the first string among `data`,
/// `data.config`, `config` that decodes to a pfSense document.
///
/// # Errors
/// When no field holds one (an error page, a changed API).
pub fn decode_config(body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("pfSense API answer is not JSON: {e}"))?;
    let candidates = [
        v.pointer("/data"),
        v.pointer("/data/config"),
        v.pointer("/config"),
    ];
    for s in candidates.into_iter().flatten().filter_map(|c| c.as_str()) {
        if let Some(xml) = base64_decode(s) {
            if looks_like_pfsense(&xml) {
                return Ok(xml);
            }
        }
    }
    Err(
        "pfSense API answer has no base64 config.xml in `data`, `data.config` or `config`"
            .to_owned(),
    )
}

/// Base64 as the pfSense API writes it: standard or URL-safe alphabet, padding optional,
/// whitespace ignored.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(clean)
        .ok()
}

/// Fetches both files and stores them under `pfsense/<week>/`.
///
/// # Errors
/// When the key cannot be read, a fetch fails, or what came back is not what it should be.
pub fn backup_pfsense(
    cfg: &PfsenseConfig,
    runner: &dyn Runner,
    store: &dyn BackupStore,
    week: IsoWeek,
) -> Result<PfsenseResult> {
    let key = read_secret(&cfg.api_key_file)?;
    let request = api_request(cfg, &key);
    let out = request.run_checked(runner)?;
    let xml = decode_config(&out.stdout).map_err(|reason| {
        Error::Core(
            CommandError::Output {
                argv: request.display(),
                reason,
            }
            .into(),
        )
    })?;
    let request = tar_request(cfg);
    let tar = request.run_checked(runner)?.stdout;
    if tar.len() < 20 || tar[..2] != [0x1f, 0x8b] {
        return Err(Error::Core(
            CommandError::Output {
                argv: request.display(),
                reason: format!("not gzip data ({} bytes)", tar.len()),
            }
            .into(),
        ));
    }
    store.write(StoreFile::Pfsense(week, CONFIG_XML), &xml)?;
    store.write(StoreFile::Pfsense(week, FULL_TAR), &tar)?;
    Ok(PfsenseResult {
        config_bytes: xml.len(),
        tar_bytes: tar.len(),
    })
}

fn read_secret(path: &Utf8Path) -> Result<String> {
    let text = backup_host::safe_read::read_regular_string(path)
        .map_err(|e| Error::io("read the pfSense API key", path, e))?;
    let key = text.trim().to_owned();
    if key.is_empty() || key.contains(['\n', '\r']) {
        return Err(Error::Secret {
            path: path.to_owned(),
            reason: "expected one line holding the API key".to_owned(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PfsenseConfig {
        PfsenseConfig {
            api_url: "https://pf.lan/api/v1/diagnostics/config".into(),
            api_key_file: "/k".into(),
            ssh_host: "pf.lan".into(),
            ssh_user: "root".into(),
            ssh_port: 2222,
            ssh_key_file: "/etc/hb/pf key".into(),
            ssh_known_hosts: Some("/etc/hb/known".into()),
            tar_paths: vec!["/cf".into(), "/boot/loader.conf".into(), "/it's".into()],
            insecure_tls: true,
        }
    }

    #[test]
    fn the_key_is_never_on_argv() {
        let inv = api_request(&cfg(), "s3cr3t\"key");
        assert!(!inv.display().contains("s3cr3t"));
        assert!(!format!("{inv:?}").contains("s3cr3t"));
        assert_eq!(inv.display(), "curl --fail --silent --show-error --max-time 60 --config - --insecure -- https://pf.lan/api/v1/diagnostics/config");
        assert_eq!(
            String::from_utf8(inv.stdin.unwrap()).unwrap(),
            "header = \"Authorization: s3cr3t\\\"key\"\n"
        );
    }

    #[test]
    fn tar_over_ssh_quotes_the_remote_words() {
        assert_eq!(
            tar_request(&cfg()).display(),
            r"ssh -i '/etc/hb/pf key' -p 2222 -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/hb/known -l root -- pf.lan 'tar czf - /cf /boot/loader.conf '\''/it'\''\'\'''\''s'\'''"
        );
    }

    #[test]
    fn decodes_the_api_answer_and_refuses_anything_else() {
        let xml = "<?xml version=\"1.0\"?>\n<pfsense>\n<version>23.1</version>\n</pfsense>\n";
        let b64 = "PD94bWwgdmVyc2lvbj0iMS4wIj8+CjxwZnNlbnNlPgo8dmVyc2lvbj4yMy4xPC92ZXJzaW9uPgo8L3Bmc2Vuc2U+Cg==";
        for body in [
            format!("{{\"data\":\"{b64}\"}}"),
            format!("{{\"status\":\"ok\",\"data\":{{\"config\":\"{b64}\"}}}}"),
        ] {
            assert_eq!(decode_config(body.as_bytes()).unwrap(), xml.as_bytes());
        }
        assert!(decode_config(b"<html>502</html>").is_err());
        assert!(
            decode_config(b"{\"data\":\"aGVsbG8=\"}").is_err(),
            "base64 of something that is not pfSense XML"
        );
    }
}
