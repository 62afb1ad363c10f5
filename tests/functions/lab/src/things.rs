//! Functions `things::…`: typed parameters and bodies in, every kind of response variant out.

use std::sync::atomic::{AtomicI64, Ordering};

use lab_types::schemas::{Calls, Kind, Problem, Thing};
use lab_types::{
    CountCallsRequest, CountCallsResponse, CreateThingRequest, CreateThingResponse, FunctionContext, GatewayError,
    GetThingRequest, GetThingResponse, RemoveThingRequest, RemoveThingResponse, TeapotRequest, TeapotResponse,
};

/// How many times [`create`] ran: what proves that a body failing its schema never reached it.
static CREATED: AtomicI64 = AtomicI64::new(0);

/// `GET /things/{id}`: the typed parameters, echoed back as a thing; id 0 is not found.
#[cfg(not(feature = "mismatch"))]
pub async fn get(req: GetThingRequest, _ctx: &FunctionContext<'_>) -> GetThingResponse {
    let params = req.params;
    if params.id == 0 {
        return GetThingResponse::NotFound(Problem {
            title: String::from("No such thing"),
            detail: Some(String::from("thing 0 never existed")),
        });
    }
    GetThingResponse::Ok(Thing {
        id: params.id,
        kind: params.kind.map_or(Kind::Plain, |k| match k {
            lab_types::params::Kind::Plain => Kind::Plain,
            lab_types::params::Kind::Fancy => Kind::Fancy,
        }),
        trace: params.x_trace,
        name: None,
        tags: params.tags,
        size: None,
        parent: None,
        labels: None,
    })
}

/// The compile-fail fixture: takes another operation's request.
#[cfg(feature = "mismatch")]
pub async fn get(req: CreateThingRequest, _ctx: &FunctionContext<'_>) -> GetThingResponse {
    let _ = req;
    GatewayError::internal().into()
}

/// `POST /things`: the typed body, stored nowhere, answered as the created thing; the name `taken` conflicts.
pub async fn create(req: CreateThingRequest, _ctx: &FunctionContext<'_>) -> CreateThingResponse {
    CREATED.fetch_add(1, Ordering::SeqCst);
    let body = req.body;
    if body.name == "taken" {
        return CreateThingResponse::Conflict(Problem {
            title: String::from("Taken"),
            detail: Some(format!("`{}` exists", body.name)),
        });
    }
    CreateThingResponse::Created(Thing {
        id: 1,
        kind: body.kind.unwrap_or(Kind::Plain),
        trace: None,
        name: Some(body.name),
        tags: body.tags,
        size: body.size,
        parent: Some(Box::new(Thing {
            id: 0,
            kind: Kind::Plain,
            trace: None,
            name: Some(String::from("root")),
            tags: None,
            size: None,
            parent: None,
            labels: None,
        })),
        labels: body.labels,
    })
}

/// `DELETE /things/{id}`: no content.
#[cfg(not(feature = "mismatch"))]
pub async fn remove(req: RemoveThingRequest, _ctx: &FunctionContext<'_>) -> RemoveThingResponse {
    let _ = req.params.id;
    RemoveThingResponse::NoContent
}

/// The compile-fail fixture: returns another operation's response.
#[cfg(feature = "mismatch")]
pub async fn remove(req: RemoveThingRequest, _ctx: &FunctionContext<'_>) -> TeapotResponse {
    let _ = req;
    TeapotResponse::Ok(String::new())
}

/// `GET /calls`: how many times [`create`] ran.
pub async fn calls(_req: CountCallsRequest, _ctx: &FunctionContext<'_>) -> CountCallsResponse {
    CountCallsResponse::Ok(Calls {
        created: CREATED.load(Ordering::SeqCst),
    })
}

/// `GET /teapot/{code}`: `200` as text; any other code through the `default` variant, which carries its status; a
/// code below 200 as a gateway error (a function may return one).
pub async fn teapot(req: TeapotRequest, _ctx: &FunctionContext<'_>) -> Result<TeapotResponse, GatewayError> {
    let code = req.params.code;
    if code < 200 {
        return Err(GatewayError::new(
            lab_types::ErrorKind::BadRequestParameters,
            "informational codes are not answers",
        ));
    }
    Ok(match u16::try_from(code) {
        Ok(200) => TeapotResponse::Ok(String::from("just tea")),
        Ok(status) => TeapotResponse::Default {
            status,
            body: Problem {
                title: format!("status {status}"),
                detail: None,
            },
        },
        Err(_) => return Err(GatewayError::internal()),
    })
}
