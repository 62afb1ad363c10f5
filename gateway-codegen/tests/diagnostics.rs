//! One test per generate-time error kind: the message, the help, and the line it points at.

use gateway_codegen::{GenerateError, Options, RenderedDiagnostic, Severity, SpecInput, generate};

/// A valid spec the tests break one way at a time. Line numbers in assertions refer to the final text.
const BASE: &str = r#"openapi: 3.0.3
info: { title: T, version: "1" }
x-gateway:
  upstreams:
    pets: { url: "http://127.0.0.1:9001", timeout: 10s }
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - { name: petId, in: path, required: true, schema: { type: integer } }
      x-gateway:
        target: { upstream: pets, path: "/v1/pets/{petId}" }
      responses: { "200": { description: ok } }
"#;

fn run(spec: &str) -> Result<gateway_codegen::Generated, Vec<RenderedDiagnostic>> {
    match generate(
        SpecInput {
            file: "specs/t.yaml",
            text: spec,
            dir: None,
            overlays: &[],
        },
        &Options::default(),
    ) {
        Ok(g) => Ok(g),
        Err(GenerateError::Spec { diagnostics, .. }) => Err(diagnostics),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

fn errors(spec: &str) -> Vec<RenderedDiagnostic> {
    let diagnostics = run(spec).expect_err("the spec should be refused");
    diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// The only error of `spec`, checked to mention `message` at `line`.
fn single_error(spec: &str, message: &str, line: usize) -> RenderedDiagnostic {
    let errs = errors(spec);
    assert_eq!(errs.len(), 1, "expected one error, got: {errs:#?}");
    let e = errs.into_iter().next().expect("one error");
    assert!(
        e.message.contains(message),
        "message {:?} should contain {message:?}",
        e.message
    );
    assert_eq!(e.line(), Some(line), "wrong line for {e}");
    let rendered = e.to_string();
    assert!(
        rendered.contains(&format!("specs/t.yaml:{line}:")),
        "rendered: {rendered}"
    );
    e
}

#[test]
fn the_base_spec_is_valid() {
    let g = run(BASE).expect("base spec generates");
    assert_eq!(g.package, "t-gateway");
    assert_eq!(g.operations, 1);
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let spec = BASE.replace("target: { upstream: pets,", "targte: { upstream: pets,");
    let e = single_error(&spec, "unknown key `targte`", 13);
    assert_eq!(e.help.as_deref(), Some("did you mean `target`?"));
    let spec = BASE.replace("timeout: 10s", "timout: 10s");
    let e = single_error(&spec, "unknown key `timout`", 5);
    assert_eq!(e.help.as_deref(), Some("did you mean `timeout`?"));
    let spec = BASE.replace("  upstreams:", "  upstreems:");
    let e = single_error(&spec, "unknown key `upstreems`", 4);
    assert_eq!(e.help.as_deref(), Some("did you mean `upstreams`?"));
}

#[test]
fn undefined_upstream() {
    let spec = BASE.replace("target: { upstream: pets,", "target: { upstream: petz,");
    let e = single_error(&spec, "upstream `petz` is not defined", 13);
    assert_eq!(e.help.as_deref(), Some("did you mean `pets`?"));
}

/// The only warning of `spec` that mentions `message`, checked to be at `line`.
fn warning_at(spec: &str, message: &str, line: usize) -> RenderedDiagnostic {
    let generated = run(spec).unwrap_or_else(|e| panic!("the spec should generate: {e:#?}"));
    let found: Vec<RenderedDiagnostic> = generated
        .warnings
        .into_iter()
        .filter(|w| w.message.contains(message))
        .collect();
    let [w] = found.as_slice() else {
        panic!("expected one warning with {message:?}, got {found:#?}");
    };
    assert_eq!(w.line(), Some(line), "wrong line for {w}");
    w.clone()
}

#[test]
fn path_placeholder_without_parameter_is_read_as_a_string_with_a_warning() {
    let spec = BASE.replace("  /pets/{petId}:", "  /pets/{petId}/{size}:");
    let w = warning_at(
        &spec,
        "path placeholder `{size}` of GET /pets/{petId}/{size} has no declared path parameter; read as a required string",
        8,
    );
    assert!(w.help.as_deref().is_some_and(|h| h.contains("name: size")));
}

#[test]
fn path_parameter_missing_from_template_is_dropped_with_a_warning() {
    let spec = BASE
        .replace("  /pets/{petId}:", "  /pets/{id}:")
        .replace("/v1/pets/{petId}", "/v1/pets/{id}");
    warning_at(
        &spec,
        "path parameter `petId` does not appear in the path template `/pets/{id}`; dropped",
        11,
    );
    warning_at(&spec, "path placeholder `{id}` of GET /pets/{id}", 8);
}

#[test]
fn rewrite_placeholder_that_names_no_parameter() {
    let spec = BASE.replace("/v1/pets/{petId}", "/v1/pets/{petid}");
    let e = single_error(&spec, "rewrite placeholder `{petid}` names no path parameter", 13);
    assert_eq!(e.help.as_deref(), Some("did you mean `{petId}`?"));
    let spec = BASE.replace("/v1/pets/{petId}", "/v1/pets/{query.petId}");
    single_error(&spec, "query placeholders are not supported in a rewrite path", 13);
}

#[test]
fn two_templates_matching_the_same_requests() {
    let spec = format!(
        "{BASE}  /pets/{{id}}:\n    get:\n      operationId: getPetById\n      parameters:\n        - {{ name: id, in: path, required: true, schema: {{ type: string }} }}\n      responses: {{ \"200\": {{ description: ok }} }}\n      x-gateway: {{ target: {{ upstream: pets }} }}\n"
    );
    let e = single_error(
        &spec,
        "GET /pets/{id} matches the same requests as GET /pets/{petId}",
        16,
    );
    assert_eq!(e.related.len(), 1);
    assert_eq!(e.related[0].0.map(|l| l.line), Some(8), "the other operation's line");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("skip: true")));
    // Skipping one resolves it, and different methods on the two templates are fine.
    let skipped = spec.replace(
        "x-gateway: { target: { upstream: pets } }",
        "x-gateway: { skip: true, target: { upstream: pets } }",
    );
    assert_eq!(run(&skipped).expect("skip resolves the conflict").operations, 1);
    let other_method = spec.replace("  /pets/{id}:\n    get:", "  /pets/{id}:\n    delete:");
    assert_eq!(
        run(&other_method).expect("distinct methods share a route").operations,
        2
    );
}

#[test]
fn duplicate_operation_ids() {
    let spec = format!(
        "{BASE}  /cats:\n    get:\n      operationId: getPet\n      responses: {{ \"200\": {{ description: ok }} }}\n      x-gateway: {{ target: {{ upstream: pets }} }}\n"
    );
    let e = single_error(&spec, "duplicate operationId `getPet`", 17);
    assert_eq!(e.related[0].0.map(|l| l.line), Some(9));
}

#[test]
fn bad_duration() {
    let spec = BASE.replace("timeout: 10s", "timeout: 10");
    let e = single_error(&spec, "invalid duration `10`", 5);
    assert!(e.message.contains("like `250ms`, `10s` or `5m`"));
}

#[test]
fn bad_upstream_url() {
    let spec = BASE.replace("http://127.0.0.1:9001", "ftp://127.0.0.1:9001");
    single_error(&spec, "must use http or https", 5);
    let spec = BASE.replace("http://127.0.0.1:9001", "127.0.0.1:9001");
    single_error(&spec, "is not a valid URL", 5);
}

#[test]
fn unsupported_openapi_version() {
    let e = single_error(
        &BASE.replace("openapi: 3.0.3", "openapi: 4.0.0"),
        "unsupported OpenAPI version `4.0.0`",
        1,
    );
    assert!(e.help.is_some());
    single_error(
        &BASE.replace("openapi: 3.0.3", "swagger: \"1.2\""),
        "unsupported Swagger version",
        1,
    );
}

#[test]
fn openapi_3_1_is_read_natively_and_needs_paths() {
    let spec = BASE
        .replace("openapi: 3.0.3", "openapi: 3.1.0")
        .replace("schema: { type: integer }", "schema: { type: [integer, \"null\"] }");
    let g = run(&spec).expect("3.1 generates");
    // Nothing is lost in the 3.0 view that types the parameters: no warning about it.
    assert!(g.warnings.is_empty(), "{:#?}", g.warnings);
    assert!(
        g.files["src/params.rs"].contains("pub pet_id: i64"),
        "the type array was read as integer"
    );
    let webhooks_only = "openapi: 3.1.0\ninfo: { title: T, version: \"1\" }\nwebhooks:\n  newPet: {}\n";
    let e = single_error(webhooks_only, "the document has no paths, only 1 webhook(s)", 1);
    assert!(e.help.as_deref().is_some_and(|h| h.contains("requests the API sends")));
    let no_paths = "openapi: 3.1.0\ninfo: { title: T, version: \"1\" }\n";
    single_error(no_paths, "the document has no paths:", 1);
}

/// A 3.1 version of [`BASE`] with a validated request body whose schema is `schema` (YAML flow style).
fn base_3_1_with_body(schema: &str) -> String {
    let mut spec = BASE.replace("openapi: 3.0.3", "openapi: 3.1.0");
    spec.push_str(&format!(
        "  /things:\n    put:\n      operationId: putThing\n      x-gateway:\n        target: {{ upstream: pets }}\n        validate: {{ body: true }}\n      requestBody:\n        content:\n          application/json:\n            schema: {schema}\n      responses: {{ \"200\": {{ description: ok }} }}\n"
    ));
    spec
}

#[test]
fn openapi_3_1_bodies_are_checked_as_json_schema_2020_12() {
    let g = run(&base_3_1_with_body(
        "{ type: object, required: [kind], properties: { kind: { const: cat }, tag: { type: [string, \"null\"] } } }",
    ))
    .expect("generates");
    assert!(g.warnings.is_empty(), "{:#?}", g.warnings);
    let api = &g.files["src/api.rs"];
    assert!(
        api.contains(r#"\"$schema\":\"https://json-schema.org/draft/2020-12/schema\""#),
        "the schema is tagged as 2020-12: {api}"
    );
    assert!(api.contains(r#"\"const\":\"cat\""#), "`const` is kept: {api}");
    // The 3.0 spelling of an exclusive bound is refused in 3.1, at its line.
    let e = single_error(
        &base_3_1_with_body("{ type: integer, minimum: 0, exclusiveMinimum: true }"),
        "`exclusiveMinimum` is the bound itself in OpenAPI 3.1",
        24,
    );
    assert!(e.help.is_some());
}

#[test]
fn openapi_3_1_dialects_path_items_and_nullable() {
    let spec = BASE.replace(
        "openapi: 3.0.3",
        "openapi: 3.1.0\njsonSchemaDialect: \"http://json-schema.org/draft-07/schema#\"",
    );
    let e = single_error(&spec, "is a dialect the gateway cannot check schemas with", 2);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("https://spec.openapis.org/oas/3.1/dialect/base"))
    );
    let spec = BASE.replace(
        "openapi: 3.0.3",
        "openapi: 3.1.0\njsonSchemaDialect: https://spec.openapis.org/oas/3.1/dialect/base",
    );
    assert!(run(&spec).expect("the default dialect is fine").warnings.is_empty());
    // A path item from `components/pathItems`; a problem inside it is shown where it is written.
    let referenced = |target: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{ title: T, version: \"1\" }}\nx-gateway:\n  upstreams:\n    pets: {{ url: \"http://127.0.0.1:9001\" }}\npaths:\n  /pets:\n    $ref: \"#/components/pathItems/Pets\"\ncomponents:\n  pathItems:\n    Pets:\n      get:\n        operationId: listPets\n        x-gateway: {{ target: {{ {target} }} }}\n        responses: {{ \"200\": {{ description: ok }} }}\n"
        )
    };
    let g = run(&referenced("upstream: pets")).expect("a referenced path item generates");
    assert_eq!(g.operations, 1);
    assert!(g.files["src/api.rs"].contains("listPets"));
    single_error(&referenced("upstream: petz"), "upstream `petz` is not defined", 14);
    let dangling = referenced("upstream: pets").replace("pathItems/Pets\"", "pathItems/Petz\"");
    let e = single_error(&dangling, "names nothing in this document", 8);
    assert_eq!(e.help.as_deref(), Some("did you mean `#/components/pathItems/Pets`?"));
    // `nullable` is not a 3.1 keyword: a warning at the first one.
    let spec = BASE
        .replace("openapi: 3.0.3", "openapi: 3.1.0")
        .replace("schema: { type: integer }", "schema: { type: integer, nullable: true }");
    let g = run(&spec).expect("generates");
    assert_eq!(g.warnings.len(), 1, "{:#?}", g.warnings);
    assert!(
        g.warnings[0]
            .message
            .contains("`nullable` is not an OpenAPI 3.1 keyword")
    );
    assert_eq!(g.warnings[0].line(), Some(11));
}

#[test]
fn invalid_yaml_is_an_error_not_a_panic() {
    let errs = errors("openapi: 3.0.3\npaths: [unclosed\n");
    assert!(errs[0].message.contains("not valid YAML"), "{}", errs[0]);
    let errs = errors("{\"openapi\": ");
    assert!(errs[0].message.contains("not valid JSON"), "{}", errs[0]);
}

#[test]
fn no_target_and_no_server() {
    let spec = BASE.replace(
        "      x-gateway:\n        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "",
    );
    let e = single_error(
        &spec,
        "GET /pets/{petId} has no target and the spec has no `servers` URL",
        8,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("--default-upstream")));
    // With a server URL it proxies there, as the implicit upstream `default`.
    let with_server = spec.replace(
        "x-gateway:\n  upstreams:",
        "servers: [{ url: \"https://api.example.com/v2\" }]\nx-gateway:\n  upstreams:",
    );
    let g = run(&with_server).expect("server URL is the implicit upstream");
    assert!(g.files["src/api.rs"].contains("urls: &[\"https://api.example.com/v2\"]"));
}

#[test]
fn target_needs_exactly_one_kind_and_a_valid_mock() {
    let spec = BASE.replace(
        "target: { upstream: pets, path: \"/v1/pets/{petId}\" }",
        "target: { upstream: pets, mock: { status: 200 } }",
    );
    single_error(&spec, "a target has both `upstream` and `mock`", 13);
    let spec = BASE.replace(
        "target: { upstream: pets, path: \"/v1/pets/{petId}\" }",
        "target: { mock: { status: 99 } }",
    );
    single_error(&spec, "status 99 is not an HTTP status code", 13);
    let spec = BASE.replace(
        "target: { upstream: pets, path: \"/v1/pets/{petId}\" }",
        "target: { mock: { headers: { \"bad header\": x } } }",
    );
    single_error(&spec, "`bad header` is not a valid header name", 13);
}

#[test]
fn invalid_openapi_structure_points_at_the_field() {
    let spec = BASE.replace("info: { title: T, version: \"1\" }", "info: { title: T }");
    let errs = errors(&spec);
    assert!(errs[0].message.contains("missing field `version`"), "{}", errs[0]);
    assert_eq!(errs[0].line(), Some(2));
}

#[test]
fn every_error_is_reported_in_one_run() {
    let spec = BASE
        .replace("timeout: 10s", "timeout: soon")
        .replace("target: { upstream: pets,", "target: { upstream: cats,")
        .replace(
            "    get:\n      operationId: getPet",
            "    get:\n      operationId: getPet\n      servers: []\n      security: [{ nokey: [] }]",
        );
    // The bad duration stops the extension from being read; the rest is still checked.
    let errs = errors(&spec);
    assert!(errs.len() >= 2, "{errs:#?}");
    assert!(errs.iter().any(|e| e.message.contains("invalid duration `soon`")));
    assert!(errs.iter().any(|e| e.message.contains("nokey")), "{errs:#?}");
}

#[test]
fn warnings_do_not_stop_generation() {
    let spec = BASE.replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }",
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n        - { name: limit, in: query, schema: { type: integer, default: ten } }",
    );
    let g = run(&spec).expect("a bad default is a warning");
    let w = g
        .warnings
        .iter()
        .find(|w| w.message.contains("default `\"ten\"`"))
        .expect("warned");
    assert_eq!(w.severity, Severity::Warning);
}

#[test]
fn output_is_deterministic() {
    let a = run(BASE).expect("generates");
    let b = run(BASE).expect("generates");
    assert_eq!(a.files, b.files);
    // Every file but the published spec, which is data read by `include_str!` (a header would not be JSON).
    for (path, text) in a.files.iter().filter(|(path, _)| !path.ends_with(".json")) {
        assert!(
            text.contains("@generated by gateway-codegen from `specs/t.yaml`"),
            "{path} lacks the header"
        );
    }
}

/// BASE with a cache on `getPet` (the `x-gateway` of the operation is on line 12).
fn cached(cache: &str) -> String {
    BASE.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        &format!("        target: {{ upstream: pets, path: \"/v1/pets/{{petId}}\" }}\n        cache: {cache}\n"),
    )
}

#[test]
fn cache_key_must_name_declared_parameters() {
    let spec = cached("{ ttl: 60s, key: [query.fields] }");
    let e = single_error(
        &spec,
        "cache key `query.fields` names no declared query parameter of GET /pets/{petId}",
        14,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("declare `fields`")));
    let spec = cached("{ ttl: 60s, key: [\"header.X-Tenant\"] }");
    single_error(&spec, "names no declared header parameter", 14);
    let spec = cached("{ ttl: 60s, key: [fields] }");
    single_error(&spec, "cache key `fields` is not a request value", 14);
    // A declared one is fine, and header names are case-insensitive.
    let spec = cached("{ ttl: 60s, key: [query.limit, header.x-tenant] }").replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n        - { name: limit, in: query, schema: { type: integer } }\n        - { name: X-Tenant, in: header, schema: { type: string } }\n",
    );
    let g = run(&spec).expect("declared key parameters");
    assert!(g.files["src/api.rs"].contains("CacheKeyPart::Header(\"x-tenant\")"));
}

#[test]
fn a_cached_operation_that_needs_an_identity_must_key_on_it() {
    let secured = |cache: &str| {
        cached(cache).replace(
            "      operationId: getPet\n",
            "      operationId: getPet\n      security: [ { apiKey: [] } ]\n",
        ) + "components:\n  securitySchemes:\n    apiKey: { type: apiKey, in: header, name: x-api-key }\n"
    };
    let e = single_error(&secured("{ ttl: 60s }"), "requires a caller identity", 15);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("context.api_key") && h.contains("shared: true"))
    );
    run(&secured("{ ttl: 60s, key: [context.api_key] }")).expect("keyed on the caller");
    run(&secured("{ ttl: 60s, shared: true }")).expect("declared shared");
    run(&secured("{ ttl: 0s }")).expect("not cached at all");
}

/// A cache-safety rule satisfied by a key part that is not filled for every admitted caller shares one entry
/// between those callers: a JWT claim on an operation some callers reach with an API key, or `context.api_key` on
/// one whose callers use tokens.
#[test]
fn a_cache_key_part_that_is_not_always_filled_is_not_an_identity() {
    let secured = |security: &str, cache: &str| {
        cached(cache).replace(
            "      operationId: getPet\n",
            &format!("      operationId: getPet\n      security: {security}\n"),
        ) + "components:\n  securitySchemes:\n    apiKey: { type: apiKey, in: header, name: x-api-key }\n    bearer: { type: http, scheme: bearer, x-gateway: { jwks_url: \"https://id.example.com/jwks\" } }\n"
    };
    let e = single_error(
        &secured("[ { apiKey: [] } ]", "{ ttl: 60s, key: [jwt.claims.sub] }"),
        "the cache key part `jwt.claims.…` is not filled for every caller",
        15,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("bearer")));
    single_error(
        &secured("[ { bearer: [] } ]", "{ ttl: 60s, key: [context.api_key] }"),
        "the cache key part `context.api_key` is not filled for every caller",
        15,
    );
    single_error(
        &secured(
            "[ { bearer: [] }, { apiKey: [] } ]",
            "{ ttl: 60s, key: [jwt.claims.sub] }",
        ),
        "`jwt.claims.…` is not filled",
        15,
    );
    let g = run(&secured("[ { bearer: [] } ]", "{ ttl: 60s, key: [jwt.claims.sub] }")).expect("keyed on the subject");
    assert!(g.files["src/api.rs"].contains("CacheKeyPart::JwtClaim(\"sub\")"));
    run(&secured(
        "[ { bearer: [], apiKey: [] } ]",
        "{ ttl: 60s, key: [context.api_key] }",
    ))
    .expect("a key in every alternative");
}

/// `BASE` with `text` added to the top-level `x-gateway` (two-space indented lines after `x-gateway:`).
fn with_root(text: &str) -> String {
    BASE.replace("x-gateway:\n  upstreams:", &format!("x-gateway:\n{text}  upstreams:"))
}

#[test]
fn gateway_responses_name_known_kinds_and_placeholders() {
    let e = single_error(
        &with_root("  responses:\n    THROTLED: { status: 429 }\n"),
        "`THROTLED` is not a gateway response kind",
        5,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `THROTTLED`?"));
    let e = single_error(
        &with_root("  responses:\n    NOT_FOUND:\n      body: { error: \"{error.titel}\" }\n"),
        "`{error.titel}` is not a value a gateway response can hold",
        6,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `{error.title}`?"));
    single_error(
        &with_root("  responses:\n    NOT_FOUND:\n      headers: { X-Id: \"{query.id}\" }\n"),
        "`{query.id}` is not a value a gateway response can hold",
        6,
    );
    single_error(
        &with_root("  responses:\n    NOT_FOUND: { status: 99 }\n"),
        "99 is not a status",
        5,
    );
    single_error(
        &with_root("  responses:\n    NOT_FOUND: { headers: { \"bad name\": x } }\n"),
        "`bad name` is not a valid header name",
        5,
    );
    single_error(
        &with_root("  responses:\n    NOT_FOUND: { content_type: text/plain }\n"),
        "`content_type` describes a `body`",
        5,
    );
    let g = run(&with_root(
        "  responses:\n    DEFAULT_4XX: { body: { e: \"{error.kind}\", s: \"{error.status}\", id: \"{context.request_id}\" } }\n",
    ))
    .expect("valid responses");
    let api = &g.files["src/api.rs"];
    assert!(api.contains("ResponseSelector::Default4xx"), "{api}");
    assert!(
        api.contains("TemplatePart::JsonString(Placeholder::ErrorKind)"),
        "{api}"
    );
    assert!(api.contains("TemplatePart::Value(Placeholder::ErrorStatus)"), "{api}");
}

#[test]
fn operation_responses_override_their_path_items_kind_by_kind() {
    let spec = BASE
        .replace(
            "  /pets/{petId}:\n",
            "  /pets/{petId}:\n    x-gateway:\n      responses:\n        NOT_FOUND: { status: 410 }\n        THROTTLED: { status: 503 }\n",
        )
        .replace(
            "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
            "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n        responses: { THROTTLED: { status: 429 } }\n",
        );
    let g = run(&spec).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(
        api.contains("status: Some(410)") && api.contains("status: Some(429)"),
        "{api}"
    );
    assert!(
        !api.contains("status: Some(503)"),
        "the operation's THROTTLED wins: {api}"
    );
}

#[test]
fn hosts_are_host_names() {
    single_error(
        &with_root("  hosts: [\"https://api.example.com/\"]\n"),
        "is not a host name",
        4,
    );
    single_error(&with_root("  hosts: []\n"), "`hosts` is empty", 4);
    let g = run(&with_root("  hosts: [API.example.com, \"localhost:8080\"]\n")).expect("valid");
    assert!(g.files["src/api.rs"].contains("hosts: &[\"api.example.com\", \"localhost:8080\"]"));
}

#[test]
fn api_keys_are_stripped_unless_the_scheme_forwards_them() {
    let secured = |ext: &str| {
        BASE.replace(
            "      operationId: getPet\n",
            "      operationId: getPet\n      security: [ { apiKey: [] } ]\n",
        ) + &format!(
            "components:\n  securitySchemes:\n    apiKey: {{ type: apiKey, in: header, name: x-api-key{ext} }}\n"
        )
    };
    assert!(run(&secured("")).expect("valid").files["src/api.rs"].contains("forward: false"));
    let g = run(&secured(", x-gateway: { forward_credentials: true }")).expect("valid");
    assert!(g.files["src/api.rs"].contains("forward: true"));
    let e = single_error(
        &secured(", x-gateway: { forward: true }"),
        "invalid `x-gateway` on security scheme `apiKey`",
        18,
    );
    assert!(e.message.contains("unknown field `forward`"), "{e}");
}

#[test]
fn cache_sizes_are_api_wide_and_well_formed() {
    single_error(
        &cached("{ ttl: 60s, capacity: 1MiB }"),
        "`cache.capacity` is API-wide",
        14,
    );
    let spec = BASE.replace(
        "x-gateway:\n  upstreams:",
        "x-gateway:\n  cache: { capacity: 64 }\n  upstreams:",
    );
    single_error(&spec, "invalid size `64`", 4);
    single_error(
        &cached("{ ttl: 60s, statuses: [200, 99] }"),
        "99 is not an HTTP status code",
        14,
    );
    single_error(
        &cached("{ ttl: 60s, invalidate: everyone }"),
        "unknown variant `everyone`",
        14,
    );
}

#[test]
fn security_schemes_plans_and_throttles_must_be_defined_and_sane() {
    let secured = |security: &str| {
        BASE.replace(
            "      operationId: getPet\n",
            &format!("      operationId: getPet\n      security: {security}\n"),
        ) + "components:\n  securitySchemes:\n    apiKey: { type: apiKey, in: header, name: x-api-key }\n"
    };
    let e = single_error(
        &secured("[ { apiKee: [] } ]"),
        "security scheme `apiKee` is not defined",
        10,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `apiKey`?"));
    let g = run(&secured("[ { apiKey: [] } ]")).expect("a defined scheme");
    assert!(g.files["src/api.rs"].contains("KeyLocation::Header"));

    let plans = BASE.replace(
        "x-gateway:\n  upstreams:",
        "x-gateway:\n  usage_plans:\n    free: { throttle: { rate: 5, burst: 10 }, quota: { limit: 100, period: day } }\n  upstreams:",
    );
    run(&plans).expect("plans are valid");
    let restricted = plans.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n        plans: [fre]\n",
    );
    let e = single_error(&restricted, "usage plan `fre` is not defined", 16);
    assert_eq!(e.help.as_deref(), Some("did you mean `free`?"));
    single_error(
        &plans.replace("period: day", "period: fortnight"),
        "unknown variant `fortnight`",
        5,
    );
    single_error(
        &plans.replace("rate: 5, burst: 10 }", "rate: 5, burst: 10, per: ip }"),
        "a usage plan's throttle is per API key already",
        5,
    );
    let throttled = BASE.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n        throttle: { rate: 0 }\n",
    );
    single_error(&throttled, "`rate` must be at least 1", 14);
    single_error(
        &throttled.replace("rate: 0", "rate: 5, burts: 9"),
        "unknown key `burts`",
        14,
    );
}

/// BASE with one more query parameter of `schema` (on line 12).
fn with_query_param(schema: &str) -> String {
    BASE.replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
        &format!(
            "        - {{ name: petId, in: path, required: true, schema: {{ type: integer }} }}\n        - {{ name: scale, in: query, schema: {schema} }}\n"
        ),
    )
}

#[test]
fn a_default_the_rust_type_cannot_hold_is_ignored_with_a_located_warning() {
    let cases = [
        ("{ type: number, format: float, default: 1e300 }", "`1e+300`", "`f32`"),
        ("{ type: number, format: float, default: -1e39 }", "`-1e+39`", "`f32`"),
        (
            "{ type: integer, format: int32, default: 3000000000 }",
            "`3000000000`",
            "`i32`",
        ),
        (
            "{ type: integer, format: int32, default: -2147483649 }",
            "`-2147483649`",
            "`i32`",
        ),
        (
            "{ type: integer, default: 9223372036854775808 }",
            "`9223372036854775808`",
            "`i64`",
        ),
        ("{ type: integer, default: 1e300 }", "`1e+300`", "`i64`"),
    ];
    for (schema, value, ty) in cases {
        let e = warning_at(
            &with_query_param(schema),
            &format!("default {value} of parameter `scale` is out of range for {ty}"),
            12,
        );
        assert!(e.pointer.ends_with("/parameters/1/schema/default"), "{e}");
        assert!(e.help.is_some(), "{e}");
    }
    let e = warning_at(
        &with_query_param("{ type: string, format: uuid, default: not-a-uuid }"),
        "default `\"not-a-uuid\"` of parameter `scale` is not a UUID",
        12,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("8-4-4-4-12")), "{e}");
    let e = warning_at(
        &with_query_param("{ type: string, enum: [small, large], default: medium }"),
        "default `\"medium\"` of parameter `scale` is not one of the values of its `enum`; ignored",
        12,
    );
    assert_eq!(
        e.help.as_deref(),
        Some("the default must be one of the enum's values: `small`, `large`")
    );
}

#[test]
fn a_default_in_a_referenced_schema_is_reported_at_the_schema() {
    let spec = with_query_param("{ $ref: \"#/components/schemas/Scale\" }")
        + "components:\n  schemas:\n    Scale: { type: number, format: float, default: 1e300 }\n";
    let e = warning_at(&spec, "out of range for `f32`", 18);
    assert_eq!(e.pointer, "/components/schemas/Scale/default");
}

#[test]
fn defaults_at_the_edges_of_their_types_are_written_exactly() {
    let cases = [
        (
            "{ type: number, format: float, default: 3.4e38 }",
            ".unwrap_or(340000000000000000000000000000000000000f32)",
        ),
        ("{ type: number, default: 1e300 }", "000000000000f64,"),
        (
            "{ type: integer, format: int32, default: -2147483648 }",
            ".unwrap_or(-2147483648i32)",
        ),
        (
            "{ type: integer, default: -9223372036854775808 }",
            ".unwrap_or(-9223372036854775808i64)",
        ),
        ("{ type: integer, default: 100.0 }", ".unwrap_or(100i64)"),
        (
            "{ type: string, format: uuid, default: 123e4567-e89b-12d3-a456-426614174000 }",
            "Uuid::from_u128(",
        ),
        (
            "{ type: string, enum: [small, large], default: large }",
            ".unwrap_or(GetPetScale::Large)",
        ),
    ];
    for (schema, written) in cases {
        let g = run(&with_query_param(schema)).unwrap_or_else(|d| panic!("{schema}: {d:#?}"));
        let params = &g.files["src/params.rs"];
        assert!(params.contains(written), "{schema}: expected {written} in\n{params}");
    }
    // A default of another kind is still only a warning: the parameter works without it.
    let g = run(&with_query_param("{ type: integer, default: 1.5 }")).expect("a fractional default is ignored");
    assert!(g.warnings.iter().any(|w| w.message.contains("does not fit its type")));
}

#[test]
fn colliding_parameter_names_get_snake_case_fields_and_camel_case_types() {
    let spec = BASE
        .replace("operationId: getPet", "operationId: self")
        .replace(
            "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
            "        - { name: petId, in: path, required: true, schema: { type: integer } }\n        - { name: self, in: query, schema: { type: string, enum: [self, Self, éclair] } }\n        - { name: Self, in: header, schema: { type: string } }\n        - { name: SELF, in: cookie, schema: { type: string } }\n",
        );
    let g = run(&spec).expect("generates");
    let params = &g.files["src/params.rs"];
    for expected in [
        "pub struct SelfValueParams",
        "pub self_: ::core::option::Option<SelfValueSelfValue>",
        "pub self_2: ",
        "pub self_3: ",
        "SelfValue,",
        "SelfValue2,",
        "Clair,",
    ] {
        assert!(params.contains(expected), "expected {expected:?} in\n{params}");
    }
    assert!(!params.contains("__"), "{params}");
}

#[test]
fn missing_responses_are_repaired_with_a_warning_naming_the_operation() {
    let spec = BASE.replace("      responses: { \"200\": { description: ok } }\n", "")
        + "  /cats:\n    post:\n      responses:\n      x-gateway: { target: { upstream: pets } }\n";
    let g = run(&spec).expect("missing responses are repaired");
    assert_eq!(g.operations, 2);
    let missing = g
        .warnings
        .iter()
        .find(|w| w.message.contains("GET /pets/{petId} has no `responses`"))
        .expect("warned about the GET");
    assert_eq!(missing.severity, Severity::Warning);
    assert_eq!(missing.pointer, "/paths/~1pets~1{petId}/get");
    assert_eq!(missing.line(), Some(8));
    assert!(missing.help.as_deref().is_some_and(|h| h.contains("responses:")));
    let empty = g
        .warnings
        .iter()
        .find(|w| w.message.contains("POST /cats has an empty `responses`"))
        .expect("warned about the POST");
    assert_eq!(empty.line(), Some(15));
}

#[test]
fn a_type_error_inside_an_operation_points_at_the_operation_and_the_field() {
    // Line 9 is `operationId: getPet`; each case replaces it with a field of the wrong shape.
    let cases = [
        (
            "      summary: [a, list]\n",
            "/paths/~1pets~1{petId}/get/summary",
            "invalid `summary`: invalid type: sequence, expected a string",
        ),
        (
            "      deprecated: maybe\n",
            "/paths/~1pets~1{petId}/get/deprecated",
            "invalid `deprecated`",
        ),
        (
            "      operationId: { a: b }\n",
            "/paths/~1pets~1{petId}/get/operationId",
            "invalid `operationId`: invalid type: map, expected a string",
        ),
    ];
    for (field, pointer, message) in cases {
        let spec = BASE.replace("      operationId: getPet\n", field);
        let e = single_error(&spec, message, 9);
        assert_eq!(e.pointer, pointer);
    }
    // A parameter written wrongly: the error is at the parameter's own key.
    let spec = BASE.replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
        "        - { name: 1x, in: nowhere }\n",
    );
    let e = single_error(&spec, "invalid `in`: unknown variant `nowhere`", 11);
    assert_eq!(e.pointer, "/paths/~1pets~1{petId}/get/parameters/0/in");
    let spec = BASE.replace("required: true, schema", "required: yes-please, schema");
    let e = single_error(&spec, "invalid `required`", 11);
    assert_eq!(e.pointer, "/paths/~1pets~1{petId}/get/parameters/0/required");
    let spec = BASE.replace("{ name: petId, in: path,", "{ in: path,");
    let e = single_error(&spec, "missing field `name`", 11);
    assert_eq!(e.pointer, "/paths/~1pets~1{petId}/get/parameters/0");
    // In a response and in a path item's own fields.
    let spec = BASE.replace("{ description: ok }", "{ description: [ok] }");
    let e = single_error(&spec, "invalid `description`", 14);
    assert_eq!(e.pointer, "/paths/~1pets~1{petId}/get/responses/200/description");
    let spec = BASE.replace("  /pets/{petId}:\n", "  /pets/{petId}:\n    servers: { url: x }\n");
    let e = single_error(&spec, "invalid `servers`", 8);
    assert_eq!(e.pointer, "/paths/~1pets~1{petId}/servers");
}

#[test]
fn an_invalid_component_parameter_points_at_its_field() {
    let spec = BASE.replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
        "        - $ref: \"#/components/parameters/PetId\"\n",
    ) + "components:\n  parameters:\n    PetId:\n      name: petId\n      in: path\n      required: [true]\n";
    let e = single_error(
        &spec,
        "invalid `required`: invalid type: sequence, expected a boolean",
        20,
    );
    assert_eq!(e.pointer, "/components/parameters/PetId/required");
}

#[test]
fn errors_about_the_whole_document_point_at_its_first_line() {
    let e = single_error(
        "# A spec without its version.\n\ninfo: { title: T, version: \"1\" }\npaths: {}\n",
        "the document has no `openapi` version field",
        3,
    );
    assert_eq!(e.pointer, "");
    single_error("openapi: 3.0.3\npaths: {}\n", "missing field `info`", 1);
    single_error("[1, 2]\n", "the spec is not an object at its top level", 1);
}

/// rustc refuses a bidirectional override in a comment, and a carriage return ends nothing well: spec text that
/// lands in generated doc comments (the title) is escaped.
#[test]
fn spec_text_in_generated_comments_cannot_break_the_crate() {
    let spec = BASE.replace(
        "info: { title: T, version: \"1\" }",
        "info: { title: \"T\\u202e\\rX\", version: \"1\\u2066\" }",
    );
    let g = run(&spec).expect("valid");
    // Cargo.toml may hold them: TOML strings take any character, and the serializer escapes control characters.
    for (file, text) in g.files.iter().filter(|(f, _)| f.ends_with(".rs")) {
        assert!(
            !text.contains(['\u{202e}', '\u{2066}', '\r']),
            "{file} holds a raw control or bidi character"
        );
    }
    assert!(
        g.files["src/main.rs"].contains("\\u{202e}"),
        "{}",
        g.files["src/main.rs"]
    );
}

/// BASE with `x-gateway` of getPet replaced by `ext` (indented as the operation's `x-gateway` value).
fn with_op_ext(ext: &str) -> String {
    BASE.replace(
        "      x-gateway:\n        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        &format!("      x-gateway:\n        target: {{ upstream: pets, path: \"/v1/pets/{{petId}}\" }}\n{ext}"),
    )
}

#[test]
fn a_jq_syntax_error_is_reported_inside_the_filter() {
    // Line 16 holds the filter; the error is inside it, past the key.
    let spec = with_op_ext("        transform:\n          response:\n            body: '{id: .id, name: .name'\n");
    let e = single_error(&spec, "jq filter", 16);
    let column = e.location.map(|l| l.column);
    assert!(
        column.is_some_and(|c| c > 19),
        "the column points inside the filter, not at the key: {e}"
    );
}

#[test]
fn an_undefined_jq_function_is_an_error_with_a_suggestion() {
    let spec = with_op_ext("        transform:\n          request:\n            body: '.tags | lenght'\n");
    let e = single_error(&spec, "lenght", 16);
    assert!(e.to_string().contains("length"), "{e}");
}

#[test]
fn an_undeclared_placeholder_is_an_error_with_did_you_mean() {
    let spec = with_op_ext(
        "        transform:\n          request:\n            headers: { set: { X-Pet: \"{path.petid}\" } }\n",
    );
    let e = single_error(&spec, "`{path.petid}`", 16);
    assert_eq!(e.help.as_deref(), Some("did you mean `{path.petId}`?"));
    let spec =
        with_op_ext("        transform:\n          request:\n            query: { set: { q: \"{query.limit}\" } }\n");
    let e = single_error(&spec, "query parameter `limit`", 16);
    assert!(e.help.as_deref().is_some_and(|h| h.contains("in: query")), "{e}");
}

#[test]
fn a_transform_may_not_touch_headers_the_gateway_manages() {
    let spec =
        with_op_ext("        transform:\n          response:\n            headers: { remove: [Content-Length] }\n");
    single_error(&spec, "managed by the gateway", 16);
}

#[test]
fn a_status_map_must_map_statuses() {
    let spec = with_op_ext("        transform:\n          response:\n            status: { nope: 410 }\n");
    single_error(&spec, "does not map a status", 16);
}

#[test]
fn a_response_sample_must_be_a_share() {
    let spec = with_op_ext("        validate: { responses: report, responses_sample: 2 }\n");
    single_error(&spec, "responses_sample", 14);
}

#[test]
fn a_validated_body_with_a_dangling_schema_ref_is_an_error() {
    let spec = BASE.replace(
        "      responses: { \"200\": { description: ok } }\n",
        "      requestBody:\n        content:\n          application/json:\n            schema: { $ref: \"#/components/schemas/Nope\" }\n      responses: { \"200\": { description: ok } }\n",
    );
    let spec = spec.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n        validate: { body: true }\n",
    );
    let errs = errors(&spec);
    assert!(
        errs.iter().any(|e| e.message.contains("Nope")),
        "expected the dangling reference to be named: {errs:#?}"
    );
}

#[test]
fn a_cached_operation_filling_a_response_header_from_the_request_is_warned_about() {
    let spec = with_op_ext(
        "        cache: { ttl: 30s }\n        transform:\n          response:\n            headers: { set: { X-Id: \"{context.request_id}\", X-Pet: \"{path.petId}\" } }\n",
    );
    let g = run(&spec).expect("a warning, not an error");
    let warned: Vec<&str> = g
        .warnings
        .iter()
        .filter(|w| w.message.contains("cache hits repeat"))
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(warned.len(), 1, "only X-Id reads the request: {warned:?}");
    assert!(warned[0].contains("x-id"), "{warned:?}");
}

/// `BASE` with `getPet` secured by `security` and `schemes` (four-space indented entries) under
/// `components.securitySchemes`. `getPet`'s `security:` is line 10; the first scheme line is 20.
fn with_schemes(security: &str, schemes: &str) -> String {
    BASE.replace(
        "      operationId: getPet\n",
        &format!("      operationId: getPet\n      security: {security}\n"),
    ) + "components:\n  securitySchemes:\n"
        + schemes
}

#[test]
fn bearer_and_oidc_schemes_need_a_verification_source() {
    let e = single_error(
        &with_schemes(
            "[ { bearer: [] } ]",
            "    bearer:\n      type: http\n      scheme: bearer\n      x-gateway: { issuer: https://id.example.com/ }\n",
        ),
        "bearer scheme `bearer` has no verification source",
        21,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("jwks_url")));
    single_error(
        &with_schemes(
            "[ { bearer: [] } ]",
            "    bearer:\n      type: http\n      scheme: bearer\n      x-gateway: { jwks_url: https://a/jwks, secret_env: S }\n",
        ),
        "has jwks_url and secret_env verification sources",
        21,
    );
    // Without any x-gateway, a bearer scheme is presence-checked for the upstream to verify, with a warning.
    let g = run(&with_schemes(
        "[ { bearer: [] } ]",
        "    bearer: { type: http, scheme: bearer }\n",
    ))
    .expect("valid");
    assert!(
        g.warnings
            .iter()
            .any(|w| w.message.contains("only requires that the credential be presented"))
    );
    assert!(has(
        &g.files["src/api.rs"],
        "SchemeKind::Presented(PresentedSpec { auth_scheme: \"Bearer\" })"
    ));
    assert!(g.files["ACCESS.md"].contains("must be presented, and is forwarded for the upstream to verify"));
    let explicit = run(&with_schemes(
        "[ { bearer: [] } ]",
        "    bearer: { type: http, scheme: bearer, x-gateway: { upstream_verifies: true } }\n",
    ))
    .expect("valid");
    assert!(
        explicit.warnings.iter().all(|w| !w.message.contains("presented")),
        "said explicitly: no warning"
    );
    // OpenID Connect discovery is a source of its own.
    let g = run(&with_schemes(
        "[ { oidc: [] } ]",
        "    oidc: { type: openIdConnect, openIdConnectUrl: \"https://id.example.com/.well-known/openid-configuration\" }\n",
    ))
    .expect("valid");
    assert!(has(
        &g.files["src/api.rs"],
        "JwtKeys::Discovery(\"https://id.example.com/.well-known/openid-configuration\")"
    ));
    single_error(
        &with_schemes(
            "[ { oidc: [] } ]",
            "    oidc: { type: openIdConnect, openIdConnectUrl: not-a-url }\n",
        ),
        "`not-a-url` is not an absolute http(s) URL",
        18,
    );
}

#[test]
fn jwt_algorithms_are_known_and_fit_the_key_source() {
    let scheme = |ext: &str| {
        with_schemes(
            "[ { bearer: [] } ]",
            &format!("    bearer:\n      type: http\n      scheme: bearer\n      x-gateway: {{ {ext} }}\n"),
        )
    };
    let e = single_error(
        &scheme("jwks_url: https://a/jwks, algorithms: [RS265]"),
        "unknown JWT algorithm `RS265`",
        21,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `RS256`?"));
    single_error(
        &scheme("jwks_url: https://a/jwks, algorithms: [none]"),
        "`none` means unsigned tokens",
        21,
    );
    single_error(
        &scheme("jwks_url: https://a/jwks, algorithms: [HS256]"),
        "`HS256` is an HMAC algorithm: it needs `secret_env`",
        21,
    );
    single_error(
        &scheme("secret_env: JWT_SECRET, algorithms: [RS256]"),
        "`RS256` verifies with a public key",
        21,
    );
    single_error(
        &scheme("secret_env: \"jwt secret\""),
        "is not an environment variable name",
        21,
    );
    let g = run(&scheme("secret_env: JWT_SECRET")).expect("HS256 by default with a secret");
    assert!(has(&g.files["src/api.rs"], "JwtAlgorithm::Hs256"));
    assert!(has(&g.files["src/api.rs"], "JwtKeys::SecretEnv(\"JWT_SECRET\")"));
    let g = run(&scheme(
        "jwks_url: https://a/jwks, algorithms: [RS256, ES256, EdDSA], audience: [a, b], leeway: 30s",
    ))
    .expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(
        has(
            api,
            "algorithms: &[JwtAlgorithm::Rs256, JwtAlgorithm::Es256, JwtAlgorithm::EdDsa]"
        ),
        "{api}"
    );
    assert!(has(api, "audiences: &[\"a\", \"b\"]"));
    assert!(has(api, "leeway: Duration::from_millis(30000)"));
}

#[test]
fn a_jwks_file_is_read_checked_and_built_in() {
    let dir = std::env::temp_dir().join(format!("codegen-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec_path = dir.join("t.yaml");
    let run_in = |jwks: Option<&str>| {
        if let Some(text) = jwks {
            std::fs::write(dir.join("jwks.json"), text).expect("jwks");
        } else {
            let _ = std::fs::remove_file(dir.join("jwks.json"));
        }
        let spec = with_schemes(
            "[ { bearer: [] } ]",
            "    bearer:\n      type: http\n      scheme: bearer\n      x-gateway: { jwks_file: jwks.json }\n",
        );
        generate(
            SpecInput {
                file: spec_path.to_str().expect("utf-8 path"),
                text: &spec,
                dir: None,
                overlays: &[],
            },
            &Options::default(),
        )
    };
    let refused = |jwks: Option<&str>, message: &str| match run_in(jwks) {
        Err(GenerateError::Spec { diagnostics, .. }) => {
            let e = diagnostics
                .iter()
                .find(|d| d.severity == Severity::Error)
                .expect("an error");
            assert!(e.message.contains(message), "{e}");
            assert_eq!(e.line(), Some(21), "{e}");
        }
        other => panic!("expected a refusal with {message:?}, got {other:?}"),
    };
    refused(None, "cannot read the JWKS file");
    refused(Some("{"), "not JSON");
    refused(Some(r#"{"keys": [{"kty": "RSA", "n": "AQAB"}]}"#), "has no `e`");
    refused(
        Some(r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}"#),
        "none of its keys can verify",
    );
    refused(
        Some(r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "secret"}]}"#),
        "holds a private key",
    );
    let generated = run_in(Some(
        r#"{ "keys": [ { "kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB" } ] }"#,
    ))
    .expect("a usable JWKS");
    assert!(has(
        &generated.files["src/api.rs"],
        r#"JwtKeys::Jwks("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}")"#
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scopes_belong_to_token_schemes() {
    let e = single_error(
        &with_schemes(
            "[ { apiKey: [admin] } ]",
            "    apiKey: { type: apiKey, in: header, name: x-api-key }\n",
        ),
        "security scheme `apiKey` is checked by API key, which has no scopes",
        10,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("apiKey: []")));
    let g = run(&with_schemes(
        "[ { bearer: [pets:read, pets:write] } ]",
        "    bearer: { type: http, scheme: bearer, x-gateway: { jwks_url: \"https://a/jwks\" } }\n",
    ))
    .expect("scopes on a bearer scheme");
    assert!(has(&g.files["src/api.rs"], "scopes: &[\"pets:read\", \"pets:write\"]"));
    // An OAuth 2 scheme the gateway cannot verify keeps its scopes for the upstream: not an error.
    let oauth = with_schemes(
        "[ { petstore_auth: [\"write:pets\"] } ]",
        "    petstore_auth:\n      type: oauth2\n      flows: { implicit: { authorizationUrl: \"https://id.example.com/auth\", scopes: { \"write:pets\": w } } }\n",
    );
    let g = run(&oauth).expect("presence-checked, scopes left to the upstream");
    assert!(has(
        &g.files["src/api.rs"],
        "SchemeKind::Presented(PresentedSpec { auth_scheme: \"Bearer\" })"
    ));
}

#[test]
fn jwt_keys_do_not_go_on_api_keys_and_authorizers_need_an_upstream() {
    single_error(
        &with_schemes(
            "[ { apiKey: [] } ]",
            "    apiKey: { type: apiKey, in: header, name: x-api-key, x-gateway: { issuer: x } }\n",
        ),
        "`issuer` configures JWT verification, which an `apiKey` scheme does not do",
        18,
    );
    let authorizer = |ext: &str| {
        with_schemes(
            "[ { partner: [] } ]",
            &format!(
                "    partner:\n      type: apiKey\n      in: header\n      name: X-Partner\n      x-gateway:\n        authorizer: {{ {ext} }}\n"
            ),
        )
    };
    let e = single_error(
        &authorizer("upstream: petz, path: /check"),
        "upstream `petz` is not defined",
        23,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `pets`?"));
    single_error(&authorizer("upstream: pets, path: check"), "`check` is not a path", 23);
    single_error(
        &authorizer("upstream: pets, forward_headers: [Host]"),
        "`Host` cannot carry a verified value",
        23,
    );
    let g = run(&authorizer(
        "upstream: pets, path: /check, cache: { ttl: 60s }, forward_headers: [X-Partner-Id]",
    ))
    .expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(has(api, "SchemeKind::Authorizer(AuthorizerSpec"), "{api}");
    assert!(has(api, "forward_headers: &[\"x-partner-id\"]"));
    assert!(has(api, "cache_ttl: Duration::from_millis(60000)"));
}

#[test]
fn auth_required_refuses_operations_without_security() {
    let spec = with_root("  auth_required: true\n");
    let e = single_error(
        &spec,
        "GET /pets/{petId} has no security requirement, and `auth_required` is on",
        9,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("security: []")));
    let public = spec.replace(
        "      operationId: getPet\n",
        "      operationId: getPet\n      security: []\n",
    );
    let g = run(&public).expect("public on purpose");
    assert!(g.files["ACCESS.md"].contains("| GET | `/pets/{petId}` | `getPet` | anyone (`security: []`) | off |"));
    let unchecked = with_schemes("[ { basic: [] } ]", "    basic: { type: http, scheme: basic }\n").replace(
        "x-gateway:\n  upstreams:",
        "x-gateway:\n  auth_required: true\n  upstreams:",
    );
    single_error(&unchecked, "accepts a security scheme the gateway cannot verify", 11);
    // Said explicitly, it satisfies `auth_required`; and with another scheme in the requirement it is checked anyway.
    run(&unchecked.replace(
        "scheme: basic }",
        "scheme: basic, x-gateway: { upstream_verifies: true } }",
    ))
    .expect("explicit");
    let both = with_schemes(
        "[ { apiKey: [], basic: [] } ]",
        "    apiKey: { type: apiKey, in: header, name: x-api-key }\n    basic: { type: http, scheme: basic }\n",
    )
    .replace(
        "x-gateway:\n  upstreams:",
        "x-gateway:\n  auth_required: true\n  upstreams:",
    );
    let g = run(&both).expect("the key is checked, the basic credential required");
    assert!(has(
        &g.files["src/api.rs"],
        "security: &[&[Requirement { scheme: 0, scopes: &[] }, Requirement { scheme: 1, scopes: &[] }]]"
    ));
}

#[test]
fn openapi_security_keeps_its_or_and_semantics() {
    let spec = with_schemes(
        "[ { apiKey: [], bearer: [write] }, { partner: [] } ]",
        "    apiKey: { type: apiKey, in: header, name: x-api-key }\n    bearer: { type: http, scheme: bearer, x-gateway: { jwks_url: \"https://a/jwks\" } }\n    partner: { type: apiKey, in: header, name: x-partner, x-gateway: { authorizer: { upstream: pets } } }\n",
    );
    let g = run(&spec).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(
        has(
            api,
            "security: &[&[Requirement { scheme: 0, scopes: &[] }, Requirement { scheme: 1, scopes: &[\"write\"] }], &[Requirement { scheme: 2, scopes: &[] }]]"
        ),
        "{api}"
    );
    assert!(g.files["ACCESS.md"].contains("`apiKey` and `bearer` with `write` or `partner`"));
}

#[test]
fn cors_policies_are_checked() {
    let cors = |text: &str| with_root(&format!("  cors: {text}\n"));
    single_error(
        &cors("{ allow_origins: [\"*\"], allow_credentials: true }"),
        "`*` cannot be combined with `allow_credentials: true`",
        4,
    );
    single_error(
        &cors("{ allow_origins: [app.example.com] }"),
        "`app.example.com` is not an origin",
        4,
    );
    single_error(&cors("{ allow_origins: [\"https://*.com\"] }"), "is not an origin", 4);
    single_error(
        &cors("{ allow_headers: [x] }"),
        "a CORS policy needs `allow_origins`",
        4,
    );
    single_error(
        &cors("{ allow_origins: [\"https://a.example\"], allow_headers: [\"*\"], allow_credentials: true }"),
        "`*` means any header only without credentials",
        4,
    );
    let g = run(&cors("{ allow_origins: [\"https://App.example\", \"https://*.example.org\"], allow_headers: [Authorization], max_age: 10m }")).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(has(api, "OriginSpec::Exact(\"https://app.example\")"), "{api}");
    assert!(has(
        api,
        "OriginSpec::Wildcard { prefix: \"https://\", suffix: \".example.org\" }"
    ));
    assert!(has(api, "allow_headers: &[\"authorization\"]"));
    assert!(has(api, "cors: Some(&CORS[0])"));
    // An operation turns it off.
    let off = cors("{ allow_origins: [\"https://a.example\"] }").replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n        cors: false\n",
    );
    let g = run(&off).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(has(api, "cors: Some(&CORS[0])"), "the API's policy stays: {api}");
    assert!(
        !entry(api, "getPet").contains("cors:"),
        "off: the default, left out: {api}"
    );
}

/// The entry of operation `id` in a generated `api.rs`: from its `id` to `..OperationSpec::DEFAULT`.
fn entry<'a>(api: &'a str, id: &str) -> &'a str {
    let start = api.find(&format!("id: \"{id}\"")).expect("the operation's entry");
    let len = api[start..]
        .find("..OperationSpec::DEFAULT")
        .expect("the end of the entry");
    &api[start..start + len]
}

/// Whether generated code holds `expected`, whitespace aside (the formatter breaks long lines where it likes).
fn has(code: &str, expected: &str) -> bool {
    let squash = |s: &str| {
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        text.replace(",}", "}").replace(",]", "]").replace(",)", ")")
    };
    squash(code).contains(&squash(expected))
}

/// `BASE` with two stages under the top-level `x-gateway` (lines 4 to 9).
fn staged(extra: &str) -> String {
    with_root(&format!(
        "  stages:\n    dev: {{ variables: {{ petsUrl: \"http://127.0.0.1:9001\", greeting: hi }} }}\n    prod:\n      variables: {{ petsUrl: \"https://pets.internal:8443\", greeting: hello }}\n      base_path: /prod\n      throttle: {{ rate: 50, burst: 100 }}\n      cache: {{ enabled: false }}\n  default_stage: dev\n{extra}"
    ))
}

#[test]
fn stages_are_emitted_with_their_variables_and_overrides() {
    let g = run(&staged("")).expect("valid stages");
    let api = &g.files["src/api.rs"];
    assert!(
        has(
            api,
            "StageSpec { name: \"dev\", variables: &[(\"petsUrl\", \"http://127.0.0.1:9001\"), (\"greeting\", \"hi\")], base_path: \"\", cache_enabled: true, throttle: None, cors_origins: None, upstreams: &[] }"
        ),
        "{api}"
    );
    assert!(has(api, "base_path: \"/prod\", cache_enabled: false"));
    assert!(has(api, "default_stage: Some(0)"));
}

#[test]
fn stage_variables_fill_upstream_urls_rewrites_and_templates_when_every_stage_defines_them() {
    let spec = staged("").replace("pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }", "pets: { url: \"{stage.petsUrl}\", timeout: 10s }").replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/{stage.greeting}/pets/{petId}\" }\n        transform: { response: { headers: { set: { X-Greeting: \"{stage.greeting}\" } } } }\n",
    );
    let g = run(&spec).expect("every stage defines both");
    let api = &g.files["src/api.rs"];
    assert!(has(api, "urls: &[\"{stage.petsUrl}\"]"));
    assert!(has(api, "path!(\"/{stage.greeting}/pets/{0}\")"), "{api}");
    assert!(has(api, "Placeholder::Stage(\"greeting\")"));
    // A variable one stage lacks.
    let lacking = spec.replace("greeting: hello", "salutation: hello");
    let errs = errors(&lacking);
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("`{stage.greeting}` is not defined in every stage: prod lack it")),
        "{errs:#?}"
    );
    // A URL that is not one in some stage.
    let bad = staged("")
        .replace("petsUrl: \"https://pets.internal:8443\"", "petsUrl: \"pets.internal\"")
        .replace(
            "pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }",
            "pets: { url: \"{stage.petsUrl}\", timeout: 10s }",
        );
    assert!(errors(&bad).iter().any(|e| e.message.contains("is not a valid URL")));
}

#[test]
fn stage_settings_are_checked() {
    single_error(&with_root("  default_stage: prod\n"), "stage `prod` is not defined", 4);
    let e = single_error(
        &staged("").replace("default_stage: dev", "default_stage: prd"),
        "stage `prd` is not defined",
        11,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `prod`?"));
    single_error(
        &staged("").replace("base_path: /prod", "base_path: prod/"),
        "`prod/` is not a base path",
        8,
    );
    let none = BASE.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        "        target: { upstream: pets, path: \"/v1/{stage.tier}/pets/{petId}\" }\n",
    );
    single_error(&none, "`{stage.tier}`: this gateway declares no stages", 13);
}

/// `staged` with `lines` added to the `prod` stage (after its `cache:`, line 10).
fn prod_with(lines: &str) -> String {
    staged("").replace(
        "      cache: { enabled: false }\n",
        &format!("      cache: {{ enabled: false }}\n{lines}"),
    )
}

#[test]
fn stage_overrides_of_cors_and_upstreams_are_emitted_and_checked() {
    let g = run(&prod_with(
        "      cors: { allow_origins: [\"https://app.example.com\"] }\n      upstreams:\n        pets: { url: \"{stage.petsUrl}/v2\", timeout: 2s }\n",
    ))
    .expect("valid overrides");
    let api = &g.files["src/api.rs"];
    assert!(has(
        api,
        "cors_origins: Some(&[OriginSpec::Exact(\"https://app.example.com\")])"
    ));
    assert!(has(api, "urls: &[\"{stage.petsUrl}/v2\"]"));
    assert!(has(api, "timeout: Some(Duration::from_millis(2000))"));

    let e = single_error(
        &prod_with("      upstreams:\n        petz: { timeout: 2s }\n"),
        "no upstream is named `petz`",
        12,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `pets`?"));
    single_error(
        &prod_with("      upstreams:\n        pets: { url: \"{stage.tier}/x\" }\n"),
        "`{stage.tier}` is not a variable of this stage",
        12,
    );
    single_error(
        &prod_with("      upstreams:\n        pets: { url: \"ftp://files\" }\n"),
        "must use http or https",
        12,
    );
    single_error(
        &prod_with("      cors: { allow_origins: [\"app.example.com\"] }\n"),
        "`app.example.com` is not an origin",
        11,
    );
    single_error(
        &prod_with("      cors: { allow_origins: [https://a.example, \"*\"] }\n").replace(
            "  default_stage: dev\n",
            "  default_stage: dev\n  cors: { allow_origins: [https://a.example], allow_credentials: true }\n",
        ),
        "`*` cannot be combined with a CORS policy that has `allow_credentials: true`",
        11,
    );
    single_error(
        &prod_with("      cors: { allow_origins: [https://a.example], max_age: 5s }\n"),
        "unknown key `max_age`",
        11,
    );
}

/// A valid spec with store targets, broken one way at a time by the store tests.
const STORE_BASE: &str = r#"openapi: 3.0.3
info: { title: T, version: "1" }
x-gateway:
  stores:
    main: { sqlite: data/t.db }
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - { name: petId, in: path, required: true, schema: { type: string } }
      x-gateway:
        target: { store: main, table: pets, action: get, key: "{path.petId}" }
      responses: { "200": { description: ok } }
  /pets:
    get:
      operationId: listPets
      parameters:
        - { name: status, in: query, schema: { type: string } }
      x-gateway:
        target: { store: main, table: pets, action: list, filter: [status] }
      responses: { "200": { description: ok } }
    post:
      operationId: createPet
      requestBody:
        content:
          application/json:
            schema: { type: object, required: [name], properties: { name: { type: string } } }
      x-gateway:
        target: { store: main, table: pets, action: create }
      responses: { "201": { description: ok } }
"#;

#[test]
fn store_targets_generate_their_stores_tables_indexes_and_a_validated_body() {
    let g = run(STORE_BASE).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(api.contains("StoreSpec {"), "{api}");
    assert!(api.contains("StoreBackendSpec::Sqlite"), "{api}");
    assert!(api.contains("path: \"data/t.db\""));
    assert!(api.contains("StoreTableSpec {"));
    assert!(api.contains("indexes: &[\"status\"]"));
    assert!(api.contains("action: StoreAction::Create"));
    assert!(api.contains("id_field: \"id\""));
    assert!(api.contains("kind: StoreFilterKind::String"));
    // The create's body is validated although `validate.body` is not set.
    assert!(api.contains("validate: true"), "{api}");
    // Turning it off explicitly is overridden, with a warning.
    let off = STORE_BASE.replace(
        "        target: { store: main, table: pets, action: create }\n",
        "        target: { store: main, table: pets, action: create }\n        validate: { body: false }\n",
    );
    let diagnostics = run(&off).map(|_| Vec::new()).unwrap_or_else(|d| d);
    assert!(diagnostics.is_empty(), "warnings only: {diagnostics:#?}");
    let g = run(&off).expect("a warning only");
    assert!(g.files["src/api.rs"].contains("validate: true"));
}

#[test]
fn a_store_target_names_a_defined_store_a_known_action_and_a_valid_table() {
    let e = single_error(
        &STORE_BASE.replace(
            "store: main, table: pets, action: get",
            "store: mian, table: pets, action: get",
        ),
        "store `mian` is not defined",
        13,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `main`?"));
    let e = single_error(
        &STORE_BASE.replace("action: list,", "action: lsit,"),
        "unknown store action `lsit`",
        21,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `list`?"));
    let e = single_error(
        &STORE_BASE.replace("action: get,", "action: fetch,"),
        "unknown store action `fetch`",
        13,
    );
    assert_eq!(e.help.as_deref(), Some("one of: get, put, merge, delete, list, create"));
    single_error(
        &STORE_BASE.replace("table: pets, action: get", "table: pet-s, action: get"),
        "`pet-s` cannot name a table",
        13,
    );
    single_error(
        &STORE_BASE.replace("table: pets, action: get", "table: sqlite_x, action: get"),
        "`sqlite_x` cannot name a table",
        13,
    );
    single_error(
        &STORE_BASE.replace("main: { sqlite: data/t.db }", "main: { synchronous: normal }"),
        "store `main` needs `sqlite`",
        5,
    );
    let e = single_error(
        &STORE_BASE.replace(
            "main: { sqlite: data/t.db }",
            "main: { sqlite: data/t.db, synchronous: ful }",
        ),
        "`synchronous: ful` is not `full` or `normal`",
        5,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `full`?"));
}

#[test]
fn a_store_is_sqlite_or_postgres_with_a_url_that_parses_and_no_password_in_the_diagnostics() {
    let postgres = |url: &str| {
        STORE_BASE.replace(
            "main: { sqlite: data/t.db }",
            &format!("main: {{ postgres: \"{url}\" }}"),
        )
    };
    let g = run(&postgres("postgres://gw@127.0.0.1:5432/pets")).expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(api.contains("StoreBackendSpec::Postgres"), "{api}");
    assert!(api.contains("url: \"postgres://gw@127.0.0.1:5432/pets\""), "{api}");
    assert!(g.warnings.is_empty(), "{:#?}", g.warnings);
    run(&postgres(
        "postgresql://a:5432,b:5433/pets?connect_timeout=2&application_name=gw",
    ))
    .expect("several hosts");

    // A password is allowed, with a warning that does not repeat it.
    let g = run(&postgres("postgres://gw:s3cret@db/pets")).expect("a warning only");
    let w = g
        .warnings
        .iter()
        .find(|w| w.message.contains("holds a password"))
        .expect("warned");
    assert!(!w.to_string().contains("s3cret"), "{w}");

    for (url, message) in [
        ("mysql://h/db", "must start with `postgres://`"),
        ("postgres:///pets", "names no host"),
        ("postgres://gw:s3cret@h:54x/pets", "a port is not a number"),
        (
            "postgres://h/pets?sslmod=disable",
            "unknown parameter `sslmod` (did you mean `sslmode`?)",
        ),
        (
            "postgres://h/pets?sslmode=require",
            "TLS to PostgreSQL is not supported yet",
        ),
    ] {
        let e = single_error(&postgres(url), message, 5);
        assert!(e.message.starts_with("`postgres` is not a PostgreSQL URL"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    let e = single_error(
        &STORE_BASE.replace(
            "main: { sqlite: data/t.db }",
            "main: { sqlite: data/t.db, postgres: \"postgres://h/db\" }",
        ),
        "names both `sqlite` and `postgres`",
        5,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("keep one")), "{e}");
    single_error(
        &STORE_BASE.replace(
            "main: { sqlite: data/t.db }",
            "main: { postgres: \"postgres://h/db\", synchronous: full }",
        ),
        "`synchronous` is SQLite's",
        5,
    );
    let long = "t".repeat(64);
    single_error(
        &postgres("postgres://h/db").replace("table: pets, action: get", &format!("table: {long}, action: get")),
        "too long a table name for PostgreSQL",
        13,
    );
    // The same name is a SQLite table's.
    run(&STORE_BASE.replace("table: pets, action: get", &format!("table: {long}, action: get"))).expect("valid");
}

#[test]
fn a_store_key_is_required_for_one_item_refused_for_many_and_made_of_path_parameters() {
    single_error(
        &STORE_BASE.replace(", key: \"{path.petId}\"", ""),
        "a store `get` needs `key`",
        13,
    );
    single_error(
        &STORE_BASE.replace("action: list, filter: [status]", "action: list, key: x"),
        "it takes no `key`",
        21,
    );
    single_error(
        &STORE_BASE.replace("action: create }", "action: create, key: x }"),
        "`create` makes the key itself",
        30,
    );
    let e = single_error(
        &STORE_BASE.replace("key: \"{path.petId}\"", "key: \"{path.petID}\""),
        "key placeholder `{path.petID}` names no path parameter",
        13,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `{path.petId}`?"));
    single_error(
        &STORE_BASE.replace("key: \"{path.petId}\"", "key: \"{query.q}\""),
        "a key is made of path parameters only",
        13,
    );
    single_error(
        &STORE_BASE.replace("key: \"{path.petId}\" }", "key: \"{path.petId}\", path: /x }"),
        "`path` rewrites an upstream path; a store target has none",
        13,
    );
    single_error(
        &STORE_BASE.replace("action: get, key", "action: get, id_field: pid, key"),
        "`id_field` says where `create` writes the id it makes",
        13,
    );
}

#[test]
fn store_filters_are_declared_scalar_query_parameters() {
    let e = single_error(
        &STORE_BASE.replace("filter: [status]", "filter: [statsu]"),
        "filter `statsu` is not a query parameter of this operation",
        21,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `status`?"));
    single_error(
        &STORE_BASE.replace(
            "{ name: status, in: query, schema: { type: string } }",
            "{ name: status, in: query, schema: { type: array, items: { type: string } } }",
        ),
        "filter `status` compares one value, and `status` is an array",
        21,
    );
    single_error(
        &STORE_BASE.replace("filter: [status]", "filter: [limit]"),
        "`limit` pages the list",
        21,
    );
    single_error(
        &STORE_BASE.replace("action: get, key", "action: get, filter: [status], key"),
        "only `list` filters",
        13,
    );
    // Typed parameters are compared as their JSON type.
    let typed = STORE_BASE.replace(
        "{ name: status, in: query, schema: { type: string } }",
        "{ name: status, in: query, schema: { type: integer } }",
    );
    assert!(run(&typed).expect("valid").files["src/api.rs"].contains("StoreFilterKind::Integer"));
}

#[test]
fn a_target_has_exactly_one_kind_and_store_settings_only_with_store() {
    single_error(
        &STORE_BASE.replace(
            "target: { store: main, table: pets, action: list",
            "target: { mock: { status: 200 }, store: main, table: pets, action: list",
        ),
        "a target has both `mock` and `store`",
        21,
    );
    let errs = errors(&STORE_BASE.replace(
        "target: { store: main, table: pets, action: get, key: \"{path.petId}\" }",
        "target: { table: pets }",
    ));
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.contains(&"a target needs `upstream`, `split`, `mock`, `function` or `store`"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"`table` is a setting of store targets"),
        "{messages:?}"
    );
    single_error(
        &STORE_BASE.replace(
            "application/json:\n            schema: { type: object",
            "text/plain:\n            schema: { type: object",
        ),
        "declares no JSON media type",
        26,
    );
}
/// [`BASE`] with its operation's target replaced by function `path`, and the functions crate declared.
fn with_function(path: &str) -> String {
    BASE.replace(
        "target: { upstream: pets, path: \"/v1/pets/{petId}\" }",
        &format!("target: {{ function: \"{path}\" }}"),
    )
    .replace(
        "  upstreams:",
        "  functions: { crate: t-functions, path: functions/t }\n  upstreams:",
    )
}

#[test]
fn a_function_target_generates_a_types_crate_glue_and_a_stub() {
    let g = run(&with_function("pets::get")).expect("generates");
    for file in [
        "types/Cargo.toml",
        "types/src/lib.rs",
        "types/src/params.rs",
        "src/functions.rs",
    ] {
        assert!(g.files.contains_key(file), "{file} in {:?}", g.files.keys());
    }
    assert!(
        !g.files.contains_key("src/params.rs"),
        "the parameter structs moved to the types crate"
    );
    assert!(g.files["src/functions.rs"].contains("::t_functions::pets::get("));
    assert!(
        g.scaffold.contains_key("functions/t/src/pets.rs"),
        "{:?}",
        g.scaffold.keys()
    );
    // A spec without function targets generates exactly what it did before.
    let plain = run(BASE).expect("generates");
    assert!(plain.scaffold.is_empty());
    assert!(
        plain
            .files
            .keys()
            .all(|f| !f.starts_with("types/") && f != "src/functions.rs")
    );
}

#[test]
fn a_function_path_that_is_not_a_rust_path() {
    let e = single_error(
        &with_function("pets::get-pet"),
        "`pets::get-pet` is not a Rust path: `get-pet` is not an identifier",
        14,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("pets::age")));
    single_error(&with_function("pets::fn"), "`fn` is not an identifier", 14);
    single_error(&with_function("pets::"), "it has an empty segment", 14);
}

#[test]
fn a_function_target_without_a_functions_crate() {
    let spec = with_function("pets::get").replace("  functions: { crate: t-functions, path: functions/t }\n", "");
    let e = single_error(
        &spec,
        "function `pets::get` names no crate: the spec has no `x-gateway.functions`",
        13,
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("functions: { crate:")));
}

#[test]
fn a_functions_crate_outside_the_workspace_or_badly_named() {
    let spec = with_function("pets::get").replace("path: functions/t", "path: ../elsewhere");
    single_error(&spec, "`../elsewhere` is not a directory inside the workspace", 4);
    let spec = with_function("pets::get").replace("crate: t-functions", "crate: T_Functions");
    single_error(&spec, "functions crate name `T_Functions` cannot name a crate", 4);
}

#[test]
fn a_target_with_a_function_and_an_upstream() {
    let spec = BASE
        .replace(
            "target: { upstream: pets,",
            "target: { function: pets::get, upstream: pets,",
        )
        .replace(
            "  upstreams:",
            "  functions: { crate: t-functions, path: functions/t }\n  upstreams:",
        );
    single_error(&spec, "a target has both `upstream` and `function`", 14);
    let spec = BASE.replace("target: { upstream: pets,", "target: { timeout: 2s, upstream: pets,");
    let e = single_error(&spec, "`timeout` bounds a function target", 13);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("upstreams: { NAME: { timeout"))
    );
}

#[test]
fn two_operations_naming_one_function() {
    let spec = format!(
        "{}    delete:\n      operationId: deletePet\n      parameters:\n        - {{ name: petId, in: path, required: true, schema: {{ type: integer }} }}\n      x-gateway:\n        target: {{ function: pets::get }}\n      responses: {{ \"204\": {{ description: gone }} }}\n",
        with_function("pets::get")
    );
    let e = single_error(&spec, "function `pets::get` is the target of two operations", 21);
    assert!(e.help.as_deref().is_some_and(|h| h.contains("its own function")));
}

/// `BASE` with more keys on the `pets` upstream (line 5).
fn pets_with(keys: &str) -> String {
    BASE.replace(
        "pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }",
        &format!("pets: {{ url: \"http://127.0.0.1:9001\", timeout: 10s, {keys} }}"),
    )
}

#[test]
fn an_unknown_balance_strategy_is_refused_with_the_closest_one() {
    let e = single_error(
        &pets_with("balance: least_request"),
        "unknown balance strategy `least_request`",
        5,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `least_requests`?"));
    let e = single_error(&pets_with("balance: hash"), "unknown balance strategy `hash`", 5);
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("hash(header.X-User-Id)")),
        "{e}"
    );
    let g = run(&pets_with("balance: least_requests")).expect("a known strategy");
    assert!(g.files["src/api.rs"].contains("balance: Balance::LeastRequests"));
}

#[test]
fn a_hash_source_must_be_a_declared_parameter_or_a_known_context_value() {
    single_error(
        &pets_with("balance: hash(header.X-User-Id)"),
        "`hash(header.X-User-Id)` reads a header parameter that no operation using this upstream declares",
        5,
    );
    single_error(
        &pets_with("balance: hash(context.user)"),
        "`context.user` is not a value to hash by",
        5,
    );
    let declared = pets_with("balance: hash(header.X-User-Id)").replace(
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n",
        "        - { name: petId, in: path, required: true, schema: { type: integer } }\n        - { name: X-User-Id, in: header, schema: { type: string } }\n",
    );
    let g = run(&declared).expect("a declared header");
    assert!(
        g.files["src/api.rs"].contains("balance: Balance::Hash(Placeholder::Header(\"x-user-id\"))"),
        "{}",
        g.files["src/api.rs"]
    );
    run(&pets_with("balance: hash(context.client_ip)")).expect("the client address is always there");
}

#[test]
fn a_split_names_defined_upstreams_and_weights_with_a_positive_total() {
    let split = |sides: &str| {
        BASE.replace(
            "target: { upstream: pets, path: \"/v1/pets/{petId}\" }",
            &format!("target: {{ split: [{sides}] }}"),
        )
    };
    let e = single_error(
        &split("{ upstream: pets, weight: 90 }, { upstream: petz, weight: 10 }"),
        "upstream `petz` is not defined",
        13,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `pets`?"));
    single_error(
        &split("{ upstream: pets, weight: 0 }, { upstream: pets, weight: 0 }"),
        "the weights of a split add up to zero",
        13,
    );
    let g = run(&split("{ upstream: pets, weight: 90 }, { upstream: pets, weight: 10 }")).expect("a valid split");
    assert!(
        g.files["src/api.rs"].contains("TargetSpec::Split("),
        "{}",
        g.files["src/api.rs"]
    );
}

#[test]
fn retries_of_non_idempotent_methods_need_saying_so() {
    let e = single_error(
        &pets_with("retries: { methods: [GET, POST] }"),
        "retries of POST requests, which are not idempotent",
        5,
    );
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("non_idempotent: true")),
        "{e}"
    );
    single_error(&pets_with("retries: { methods: all }"), "which are not idempotent", 5);
    run(&pets_with("retries: { methods: [GET, POST], non_idempotent: true }")).expect("said so");
    run(&pets_with("retries: { attempts: 1 }")).expect("idempotent methods by default");
}

#[test]
fn an_upstream_has_url_or_urls_and_its_servers_share_a_base_path() {
    single_error(
        &pets_with("urls: [\"http://127.0.0.1:9002\"]"),
        "an upstream has `url` or `urls`, not both",
        5,
    );
    let several = BASE.replace(
        "pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }",
        "pets: { urls: [\"http://127.0.0.1:9001/v1\", \"http://127.0.0.1:9002/v2\"] }",
    );
    single_error(&several, "the servers of one upstream share a base path", 5);
    let g = run(&several.replace("/v2\"", "/v1\"")).expect("the same base path");
    assert!(g.files["src/api.rs"].contains("urls: &[\"http://127.0.0.1:9001/v1\", \"http://127.0.0.1:9002/v1\"]"));
}

/// `BASE` with an `ip` list on the operation (line 14).
fn ip_with(lists: &str) -> String {
    BASE.replace(
        "        target: { upstream: pets, path: \"/v1/pets/{petId}\" }\n",
        &format!("        target: {{ upstream: pets, path: \"/v1/pets/{{petId}}\" }}\n        ip: {{ {lists} }}\n"),
    )
}

#[test]
fn ip_lists_take_addresses_and_blocks_and_point_at_a_bad_entry() {
    let e = single_error(
        &ip_with("allow: [10.1.2.3/8]"),
        "`10.1.2.3/8` has bits set after its /8 prefix",
        14,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `10.0.0.0/8`?"));
    single_error(
        &ip_with("deny: [intranet]"),
        "`intranet` is not an IP address or CIDR block",
        14,
    );
    single_error(
        &ip_with("allow: []"),
        "`allow` is empty, so every caller would be refused",
        14,
    );
    let g = run(&ip_with("allow: [10.0.0.0/8, \"2001:db8::/32\"], deny: [10.6.6.6]")).expect("valid lists");
    let api = &g.files["src/api.rs"];
    assert!(api.contains("Cidr::v4([10, 0, 0, 0], 8)"), "{api}");
    assert!(api.contains("Cidr::v6([8193, 3512, 0, 0, 0, 0, 0, 0], 32)"), "{api}");
    assert!(api.contains("deny: &[Cidr::v4([10, 6, 6, 6], 32)]"), "{api}");
}

fn shared_with(shared: &str) -> String {
    BASE.replace(
        "    pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }\n",
        &format!("    pets: {{ url: \"http://127.0.0.1:9001\", timeout: 10s }}\n  shared: {shared}\n"),
    )
}

#[test]
fn shared_state_needs_a_redis_url_and_known_failure_modes() {
    let e = single_error(
        &shared_with("{ on_failure: { limits: open } }"),
        "`shared` needs `redis`",
        6,
    );
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("GATEWAY_REDIS_URL")),
        "{e}"
    );
    single_error(
        &shared_with("{ redis: { url: \"http://127.0.0.1:6379\" } }"),
        "not a Redis URL",
        6,
    );
    single_error(
        &shared_with("{ redis: { url: \"rediss://cache:6380/0\" } }"),
        "TLS to Redis (`rediss://`) is not supported yet",
        6,
    );
    let e = single_error(
        &shared_with("{ redis: { url: \"redis://127.0.0.1/0\" }, on_failure: { quotas: closd } }"),
        "`closd` is not `open` or `closed`",
        6,
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `closed`?"));
    single_error(
        &shared_with("{ redis: { url: \"redis://127.0.0.1/0\", timeout: 5s } }"),
        "`timeout` must be above 0 and at most 2s",
        6,
    );
    single_error(
        &shared_with("{ redis: { url: \"redis://127.0.0.1/0\" }, keys: file }"),
        "`keys: file` is not a choice",
        6,
    );
}

#[test]
fn shared_state_is_emitted_with_its_defaults_and_a_password_is_a_warning() {
    let g = run(&shared_with(
        "{ redis: { url: \"redis://gw:s3cret@10.0.0.5:6379/2\" }, keys: redis }",
    ))
    .expect("valid");
    let api = &g.files["src/api.rs"];
    assert!(
        api.contains("prefix: \"gw:t:\""),
        "the prefix defaults to the API's name: {api}"
    );
    assert!(api.contains("timeout: Duration::from_millis(50)"), "{api}");
    assert!(
        api.contains("limits: FailMode::Open") && api.contains("quotas: FailMode::Open"),
        "{api}"
    );
    assert!(
        api.contains("keys: true") && api.contains("keys_refresh: Duration::from_millis(2000)"),
        "{api}"
    );
    let w = g
        .warnings
        .iter()
        .find(|w| w.message.contains("carries a password"))
        .expect("warned about the password");
    assert!(!w.to_string().contains("s3cret"), "the password is not repeated: {w}");
}

#[test]
fn cache_shared_redis_points_at_the_replicas_shared_cache() {
    let spec = BASE.replace(
        "    pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }\n",
        "    pets: { url: \"http://127.0.0.1:9001\", timeout: 10s }\n  cache: { shared: redis }\n",
    );
    let errs = errors(&spec);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("x-gateway: { shared: { cache: redis } }") && e.line() == Some(6)),
        "{errs:#?}"
    );
}

/// A spec nobody here wrote: no `x-gateway` at all.
const VENDOR: &str = r#"openapi: 3.0.3
info: { title: Vendor, version: "1" }
servers: [{ url: "http://127.0.0.1:9001/v1" }]
paths:
  /pets:
    get:
      operationId: listPets
      responses: { "200": { description: ok } }
  /internal/stats:
    get:
      operationId: stats
      responses: { "200": { description: ok } }
"#;

fn with_overlays(spec: &str, overlays: &[(&str, &str)]) -> Result<gateway_codegen::Generated, Vec<RenderedDiagnostic>> {
    match generate(
        SpecInput {
            file: "vendor.yaml",
            text: spec,
            dir: None,
            overlays,
        },
        &Options::default(),
    ) {
        Ok(g) => Ok(g),
        Err(GenerateError::Spec { diagnostics, .. }) => Err(diagnostics),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

#[test]
fn an_overlay_adds_x_gateway_and_removes_operations_without_touching_the_spec() {
    let overlay = r#"overlay: 1.0.0
info: { title: gateway, version: "1" }
actions:
  - target: $
    update:
      x-gateway:
        name: vendor
        upstreams: { vendor: { url: "http://127.0.0.1:9001/v1" } }
  - target: $.paths['/internal/stats']
    remove: true
  - target: $.paths['/pets'].get
    update:
      x-gateway: { cache: { ttl: 30s } }
"#;
    let generated = with_overlays(VENDOR, &[("vendor.overlay.yaml", overlay)]).expect("generates");
    assert_eq!(generated.operations, 1, "the removed operation is not served");
    assert_eq!(generated.name, "vendor", "the overlay's x-gateway is read");
    let api = generated
        .files
        .iter()
        .find(|(p, _)| p.ends_with("api.rs"))
        .map(|(_, t)| t)
        .expect("api.rs");
    assert!(api.contains("listPets") && !api.contains("\"stats\""), "{api}");
}

#[test]
fn an_error_in_what_an_overlay_wrote_is_shown_in_the_overlay() {
    let overlay = r#"overlay: 1.0.0
info: { title: gateway, version: "1" }
actions:
  - target: $.paths['/pets'].get
    update:
      x-gateway:
        cache: { ttl: soon }
"#;
    let errs = with_overlays(VENDOR, &[("vendor.overlay.yaml", overlay)]).expect_err("refused");
    let e = errs
        .iter()
        .find(|e| e.message.contains("soon"))
        .expect("the bad duration");
    assert_eq!(e.file, "vendor.overlay.yaml");
    assert_eq!(e.line(), Some(7), "{e}");
    assert!(
        e.pointer.starts_with("/actions/0/update/x-gateway/cache"),
        "{}",
        e.pointer
    );
}

#[test]
fn an_overlay_action_that_matches_nothing_is_a_warning_at_its_line() {
    let overlay = r#"overlay: 1.0.0
info: { title: gateway, version: "1" }
actions:
  - target: $.paths['/pets'].get
    update: { summary: listed }
  - target: $.paths['/gone'].get
    update: { summary: never }
"#;
    let generated = with_overlays(VENDOR, &[("vendor.overlay.yaml", overlay)]).expect("generates");
    let w = generated
        .warnings
        .iter()
        .find(|w| w.message.contains("matches nothing"))
        .expect("warned");
    assert_eq!((w.file.as_str(), w.line()), ("vendor.overlay.yaml", Some(6)), "{w}");
}

#[test]
fn a_bad_overlay_is_an_error_in_the_overlay_and_nothing_is_generated() {
    let overlay = "overlay: 1.0.0\ninfo: { title: gateway, version: \"1\" }\nactions:\n  - target: \"$.paths[\"\n    remove: true\n";
    let errs = with_overlays(VENDOR, &[("o.yaml", overlay)]).expect_err("refused");
    let e = errs
        .iter()
        .find(|e| e.message.contains("not a JSONPath"))
        .expect("the bad path");
    assert_eq!((e.file.as_str(), e.line()), ("o.yaml", Some(4)), "{e}");
    let errs = with_overlays(VENDOR, &[("o.yaml", "overlay: 1.0.0\nactions: [\n")]).expect_err("refused");
    assert!(
        errs.iter()
            .any(|e| e.file == "o.yaml" && e.message.contains("not valid YAML")),
        "{errs:#?}"
    );
}

#[test]
fn overlays_apply_in_order_across_files() {
    let first = "overlay: 1.0.0\ninfo: { title: a, version: \"1\" }\nactions:\n  - target: $\n    update: { x-gateway: { name: first, upstreams: { v: { url: \"http://127.0.0.1:9001\" } } } }\n";
    let second = "overlay: 1.0.0\ninfo: { title: b, version: \"1\" }\nactions:\n  - target: \"$['x-gateway']\"\n    update: { name: second }\n";
    let generated = with_overlays(VENDOR, &[("a.yaml", first), ("b.yaml", second)]).expect("generates");
    assert_eq!(generated.name, "second");
    // `-` is not allowed in a dotted name (RFC 9535): the help says how to write it.
    let third = second.replace("\"$['x-gateway']\"", "$.x-gateway");
    let errs = with_overlays(VENDOR, &[("a.yaml", first), ("c.yaml", &third)]).expect_err("refused");
    assert!(
        errs.iter()
            .any(|e| e.help.as_deref().is_some_and(|h| h.contains("$['x-gateway']"))),
        "{errs:#?}"
    );
}
