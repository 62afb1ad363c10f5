//! Stores: `x-gateway.stores` and the store targets that name them (`store`, `table`, `action`, `key`, `filter`,
//! `id_field`).
//!
//! What is checked here is what would otherwise fail at start-up or on a request: a store that is not defined, a
//! table name SQLite would need quoting for, an action that does not exist, a key that names no path parameter, a
//! filter on a query parameter the operation does not declare. The tables (and the fields filters index) each store
//! needs are collected on the way, so that the gateway creates exactly them at start-up.

use openapiv3::{Parameter, ParameterSchemaOrContent, ReferenceOr, SchemaKind, Type};

use super::contract;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::escape_segment;
use crate::model::{KeyPart, Store, StoreAction, StoreDatabase, StoreFilter, StoreTable, StoreTarget, Target};
use crate::parse::ext::{StoreExt, TargetExt};
use crate::parse::{ParsedOperation, ParsedSpec, refs};
use crate::template::{self, Namespace, Piece};

/// The field `create` writes the new id to when `id_field` is not set.
pub const DEFAULT_ID_FIELD: &str = "id";

/// The longest table name PostgreSQL keeps whole (it truncates longer ones silently, so two could meet).
const POSTGRES_MAX_NAME: usize = 63;

/// The parameters a PostgreSQL URL may carry (tokio-postgres's, which refuses others at start-up).
const POSTGRES_PARAMS: [&str; 19] = [
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// Query parameters a list reads itself (paging), which cannot be filters.
const PAGING: [&str; 2] = ["limit", "cursor"];

/// The target keys only a store target takes, for the diagnostics of a target that has them without `store`.
pub(super) const STORE_KEYS: [&str; 5] = ["table", "action", "key", "filter", "id_field"];

/// The declared stores, and the tables their targets use.
#[derive(Debug, Default)]
pub(super) struct Stores {
    stores: Vec<Store>,
}

impl Stores {
    /// Checks `x-gateway.stores`.
    pub(super) fn new(spec: &ParsedSpec, diags: &mut Diagnostics) -> Self {
        let mut stores = Vec::new();
        for (name, ext) in &spec.root.stores {
            let at = format!("/x-gateway/stores/{}", escape_segment(name));
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                diags.push(
                    Diagnostic::error(&at, format!("`{name}` cannot name a store")).help(
                        "use letters, digits, `-` and `_`, starting with a letter (`--store NAME=PATH` names it)",
                    ),
                );
            }
            let database = check_database(name, ext, &at, diags);
            stores.push(Store {
                name: name.clone(),
                database,
                tables: Vec::new(),
            });
        }
        Self { stores }
    }

    /// The stores with the tables their targets named.
    pub(super) fn finish(self) -> Vec<Store> {
        self.stores
    }

    /// Records that a target of store `store` uses `table`, filtering on `fields`.
    fn use_table(&mut self, store: usize, table: &str, fields: &[StoreFilter]) {
        let Some(store) = self.stores.get_mut(store) else {
            return;
        };
        let index = match store.tables.iter().position(|t| t.name == table) {
            Some(i) => i,
            None => {
                store.tables.push(StoreTable {
                    name: table.to_owned(),
                    indexes: Vec::new(),
                });
                store.tables.len() - 1
            }
        };
        let indexes = &mut store.tables[index].indexes;
        for field in fields {
            if !indexes.contains(&field.query) {
                indexes.push(field.query.clone());
            }
        }
    }
}

/// The database of store `name` (written at `at`): exactly one of `sqlite` (a path) and `postgres` (a URL), with
/// `synchronous` for SQLite only. A URL's password is never repeated in a diagnostic.
fn check_database(name: &str, ext: &StoreExt, at: &str, diags: &mut Diagnostics) -> StoreDatabase {
    let normal_sync = match ext.synchronous.as_deref() {
        None | Some("full") => false,
        Some("normal") => true,
        Some(other) => {
            let mut d = Diagnostic::error(
                format!("{at}/synchronous"),
                format!("`synchronous: {other}` is not `full` or `normal`"),
            );
            d = match did_you_mean(other, ["full", "normal"]) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help("`full` (the default) survives a power loss; `normal` a killed gateway only"),
            };
            diags.push(d);
            false
        }
    };
    match (&ext.sqlite, &ext.postgres) {
        (None, None) => {
            diags.push(
                Diagnostic::error(
                    at,
                    format!("store `{name}` needs `sqlite` (a database file) or `postgres` (a database URL)"),
                )
                .help(format!(
                    "e.g. `{name}: {{ sqlite: data/{name}.db }}` (relative to the gateway's working directory) or \
                     `{name}: {{ postgres: \"postgres://gateway@127.0.0.1/{name}\" }}`"
                )),
            );
            StoreDatabase::Sqlite {
                path: String::new(),
                normal_sync,
            }
        }
        (Some(_), Some(_)) => {
            diags.push(
                Diagnostic::error(
                    format!("{at}/postgres"),
                    format!("store `{name}` names both `sqlite` and `postgres`; a store is one database"),
                )
                .help(format!(
                    "keep one of them (`--store {name}=PATH` or `--store {name}=postgres://…` picks another at run time)"
                )),
            );
            StoreDatabase::Sqlite {
                path: String::new(),
                normal_sync,
            }
        }
        (Some(path), None) => {
            if path.trim().is_empty() || path.contains('\0') {
                diags.push(
                    Diagnostic::error(format!("{at}/sqlite"), "`sqlite` is not a file path")
                        .help("write a path such as `data/petstore.db`, relative to the gateway's working directory"),
                );
            }
            StoreDatabase::Sqlite {
                path: path.clone(),
                normal_sync,
            }
        }
        (None, Some(url)) => {
            if ext.synchronous.is_some() {
                diags.push(
                    Diagnostic::error(
                        format!("{at}/synchronous"),
                        "`synchronous` is SQLite's; a PostgreSQL store's commits are as durable as the server makes them",
                    )
                    .help("remove `synchronous` (the server's `synchronous_commit` decides; `on` by default)"),
                );
            }
            match check_postgres_url(url) {
                Err(problem) => diags.push(
                    Diagnostic::error(
                        format!("{at}/postgres"),
                        format!("`postgres` is not a PostgreSQL URL: {problem}"),
                    )
                    .help(format!("e.g. `postgres://gateway@127.0.0.1:5432/{name}`")),
                ),
                Ok(true) => diags.push(
                    Diagnostic::warning(
                        format!("{at}/postgres"),
                        "this URL holds a password, which is then in the spec and compiled into the gateway",
                    )
                    .help(format!(
                        "leave it out and set `PGPASSWORD` where the gateway runs, or give the URL at run time: \
                         `--store {name}=postgres://…`"
                    )),
                ),
                Ok(false) => {}
            }
            StoreDatabase::Postgres { url: url.clone() }
        }
    }
}

/// Checks `url` as tokio-postgres will read it at start-up (`postgres[ql]://[user[:password]@]host[:port][,…]
/// [/database][?param=value&…]`); `Ok(true)` when it holds a password. The problem never repeats the URL.
fn check_postgres_url(url: &str) -> Result<bool, String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err("it must start with `postgres://` or `postgresql://`".to_owned());
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, _database) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, hosts) = authority.split_once('@').unwrap_or(("", authority));
    let mut password = credentials.contains(':');
    let mut host = false;
    for chunk in hosts.split(',').filter(|c| !c.is_empty()) {
        let (name, port) = match chunk.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((name, "")) => (name, None),
                Some((name, port)) => match port.strip_prefix(':') {
                    Some(port) => (name, Some(port)),
                    None => return Err("a bracketed IPv6 host is followed by something other than `:PORT`".to_owned()),
                },
                None => return Err("an IPv6 host lacks its closing `]`".to_owned()),
            },
            None => match chunk.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (chunk, None),
            },
        };
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return Err("a port is not a number from 0 to 65535".to_owned());
        }
        host |= !name.is_empty();
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err("a parameter has no `=`".to_owned());
        };
        if !POSTGRES_PARAMS.contains(&key) {
            let hint =
                did_you_mean(key, POSTGRES_PARAMS).map_or_else(String::new, |b| format!(" (did you mean `{b}`?)"));
            return Err(format!("unknown parameter `{key}`{hint}"));
        }
        match key {
            "host" => host |= !value.is_empty(),
            "password" => password = true,
            "sslmode" if value == "require" => {
                return Err("`sslmode=require`: TLS to PostgreSQL is not supported yet".to_owned());
            }
            "sslmode" if !matches!(value, "disable" | "prefer") => {
                return Err("`sslmode` is `disable` or `prefer`".to_owned());
            }
            "port" if value.split(',').any(|p| p.parse::<u16>().is_err()) => {
                return Err("a port is not a number from 0 to 65535".to_owned());
            }
            _ => {}
        }
    }
    if !host {
        return Err("it names no host (`postgres://HOST/DATABASE`)".to_owned());
    }
    Ok(password)
}

/// Checks the store target `target` (written at `at`, naming store `name`) of `op`.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_store_target(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    at: &str,
    target: &TargetExt,
    name: &str,
    path_params: &[String],
    stores: &mut Stores,
    diags: &mut Diagnostics,
) -> Option<Target> {
    let mut ok = true;
    if target.path.is_some() {
        diags.push(
            Diagnostic::error(
                format!("{at}/path"),
                "`path` rewrites an upstream path; a store target has none",
            )
            .help("remove `path`; the item is chosen by `key`"),
        );
        ok = false;
    }
    let store = stores.stores.iter().position(|s| s.name == name);
    if store.is_none() {
        let mut d = Diagnostic::error(format!("{at}/store"), format!("store `{name}` is not defined"));
        let known: Vec<&str> = stores.stores.iter().map(|s| s.name.as_str()).collect();
        d = match did_you_mean(name, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None if known.is_empty() => d.help(format!(
                "define it at the top level: `x-gateway: {{ stores: {{ {name}: {{ sqlite: data/{name}.db }} }} }}`"
            )),
            None => d.help(format!("defined stores: {}", known.join(", "))),
        };
        diags.push(d);
        ok = false;
    }
    let table = check_table(target.table.as_deref(), at, diags);
    let action = check_action(target.action.as_deref(), at, diags);
    let (Some(table), Some(action)) = (table, action) else {
        return None;
    };
    let key = check_key(target.key.as_deref(), action, at, path_params, diags);
    let filters = check_filters(spec, op, target.filter.as_deref(), action, at, diags);
    let id_field = match (&target.id_field, action) {
        (None, StoreAction::Create) => Some(DEFAULT_ID_FIELD.to_owned()),
        (Some(field), StoreAction::Create) if !field.is_empty() => Some(field.clone()),
        (Some(_), StoreAction::Create) => {
            diags.push(
                Diagnostic::error(format!("{at}/id_field"), "`id_field` is empty").help(format!(
                    "name the top-level field the new id goes in (default `{DEFAULT_ID_FIELD}`)"
                )),
            );
            None
        }
        (None, _) => Some(String::new()),
        (Some(_), _) => {
            diags.push(
                Diagnostic::error(
                    format!("{at}/id_field"),
                    format!(
                        "`id_field` says where `create` writes the id it makes; `{}` makes none",
                        action_name(action)
                    ),
                )
                .help("remove `id_field`"),
            );
            None
        }
    };
    if let Some(Store {
        database: StoreDatabase::Postgres { .. },
        name,
        ..
    }) = store.and_then(|i| stores.stores.get(i))
        && table.len() > POSTGRES_MAX_NAME
    {
        diags.push(
            Diagnostic::error(
                format!("{at}/table"),
                format!("`{table}` is too long a table name for PostgreSQL (store `{name}`)"),
            )
            .help(format!("use at most {POSTGRES_MAX_NAME} bytes")),
        );
        ok = false;
    }
    let (Some(store), true, Some(key), Some(filters), Some(id_field)) = (store, ok, key, filters, id_field) else {
        return None;
    };
    stores.use_table(store, &table, &filters);
    Some(Target::Store(StoreTarget {
        store,
        table,
        action,
        key,
        filters,
        id_field,
    }))
}

/// What a store write needs of its `requestBody`, which the body phase checks every write against: a JSON media
/// type (an error without one); a warning without a `requestBody` (any JSON is stored) or with `validate.body: false`
/// (ignored).
pub(super) fn check_stored_body(spec: &ParsedSpec, op: &ParsedOperation, diags: &mut Diagnostics) {
    if let Some(at) = contract::body_turned_off(spec, op) {
        diags.push(
            Diagnostic::warning(
                at,
                "`validate: { body: false }` is ignored: a store keeps the body, so it is always checked against the `requestBody`",
            )
            .help("remove `body: false` here"),
        );
    }
    let Some(request_body) = &op.operation.request_body else {
        diags.push(
            Diagnostic::warning(
                &op.pointer,
                format!(
                    "{} {} stores its request body but declares no `requestBody`: any JSON is stored",
                    op.method, op.template
                ),
            )
            .help("declare `requestBody: { required: true, content: { application/json: { schema: ... } } }` to have bodies checked"),
        );
        return;
    };
    let base = match request_body {
        ReferenceOr::Reference { reference } => reference.strip_prefix('#').unwrap_or("").to_owned(),
        ReferenceOr::Item(_) => format!("{}/requestBody", op.pointer),
    };
    // An unresolvable `requestBody` was reported by the parser.
    let Ok(resolved) = refs::resolve(&spec.openapi, request_body) else {
        return;
    };
    if !resolved.content.keys().any(|m| contract::is_json(m)) {
        diags.push(
            Diagnostic::error(
                format!("{base}/content"),
                "a store keeps its items as JSON, but this `requestBody` declares no JSON media type",
            )
            .help(
                "declare `application/json` (and for a merge, `application/merge-patch+json`) with the item's schema",
            ),
        );
    }
}

fn action_name(action: StoreAction) -> &'static str {
    StoreAction::ALL
        .iter()
        .find(|(_, a)| *a == action)
        .map_or("?", |(name, _)| name)
}

fn check_table(table: Option<&str>, at: &str, diags: &mut Diagnostics) -> Option<String> {
    let Some(table) = table else {
        diags.push(
            Diagnostic::error(at, "a store target needs `table`")
                .help("e.g. `target: { store: main, table: pets, action: get, key: \"{path.petId}\" }`"),
        );
        return None;
    };
    let mut chars = table.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let lower = table.to_ascii_lowercase();
    let problem = if !identifier {
        Some("use letters, digits and `_`, not starting with a digit (`[A-Za-z_][A-Za-z0-9_]*`)")
    } else if lower.starts_with("sqlite_") || lower.starts_with("_gateway") {
        Some("names starting with `sqlite_` or `_gateway` are the database's and the gateway's own")
    } else {
        None
    };
    if let Some(problem) = problem {
        diags.push(Diagnostic::error(format!("{at}/table"), format!("`{table}` cannot name a table")).help(problem));
        return None;
    }
    Some(table.to_owned())
}

fn check_action(action: Option<&str>, at: &str, diags: &mut Diagnostics) -> Option<StoreAction> {
    let names = StoreAction::ALL.iter().map(|(name, _)| *name);
    let Some(action) = action else {
        diags.push(
            Diagnostic::error(at, "a store target needs `action`")
                .help(format!("one of: {}", names.collect::<Vec<_>>().join(", "))),
        );
        return None;
    };
    if let Some((_, known)) = StoreAction::ALL.iter().find(|(name, _)| *name == action) {
        return Some(*known);
    }
    let mut d = Diagnostic::error(format!("{at}/action"), format!("unknown store action `{action}`"));
    d = match did_you_mean(action, names.clone()) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None => d.help(format!("one of: {}", names.collect::<Vec<_>>().join(", "))),
    };
    diags.push(d);
    None
}

/// The key template: required for the actions on one item, refused for the others, made of literal text and the
/// operation's path parameters.
fn check_key(
    key: Option<&str>,
    action: StoreAction,
    at: &str,
    path_params: &[String],
    diags: &mut Diagnostics,
) -> Option<Vec<KeyPart>> {
    let name = action_name(action);
    let key = match (key, action.keyed()) {
        (None, false) => return Some(Vec::new()),
        (Some(_), false) => {
            let why = if action == StoreAction::Create {
                "`create` makes the key itself (a UUIDv7)"
            } else {
                "`list` reads many items, in key order"
            };
            diags
                .push(Diagnostic::error(format!("{at}/key"), format!("{why}: it takes no `key`")).help("remove `key`"));
            return None;
        }
        (None, true) => {
            let example = path_params
                .first()
                .map_or_else(|| "{path.id}".to_owned(), |p| format!("{{path.{p}}}"));
            diags.push(
                Diagnostic::error(
                    at,
                    format!("a store `{name}` needs `key`: which item, from the request path"),
                )
                .help(format!("e.g. `key: \"{example}\"`")),
            );
            return None;
        }
        (Some(key), true) => key,
    };
    let at = format!("{at}/key");
    if key.is_empty() {
        diags.push(Diagnostic::error(&at, "`key` is empty").help("e.g. `key: \"{path.petId}\"`"));
        return None;
    }
    let pieces = match template::scan(key) {
        Ok(pieces) => pieces,
        Err(e) => {
            diags.push(Diagnostic::error(&at, format!("invalid key template: {e}")));
            return None;
        }
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for piece in pieces {
        match piece {
            Piece::Literal(text) => parts.push(KeyPart::Literal(text)),
            Piece::Placeholder(placeholder) => match template::qualify(&placeholder) {
                Ok((Namespace::Path, param)) => match path_params.iter().position(|p| p == param) {
                    Some(i) => parts.push(KeyPart::Param(i)),
                    None => {
                        let mut d = Diagnostic::error(
                            &at,
                            format!("key placeholder `{{{placeholder}}}` names no path parameter of this operation"),
                        );
                        d = match did_you_mean(param, path_params.iter().map(String::as_str)) {
                            Some(best) => d.help(format!("did you mean `{{path.{best}}}`?")),
                            None if path_params.is_empty() => {
                                d.help("the operation has no path parameters: a key comes from the request path")
                            }
                            None => d.help(format!("its path parameters are: {}", path_params.join(", "))),
                        };
                        diags.push(d);
                        ok = false;
                    }
                },
                Ok(_) => {
                    diags.push(
                        Diagnostic::error(
                            &at,
                            format!("`{{{placeholder}}}`: a key is made of path parameters only"),
                        )
                        .help("write `{path.NAME}` (or `{NAME}`) for a path parameter of the operation"),
                    );
                    ok = false;
                }
                Err(e) => {
                    diags.push(Diagnostic::error(&at, e));
                    ok = false;
                }
            },
        }
    }
    ok.then_some(parts)
}

/// The filters of a list: declared query parameters with a scalar schema, each naming a top-level field.
fn check_filters(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    filter: Option<&[String]>,
    action: StoreAction,
    at: &str,
    diags: &mut Diagnostics,
) -> Option<Vec<StoreFilter>> {
    let Some(names) = filter else {
        return Some(Vec::new());
    };
    if action != StoreAction::List {
        diags.push(
            Diagnostic::error(
                format!("{at}/filter"),
                format!("only `list` filters; `{}` addresses one item", action_name(action)),
            )
            .help("remove `filter`"),
        );
        return None;
    }
    let queries: Vec<(&str, &Parameter)> = op
        .params
        .iter()
        .filter(|(_, p)| matches!(p, Parameter::Query { .. }))
        .map(|(_, p)| (p.parameter_data_ref().name.as_str(), p))
        .collect();
    let mut filters: Vec<StoreFilter> = Vec::new();
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let fat = format!("{at}/filter/{i}");
        if PAGING.contains(&name.as_str()) {
            diags.push(
                Diagnostic::error(&fat, format!("`{name}` pages the list; it cannot also filter it"))
                    .help("filter on another field"),
            );
            ok = false;
            continue;
        }
        let Some((_, parameter)) = queries.iter().find(|(q, _)| q == name) else {
            let mut d = Diagnostic::error(
                &fat,
                format!("filter `{name}` is not a query parameter of this operation"),
            );
            d = match did_you_mean(name, queries.iter().map(|(q, _)| *q)) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help(format!(
                    "declare it: `parameters: [{{ name: {name}, in: query, schema: {{ type: string }} }}]`"
                )),
            };
            diags.push(d);
            ok = false;
            continue;
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            diags.push(
                Diagnostic::error(&fat, format!("`{name}` cannot name a filtered field"))
                    .help("a filter names a top-level field: letters, digits, `_`, `-` and `.`"),
            );
            ok = false;
            continue;
        }
        let kind = match filter_kind(spec, parameter) {
            Ok(kind) => kind,
            Err(what) => {
                diags.push(
                    Diagnostic::error(
                        &fat,
                        format!("filter `{name}` compares one value, and `{name}` is {what}"),
                    )
                    .help("give the parameter a string, integer, number or boolean schema"),
                );
                ok = false;
                continue;
            }
        };
        if !filters.iter().any(|f| f.query == *name) {
            filters.push(StoreFilter {
                query: name.clone(),
                kind,
            });
        }
    }
    ok.then_some(filters)
}

/// The runtime's `StoreFilterKind` for a query parameter's schema, or what the parameter is when no one value can
/// stand for it.
fn filter_kind(spec: &ParsedSpec, parameter: &Parameter) -> Result<&'static str, &'static str> {
    let ParameterSchemaOrContent::Schema(schema) = &parameter.parameter_data_ref().format else {
        return Err("a `content` parameter");
    };
    // An unresolvable `$ref` was reported by the parser; compare as text meanwhile.
    let Ok(resolved) = refs::resolve(&spec.openapi, schema) else {
        return Ok("String");
    };
    match &resolved.schema_kind {
        SchemaKind::Type(Type::Integer(_)) => Ok("Integer"),
        SchemaKind::Type(Type::Number(_)) => Ok("Number"),
        SchemaKind::Type(Type::Boolean(_)) => Ok("Boolean"),
        SchemaKind::Type(Type::Array(_)) => Err("an array"),
        SchemaKind::Type(Type::Object(_)) => Err("an object"),
        _ => Ok("String"),
    }
}
