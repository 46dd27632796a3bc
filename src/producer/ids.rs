//! Producer id allocation. Ids come in blocks reserved in the cluster metadata log (Kafka's
//! `ProducerIdsRecord`): the block is durable before any id from it is handed out, so after a
//! restart (even `kill -9`) allocation continues past every id ever given. The allocator lives
//! on shard 0 with the metadata store; InitProducerId reaches it with `ShardSet::call`.

use std::cell::Cell;

use crate::cluster::metadata::MetadataEvent;
use crate::shard::Shard;

/// Ids reserved per metadata record.
pub const BLOCK_SIZE: i64 = 1000;

/// The ids left in the current block: `[next, end)`.
#[derive(Debug, Default)]
pub struct ProducerIds {
    next: Cell<i64>,
    end: Cell<i64>,
}

impl ProducerIds {
    /// A new producer id. Must run on shard 0 (which holds the metadata store).
    pub async fn allocate(&self, shard: &Shard) -> Result<i64, String> {
        if self.next.get() >= self.end.get() {
            let store = shard
                .metadata_store
                .borrow()
                .clone()
                .ok_or("the metadata store is not on this shard")?;
            let _guard = store.lock_changes().await;
            // Another allocation may have reserved a block while we waited.
            if self.next.get() >= self.end.get() {
                let first = store.snapshot().next_producer_id;
                let event = MetadataEvent::ProducerIdBlock {
                    first,
                    size: BLOCK_SIZE,
                };
                store.commit(event).await?;
                self.next.set(first);
                self.end.set(first + BLOCK_SIZE);
                tracing::debug!(first, size = BLOCK_SIZE, "reserved producer ids");
            }
        }
        let id = self.next.get();
        self.next.set(id + 1);
        Ok(id)
    }
}
