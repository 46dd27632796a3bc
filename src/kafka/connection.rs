//! One Kafka client connection: framing, limits, dispatch, responses in order.
//!
//! ```text
//! reader: read 4-byte length -> check against socket.request.max.bytes (before allocating)
//!   -> read the frame -> hand the request to the writer -> wait until its ordered phase ends
//! writer: runs the handed-over requests concurrently, writes each response when it and every
//!   earlier one are done: [length | response header | body] (nothing for produce with acks=0)
//! ```
//! A request's *ordered phase* is the part that must not overlap the next request of the
//! connection: for every API but Produce it is the whole request, so those run one after
//! another, as Kafka's broker runs them. Produce ends its ordered phase once its batches are
//! appended, before waiting for them to become durable (acks=all) or committed: the next
//! request is read and appended meanwhile, so a producer's pipelined batches land in the order
//! sent and share the log's group-committed flushes instead of paying one flush each. Responses
//! still leave in request order. A frame that cannot be parsed closes the connection with a
//! log line.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::handlers::{self, OrderedPhase};
use crate::shard::Shard;
use protocol::vectored::write_segments;

/// Requests of one connection read but not yet answered (they also hold request memory, which
/// bounds them by bytes; this bounds them by count).
const MAX_IN_FLIGHT: usize = 64;

/// What a request's processing yields: the response segments (or none, or a reason to close),
/// and the permits it holds until the response is written.
type Answer = (
    Result<Option<Vec<Bytes>>, String>,
    [OwnedSemaphorePermit; 2],
);
type Pending = Pin<Box<dyn Future<Output = Answer>>>;

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The client closed it, or the broker is shutting down.
    Normal,
    Idle,
    Protocol(String),
    Io(std::io::Error),
}

/// Serves one connection until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _open = crate::metrics::connection_opened();
    let _ = stream.set_nodelay(true);
    let result = run(&shard, stream, peer).await;
    match result {
        Close::Normal => tracing::debug!(%peer, "connection closed"),
        Close::Idle => tracing::debug!(%peer, "idle connection closed"),
        Close::Protocol(reason) => {
            tracing::warn!(%peer, %reason, "closing connection: bad request")
        }
        // A client that goes away mid-request is routine (Kafka logs it at debug too).
        Close::Io(e) if is_disconnect(&e) => {
            tracing::debug!(%peer, reason = %e, "connection dropped by the client")
        }
        Close::Io(e) => tracing::info!(%peer, reason = %e, "connection error"),
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

async fn run(shard: &Rc<Shard>, stream: TcpStream, peer: SocketAddr) -> Close {
    let (mut reader, writer) = stream.into_split();
    let (to_writer, pending) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::task::spawn_local(write_responses(writer, pending));
    let read = read_requests(shard, &mut reader, peer, to_writer).await;
    // The reader is done (the sender is dropped): the writer answers what is in flight, then
    // ends. Its failure is the better reason when both failed.
    match writer.await {
        Ok(Ok(())) | Err(_) => read,
        Ok(Err(close)) => close,
    }
}

/// Reads requests and hands them to the writer, one ordered phase at a time.
async fn read_requests(
    shard: &Rc<Shard>,
    stream: &mut OwnedReadHalf,
    peer: SocketAddr,
    to_writer: mpsc::Sender<Pending>,
) -> Close {
    let max_frame = shard.ctx.config.socket_request_max_bytes;
    let idle = Duration::from_millis(shard.ctx.config.connections_max_idle_ms.max(1));
    let mut shutdown = shard.ctx.shutdown.clone();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            return Close::Normal;
        };
        let mut length = [0u8; 4];
        // The writer ends early only on a failure (a bad request, a write error); the
        // connection closes then, without waiting for the client's next request.
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut length)) => r,
            _ = shutdown.changed() => return Close::Normal,
            _ = to_writer.closed() => return Close::Normal,
        };
        match read {
            Err(_) => return Close::Idle,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Close::Normal,
            Ok(Err(e)) => return Close::Io(e),
            Ok(Ok(_)) => {}
        }
        let length = i32::from_be_bytes(length);
        if length < 8 || length as usize > max_frame {
            return Close::Protocol(format!(
                "frame length {length} outside [8, {max_frame}] (socket.request.max.bytes)"
            ));
        }
        // Reserve the frame's memory from the broker-wide budget before allocating it; when the
        // budget is used up this connection waits, and stops reading from its socket.
        let permits = (length as usize).div_ceil(1024) as u32;
        let Ok(memory) = shard
            .ctx
            .request_memory
            .clone()
            .acquire_many_owned(permits)
            .await
        else {
            return Close::Normal;
        };
        // Read into uninitialised capacity (no zero-fill pass over every produced byte), never
        // past this frame: the next one stays in the socket.
        let mut frame = BytesMut::with_capacity(length as usize);
        let mut limited = (&mut *stream).take(length as u64);
        while frame.len() < length as usize {
            match limited.read_buf(&mut frame).await {
                Ok(0) => return Close::Io(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) => return Close::Io(e),
            }
        }
        let frame = frame.freeze();
        let (phase, ordered_done) = OrderedPhase::new();
        let shard = shard.clone();
        let request: Pending = Box::pin(async move {
            let answer = process(&shard, frame, peer, &phase).await;
            (answer, [memory, slot])
        });
        if to_writer.send(request).await.is_err() {
            // The writer ended (its reason is reported).
            return Close::Normal;
        }
        // An error only means the request finished (or was dropped) without an explicit end of
        // its ordered phase: either way the next request may be read.
        tokio::select! {
            _ = ordered_done => {}
            _ = shutdown.changed() => return Close::Normal,
            _ = to_writer.closed() => return Close::Normal,
        }
    }
}

/// Runs the requests handed over, concurrently, and writes their responses in request order.
async fn write_responses(
    mut stream: OwnedWriteHalf,
    mut incoming: mpsc::Receiver<Pending>,
) -> Result<(), Close> {
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some((answer, permits)) = in_flight.next(), if !in_flight.is_empty() => {
                match answer {
                    Ok(Some(mut segments)) => {
                        write_segments(&mut stream, &mut segments).await.map_err(Close::Io)?
                    }
                    Ok(None) => {}
                    Err(reason) => return Err(Close::Protocol(reason)),
                }
                drop(permits);
            }
            next = incoming.recv(), if open => match next {
                Some(request) => in_flight.push_back(request),
                None => open = false,
            },
        }
    }
    Ok(())
}

/// Decodes the header and dispatches; `Ok(None)` means the request takes no response.
async fn process(
    shard: &Rc<Shard>,
    mut frame: Bytes,
    peer: SocketAddr,
    phase: &OrderedPhase,
) -> Result<Option<Vec<Bytes>>, String> {
    let (key, header) = protocol::kafka::decode_request_header(&mut frame)?;
    tracing::trace!(%peer, ?key, version = header.request_api_version, correlation = header.correlation_id, "request");
    let body = frame;
    let started = std::time::Instant::now();
    let response = handlers::dispatch(shard, key, &header, body, peer, phase).await;
    crate::metrics::request_done(key, header.request_api_version, started.elapsed());
    response
}
