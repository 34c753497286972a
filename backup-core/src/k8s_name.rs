//! Kubernetes names that become folder names. A namespace and a PVC name are path components of
//! the backup root (`pvc-data/<week>/<namespace>/<pvc>`): a namespace `.complete` would land in
//! the completion-marker folder, `..` anywhere else. Kubernetes itself only allows DNS-1123
//! names there, so anything else came from a typo in the static map, a damaged cache or a
//! hostile API answer, and the volume is refused with the reason.

/// Checks a namespace: a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes).
///
/// # Errors
/// A sentence saying what is wrong with `name`.
pub fn check_namespace(name: &str) -> Result<(), String> {
    check_label(name, 63)
        .map_err(|why| format!("namespace `{name}` is not a DNS-1123 label: {why}"))
}

/// Checks a PVC name: a DNS-1123 subdomain (dot-separated labels, at most 253 bytes).
///
/// # Errors
/// A sentence saying what is wrong with `name`.
pub fn check_pvc_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| format!("PVC name `{name}` is not a DNS-1123 subdomain: {why}");
    if name.len() > 253 {
        return Err(fail("longer than 253 characters"));
    }
    name.split('.')
        .try_for_each(|label| check_label(label, 253).map_err(|w| fail(&w)))
}

/// Checks a name used as one folder name without Kubernetes' rules (the LV name of a volume
/// no PV names): not empty, no `/`, not starting with `.`, valid UTF-8 (a lossy name shows
/// U+FFFD).
///
/// # Errors
/// A sentence saying what is wrong with `name`.
pub fn check_folder_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains('/') || name.contains('\0') {
        "it holds `/` or NUL"
    } else if name.starts_with('.') {
        "it starts with `.`"
    } else if name.contains('\u{FFFD}') {
        "it is not valid UTF-8"
    } else {
        return Ok(());
    };
    Err(format!(
        "name `{}` cannot be a folder name: {why}",
        name.escape_debug()
    ))
}

fn check_label(label: &str, max: usize) -> Result<(), String> {
    let b = label.as_bytes();
    if b.is_empty() {
        return Err("an empty label (two dots, or a dot at an end)".to_owned());
    }
    if b.len() > max {
        return Err(format!("longer than {max} characters"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{}` is not allowed (lowercase letters, digits and `-` only)",
            c.escape_debug()
        ));
    }
    if b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err("it must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["vaultwarden", "a", "kube-system", "x1", &"a".repeat(63)] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".complete",
            "..",
            "a.b",
            "A",
            "-a",
            "a-",
            "a_b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_namespace(".complete").unwrap_err(),
            "namespace `.complete` is not a DNS-1123 label: `.` is not allowed (lowercase letters, digits and `-` only)"
        );
    }

    #[test]
    fn pvc_names() {
        for ok in ["data", "data-0", "pg.data", "a.b-c.d"] {
            assert!(check_pvc_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".complete", "a..b", "a.", "A", "a/b", "a b"] {
            assert!(check_pvc_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folder_names() {
        for ok in ["vm-102-pvc-c", "Data_1+x"] {
            assert!(check_folder_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".complete", "a/b", "caf\u{FFFD}"] {
            assert!(check_folder_name(bad).is_err(), "{bad}");
        }
    }
}
