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

/// True when the path `n` matches the whole of `pattern`, as gitignore and restic read one: `*`
/// any run of bytes within one component (never `/`), `?` one byte but `/`, `**` any run of
/// bytes across components, and `**/` any number of whole folders, none included
/// (`**/x` matches `x` and `a/b/x`); anything else itself.
pub fn path_glob_match(pattern: &[u8], n: &[u8]) -> bool {
    // the common case, a plain name: no sets to keep (`backupctl find` asks this of every
    // entry of every record)
    let Some(first) = pattern.iter().position(|b| matches!(b, b'*' | b'?')) else {
        return pattern == n;
    };
    // what comes before the first wildcard is matched by itself: most paths end here
    if !n.starts_with(&pattern[..first]) {
        return false;
    }
    // the pattern's positions a match can be at after each byte of `n`: a set, so the work is
    // the path's length times the pattern's (no backtracking blow-up); `entered` marks the
    // positions reached by moving on, not by a `**` eating another byte. Four sets of
    // `len + 1`, on the stack for a pattern of up to 127 bytes: none allocated per byte.
    let p = pattern;
    let len = p.len() + 1;
    let mut stack = [false; 4 * 128];
    let mut heap = Vec::new();
    let sets: &mut [bool] = if len <= 128 {
        &mut stack[..4 * len]
    } else {
        heap.resize(4 * len, false);
        &mut heap
    };
    let (mut at, rest) = sets.split_at_mut(len);
    let (mut entered, rest) = rest.split_at_mut(len);
    let (mut next, mut next_entered) = rest.split_at_mut(len);
    at[0] = true;
    entered[0] = true;
    close(p, at, entered);
    // from here each step's own `entered` is what counts
    for &b in n {
        next.fill(false);
        next_entered.fill(false);
        for i in (0..p.len()).filter(|&i| at[i]) {
            match p[i] {
                // `**` eats anything and stays (not entered again: `**/` skips no folder
                // after it ate something)
                b'*' if p.get(i + 1) == Some(&b'*') => next[i] = true,
                b'*' if b != b'/' => {
                    next[i] = true;
                    next_entered[i] = true;
                }
                b'?' if b != b'/' => {
                    next[i + 1] = true;
                    next_entered[i + 1] = true;
                }
                c if c == b && c != b'*' && c != b'?' => {
                    next[i + 1] = true;
                    next_entered[i + 1] = true;
                }
                _ => {}
            }
        }
        close(p, next, next_entered);
        std::mem::swap(&mut at, &mut next);
        std::mem::swap(&mut entered, &mut next_entered);
    }
    at[p.len()]
}

/// Adds to `at` every position reachable without reading a byte: past a `*` (it may match
/// nothing), past `**` to what follows it, and, just after entering `**/`, past all of it (no
/// folder at all).
fn close(p: &[u8], at: &mut [bool], entered: &mut [bool]) {
    for i in 0..p.len() {
        if !at[i] || p[i] != b'*' {
            continue;
        }
        if p.get(i + 1) == Some(&b'*') {
            at[i + 2] = true;
            entered[i + 2] = true;
            if entered[i] && p.get(i + 2) == Some(&b'/') {
                at[i + 3] = true;
                entered[i + 3] = true;
            }
        } else {
            at[i + 1] = true;
            entered[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `*` stays in one folder, `**` crosses them, `**/` may be no folder at all; a path holding
    /// the wildcards' own bytes is matched as it is.
    #[test]
    fn a_path_glob_reads_like_gitignore() {
        let m = |p: &str, n: &str| path_glob_match(p.as_bytes(), n.as_bytes());
        assert!(m("attachments/*", "attachments/a.pdf"));
        assert!(!m("attachments/*", "attachments/3f2a/invoice.pdf"));
        // a plain name, and the literal part before the first wildcard, matched as such
        assert!(m("f042.bin", "f042.bin") && !m("f042.bin", "f042.bin2"));
        assert!(m("d07/f0*", "d07/f042.bin") && !m("d07/f0*", "d08/f042.bin"));
        assert!(m("ab?", "abc") && !m("ab?", "ac") && !m("ab?", "abcd"));
        // a pattern longer than the sets kept on the stack
        let long = format!("{}*z", "a".repeat(200));
        assert!(m(&long, &format!("{}yz", "a".repeat(200))));
        assert!(!m(&long, &format!("{}y", "a".repeat(200))));
        assert!(m("attachments/**", "attachments/3f2a/invoice.pdf"));
        assert!(m("attachments/**", "attachments/a.pdf"));
        assert!(m("**/invoice.pdf", "invoice.pdf"));
        assert!(m("**/invoice.pdf", "attachments/3f2a/invoice.pdf"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/x/yb"));
        assert!(m("db/*.sqlite3", "db/app.sqlite3"));
        assert!(!m("db/*.sqlite3", "db/old/app.sqlite3"));
        assert!(!m("d?/x", "d//x"));
        assert!(m("*", "name"));
        assert!(!m("*", "a/b"));
        assert!(m("", ""));
        assert!(!m("a", ""));
        // many stars stay linear (a backtracking matcher takes ages on this)
        let stars = "*a".repeat(30) + "b";
        assert!(!m(&stars, &"a".repeat(2000)));
    }

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
