//! Arbitrary bytes as a stream of native-protocol frames, read the way the broker and the
//! client read them: split frames off the buffer (length checked before the body is awaited),
//! then decode each as a request and as a broker frame. Any panic, abort or allocation beyond
//! the frame's own size is a bug.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::native::{split_frame, Request, ServerFrame};

/// A small frame limit, so that lengths near it are reachable by the fuzzer.
const FRAME_BYTES_MAX: u32 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some((header, payload))) = split_frame(&mut buf, FRAME_BYTES_MAX) {
        assert_eq!(payload.len(), header.payload_len());
        let _ = Request::decode(header.opcode, payload.clone());
        let _ = ServerFrame::decode(header, payload);
    }
});
