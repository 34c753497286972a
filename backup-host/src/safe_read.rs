//! Reading the files the binaries did not just write themselves (records, completion markers,
//! damage lists, commit journals, change-log segments, the offsite state, SQLite sources files,
//! env files, key files, the config, the PV cache) as what they must be: regular files.
//!
//! `std::fs::read` follows a symlink (`.records/ns/pvc -> /etc/shadow`) and blocks forever in
//! `open` on a FIFO (`mkfifo .records/ns/pvc` hung daily-backup with both locks held and the
//! snapshot mounted). Here the file is opened `O_NOFOLLOW | O_NONBLOCK`, checked with `fstat`
//! to be a regular file, and only then read; anything else is an error naming the path.

use std::io::Read;

use rustix::fs::{FileType, Mode, OFlags};

/// Reads `path` when it is a regular file (not through a symlink, never blocking on a FIFO or
/// device). A missing file keeps its `NotFound` kind.
///
/// # Errors
/// `NotFound`; a symlink, FIFO, socket, device or folder ("not a regular file"); I/O errors.
pub fn read_regular(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    let mut f = open_regular(path)?;
    let mut out = Vec::with_capacity(
        f.metadata()
            .map(|m| usize::try_from(m.len()).unwrap_or(0))
            .unwrap_or(0),
    );
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Opens `path` for reading when it is a regular file (not through a symlink, never blocking
/// on a FIFO or device), for a file too large to read whole (a dump).
///
/// # Errors
/// As [`read_regular`].
pub fn open_regular(path: impl AsRef<std::path::Path>) -> std::io::Result<std::fs::File> {
    let path = path.as_ref();
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            not_regular("a symlink")
        } else {
            e.into()
        }
    })?;
    let st = rustix::fs::fstat(&fd)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(not_regular("a folder")),
        FileType::Fifo => return Err(not_regular("a FIFO")),
        FileType::Socket => return Err(not_regular("a socket")),
        FileType::CharacterDevice | FileType::BlockDevice => return Err(not_regular("a device")),
        _ => return Err(not_regular("not a file")),
    }
    Ok(std::fs::File::from(fd))
}

/// [`read_regular`] as UTF-8 text.
///
/// # Errors
/// As [`read_regular`], and text that is not UTF-8 (`InvalidData`).
pub fn read_regular_string(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Whether a file that steers a run as root (the config, an env file, a key or known-hosts
/// file) can be trusted, as sshd's `StrictModes` asks: the file and every folder above it owned
/// by root (or by the user running), and not writable by group or others. A world-writable
/// folder with the sticky bit (`/tmp`) is allowed above it: there nobody else can replace what
/// root owns. Only checked when running as root: anyone who could change the file could run
/// commands as root through it (`ProxyCommand`, a dump command).
///
/// # Errors
/// What is wrong, naming the path, its mode and its owner.
pub fn check_trusted(path: &camino::Utf8Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid();
    if !me.is_root() {
        return Ok(());
    }
    let mut at = Some(path);
    let mut first = true;
    while let Some(p) = at {
        let m = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if first && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{p}: cannot be checked: {e}")),
        };
        let mode = m.mode() & 0o7777;
        let sticky_dir = m.is_dir() && mode & 0o1000 != 0;
        if m.uid() != 0 && m.uid() != me.as_raw() {
            return Err(format!(
                "{p} is owned by uid {} (mode {mode:o}): a file that steers a run as root must \
                 be owned by root, and so must the folders above it",
                m.uid()
            ));
        }
        if mode & 0o022 != 0 && !sticky_dir {
            return Err(format!(
                "{p} is writable by {} (mode {mode:o}, owner uid {}): anyone who can change it \
                 can run commands as root; `chmod go-w {p}`",
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                m.uid()
            ));
        }
        first = false;
        at = p.parent().filter(|q| !q.as_str().is_empty());
    }
    Ok(())
}

fn not_regular(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("not a regular file ({what}): refused, it could block or point anywhere"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_and_nothing_blocks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(read_regular(&f).unwrap(), b"x");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for (p, what) in [
            (&link, "symlink"),
            (&fifo, "FIFO"),
            (&d.path().to_owned(), "folder"),
        ] {
            let e = read_regular(p).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        assert_eq!(
            read_regular(d.path().join("missing")).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
