//! KEY=VALUE files that hold secrets (a dump's `env-file`, `restore dump --env-file`): checked
//! like every secret file (owned by root up the path, nobody else may write it), read without
//! following a link, and never shown: an error names the file and the line, never a value.

use camino::Utf8Path;

use crate::error::{Error, Result};

/// Reads KEY=VALUE lines. Errors name the file and line, never a value.
///
/// # Errors
/// [`Error::Secret`] when the file cannot be read or a line is not `KEY=VALUE`.
pub fn read_env_file(path: &Utf8Path) -> Result<Vec<(String, String)>> {
    // a file anyone can write would hand them the dump command's secrets and more: exit 2
    crate::safe_read::check_trusted(path).map_err(|message| {
        Error::Config(backup_core::ConfigError {
            file: path.to_owned(),
            key: "--env-file".to_owned(),
            message,
        })
    })?;
    let text = crate::safe_read::read_regular_string(path).map_err(|e| Error::Secret {
        path: path.to_owned(),
        reason: format!("cannot read the env file: {e}"),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = |why: &str| Error::Secret {
            path: path.to_owned(),
            reason: format!(
                "line {}: {why} (the line is not shown: it may hold a secret)",
                i + 1
            ),
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = key.trim();
        let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_key {
            return Err(bad("the key must be letters, digits and `_`"));
        }
        let value = value.trim_end_matches(['\r']);
        let value = match value.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if last == q && value.len() >= 2 => {
                &value[1..value.len() - 1]
            }
            _ => value,
        };
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    #[test]
    fn env_files_parse_and_never_show_a_value() {
        let d = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(d.path().join("env")).unwrap();
        std::fs::write(
            &p,
            "# comment\n\nPGPASSWORD=s3cr=t\nexport VAULT_TOKEN=\"hvs.x\"\nREDISCLI_AUTH='a b'\n",
        )
        .unwrap();
        assert_eq!(
            read_env_file(&p).unwrap(),
            [
                ("PGPASSWORD".to_owned(), "s3cr=t".to_owned()),
                ("VAULT_TOKEN".to_owned(), "hvs.x".to_owned()),
                ("REDISCLI_AUTH".to_owned(), "a b".to_owned()),
            ]
        );
        std::fs::write(&p, "OK=1\nhunter2\n").unwrap();
        let e = read_env_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("hunter2"), "{e}");
        std::fs::write(&p, "1BAD=hunter2\n").unwrap();
        let e = read_env_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("hunter2"), "{e}");
    }
}
