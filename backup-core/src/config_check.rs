//! The checker every section's validation goes through: each error names the file and the
//! dotted key at fault, and says what was expected and what was found.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::ConfigError;

pub(crate) struct Check<'a> {
    pub(crate) file: &'a Utf8Path,
}

impl Check<'_> {
    pub(crate) fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn abs(&self, key: &str, value: &str) -> Result<Utf8PathBuf, ConfigError> {
        if value.is_empty() {
            return Err(self.err(key, "expected an absolute path, found an empty string"));
        }
        let p = Utf8PathBuf::from(value);
        if !p.is_absolute() {
            return Err(self.err(key, format!("expected an absolute path, found `{value}`")));
        }
        // a path goes into unit files, rsync filter rules and logs, all line-based
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(self.err(
                key,
                format!("expected a path without control characters, found {c:?} in {value:?}"),
            ));
        }
        Ok(p)
    }

    /// An absolute path that goes to ssh (a key file, a known-hosts file): no whitespace,
    /// quotes, backslash, `%` or control character. ssh splits `UserKnownHostsFile` on spaces
    /// and expands `%` tokens in key paths, and such a value is one quoting mistake away from
    /// being read as an option (`-oProxyCommand=…`): refused, naming the key.
    pub(crate) fn ssh_path(&self, key: &str, value: &str) -> Result<Utf8PathBuf, ConfigError> {
        let p = self.abs(key, value)?;
        if let Some(c) = value
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "'\"\\%`$;".contains(*c))
        {
            return Err(self.err(
                key,
                format!(
                    "expected a path without spaces, quotes, backslashes, `%`, `$`, `;`, \
                     backquotes or control characters (it is given to ssh), found {c:?} in \
                     `{}`",
                    value.escape_debug()
                ),
            ));
        }
        Ok(p)
    }

    /// An absolute path without `..` (it would make the path mean something else than it
    /// reads, and `pve-config/<path>` escape its folder), with `.` and `//` folded away.
    pub(crate) fn abs_plain(&self, key: &str, value: &str) -> Result<Utf8PathBuf, ConfigError> {
        let p = self.abs(key, value)?;
        if p.components()
            .any(|part| part == camino::Utf8Component::ParentDir)
        {
            return Err(self.err(
                key,
                format!("expected an absolute path without `..`, found `{value}`"),
            ));
        }
        Ok(Utf8PathBuf::from_iter(p.components()))
    }

    pub(crate) fn name(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        if value.is_empty()
            || value == "."
            || value == ".."
            || value.starts_with('-')
            || value.contains(['/', '\0'])
            || value.chars().any(char::is_control)
        {
            return Err(self.err(
                key,
                format!(
                    "expected a plain name (no `/`, no leading `-`, no control character), \
                     found `{}`",
                    value.escape_debug()
                ),
            ));
        }
        Ok(value.to_owned())
    }

    /// A host name that goes to ssh as its own argument: letters, digits, `.`, `-`, `_`, `:`
    /// (IPv6 in brackets) and one `user@`; never a leading `-` (it would be an option).
    pub(crate) fn host(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let ok = !value.is_empty()
            && !value.starts_with('-')
            && value.matches('@').count() <= 1
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:[]@".contains(c));
        if !ok {
            return Err(self.err(
                key,
                format!(
                    "expected a host name (letters, digits, `.-_:[]`, one `user@`; no leading \
                     `-`), found `{}`",
                    value.escape_debug()
                ),
            ));
        }
        Ok(value.to_owned())
    }

    pub(crate) fn required<'v>(
        &self,
        key: &str,
        value: &'v Option<String>,
        why: &str,
    ) -> Result<&'v str, ConfigError> {
        value
            .as_deref()
            .ok_or_else(|| self.err(key, format!("missing: required {why}")))
    }
}
