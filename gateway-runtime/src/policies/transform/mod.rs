//! Request and response transforms: headers, query parameters, bodies (jq) and statuses.

pub mod jq;
