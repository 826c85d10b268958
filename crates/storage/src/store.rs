//! The RocksDB database behind one broker: opening it, the metadata key-value API, and
//! whole-log deletion.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::error::StorageError;
use crate::keys;
use crate::log::PartitionLog;

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Write to RocksDB's WAL and let the OS flush it (Kafka's default: page cache plus
    /// replication). Survives a process crash (`kill -9`), not a power loss.
    #[default]
    OsManaged,
    /// fsync the WAL before acknowledging every write (Kafka's `log.flush.interval.messages=1`).
    EveryWrite,
}

/// Settings for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    pub flush: FlushPolicy,
    /// Bound on the total WAL size before memtables are flushed (RocksDB `max_total_wal_size`).
    pub max_total_wal_bytes: u64,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), flush: FlushPolicy::default(), max_total_wal_bytes: 512 * 1024 * 1024 }
    }
}

/// The numeric id of one partition's log; the first 8 bytes of all its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId(pub u64);

/// Which column family a log lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogClass {
    User,
    Internal,
}

impl LogClass {
    pub fn column_family(self) -> &'static str {
        match self {
            LogClass::User => keys::CF_LOG,
            LogClass::Internal => keys::CF_LOG_INTERNAL,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) db: DB,
    pub(crate) flush: FlushPolicy,
}

/// Size and free space of the volume holding the database, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpace {
    pub total_bytes: i64,
    pub usable_bytes: i64,
}

/// A handle to the broker's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.db.path()).finish()
    }
}

fn log_cf_options() -> Options {
    let mut opts = Options::default();
    // Batches arrive compressed by the producer (or are tiny); compressing again costs CPU
    // for little gain.
    opts.set_compression_type(DBCompressionType::None);
    opts.set_write_buffer_size(64 * 1024 * 1024);
    opts.set_max_write_buffer_number(4);
    opts.set_target_file_size_base(64 * 1024 * 1024);
    opts
}

impl Store {
    /// Opens (creating if needed) the database at `options.path`.
    pub fn open(options: &StoreOptions) -> Result<Self, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_total_wal_size(options.max_total_wal_bytes);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        let descriptors = keys::ALL_CFS.iter().map(|&name| {
            let cf_opts = if name == keys::CF_LOG || name == keys::CF_LOG_INTERNAL {
                log_cf_options()
            } else {
                let mut o = Options::default();
                o.set_compression_type(DBCompressionType::Lz4);
                o
            };
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, &options.path, descriptors)?;
        Ok(Self { inner: Arc::new(Inner { db, flush: options.flush }) })
    }

    pub fn path(&self) -> &Path {
        self.inner.db.path()
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StorageError> {
        self.inner.db.cf_handle(name).ok_or(StorageError::MissingColumnFamily(name))
    }

    pub(crate) fn write_options(&self) -> WriteOptions {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.inner.flush == FlushPolicy::EveryWrite);
        opts
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.db.write_opt(batch, &self.write_options())?;
        Ok(())
    }

    /// Opens the log `id`, recovering its end offset and producer state from disk.
    pub fn open_log(&self, id: LogId, class: LogClass) -> Result<PartitionLog, StorageError> {
        PartitionLog::open(self.clone(), id, class)
    }

    /// Removes every batch, index entry and producer state of log `id`.
    pub fn delete_log(&self, id: LogId, class: LogClass) -> Result<(), StorageError> {
        let (from, to) = keys::log_range(id.0);
        let mut batch = WriteBatch::default();
        for cf_name in [
            class.column_family(),
            keys::CF_TIME_INDEX,
            keys::CF_PRODUCER_STATE,
            keys::CF_TXN_INDEX,
            keys::CF_LEADER_EPOCHS,
        ] {
            batch.delete_range_cf(self.cf(cf_name)?, from, to);
        }
        batch.delete_cf(self.cf(keys::CF_PARTITION_STATE)?, id.0.to_be_bytes());
        batch.delete_cf(self.cf(keys::CF_PARTITION_STATE)?, keys::log_key(id.0, keys::HIGH_WATERMARK_SUFFIX));
        batch.delete_cf(self.cf(keys::CF_PARTITION_STATE)?, keys::log_key(id.0, keys::SIZE_SUFFIX));
        batch.delete_cf(self.cf(keys::CF_PARTITION_STATE)?, keys::log_key(id.0, keys::CLEANER_CHECKPOINT_SUFFIX));
        self.write(batch)?;
        // Give the space back now rather than at the next compaction.
        let db = &self.inner.db;
        db.delete_file_in_range_cf(self.cf(class.column_family())?, from, to)?;
        Ok(())
    }

    /// Gives the disk space of a trimmed key range of a log back (see
    /// [`PartitionLog::trimmed_range`]; only for a range that holds nothing live any more):
    /// SST files wholly inside the range are dropped at
    /// once, and with `compact` the files overlapping it are rewritten without the deleted
    /// batches, instead of waiting for RocksDB to compact them some day.
    pub fn reclaim(&self, class: LogClass, from: &[u8], to: &[u8], compact: bool) -> Result<(), StorageError> {
        let cf = self.cf(class.column_family())?;
        self.inner.db.delete_file_in_range_cf(cf, from, to)?;
        if compact {
            self.inner.db.compact_range_cf(cf, Some(from), Some(to));
        }
        Ok(())
    }

    /// Rewrites the SST files of a log's key range now, dropping overwritten and deleted
    /// versions (after the cleaner rewrote batches in place). Unlike [`Self::reclaim`], safe
    /// on a range that still holds live data.
    pub fn compact_range(&self, class: LogClass, from: &[u8], to: &[u8]) -> Result<(), StorageError> {
        self.inner.db.compact_range_cf(self.cf(class.column_family())?, Some(from), Some(to));
        Ok(())
    }

    /// The size and free space of the file system holding the database (what Kafka's
    /// DescribeLogDirs v4 reports as a log dir's total and usable bytes: the blocks an
    /// unprivileged writer may still use, not those reserved for root).
    pub fn volume_space(&self) -> Result<VolumeSpace, StorageError> {
        let path = self.inner.db.path();
        let stat = rustix::fs::statvfs(path)
            .map_err(|e| StorageError::Volume { path: path.display().to_string(), source: e.into() })?;
        let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(stat.f_frsize)).unwrap_or(i64::MAX);
        Ok(VolumeSpace { total_bytes: bytes(stat.f_blocks), usable_bytes: bytes(stat.f_bavail) })
    }

    /// Flushes every column family's memtable, so the write-ahead log files that only held
    /// deleted data can be removed.
    pub fn flush_memtables(&self) -> Result<(), StorageError> {
        for name in keys::ALL_CFS {
            self.inner.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }

    /// Bytes of the database's files on disk (SST files, write-ahead log, ...), as
    /// DescribeLogDirs and the size gauges report them.
    pub fn disk_usage(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            match std::fs::read_dir(path) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum(),
                Err(_) => 0,
            }
        }
        walk(self.path())
    }

    /// The memory RocksDB holds, by kind, summed over the column families: memtables
    /// (`rocksdb.cur-size-all-mem-tables`), table readers' indexes and filters
    /// (`rocksdb.estimate-table-readers-mem`) and cached blocks (`rocksdb.block-cache-usage`;
    /// each column family has a cache of its own). A property RocksDB cannot give counts as
    /// 0.
    pub fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        let mut kinds = [
            ("memtables", "rocksdb.cur-size-all-mem-tables", 0u64),
            ("table_readers", "rocksdb.estimate-table-readers-mem", 0),
            ("block_cache", "rocksdb.block-cache-usage", 0),
        ];
        for name in keys::ALL_CFS {
            let Ok(cf) = self.cf(name) else { continue };
            for (_, property, total) in &mut kinds {
                if let Ok(Some(value)) = self.inner.db.property_int_value_cf(cf, *property) {
                    *total = total.saturating_add(value);
                }
            }
        }
        kinds.into_iter().map(|(kind, _, total)| (kind, total)).collect()
    }

    /// Reads one metadata value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner.db.get_cf(self.cf(keys::CF_META)?, key.as_bytes())?)
    }

    /// Atomically applies puts and deletes to the metadata keys, always fsynced: metadata
    /// changes are rare and losing one (a created topic) would be worse than a slow write.
    pub fn meta_apply(&self, puts: &[(String, Vec<u8>)], deletes: &[String]) -> Result<(), StorageError> {
        let cf = self.cf(keys::CF_META)?;
        let mut batch = WriteBatch::default();
        for (k, v) in puts {
            batch.put_cf(cf, k.as_bytes(), v);
        }
        for k in deletes {
            batch.delete_cf(cf, k.as_bytes());
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.inner.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Every metadata entry whose key starts with `prefix`, in key order.
    pub fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let cf = self.cf(keys::CF_META)?;
        let mut out = Vec::new();
        for item in self.inner.db.iterator_cf(cf, IteratorMode::From(prefix.as_bytes(), Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(k.to_vec())
                .map_err(|e| StorageError::Corrupt { what: "meta key", reason: e.to_string() })?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    /// Forces the WAL to disk (used at shutdown).
    pub fn flush_wal(&self) -> Result<(), StorageError> {
        self.inner.db.flush_wal(true)?;
        Ok(())
    }
}
