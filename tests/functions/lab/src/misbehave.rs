//! Functions `misbehave::…`: what the gateway must survive.

use lab_types::{
    FunctionContext, GatewayError, PanicsRequest, PanicsResponse, StillAStubRequest, StillAStubResponse,
    TooSlowRequest, TooSlowResponse,
};

/// `GET /panic`: panics; the gateway answers 500 and keeps serving.
pub async fn panic(_req: PanicsRequest, _ctx: &FunctionContext<'_>) -> PanicsResponse {
    panic!("the lab's function panicked on purpose");
}

/// `GET /slow`: takes far longer than its 300 ms timeout; the gateway answers 504.
pub async fn slow(_req: TooSlowRequest, _ctx: &FunctionContext<'_>) -> TooSlowResponse {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    TooSlowResponse::Ok
}

/// `GET /stub`: the stub `cargo xtask generate` made, left as it was.
///
/// STUB made by `cargo xtask generate`: it answers `501 Not Implemented` until you write it.
#[cfg(not(feature = "mismatch"))]
pub async fn stub(req: StillAStubRequest, ctx: &FunctionContext<'_>) -> StillAStubResponse {
    let _ = (req, ctx);
    GatewayError::not_implemented("misbehave::stub").into()
}
