//! Functions `context::…`: what a function's context holds.

use lab_types::schemas::Context;
use lab_types::{FunctionContext, ShowContextRequest, ShowContextResponse};

/// `GET /context` (keyed): the request id, the caller's key, the stage and its variable, and what the `echo`
/// upstream saw when the function called it.
pub async fn show(
    _req: ShowContextRequest,
    ctx: &FunctionContext<'_>,
) -> Result<ShowContextResponse, lab_types::GatewayError> {
    let (upstream_status, upstream_saw) = match ctx.upstream("echo") {
        Some(echo) => {
            let answer = echo.get("/relayed?from=function").await?;
            let saw = String::from_utf8_lossy(answer.body()).into_owned();
            (Some(i64::from(answer.status().as_u16())), Some(saw))
        }
        None => (None, None),
    };
    Ok(ShowContextResponse::Ok(Context {
        request_id: ctx.request_id().to_owned(),
        operation_id: ctx.operation_id().to_owned(),
        caller: ctx.key_name().map(str::to_owned),
        stage: ctx.stage().map(str::to_owned),
        greeting: ctx.stage_var("greeting").map(str::to_owned),
        upstream_status,
        upstream_saw,
    }))
}
