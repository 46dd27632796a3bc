//! One native client connection: framing, limits, dispatch, and the writer every answer and
//! pushed frame goes through.
//!
//! ```text
//! reader: read 4-byte length -> check 6..=native-max-frame-bytes (else ERROR + close, nothing
//!         allocated) -> reserve the frame from queued.max.request.bytes -> read the frame
//!         -> decode -> HANDSHAKE, GRANT_CREDIT, UNSUBSCRIBE inline (they change connection
//!         state the next frame must see); PRODUCE to the produce lane (appended one at a time, so a
//!         connection's produces keep their order; acks waits overlap); the rest as tasks
//! writer: frames from every source, coalesced into vectored writes; record batches are
//!         written from the log's own `Bytes`, never copied
//! ```
//! A frame with a bad payload or opcode gets an ERROR frame and the connection goes on (the
//! length kept the stream in sync); a bad length closes the connection with a log line.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use protocol::native::{
    encode_frame, limits::FRAME_HEADER_BYTES, ErrorCode, ErrorFrame, FrameHeader, Opcode, Request,
    OP_ERROR,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::handlers::{self, Answer, NativeError};
use super::subscription::Credit;
use crate::shard::Shard;
use protocol::vectored::{write_segments, IOV_MAX_PER_WRITE};

/// How long a closing connection may take to flush what is queued (e.g. the last ERROR).
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(1);
/// How long a client that closed its sending side waits for the answers still in flight.
const DRAIN_ON_CLOSE: Duration = Duration::from_secs(5);

/// What the writer is asked to do.
enum Outbound {
    /// One or more whole frames; the request's memory reservation is released once written.
    Frames {
        segments: Vec<Bytes>,
        _memory: Option<OwnedSemaphorePermit>,
    },
    /// Write what is queued before this, then stop.
    Finish,
}

/// A live subscription as the connection sees it.
#[derive(Debug)]
pub struct SubscriptionHandle {
    pub credit: Rc<Credit>,
    pub task: tokio::task::AbortHandle,
}

/// The state of one connection, shared by its reader, its request tasks and its
/// subscriptions (all on the connection's shard).
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub frame_bytes_max: u32,
    pub subscriptions_max: u32,
    out: mpsc::UnboundedSender<Outbound>,
    handshaken: Cell<bool>,
    closed: Cell<bool>,
    /// Last time a frame was written: pushed data keeps a connection from being idle.
    last_write: Rc<Cell<Instant>>,
    subscriptions: RefCell<HashMap<u32, SubscriptionHandle>>,
    next_subscription_id: Cell<u32>,
    /// Requests being handled (tasks and the produce lane), and a wake-up when none are left.
    in_flight: Cell<usize>,
    drained: tokio::sync::Notify,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outbound::Frames { segments, .. } => write!(f, "Frames({})", segments.len()),
            Outbound::Finish => write!(f, "Finish"),
        }
    }
}

impl Connection {
    pub fn is_handshaken(&self) -> bool {
        self.handshaken.get()
    }

    pub fn set_handshaken(&self) {
        self.handshaken.set(true);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Queues whole frames for the writer. Frames queued after the connection closed are
    /// dropped (their sender learns of it through `is_closed`).
    pub fn send(&self, segments: Vec<Bytes>, memory: Option<OwnedSemaphorePermit>) {
        let _ = self.out.send(Outbound::Frames {
            segments,
            _memory: memory,
        });
    }

    fn send_answer(
        &self,
        op: &'static str,
        request_id: u32,
        answer: Answer,
        memory: Option<OwnedSemaphorePermit>,
    ) {
        let mut buf = BytesMut::new();
        match answer {
            Answer::Response(response) => {
                response.encode_frame(request_id, &mut buf);
                // The client sizes its reads by the announced limit: never send more.
                if buf.len() - 4 > self.frame_bytes_max as usize {
                    let error = NativeError::new(
                        ErrorCode::RECORD_LIST_TOO_LARGE,
                        format!(
                            "the answer of {} bytes exceeds native-max-frame-bytes; ask for less",
                            buf.len() - 4
                        ),
                    );
                    buf.clear();
                    crate::metrics::native::error(op, error.code);
                    encode_error(&mut buf, request_id, &error);
                }
            }
            Answer::Error(error) => {
                crate::metrics::native::error(op, error.code);
                encode_error(&mut buf, request_id, &error)
            }
            Answer::None => return,
        }
        self.send(vec![buf.freeze()], memory);
    }

    pub fn send_error(&self, request_id: u32, error: &NativeError) {
        let mut buf = BytesMut::new();
        encode_error(&mut buf, request_id, error);
        self.send(vec![buf.freeze()], None);
    }

    /// Registers a subscription (its task already spawned); None when the connection is at
    /// its limit or closed. The id is never reused on this connection.
    pub fn add_subscription(&self, make: impl FnOnce(u32) -> SubscriptionHandle) -> Option<u32> {
        let mut subscriptions = self.subscriptions.borrow_mut();
        if self.closed.get() || subscriptions.len() >= self.subscriptions_max as usize {
            return None;
        }
        let id = self.next_subscription_id.get();
        self.next_subscription_id.set(id.wrapping_add(1).max(1));
        subscriptions.insert(id, make(id));
        Some(id)
    }

    pub fn subscription_credit(&self, id: u32) -> Option<Rc<Credit>> {
        self.subscriptions
            .borrow()
            .get(&id)
            .map(|s| s.credit.clone())
    }

    /// Removes a subscription; `abort` stops its task (UNSUBSCRIBE), a task ending itself
    /// passes false.
    pub fn remove_subscription(&self, id: u32, abort: bool) -> bool {
        let removed = self.subscriptions.borrow_mut().remove(&id);
        match removed {
            Some(handle) => {
                if abort {
                    handle.task.abort();
                }
                true
            }
            None => false,
        }
    }

    fn begin_request(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    fn end_request(&self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        if self.in_flight.get() == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until every request in flight has been answered.
    async fn drain(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.in_flight.get() > 0 {
                let notified = self.drained.notified();
                if self.in_flight.get() == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Ends every subscription and tells the writer to finish.
    fn close(&self) {
        self.closed.set(true);
        for (_, handle) in self.subscriptions.borrow_mut().drain() {
            handle.task.abort();
        }
        let _ = self.out.send(Outbound::Finish);
    }
}

fn encode_error(buf: &mut BytesMut, request_id: u32, error: &NativeError) {
    let frame = ErrorFrame {
        code: error.code,
        message: error.message.clone(),
    };
    encode_frame(buf, OP_ERROR, request_id, &frame);
}

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The client closed it, or the broker is shutting down.
    Normal,
    Idle,
    Protocol(String),
    Io(std::io::Error),
}

/// Serves one native connection until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _open = crate::metrics::native::connection_opened();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (out, queue) = mpsc::unbounded_channel();
    let native = &shard.ctx.config.native;
    let last_write = Rc::new(Cell::new(Instant::now()));
    let conn = Rc::new(Connection {
        peer,
        frame_bytes_max: native.max_frame_bytes,
        subscriptions_max: native.max_subscriptions,
        out,
        handshaken: Cell::new(false),
        closed: Cell::new(false),
        last_write: last_write.clone(),
        subscriptions: RefCell::new(HashMap::new()),
        next_subscription_id: Cell::new(1),
        in_flight: Cell::new(0),
        drained: tokio::sync::Notify::new(),
    });
    let mut writer = tokio::task::spawn_local(write_loop(writer, queue, last_write));
    let (lane, lane_queue) = mpsc::unbounded_channel::<Queued>();
    let _lane = AbortOnDrop(tokio::task::spawn_local(produce_lane(
        shard.clone(),
        conn.clone(),
        lane_queue,
    )));
    let result = tokio::select! {
        close = read_loop(&shard, &conn, reader, &lane) => close,
        written = &mut writer => match written {
            Ok(Err(e)) => Close::Io(e),
            _ => Close::Normal,
        },
    };
    drop(lane);
    if matches!(result, Close::Normal) && !writer.is_finished() {
        // The client stopped sending (or the broker is stopping): answer what is in flight.
        conn.drain(DRAIN_ON_CLOSE).await;
    }
    conn.close();
    if !writer.is_finished() {
        let _ = tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer).await;
        writer.abort();
    }
    match result {
        Close::Normal => tracing::debug!(%peer, "native connection closed"),
        Close::Idle => tracing::debug!(%peer, "idle native connection closed"),
        Close::Protocol(reason) => {
            tracing::warn!(%peer, %reason, "closing native connection: bad frame")
        }
        Close::Io(e) if is_disconnect(&e) => {
            tracing::debug!(%peer, reason = %e, "native connection dropped by the client")
        }
        Close::Io(e) => tracing::info!(%peer, reason = %e, "native connection error"),
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// A request waiting for the produce lane.
type Queued = (u32, Request, Option<OwnedSemaphorePermit>);

async fn read_loop(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    mut reader: OwnedReadHalf,
    lane: &mpsc::UnboundedSender<Queued>,
) -> Close {
    let idle = Duration::from_millis(shard.ctx.config.connections_max_idle_ms.max(1));
    let mut shutdown = shard.ctx.shutdown.clone();
    loop {
        let mut length = [0u8; 4];
        match read_length(&mut reader, &mut length, idle, conn, &mut shutdown).await {
            Ok(true) => {}
            Ok(false) => return Close::Normal,
            Err(close) => return close,
        }
        let length = match protocol::native::frame::check_length(length, conn.frame_bytes_max) {
            Ok(length) => length,
            Err(e) => {
                let code = if u32::from_le_bytes(length) > conn.frame_bytes_max {
                    ErrorCode::FRAME_TOO_LARGE
                } else {
                    ErrorCode::INVALID_REQUEST
                };
                conn.send_error(0, &NativeError::new(code, e.to_string()));
                return Close::Protocol(e.to_string());
            }
        };
        // Reserve the frame's memory from the broker-wide budget before allocating it; when the
        // budget is used up this connection waits, and stops reading from its socket.
        // (Configuration checks keep the budget at least one frame.)
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
        // Read into uninitialised capacity, never past this frame.
        let mut frame = BytesMut::with_capacity(length as usize);
        let mut limited = (&mut reader).take(u64::from(length));
        while frame.len() < length as usize {
            match tokio::time::timeout(idle, limited.read_buf(&mut frame)).await {
                Err(_) => return Close::Idle,
                Ok(Ok(0)) => return Close::Io(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Close::Io(e),
            }
        }
        let mut frame = frame.freeze();
        let header = FrameHeader {
            length,
            opcode: frame.get_u16_le(),
            request_id: frame.get_u32_le(),
        };
        debug_assert_eq!(frame.len() + FRAME_HEADER_BYTES, length as usize + 4);
        match decode(conn, header, frame) {
            Ok(request) => route(shard, conn, lane, header.request_id, request, memory),
            // The reservation travels with the ERROR frame: a client that floods bad frames
            // without reading the answers is held back by the budget like any other.
            Err(error) => conn.send_answer(
                crate::metrics::native::UNDECODED,
                header.request_id,
                Answer::Error(error),
                Some(memory),
            ),
        }
    }
}

/// Reads the 4-byte length. Cancel-safe across idle checks: bytes already read are kept in
/// `filled`, so an idle timeout never loses part of a length. Ok(false): clean end of stream.
async fn read_length(
    reader: &mut OwnedReadHalf,
    length: &mut [u8; 4],
    idle: Duration,
    conn: &Connection,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool, Close> {
    let mut filled = 0;
    while filled < 4 {
        let read = tokio::select! {
            r = tokio::time::timeout(idle, reader.read(&mut length[filled..])) => r,
            _ = shutdown.changed() => return Err(Close::Normal),
        };
        match read {
            // Quiet in both directions for the whole idle time, and no subscription waiting for
            // data (it is an outstanding long poll): close.
            Err(_)
                if conn.last_write.get().elapsed() >= idle
                    && conn.subscriptions.borrow().is_empty() =>
            {
                return Err(Close::Idle)
            }
            Err(_) => {}
            Ok(Ok(0)) if filled == 0 => return Ok(false),
            Ok(Ok(0)) => return Err(Close::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(n)) => filled += n,
            Ok(Err(e)) => return Err(Close::Io(e)),
        }
    }
    Ok(true)
}

/// Decodes a frame's payload and checks it may be sent now.
fn decode(conn: &Connection, header: FrameHeader, payload: Bytes) -> Result<Request, NativeError> {
    let request_id = header.request_id;
    let refused = |error: NativeError| {
        tracing::info!(peer = %conn.peer, opcode = header.opcode, request_id, code = %error.code, reason = %error.message, "native request refused");
        error
    };
    if request_id == 0 {
        return Err(refused(NativeError::new(
            ErrorCode::INVALID_REQUEST,
            "request id 0 is reserved for frames the broker initiates",
        )));
    }
    let request = Request::decode(header.opcode, payload).map_err(|e| {
        refused(NativeError::new(
            ErrorCode::for_decode_error(&e),
            e.to_string(),
        ))
    })?;
    let info = request.opcode().info();
    if !conn.is_handshaken() && !info.before_handshake {
        return Err(refused(NativeError::new(
            ErrorCode::HANDSHAKE_REQUIRED,
            format!("{} before HANDSHAKE", info.name),
        )));
    }
    tracing::trace!(peer = %conn.peer, op = info.name, request_id, "native request");
    Ok(request)
}

/// Runs a request where its ordering rules say.
fn route(
    shard: &Rc<Shard>,
    conn: &Rc<Connection>,
    lane: &mpsc::UnboundedSender<Queued>,
    request_id: u32,
    request: Request,
    memory: OwnedSemaphorePermit,
) {
    let op = request.opcode().info().name;
    crate::metrics::native::request(op);
    match request.opcode() {
        Opcode::Handshake | Opcode::Ping | Opcode::GrantCredit | Opcode::Unsubscribe => {
            let answer = handlers::dispatch_inline(shard, conn, request);
            conn.send_answer(op, request_id, answer, Some(memory));
        }
        Opcode::Produce => {
            conn.begin_request();
            if lane.send((request_id, request, Some(memory))).is_err() {
                conn.end_request();
            }
        }
        _ => {
            conn.begin_request();
            let (shard, conn) = (shard.clone(), conn.clone());
            tokio::task::spawn_local(async move {
                let answer = handlers::dispatch(&shard, &conn, request).await;
                conn.send_answer(op, request_id, answer, Some(memory));
                conn.end_request();
            });
        }
    }
}

/// PRODUCE requests of one connection, appended one at a time in arrival order: the next one
/// starts once the previous one's batches are in the log, so waits for durability (acks=all)
/// overlap and share the log's group-committed flushes.
async fn produce_lane(
    shard: Rc<Shard>,
    conn: Rc<Connection>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some((request_id, request, memory)) = queue.recv().await {
        let op = request.opcode().info().name;
        let Request::Produce(produce) = request else {
            // Only PRODUCE is routed here; anything else would be a routing bug: answer it.
            let answer = handlers::dispatch(&shard, &conn, request).await;
            conn.send_answer(op, request_id, answer, memory);
            conn.end_request();
            continue;
        };
        let (appended, all_appended) = tokio::sync::oneshot::channel();
        let (task_shard, task_conn) = (shard.clone(), conn.clone());
        tokio::task::spawn_local(async move {
            let ctx = handlers::Ctx {
                shard: &task_shard,
                conn: &task_conn,
            };
            let answer = handlers::dispatch_produce(&ctx, produce, appended).await;
            task_conn.send_answer(op, request_id, answer, memory);
            task_conn.end_request();
        });
        // Err: the request ended (or failed) without appending; either way the next may go.
        let _ = all_appended.await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes queued frames, coalescing what is queued into vectored writes.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
    last_write: Rc<Cell<Instant>>,
) -> std::io::Result<()> {
    let mut segments: Vec<Bytes> = Vec::new();
    let mut permits = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut finish = false;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outbound::Frames {
                    segments: s,
                    _memory,
                } => {
                    segments.extend(s);
                    permits.push(_memory);
                }
                Outbound::Finish => {
                    finish = true;
                    break;
                }
            }
            if segments.len() < IOV_MAX_PER_WRITE {
                next = queue.try_recv().ok();
            }
        }
        write_segments(&mut writer, &mut segments).await?;
        permits.clear();
        last_write.set(Instant::now());
        if finish {
            let _ = writer.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}
