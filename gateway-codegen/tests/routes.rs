//! Routing: segments of several parameters, and operations on templates that match the same requests — served as
//! one route when they would do the same at the gateway, refused with a way to choose when not.

use gateway_codegen::{GenerateError, Generated, Options, RenderedDiagnostic, Severity, SpecInput, generate};

/// A spec with the operations `paths` (YAML under `paths:`, indented two spaces), proxied to `app` unless they
/// say otherwise, with an API key scheme `key` and a bearer scheme `token` the gateway only sees presented.
fn spec(paths: &str) -> String {
    format!(
        r#"openapi: 3.0.3
info: {{ title: T, version: "1" }}
x-gateway:
  upstreams:
    app: {{ url: "http://127.0.0.1:9001" }}
  target: {{ upstream: app }}
components:
  securitySchemes:
    key: {{ type: apiKey, in: header, name: X-Auth-Key }}
    token: {{ type: http, scheme: bearer }}
paths:
{paths}"#
    )
}

fn run_with(text: &str, overlays: &[(&str, &str)]) -> Result<Generated, Vec<RenderedDiagnostic>> {
    let input = SpecInput {
        file: "specs/t.yaml",
        text,
        dir: None,
        overlays,
    };
    match generate(input, &Options::default()) {
        Ok(generated) => Ok(generated),
        Err(GenerateError::Spec { diagnostics, .. }) => Err(diagnostics),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

fn run(text: &str) -> Result<Generated, Vec<RenderedDiagnostic>> {
    run_with(text, &[])
}

fn generated(text: &str) -> Generated {
    run(text).unwrap_or_else(|diagnostics| panic!("the spec should generate: {diagnostics:#?}"))
}

fn errors(text: &str) -> Vec<RenderedDiagnostic> {
    let diagnostics = run(text).expect_err("the spec should be refused");
    diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

fn file<'g>(generated: &'g Generated, path: &str) -> &'g str {
    generated
        .files
        .get(path)
        .unwrap_or_else(|| panic!("no {path} in {:?}", generated.files.keys().collect::<Vec<_>>()))
}

/// `GET /zones/{zone_id}/phases/{NAME}/entrypoint` as operation `id`, with `phase` as its phase parameter's schema
/// and `more` added to the operation (indented six spaces).
fn entrypoint(id: &str, name: &str, phase: &str, more: &str) -> String {
    format!(
        r#"  /zones/{{zone_id}}/phases/{{{name}}}/entrypoint:
    get:
      operationId: {id}
      parameters:
        - {{ name: {name}, in: path, required: true, schema: {phase} }}
        - {{ name: zone_id, in: path, required: true, schema: {{ type: string }} }}
{more}      responses: {{ "200": {{ description: ok }} }}
"#
    )
}

const FIREWALL: &str = "{ type: string, enum: [http_request_firewall, http_request_transform] }";
const RULESETS: &str = "{ type: string, enum: [http_request_transform, ddos_l7] }";

#[test]
fn a_segment_of_several_parameters_is_one_capture_with_the_literals_between_them() {
    let text = spec(
        r#"  /search/{versionNumber}/geocode/{query}.{ext}:
    get:
      operationId: geocode
      parameters:
        - { name: versionNumber, in: path, required: true, schema: { type: integer } }
        - { name: query, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string, enum: [json, xml] } }
      responses: { "200": { description: ok } }
  /api/v{major}.{minor}/status:
    get:
      operationId: status
      parameters:
        - { name: major, in: path, required: true, schema: { type: integer } }
        - { name: minor, in: path, required: true, schema: { type: integer } }
      x-gateway: { target: { upstream: app, path: "/status/{minor}/{major}" } }
      responses: { "200": { description: ok } }
"#,
    );
    let generated = generated(&text);
    let api = file(&generated, "src/api.rs");
    assert!(api.contains(r#"route: "/search/{p0}/geocode/{p1}""#), "{api}");
    assert!(api.contains(r#"path_suffixes: &["", ".", ""]"#), "{api}");
    assert!(api.contains(r#"route: "/api/v{p0}/status""#), "{api}");
    assert!(api.contains(r#"path_suffixes: &[".", ""]"#), "{api}");
    let params = file(&generated, "src/params.rs");
    assert!(
        params.contains("rt::ParamIn::Path(2)"),
        "each parameter is read at its own index: {params}"
    );
}

#[test]
fn an_enum_value_a_later_parameter_cannot_be_cut_into_is_warned_about() {
    let text = spec(
        r#"  /files/{name}.{ext}:
    get:
      parameters:
        - { name: name, in: path, required: true, schema: { type: string, enum: [a.b, c] } }
        - { name: ext, in: path, required: true, schema: { type: string, enum: [json, tar.gz] } }
      responses: { "200": { description: ok } }
"#,
    );
    let generated = generated(&text);
    let warnings: Vec<&RenderedDiagnostic> = generated
        .warnings
        .iter()
        .filter(|w| w.message.contains("can never be"))
        .collect();
    let [w] = warnings.as_slice() else {
        panic!("one warning: {:#?}", generated.warnings)
    };
    assert!(
        w.message
            .contains("path parameter `ext` of GET /files/{name}.{ext} can never be `tar.gz`"),
        "only the later parameter, only its value with the literal: {}",
        w.message
    );
    assert_eq!(w.line(), Some(16), "at the parameter");
}

#[test]
fn parameters_with_nothing_between_them_are_a_located_error() {
    let text = spec(
        r#"  /tiles/{x}{y}:
    get:
      parameters:
        - { name: x, in: path, required: true, schema: { type: integer } }
        - { name: y, in: path, required: true, schema: { type: integer } }
      responses: { "200": { description: ok } }
"#,
    );
    let errors = errors(&text);
    let [e] = errors.as_slice() else {
        panic!("one error: {errors:#?}")
    };
    assert!(
        e.message.contains("`{x}` and `{y}` with nothing between them"),
        "{}",
        e.message
    );
    assert_eq!(e.line(), Some(12));
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("literal text between them"))
    );
}

#[test]
fn twins_that_do_the_same_are_one_route_accepting_what_either_accepts() {
    let text = spec(&format!(
        "{}{}",
        entrypoint("listTransformRules", "phase", FIREWALL, ""),
        entrypoint("getEntrypoint", "ruleset_phase", RULESETS, "")
    ));
    let generated = generated(&text);
    assert_eq!(generated.operations, 1, "one route");
    let warning = generated
        .warnings
        .iter()
        .find(|w| w.message.contains("match the same requests"))
        .unwrap_or_else(|| panic!("a warning: {:#?}", generated.warnings));
    assert!(
        warning.message.contains(
            "(`listTransformRules`) and GET /zones/{zone_id}/phases/{ruleset_phase}/entrypoint (`getEntrypoint`)"
        ),
        "names them all: {}",
        warning.message
    );
    assert!(
        warning.message.contains("served as one route, by `listTransformRules`"),
        "{}",
        warning.message
    );
    assert_eq!(warning.line(), Some(13), "at the operation that serves");
    assert_eq!(warning.related.len(), 1);
    // Their enums differ: both structs, and a check accepting what either accepts.
    let params = file(&generated, "src/params.rs");
    assert!(params.contains("pub struct ListTransformRulesParams"), "{params}");
    assert!(params.contains("pub struct GetEntrypointParams"), "{params}");
    let flat: String = params.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "rt::check_any( p, &[rt::check::<ListTransformRulesParams>, rt::check::<GetEntrypointParams>], )"
        ),
        "{params}"
    );
    let api = file(&generated, "src/api.rs");
    assert!(
        api.contains("validate: Some(params::accepts_list_transform_rules)"),
        "{api}"
    );
    assert!(api.contains(r#"id: "listTransformRules""#) && !api.contains(r#"id: "getEntrypoint""#));
    let access = file(&generated, "ACCESS.md");
    assert!(
        access.contains("`listTransformRules` (also `getEntrypoint`)"),
        "{access}"
    );
}

#[test]
fn twins_that_check_the_same_use_the_first_ones_checks_alone() {
    let text = spec(&format!(
        "{}{}{}",
        entrypoint("a", "phase", FIREWALL, ""),
        entrypoint("b", "ruleset_phase", FIREWALL, ""),
        entrypoint("c", "p", FIREWALL, "")
    ));
    let generated = generated(&text);
    assert_eq!(generated.operations, 1);
    let params = file(&generated, "src/params.rs");
    assert!(
        !params.contains("check_any") && !params.contains("pub struct BParams"),
        "{params}"
    );
    assert_eq!(params.matches("pub enum").count(), 1, "one enum of phases: {params}");
    let api = file(&generated, "src/api.rs");
    assert!(api.contains("validate: Some(check::<params::AParams>)"), "{api}");
    assert!(file(&generated, "ACCESS.md").contains("`a` (also `b`, `c`)"));
}

#[test]
fn a_twin_that_checks_nothing_makes_the_route_check_nothing() {
    // b checks only `zone_id` (its phase is an object, forwarded unchecked): a's checks or b's.
    let text = spec(&format!(
        "{}{}",
        entrypoint("a", "phase", FIREWALL, ""),
        entrypoint("b", "ruleset_phase", "{ type: object }", "")
    ));
    let api = file(&generated(&text), "src/api.rs").to_owned();
    assert!(api.contains("validate: Some(params::accepts_a)"), "{api}");
    // c checks nothing at all: so neither does the route.
    let text = spec(&format!(
        "{}{}",
        entrypoint("a", "phase", FIREWALL, ""),
        r#"  /zones/{zone}/phases/{c_phase}/entrypoint:
    get:
      operationId: c
      parameters:
        - { name: c_phase, in: path, required: true, schema: { type: object } }
        - { name: zone, in: path, required: true, schema: { type: object } }
      responses: { "200": { description: ok } }
"#
    ));
    let generated = generated(&text);
    assert_eq!(generated.operations, 1);
    let api = file(&generated, "src/api.rs");
    assert!(
        !api.contains("validate: Some"),
        "no parameter check (the default): {api}"
    );
}

#[test]
fn rewrites_naming_the_same_captures_differently_are_the_same_target() {
    let text = spec(&format!(
        "{}{}",
        entrypoint(
            "a",
            "phase",
            FIREWALL,
            "      x-gateway: { target: { upstream: app, path: \"/client/v4/zones/{zone_id}/{phase}\" } }\n"
        ),
        entrypoint(
            "b",
            "ruleset_phase",
            FIREWALL,
            "      x-gateway: { target: { upstream: app, path: \"/client/v4/zones/{zone_id}/{ruleset_phase}\" } }\n"
        )
    ));
    assert_eq!(generated(&text).operations, 1);
    // The captures swapped: another upstream path.
    let swapped = text.replace(
        "/client/v4/zones/{zone_id}/{ruleset_phase}",
        "/client/v4/zones/{ruleset_phase}/{zone_id}",
    );
    let errors = errors(&swapped);
    let [e] = errors.as_slice() else {
        panic!("one error: {errors:#?}")
    };
    assert!(
        e.message.contains("GET /zones/{zone_id}/phases/{ruleset_phase}/entrypoint matches the same requests as GET /zones/{zone_id}/phases/{phase}/entrypoint"),
        "{}",
        e.message
    );
    assert!(e.message.contains("they differ in upstream path"), "{}", e.message);
}

#[test]
fn twins_that_differ_are_an_error_that_says_how_to_choose() {
    let text = spec(&format!(
        "{}{}",
        entrypoint("a", "phase", FIREWALL, "      security: [{ key: [] }]\n"),
        entrypoint(
            "b",
            "ruleset_phase",
            RULESETS,
            "      security: [{ token: [] }, { key: [] }]\n      x-gateway: { throttle: { rate: 5 } }\n"
        )
    ));
    let errors = errors(&text);
    let [e] = errors.as_slice() else {
        panic!("one error: {errors:#?}")
    };
    assert!(
        e.message.contains("they differ in security and throttle"),
        "{}",
        e.message
    );
    assert_eq!(e.line(), Some(21), "at the later operation");
    assert_eq!(e.related.len(), 1, "the other operation");
    let help = e.help.as_deref().unwrap_or("");
    let action = "{ target: \"$.paths['/zones/{zone_id}/phases/{ruleset_phase}/entrypoint'].get\", update: { x-gateway: { skip: true } } }";
    assert!(
        help.contains("x-gateway: { skip: true }") && help.contains(action),
        "{help}"
    );
    // The overlay the help spells resolves it.
    let overlay = format!("overlay: 1.0.0\ninfo: {{ title: choose, version: \"1\" }}\nactions: [{action}]\n");
    let chosen = run_with(&text, &[("specs/t.overlay.yaml", &overlay)])
        .unwrap_or_else(|d| panic!("the overlay resolves the conflict: {d:#?}"));
    assert_eq!(chosen.operations, 1);
    // Alternatives in another order, repeated, are the same security.
    let same = text
        .replace("security: [{ key: [] }]\n", "security: [{ token: [] }, { key: [] }]\n")
        .replace(
            "[{ token: [] }, { key: [] }]\n      x-gateway: { throttle: { rate: 5 } }",
            "[{ key: [] }, { token: [] }, { key: [] }]",
        );
    assert_eq!(generated(&same).operations, 1);
}

#[test]
fn mocks_are_one_target_only_when_equal() {
    let text = spec(&format!(
        "{}{}",
        entrypoint(
            "a",
            "phase",
            FIREWALL,
            "      x-gateway: { target: { mock: { body: same } } }\n"
        ),
        entrypoint(
            "b",
            "ruleset_phase",
            FIREWALL,
            "      x-gateway: { target: { mock: { body: other } } }\n"
        )
    ));
    let errors = errors(&text);
    assert!(
        errors.iter().any(|e| e.message.contains("they differ in target")),
        "{errors:#?}"
    );
    let same = text.replace("body: other", "body: same");
    assert_eq!(generated(&same).operations, 1, "equal mocks are one route");
}

#[test]
fn one_route_with_other_literals_after_a_parameter_is_an_error() {
    let text = spec(
        r#"  /files/{id}:
    get:
      operationId: byId
      parameters:
        - { name: id, in: path, required: true, schema: { type: string } }
      responses: { "200": { description: ok } }
  /files/{name}.{ext}:
    get:
      operationId: byName
      parameters:
        - { name: name, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string } }
      responses: { "200": { description: ok } }
    delete:
      operationId: deleteByName
      parameters:
        - { name: name, in: path, required: true, schema: { type: string } }
        - { name: ext, in: path, required: true, schema: { type: string } }
      responses: { "200": { description: ok } }
"#,
    );
    let errors = errors(&text);
    let [e] = errors.as_slice() else {
        panic!("one error: {errors:#?}")
    };
    assert!(
        e.message
            .contains("GET /files/{name}.{ext} and GET /files/{id} are one route to the router (`/files/{p0}`)"),
        "{}",
        e.message
    );
    assert!(e.help.as_deref().is_some_and(|h| h.contains("skip: true")));
}
