//! The admin HTTP listener: `/health` (the process serves) and `/ready` (every shard has
//! recovered and opened its partitions). A deliberately tiny HTTP/1.1 responder: one GET per
//! connection, bounded request head, nothing else parsed. Metrics and the JSON admin API come
//! with the operations work, on a real HTTP stack.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::shard::BrokerContext;

/// Largest request head read; anything longer is answered 431.
const HEAD_BYTES_MAX: usize = 8 * 1024;

pub fn serve(
    ctx: Arc<BrokerContext>,
    listener: std::net::TcpListener,
) -> Result<impl std::future::Future<Output = ()>, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    Ok(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), answer(ctx, stream)).await;
            });
        }
    })
}

async fn answer(ctx: Arc<BrokerContext>, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > HEAD_BYTES_MAX {
            return respond(&mut stream, 431, "request head too large\n").await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut stream, 405, "only GET is supported\n").await;
    }
    match path {
        "/health" => respond(&mut stream, 200, "ok\n").await,
        "/ready" if ctx.ready.load(Ordering::Acquire) => respond(&mut stream, 200, "ready\n").await,
        "/ready" => respond(&mut stream, 503, "starting: recovering partition logs\n").await,
        _ => respond(&mut stream, 404, "not found: try /health or /ready\n").await,
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
