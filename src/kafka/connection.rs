//! One Kafka client connection: framing, limits, dispatch, responses in order.
//!
//! ```text
//! read 4-byte length -> check against socket.request.max.bytes (before allocating)
//!   -> read the frame -> decode the request header -> handlers::dispatch
//!   -> write [length | response header | body] (nothing for produce with acks=0)
//! ```
//! Requests of one connection are processed one after another, as Kafka's broker does, so
//! responses leave in request order and a producer's pipelined batches are appended in the
//! order sent; clients pipeline by keeping several requests in flight, which TCP buffers.
//! A frame that cannot be parsed closes the connection with a log line.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::handlers;
use crate::shard::Shard;

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

async fn run(shard: &Rc<Shard>, mut stream: TcpStream, peer: SocketAddr) -> Close {
    let max_frame = shard.ctx.config.socket_request_max_bytes;
    let idle = Duration::from_millis(shard.ctx.config.connections_max_idle_ms.max(1));
    let mut shutdown = shard.ctx.shutdown.clone();
    loop {
        let mut length = [0u8; 4];
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut length)) => r,
            _ = shutdown.changed() => return Close::Normal,
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
        let Ok(_memory) = shard
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
        let mut limited = (&mut stream).take(length as u64);
        while frame.len() < length as usize {
            match limited.read_buf(&mut frame).await {
                Ok(0) => return Close::Io(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) => return Close::Io(e),
            }
        }
        let frame = frame.freeze();
        let response = match process(shard, frame, peer).await {
            Ok(response) => response,
            Err(reason) => return Close::Protocol(reason),
        };
        if let Some(segments) = response {
            if let Err(e) = write_segments(&mut stream, segments).await {
                return Close::Io(e);
            }
        }
    }
}

/// Decodes the header and dispatches; `Ok(None)` means the request takes no response.
async fn process(
    shard: &Rc<Shard>,
    mut frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Vec<Bytes>>, String> {
    let (key, header) = protocol::kafka::decode_request_header(&mut frame)?;
    tracing::trace!(%peer, ?key, version = header.request_api_version, correlation = header.correlation_id, "request");
    let body = frame;
    let started = std::time::Instant::now();
    let response = handlers::dispatch(shard, key, &header, body, peer).await;
    crate::metrics::request_done(key, header.request_api_version, started.elapsed());
    response
}

/// Segments passed to one `writev`.
const IOV_MAX_PER_WRITE: usize = 64;

/// Writes response segments with vectored writes, resuming after partial writes.
async fn write_segments(stream: &mut TcpStream, mut segments: Vec<Bytes>) -> std::io::Result<()> {
    use bytes::Buf;
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[first..]
            .iter()
            .take(IOV_MAX_PER_WRITE)
            .map(|s| std::io::IoSlice::new(s))
            .collect();
        let mut written = stream.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && first < segments.len() {
            let segment = &mut segments[first];
            let step = written.min(segment.len());
            segment.advance(step);
            written -= step;
            if segment.is_empty() {
                first += 1;
            }
        }
        while first < segments.len() && segments[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}
