//! GRANT_CREDIT: adds bytes to a subscription's credit and wakes it. Unanswered on success.

use protocol::native::{ErrorCode, GrantCreditRequest};

use super::{Ctx, NativeError};

pub fn handle(ctx: &Ctx<'_>, request: GrantCreditRequest) -> Result<(), NativeError> {
    let credit = ctx
        .conn
        .subscription_credit(request.subscription_id)
        .ok_or_else(|| {
            NativeError::new(
                ErrorCode::UNKNOWN_SUBSCRIPTION,
                format!(
                    "no subscription {} on this connection",
                    request.subscription_id
                ),
            )
        })?;
    credit.grant(request.credit_bytes);
    Ok(())
}
