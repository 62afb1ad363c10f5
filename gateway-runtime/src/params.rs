//! Typed request parameters: what generated parameter structs are parsed with.
//!
//! A generated gateway has one struct per operation (`GetPetParams { pet_id: i64, .. }`) whose
//! `FromRequestParams` impl calls [`RequestParams::get`] / [`RequestParams::require`] (and the `_list` forms) once
//! per declared parameter. The runtime never sees the struct: it only learns whether parsing succeeded, and if not,
//! which parameter failed and what was expected, which becomes a `400` problem response.

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// The `i`-th path parameter of the template.
    Path(usize),
    /// The query string.
    Query,
    /// A request header (names are case-insensitive).
    Header,
    /// A cookie in the `Cookie` header.
    Cookie,
}

impl ParamIn {
    /// The OpenAPI name of the location, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamIn::Path(_) => "path",
            ParamIn::Query => "query",
            ParamIn::Header => "header",
            ParamIn::Cookie => "cookie",
        }
    }
}

/// How the items of an array parameter are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStyle {
    /// `?id=1&id=2` (`style: form, explode: true`, the query default).
    Repeated,
    /// `?id=1,2` (`style: form, explode: false`; `style: simple` in paths and headers).
    Comma,
    /// `?id=1%202` (`style: spaceDelimited`).
    Space,
    /// `?id=1|2` (`style: pipeDelimited`).
    Pipe,
}

/// A value a parameter can be parsed into.
///
/// Implemented here for the scalar types of OpenAPI and by generated code for string enums.
pub trait ParamValue: Sized {
    /// What a valid value looks like, for error messages (e.g. `integer (int64)`).
    const EXPECTED: &'static str;
    /// Parses one (already percent-decoded) value.
    fn parse_param(raw: &str) -> Option<Self>;
}

macro_rules! int_param {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl ParamValue for $ty {
            const EXPECTED: &'static str = $expected;
            fn parse_param(raw: &str) -> Option<Self> {
                raw.parse().ok()
            }
        }
    )*};
}
int_param!(i32 => "integer (int32)", i64 => "integer (int64)");

impl ParamValue for f64 {
    const EXPECTED: &'static str = "number";
    fn parse_param(raw: &str) -> Option<Self> {
        // `f64::from_str` also accepts `NaN` and `inf`, which JSON numbers cannot be.
        raw.parse::<f64>().ok().filter(|n| n.is_finite())
    }
}

impl ParamValue for f32 {
    const EXPECTED: &'static str = "number (float)";
    fn parse_param(raw: &str) -> Option<Self> {
        raw.parse::<f32>().ok().filter(|n| n.is_finite())
    }
}

impl ParamValue for bool {
    const EXPECTED: &'static str = "boolean (true or false)";
    fn parse_param(raw: &str) -> Option<Self> {
        match raw {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

impl ParamValue for String {
    const EXPECTED: &'static str = "string";
    fn parse_param(raw: &str) -> Option<Self> {
        Some(raw.to_owned())
    }
}

impl ParamValue for uuid::Uuid {
    const EXPECTED: &'static str = "string (uuid)";
    fn parse_param(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw).ok()
    }
}

/// Parses a generated parameter struct from a request.
pub trait FromRequestParams: Sized {
    /// Reads and type-checks every declared parameter.
    fn from_request_params(params: &RequestParams<'_>) -> ParamResult<Self>;
}

/// What reading parameters gives: `T`, or the parameter that is missing or invalid. Generated impls of
/// [`FromRequestParams`] are written with it, which keeps their signature on one line.
pub type ParamResult<T> = Result<T, ParamError>;

/// Type-checks a request's parameters against `T`, discarding the value: what proxy and mock targets need.
pub fn check<T: FromRequestParams>(params: &RequestParams<'_>) -> Result<(), ParamError> {
    T::from_request_params(params).map(drop)
}

/// Type-checks a request's parameters against each of `checks` in turn, passing as soon as one passes: the
/// parameters of a route that serves several operations matching the same requests, each declaring them its own
/// way. When none passes, the first one's error (the serving operation's).
pub fn check_any(params: &RequestParams<'_>, checks: &[crate::spec::Validator]) -> Result<(), ParamError> {
    let mut first = None;
    for check in checks {
        match check(params) {
            Ok(()) => return Ok(()),
            Err(err) => {
                first.get_or_insert(err);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The raw parameters of one request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParams<'a> {
    path: &'a [&'a str],
    query: &'a str,
    headers: &'a HeaderMap,
}

impl<'a> RequestParams<'a> {
    /// `path` holds the percent-decoded path parameter values in template order; `query` is the raw query string.
    pub fn new(path: &'a [&'a str], query: Option<&'a str>, headers: &'a HeaderMap) -> Self {
        Self {
            path,
            query: query.unwrap_or(""),
            headers,
        }
    }

    /// An optional scalar parameter: `None` when absent, an error when present but not a `T`.
    pub fn get<T: ParamValue>(&self, at: ParamIn, name: &'static str) -> Result<Option<T>, ParamError> {
        match self.raw(at, name) {
            None => Ok(None),
            Some(raw) => T::parse_param(&raw)
                .map(Some)
                .ok_or_else(|| ParamError::invalid(at, name, T::EXPECTED, &raw)),
        }
    }

    /// A required scalar parameter.
    pub fn require<T: ParamValue>(&self, at: ParamIn, name: &'static str) -> Result<T, ParamError> {
        self.get(at, name)?
            .ok_or_else(|| ParamError::missing(at, name, T::EXPECTED))
    }

    /// An optional array parameter: `None` when absent.
    pub fn get_list<T: ParamValue>(
        &self,
        at: ParamIn,
        name: &'static str,
        style: ListStyle,
    ) -> Result<Option<Vec<T>>, ParamError> {
        let items: Vec<String> = match (at, style) {
            (ParamIn::Query, ListStyle::Repeated) => self.query_values(name).collect(),
            _ => match self.raw(at, name) {
                None => return Ok(None),
                Some(raw) if raw.is_empty() => Vec::new(),
                Some(raw) => {
                    let sep = match style {
                        ListStyle::Repeated | ListStyle::Comma => ',',
                        ListStyle::Space => ' ',
                        ListStyle::Pipe => '|',
                    };
                    raw.split(sep).map(str::to_owned).collect()
                }
            },
        };
        if items.is_empty() && at == ParamIn::Query && style == ListStyle::Repeated {
            return Ok(None);
        }
        items
            .iter()
            .map(|item| T::parse_param(item).ok_or_else(|| ParamError::invalid(at, name, list_expected::<T>(), item)))
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    /// A required array parameter.
    pub fn require_list<T: ParamValue>(
        &self,
        at: ParamIn,
        name: &'static str,
        style: ListStyle,
    ) -> Result<Vec<T>, ParamError> {
        self.get_list(at, name, style)?
            .ok_or_else(|| ParamError::missing(at, name, list_expected::<T>()))
    }

    /// The raw (percent-decoded) value of a scalar parameter, if present.
    fn raw(&self, at: ParamIn, name: &str) -> Option<String> {
        match at {
            ParamIn::Path(i) => self.path.get(i).map(|v| (*v).to_owned()),
            ParamIn::Query => self.query_values(name).next(),
            ParamIn::Header => {
                // Several header lines of one name are one comma-separated list (RFC 9110 §5.3).
                let mut values = self.headers.get_all(name).iter().peekable();
                values.peek()?;
                let joined = values
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
                    .collect::<Vec<_>>()
                    .join(",");
                Some(joined)
            }
            ParamIn::Cookie => cookie(self.headers, name).map(|v| {
                percent_encoding::percent_decode_str(v.trim_matches('"'))
                    .decode_utf8_lossy()
                    .into_owned()
            }),
        }
    }

    fn query_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = String> + 's {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// The raw value of cookie `name` in the request's `Cookie` headers, as sent.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn list_expected<T: ParamValue>() -> Cow<'static, str> {
    Cow::Owned(format!("array of {}", T::EXPECTED))
}

/// Why a parameter was refused; becomes a `400` problem response naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParamError {
    /// Where the parameter was read from.
    pub location: ParamIn,
    /// The parameter's name as declared in the spec.
    pub name: &'static str,
    /// What a valid value looks like.
    pub expected: Cow<'static, str>,
    /// The value received, or `None` when the parameter was missing.
    pub received: Option<String>,
}

impl ParamError {
    /// A required parameter that is absent.
    pub fn missing(location: ParamIn, name: &'static str, expected: impl Into<Cow<'static, str>>) -> Self {
        Self {
            location,
            name,
            expected: expected.into(),
            received: None,
        }
    }

    /// A parameter whose value does not parse.
    pub fn invalid(
        location: ParamIn,
        name: &'static str,
        expected: impl Into<Cow<'static, str>>,
        received: &str,
    ) -> Self {
        // Echo at most a short prefix of what was sent: enough to debug, not a reflection vector.
        let received: String = received.chars().take(64).collect();
        Self {
            location,
            name,
            expected: expected.into(),
            received: Some(received),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.received {
            None => write!(
                f,
                "required {} parameter `{}` is missing; expected {}",
                self.location.as_str(),
                self.name,
                self.expected
            ),
            Some(value) => write!(
                f,
                "{} parameter `{}` must be {}, got {:?}",
                self.location.as_str(),
                self.name,
                self.expected,
                value
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{phase}` as one operation declares it: an enum of two values.
    fn entrypoint(p: &RequestParams<'_>) -> Result<(), ParamError> {
        let phase: String = p.require(ParamIn::Path(0), "phase")?;
        match phase.as_str() {
            "http_request_firewall" | "http_request_transform" => Ok(()),
            other => Err(ParamError::invalid(
                ParamIn::Path(0),
                "phase",
                "one of two phases",
                other,
            )),
        }
    }

    /// The same place as another operation declares it: an integer.
    fn numbered(p: &RequestParams<'_>) -> Result<(), ParamError> {
        p.require::<i64>(ParamIn::Path(0), "ruleset_phase").map(drop)
    }

    #[test]
    fn check_any_accepts_what_one_check_accepts_and_reports_the_first_error() {
        let headers = HeaderMap::new();
        let checks: [crate::spec::Validator; 2] = [entrypoint, numbered];
        for accepted in ["http_request_firewall", "42"] {
            let path = [accepted];
            assert_eq!(
                check_any(&RequestParams::new(&path, None, &headers), &checks),
                Ok(()),
                "{accepted}"
            );
        }
        let path = ["ddos_l7"];
        let err = check_any(&RequestParams::new(&path, None, &headers), &checks).expect_err("refused by both");
        assert_eq!(err.name, "phase", "the first operation's error");
        assert_eq!(check_any(&RequestParams::new(&path, None, &headers), &[]), Ok(()));
    }
}
