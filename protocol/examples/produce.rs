//! Produces keyed records to a topic over Sluice's native protocol, creating the topic first.
//!
//! ```text
//! sluice serve &                                   # native listener on 127.0.0.1:9192
//! cargo run -p protocol --features client --example produce -- [ADDR] [TOPIC] [COUNT]
//! ```

use protocol::client::{
    Client, ClientConfig, ClientError, Compression, ErrorCode, NewTopic, ProducerConfig,
    ProducerRecord,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ClientError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9192".into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let client = Client::connect(ClientConfig::new(addr)).await?;
    match client
        .create_topic(NewTopic {
            name: topic.clone(),
            partitions: 3,
            ..NewTopic::default()
        })
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        Err(e) => return Err(e),
    }

    let producer = client.producer(ProducerConfig {
        compression: Compression::Lz4,
        ..ProducerConfig::default()
    });
    // Queue everything first (records are batched per partition), then await the deliveries.
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(&topic)
            .key(format!("user-{}", i % 4))
            .value(format!("event {i}"))
            .header("source", "example");
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        let written = delivery.await?;
        println!(
            "{}/{} offset {}",
            written.topic, written.partition, written.offset
        );
    }
    Ok(())
}
