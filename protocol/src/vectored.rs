//! Writing a message made of many `Bytes` segments (headers plus record batches) with vectored
//! writes, so record data is never copied into one buffer and a frame's header does not go out
//! in a write (and a TCP segment) of its own. The broker's front ends (Kafka and native) write
//! their responses through this, the native client its requests.

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Segments passed to one `writev` (well under the kernel's IOV_MAX of 1024).
pub const IOV_MAX_PER_WRITE: usize = 64;

/// Writes every segment in order, resuming after partial writes; `segments` is empty after.
pub async fn write_segments<W: AsyncWrite + Unpin>(
    writer: &mut W,
    segments: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[first..]
            .iter()
            .take(IOV_MAX_PER_WRITE)
            .map(|s| std::io::IoSlice::new(s))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
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
    segments.clear();
    Ok(())
}
