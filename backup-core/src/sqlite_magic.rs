//! Recognising SQLite databases from their first bytes, without opening them.

use std::path::PathBuf;

/// The first 16 bytes of every SQLite 3 database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How many bytes [`is_sqlite_header`] needs: the magic and the page size.
pub const SQLITE_HEADER_PROBE: usize = 18;

/// Smallest size of a real database file: one page of the smallest page size.
pub const SQLITE_MIN_FILE_SIZE: u64 = 512;

/// True when `header` (the first bytes of a file) starts like a SQLite database: the 16-byte
/// magic, then a valid page size at offset 16 (big-endian u16: a power of two from 512 to 32768,
/// or 1 meaning 65536). The page size check drops text files that merely quote the magic.
pub fn is_sqlite_header(header: &[u8]) -> bool {
    classify_sqlite_header(header, SQLITE_MIN_FILE_SIZE) == SqliteHeader::Database
}

/// What the first bytes of a file say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteHeader {
    /// No SQLite magic: some other file.
    NotSqlite,
    /// The magic, a valid page size, at least one page long.
    Database,
    /// The magic, but no usable database: too short, or an invalid page size. A truncated copy
    /// or a damaged first page of a real database looks like this, and must be reported, not
    /// passed over as "some other file".
    Damaged(String),
}

/// Classifies a file from its first bytes (`header`, up to [`SQLITE_HEADER_PROBE`] of them) and
/// its size.
pub fn classify_sqlite_header(header: &[u8], file_size: u64) -> SqliteHeader {
    if header.len() < SQLITE_MAGIC.len() || &header[..SQLITE_MAGIC.len()] != SQLITE_MAGIC {
        return SqliteHeader::NotSqlite;
    }
    if header.len() < SQLITE_HEADER_PROBE {
        return SqliteHeader::Damaged(format!(
            "SQLite header cut off after {} bytes",
            header.len()
        ));
    }
    let page_size = u16::from_be_bytes([header[16], header[17]]);
    if !(page_size == 1 || (page_size >= 512 && page_size.is_power_of_two())) {
        return SqliteHeader::Damaged(format!(
            "SQLite header with an invalid page size ({page_size})"
        ));
    }
    if file_size < SQLITE_MIN_FILE_SIZE {
        return SqliteHeader::Damaged(format!(
            "SQLite header but only {file_size} bytes long (a database has at least one page of 512)"
        ));
    }
    SqliteHeader::Database
}

/// The side-file suffixes SQLite writes next to a database.
pub const SQLITE_SIDE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// True for `-wal`, `-shm` and `-journal` files: they belong to a database and are copied with it,
/// never treated as databases of their own (a `-wal` never starts with the magic anyway, but a
/// `-journal` can hold a copy of page 1, magic included).
pub fn is_side_file(file_name: &[u8]) -> bool {
    SQLITE_SIDE_SUFFIXES
        .iter()
        .any(|suffix| file_name.ends_with(suffix.as_bytes()))
}

/// What a walk for SQLite databases found (`backup_sqlite::find_databases`, or daily-backup's
/// one walk of a snapshot).
#[derive(Debug, Default)]
pub struct Discovery {
    /// Databases, relative to the root, sorted.
    pub databases: Vec<PathBuf>,
    /// Paths that could not be read, with why (they are reported, not fatal).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files that start with the SQLite magic but are no usable database (shorter than a page,
    /// an invalid page size), relative to the root, with why. They are reported and counted.
    pub damaged: Vec<(PathBuf, String)>,
    /// Regular files looked at.
    pub files_seen: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page: u16) -> Vec<u8> {
        let mut h = SQLITE_MAGIC.to_vec();
        h.extend_from_slice(&page.to_be_bytes());
        h
    }

    #[test]
    fn page_sizes() {
        for ok in [1u16, 512, 1024, 4096, 8192, 16384, 32768] {
            assert!(is_sqlite_header(&header(ok)), "{ok}");
        }
        for bad in [0u16, 2, 256, 511, 513, 1000, 4097, 65535] {
            assert!(!is_sqlite_header(&header(bad)), "{bad}");
        }
    }

    #[test]
    fn short_or_wrong_magic() {
        assert!(!is_sqlite_header(b"SQLite format 3\0"));
        assert!(!is_sqlite_header(b""));
        let mut h = header(4096);
        h[15] = b' ';
        assert!(!is_sqlite_header(&h));
    }

    #[test]
    fn damaged_headers_are_named() {
        assert_eq!(classify_sqlite_header(b"hello", 5), SqliteHeader::NotSqlite);
        assert_eq!(
            classify_sqlite_header(&header(4096), 4096),
            SqliteHeader::Database
        );
        let short = classify_sqlite_header(&header(4096), 100);
        assert!(
            matches!(&short, SqliteHeader::Damaged(w) if w.contains("100 bytes")),
            "{short:?}"
        );
        let bad_page = classify_sqlite_header(&header(1000), 4096);
        assert!(
            matches!(&bad_page, SqliteHeader::Damaged(w) if w.contains("(1000)")),
            "{bad_page:?}"
        );
        let cut = classify_sqlite_header(SQLITE_MAGIC, 16);
        assert!(
            matches!(&cut, SqliteHeader::Damaged(w) if w.contains("16 bytes")),
            "{cut:?}"
        );
    }

    #[test]
    fn side_files() {
        assert!(is_side_file(b"db.sqlite3-wal"));
        assert!(is_side_file(b"db.sqlite3-shm"));
        assert!(is_side_file(b"db.sqlite3-journal"));
        assert!(!is_side_file(b"db.sqlite3"));
        assert!(!is_side_file(b"wal"));
    }
}
