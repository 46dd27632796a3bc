//! `sluice topic create|list|describe|delete`.

use clap::Subcommand;
use protocol::client::{format_topic_id, NewTopic};

use super::{explain, parse_key_value, BrokerArgs};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', default_value_t = 0)]
        partitions: u32,
        /// Replication factor (default: the broker's).
        #[arg(long, short = 'r', default_value_t = 0)]
        replication_factor: u16,
        /// A topic config, NAME=VALUE (repeatable), e.g. --config retention.ms=86400000.
        #[arg(long, short = 'c', value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// List topics, one per line: name, partitions, id.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions (leader, log start, high watermark) and configs.
    Describe { name: String },
    /// Delete a topic.
    Delete { name: String },
}

pub async fn run(command: TopicCommand, broker: &BrokerArgs) -> Result<(), String> {
    let client = broker.connect().await?;
    let explain = |e| explain(&e, &broker.broker);
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => {
            let created = client
                .create_topic(NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs: config,
                })
                .await
                .map_err(explain)?;
            println!(
                "created topic {name} with {} partitions, replication factor {} (id {})",
                created.partitions,
                created.replication_factor,
                format_topic_id(&created.topic_id)
            );
        }
        TopicCommand::List { internal } => {
            let mut topics = client.list_topics().await.map_err(explain)?;
            topics.retain(|t| internal || !t.internal);
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            let width = topics
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!("{:width$}  PARTITIONS  ID", "TOPIC");
            for t in topics {
                println!(
                    "{:width$}  {:>10}  {}",
                    t.name,
                    t.partitions.len(),
                    format_topic_id(&t.topic_id)
                );
            }
        }
        TopicCommand::Describe { name } => {
            let topic = client.describe_topic(&name).await.map_err(explain)?;
            println!("topic: {}", topic.name);
            println!("id: {}", format_topic_id(&topic.topic_id));
            println!("internal: {}", topic.internal);
            println!("replication factor: {}", topic.replication_factor);
            println!("partitions: {}", topic.partitions.len());
            println!("PARTITION  LEADER  EPOCH  LOG_START  HIGH_WATERMARK  ERROR");
            for p in &topic.partitions {
                let error = if p.error.is_ok() {
                    "-".to_owned()
                } else {
                    p.error.to_string()
                };
                println!(
                    "{:>9}  {:>6}  {:>5}  {:>9}  {:>14}  {error}",
                    p.partition, p.leader, p.leader_epoch, p.log_start_offset, p.high_watermark
                );
            }
            if !topic.configs.is_empty() {
                println!("configs:");
                for c in &topic.configs {
                    println!("  {}={}", c.name, c.value);
                }
            }
        }
        TopicCommand::Delete { name } => {
            let id = client.delete_topic(&name).await.map_err(explain)?;
            println!("deleted topic {name} (id {})", format_topic_id(&id));
        }
    }
    Ok(())
}
