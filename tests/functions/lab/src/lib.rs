// Made once by `cargo xtask generate` from `tests/specs/lab.yaml`; yours to edit: it is never overwritten.
// What each function takes and returns is in `lab_types` (the types crate, regenerated with the spec).

//! The functions of the `lab` API's function targets.

pub mod context;
pub mod memos;
pub mod misbehave;
pub mod things;
