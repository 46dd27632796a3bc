//! Starting and stopping a broker: data directory, listeners, shard threads, shutdown.
//!
//! ```text
//! start: lock the data dir -> pick the storage backend -> bind the Kafka and native ports once
//!        per shard (SO_REUSEPORT, so the kernel spreads connections) -> start N shard threads
//!        shard 0 opens the metadata log; every shard then opens the partitions it owns
//!        -> all ready: print the bound addresses on one line
//! stop:  shutdown signal -> shards stop accepting, connections finish their request
//!        -> every partition log flushed, trimmed and checkpointed -> threads exit
//! ```

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};

use crate::cluster::metadata::{MetadataSnapshot, MetadataStore};
use crate::config::BrokerConfig;
use crate::shard::{BrokerContext, Shard, ShardSet};

/// How often each shard checks retention (Kafka's `log.retention.check.interval.ms`).
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// How often each shard persists high watermarks and flushes what is due.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(500);

/// A started broker.
#[derive(Debug)]
pub struct Broker {
    pub kafka_addr: SocketAddr,
    pub native_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub storage_backend: &'static str,
    pub shards: usize,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    _lock: std::fs::File,
}

impl Broker {
    /// Starts every shard and returns once all are serving.
    pub fn start(config: BrokerConfig) -> Result<Broker, String> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let lock = lock_data_dir(&config.data_dir)?;
        remove_deleted_partitions(&config.data_dir);
        let cluster_id = load_or_create_cluster_id(&config.data_dir, config.node_id)?;
        let backend = storage::runtime::select_backend(config.storage_backend)?;
        tracing::info!(backend = backend.name(), "storage backend selected");

        let shard_count = config.shards;
        let (kafka_addr, kafka_listeners) =
            bind_per_shard(config.kafka_listen, shard_count, "kafka")?;
        let (native_addr, native_listeners) =
            bind_per_shard(config.native.listen, shard_count, "native")?;
        let admin = TcpListener::bind(config.admin_listen).map_err(|e| {
            format!(
                "cannot listen on {} (admin): {e}; pick another --admin-listen",
                config.admin_listen
            )
        })?;
        let admin_addr = admin
            .local_addr()
            .map_err(|e| format!("admin listener: {e}"))?;

        let config_request_budget_kib = config.queued_max_request_bytes.div_ceil(1024);
        let cache_budget = storage::CacheBudget::new(config.log_cache_total_bytes);
        let (shards, inboxes) = ShardSet::new(shard_count);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx = Arc::new(BrokerContext {
            advertised: config.advertised(kafka_addr),
            native_addr,
            config,
            metadata: Arc::new(ArcSwap::from_pointee(MetadataSnapshot::default())),
            shards,
            cluster_id,
            request_memory: Arc::new(tokio::sync::Semaphore::new(
                (config_request_budget_kib).min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            cache_budget,
            shutdown: shutdown_rx,
            ready: std::sync::atomic::AtomicBool::new(false),
        });
        let (metadata_ready_tx, metadata_ready) = watch::channel(false);
        let metadata_ready_tx = Arc::new(metadata_ready_tx);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut admin = Some(admin);
        let mut threads = Vec::with_capacity(shard_count);
        let listeners = kafka_listeners.into_iter().zip(native_listeners);
        for (id, (inbox, (listener, native_listener))) in
            inboxes.into_iter().zip(listeners).enumerate()
        {
            let start = ShardStart {
                id,
                ctx: ctx.clone(),
                inbox,
                listener,
                native_listener,
                admin: admin.take(),
                metadata_ready: metadata_ready.clone(),
                metadata_ready_tx: metadata_ready_tx.clone(),
                ready: ready_tx.clone(),
            };
            // Backends are per thread (not `Send`); each shard builds its own of the same kind.
            let uring = matches!(backend, storage::Backend::Uring);
            let thread = std::thread::Builder::new()
                .name(format!("sluice-shard-{id}"))
                .spawn(move || {
                    let ready = start.ready.clone();
                    let backend = if uring {
                        storage::Backend::Uring
                    } else {
                        storage::Backend::Posix
                    };
                    let result =
                        storage::runtime::block_on(backend, |backend| run_shard(start, backend));
                    match result {
                        Ok(Ok(())) => {}
                        failed => {
                            let e = match failed {
                                Ok(Err(e)) => e,
                                Err(e) => format!("cannot start the shard runtime: {e}"),
                                Ok(Ok(())) => unreachable!(),
                            };
                            tracing::error!(shard = id, error = %e, "shard failed");
                            let _ = ready.send(Err(e));
                        }
                    }
                })
                .map_err(|e| format!("cannot start shard thread: {e}"))?;
            threads.push(thread);
        }
        drop(ready_tx);
        for _ in 0..shard_count {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = shutdown.send(true);
                    return Err(e);
                }
                Err(_) => return Err("a shard stopped during start-up".into()),
            }
        }
        ctx.ready.store(true, Ordering::Release);
        Ok(Broker {
            kafka_addr,
            native_addr,
            admin_addr,
            storage_backend: backend.name(),
            shards: shard_count,
            shutdown,
            threads,
            _lock: lock,
        })
    }

    /// Stops accepting, lets in-flight requests finish, flushes and checkpoints every log.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
        tracing::info!("broker stopped");
    }
}

struct ShardStart {
    id: usize,
    ctx: Arc<BrokerContext>,
    inbox: mpsc::Receiver<crate::shard::Job>,
    listener: TcpListener,
    native_listener: TcpListener,
    admin: Option<TcpListener>,
    metadata_ready: watch::Receiver<bool>,
    metadata_ready_tx: Arc<watch::Sender<bool>>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
}

async fn run_shard(start: ShardStart, backend: storage::Backend) -> Result<(), String> {
    let ShardStart {
        id,
        ctx,
        inbox,
        listener,
        native_listener,
        admin,
        mut metadata_ready,
        metadata_ready_tx,
        ready,
    } = start;
    let shard = Shard::new(id, ctx.clone(), backend.clone());
    // The partitions of every shard share one cache budget (storage::cache), so the shard
    // whose partitions are written most keeps the most.
    storage::share_cache_budget(ctx.cache_budget.clone());
    shard.run_inbox(inbox);
    if id == 0 {
        let store =
            MetadataStore::open(&ctx.config.data_dir, backend, ctx.metadata.clone()).await?;
        *shard.metadata_store.borrow_mut() = Some(Rc::new(store));
        let _ = metadata_ready_tx.send(true);
    } else if metadata_ready.wait_for(|ready| *ready).await.is_err() {
        return Err("metadata was never loaded".into());
    }
    let opened = crate::topics::open_owned_partitions(&shard).await?;
    tracing::debug!(
        shard = id,
        partitions = opened,
        "shard opened its partitions"
    );

    let accept = tokio::task::spawn_local(accept_loop(
        shard.clone(),
        to_tokio(listener)?,
        crate::kafka::connection::serve,
    ));
    let native_accept = tokio::task::spawn_local(accept_loop(
        shard.clone(),
        to_tokio(native_listener)?,
        crate::native::connection::serve,
    ));
    let admin_task = match admin {
        Some(admin) => Some(tokio::task::spawn_local(crate::admin::serve(
            ctx.clone(),
            admin,
        )?)),
        None => None,
    };
    let maintenance = tokio::task::spawn_local(maintenance_loop(shard.clone()));
    let offset_expiry = tokio::task::spawn_local(crate::group::expire_offsets_loop(shard.clone()));
    let txn_timer = tokio::task::spawn_local(crate::txn::timer_loop(shard.clone()));
    let _ = ready.send(Ok(()));

    let mut shutdown = ctx.shutdown.clone();
    let _ = shutdown.wait_for(|stop| *stop).await;
    accept.abort();
    native_accept.abort();
    if let Some(task) = admin_task {
        task.abort();
    }
    maintenance.abort();
    offset_expiry.abort();
    txn_timer.abort();
    // Let connections finish the request they are on (they watch the same signal).
    tokio::time::sleep(Duration::from_millis(50)).await;
    for partition in shard.partitions() {
        partition.snapshot_producers();
        if let Err(e) = partition.log.close().await {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "close failed");
        }
    }
    let store = shard.metadata_store.borrow_mut().take();
    if let Some(store) = store {
        if let Err(e) = store.close().await {
            tracing::error!(error = %e, "metadata log close failed");
        }
    }
    crate::shard::clear_current();
    Ok(())
}

fn to_tokio(listener: TcpListener) -> Result<tokio::net::TcpListener, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())
}

/// Accepts connections and serves each with `serve` (the Kafka or the native front end).
async fn accept_loop<F, Fut>(shard: Rc<Shard>, listener: tokio::net::TcpListener, serve: F)
where
    F: Fn(Rc<Shard>, tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::task::spawn_local(serve(shard.clone(), stream, peer));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Flushes what the flush policy says is due (so appends nobody waits for still become
/// durable and visible), persists high watermarks, and applies retention.
async fn maintenance_loop(shard: Rc<Shard>) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let retention_due = last_retention.elapsed() >= RETENTION_CHECK_INTERVAL;
        for partition in shard.partitions() {
            if partition.log.flush_if_due().await.is_ok() {
                partition.publish_high_watermark();
            }
            if retention_due {
                if let Err(e) = partition.log.enforce_retention().await {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed");
                }
            }
        }
        if retention_due {
            last_retention = tokio::time::Instant::now();
            let expiration = shard.ctx.config.producer_id_expiration_ms;
            let now = crate::cluster::metadata::now_ms();
            for partition in shard.partitions() {
                let _ = partition.log.checkpoint().await;
                let expired = {
                    let mut producers = partition.producers.borrow_mut();
                    producers.trim_aborted(partition.log.log_start_offset() as i64);
                    producers.expire(now, expiration)
                };
                if expired > 0 {
                    tracing::debug!(topic = %partition.topic, partition = partition.index, expired, "expired idle producers");
                }
                partition.snapshot_producers();
            }
        }
    }
}

/// Binds `addr` once per shard with SO_REUSEPORT (the first bind resolves port 0; the others
/// reuse the port it got). Returns the bound address and the listeners.
fn bind_per_shard(
    addr: SocketAddr,
    shards: usize,
    name: &str,
) -> Result<(SocketAddr, Vec<TcpListener>), String> {
    let first = bind_reuseport(addr, name)?;
    let bound = first
        .local_addr()
        .map_err(|e| format!("{name} listener: {e}"))?;
    let mut listeners = Vec::with_capacity(shards);
    listeners.push(first);
    for _ in 1..shards {
        listeners.push(bind_reuseport(bound, name)?);
    }
    Ok((bound, listeners))
}

fn bind_reuseport(addr: SocketAddr, name: &str) -> Result<TcpListener, String> {
    let describe = |e: std::io::Error| {
        format!("cannot listen on {addr} ({name}): {e}; is another broker running? pick another --{name}-listen")
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(describe)?;
    socket.set_reuse_address(true).map_err(describe)?;
    socket.set_reuse_port(true).map_err(describe)?;
    socket.bind(&addr.into()).map_err(describe)?;
    socket.listen(1024).map_err(describe)?;
    Ok(socket.into())
}

/// Takes an exclusive lock on the data directory so two brokers never share it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.try_lock().map_err(|_| {
        format!(
            "data directory {} is in use by another sluice process; stop it or use --data-dir",
            dir.display()
        )
    })?;
    Ok(file)
}

/// Finishes deleting partition directories that a topic deletion renamed but did not get to
/// remove before the process stopped.
fn remove_deleted_partitions(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-delete"))
        {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove deleted partition");
            }
        }
    }
}

/// Kafka keeps `cluster.id` in `meta.properties`; so do we.
fn load_or_create_cluster_id(dir: &Path, node_id: i32) -> Result<String, String> {
    let path: PathBuf = dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let text = format!("version=1\ncluster.id={id}\nnode.id={node_id}\n");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}
