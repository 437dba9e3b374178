//! In-memory single-flight cache with TTL and background refresh.
//!
//! * at most one computation per key at a time: concurrent callers share it (single-flight);
//! * the computation runs in its own task, so a caller that stops waiting (time budget) does not
//!   cancel it: the result still fills the cache;
//! * the TTL depends on the value (shorter for failures);
//! * an entry read in the last fifth of its lifetime is refreshed in the background while the old
//!   value keeps being served.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::watch;

type TtlFn<V> = Box<dyn Fn(&V) -> Duration + Send + Sync>;

struct Ready<V> {
    value: Arc<V>,
    expires: Instant,
    refresh_after: Instant,
}

struct Slot<V> {
    ready: Option<Ready<V>>,
    pending: Option<watch::Receiver<Option<Arc<V>>>>,
}

/// Result of a lookup.
pub enum Lookup<V> {
    /// A fresh value.
    Hit(Arc<V>),
    /// A computation is running: wait on the receiver until it holds `Some`.
    Wait(watch::Receiver<Option<Arc<V>>>),
}

/// The cache.
pub struct SingleFlight<V> {
    map: DashMap<String, Slot<V>>,
    ttl: TtlFn<V>,
}

impl<V: Send + Sync + 'static> SingleFlight<V> {
    /// New cache; `ttl` gives the lifetime of a value.
    pub fn new(ttl: impl Fn(&V) -> Duration + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            map: DashMap::new(),
            ttl: Box::new(ttl),
        })
    }

    /// Fresh value, or the receiver of the (possibly just started) computation.
    pub fn get_or_start<F, Fut>(self: &Arc<Self>, key: &str, start: F) -> Lookup<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let now = Instant::now();
        let mut entry = self.map.entry(key.to_string()).or_insert_with(|| Slot {
            ready: None,
            pending: None,
        });
        let slot = entry.value_mut();
        // A computation whose task died (panic) leaves a closed channel: forget it.
        if slot
            .pending
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_err())
        {
            slot.pending = None;
        }
        if let Some(r) = &slot.ready {
            if r.expires > now {
                let value = r.value.clone();
                if now >= r.refresh_after && slot.pending.is_none() {
                    slot.pending = Some(self.spawn(key, start()));
                }
                return Lookup::Hit(value);
            }
        }
        if let Some(rx) = &slot.pending {
            return Lookup::Wait(rx.clone());
        }
        let rx = self.spawn(key, start());
        slot.pending = Some(rx.clone());
        Lookup::Wait(rx)
    }

    fn spawn<Fut>(self: &Arc<Self>, key: &str, fut: Fut) -> watch::Receiver<Option<Arc<V>>>
    where
        Fut: Future<Output = V> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        let this = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let value = Arc::new(fut.await);
            let ttl = (this.ttl)(&value);
            let now = Instant::now();
            {
                let mut slot = this.map.entry(key).or_insert_with(|| Slot {
                    ready: None,
                    pending: None,
                });
                slot.ready = Some(Ready {
                    value: value.clone(),
                    expires: now + ttl,
                    refresh_after: now + ttl.mul_f64(0.8),
                });
                slot.pending = None;
            }
            let _ = tx.send(Some(value));
        });
        rx
    }

    /// Waits for a computation.
    pub async fn wait(mut rx: watch::Receiver<Option<Arc<V>>>) -> Option<Arc<V>> {
        match rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        }
    }

    /// The cached value, fresh or not.
    pub fn peek(&self, key: &str) -> Option<Arc<V>> {
        self.map
            .get(key)
            .and_then(|s| s.ready.as_ref().map(|r| r.value.clone()))
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.map.clear();
    }

    /// Removes expired entries that have no computation running.
    pub fn purge(&self) {
        let now = Instant::now();
        self.map.retain(|_, s| {
            s.pending.is_some() || s.ready.as_ref().is_some_and(|r| r.expires > now)
        });
    }
}
