//! The durable outbox: every verdict is committed here before it is sent, and removed only once
//! the broker acknowledged it, so an outage, a `kill -9` or a power cut loses nothing written.
//!
//! Stored in [redb], an embedded ACID store: each commit is checksummed and fsynced
//! (`Durability::Immediate`), so a torn last write is rolled back to the previous commit when
//! the file is opened again. A file redb cannot open at all (not an outbox, damaged beyond
//! repair) is moved aside with a warning and a new one started: a station never refuses to
//! start over its queue. Bounded in verdicts and bytes; when full, the oldest are dropped and
//! counted. Sequence numbers (the verdict ids) come from a persisted counter and never repeat,
//! even after the queue drained empty.

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Sequence number -> (enqueue time in ms since the epoch, message).
const QUEUE: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("queue");
/// `next`: the next sequence number; `bytes`: message bytes queued.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Limits of an outbox on disk.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_messages: u64,
    pub max_bytes: u64,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub queued_ms: u64,
    pub payload: Vec<u8>,
}

/// What opening found, for the start-up line.
#[derive(Debug, Default)]
pub struct Opened {
    pub queued: u64,
    /// A file that could not be opened, moved here.
    pub moved_aside: Option<(PathBuf, String)>,
    /// The file was not closed cleanly (a crash or power cut) and redb checked it, rolling
    /// back a torn last write.
    pub repaired: bool,
}

pub struct Outbox {
    db: Database,
    bounds: Bounds,
    dropped: AtomicU64,
    path: PathBuf,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`.
    pub fn open(path: &Path, bounds: Bounds) -> Result<(Self, Opened)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the outbox folder {}", dir.display()))?;
        }
        let mut opened = Opened::default();
        let repaired = Arc::new(AtomicBool::new(false));
        let flag = repaired.clone();
        let db = match Database::builder()
            .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
            .create(path)
        {
            Ok(db) => db,
            Err(e) if !is_damage(&e) => {
                return Err(e).with_context(|| {
                    format!("cannot open the outbox {} (another `tag watch` using it? a read-only disk?)", path.display())
                });
            }
            Err(e) => {
                let aside = path.with_extension(format!("damaged-{}", now_ms()));
                std::fs::rename(path, &aside).with_context(|| {
                    format!(
                        "outbox {} is unreadable ({e}) and cannot be moved aside",
                        path.display()
                    )
                })?;
                opened.moved_aside = Some((aside, e.to_string()));
                Database::create(path)
                    .with_context(|| format!("cannot create the outbox {}", path.display()))?
            }
        };
        let outbox = Self {
            db,
            bounds,
            dropped: AtomicU64::new(0),
            path: path.to_path_buf(),
        };
        let txn = outbox.db.begin_write()?;
        {
            txn.open_table(QUEUE)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        opened.queued = outbox.len()?;
        opened.repaired = repaired.load(Ordering::Relaxed);
        Ok((outbox, opened))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits a message built from its sequence number (durable when this returns) and
    /// returns that number; drops the oldest messages past the bounds.
    pub fn push(&self, message: impl FnOnce(u64) -> Vec<u8>) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let seq;
        let mut dropped = 0;
        {
            let mut meta = txn.open_table(META)?;
            let mut queue = txn.open_table(QUEUE)?;
            seq = meta.get("next")?.map_or(1, |v| v.value());
            let payload = message(seq);
            let mut bytes = meta.get("bytes")?.map_or(0, |v| v.value()) + payload.len() as u64;
            queue.insert(seq, (now_ms(), payload.as_slice()))?;
            while queue.len()? > self.bounds.max_messages
                || (bytes > self.bounds.max_bytes && queue.len()? > 1)
            {
                let Some((_, v)) = queue.pop_first()? else {
                    break;
                };
                bytes = bytes.saturating_sub(v.value().1.len() as u64);
                dropped += 1;
            }
            meta.insert("next", seq + 1)?;
            meta.insert("bytes", bytes)?;
        }
        txn.commit().context("cannot commit to the outbox")?;
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        Ok(seq)
    }

    /// Up to `n` messages after `after` (from the oldest when `None`), in order.
    pub fn next(&self, after: Option<u64>, n: usize) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read()?;
        let queue = txn.open_table(QUEUE)?;
        let from = after.map_or(0, |a| a + 1);
        let mut out = Vec::new();
        for row in queue.range(from..)?.take(n) {
            let (k, v) = row?;
            let (queued_ms, payload) = v.value();
            out.push(Entry {
                seq: k.value(),
                queued_ms,
                payload: payload.to_vec(),
            });
        }
        Ok(out)
    }

    /// Removes acknowledged messages; those already gone (dropped as oldest) are skipped.
    pub fn remove(&self, seqs: &[u64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut queue = txn.open_table(QUEUE)?;
            let mut freed = 0u64;
            for s in seqs {
                if let Some(v) = queue.remove(*s)? {
                    freed += v.value().1.len() as u64;
                }
            }
            let mut meta = txn.open_table(META)?;
            let bytes = meta.get("bytes")?.map_or(0, |v| v.value());
            meta.insert("bytes", bytes.saturating_sub(freed))?;
        }
        txn.commit().context("cannot commit to the outbox")?;
        Ok(())
    }

    pub fn len(&self) -> Result<u64> {
        Ok(self.db.begin_read()?.open_table(QUEUE)?.len()?)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Messages queued and the age in seconds of the oldest (0 when empty).
    pub fn depth(&self) -> Result<(u64, f64)> {
        let txn = self.db.begin_read()?;
        let queue = txn.open_table(QUEUE)?;
        let age = match queue.first()? {
            Some((_, v)) => now_ms().saturating_sub(v.value().0) as f64 / 1e3,
            None => 0.0,
        };
        Ok((queue.len()?, age))
    }

    /// Messages dropped as oldest over the bounds since this outbox was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Whether opening failed because of what is in the file (moved aside and started afresh)
/// rather than because of where it is (locked, read-only, no space: the station says so).
fn is_damage(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::Other
            ) || io.to_string().contains("Not a redb database")
        }
        redb::DatabaseError::DatabaseAlreadyOpen => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Bounds = Bounds {
        max_messages: 1000,
        max_bytes: 1 << 20,
    };

    #[test]
    fn messages_come_back_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let (o, opened) = Outbox::open(&path, ROOMY).unwrap();
        assert_eq!(opened.queued, 0);
        for i in 0..5 {
            let seq = o.push(|s| format!("m{s}-{i}").into_bytes()).unwrap();
            assert_eq!(seq, i + 1);
        }
        o.remove(&[1, 2]).unwrap();
        drop(o);
        let (o, opened) = Outbox::open(&path, ROOMY).unwrap();
        assert_eq!(opened.queued, 3);
        let seqs: Vec<u64> = o.next(None, 10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(o.next(Some(3), 1).unwrap()[0].payload, b"m4-3");
        // Numbers never repeat, also once the queue drained.
        o.remove(&[3, 4, 5]).unwrap();
        assert!(o.is_empty().unwrap());
        assert_eq!(o.push(|_| b"x".to_vec()).unwrap(), 6);
    }

    #[test]
    fn the_oldest_are_dropped_and_counted_past_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            max_messages: 3,
            max_bytes: 1 << 20,
        };
        let (o, _) = Outbox::open(&dir.path().join("o.redb"), bounds).unwrap();
        for _ in 0..5 {
            o.push(|_| b"abc".to_vec()).unwrap();
        }
        let seqs: Vec<u64> = o.next(None, 10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(o.dropped(), 2);

        let bounds = Bounds {
            max_messages: 100,
            max_bytes: 10,
        };
        let (o, _) = Outbox::open(&dir.path().join("b.redb"), bounds).unwrap();
        for _ in 0..4 {
            o.push(|_| b"abcd".to_vec()).unwrap();
        }
        assert_eq!(o.len().unwrap(), 2, "10 bytes hold two 4-byte messages");
        assert_eq!(o.dropped(), 2);
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_not_a_failed_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        std::fs::write(&path, b"this is not an outbox, just some bytes").unwrap();
        let (o, opened) = Outbox::open(&path, ROOMY).unwrap();
        let (aside, _why) = opened.moved_aside.expect("moved aside");
        assert!(aside.exists());
        assert_eq!(o.push(|_| b"m".to_vec()).unwrap(), 1);
    }
}
