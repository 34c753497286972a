//! The online backup of a database that another thread keeps writing to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_sqlite::{backup_live, check_live};
use rusqlite::Connection;

#[test]
fn a_backup_under_constant_writes_finishes_within_its_bound_and_is_consistent() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("db.sqlite3");
    {
        let c = Connection::open(&db).unwrap();
        c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        // a ledger: every transaction inserts a debit and a credit, so a consistent state sums to 0
        c.execute_batch(
            "CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB)",
        )
        .unwrap();
        for i in 0..2000 {
            c.execute(
                "INSERT INTO ledger(amount, pad) VALUES (?1, zeroblob(500)), (?2, zeroblob(500))",
                [i, -i],
            )
            .unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                c.execute("INSERT INTO ledger(amount, pad) VALUES (?1, zeroblob(500)), (?2, zeroblob(500))", [n, -n]).unwrap();
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    check_live(&db).unwrap();
    let dest = d.path().join("copy.sqlite3");
    let started = Instant::now();
    let bound = Duration::from_secs(60);
    backup_live(&db, &dest, bound).unwrap();
    assert!(started.elapsed() < bound);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer never wrote while the backup ran");
    let c = Connection::open_with_flags(&dest, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let (rows, sum): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(sum, 0, "the copy holds half a transaction");
    assert!(rows >= 4000 && rows % 2 == 0, "{rows} rows");
}
