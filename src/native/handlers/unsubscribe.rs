//! UNSUBSCRIBE: stops the subscription's task. The answer is queued after every data frame
//! the task queued, so it is the last frame of the subscription the client sees.

use protocol::native::{Empty, ErrorCode, UnsubscribeRequest};

use super::{Ctx, NativeError};

pub fn handle(ctx: &Ctx<'_>, request: UnsubscribeRequest) -> Result<Empty, NativeError> {
    if ctx.conn.remove_subscription(request.subscription_id, true) {
        Ok(Empty)
    } else {
        Err(NativeError::new(
            ErrorCode::UNKNOWN_SUBSCRIPTION,
            format!(
                "no subscription {} on this connection",
                request.subscription_id
            ),
        ))
    }
}
