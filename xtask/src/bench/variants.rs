//! Bench-only gateways for the `policies`, `contract`, `store` and `replicas` scenarios, generated at run time: the
//! example `store` spec's limits are far too low to measure throughput under (20 requests/s API-wide), so these
//! specs keep every check it has and scale the limits up until none ever refuses.
//!
//! - `bench-policies`: an API key in `x-api-key` required by default; an API-wide bucket, a `pro` plan with a per-key
//!   bucket and a monthly quota, and on `GET /inventory` an operation bucket and `plans: [pro]`. Every bucket has
//!   `rate` and `burst` 10,000,000 and the quota a limit of 10^12, so each check runs and none refuses. `GET /open`
//!   is open (`security: []`), with the API-wide bucket only. `GET /jwt/rs256` and `GET /jwt/es256` take a bearer
//!   JWT (RS256, ES256) verified against a built-in JWKS (the test keys of `tests/fixtures/jwt/`), with the
//!   API-wide bucket too, so that against `GET /open` they differ by the token's verification alone. `GET /limited`
//!   takes the key too, and has an operation bucket that refuses (`rate` 1,000, `burst` 100): the `replicas`
//!   scenario's accuracy runs, with every other check of `GET /inventory` on the way. `PUT /full/{petId}` is the
//!   whole stack at once: the key and an RS256 bearer token both required, the API-wide, operation and plan
//!   buckets, the quota, and the ~2 KiB JSON body validated against its schema (`bench-plain`'s `PUT /body/{petId}`
//!   is the same request with none of it).
//! - `bench-shared`: `bench-policies` with `x-gateway.shared` (its buckets and quota kept in a Redis, `--redis`,
//!   one script call per request), and nothing else changed, so that the two differ by where the limits are kept.
//! - `bench-plain`: the same API with none of that: `GET /inventory` with no key and no bucket; and `GET /limited`,
//!   whose one operation bucket (`rate` 1,000, `burst` 100) is what the accuracy runs measure. For the `contract`
//!   scenario: `PUT /body/{petId}` (a JSON body, proxied as it is), `PUT /contract/{petId}` (the same body validated
//!   against its schema, two request headers set and one removed, a jq filter reshaping the body, two response
//!   header edits) and `GET /checked` (every upstream response checked against its schema, `report` mode). For the
//!   `store` scenario: two stores, `full` (`synchronous: full`, the default) and `normal`, each with
//!   `POST /store/<store>/items` (create, the body validated), `GET /store/<store>/items/{id}` and, on `full`,
//!   `GET /store/<store>/items` (a list; by `kind` on `full`).
//!
//! Every operation proxies to the origin's `/api/inventory`, as the other scenarios' gateway does, and nothing is
//! cached. Each crate is written to `bench-gateways/<name>/` under the target directory (files rewritten only when
//! they change, so an unchanged gateway is not rebuilt), standalone with the workspace's `Cargo.lock`, and built in
//! release with the workspace's profile and target directory (see [`codegen`](super::codegen)); the binaries land
//! in its `release/`. The runtime is named by its absolute path, so nothing depends on where the target directory
//! lies or whether a symlink leads to it.

use std::fs;
use std::path::Path;

use anyhow::Context;
use gateway_codegen::{Options, SpecInput};

use crate::workspace_root;

use super::codegen::{build, release_profile};

/// Where the crates (and their specs) are written, under the target directory.
const OUT: &str = "bench-gateways";

/// The header that carries the API key.
pub const KEY_HEADER: &str = "x-api-key";
/// The one key of the key file, on plan `pro`.
pub const API_KEY: &str = "bench-pro-key-0123456789abcdef";
/// A rate and burst no load on one machine reaches.
pub const UNREACHED: u32 = 10_000_000;
/// A quota limit no load reaches within a month.
pub const UNREACHED_QUOTA: u64 = 1_000_000_000_000;
/// The accuracy operation's bucket: tokens per second.
pub const LIMITED_RATE: u32 = 1000;
/// The accuracy operation's bucket: its size.
pub const LIMITED_BURST: u32 = 100;

/// `Authorization` values for the JWT targets: tokens signed once per run with the test keys, valid for a day.
pub static RS256_BEARER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| bearer("rsa-1"));
/// The ES256 one.
pub static ES256_BEARER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| bearer("ec-1"));

/// `Bearer <token>` signed by the fixture key `kid`; `Bearer unsigned` (refused, which the smoke check reports) if
/// the key cannot be read.
fn bearer(kid: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = fs::read(workspace_root().join(format!("tests/fixtures/jwt/{kid}.pem"))).unwrap_or_default();
    let (alg, key) = if kid.starts_with("ec") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(&pem))
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({ "iss": "bench", "aud": "bench", "sub": "bench", "iat": now, "exp": now + 86_400 });
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    match key.and_then(|key| jsonwebtoken::encode(&header, &claims, &key)) {
        Ok(token) => format!("Bearer {token}"),
        Err(_) => String::from("Bearer unsigned"),
    }
}

/// A bench-only gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// API keys, plans, buckets and a quota, none of which refuses.
    Policies,
    /// None of them; and the accuracy operation.
    Plain,
    /// The same as [`Variant::Policies`], with its limits shared through Redis (`x-gateway.shared`).
    Shared,
}

impl Variant {
    #[cfg(test)]
    const ALL: [Self; 3] = [Self::Policies, Self::Plain, Self::Shared];

    /// The gateway's name (`x-gateway.name`).
    fn name(self) -> &'static str {
        match self {
            Self::Policies => "bench-policies",
            Self::Plain => "bench-plain",
            Self::Shared => "bench-shared",
        }
    }

    /// The binary in `target/release/`.
    pub fn binary(self) -> String {
        format!("{}-gateway", self.name())
    }

    /// The spec.
    fn spec(self) -> String {
        let name = self.name();
        let head = format!(
            r#"# Written by `cargo xtask bench` (xtask/src/bench/variants.rs) for the benchmarks.
openapi: 3.0.3
info: {{ title: {name}, version: 1.0.0 }}
x-gateway:
  name: {name}
  upstreams:
    origin: {{ url: "http://127.0.0.1:9/api" }}   # overridden: --upstream origin=http://ORIGIN/api
  target: {{ upstream: origin, path: /inventory }}
"#
        );
        // The one difference between `bench-policies` and `bench-shared`.
        let shared = match self {
            Self::Shared => String::from(
                r#"  shared:
    redis: { url: "redis://127.0.0.1:6379/0", prefix: "gw:bench:", timeout: 50ms }   # overridden: --redis URL
    on_failure: { limits: open, quotas: closed, cache: bypass }
"#,
            ),
            Self::Policies | Self::Plain => String::new(),
        };
        let jwks = workspace_root()
            .join("tests/fixtures/jwt/jwks.json")
            .display()
            .to_string();
        let body = match self {
            Self::Policies | Self::Shared => format!(
                r##"  throttle: {{ rate: {UNREACHED}, burst: {UNREACHED} }}
  usage_plans:
    pro:
      throttle: {{ rate: {UNREACHED}, burst: {UNREACHED} }}
      quota: {{ limit: {UNREACHED_QUOTA}, period: month }}
security:
  - apiKey: []
components:
  schemas:
    Pet: {PET_SCHEMA}
  securitySchemes:
    apiKey: {{ type: apiKey, in: header, name: {KEY_HEADER} }}
    rs: {{ type: http, scheme: bearer, x-gateway: {{ jwks_file: "{jwks}", issuer: bench, audience: bench, algorithms: [RS256] }} }}
    es: {{ type: http, scheme: bearer, x-gateway: {{ jwks_file: "{jwks}", issuer: bench, audience: bench, algorithms: [ES256] }} }}
paths:
  /jwt/rs256:
    get:
      operationId: rs256
      security: [ {{ rs: [] }} ]
      responses: {{ "200": {{ description: OK }} }}
  /jwt/es256:
    get:
      operationId: es256
      security: [ {{ es: [] }} ]
      responses: {{ "200": {{ description: OK }} }}
  /inventory:
    get:
      operationId: keyed
      x-gateway:
        throttle: {{ rate: {UNREACHED}, burst: {UNREACHED} }}
        plans: [pro]
      responses: {{ "200": {{ description: OK }} }}
  /open:
    get:
      operationId: open
      security: []
      responses: {{ "200": {{ description: OK }} }}
  /limited:
    get:
      operationId: limited
      x-gateway:
        throttle: {{ rate: {LIMITED_RATE}, burst: {LIMITED_BURST} }}
      responses: {{ "200": {{ description: OK }} }}
  /full/{{petId}}:
    put:
      operationId: fullStack
      security: [ {{ apiKey: [], rs: [] }} ]
{PET_PUT}      x-gateway:
        throttle: {{ rate: {UNREACHED}, burst: {UNREACHED} }}
        plans: [pro]
        validate: {{ body: true }}
      responses: {{ "200": {{ description: OK }} }}
"##
            ),
            Self::Plain => format!(
                r##"  stores:
    full: {{ sqlite: target/bench/store/full.db }}      # overridden: --store full=PATH
    normal: {{ sqlite: target/bench/store/normal.db, synchronous: normal }}
paths:
  /store/full/items:
    post:
      operationId: createFull
      requestBody:
        required: true
        content:
          application/json: {{ schema: {{ $ref: "#/components/schemas/Item" }} }}
      x-gateway: {{ target: {{ store: full, table: items, action: create }} }}
      responses: {{ "201": {{ description: Created }} }}
    get:
      operationId: listFull
      parameters:
        - {{ name: kind, in: query, schema: {{ type: string }} }}
      x-gateway: {{ target: {{ store: full, table: items, action: list, filter: [kind] }} }}
      responses: {{ "200": {{ description: OK }} }}
  /store/full/items/{{id}}:
    get:
      operationId: getFull
      parameters:
        - {{ name: id, in: path, required: true, schema: {{ type: string }} }}
      x-gateway: {{ target: {{ store: full, table: items, action: get, key: "{{path.id}}" }} }}
      responses: {{ "200": {{ description: OK }} }}
  /store/normal/items:
    post:
      operationId: createNormal
      requestBody:
        required: true
        content:
          application/json: {{ schema: {{ $ref: "#/components/schemas/Item" }} }}
      x-gateway: {{ target: {{ store: normal, table: items, action: create }} }}
      responses: {{ "201": {{ description: Created }} }}
    get:
      operationId: listNormal
      x-gateway: {{ target: {{ store: normal, table: items, action: list }} }}
      responses: {{ "200": {{ description: OK }} }}
  /store/normal/items/{{id}}:
    get:
      operationId: getNormal
      parameters:
        - {{ name: id, in: path, required: true, schema: {{ type: string }} }}
      x-gateway: {{ target: {{ store: normal, table: items, action: get, key: "{{path.id}}" }} }}
      responses: {{ "200": {{ description: OK }} }}
  /inventory:
    get:
      operationId: plain
      responses: {{ "200": {{ description: OK }} }}
  /limited:
    get:
      operationId: limited
      x-gateway:
        throttle: {{ rate: {LIMITED_RATE}, burst: {LIMITED_BURST} }}
      responses: {{ "200": {{ description: OK }} }}
  /body/{{petId}}:
    put:
      operationId: plainBody
      parameters:
        - {{ name: petId, in: path, required: true, schema: {{ type: integer }} }}
      responses: {{ "200": {{ description: OK }} }}
  /contract/{{petId}}:
    put:
      operationId: contract
{PET_PUT}      x-gateway:
        validate: {{ body: true }}
        transform:
          request:
            headers: {{ set: {{ X-Pet-Id: "{{path.petId}}", X-Origin-Request: "{{context.request_id}}" }}, remove: [Cookie] }}
            body: '{{name: .name, status: (.status // "available"), tags: .tags, note: .note, pet: ($path.petId | tonumber)}}'
          response:
            headers: {{ set: {{ Cache-Control: "no-store" }}, remove: [Server] }}
      responses: {{ "200": {{ description: OK }} }}
  /checked:
    get:
      operationId: checked
      x-gateway:
        validate: {{ responses: report, responses_sample: 1 }}
      responses:
        "200":
          description: OK
          content:
            application/json: {{ schema: {{ $ref: "#/components/schemas/Pet" }} }}
components:
  schemas:
    Pet: {PET_SCHEMA}
    Item:
      type: object
      required: [name, kind]
      additionalProperties: false
      properties:
        id: {{ type: string }}
        name: {{ type: string, minLength: 1, maxLength: 64 }}
        kind: {{ type: string, enum: [toy, food, bed] }}
        n: {{ type: integer }}
"##
            ),
        };
        head + &shared + &body
    }
}

/// The path parameter and the request body of the `PUT`s whose body is a `Pet` (the full stack's, the contract's):
/// operation keys of a YAML block at the operation's indentation.
const PET_PUT: &str = r##"      parameters:
        - { name: petId, in: path, required: true, schema: { type: integer } }
      requestBody:
        required: true
        content:
          application/json: { schema: { $ref: "#/components/schemas/Pet" } }
"##;

/// The schema of the request bodies validated (`contract`'s and the full policy stack's), as a YAML flow mapping.
const PET_SCHEMA: &str = "{ type: object, required: [name], properties: { \
    id: { type: integer, format: int64 }, name: { type: string, minLength: 1, maxLength: 64 }, \
    status: { type: string, enum: [available, pending, sold] }, \
    tags: { type: array, maxItems: 32, items: { type: string, maxLength: 32 } }, \
    note: { type: string, maxLength: 65536 } } }";

/// The request body of the `contract` scenario: a pet of about 2 KiB (its `note` makes up the size).
pub fn request_body() -> String {
    let note = "n".repeat(1900);
    format!(r#"{{"name":"Rex","status":"available","tags":["dog","good","brown","small"],"note":"{note}"}}"#)
}

/// The key file of the `bench-policies` and `bench-shared` gateways.
pub fn key_file() -> String {
    format!("# Written by `cargo xtask bench`.\n- {{ key: \"{API_KEY}\", name: bench, plan: pro }}\n")
}

/// Generates `variants` and builds them in release.
pub fn build_some(variants: &[Variant]) -> anyhow::Result<()> {
    let out = crate::target_dir().join(OUT);
    let profile = release_profile()?;
    for &variant in variants {
        let dir = generate(variant, &out)?;
        println!("  building {} (release)", variant.binary());
        let took = build(&dir, &profile)?;
        println!("  built in {:.1} s", took.as_secs_f64());
    }
    Ok(())
}

/// Writes the spec to `out/<name>.yaml` and its crate to `out/<name>/`; returns the crate's directory.
fn generate(variant: Variant, out: &Path) -> anyhow::Result<std::path::PathBuf> {
    let text = variant.spec();
    let spec = out.join(format!("{}.yaml", variant.name()));
    write_if_changed(&spec, &text)?;
    let file = format!("target/{OUT}/{}.yaml", variant.name());
    let options = Options {
        runtime_path: crate::workspace_crate("gateway-runtime"),
        standalone: true,
        default_upstream: None,
        spec_dir: None,
        ..Options::default()
    };
    let generated = gateway_codegen::generate(
        SpecInput {
            file: &file,
            text: &text,
            dir: None,
            overlays: &[],
        },
        &options,
    )
    .map_err(|e| match e {
        gateway_codegen::GenerateError::Spec { diagnostics, .. } => {
            let shown: String = diagnostics.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("the bench-only spec {file} does not generate:\n{shown}")
        }
        other => anyhow::Error::new(other),
    })?;
    let dir = out.join(&generated.name);
    for (rel, contents) in &generated.files {
        write_if_changed(&dir.join(rel), contents)?;
    }
    let lock = fs::read_to_string(workspace_root().join("Cargo.lock")).context("reading Cargo.lock")?;
    write_if_changed(&dir.join("Cargo.lock"), &lock)?;
    Ok(dir)
}

/// Writes `contents` to `path` unless it already holds them (so that cargo sees no change).
fn write_if_changed(path: &Path, contents: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).is_ok_and(|current| current == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_generates() -> anyhow::Result<()> {
        for variant in Variant::ALL {
            let text = variant.spec();
            let options = Options {
                runtime_path: crate::workspace_crate("gateway-runtime"),
                standalone: true,
                default_upstream: None,
                spec_dir: None,
                ..Options::default()
            };
            let generated = gateway_codegen::generate(
                SpecInput {
                    file: "bench.yaml",
                    text: &text,
                    dir: None,
                    overlays: &[],
                },
                &options,
            );
            let generated = generated.map_err(|e| anyhow::anyhow!("{e:?}\n{text}"))?;
            assert_eq!(generated.package, variant.binary());
            let expected = match variant {
                Variant::Policies | Variant::Shared => 6,
                Variant::Plain => 11,
            };
            assert_eq!(generated.operations, expected);
        }
        Ok(())
    }
}
