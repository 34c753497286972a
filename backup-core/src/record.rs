//! The per-file record of one complete version: what every file of a PVC copy was when it was
//! taken. daily-backup compares the next snapshot with it (what changed is all it copies), and
//! a verify or a restore checks a version against it: one artifact, not two.
//!
//! Stored beside the copies, never among them (`pvc-data/<week>/.records/<namespace>/<pvc>`):
//! `rsync --delete` into a copy and the version listing leave it alone. The format is binary and
//! versioned: a magic line, the entry count, the entries with length-prefixed fields
//! (little-endian), and a checksum of all that (xxh3-128; md5 in formats 1 and 2). A record
//! that is truncated, damaged or of another version does not decode; the caller then copies the
//! volume in full.

use serde::Serialize;

/// The first bytes of every record, with the format version. Format 3 is format 2 with an
/// xxh3-128 checksum instead of md5: the checksum guards against damage, not forgery (whoever can
/// write the record can compute either), and xxh3 is some 20 times faster, which is most of the
/// time `backupctl find` spends over many records.
pub const RECORD_MAGIC: &[u8; 8] = b"HBREC03\n";

/// The second format: its checksum is the md5 of the body; still decodes.
const RECORD_MAGIC_V2: &[u8; 8] = b"HBREC02\n";

/// The first format: the same fields, but its SQLite flag was never filled in; such a record
/// still decodes, with every file's flag unknown (its files' headers are read again).
const RECORD_MAGIC_V1: &[u8; 8] = b"HBREC01\n";

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket.
    Special,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Dir => 1,
            EntryKind::Symlink => 2,
            EntryKind::Special => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            3 => EntryKind::Special,
            _ => return None,
        })
    }
}

/// One entry of a version, relative to the PVC's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// The path, as bytes.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Change time, nanoseconds since the epoch (only meaningful where the snapshot keeps it).
    pub ctime_ns: i64,
    /// Inode in the snapshot (only meaningful where the snapshot keeps it).
    pub inode: u64,
    /// Links to the inode.
    pub nlink: u64,
    /// Mode bits, type included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (devices).
    pub rdev: u64,
    /// Where a symlink points.
    pub link_target: Vec<u8>,
    /// md5 of the extended attributes (ACLs included), or zeros when there are none.
    pub xattr_md5: [u8; 16],
    /// md5 of the content (files), or zeros.
    pub md5: [u8; 16],
    /// Whether the file is a SQLite database: `Some` once its header was read (or it could not be
    /// one: a side file, shorter than the magic), `None` when not known (a damaged or unreadable
    /// header, a record of the first format). daily-backup reads the header of a file again
    /// unless it is unchanged and known not to be a database.
    pub sqlite: Option<bool>,
}

impl FileEntry {
    /// True when `other` (the same path in the next snapshot) is this entry unchanged: content
    /// (size and mtime; with `trust_ctime`, also inode and ctime, which catch a rewrite that
    /// keeps both), type, mode, owner, link target, device, extended attributes.
    pub fn unchanged(&self, other: &FileEntry, trust_ctime: bool) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.rdev == other.rdev
            && self.link_target == other.link_target
            && self.xattr_md5 == other.xattr_md5
            && (!trust_ctime || (self.ctime_ns == other.ctime_ns && self.inode == other.inode))
    }
}

/// Why a record did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record, or of another format version.
    #[error("not a record of this format (magic)")]
    Magic,
    /// Cut short.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// The checksum does not match: damaged.
    #[error("checksum mismatch: the record is damaged")]
    Checksum,
    /// A field holds what it cannot.
    #[error("invalid field at byte {0}")]
    Invalid(usize),
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes `entries` (in any order; sorted by path here) with the checksum.
pub fn encode_record(entries: &[FileEntry]) -> Vec<u8> {
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = Vec::with_capacity(16 + entries.len() * 96);
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    for e in sorted {
        put_bytes(&mut out, &e.path);
        out.push(e.kind.code());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.inode.to_le_bytes());
        out.extend_from_slice(&e.nlink.to_le_bytes());
        out.extend_from_slice(&e.mode.to_le_bytes());
        out.extend_from_slice(&e.uid.to_le_bytes());
        out.extend_from_slice(&e.gid.to_le_bytes());
        out.extend_from_slice(&e.rdev.to_le_bytes());
        put_bytes(&mut out, &e.link_target);
        out.extend_from_slice(&e.xattr_md5);
        out.extend_from_slice(&e.md5);
        out.push(match e.sqlite {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        });
    }
    let sum = xxhash_rust::xxh3::xxh3_128(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(RecordError::Invalid(self.at))?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or(RecordError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| RecordError::Invalid(self.at))?,
        ))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| RecordError::Invalid(self.at))?,
        ))
    }
    fn md5(&mut self) -> Result<[u8; 16], RecordError> {
        self.take(16)?
            .try_into()
            .map_err(|_| RecordError::Invalid(self.at))
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// One entry of a record as it lies in the record's bytes: [`visit_record`] hands these out
/// without copying; [`RecordEntry::to_owned`] makes the [`FileEntry`].
#[derive(Debug, Clone)]
pub struct RecordEntry<'a> {
    /// The path.
    pub path: &'a [u8],
    /// Where a symlink points.
    pub link_target: &'a [u8],
    /// Every other field (its `path` and `link_target` empty: no allocation).
    pub fields: FileEntry,
}

impl RecordEntry<'_> {
    /// The owned entry.
    pub fn to_owned(&self) -> FileEntry {
        FileEntry {
            path: self.path.to_vec(),
            link_target: self.link_target.to_vec(),
            ..self.fields.clone()
        }
    }
}

/// Decodes a record, checking its magic and checksum; entries sorted by path.
///
/// # Errors
/// A [`RecordError`] for anything but a whole, undamaged record of this format.
pub fn decode_record(bytes: &[u8]) -> Result<Vec<FileEntry>, RecordError> {
    let mut out = Vec::new();
    visit_record(bytes, |e| out.push(e.to_owned()))?;
    Ok(out)
}

/// Checks a record's magic and checksum, then hands `f` each entry in path order without
/// copying it (`backupctl find` keeps only the matches). Returns the number of entries.
///
/// # Errors
/// A [`RecordError`] for anything but a whole, undamaged record of this format; `f` may have
/// seen some entries of a record that turns out invalid past them.
pub fn visit_record(bytes: &[u8], mut f: impl FnMut(RecordEntry<'_>)) -> Result<u64, RecordError> {
    let v1 = bytes.starts_with(RECORD_MAGIC_V1);
    let md5_sum = v1 || bytes.starts_with(RECORD_MAGIC_V2);
    if !md5_sum && !bytes.starts_with(RECORD_MAGIC) {
        return Err(RecordError::Magic);
    }
    if bytes.len() < RECORD_MAGIC.len() + 8 + 16 {
        return Err(RecordError::Truncated(bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 16);
    let good = if md5_sum {
        md5::compute(body).0 == sum
    } else {
        xxhash_rust::xxh3::xxh3_128(body).to_le_bytes() == sum
    };
    if !good {
        return Err(RecordError::Checksum);
    }
    let mut r = Reader {
        b: body,
        at: RECORD_MAGIC.len(),
    };
    let n = r.u64()?;
    for _ in 0..n {
        let path = r.bytes()?;
        // the fixed fields in one bounds check: kind, 5 x 8, 3 x 4, 8
        let at = r.at;
        let fixed: &[u8; 61] = r
            .take(61)?
            .try_into()
            .map_err(|_| RecordError::Invalid(at))?;
        let kind = EntryKind::from_code(fixed[0]).ok_or(RecordError::Invalid(at))?;
        let u64_at = |i: usize| u64::from_le_bytes(fixed[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap_or_default());
        let (size, mtime_ns, ctime_ns) = (u64_at(1), u64_at(9) as i64, u64_at(17) as i64);
        let (inode, nlink) = (u64_at(25), u64_at(33));
        let (mode, uid, gid, rdev) = (u32_at(41), u32_at(45), u32_at(49), u64_at(53));
        let link_target = r.bytes()?;
        let (xattr_md5, md5) = (r.md5()?, r.md5()?);
        let at = r.at;
        let sqlite = match (v1, r.u8()?) {
            (true, _) | (false, 2) => None,
            (false, 0) => Some(false),
            (false, 1) => Some(true),
            _ => return Err(RecordError::Invalid(at)),
        };
        f(RecordEntry {
            path,
            link_target,
            fields: FileEntry {
                path: Vec::new(),
                kind,
                size,
                mtime_ns,
                ctime_ns,
                inode,
                nlink,
                mode,
                uid,
                gid,
                rdev,
                link_target: Vec::new(),
                xattr_md5,
                md5,
                sqlite,
            },
        });
    }
    if r.at != body.len() {
        return Err(RecordError::Invalid(r.at));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = FileEntry> {
        (
            prop::collection::vec(1u8..=255, 1..30),
            0u8..4,
            any::<u64>(),
            any::<i64>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..10),
            any::<[u8; 16]>(),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(path, k, size, t, mode, target, md5, sqlite)| FileEntry {
                path,
                kind: EntryKind::from_code(k).unwrap(),
                size,
                mtime_ns: t,
                ctime_ns: t.wrapping_add(1),
                inode: size ^ 7,
                nlink: 1,
                mode,
                uid: mode ^ 1,
                gid: mode ^ 2,
                rdev: 0,
                link_target: target,
                xattr_md5: md5,
                md5,
                sqlite,
            })
    }

    #[test]
    fn a_first_format_record_decodes_with_the_sqlite_flag_unknown() {
        let e = FileEntry {
            path: b"db".to_vec(),
            kind: EntryKind::File,
            size: 4096,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
            nlink: 1,
            mode: 0o100_644,
            uid: 0,
            gid: 0,
            rdev: 0,
            link_target: Vec::new(),
            xattr_md5: [0; 16],
            md5: [1; 16],
            sqlite: Some(false),
        };
        let mut bytes = encode_record(std::slice::from_ref(&e));
        bytes[..8].copy_from_slice(RECORD_MAGIC_V1);
        let body = bytes.len() - 16;
        bytes[body - 1] = 0; // the only entry's last byte, the flag: v1 always wrote 0
        let sum = md5::compute(&bytes[..body]).0;
        bytes[body..].copy_from_slice(&sum);
        let back = decode_record(&bytes).unwrap();
        assert_eq!(back[0].sqlite, None, "a v1 'false' was never a finding");
        assert_eq!(back[0].md5, [1; 16]);
        // format 2: the flag kept, the checksum an md5
        let mut v2 = encode_record(std::slice::from_ref(&e));
        v2[..8].copy_from_slice(RECORD_MAGIC_V2);
        let sum = md5::compute(&v2[..body]).0;
        v2[body..].copy_from_slice(&sum);
        assert_eq!(decode_record(&v2).unwrap(), std::slice::from_ref(&e));
        // a format 3 checksum under a format 2 magic is damage
        let mut mixed = encode_record(std::slice::from_ref(&e));
        mixed[..8].copy_from_slice(RECORD_MAGIC_V2);
        assert!(matches!(decode_record(&mixed), Err(RecordError::Checksum)));
    }

    proptest! {
        #[test]
        fn round_trip_and_every_damage_is_caught(
            entries in prop::collection::vec(entry(), 0..40),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut want = entries.clone();
            want.sort_by(|a, b| a.path.cmp(&b.path));
            let bytes = encode_record(&entries);
            prop_assert_eq!(decode_record(&bytes).unwrap(), want);
            // any truncation, any flipped byte: never a wrong record
            let cut = cut.index(bytes.len());
            prop_assert!(decode_record(&bytes[..cut]).is_err());
            let mut damaged = bytes.clone();
            let i = flip.index(damaged.len());
            damaged[i] ^= 0x40;
            prop_assert!(decode_record(&damaged).is_err());
        }
    }
}
