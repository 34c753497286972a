//! The backup root's identity: `<backup-root>/.backup-root-id`, a random id written once, when
//! the root is first used (by daily-backup, or by offsite step 1 on a root from before it
//! existed). It travels offsite with the root, so step 1 can tell the disk it last synced from
//! a new, wiped or foreign one before `--delete` mirrors it.

use std::io::Read;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};

/// The file's name in the backup root.
pub const ROOT_ID_FILE: &str = ".backup-root-id";

/// `<root>/.backup-root-id`.
pub fn path(root: &Utf8Path) -> Utf8PathBuf {
    root.join(ROOT_ID_FILE)
}

/// The id in `bytes` (one line, `hbroot-` and 32 hex digits); `None` when it is not one.
pub fn parse(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let hex = text.strip_prefix("hbroot-")?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| text.to_owned())
}

/// The root's id, when it has one.
///
/// # Errors
/// When the file is there but unreadable or not an id (a damaged id is not silently replaced).
pub fn read(root: &Utf8Path) -> Result<Option<String>> {
    let p = path(root);
    match crate::safe_read::read_regular(&p) {
        Ok(b) => parse(&b).map(Some).ok_or_else(|| {
            Error::Refused(format!(
                "{p} is not a backup root id (`hbroot-` and 32 hex digits): remove it only if \
                 this is a new backup disk"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

/// The root's id, written first when it has none.
///
/// # Errors
/// When it cannot be read or written.
pub fn ensure(root: &Utf8Path) -> Result<String> {
    if let Some(id) = read(root)? {
        return Ok(id);
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read", "/dev/urandom", e))?;
    let id = format!(
        "hbroot-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    crate::fsutil::write_atomic(&path(root), format!("{id}\n").as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_written_once_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(d.path()).unwrap();
        assert_eq!(read(root).unwrap(), None);
        let id = ensure(root).unwrap();
        assert!(id.starts_with("hbroot-") && id.len() == 39, "{id}");
        assert_eq!(ensure(root).unwrap(), id);
        std::fs::write(path(root), "garbage").unwrap();
        assert!(read(root).is_err());
    }
}
