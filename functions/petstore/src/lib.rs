// Made once by `cargo xtask generate` from `specs/petstore.yaml`; yours to edit: it is never overwritten.
// What each function takes and returns is in `petstore_types` (the types crate, regenerated with the spec).

//! The functions of the `petstore` API's function targets.

pub mod pets;
