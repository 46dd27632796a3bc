//! Shards: one thread each, owning a share of the partitions (DESIGN.md §3).
//!
//! A shard runs a current-thread runtime (tokio-uring's, or plain tokio when storage falls back
//! to POSIX I/O). Partitions live on exactly one shard, chosen by hashing (topic id, partition);
//! nothing on the data path is shared or locked. Work for another shard travels as a boxed job on
//! that shard's bounded inbox and its answer comes back on a oneshot channel; a call to the
//! current shard runs in place.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::cluster::metadata::{MetadataSnapshot, MetadataStore};
use crate::config::BrokerConfig;
use crate::partition::Partition;

/// Jobs waiting in a shard's inbox before senders wait (backpressure).
const INBOX_CAPACITY: usize = 4096;

pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// What every shard shares: configuration, the metadata snapshot, the way to reach the other
/// shards, and the shutdown signal.
#[derive(Debug)]
pub struct BrokerContext {
    pub config: BrokerConfig,
    pub metadata: Arc<ArcSwap<MetadataSnapshot>>,
    pub shards: ShardSet,
    /// Advertised Kafka host and port.
    pub advertised: (String, i32),
    /// The bound native listener (its port is what native METADATA announces).
    pub native_addr: std::net::SocketAddr,
    pub cluster_id: String,
    pub shutdown: watch::Receiver<bool>,
    /// The broker-wide budget for request bytes in memory, in KiB permits.
    pub request_memory: Arc<tokio::sync::Semaphore>,
    /// What the tail caches of all shards may hold past their own `log.cache.bytes`.
    pub cache_budget: Arc<storage::CacheBudget>,
    /// True once every shard has opened its partitions (`/ready`).
    pub ready: std::sync::atomic::AtomicBool,
}

/// Handles to every shard's inbox.
pub struct ShardSet {
    inboxes: Vec<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSet")
            .field("shards", &self.inboxes.len())
            .finish()
    }
}

/// The target shard has stopped (the broker is shutting down).
#[derive(Debug, Clone, Copy)]
pub struct ShardGone;

impl std::fmt::Display for ShardGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard is shutting down")
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

impl ShardSet {
    /// Creates the inboxes; the receivers go to the shard threads.
    pub fn new(count: usize) -> (Self, Vec<mpsc::Receiver<Job>>) {
        let (inboxes, receivers) = (0..count).map(|_| mpsc::channel(INBOX_CAPACITY)).unzip();
        (ShardSet { inboxes }, receivers)
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.inboxes.len()
    }

    /// The shard that owns a partition.
    pub fn owner(&self, topic_id: &Uuid, partition: i32) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        topic_id.hash(&mut hasher);
        partition.hash(&mut hasher);
        (hasher.finish() % self.inboxes.len() as u64) as usize
    }

    /// Runs `f` on shard `target` and returns its result.
    pub async fn call<R, F, Fut>(&self, target: usize, f: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if let Some(shard) = current().filter(|s| s.id == target) {
            return Ok(f(shard).await);
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let _ = tx.send(f(shard).await);
            })
        });
        let inbox = self.inboxes.get(target).ok_or(ShardGone)?;
        inbox.send(job).await.map_err(|_| ShardGone)?;
        rx.await.map_err(|_| ShardGone)
    }
}

/// The shard running on this thread, if any.
pub fn current() -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// One shard's state.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    pub ctx: Arc<BrokerContext>,
    pub backend: storage::Backend,
    partitions: RefCell<HashMap<(Uuid, i32), Rc<Partition>>>,
    /// Only shard 0 holds the metadata log.
    pub metadata_store: RefCell<Option<Rc<MetadataStore>>>,
    /// Incremental fetch sessions of this shard's connections.
    pub fetch_sessions: RefCell<crate::kafka::fetch_session::FetchSessions>,
    /// Consumer groups coordinated by this shard (those of its `__consumer_offsets` partitions).
    pub groups: crate::group::Coordinator,
    /// Producer id allocation (used on shard 0 only, beside the metadata store).
    pub producer_ids: crate::producer::ids::ProducerIds,
    /// Transactional ids coordinated by this shard (those of its `__transaction_state`
    /// partitions).
    pub txns: crate::txn::TxnCoordinator,
}

impl Shard {
    pub fn new(id: usize, ctx: Arc<BrokerContext>, backend: storage::Backend) -> Rc<Self> {
        let shard = Rc::new(Shard {
            id,
            ctx,
            backend,
            partitions: RefCell::new(HashMap::new()),
            metadata_store: RefCell::new(None),
            fetch_sessions: RefCell::new(Default::default()),
            groups: Default::default(),
            producer_ids: Default::default(),
            txns: Default::default(),
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
        shard
    }

    /// Takes jobs from the inbox and runs each as its own task.
    pub fn run_inbox(self: &Rc<Self>, mut inbox: mpsc::Receiver<Job>) {
        let shard = self.clone();
        tokio::task::spawn_local(async move {
            while let Some(job) = inbox.recv().await {
                tokio::task::spawn_local(job(shard.clone()));
            }
        });
    }

    pub fn partition(&self, topic_id: &Uuid, index: i32) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(&(*topic_id, index)).cloned()
    }

    pub fn insert_partition(&self, partition: Rc<Partition>) {
        self.partitions
            .borrow_mut()
            .insert((partition.topic_id, partition.index), partition);
    }

    pub fn remove_partition(&self, topic_id: &Uuid, index: i32) -> Option<Rc<Partition>> {
        self.partitions.borrow_mut().remove(&(*topic_id, index))
    }

    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.ctx.metadata.load_full()
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        tracing::trace!(shard = self.id, "shard state dropped");
    }
}

pub fn clear_current() {
    CURRENT.with(|c| c.borrow_mut().take());
}
