//! Sluice wire protocols (Kafka codec glue, native protocol). Filled in by the broker issue.
