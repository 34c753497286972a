//! Read-only mounts of snapshots: the real one (root), and reading in place (`dir`, not root).

use backup_core::{Error, Invocation, Mounter, Result, Runner, SnapshotSource};
use camino::{Utf8Path, Utf8PathBuf};

/// Mounts with `mount(2)`: a device read-only with journal replay off (a crash-consistent
/// snapshot of ext4 has a dirty journal, and replaying it would write to the snapshot), a folder
/// as a read-only bind mount. After mounting it checks that the mount is really there and
/// read-only, so a silent no-op can never let a backup read the empty folder underneath.
/// The file system type of a device comes from `blkid`; the mounts and unmounts are system
/// calls (a `mount(8)` and `umount(8)` process per volume cost more than the copy of a small
/// volume).
pub struct SystemMounter<'r> {
    runner: &'r dyn Runner,
}

impl<'r> SystemMounter<'r> {
    /// Mounts through `runner`.
    pub fn new(runner: &'r dyn Runner) -> Self {
        Self { runner }
    }

    fn fs_type(&self, device: &Utf8Path) -> Result<String> {
        let out = Invocation::new("blkid", ["-o", "value", "-s", "TYPE", device.as_str()])
            .read_only()
            .run_checked(self.runner)?;
        let t = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if t.is_empty() {
            return Err(Error::unexpected(
                format!("read the file system type of {device}"),
                "blkid found none",
            ));
        }
        Ok(t)
    }
}

/// Mount options that keep a crash-consistent snapshot untouched (as `mount -o` takes them).
pub fn ro_options(fs_type: &str) -> &'static str {
    match fs_type {
        "ext4" | "ext3" => "ro,noload,nosuid,nodev",
        "xfs" => "ro,norecovery,nosuid,nodev",
        _ => "ro,nosuid,nodev",
    }
}

/// [`ro_options`] as `mount(2)` takes them: the flags, and what goes to the file system.
fn syscall_options(options: &str) -> (rustix::mount::MountFlags, String) {
    use rustix::mount::MountFlags;
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for o in options.split(',') {
        match o {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => {}
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

impl SystemMounter<'_> {
    /// Mounts `source` on `target` (which must not be a mount point yet): a device with its
    /// file system's read-only options, or read-write; a folder as a bind mount, made read-only
    /// by a remount.
    fn mount(&self, source: &SnapshotSource, target: &Utf8Path, writable: bool) -> Result<()> {
        use rustix::mount::MountFlags;
        if mount_point_options(target)?.is_some() {
            return Err(Error::occupied(
                format!("mount on {target}"),
                "already a mount point",
            ));
        }
        let failed = |what: &str, e: rustix::io::Errno| {
            Error::io(format!("mount {what} on {target}"), std::io::Error::from(e))
        };
        match source {
            SnapshotSource::Device(dev) => {
                let fs = self.fs_type(dev)?;
                let options = if writable {
                    "rw,nosuid,nodev"
                } else {
                    ro_options(&fs)
                };
                let (flags, data) = syscall_options(options);
                rustix::mount::mount(
                    dev.as_str(),
                    target.as_str(),
                    fs.as_str(),
                    flags,
                    data.as_str(),
                )
                .map_err(|e| failed(&format!("{dev} ({fs}, {options})"), e))
            }
            SnapshotSource::Dir(dir) => {
                rustix::mount::mount_bind(dir.as_str(), target.as_str())
                    .map_err(|e| failed(&format!("{dir} (bind)"), e))?;
                let mut flags = MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV;
                if !writable {
                    flags |= MountFlags::RDONLY;
                }
                rustix::mount::mount_remount(target.as_str(), flags, "").map_err(|e| {
                    let _ = rustix::mount::unmount(
                        target.as_str(),
                        rustix::mount::UnmountFlags::empty(),
                    );
                    failed(&format!("{dir} (bind, remounted read-only)"), e)
                })
            }
        }
    }
}

impl Mounter for SystemMounter<'_> {
    fn mount_ro(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        self.mount(source, target, false)?;
        match mount_point_options(target)? {
            Some(opts) if opts.split(',').any(|o| o == "ro") => Ok(target.to_owned()),
            Some(opts) => {
                let _ = self.unmount(target);
                Err(Error::unexpected(
                    format!("mount {target} read-only"),
                    format!("it is mounted `{opts}`"),
                ))
            }
            None => Err(Error::unexpected(
                format!("mount on {target}"),
                "mount returned 0 but nothing is mounted there",
            )),
        }
    }

    fn mount_rw(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        self.mount(source, target, true)?;
        match mount_point_options(target)? {
            Some(_) => Ok(target.to_owned()),
            None => Err(Error::unexpected(
                format!("mount on {target}"),
                "mount returned 0 but nothing is mounted there",
            )),
        }
    }

    fn unmount(&self, target: &Utf8Path) -> Result<()> {
        // With volumes copied in parallel, a child another worker is starting holds a copy of
        // every descriptor between its fork and its exec, ours on this mount included: the
        // unmount then fails "busy" for a moment. Retry for a while before calling it a failure.
        let mut tries = 0;
        loop {
            match rustix::mount::unmount(target.as_str(), rustix::mount::UnmountFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::BUSY) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("unmount {target}"),
                        std::io::Error::from(e),
                    ))
                }
            }
        }
    }
}

/// Reads the `dir` backend's snapshot folders where they are (no root, no mount): they are
/// copies this tool made, so nothing else writes to them.
#[derive(Debug, Default)]
pub struct InPlaceMounter;

impl Mounter for InPlaceMounter {
    fn mount_ro(&self, source: &SnapshotSource, _target: &Utf8Path) -> Result<Utf8PathBuf> {
        match source {
            SnapshotSource::Dir(dir) => Ok(dir.clone()),
            SnapshotSource::Device(dev) => Err(Error::Unsupported {
                operation: format!("mount {dev}"),
                reason: "mounting a device needs root".to_owned(),
            }),
        }
    }

    fn mount_rw(&self, source: &SnapshotSource, target: &Utf8Path) -> Result<Utf8PathBuf> {
        self.mount_ro(source, target)
    }

    fn unmount(&self, _target: &Utf8Path) -> Result<()> {
        Ok(())
    }
}

/// The per-mount options of `path` when it is a mount point (from `/proc/self/mountinfo`).
///
/// # Errors
/// When mountinfo cannot be read.
pub fn mount_point_options(path: &Utf8Path) -> Result<Option<String>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let trimmed = path.as_str().trim_end_matches('/');
    let want = if trimmed.is_empty() { "/" } else { trimmed };
    // the last mount on a path wins: scan all lines
    Ok(info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 5 && unescape_mountinfo(f[4]) == want).then(|| f[5].to_owned())
    }))
}

/// Every mount point strictly under `dir`, deepest first (from `/proc/self/mountinfo`).
///
/// # Errors
/// When mountinfo cannot be read.
pub fn mounts_under(dir: &Utf8Path) -> Result<Vec<camino::Utf8PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
    let prefix = format!("{}/", dir.as_str().trim_end_matches('/'));
    let mut out: Vec<camino::Utf8PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .filter(|m| m.starts_with(&prefix))
        .map(camino::Utf8PathBuf::from)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_str().len()));
    out.dedup();
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/run/a\040b"), "/run/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(mount_point_options(Utf8Path::new("/")).unwrap().is_some());
    }
}
