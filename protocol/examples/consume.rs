//! Consumes a topic over Sluice's native protocol as a member of a group, committing offsets
//! automatically, and stops after COUNT records.
//!
//! ```text
//! cargo run -p protocol --features client --example consume -- [ADDR] [TOPIC] [GROUP] [COUNT]
//! ```

use std::time::Duration;

use futures::StreamExt;
use protocol::client::{Client, ClientConfig, ClientError, ConsumerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ClientError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9192".into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let client = Client::connect(ClientConfig::new(addr)).await?;
    // Starts from the group's committed offsets (the earliest offset when it has none).
    let mut consumer = client.consumer(
        ConsumerConfig::default()
            .group(group)
            .auto_commit(Duration::from_secs(1)),
    );
    consumer.subscribe(&topic).await?;
    let mut seen = 0;
    while let Some(record) = consumer.next().await {
        let record = record?;
        println!(
            "{}/{} offset {} key {:?} value {:?}",
            record.topic,
            record.partition,
            record.offset,
            record.key.as_deref().map(String::from_utf8_lossy),
            record.value.as_deref().map(String::from_utf8_lossy),
        );
        seen += 1;
        if seen == count {
            break;
        }
    }
    // Commits the final positions before returning.
    consumer.close().await
}
