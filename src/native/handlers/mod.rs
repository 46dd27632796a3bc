//! The registry of native ops: one file per op, and `dispatch` / `dispatch_inline`, whose
//! exhaustive matches over `protocol::native::Request` are the table (the codec's `OPS` lists
//! the same ops; adding one there fails to compile here until it is handled).
//!
//! A handler turns a decoded request into its answer (or a `NativeError`, sent as an ERROR
//! frame) by calling the broker's shared paths: the produce path, `topics.rs`, the group
//! coordinator's offsets. No sockets here.

mod commit_offsets;
mod create_topic;
mod delete_topic;
mod describe_topic;
mod fetch_offsets;
mod grant_credit;
mod handshake;
mod metadata;
mod ping;
mod produce;
mod subscribe;
mod unsubscribe;

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use protocol::native::{ErrorCode, Request, Response, TopicId};
use uuid::Uuid;

use super::connection::Connection;
use crate::shard::Shard;
use crate::topics::TopicError;

/// A failed request: answered with an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    pub code: ErrorCode,
    pub message: String,
}

impl NativeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        NativeError {
            code,
            message: message.into(),
        }
    }

    pub fn kafka(code: ResponseError, message: impl Into<String>) -> Self {
        NativeError::new(ErrorCode::from_kafka(code.code()), message)
    }
}

impl From<TopicError> for NativeError {
    fn from(e: TopicError) -> Self {
        NativeError::kafka(e.code, e.message)
    }
}

/// What the connection sends for a request.
#[derive(Debug)]
pub enum Answer {
    Response(Response),
    Error(NativeError),
    /// Nothing: GRANT_CREDIT on success, PRODUCE with acks none.
    None,
}

fn answer<T>(result: Result<T, NativeError>, wrap: impl FnOnce(T) -> Response) -> Answer {
    match result {
        Ok(value) => Answer::Response(wrap(value)),
        Err(e) => Answer::Error(e),
    }
}

/// What a handler sees besides its request.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub shard: &'a Rc<Shard>,
    pub conn: &'a Rc<Connection>,
}

/// Ops that change connection state the next frame must see, handled before the next frame
/// is read; none of them waits.
pub fn dispatch_inline(shard: &Rc<Shard>, conn: &Rc<Connection>, request: Request) -> Answer {
    let ctx = Ctx { shard, conn };
    match request {
        Request::Handshake(r) => answer(handshake::handle(&ctx, r), Response::Handshake),
        Request::Ping(r) => Answer::Response(Response::Ping(ping::handle(r))),
        Request::GrantCredit(r) => match grant_credit::handle(&ctx, r) {
            Ok(()) => Answer::None,
            Err(e) => Answer::Error(e),
        },
        Request::Unsubscribe(r) => answer(unsubscribe::handle(&ctx, r), Response::Unsubscribe),
        other => Answer::Error(NativeError::new(
            ErrorCode::UNKNOWN_SERVER_ERROR,
            format!("{} is not an inline op", other.opcode().info().name),
        )),
    }
}

/// Every op.
pub async fn dispatch(shard: &Rc<Shard>, conn: &Rc<Connection>, request: Request) -> Answer {
    let ctx = Ctx { shard, conn };
    match request {
        Request::Handshake(_)
        | Request::Ping(_)
        | Request::GrantCredit(_)
        | Request::Unsubscribe(_) => dispatch_inline(shard, conn, request),
        Request::Metadata(r) => Answer::Response(Response::Metadata(metadata::handle(&ctx, r))),
        Request::CreateTopic(r) => {
            answer(create_topic::handle(&ctx, r).await, Response::CreateTopic)
        }
        Request::DeleteTopic(r) => {
            answer(delete_topic::handle(&ctx, r).await, Response::DeleteTopic)
        }
        Request::DescribeTopic(r) => answer(
            describe_topic::handle(&ctx, r).await,
            Response::DescribeTopic,
        ),
        Request::Produce(r) => {
            // Outside the produce lane nobody waits for the appends alone.
            let (appended, _) = tokio::sync::oneshot::channel();
            dispatch_produce(&ctx, r, appended).await
        }
        Request::Subscribe(r) => answer(subscribe::handle(&ctx, r).await, Response::Subscribe),
        Request::CommitOffsets(r) => answer(
            commit_offsets::handle(&ctx, r).await,
            Response::CommitOffsets,
        ),
        Request::FetchOffsets(r) => {
            answer(fetch_offsets::handle(&ctx, r).await, Response::FetchOffsets)
        }
    }
}

/// PRODUCE; `appended` fires once every partition's batches are appended (or refused).
pub async fn dispatch_produce(
    ctx: &Ctx<'_>,
    request: protocol::native::ProduceRequest,
    appended: tokio::sync::oneshot::Sender<()>,
) -> Answer {
    match produce::handle(ctx, request, appended).await {
        Some(response) => Answer::Response(Response::Produce(response)),
        None => Answer::None,
    }
}

/// A topic's name and partition count by id, from the metadata snapshot.
fn topic_by_id(shard: &Shard, id: &TopicId) -> Option<(String, i32)> {
    let snapshot = shard.ctx.metadata.load();
    snapshot
        .topic_by_id(&Uuid::from_bytes(*id))
        .map(|t| (t.name.clone(), t.partitions))
}

/// A wire partition index as the broker's, if it is one of the topic's.
fn partition_index(partition: u32, partitions: i32) -> Option<i32> {
    i32::try_from(partition).ok().filter(|p| *p < partitions)
}
