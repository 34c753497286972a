//! `backupctl config check` and `config example`.

/// The commented example configuration, as the package installs it.
pub const CONFIG_EXAMPLE: &str = include_str!("../../../deploy/config.example.toml");

/// `backupctl config example` and `check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigText {
    /// The file checked, when one was.
    pub file: Option<String>,
    /// The text shown.
    pub text: String,
    /// The effective configuration (`check`).
    pub effective: Option<serde_json::Value>,
}

impl ConfigText {
    /// The example.
    pub fn example() -> Self {
        Self {
            file: None,
            text: CONFIG_EXAMPLE.to_owned(),
            effective: None,
        }
    }

    /// A loaded (so valid) config, with every value.
    ///
    /// # Errors
    /// When it cannot be shown.
    pub fn check(cfg: &backup_core::Config) -> crate::error::Result<Self> {
        let value = serde_json::to_value(cfg)
            .map_err(|e| crate::error::Error::Usage(format!("cannot show the config: {e}")))?;
        let text = format!(
            "{}: valid. Effective values, defaults filled in:\n{}",
            cfg.file,
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        Ok(Self {
            file: Some(cfg.file.to_string()),
            text,
            effective: Some(value),
        })
    }
}

impl crate::run::Outcome for ConfigText {
    fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::Success
    }

    fn text(&self, _dry_run: bool) -> String {
        self.text.trim_end().to_owned()
    }
}
