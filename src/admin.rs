//! The admin HTTP listener: HTTP/1.1 (hyper) on shard 0's runtime, one local task per
//! connection, answers built from per-shard snapshots ([`crate::group::lag`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | 200 `ok` while the process serves |
//! | `GET /ready` | 200 `ready` once every shard has recovered and opened its partitions, else 503 |
//! | `GET /metrics` | Prometheus text format ([`crate::metrics`]); partition and group state only once ready |
//! | `GET /v1/broker` | node id, cluster id, version, listeners, data dir, storage backend, shards |
//! | `GET /v1/groups?limit=N&after=ID` | groups in id order: type, state, members, total lag; paged |
//! | `GET /v1/groups/{group}` | members, and per committed partition: committed offset and metadata, log end offset, lag; 404 when unknown |
//! | `GET /v1/topics?limit=N&after=NAME` | topics in name order: id, partitions, size; paged |
//! | `GET /v1/topics/{topic}` | per partition: log start, high watermark, log end, bytes on disk and in the tail cache; 404 when unknown |
//!
//! `/v1/*` answers JSON (errors too: `{"error": "..."}`) and 503 until the broker is ready,
//! since groups are replayed while partitions open. Path segments are percent-decoded, so a
//! group id holding `/` is asked for as `%2F`. Listings return up to `limit` items (default
//! [`PAGE_LIMIT_DEFAULT`], at most [`lag::PAGE_LIMIT_MAX`]) with `truncated` and `next_after`,
//! the cursor for the next page.
//!
//! Limits: [`CONNECTIONS_MAX`] connections at once (more wait in the listen backlog), a request
//! head of [`HEAD_BYTES_MAX`] (431 beyond), [`HEADER_READ_TIMEOUT`] to send it, and
//! [`CONNECTION_LIFETIME`] per keep-alive connection, after which it is closed gracefully.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;

use crate::group::lag::{self, PartitionEnd};
use crate::shard::{BrokerContext, ShardGone};

/// Largest request head (request line and headers); beyond it hyper answers 431.
const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Connections served at once.
const CONNECTIONS_MAX: usize = 64;
/// Time a client has to send a request head (also bounds an idle keep-alive connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection; then it finishes its request and closes.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Time a connection past its lifetime gets to finish the request it is on.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Items per listing page when `limit` is not given.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Most partitions listed in one topic's detail.
const TOPIC_PARTITIONS_MAX: usize = 10_000;

type Body = Full<Bytes>;

pub fn serve(
    ctx: Arc<BrokerContext>,
    listener: std::net::TcpListener,
) -> Result<impl std::future::Future<Output = ()>, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let accept = async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                connection(ctx, local, stream).await;
                drop(slot);
            });
        }
    };
    // The metrics recorder's upkeep rides along, so it stops with the listener.
    Ok(async move {
        tokio::join!(accept, crate::metrics::upkeep_loop());
    })
}

async fn connection(
    ctx: Arc<BrokerContext>,
    local: std::net::SocketAddr,
    stream: tokio::net::TcpStream,
) {
    let service = service_fn(move |request| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(route(&ctx, local, &request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HEAD_BYTES_MAX)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "admin connection ended");
            }
        }
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        }
    }
}

/// A path and query split into decoded parts.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    segments: Vec<String>,
    query: Vec<(String, String)>,
}

impl Target {
    fn parse(path: &str, query: Option<&str>) -> Option<Target> {
        let segments = path
            .strip_prefix('/')?
            .split('/')
            .map(|s| percent_decode(s, false))
            .collect::<Option<Vec<_>>>()?;
        let query = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(key, true)?, percent_decode(value, true)?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Target { segments, query })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Decodes `%XX` escapes (and `+` as space in a query); `None` for a bad escape or for bytes
/// that are not UTF-8.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn route(
    ctx: &Arc<BrokerContext>,
    local: std::net::SocketAddr,
    request: &Request<Incoming>,
) -> Response<Body> {
    if request.method() != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let uri = request.uri();
    let Some(target) = Target::parse(uri.path(), uri.query()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad percent-encoding in the path or query",
        );
    };
    let ready = ctx.ready.load(Ordering::Acquire);
    let segments: Vec<&str> = target.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["health"] => text(StatusCode::OK, "ok\n"),
        ["metrics"] => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(crate::metrics::render(ctx).await),
        ),
        ["ready"] if ready => text(StatusCode::OK, "ready\n"),
        ["ready"] => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: recovering partition logs\n",
        ),
        ["v1", ..] if !ready => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: recovering partition logs",
        ),
        ["v1", rest @ ..] => match api(ctx, local, rest, &target).await {
            Ok(response) => response,
            Err(ShardGone) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /ready, /metrics or /v1/groups\n",
        ),
    }
}

async fn api(
    ctx: &Arc<BrokerContext>,
    local: std::net::SocketAddr,
    path: &[&str],
    target: &Target,
) -> Result<Response<Body>, ShardGone> {
    // The cursor and page size of a listing, or what is wrong with them.
    let page = || -> Result<(Option<String>, usize), String> {
        let limit = match target.param("limit") {
            None => PAGE_LIMIT_DEFAULT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=lag::PAGE_LIMIT_MAX).contains(n))
                .ok_or_else(|| format!("limit must be 1 to {}", lag::PAGE_LIMIT_MAX))?,
        };
        Ok((target.param("after").map(str::to_owned), limit))
    };
    Ok(match path {
        ["broker"] => json(StatusCode::OK, &broker_info(ctx, local).await?),
        ["groups"] => match page() {
            Ok((after, limit)) => json(StatusCode::OK, &lag::list_groups(ctx, after, limit).await?),
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        [group @ "groups", id] | [group @ "topics", id] if id.is_empty() => {
            error(StatusCode::NOT_FOUND, &format!("empty {group} name"))
        }
        ["groups", id] => match lag::describe_group(ctx, id).await? {
            Some(detail) => json(StatusCode::OK, &detail),
            None => json(
                StatusCode::NOT_FOUND,
                &NotFound {
                    error: "group not found",
                    group: Some(id),
                    topic: None,
                },
            ),
        },
        ["topics"] => match page() {
            Ok((after, limit)) => json(StatusCode::OK, &list_topics(ctx, after, limit).await?),
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        ["topics", name] => match describe_topic(ctx, name).await? {
            Some(detail) => json(StatusCode::OK, &detail),
            None => json(
                StatusCode::NOT_FOUND,
                &NotFound {
                    error: "topic not found",
                    group: None,
                    topic: Some(name),
                },
            ),
        },
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try /v1/broker, /v1/groups, /v1/groups/{group}, /v1/topics, /v1/topics/{topic}",
        ),
    })
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

#[derive(Debug, Serialize)]
struct NotFound<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &ErrorBody { error: message })
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(status, "application/json", Bytes::from(body))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin answer");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                Bytes::from_static(b"{\"error\":\"cannot encode the answer\"}\n"),
            )
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------------------------------------
// /v1/broker
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct BrokerInfo {
    node_id: i32,
    cluster_id: String,
    version: &'static str,
    listeners: Vec<Listener>,
    data_dir: String,
    storage_backend: &'static str,
    shards: usize,
    ready: bool,
}

#[derive(Debug, Serialize)]
struct Listener {
    name: &'static str,
    listen: String,
    /// What clients are told to connect to (Kafka's advertised.listeners).
    #[serde(skip_serializing_if = "Option::is_none")]
    advertised: Option<String>,
}

/// What native clients are told to connect to: the advertised Kafka host, the native port.
fn native_advertised(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn broker_info(
    ctx: &Arc<BrokerContext>,
    admin: std::net::SocketAddr,
) -> Result<BrokerInfo, ShardGone> {
    let config = &ctx.config;
    let storage_backend = ctx
        .shards
        .call(0, |shard| async move { shard.backend.name() })
        .await?;
    let (host, port) = &ctx.advertised;
    // Port 0 asks for a free port; without an override the advertised port is the bound one.
    let mut kafka = config.kafka_listen;
    if kafka.port() == 0 && config.advertised_kafka.is_none() {
        kafka.set_port(u16::try_from(*port).unwrap_or(0));
    }
    let advertised = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(BrokerInfo {
        node_id: config.node_id,
        cluster_id: ctx.cluster_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        listeners: vec![
            Listener {
                name: "kafka",
                listen: kafka.to_string(),
                advertised: Some(advertised),
            },
            Listener {
                name: "admin",
                listen: admin.to_string(),
                advertised: None,
            },
            Listener {
                name: "native",
                listen: ctx.native_addr.to_string(),
                advertised: Some(native_advertised(host, ctx.native_addr.port())),
            },
        ],
        data_dir: config.data_dir.display().to_string(),
        storage_backend,
        shards: ctx.shards.count(),
        ready: ctx.ready.load(Ordering::Acquire),
    })
}

// ---------------------------------------------------------------------------------------------
// /v1/topics
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct TopicSummary {
    name: String,
    topic_id: String,
    partitions: i32,
    internal: bool,
    /// Bytes in the segments of every partition.
    size_bytes: u64,
}

#[derive(Debug, Serialize)]
struct TopicListing {
    topics: Vec<TopicSummary>,
    total_topics: usize,
    truncated: bool,
    next_after: Option<String>,
}

#[derive(Debug, Serialize)]
struct TopicDetail {
    name: String,
    topic_id: String,
    internal: bool,
    /// Settings set on the topic (broker defaults are not repeated).
    configs: std::collections::BTreeMap<String, String>,
    size_bytes: u64,
    /// Bytes held in memory by the partitions' tail caches.
    cache_bytes: usize,
    partition_count: i32,
    /// Sorted by partition; at most [`TOPIC_PARTITIONS_MAX`].
    partitions: Vec<PartitionInfo>,
    partitions_truncated: bool,
}

#[derive(Debug, Serialize)]
struct PartitionInfo {
    partition: i32,
    log_start_offset: u64,
    high_watermark: u64,
    log_end_offset: u64,
    size_bytes: u64,
    segments: usize,
    cache_bytes: usize,
}

impl From<PartitionEnd> for PartitionInfo {
    fn from(end: PartitionEnd) -> Self {
        PartitionInfo {
            partition: end.partition,
            log_start_offset: end.log_start_offset,
            high_watermark: end.high_watermark,
            log_end_offset: end.log_end_offset,
            size_bytes: end.size_bytes,
            segments: end.segments,
            cache_bytes: end.cache_bytes,
        }
    }
}

fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

async fn list_topics(
    ctx: &Arc<BrokerContext>,
    after: Option<String>,
    limit: usize,
) -> Result<TopicListing, ShardGone> {
    let snapshot = ctx.metadata.load_full();
    let mut following = snapshot
        .topics
        .iter()
        .filter(|(name, _)| after.as_deref().is_none_or(|a| name.as_str() > a));
    let page: Vec<_> = following
        .by_ref()
        .take(limit)
        .map(|(_, t)| t.clone())
        .collect();
    let truncated = following.next().is_some();
    let names: std::collections::HashSet<String> = page.iter().map(|t| t.name.clone()).collect();
    let mut sizes: std::collections::HashMap<String, u64> = Default::default();
    for end in lag::partition_ends(ctx, Some(Arc::new(names))).await? {
        *sizes.entry(end.topic).or_default() += end.size_bytes;
    }
    let topics: Vec<TopicSummary> = page
        .iter()
        .map(|t| TopicSummary {
            name: t.name.clone(),
            topic_id: t.id.to_string(),
            partitions: t.partitions,
            internal: is_internal(&t.name),
            size_bytes: sizes.get(&t.name).copied().unwrap_or(0),
        })
        .collect();
    let next_after = if truncated {
        topics.last().map(|t| t.name.clone())
    } else {
        None
    };
    Ok(TopicListing {
        topics,
        total_topics: snapshot.topics.len(),
        truncated,
        next_after,
    })
}

async fn describe_topic(
    ctx: &Arc<BrokerContext>,
    name: &str,
) -> Result<Option<TopicDetail>, ShardGone> {
    let Some(topic) = ctx.metadata.load().topic(name).cloned() else {
        return Ok(None);
    };
    let names = std::collections::HashSet::from([topic.name.clone()]);
    let mut ends = lag::partition_ends(ctx, Some(Arc::new(names))).await?;
    ends.sort_unstable_by_key(|e| e.partition);
    let size_bytes = ends.iter().map(|e| e.size_bytes).sum();
    let cache_bytes = ends.iter().map(|e| e.cache_bytes).sum();
    let partitions_truncated = ends.len() > TOPIC_PARTITIONS_MAX;
    ends.truncate(TOPIC_PARTITIONS_MAX);
    Ok(Some(TopicDetail {
        name: topic.name.clone(),
        topic_id: topic.id.to_string(),
        internal: is_internal(&topic.name),
        configs: topic.configs.clone(),
        size_bytes,
        cache_bytes,
        partition_count: topic.partitions,
        partitions: ends.into_iter().map(PartitionInfo::from).collect(),
        partitions_truncated,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_and_queries_are_percent_decoded() {
        let t = Target::parse("/v1/groups/a%2Fb%20c", Some("limit=5&after=x+y%26z&flag")).unwrap();
        assert_eq!(t.segments, ["v1", "groups", "a/b c"]);
        assert_eq!(t.param("limit"), Some("5"));
        assert_eq!(t.param("after"), Some("x y&z"));
        assert_eq!(t.param("flag"), Some(""));
        assert_eq!(t.param("missing"), None);
        // '+' is literal in a path.
        assert_eq!(Target::parse("/a+b", None).unwrap().segments, ["a+b"]);
        assert!(Target::parse("/bad%2", None).is_none());
        assert!(Target::parse("/bad%zz", None).is_none());
        assert!(Target::parse("/bad%+1", None).is_none());
        assert!(Target::parse("/bad%ff", None).is_none());
        assert!(Target::parse("no-slash", None).is_none());
        assert_eq!(Target::parse("/", None).unwrap().segments, [""]);
    }
}
