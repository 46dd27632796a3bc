//! Topic configuration: Kafka's topic config names, their broker-level synonyms, validation,
//! and the effective value of each for a topic (override, else broker default).

use std::collections::BTreeMap;

use storage::{FlushPolicy, LogConfig};

use crate::config::TopicDefaults;

/// The shape of a config value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A long at or above `min`.
    Long {
        min: i64,
    },
    /// An int at or above `min`.
    Int {
        min: i64,
    },
    Enum(&'static [&'static str]),
    /// Comma-separated, distinct items from the set (Kafka's LIST type; the only kind that
    /// IncrementalAlterConfigs may APPEND to or SUBTRACT from).
    List(&'static [&'static str]),
    Bool,
    Ratio,
}

/// Kafka's `ConfigType` codes, as DescribeConfigs v3+ reports them.
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
}

/// Kafka's `ConfigSource` codes (DescribeConfigs, CreateTopics).
pub mod config_source {
    /// A topic's own override.
    pub const TOPIC: i8 = 1;
    /// Set in the broker's flags, environment or file.
    pub const STATIC_BROKER: i8 = 4;
    /// The built-in default.
    pub const DEFAULT: i8 = 5;
}

impl Kind {
    /// Kafka's `ConfigType` code for values of this kind.
    pub fn config_type(self) -> i8 {
        match self {
            Kind::Long { .. } => config_type::LONG,
            Kind::Int { .. } => config_type::INT,
            Kind::Enum(_) => config_type::STRING,
            Kind::List(_) => config_type::LIST,
            Kind::Bool => config_type::BOOLEAN,
            Kind::Ratio => config_type::DOUBLE,
        }
    }
}

/// The items of a LIST value; blanks around commas are ignored, as Kafka does.
pub fn list_items(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

/// One topic-level configuration key.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The broker-level key whose value is the default.
    pub broker_synonym: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

/// Every topic config the broker accepts.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        broker_synonym: "log.cleanup.policy",
        kind: Kind::List(&["delete", "compact"]),
        doc: "delete old segments, or keep the latest value per key (compaction is not yet implemented: a compact-only topic keeps every segment)",
    },
    ConfigDef {
        name: "retention.ms",
        broker_synonym: "log.retention.ms",
        kind: Kind::Long { min: -1 },
        doc: "delete closed segments older than this; -1 keeps them forever",
    },
    ConfigDef {
        name: "retention.bytes",
        broker_synonym: "log.retention.bytes",
        kind: Kind::Long { min: -1 },
        doc: "delete the oldest closed segments while a partition is larger; -1 for no limit",
    },
    ConfigDef {
        name: "segment.bytes",
        broker_synonym: "log.segment.bytes",
        kind: Kind::Int { min: storage::limits::SEGMENT_BYTES_MIN as i64 },
        doc: "size at which a new segment is started",
    },
    ConfigDef {
        name: "segment.ms",
        broker_synonym: "log.roll.ms",
        kind: Kind::Long { min: 1 },
        doc: "age at which a new segment is started",
    },
    ConfigDef {
        name: "max.message.bytes",
        broker_synonym: "message.max.bytes",
        kind: Kind::Int { min: 0 },
        doc: "largest record batch accepted",
    },
    ConfigDef {
        name: "message.timestamp.type",
        broker_synonym: "log.message.timestamp.type",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        doc: "whether batches keep the producer's timestamps or get the broker's",
    },
    ConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_synonym: "log.message.timestamp.before.max.ms",
        kind: Kind::Long { min: 0 },
        doc: "with CreateTime, how far in the past a batch's timestamps may lie",
    },
    ConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_synonym: "log.message.timestamp.after.max.ms",
        kind: Kind::Long { min: 0 },
        doc: "with CreateTime, how far in the future a batch's timestamps may lie",
    },
    ConfigDef {
        name: "flush.messages",
        broker_synonym: "log.flush.interval.messages",
        kind: Kind::Long { min: 1 },
        doc: "messages between forced flushes; 1 makes every acknowledged write durable",
    },
    ConfigDef {
        name: "flush.ms",
        broker_synonym: "log.flush.interval.ms",
        kind: Kind::Long { min: 0 },
        doc: "longest time data stays unflushed",
    },
    ConfigDef {
        name: "index.interval.bytes",
        broker_synonym: "log.index.interval.bytes",
        kind: Kind::Int { min: 1 },
        doc: "bytes between offset index entries",
    },
    ConfigDef {
        name: "min.insync.replicas",
        broker_synonym: "min.insync.replicas",
        kind: Kind::Int { min: 1 },
        doc: "replicas that must have a write for acks=all to succeed",
    },
    ConfigDef {
        name: "compression.type",
        broker_synonym: "compression.type",
        kind: Kind::Enum(&["producer"]),
        doc: "batches are stored as the producer compressed them",
    },
    ConfigDef {
        name: "delete.retention.ms",
        broker_synonym: "log.cleaner.delete.retention.ms",
        kind: Kind::Long { min: 0 },
        doc: "how long tombstones are kept in compacted topics",
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        kind: Kind::Ratio,
        doc: "share of a compacted log that must be dirty before it is cleaned",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        broker_synonym: "unclean.leader.election.enable",
        kind: Kind::Bool,
        doc: "whether an out-of-sync replica may become leader",
    },
];

pub fn find(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Checks a value for a topic config key; the message says what is wrong.
pub fn check_value(name: &str, value: &str) -> Result<(), String> {
    let Some(def) = find(name) else {
        return Err(format!("unknown topic config '{name}'"));
    };
    match def.kind {
        Kind::Long { min } | Kind::Int { min } => {
            let parsed: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a number, got '{value}'"))?;
            let max = if matches!(def.kind, Kind::Int { .. }) {
                i32::MAX as i64
            } else {
                i64::MAX
            };
            if parsed < min || parsed > max {
                return Err(format!(
                    "{name} must be between {min} and {max}, got {parsed}"
                ));
            }
        }
        Kind::Enum(allowed) => {
            if !allowed.contains(&value) {
                return Err(format!(
                    "{name} must be one of {}, got '{value}'",
                    allowed.join(", ")
                ));
            }
        }
        Kind::List(allowed) => check_list(name, value, allowed)?,
        Kind::Bool => {
            if value != "true" && value != "false" {
                return Err(format!("{name} must be true or false, got '{value}'"));
            }
        }
        Kind::Ratio => {
            let parsed: f64 = value
                .parse()
                .map_err(|_| format!("{name} must be a number, got '{value}'"))?;
            if !(0.0..=1.0).contains(&parsed) {
                return Err(format!("{name} must be between 0 and 1, got {value}"));
            }
        }
    }
    Ok(())
}

/// At least one item, each allowed, none repeated.
fn check_list(name: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    let items = list_items(value);
    for (i, item) in items.iter().enumerate() {
        if !allowed.contains(item) {
            return Err(format!(
                "{name} is a comma-separated list of {}, got '{value}'",
                allowed.join(", ")
            ));
        }
        if items[..i].contains(item) {
            return Err(format!("{name} lists '{item}' twice in '{value}'"));
        }
    }
    Ok(())
}

/// Where a topic's default for `name` comes from: the broker's own setting when that differs
/// from the built-in default (so a value set to the built-in default reads as DEFAULT).
pub fn default_source(name: &str, defaults: &TopicDefaults) -> i8 {
    if default_value(name, defaults) == default_value(name, &TopicDefaults::default()) {
        config_source::DEFAULT
    } else {
        config_source::STATIC_BROKER
    }
}

/// The broker default of a topic config, as a string.
pub fn default_value(name: &str, d: &TopicDefaults) -> String {
    if let Some(number) = default_number(name, d) {
        return number.to_string();
    }
    match name {
        "cleanup.policy" => "delete".into(),
        "message.timestamp.type" => d.log_message_timestamp_type.clone(),
        "compression.type" => "producer".into(),
        "min.cleanable.dirty.ratio" => "0.5".into(),
        "unclean.leader.election.enable" => "false".into(),
        _ => String::new(),
    }
}

/// The broker default of a numeric topic config, without formatting it (read per request).
fn default_number(name: &str, d: &TopicDefaults) -> Option<i64> {
    Some(match name {
        "retention.ms" => d.log_retention_ms,
        "retention.bytes" => d.log_retention_bytes,
        "segment.bytes" => d.log_segment_bytes,
        "segment.ms" => d.log_roll_ms,
        "max.message.bytes" => d.message_max_bytes as i64,
        // Kafka 4's defaults (KIP-937): any past timestamp, at most an hour ahead.
        "message.timestamp.before.max.ms" => i64::MAX,
        "message.timestamp.after.max.ms" => 3_600_000,
        "flush.messages" => d.log_flush_interval_messages,
        "flush.ms" => d.log_flush_interval_ms,
        "index.interval.bytes" => 4096,
        "min.insync.replicas" => 1,
        "delete.retention.ms" => 86_400_000,
        _ => return None,
    })
}

/// A topic's settings: its overrides over the broker defaults.
#[derive(Debug, Clone)]
pub struct EffectiveConfig<'a> {
    pub overrides: &'a BTreeMap<String, String>,
    pub defaults: &'a TopicDefaults,
}

impl EffectiveConfig<'_> {
    pub fn get(&self, name: &str) -> String {
        self.overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| default_value(name, self.defaults))
    }

    /// A numeric setting; allocation-free, since produce reads several per request.
    fn long(&self, name: &str) -> i64 {
        let default = || default_number(name, self.defaults).unwrap_or(0);
        match self.overrides.get(name) {
            Some(value) => value.trim().parse().unwrap_or_else(|_| default()),
            None => default(),
        }
    }

    /// `cleanup.policy` includes `compact`: records must have keys.
    pub fn compacted(&self) -> bool {
        list_items(&self.get("cleanup.policy")).contains(&"compact")
    }

    pub fn max_message_bytes(&self) -> usize {
        self.long("max.message.bytes").max(0) as usize
    }

    pub fn log_append_time(&self) -> bool {
        let name = "message.timestamp.type";
        let value = self
            .overrides
            .get(name)
            .unwrap_or(&self.defaults.log_message_timestamp_type);
        value == "LogAppendTime"
    }

    /// The accepted CreateTime window around `now`: (earliest, latest).
    pub fn timestamp_window(&self, now: i64) -> (i64, i64) {
        let before = self.long("message.timestamp.before.max.ms").max(0);
        let after = self.long("message.timestamp.after.max.ms").max(0);
        (now.saturating_sub(before), now.saturating_add(after))
    }

    pub fn min_insync_replicas(&self) -> i64 {
        self.long("min.insync.replicas")
    }

    /// The storage engine's view of these settings.
    pub fn log_config(&self) -> LogConfig {
        let positive = |v: i64| (v >= 0).then_some(v as u64);
        let flush_messages = self.long("flush.messages").max(1) as u64;
        let flush_ms = self.long("flush.ms").max(0) as u64;
        let flush = if flush_messages <= 1 || flush_ms == 0 {
            FlushPolicy::Always
        } else {
            FlushPolicy::Interval {
                messages: flush_messages,
                interval_ms: flush_ms,
            }
        };
        // Compact-only topics never lose old segments to time or size (until compaction
        // exists, they keep everything): `__consumer_offsets` relies on it.
        let deletes = self
            .overrides
            .get("cleanup.policy")
            .is_none_or(|policy| policy.split(',').any(|p| p.trim() == "delete"));
        let retention = |name: &str| positive(self.long(name)).filter(|_| deletes);
        LogConfig {
            segment_bytes: (self.long("segment.bytes").max(0) as u64).clamp(
                storage::limits::SEGMENT_BYTES_MIN,
                storage::limits::SEGMENT_BYTES_MAX,
            ),
            segment_ms: positive(self.long("segment.ms")),
            retention_ms: retention("retention.ms"),
            retention_bytes: retention("retention.bytes"),
            index_interval_bytes: self.long("index.interval.bytes").clamp(1, i32::MAX as i64)
                as u32,
            flush,
            cache_bytes: self.defaults.log_cache_bytes.max(0) as usize,
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_kafka() {
        assert!(check_value("retention.ms", "-1").is_ok());
        assert!(check_value("retention.ms", "-2").is_err());
        assert!(check_value("segment.bytes", "1").is_err());
        assert!(check_value("segment.bytes", "99999999999").is_err());
        assert!(check_value("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(check_value("message.timestamp.type", "Now").is_err());
        assert!(check_value("no.such.key", "1").is_err());
        assert!(check_value("cleanup.policy", "compact").is_ok());
        assert!(check_value("cleanup.policy", "delete, compact").is_ok());
        assert!(check_value("cleanup.policy", "compact,compact").is_err());
        assert!(check_value("cleanup.policy", "").is_err());
        assert!(check_value("cleanup.policy", "delete,").is_err());
    }

    #[test]
    fn broker_defaults_that_differ_are_static() {
        let mut defaults = TopicDefaults::default();
        assert_eq!(
            default_source("retention.ms", &defaults),
            config_source::DEFAULT
        );
        defaults.log_retention_ms = 1000;
        assert_eq!(
            default_source("retention.ms", &defaults),
            config_source::STATIC_BROKER
        );
        assert_eq!(
            default_source("segment.bytes", &defaults),
            config_source::DEFAULT
        );
        assert_eq!(
            find("cleanup.policy").map(|d| d.kind.config_type()),
            Some(config_type::LIST)
        );
    }

    #[test]
    fn overrides_win_and_map_to_the_log() {
        let defaults = TopicDefaults::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "-1".to_string());
        overrides.insert("segment.bytes".to_string(), "1048576".to_string());
        let eff = EffectiveConfig {
            overrides: &overrides,
            defaults: &defaults,
        };
        let log = eff.log_config();
        assert_eq!(log.retention_ms, None);
        assert_eq!(log.segment_bytes, 1048576);
        assert_eq!(log.flush, FlushPolicy::Always);
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        let eff = EffectiveConfig {
            overrides: &overrides,
            defaults: &defaults,
        };
        assert_eq!(
            eff.log_config().retention_ms,
            None,
            "compact topics keep data"
        );
        overrides.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let eff = EffectiveConfig {
            overrides: &overrides,
            defaults: &defaults,
        };
        assert_eq!(eff.log_config().retention_ms, Some(1000));
    }
}
