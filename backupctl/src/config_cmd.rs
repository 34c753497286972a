//! `backupctl config check` and `config example`.

/// The commented example configuration, as the package installs it.
pub const CONFIG_EXAMPLE: &str = include_str!("../../deploy/config.example.toml");

/// `backupctl config example` and `check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigText {
    /// The file checked, when one was.
    pub file: Option<String>,
    /// The text shown.
    pub text: String,
    /// The effective configuration (`check`), with the file's keys.
    pub effective: Option<serde_json::Value>,
    /// Keys the file sets that nothing reads (the other backend's, a static resolver's).
    pub ignored: Vec<String>,
}

impl ConfigText {
    /// The example.
    pub fn example() -> Self {
        Self {
            file: None,
            text: CONFIG_EXAMPLE.to_owned(),
            effective: None,
            ignored: Vec::new(),
        }
    }

    /// A loaded (so valid) config, with every value: TOML with the file's keys, each default
    /// marked; keys the backend or resolver ignores are named in `ignored`.
    ///
    /// # Errors
    /// When it cannot be shown.
    pub fn check(cfg: &backup_core::Config) -> backup_host::error::Result<Self> {
        let file: toml::Table = backup_host::setup::loaded_text()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        let effective = backup_core::effective_table(cfg);
        let ignored = backup_core::ignored_keys(cfg, &file);
        let text = format!(
            "# {}: valid. The effective configuration, every default marked:\n{}",
            cfg.file,
            backup_core::render_toml(&effective, &file, "")
        );
        let value = serde_json::to_value(&effective).map_err(|e| {
            backup_host::error::Error::Internal(format!("cannot show the config: {e}"))
        })?;
        Ok(Self {
            file: Some(cfg.file.to_string()),
            text,
            effective: Some(value),
            ignored,
        })
    }
}

impl backup_run::Outcome for ConfigText {
    fn exit(&self) -> backup_host::exit::Exit {
        backup_host::exit::Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        for w in &self.ignored {
            backup_host::out::eprintln_fit(&format!("backupctl: warning: {w}"));
        }
        self.text.trim_end().to_owned()
    }
}
