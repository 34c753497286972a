//! Glob patterns for `lv-pattern`: `*` and `?` over LV names.

use crate::error::{Error, Result};

/// A validated glob: `*` matches any run of characters, `?` exactly one; everything else is
/// literal. LV names are `[A-Za-z0-9+_.-]`, so no classes or escapes are needed, and a pattern
/// holding anything else (a `/`, a `[`) is rejected rather than silently matching nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvPattern {
    pattern: String,
}

impl LvPattern {
    /// # Errors
    /// [`Error::InvalidPattern`] for an empty pattern or a character an LV name cannot hold.
    pub fn new(pattern: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(invalid("empty".to_owned()));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "+_.-*?".contains(*c)))
        {
            return Err(invalid(format!(
                "`{c}` cannot appear in an LV name (allowed: letters, digits, + _ . -, and the wildcards * ?)"
            )));
        }
        Ok(Self {
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.pattern.as_bytes(), name.as_bytes())
    }
}

/// True when `name` matches the whole of `pattern`: `*` any run of bytes (`/` included), `?` one
/// byte, anything else itself. Iterative, with one backtrack point: linear in practice.
pub fn glob_match(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_a_shell_glob() {
        let p = LvPattern::new("vm-*-pvc-*").unwrap();
        assert!(p.matches("vm-100-pvc-0a1b"));
        assert!(p.matches("vm-9999-pvc-x-snap-20260101"));
        assert!(!p.matches("vm-100-disk-0"));
        assert!(!p.matches("base-100-pvc-a"));
        let q = LvPattern::new("vm-1??-pvc-a").unwrap();
        assert!(q.matches("vm-100-pvc-a"));
        assert!(!q.matches("vm-10-pvc-a"));
        assert!(LvPattern::new("*").unwrap().matches(""));
    }

    #[test]
    fn rejects_what_an_lv_name_cannot_hold() {
        assert!(LvPattern::new("").is_err());
        assert!(LvPattern::new("vm/[0-9]").is_err());
        assert!(LvPattern::new("pve/vm-*").is_err());
    }
}
