// Made once by `cargo xtask generate` from `tests/specs/duo-a.yaml`; yours to edit: it is never overwritten.
// What each function takes and returns is in `duo_types::duo_a` (the types crate, regenerated with the spec).

//! The functions of the `duo-a` API's function targets.

use ::duo_types::duo_a::schemas::HelloOk;
use ::duo_types::duo_a::{FunctionContext, HelloRequest, HelloResponse};

/// `GET /a/hello/{name}`: a greeting, and which API of the gateway answered.
pub async fn hello(req: HelloRequest, ctx: &FunctionContext<'_>) -> HelloResponse {
    HelloResponse::Ok(HelloOk {
        greeting: format!("hello, {}", req.params.name),
        api: ctx.api().to_owned(),
    })
}
