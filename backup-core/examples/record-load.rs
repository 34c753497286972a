//! How long a per-file record of 60 000 entries takes to load (decode and check).
//! `cargo run --release -p backup-core --example record-load`

use backup_core::{decode_record, encode_file_record, EntryKind, FileEntry};

fn main() {
    let entries: Vec<FileEntry> = (0..60_000u64)
        .map(|i| FileEntry {
            path: format!("d{:03}/sub/file-{i:06}.dat", i % 600).into_bytes(),
            kind: EntryKind::File,
            size: i,
            mtime_ns: i as i64,
            ctime_ns: i as i64,
            inode: i,
            nlink: 1,
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            rdev: 0,
            link_target: Vec::new(),
            xattr_md5: [0; 16],
            digest: [7; 16],
            digest_kind: backup_core::ContentHash::Xxh3,
            sqlite: None,
        })
        .collect();
    let bytes = encode_file_record(&entries);
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = std::time::Instant::now();
        let d = decode_record(&bytes).expect("decodes");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(d.len(), entries.len());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "60000 entries, {} bytes: load {:.1} ms (median of 11)",
        bytes.len(),
        times[5]
    );
}
