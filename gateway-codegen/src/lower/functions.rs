//! The typed request and response of each function target.

use openapiv3::{MediaType, OpenAPI, StatusCode};

use super::first_line;
use super::types::TypeSpace;
use crate::model::{Function, FunctionBody, Payload, ResponseVariant, RustType, VariantStatus};
use crate::names::{self, Scope};
use crate::parse::refs;
use crate::validate::CheckedOperation;

/// Completes `function` (its path and timeout checked) with the names and types of operation `op`.
pub(super) fn lower_function(
    openapi: &OpenAPI,
    op: &CheckedOperation<'_>,
    mut function: Function,
    space: &mut TypeSpace<'_>,
    scope: &mut Scope,
) -> Function {
    let base = names::type_name(&op.id, "Operation");
    function.request = scope.claim(format!("{base}Request"), "");
    function.response = scope.claim(format!("{base}Response"), "");
    function.glue = names::field(&op.id);
    let operation = &op.parsed.operation;
    function.body = operation
        .request_body
        .as_ref()
        .and_then(|b| refs::resolve(openapi, b).ok())
        .and_then(|body| {
            let (media_type, media) = pick_media(&body.content)?;
            Some(FunctionBody {
                ty: RustType::Value,
                required: body.required,
                media: payload(media_type, media, &format!("{base}Body"), space),
            })
        })
        .map(|mut body| {
            if let Payload::Json(ty) = &body.media {
                body.ty = ty.clone();
            }
            body
        });
    let mut variants = Scope::default();
    for (status, response) in &operation.responses.responses {
        let Ok(response) = refs::resolve(openapi, response) else {
            continue;
        };
        let (status, name) = match status {
            StatusCode::Code(code) => (VariantStatus::Code(*code), code_name(*code)),
            StatusCode::Range(range) => {
                let digit = u8::try_from(*range).unwrap_or(0);
                (VariantStatus::Range(digit), range_name(digit))
            }
        };
        let name = variants.claim(name, "");
        let hint = format!("{base}{name}");
        let (payload, content_type) = match pick_media(&response.content) {
            Some((media_type, media)) => (payload(media_type, media, &hint, space), content_type(media_type)),
            None => (Payload::Empty, String::new()),
        };
        function.variants.push(ResponseVariant {
            name,
            status,
            payload,
            content_type,
            doc: first_line(Some(&response.description)),
        });
    }
    if let Some(default) = operation
        .responses
        .default
        .as_ref()
        .and_then(|r| refs::resolve(openapi, r).ok())
    {
        let name = variants.claim(String::from("Default"), "");
        let (payload, content_type) = match pick_media(&default.content) {
            Some((media_type, media)) => (
                payload(media_type, media, &format!("{base}Default"), space),
                content_type(media_type),
            ),
            None => (Payload::Empty, String::new()),
        };
        function.variants.push(ResponseVariant {
            name,
            status: VariantStatus::Default,
            payload,
            content_type,
            doc: first_line(Some(&default.description)),
        });
    }
    function
}

/// The media type a function reads or writes: the first JSON one, else the first.
fn pick_media(content: &indexmap::IndexMap<String, MediaType>) -> Option<(&str, &MediaType)> {
    content
        .iter()
        .find(|(t, _)| is_json(t))
        .or_else(|| content.iter().next())
        .map(|(t, m)| (t.as_str(), m))
}

/// The `Content-Type` a variant is sent with: the declared media type (a text type with a charset; a range, which
/// is not a type, as bytes).
fn content_type(media_type: &str) -> String {
    let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence.contains('*') || essence.is_empty() {
        String::from("application/octet-stream")
    } else if essence.starts_with("text/") && !media_type.contains("charset") {
        format!("{essence}; charset=utf-8")
    } else {
        media_type.trim().to_owned()
    }
}

fn is_json(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn payload(media_type: &str, media: &MediaType, hint: &str, space: &mut TypeSpace<'_>) -> Payload {
    if is_json(media_type) {
        return Payload::Json(match &media.schema {
            Some(schema) => space.type_of(schema, hint),
            None => RustType::Value,
        });
    }
    if media_type.trim().to_ascii_lowercase().starts_with("text/") {
        Payload::Text
    } else {
        Payload::Bytes
    }
}

/// `200` → `Ok`, `404` → `NotFound`, `418` → `ImATeapot`; a code without a reason phrase → `Status599`.
fn code_name(code: u16) -> String {
    http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(|| format!("Status{code}"), |reason| names::type_name(reason, "Status"))
}

fn range_name(digit: u8) -> String {
    String::from(match digit {
        1 => "Informational",
        2 => "Success",
        3 => "Redirection",
        4 => "ClientError",
        5 => "ServerError",
        _ => "OtherStatus",
    })
}
