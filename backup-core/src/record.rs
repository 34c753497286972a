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
//!
//! Each file's content digest is xxh3-128 from format 4 on ([`ContentHash`]); an entry carried
//! over unchanged from an older record keeps its md5, marked as such, so nothing is read again
//! just because the format moved on.

use serde::Serialize;

/// The first bytes of every record, with the format version. Format 4 is format 3 with each
/// file's content digest in xxh3-128 (a flag bit per entry says when it is still an md5): the
/// digest guards against damage, not forgery (whoever can write the copy can write the record),
/// and xxh3 hashes some 20 times faster than md5, which was most of the CPU of a first copy and
/// of a verify.
pub const RECORD_MAGIC: &[u8; 8] = b"HBREC04\n";

/// The third format: every content digest an md5, an xxh3-128 checksum; still decodes.
const RECORD_MAGIC_V3: &[u8; 8] = b"HBREC03\n";

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

/// How a file's content digest was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ContentHash {
    /// xxh3-128 (record format 4 on): what every new digest is.
    #[default]
    Xxh3,
    /// md5: the digests of records of formats 1 to 3, and entries carried over from them.
    Md5,
}

impl ContentHash {
    /// A hasher of this kind.
    pub fn hasher(self) -> ContentHasher {
        match self {
            ContentHash::Xxh3 => ContentHasher::Xxh3(Box::default()),
            ContentHash::Md5 => ContentHasher::Md5(md5::Context::new()),
        }
    }

    /// The digest of `bytes`.
    pub fn of(self, bytes: &[u8]) -> [u8; 16] {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }

    /// "xxh3" or "md5", for messages.
    pub fn name(self) -> &'static str {
        match self {
            ContentHash::Xxh3 => "xxh3-128",
            ContentHash::Md5 => "md5",
        }
    }
}

/// A content digest being computed ([`ContentHash::hasher`]).
pub enum ContentHasher {
    /// xxh3-128.
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    /// md5.
    Md5(md5::Context),
}

impl ContentHasher {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Xxh3(h) => h.update(bytes),
            ContentHasher::Md5(h) => h.consume(bytes),
        }
    }

    /// The digest.
    pub fn finish(self) -> [u8; 16] {
        match self {
            ContentHasher::Xxh3(h) => h.digest128().to_le_bytes(),
            ContentHasher::Md5(h) => h.finalize().0,
        }
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
    /// The content digest (files; [`FileEntry::digest_kind`] says which), or zeros.
    pub digest: [u8; 16],
    /// How [`FileEntry::digest`] was computed.
    pub digest_kind: ContentHash,
    /// Whether the file is a SQLite database: `Some` once its header was read (or it could not be
    /// one: a side file, shorter than the magic), `None` when not known (a damaged or unreadable
    /// header, a record of the first format). daily-backup reads the header of a file again
    /// unless it is unchanged and known not to be a database.
    pub sqlite: Option<bool>,
}

/// One attribute of a [`FileEntry`] (content aside) two entries can differ in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryField {
    /// File, folder, symlink or special.
    Kind,
    /// The mode: the permission bits, and where [`Comparison::type_bits`] asks for them the
    /// file type bits.
    Mode,
    /// Owner and group.
    Owner,
    /// The size in bytes.
    Size,
    /// The modification time.
    Mtime,
    /// A symlink's target.
    LinkTarget,
    /// A device's number.
    Rdev,
    /// The extended attributes (ACLs among them).
    Xattrs,
    /// The inode and change time: the identity of the file the entry was read from.
    Identity,
}

/// Which attributes one comparison of two entries looks at, and why: every caller that asks
/// "is this the same entry" goes through [`Comparison::differences`] with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// The size ([`EntryField::Size`]).
    pub size: bool,
    /// A device's number ([`EntryField::Rdev`]).
    pub rdev: bool,
    /// Entries of this kind have their mtime ignored.
    pub mtime_ignored_for: Option<EntryKind>,
    /// The mode's file type bits too, not only the permissions: they tell a FIFO, a socket and
    /// a device apart (all three are [`EntryKind::Special`]).
    pub type_bits: bool,
    /// The inode and ctime ([`EntryField::Identity`]).
    pub identity: bool,
}

impl Comparison {
    /// daily-backup's "unchanged since the last copy" (and offsite's "vouched for", two
    /// versions "the same tree"): everything a copy keeps. With `identity`, the inode and the
    /// ctime too: a rewrite that keeps size and mtime moves the ctime, but only a snapshot of the
    /// same file system keeps inodes, so a caller trusts them only then.
    pub const fn copy(identity: bool) -> Self {
        Self {
            size: true,
            rdev: true,
            mtime_ignored_for: None,
            type_bits: true,
            identity,
        }
    }

    /// `check`, `verify` and the drill: a copy or a restore against its record. A symlink's
    /// mtime is not compared: the link's own time is not what an operator restores, and not
    /// every way back (a `cp`, a tar) keeps it. Inodes and ctimes belong to the snapshot.
    pub const RESTORED: Self = Self {
        size: true,
        rdev: true,
        mtime_ignored_for: Some(EntryKind::Symlink),
        type_bits: true,
        identity: false,
    };

    /// `diff`: the metadata changes an operator reads between two weeks. The size is the
    /// content's (reported as a content change); a folder's mtime moves with every entry made
    /// or removed in it; device numbers and a special file's type are not worth a line.
    pub const HISTORY: Self = Self {
        size: false,
        rdev: false,
        mtime_ignored_for: Some(EntryKind::Dir),
        type_bits: false,
        identity: false,
    };

    /// The attributes `a` and `b` differ in, in [`EntryField`] order.
    pub fn differences(&self, a: &FileEntry, b: &FileEntry) -> Vec<EntryField> {
        self.checks(a, b)
            .into_iter()
            .filter_map(|(field, differs)| differs.then_some(field))
            .collect()
    }

    /// Each attribute, in [`EntryField`] order, and whether `a` and `b` differ in it as this
    /// comparison looks (no allocation: daily-backup asks this of every file of every run).
    fn checks(&self, a: &FileEntry, b: &FileEntry) -> [(EntryField, bool); 9] {
        // between kinds only the permissions compare: the kind says the rest
        let mode = if self.type_bits && a.kind == b.kind {
            !0
        } else {
            0o7777
        };
        [
            (EntryField::Kind, a.kind != b.kind),
            (EntryField::Mode, a.mode & mode != b.mode & mode),
            (EntryField::Owner, (a.uid, a.gid) != (b.uid, b.gid)),
            (EntryField::Size, self.size && a.size != b.size),
            (
                EntryField::Mtime,
                self.mtime_ignored_for != Some(a.kind) && a.mtime_ns != b.mtime_ns,
            ),
            (EntryField::LinkTarget, a.link_target != b.link_target),
            (EntryField::Rdev, self.rdev && a.rdev != b.rdev),
            (EntryField::Xattrs, a.xattr_md5 != b.xattr_md5),
            (
                EntryField::Identity,
                self.identity && (a.ctime_ns != b.ctime_ns || a.inode != b.inode),
            ),
        ]
    }

    /// True when `a` and `b` differ in nothing this comparison looks at.
    pub fn same(&self, a: &FileEntry, b: &FileEntry) -> bool {
        self.checks(a, b).iter().all(|(_, differs)| !differs)
    }
}

impl FileEntry {
    /// True when `other` (the same path in the next snapshot) is this entry unchanged:
    /// [`Comparison::copy`] finds no difference.
    pub fn unchanged(&self, other: &FileEntry, trust_ctime: bool) -> bool {
        Comparison::copy(trust_ctime).same(self, other)
    }
}

/// The regular files of a version (`now`, its record here) that a copy made to match `sent`
/// (the record the offsite copy holds) must receive again whatever their size and mtime say:
/// every file `sent` does not vouch for with the same size, mtime, mode, owner, extended
/// attributes (ACLs) and a known digest of the same kind. rsync's quick check compares size
/// and mtime only, and sets a changed mode or ACL in place: through an offsite inode that
/// older weeks share.
pub fn resend_paths(sent: &[FileEntry], now: &[FileEntry]) -> Vec<Vec<u8>> {
    let by_path: std::collections::BTreeMap<&[u8], &FileEntry> =
        sent.iter().map(|e| (e.path.as_slice(), e)).collect();
    now.iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter(|e| {
            !by_path.get(e.path.as_slice()).is_some_and(|s| {
                s.unchanged(e, false)
                    && s.digest_kind == e.digest_kind
                    && s.digest == e.digest
                    && (s.digest != [0; 16] || e.size == 0)
            })
        })
        .map(|e| e.path.clone())
        .collect()
}

/// True when two versions' records (as decoded: sorted by path) describe the same tree as a
/// restore gives it back: the same paths, each [`FileEntry::unchanged`] (ctime and inode belong
/// to the snapshot, not to what is restored), the same link counts, and every regular file with
/// content the same digest of the same kind, known (a file whose digest is unknown is never
/// assumed the same).
pub fn same_tree(a: &[FileEntry], b: &[FileEntry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.path == y.path
                && x.unchanged(y, false)
                && x.nlink == y.nlink
                && (x.kind != EntryKind::File
                    || x.size == 0
                    || (x.digest_kind == y.digest_kind
                        && x.digest == y.digest
                        && x.digest != [0; 16]))
        })
}

/// A regular file's record entry for tests: `path`, `size`, mode 644, root's, one link, times
/// and inode 1, no extended attributes, an unknown (zero) xxh3 digest, not a database. Change
/// what a test is about with struct update syntax (`FileEntry { digest, ..file_entry(..) }`).
#[cfg(any(test, feature = "testing"))]
pub fn file_entry(path: &str, size: u64) -> FileEntry {
    FileEntry {
        path: path.as_bytes().to_vec(),
        kind: EntryKind::File,
        size,
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
        digest: [0; 16],
        digest_kind: ContentHash::Xxh3,
        sqlite: Some(false),
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
    encode_as(entries, RECORD_MAGIC)
}

/// Encodes `entries` as format 3 wrote them (every digest must be an md5): the upgrade tests
/// make the records an older release left.
#[cfg(any(test, feature = "testing"))]
pub fn encode_record_format3(entries: &[FileEntry]) -> Vec<u8> {
    assert!(
        entries.iter().all(|e| e.digest_kind == ContentHash::Md5),
        "format 3 holds md5 digests only"
    );
    encode_as(entries, RECORD_MAGIC_V3)
}

fn encode_as(entries: &[FileEntry], magic: &[u8; 8]) -> Vec<u8> {
    let old = magic != RECORD_MAGIC;
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = Vec::with_capacity(16 + entries.len() * 96);
    out.extend_from_slice(magic);
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
        out.extend_from_slice(&e.digest);
        let sqlite = match e.sqlite {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        };
        let md5 = !old && e.digest_kind == ContentHash::Md5;
        out.push(sqlite | if md5 { MD5_FLAG } else { 0 });
    }
    let sum = xxhash_rust::xxh3::xxh3_128(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The bit of an entry's flag byte (format 4) that says its digest is an md5.
const MD5_FLAG: u8 = 0x10;

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
    let v3 = bytes.starts_with(RECORD_MAGIC_V3);
    if !md5_sum && !v3 && !bytes.starts_with(RECORD_MAGIC) {
        return Err(RecordError::Magic);
    }
    // formats 1 to 3: every digest an md5
    let old = md5_sum || v3;
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
        let (xattr_md5, digest) = (r.md5()?, r.md5()?);
        let at = r.at;
        let flags = r.u8()?;
        let digest_kind = if old || flags & MD5_FLAG != 0 {
            ContentHash::Md5
        } else {
            ContentHash::Xxh3
        };
        let sqlite = match (v1, flags & !MD5_FLAG) {
            (true, _) | (false, 2) => None,
            (false, 0) => Some(false),
            (false, 1) => Some(true),
            _ => return Err(RecordError::Invalid(at)),
        };
        if old && flags & MD5_FLAG != 0 {
            return Err(RecordError::Invalid(at));
        }
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
                digest,
                digest_kind,
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

    /// Two entries that differ in any subset of their attributes, each from a small domain so
    /// that equal values are common: a FIFO and a socket (both special), a rewrite that keeps
    /// size and mtime (ctime and inode moved), a folder that was a file with the same mode.
    fn entry_pair() -> impl Strategy<Value = (FileEntry, FileEntry)> {
        let one = (
            prop::sample::select(vec![
                (EntryKind::File, 0o100_644u32),
                (EntryKind::File, 0o100_755),
                (EntryKind::Dir, 0o040_755),
                (EntryKind::Symlink, 0o120_777),
                (EntryKind::Special, 0o010_644),
                (EntryKind::Special, 0o140_644),
            ]),
            (
                0u64..2,
                0i64..2,
                0i64..2,
                0u64..2,
                0u32..2,
                0u32..2,
                0u64..2,
            ),
            (0u8..2, 0u8..2),
        )
            .prop_map(
                |((kind, mode), (size, mtime, ctime, inode, uid, gid, rdev), (target, x))| {
                    FileEntry {
                        kind,
                        mode,
                        size,
                        mtime_ns: mtime,
                        ctime_ns: ctime,
                        inode,
                        uid,
                        gid,
                        rdev,
                        link_target: vec![target],
                        xattr_md5: [x; 16],
                        ..file_entry("a", 0)
                    }
                },
            );
        (one.clone(), one)
    }

    proptest! {
        /// The one comparison decides "unchanged" exactly as daily-backup always did: every
        /// field a copy keeps, the full mode, and with `trust_ctime` the ctime and inode.
        #[test]
        fn unchanged_is_the_copy_comparison((a, b) in entry_pair(), trust in any::<bool>()) {
            let before = a.kind == b.kind
                && a.size == b.size
                && a.mtime_ns == b.mtime_ns
                && a.mode == b.mode
                && a.uid == b.uid
                && a.gid == b.gid
                && a.rdev == b.rdev
                && a.link_target == b.link_target
                && a.xattr_md5 == b.xattr_md5
                && (!trust || (a.ctime_ns == b.ctime_ns && a.inode == b.inode));
            prop_assert_eq!(a.unchanged(&b, trust), before);
        }

        /// What each comparison leaves out, it leaves out for the reason its documentation
        /// gives, and nothing else: a restored symlink's mtime, a folder's mtime and the size
        /// between weeks; the identity only when asked.
        #[test]
        fn each_comparison_ignores_only_what_it_names((a, b) in entry_pair()) {
            let all = Comparison::copy(true).differences(&a, &b);
            let restored = Comparison::RESTORED.differences(&a, &b);
            let history = Comparison::HISTORY.differences(&a, &b);
            let left_out = |d: &[EntryField]| -> Vec<EntryField> {
                all.iter().copied().filter(|f| !d.contains(f)).collect()
            };
            for f in left_out(&restored) {
                prop_assert!(f == EntryField::Identity
                    || (f == EntryField::Mtime && a.kind == EntryKind::Symlink), "{f:?}");
            }
            for f in left_out(&history) {
                prop_assert!(matches!(f, EntryField::Identity | EntryField::Size | EntryField::Rdev)
                    || (f == EntryField::Mtime && a.kind == EntryKind::Dir)
                    || (f == EntryField::Mode && a.mode & 0o7777 == b.mode & 0o7777), "{f:?}");
            }
        }
    }

    proptest! {
        /// A tree is the same as itself; any one field a restore gives back, changed in one
        /// entry (the content digest, even with size and mtime kept), makes it another tree.
        #[test]
        fn one_changed_field_is_another_tree(
            entries in prop::collection::vec(entry(), 1..8),
            which in any::<prop::sample::Index>(),
            field in 0usize..9,
        ) {
            let decoded = decode_record(&encode_record(&entries)).unwrap();
            prop_assert!(same_tree(&decoded, &decoded.clone()));
            let mut other = decoded.clone();
            let e = &mut other[which.index(decoded.len())];
            match field {
                0 => e.size ^= 1,
                1 => e.mtime_ns ^= 1,
                2 => e.mode ^= 1,
                3 => e.uid ^= 1,
                4 => e.xattr_md5[0] ^= 1,
                5 => e.link_target.push(b'x'),
                6 => e.nlink += 1,
                7 => e.gid ^= 1,
                _ => {
                    e.kind = EntryKind::File;
                    e.size = e.size.max(1);
                    e.digest[3] ^= 1;
                    let mut base = decoded.clone();
                    base[which.index(decoded.len())].kind = EntryKind::File;
                    base[which.index(decoded.len())].size = e.size;
                    prop_assert!(!same_tree(&base, &other));
                    return Ok(());
                }
            }
            prop_assert!(!same_tree(&decoded, &other));
            // what belongs to the snapshot does not count
            let mut moved = decoded.clone();
            for m in &mut moved {
                m.inode ^= 5;
                m.ctime_ns ^= 5;
            }
            prop_assert!(same_tree(&decoded, &moved));
        }
    }

    #[test]
    fn a_file_with_an_unknown_digest_is_never_the_same() {
        let e = file_entry("f", 3);
        assert!(!same_tree(
            std::slice::from_ref(&e),
            std::slice::from_ref(&e)
        ));
    }

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
            any::<bool>(),
        )
            .prop_map(
                |(path, k, size, t, mode, target, md5, sqlite, old)| FileEntry {
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
                    digest: md5,
                    digest_kind: if old {
                        ContentHash::Md5
                    } else {
                        ContentHash::Xxh3
                    },
                    sqlite,
                },
            )
    }

    #[test]
    fn a_first_format_record_decodes_with_the_sqlite_flag_unknown() {
        let e = FileEntry {
            digest: [1; 16],
            digest_kind: ContentHash::Md5,
            ..file_entry("db", 4096)
        };
        let mut bytes = encode_record(std::slice::from_ref(&e));
        bytes[..8].copy_from_slice(RECORD_MAGIC_V1);
        let body = bytes.len() - 16;
        bytes[body - 1] = 0; // the only entry's last byte, the flag: v1 always wrote 0
        let sum = md5::compute(&bytes[..body]).0;
        bytes[body..].copy_from_slice(&sum);
        let back = decode_record(&bytes).unwrap();
        assert_eq!(back[0].sqlite, None, "a v1 'false' was never a finding");
        assert_eq!(back[0].digest, [1; 16]);
        assert_eq!(back[0].digest_kind, ContentHash::Md5);
        // format 2: the flag kept (formats 1 to 3 have no digest bit), the checksum an md5
        let mut v2 = encode_record(std::slice::from_ref(&e));
        v2[..8].copy_from_slice(RECORD_MAGIC_V2);
        v2[body - 1] &= !MD5_FLAG;
        let sum = md5::compute(&v2[..body]).0;
        v2[body..].copy_from_slice(&sum);
        assert_eq!(decode_record(&v2).unwrap(), std::slice::from_ref(&e));
        // a format 3 checksum under a format 2 magic is damage
        let mut mixed = encode_record(std::slice::from_ref(&e));
        mixed[..8].copy_from_slice(RECORD_MAGIC_V2);
        assert!(matches!(decode_record(&mixed), Err(RecordError::Checksum)));
        // format 3: an xxh3 checksum, every digest an md5
        let mut v3 = encode_record(std::slice::from_ref(&e));
        v3[..8].copy_from_slice(RECORD_MAGIC_V3);
        v3[body - 1] &= !MD5_FLAG;
        let sum = xxhash_rust::xxh3::xxh3_128(&v3[..body]).to_le_bytes();
        v3[body..].copy_from_slice(&sum);
        assert_eq!(decode_record(&v3).unwrap(), std::slice::from_ref(&e));
    }

    #[test]
    fn a_format_4_record_keeps_each_entrys_digest_kind() {
        let md5_entry = FileEntry {
            digest: ContentHash::Md5.of(b"abc"),
            digest_kind: ContentHash::Md5,
            ..file_entry("old", 3)
        };
        let new = FileEntry {
            path: b"new".to_vec(),
            digest: ContentHash::Xxh3.of(b"abc"),
            digest_kind: ContentHash::Xxh3,
            sqlite: None,
            ..md5_entry.clone()
        };
        assert_ne!(md5_entry.digest, new.digest);
        assert_eq!(md5_entry.digest, md5::compute(b"abc").0);
        let back = decode_record(&encode_record(&[md5_entry.clone(), new.clone()])).unwrap();
        assert_eq!(back, vec![new, md5_entry]);
        // streamed in pieces: the same digest
        let mut h = ContentHash::Xxh3.hasher();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), ContentHash::Xxh3.of(b"abc"));
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

    #[test]
    fn what_offsite_must_receive_again_is_every_file_its_record_does_not_vouch_for() {
        let f = |p: &str, d: u8| FileEntry {
            digest: [d; 16],
            ..file_entry(p, 3)
        };
        let sent = vec![
            f("same", 1),
            f("rewritten", 1),
            f("chmod", 1),
            f("acl", 1),
            f("unknown", 0),
        ];
        let now = vec![
            f("acl", 1),
            f("chmod", 1),
            f("new", 1),
            f("rewritten", 2),
            f("same", 1),
            f("unknown", 0),
        ];
        let mut now = now;
        now[0].xattr_md5 = [9; 16];
        now[1].mode ^= 0o077;
        let got: Vec<String> = resend_paths(&sent, &now)
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(got, ["acl", "chmod", "new", "rewritten", "unknown"]);
        assert!(resend_paths(&now, &now)
            .iter()
            .all(|p| p.as_slice() == b"unknown"));
    }
}
