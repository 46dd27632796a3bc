//! Property test: random append / flush / read / truncate / reopen / crash sequences against a
//! simple in-memory model, on every backend. Small segments make rolls frequent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use storage::io::FaultyBackend;
use storage::{Backend, LogConfig, PartitionLog};

#[derive(Debug, Clone)]
enum Op {
    Append { records: i32, payload: usize },
    Flush,
    Read { at: u16, max_bytes: usize },
    Truncate { at: u16 },
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..6i32, 0..6000usize).prop_map(|(records, payload)| Op::Append { records, payload }),
        3 => Just(Op::Flush),
        3 => (any::<u16>(), 1..40_000usize).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// The model: every batch as stored, and how many of them are durable.
#[derive(Default)]
struct Model {
    batches: Vec<(u64, Bytes)>,
    durable: usize,
    next_offset: u64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 48 * 1024,
        cache_bytes: 24 * 1024,
        read_ahead_bytes: 8 * 1024,
        preallocate_bytes: 8 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

async fn run(real: Backend, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyBackend::new(real);
    let mut log = Some(
        PartitionLog::open(dir.path(), config(), faulty.backend())
            .await
            .unwrap(),
    );
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let l = log.as_ref().unwrap();
        match op {
            Op::Append { records, payload } => {
                let b = batch(step as u64, records, payload);
                let info = l.append(b.clone(), 0).unwrap();
                assert_eq!(info.base_offset, model.next_offset);
                model
                    .batches
                    .push((info.base_offset, as_stored(b, info.base_offset, 0)));
                model.next_offset += records as u64;
            }
            Op::Flush => {
                assert_eq!(l.flush().await.unwrap(), model.next_offset);
                model.durable = model.batches.len();
            }
            Op::Read { at, max_bytes } => {
                if model.batches.is_empty() {
                    continue;
                }
                let i = at as usize % model.batches.len();
                let (base, _) = model.batches[i];
                let records = model
                    .batches
                    .get(i + 1)
                    .map(|b| b.0)
                    .unwrap_or(model.next_offset)
                    - base;
                let offset = base + (at as u64 % records);
                let read = l.read(offset, max_bytes, u64::MAX).await.unwrap();
                assert!(
                    !read.batches.is_empty(),
                    "step {step}: empty read at {offset}"
                );
                for (k, got) in read.batches.iter().enumerate() {
                    assert_eq!(
                        got,
                        &model.batches[i + k].1,
                        "step {step}: batch {} differs",
                        i + k
                    );
                }
                let total: usize = read.batches.iter().map(|b| b.len()).sum();
                assert!(
                    read.batches.len() == 1 || total <= max_bytes,
                    "step {step}: read over max_bytes"
                );
            }
            Op::Truncate { at } => {
                if model.batches.is_empty() {
                    continue;
                }
                let i = at as usize % model.batches.len();
                let offset = model.batches[i].0;
                l.truncate_to(offset).await.unwrap();
                model.batches.truncate(i);
                model.next_offset = offset;
                model.durable = model.batches.len();
            }
            Op::Reopen => {
                log.take().unwrap().close().await.unwrap();
                model.durable = model.batches.len();
                log = Some(
                    PartitionLog::open(dir.path(), config(), faulty.backend())
                        .await
                        .unwrap(),
                );
            }
            Op::Crash => {
                faulty.crash().unwrap();
                drop(log.take());
                faulty.reset();
                model.batches.truncate(model.durable);
                model.next_offset = model
                    .batches
                    .last()
                    .map(|(b, bytes)| {
                        b + storage::batch::BatchHeader::decode(bytes)
                            .unwrap()
                            .offset_count()
                    })
                    .unwrap_or(0);
                log = Some(
                    PartitionLog::open(dir.path(), config(), faulty.backend())
                        .await
                        .unwrap(),
                );
            }
        }
        let l = log.as_ref().unwrap();
        assert_eq!(
            l.log_end_offset(),
            model.next_offset,
            "step {step}: log end"
        );
    }
    // Finally everything in the model reads back, cold and in order.
    let l = log.take().unwrap();
    let all = read_all(&l, 0).await;
    let expected: Vec<Bytes> = model.batches.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(all, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        for backend in backends() {
            storage::runtime::block_on(backend, |b| run(b, ops.clone())).unwrap();
        }
    }
}
