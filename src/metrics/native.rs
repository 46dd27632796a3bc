//! Native protocol metrics: requests and ERROR frames per op, connections and subscriptions
//! open. Labels are static strings from the codec's op table and error-code table, so counting
//! allocates nothing after a handle's first use on a thread.

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{Counter, Gauge};
use protocol::native::ErrorCode;

pub const NATIVE_REQUESTS: &str = "sluice_native_requests_total";
pub const NATIVE_ERRORS: &str = "sluice_native_errors_total";
pub const NATIVE_CONNECTIONS_OPEN: &str = "sluice_native_connections_open";
pub const NATIVE_SUBSCRIPTIONS_OPEN: &str = "sluice_native_subscriptions_open";

/// The op label of frames that did not decode to a known op.
pub const UNDECODED: &str = "undecoded";

thread_local! {
    static REQUESTS: RefCell<HashMap<&'static str, Counter>> = RefCell::new(HashMap::new());
    static ERRORS: RefCell<HashMap<(&'static str, u16), Counter>> = RefCell::new(HashMap::new());
    static OPEN: (Gauge, Gauge) = (
        metrics::gauge!(NATIVE_CONNECTIONS_OPEN),
        metrics::gauge!(NATIVE_SUBSCRIPTIONS_OPEN),
    );
}

pub(super) fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(NATIVE_REQUESTS, "Native protocol requests received, by op.");
    describe_counter!(
        NATIVE_ERRORS,
        "Native ERROR frames sent, by op (\"undecoded\" for frames that did not decode) and code."
    );
    describe_gauge!(NATIVE_CONNECTIONS_OPEN, "Native protocol connections open.");
    describe_gauge!(NATIVE_SUBSCRIPTIONS_OPEN, "Native subscriptions open.");
}

/// A request of op `op` was received.
pub fn request(op: &'static str) {
    REQUESTS.with(|map| {
        map.borrow_mut()
            .entry(op)
            .or_insert_with(|| metrics::counter!(NATIVE_REQUESTS, "op" => op))
            .increment(1)
    });
}

/// An ERROR frame with `code` answered a request of op `op`.
pub fn error(op: &'static str, code: ErrorCode) {
    ERRORS.with(|map| {
        map.borrow_mut()
            .entry((op, code.0))
            .or_insert_with(|| {
                let name = code.name().unwrap_or("OTHER");
                metrics::counter!(NATIVE_ERRORS, "op" => op, "error" => name)
            })
            .increment(1)
    });
}

/// Counts something as open while the guard lives.
#[derive(Debug)]
#[must_use = "it counts as open while the guard lives"]
pub struct Open {
    subscription: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        let subscription = self.subscription;
        OPEN.with(|(connections, subscriptions)| {
            if subscription {
                subscriptions.decrement(1.0)
            } else {
                connections.decrement(1.0)
            }
        });
    }
}

pub fn connection_opened() -> Open {
    OPEN.with(|(connections, _)| connections.increment(1.0));
    Open {
        subscription: false,
    }
}

pub fn subscription_opened() -> Open {
    OPEN.with(|(_, subscriptions)| subscriptions.increment(1.0));
    Open { subscription: true }
}
