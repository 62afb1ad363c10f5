//! The operation table as emitted: each entry spells only what differs from `OperationSpec::DEFAULT`, values
//! several operations share are written once, and upstream paths are one `path!` each.

use gateway_codegen::{Generated, Options, SpecInput, generate};

/// Three operations, two with the same security and the same schema-checked parameter, one open.
const SPEC: &str = r#"openapi: 3.0.3
info: { title: T, version: "1" }
x-gateway:
  upstreams:
    pets: { url: "http://127.0.0.1:9001" }
components:
  securitySchemes:
    key: { type: apiKey, in: header, name: x-api-key }
    bearer: { type: http, scheme: bearer, x-gateway: { jwks_url: "https://auth.example/jwks" } }
security: [ { key: [] }, { bearer: [read] } ]
paths:
  /pets/{petId}:
    parameters:
      - { name: petId, in: path, required: true, schema: { type: integer } }
      - name: filter
        in: query
        content: { application/json: { schema: { type: object } } }
    get:
      operationId: getPet
      x-gateway: { target: { upstream: pets, path: "/v1/pets/{petId}" } }
      responses: { "200": { description: ok } }
    delete:
      operationId: deletePet
      x-gateway: { target: { upstream: pets, path: "/v1/pets/{petId}" } }
      responses: { "204": { description: gone } }
  /health:
    get:
      operationId: health
      security: []
      x-gateway: { target: { upstream: pets, path: "/v1/%7Bhealth%7D" } }
      responses: { "200": { description: ok } }
"#;

fn generated(spec: &str) -> Generated {
    generate(
        SpecInput {
            file: "specs/t.yaml",
            text: spec,
            dir: None,
            overlays: &[],
        },
        &Options::default(),
    )
    .expect("valid")
}

/// The entry of operation `id`: from its `id` to `..OperationSpec::DEFAULT`.
fn entry<'a>(api: &'a str, id: &str) -> &'a str {
    let start = api.find(&format!("id: \"{id}\"")).expect("the operation's entry");
    let len = api[start..]
        .find("..OperationSpec::DEFAULT")
        .expect("the end of the entry");
    &api[start..start + len]
}

#[test]
fn an_entry_spells_what_differs_from_the_default_and_shared_values_once() {
    let g = generated(SPEC);
    let api = &g.files["src/api.rs"];
    let get = entry(api, "getPet");
    for expected in [
        "method: Method::GET,",
        "template: \"/pets/{petId}\",",
        "route: \"/pets/{p0}\",",
        "path_params: &[\"petId\"],",
        "validate: Some(check::<params::GetPetParams>),",
        "security: SECURITY_0,",
        "schema_params: SCHEMA_PARAMS_0,",
        "target: TargetSpec::proxy(0, path!(\"/v1/pets/{0}\")),",
    ] {
        assert!(get.contains(expected), "{expected} in {get}");
    }
    // Defaults are left out.
    for default in [
        "cors:",
        "ip:",
        "websocket:",
        "plans:",
        "body:",
        "cache:",
        "path_suffixes:",
    ] {
        assert!(!get.contains(default), "{default} in {get}");
    }
    assert!(entry(api, "deletePet").contains("security: SECURITY_0,"));
    // Written once, with what it is in its doc comment.
    assert_eq!(
        api.matches("const SECURITY_0: &[&[Requirement]] = &[").count(),
        1,
        "{api}"
    );
    assert!(
        api.contains("/// The security of 2 operations: `key`, or `bearer` (read)."),
        "{api}"
    );
    assert!(
        api.contains("/// The schema-checked parameters of 2 operations: `filter` (query)."),
        "{api}"
    );
    assert!(!api.contains("SECURITY_1"), "{api}");
    // Open: no security at all.
    let health = entry(api, "health");
    assert!(!health.contains("security"), "{health}");
    assert!(api.contains("use ::gateway_runtime::path;"), "{api}");
}

#[test]
fn a_value_one_operation_has_stays_in_its_entry() {
    let spec = SPEC.replace(
        "    delete:\n      operationId: deletePet\n",
        "    delete:\n      operationId: deletePet\n      security: [ { key: [] } ]\n",
    );
    let g = generated(&spec);
    let api = &g.files["src/api.rs"];
    assert!(!api.contains("SECURITY_0"), "each security is one operation's: {api}");
    let delete = entry(api, "deletePet");
    assert!(delete.contains("security: &["), "{delete}");
}
