//! Results of the built-in views, materialised in memory and shared by every
//! session that asks the same question of the same data.
//!
//! A dashboard asks `customer_metrics` (or a view over it) the same question
//! many times a day, while the data changes only when a load commits. So a
//! view's full result is kept, keyed by everything it depends on:
//! - the view and its SQL text, which spells out the session's `crm.*`
//!   settings and the model fits it uses;
//! - the committed Delta version of every table the view reads.
//!
//! A load commits a new version, so the next query misses and recomputes: a
//! cached result is never stale. Sessions whose tables are not the store's
//! own (a viewer's masked `customers`) are never served from or into the
//! cache. Entries are evicted least recently used first, within
//! `[engine] view_cache` bytes; a result larger than that is not kept. One
//! computation per view runs at a time, so concurrent dashboards opening at
//! once compute a result once and share it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::error::Result as DFResult;
use tracing::debug;

use super::ViewKind;

/// What a cached result depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The view.
    pub view: &'static str,
    /// The session's `crm.*` settings (their debug form).
    pub options: String,
    /// The SQL the view runs for them (it names the fitted parameters).
    pub sql: String,
    /// Committed version of each table the view reads, in [`ViewKind::reads`] order.
    pub versions: Vec<Option<u64>>,
}

/// Shared, bounded store of view results.
#[derive(Debug)]
pub struct ViewCache {
    capacity: usize,
    state: Mutex<State>,
    /// One computation per view at a time (indexed like [`ViewKind::ALL`]).
    flights: Vec<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    bytes: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    batches: Arc<Vec<RecordBatch>>,
    bytes: usize,
    used: u64,
}

impl ViewCache {
    /// A cache of at most `capacity` bytes of Arrow data (0 disables it).
    pub fn new(capacity: u64) -> ViewCache {
        ViewCache {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            state: Mutex::new(State::default()),
            flights: ViewKind::ALL
                .iter()
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Whether results are kept at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.state.lock().map(|s| s.bytes).unwrap_or(0)
    }

    /// The cached result for `key`, if any.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Vec<RecordBatch>>> {
        let mut state = self.state.lock().ok()?;
        state.clock += 1;
        let now = state.clock;
        let entry = state.entries.get_mut(key)?;
        entry.used = now;
        Some(entry.batches.clone())
    }

    /// Keep `batches` under `key`, evicting the least recently used entries
    /// to make room; a result larger than the whole cache is not kept.
    pub fn put(&self, key: CacheKey, batches: Arc<Vec<RecordBatch>>) {
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        if bytes > self.capacity {
            debug!(
                view = key.view,
                bytes,
                capacity = self.capacity,
                "view result larger than view_cache, not kept"
            );
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(old) = state.entries.remove(&key) {
            state.bytes -= old.bytes;
        }
        while state.bytes + bytes > self.capacity {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = state.entries.remove(&oldest) {
                state.bytes -= e.bytes;
            }
        }
        state.clock += 1;
        let used = state.clock;
        state.bytes += bytes;
        state.entries.insert(
            key,
            Entry {
                batches,
                bytes,
                used,
            },
        );
    }

    /// The result for `key`: from the cache, or computed by `compute` (at
    /// most one computation per view at a time; others wait for it and
    /// then read its result) and kept.
    pub async fn get_or_compute<F, Fut>(
        &self,
        kind: ViewKind,
        key: CacheKey,
        compute: F,
    ) -> DFResult<Arc<Vec<RecordBatch>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = DFResult<Vec<RecordBatch>>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let index = ViewKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let _flight = match self.flights.get(index) {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let started = std::time::Instant::now();
        let batches = Arc::new(compute().await?);
        debug!(
            view = key.view,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "view computed"
        );
        self.put(key, batches.clone());
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn key(view: &'static str, version: u64) -> CacheKey {
        CacheKey {
            view,
            options: "o".into(),
            sql: "SELECT 1".into(),
            versions: vec![Some(version)],
        }
    }

    fn batch(rows: i64) -> Arc<Vec<RecordBatch>> {
        let b = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Int64Array::from_iter_values(0..rows)) as _,
        )])
        .unwrap();
        Arc::new(vec![b])
    }

    #[test]
    fn another_version_is_another_entry() {
        let cache = ViewCache::new(1 << 20);
        cache.put(key("v", 1), batch(10));
        assert!(cache.get(&key("v", 1)).is_some());
        assert!(cache.get(&key("v", 2)).is_none());
        assert!(cache.get(&key("w", 1)).is_none());
    }

    #[test]
    fn least_recently_used_goes_first() {
        let one = batch(1000);
        let size = one[0].get_array_memory_size();
        let cache = ViewCache::new((2 * size + size / 2) as u64);
        cache.put(key("a", 1), one.clone());
        cache.put(key("b", 1), one.clone());
        assert!(cache.get(&key("a", 1)).is_some()); // b is now the oldest
        cache.put(key("c", 1), one.clone());
        assert!(cache.get(&key("a", 1)).is_some());
        assert!(cache.get(&key("b", 1)).is_none());
        assert!(cache.get(&key("c", 1)).is_some());
        assert_eq!(cache.bytes(), 2 * size);
    }

    #[test]
    fn too_large_or_disabled_is_not_kept() {
        let cache = ViewCache::new(16);
        assert!(cache.enabled());
        cache.put(key("a", 1), batch(1000));
        assert!(cache.get(&key("a", 1)).is_none());
        assert_eq!(cache.bytes(), 0);
        assert!(!ViewCache::new(0).enabled());
    }

    #[tokio::test]
    async fn computes_once_then_serves() {
        let cache = ViewCache::new(1 << 20);
        let k = key("customer_metrics", 3);
        let first = cache
            .get_or_compute(ViewKind::CustomerMetrics, k.clone(), || async {
                Ok(vec![batch(5)[0].clone()])
            })
            .await
            .unwrap();
        let second = cache
            .get_or_compute(ViewKind::CustomerMetrics, k, || async {
                Err(datafusion::error::DataFusionError::Execution(
                    "computed twice".into(),
                ))
            })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(second[0].num_rows(), 5);
    }

    #[tokio::test]
    async fn a_failed_computation_is_not_kept() {
        let cache = ViewCache::new(1 << 20);
        let k = key("kpi_monthly", 1);
        let err = cache
            .get_or_compute(ViewKind::KpiMonthly, k.clone(), || async {
                Err(datafusion::error::DataFusionError::Execution("boom".into()))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert!(cache.get(&k).is_none());
    }
}
