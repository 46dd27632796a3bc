//! One TCP connection to a broker: a writer task that coalesces frames into few writes, a
//! reader task that matches answers to requests by id and routes pushed subscription frames.
//!
//! ```text
//! callers ── frames ──> [writer task] ──> socket ──> broker
//! callers <─ answers ── [reader task] <── socket <── broker
//!                            └─ SUBSCRIPTION_DATA / END ─> per-subscription channel
//! ```
//!
//! When the connection breaks, every request waiting on it fails with `ConnectionLost` and
//! every subscription channel gets an `End` with the same error; the connection is then dead
//! and the [`Client`](super::Client) opens a new one on next use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::error::ClientError;
use super::ClientConfig;
use crate::native::{
    split_frame, ErrorCode, GrantCreditRequest, HandshakeRequest, HandshakeResponse,
    ProduceRequest, Request, Response, ServerFrame, SubscribeRequest, SubscribeResponse,
    SubscriptionData, UnsubscribeRequest, VERSION_MAX, VERSION_MIN,
};
use crate::vectored::{write_segments, IOV_MAX_PER_WRITE};

/// What a subscription's channel carries.
#[derive(Debug)]
pub(crate) enum SubscriptionEvent {
    Data(SubscriptionData),
    /// The subscription ended: by the broker (`Broker` error) or with the connection.
    End(ClientError),
}

type Answer = Result<Response, ClientError>;

struct Pending {
    answer: oneshot::Sender<Answer>,
    /// For SUBSCRIBE: the channel the reader registers under the new subscription id before it
    /// hands over the answer, so no data frame can arrive before its channel exists.
    subscription: Option<mpsc::UnboundedSender<SubscriptionEvent>>,
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u32, Pending>,
    subscriptions: HashMap<u32, mpsc::UnboundedSender<SubscriptionEvent>>,
    /// Set once: why the connection died.
    closed: Option<ClientError>,
}

struct Shared {
    routes: Mutex<Routes>,
    dead: AtomicBool,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock cannot leave the maps inconsistent: recover them.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails everything waiting on the connection (once).
    fn fail(&self, error: ClientError) {
        self.dead.store(true, Ordering::Release);
        let (pending, subscriptions) = {
            let mut routes = self.routes();
            if routes.closed.is_none() {
                routes.closed = Some(error.clone());
            }
            (
                std::mem::take(&mut routes.pending),
                std::mem::take(&mut routes.subscriptions),
            )
        };
        for (_, p) in pending {
            let _ = p.answer.send(Err(error.clone()));
        }
        for (_, s) in subscriptions {
            let _ = s.send(SubscriptionEvent::End(error.clone()));
        }
    }
}

/// A live, handshaken connection.
/// What the writer task writes.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Bytes),
    /// One frame in pieces, written back to back: a PRODUCE whose record batches go out from
    /// the producer's buffers instead of being copied into the frame.
    Pieces(Vec<Bytes>),
}

/// A request written (queued for the writer) whose answer is still to be awaited.
#[derive(Debug)]
pub(crate) struct SentRequest {
    id: u32,
    opcode: crate::native::Opcode,
    receiver: oneshot::Receiver<Answer>,
}

pub(crate) struct Connection {
    writer: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<Shared>,
    next_id: AtomicU32,
    request_timeout: Duration,
    pub(crate) handshake: HandshakeResponse,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("handshake", &self.handshake)
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    /// Connects, starts the reader and writer, and performs the handshake.
    pub(crate) async fn open(config: &ClientConfig) -> Result<Arc<Connection>, ClientError> {
        let connect_error = |e: std::io::Error| ClientError::Connect {
            addr: config.addr.clone(),
            kind: e.kind(),
            message: e.to_string(),
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&config.addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "connect",
                after: config.connect_timeout,
            })?
            .map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
            dead: AtomicBool::new(false),
        });
        let (writer, frames) = mpsc::unbounded_channel();
        let frame_bytes_max = config.frame_bytes_max;
        let reader_task = tokio::spawn(read_loop(
            read,
            shared.clone(),
            writer.clone(),
            frame_bytes_max,
        ));
        let writer_task = tokio::spawn(write_loop(write, frames, shared.clone()));
        let mut connection = Connection {
            writer,
            shared,
            next_id: AtomicU32::new(1),
            request_timeout: config.request_timeout,
            handshake: HandshakeResponse::default(),
            tasks: [reader_task, writer_task],
        };
        let answer = connection
            .call(Request::Handshake(HandshakeRequest {
                version_min: VERSION_MIN,
                version_max: VERSION_MAX,
                client_id: config.client_id.clone(),
                auth_mechanism: String::new(),
                auth_data: Bytes::new(),
            }))
            .await?;
        let Response::Handshake(handshake) = answer else {
            return Err(ClientError::Protocol(
                "handshake answered with another op".into(),
            ));
        };
        if !(VERSION_MIN..=VERSION_MAX).contains(&handshake.version) {
            return Err(ClientError::Protocol(format!(
                "broker chose version {} outside {VERSION_MIN}..={VERSION_MAX}",
                handshake.version
            )));
        }
        connection.handshake = handshake;
        Ok(Arc::new(connection))
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire)
    }

    fn next_request_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn register(
        &self,
        subscription: Option<mpsc::UnboundedSender<SubscriptionEvent>>,
    ) -> Result<(u32, oneshot::Receiver<Answer>), ClientError> {
        let id = self.next_request_id();
        let (answer, receiver) = oneshot::channel();
        let mut routes = self.shared.routes();
        if let Some(error) = &routes.closed {
            return Err(error.clone());
        }
        routes.pending.insert(
            id,
            Pending {
                answer,
                subscription,
            },
        );
        Ok((id, receiver))
    }

    fn write(&self, frame: BytesMut) -> Result<(), ClientError> {
        self.write_outgoing(Outgoing::Frame(frame.freeze()))
    }

    fn write_outgoing(&self, outgoing: Outgoing) -> Result<(), ClientError> {
        self.writer
            .send(outgoing)
            .map_err(|_| ClientError::ConnectionLost("writer stopped".into()))
    }

    async fn wait(&self, id: u32, receiver: oneshot::Receiver<Answer>) -> Answer {
        match tokio::time::timeout(self.request_timeout, receiver).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ClientError::ConnectionLost("connection closed".into())),
            Err(_) => {
                self.shared.routes().pending.remove(&id);
                let timeout = ClientError::Timeout {
                    what: "request",
                    after: self.request_timeout,
                };
                // A broker that stopped answering may be gone without a reset (a dead host,
                // a dropped route): give the connection up so the next call opens a new one,
                // as Kafka clients do after request.timeout.ms.
                self.shared.fail(timeout.clone());
                Err(timeout)
            }
        }
    }

    /// Sends a request and waits for its answer (or `ERROR` frame, as `ClientError::Broker`).
    pub(crate) async fn call(&self, request: Request) -> Answer {
        let sent = self.start_call(&request)?;
        self.finish_call(sent).await
    }

    /// The first half of `call`: queues the request's frame for the writer before returning,
    /// so requests started one after the other go out in that order (the producer relies on
    /// it for the order of a partition's batches).
    pub(crate) fn start_call(&self, request: &Request) -> Result<SentRequest, ClientError> {
        let opcode = request.opcode();
        let (id, receiver) = self.register(None)?;
        let mut frame = BytesMut::new();
        request.encode_frame(id, &mut frame);
        if let Err(e) = self.write(frame) {
            self.shared.routes().pending.remove(&id);
            return Err(e);
        }
        Ok(SentRequest {
            id,
            opcode,
            receiver,
        })
    }

    /// `start_call` for a PRODUCE, its record batches written without a copy.
    pub(crate) fn start_produce(
        &self,
        request: &ProduceRequest,
    ) -> Result<SentRequest, ClientError> {
        let (id, receiver) = self.register(None)?;
        if let Err(e) = self.write_outgoing(Outgoing::Pieces(request.encode_frame_parts(id))) {
            self.shared.routes().pending.remove(&id);
            return Err(e);
        }
        Ok(SentRequest {
            id,
            opcode: crate::native::Opcode::Produce,
            receiver,
        })
    }

    /// A PRODUCE with acks none (never answered), its record batches written without a copy.
    pub(crate) fn send_produce_unanswered(
        &self,
        request: &ProduceRequest,
    ) -> Result<(), ClientError> {
        if let Some(error) = &self.shared.routes().closed {
            return Err(error.clone());
        }
        let parts = request.encode_frame_parts(self.next_request_id());
        self.write_outgoing(Outgoing::Pieces(parts))
    }

    /// The second half of `call`: waits for the answer of a started request.
    pub(crate) async fn finish_call(&self, sent: SentRequest) -> Answer {
        let SentRequest {
            id,
            opcode,
            receiver,
        } = sent;
        let answer = self.wait(id, receiver).await?;
        if answer.opcode() != opcode {
            return Err(ClientError::Protocol(format!(
                "request {id} ({opcode:?}) answered with {:?}",
                answer.opcode()
            )));
        }
        Ok(answer)
    }

    /// Sends a request no answer comes for on success (GRANT_CREDIT, PRODUCE with acks none).
    pub(crate) fn send_unanswered(&self, request: &Request) -> Result<(), ClientError> {
        if let Some(error) = &self.shared.routes().closed {
            return Err(error.clone());
        }
        let mut frame = BytesMut::new();
        request.encode_frame(self.next_request_id(), &mut frame);
        self.write(frame)
    }

    /// SUBSCRIBE: the answer, and the channel the subscription's frames arrive on.
    pub(crate) async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<
        (
            SubscribeResponse,
            mpsc::UnboundedReceiver<SubscriptionEvent>,
        ),
        ClientError,
    > {
        let (events, receiver_events) = mpsc::unbounded_channel();
        let (id, receiver) = self.register(Some(events))?;
        let mut frame = BytesMut::new();
        Request::Subscribe(request).encode_frame(id, &mut frame);
        self.write(frame)?;
        match self.wait(id, receiver).await? {
            Response::Subscribe(answer) => Ok((answer, receiver_events)),
            other => Err(ClientError::Protocol(format!(
                "SUBSCRIBE answered with {:?}",
                other.opcode()
            ))),
        }
    }

    /// Returns `bytes` of credit to a subscription (no answer unless it fails, and a failure
    /// for a subscription that just ended is expected and ignored).
    pub(crate) fn grant_credit(&self, subscription_id: u32, bytes: u32) {
        if bytes == 0 {
            return;
        }
        let _ = self.send_unanswered(&Request::GrantCredit(GrantCreditRequest {
            subscription_id,
            credit_bytes: bytes,
        }));
    }
}

/// Writes queued frames: whatever is queued when the writer runs (credit grants, pipelined
/// produces with their batches) leaves in the same vectored writes.
async fn write_loop(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    // Every frame queued meanwhile goes out in the same vectored writes: a PRODUCE's header and
    // its batches in one `writev`, never a small write (and segment, and wake-up of the
    // broker) for the header alone.
    let mut segments: Vec<Bytes> = Vec::new();
    while let Some(frame) = frames.recv().await {
        take(&mut segments, frame);
        while segments.len() < IOV_MAX_PER_WRITE {
            match frames.try_recv() {
                Ok(frame) => take(&mut segments, frame),
                Err(_) => break,
            }
        }
        if let Err(e) = write_segments(&mut write, &mut segments).await {
            shared.fail(ClientError::ConnectionLost(format!("write failed: {e}")));
            return;
        }
    }
    let _ = write.shutdown().await;
}

fn take(segments: &mut Vec<Bytes>, outgoing: Outgoing) {
    match outgoing {
        Outgoing::Frame(frame) => segments.push(frame),
        Outgoing::Pieces(pieces) => segments.extend(pieces),
    }
}

async fn read_loop(
    mut read: tokio::net::tcp::OwnedReadHalf,
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Outgoing>,
    frame_bytes_max: u32,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let reason = loop {
        let frame = match split_frame(&mut buf, frame_bytes_max) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                match read.read_buf(&mut buf).await {
                    Ok(0) => {
                        break ClientError::ConnectionLost("broker closed the connection".into())
                    }
                    Ok(_) => continue,
                    Err(e) => break ClientError::ConnectionLost(format!("read failed: {e}")),
                }
            }
            Err(e) => break ClientError::Protocol(format!("bad frame from broker: {e}")),
        };
        let (header, payload) = frame;
        match ServerFrame::decode(header, payload) {
            Ok(frame) => {
                if let Some(reason) = dispatch(&shared, &writer, frame) {
                    break reason;
                }
            }
            Err(e) => {
                break ClientError::Protocol(format!(
                    "undecodable frame (opcode 0x{:04x}): {e}",
                    header.opcode
                ))
            }
        }
    };
    shared.fail(reason);
}

/// Routes one frame. Returns the reason to stop when the broker ended the connection.
fn dispatch(
    shared: &Shared,
    writer: &mpsc::UnboundedSender<Outgoing>,
    frame: ServerFrame,
) -> Option<ClientError> {
    match frame {
        ServerFrame::Response {
            request_id,
            response,
        } => {
            let mut routes = shared.routes();
            let Some(pending) = routes.pending.remove(&request_id) else {
                return None; // timed out, or an UNSUBSCRIBE we sent without waiting
            };
            if let (Some(events), Response::Subscribe(answer)) = (pending.subscription, &response) {
                routes.subscriptions.insert(answer.subscription_id, events);
            }
            drop(routes);
            let _ = pending.answer.send(Ok(response));
        }
        ServerFrame::Error {
            request_id: 0,
            error,
        } => {
            return Some(ClientError::broker(error.code, error.message));
        }
        ServerFrame::Error { request_id, error } => {
            let pending = shared.routes().pending.remove(&request_id);
            // No pending entry: a failed GRANT_CREDIT or UNSUBSCRIBE for a subscription
            // that had already ended, which the spec says to ignore.
            if let Some(pending) = pending {
                let _ = pending
                    .answer
                    .send(Err(ClientError::broker(error.code, error.message)));
            }
        }
        ServerFrame::Data(data) => {
            let id = data.subscription_id;
            let mut routes = shared.routes();
            let delivered = match routes.subscriptions.get(&id) {
                Some(events) => events.send(SubscriptionEvent::Data(data)).is_ok(),
                None => true, // unsubscribed by us; the broker had frames in flight
            };
            if !delivered {
                // The consumer went away without unsubscribing: stop the broker pushing.
                routes.subscriptions.remove(&id);
                drop(routes);
                let mut frame = BytesMut::new();
                Request::Unsubscribe(UnsubscribeRequest {
                    subscription_id: id,
                })
                .encode_frame(u32::MAX, &mut frame);
                let _ = writer.send(Outgoing::Frame(frame.freeze()));
            }
        }
        ServerFrame::End(end) => {
            if let Some(events) = shared.routes().subscriptions.remove(&end.subscription_id) {
                let code = if end.error.is_ok() {
                    ErrorCode::UNKNOWN_SERVER_ERROR
                } else {
                    end.error
                };
                let _ = events.send(SubscriptionEvent::End(ClientError::broker(
                    code,
                    end.message,
                )));
            }
        }
    }
    None
}
