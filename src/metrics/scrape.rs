//! What `/metrics` collects when it is scraped: the recorder's events, then state read from
//! the shards as plain values ([`lag::partition_ends`], each coordinator's committed offsets),
//! written in the Prometheus text format. Nothing here is kept between scrapes.
//!
//! | name | labels | what |
//! |---|---|---|
//! | `sluice_build_info` | `version` | always 1 |
//! | `sluice_ready` | | 1 once every partition is recovered (`/ready`), else 0 |
//! | `sluice_storage_backend_info` | `backend` | 1 for the I/O backend in use (`io_uring`, `posix`) |
//! | `sluice_partition_log_start_offset` | `topic`, `partition` | first offset still in the log |
//! | `sluice_partition_log_end_offset` | `topic`, `partition` | offset the next record gets |
//! | `sluice_partition_high_watermark` | `topic`, `partition` | last offset consumers can read, plus one |
//! | `sluice_partition_size_bytes` | `topic`, `partition` | bytes in the partition's segments |
//! | `sluice_consumer_group_lag` | `group`, `topic`, `partition` | high watermark minus committed offset (never negative) |
//! | `sluice_consumer_group_lag_series_dropped` | | lag series left out beyond [`LAG_SERIES_MAX`] |
//!
//! Partition and group state is read only once the broker is ready: while partitions are
//! recovered, groups are still being replayed and their lag would be wrong.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::group::lag::{self, EndOffsets, PartitionEnd};
use crate::shard::{BrokerContext, Shard};

/// Most `sluice_consumer_group_lag` series in one scrape (the first by group, topic and
/// partition); the rest are counted in `sluice_consumer_group_lag_series_dropped`.
pub const LAG_SERIES_MAX: usize = 10_000;

/// The whole `/metrics` body.
pub async fn render(ctx: &Arc<BrokerContext>) -> String {
    let mut text = Text(super::handle().map(|h| h.render()).unwrap_or_default());
    let ready = ctx.ready.load(Ordering::Acquire);
    text.family(
        "sluice_build_info",
        "gauge",
        "The running Sluice version (always 1).",
    );
    text.sample(
        "sluice_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    text.family(
        "sluice_ready",
        "gauge",
        "1 once every partition is recovered and served (as /ready), else 0.",
    );
    text.sample("sluice_ready", &[], u8::from(ready));
    if let Ok(backend) = ctx
        .shards
        .call(0, |shard| async move { shard.backend.name() })
        .await
    {
        text.family(
            "sluice_storage_backend_info",
            "gauge",
            "The storage I/O backend in use (1 for it).",
        );
        text.sample("sluice_storage_backend_info", &[("backend", backend)], 1);
    }
    let caches = (0..ctx.shards.count()).map(|target| {
        ctx.shards
            .call(target, |_| async { storage::shard_cache_bytes() })
    });
    text.family(
        "sluice_storage_cache_bytes",
        "gauge",
        "Bytes the partitions' tail caches hold, per shard (log.cache.bytes each, then what they take of the broker-wide log.cache.total.bytes).",
    );
    for (shard, bytes) in futures::future::join_all(caches)
        .await
        .into_iter()
        .enumerate()
    {
        if let Ok(bytes) = bytes {
            text.sample(
                "sluice_storage_cache_bytes",
                &[("shard", &shard.to_string())],
                bytes,
            );
        }
    }
    if !ready {
        return text.0;
    }
    let Ok(mut ends) = lag::partition_ends(ctx, None).await else {
        return text.0;
    };
    ends.sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    partitions(&mut text, &ends);
    let offsets = EndOffsets::new(&ends);
    drop(ends);
    let calls = (0..ctx.shards.count()).map(|target| {
        ctx.shards.call(target, move |shard| async move {
            local_committed(&shard, LAG_SERIES_MAX)
        })
    });
    let mut rows = Vec::new();
    let mut total = 0usize;
    for local in futures::future::join_all(calls).await {
        let Ok((local_rows, local_total)) = local else {
            return text.0;
        };
        rows.extend(local_rows);
        total += local_total;
    }
    rows.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    rows.truncate(LAG_SERIES_MAX);
    text.family(
        "sluice_consumer_group_lag",
        "gauge",
        "Records a group has yet to commit: high watermark minus committed offset, never negative.",
    );
    for row in &rows {
        let Some(l) = lag::lag(row.offset, offsets.get(&row.topic, row.partition)) else {
            continue;
        };
        let partition = row.partition.to_string();
        text.sample(
            "sluice_consumer_group_lag",
            &[
                ("group", &row.group),
                ("topic", &row.topic),
                ("partition", &partition),
            ],
            l,
        );
    }
    text.family(
        "sluice_consumer_group_lag_series_dropped",
        "gauge",
        "Committed partitions whose lag series was left out of this scrape (over the limit).",
    );
    text.sample(
        "sluice_consumer_group_lag_series_dropped",
        &[],
        total.saturating_sub(rows.len()),
    );
    text.0
}

fn partitions(text: &mut Text, ends: &[PartitionEnd]) {
    type Field = fn(&PartitionEnd) -> u64;
    let families: [(&str, &str, Field); 4] = [
        (
            "sluice_partition_log_start_offset",
            "First offset still in the partition's log.",
            |e| e.log_start_offset,
        ),
        (
            "sluice_partition_log_end_offset",
            "Offset the next record appended to the partition gets.",
            |e| e.log_end_offset,
        ),
        (
            "sluice_partition_high_watermark",
            "Offset up to which consumers can read (acknowledged and durable).",
            |e| e.high_watermark,
        ),
        (
            "sluice_partition_size_bytes",
            "Bytes in the partition's segment files.",
            |e| e.size_bytes,
        ),
    ];
    for (name, help, field) in families {
        text.family(name, "gauge", help);
        for end in ends {
            let partition = end.partition.to_string();
            text.sample(
                name,
                &[("topic", &end.topic), ("partition", &partition)],
                field(end),
            );
        }
    }
}

/// One committed offset of a group, copied off its coordinating shard.
#[derive(Debug)]
struct Committed {
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
}

impl Committed {
    fn key(&self) -> (&str, &str, i32) {
        (&self.group, &self.topic, self.partition)
    }
}

/// This shard's committed offsets: the first `limit` by (group, topic, partition), and how
/// many there are in all. One borrow, no `.await`.
fn local_committed(shard: &Shard, limit: usize) -> (Vec<Committed>, usize) {
    let groups = shard.groups.groups.borrow();
    let mut all: Vec<(&str, &str, i32, i64)> = groups
        .values()
        .flat_map(|g| {
            g.offsets.iter().map(|((topic, partition), committed)| {
                (
                    g.id.as_str(),
                    topic.as_str(),
                    *partition,
                    committed.value.offset,
                )
            })
        })
        .collect();
    let total = all.len();
    if all.len() > limit {
        all.select_nth_unstable_by(limit, |a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        all.truncate(limit);
    }
    let rows = all
        .into_iter()
        .map(|(group, topic, partition, offset)| Committed {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            offset,
        })
        .collect();
    (rows, total)
}

/// Prometheus text exposition format (version 0.0.4).
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if !self.0.is_empty() && !self.0.ends_with("\n\n") {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape(value, true));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes `\` and newlines (and `"` in label values), as the text format requires.
fn escape(text: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\n', '"']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Text(String::new());
        text.family("sluice_x", "gauge", "a \\ b\nc \"q\"");
        text.sample("sluice_x", &[("group", "a\"b\\c\nd")], 7);
        text.sample("sluice_x", &[], 1);
        assert_eq!(
            text.0,
            "# HELP sluice_x a \\\\ b\\nc \"q\"\n# TYPE sluice_x gauge\n\
             sluice_x{group=\"a\\\"b\\\\c\\nd\"} 7\nsluice_x 1\n"
        );
    }
}
