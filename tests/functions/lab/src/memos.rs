//! Functions `memos::…`: a function that writes to the API's store, which a store target reads.

use lab_types::schemas::Saved;
use lab_types::{Condition, FunctionContext, GatewayError, SaveMemoRequest, SaveMemoResponse};

/// `PUT /memos/{key}`: the memo (checked against `Memo` before this runs) stored in store `lab`, table `memos`,
/// stamped with who wrote it.
pub async fn save(req: SaveMemoRequest, ctx: &FunctionContext<'_>) -> Result<SaveMemoResponse, GatewayError> {
    let store = ctx.store("lab").ok_or_else(GatewayError::internal)?;
    let mut memo = serde_json::json!({ "text": req.body.text });
    memo["by"] = serde_json::Value::String(req.body.by.unwrap_or_else(|| String::from("a function")));
    // A store error (unavailable, a precondition) is the gateway's response for it, through `?`.
    let (item, created) = store.put("memos", &req.params.key, memo, Condition::Always).await?;
    Ok(SaveMemoResponse::Ok(Saved {
        key: item.key,
        version: i64::try_from(item.version).unwrap_or(i64::MAX),
        created,
    }))
}
