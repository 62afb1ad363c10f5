//! The PostgreSQL store, against a real server of each test's own (`gateway_tests::postgres`): first through the
//! public [`Store`] API, as function targets use it (every call, version and condition, paging, filters, two stores
//! racing on one database, a database that is down or slow), then through the generated `depot-gateway`
//! (tests/specs/depot.yaml): CRUD and conditional writes over HTTP, writes that survive a `kill -9` of the gateway,
//! two gateway processes on one database, and a database that comes up after the gateway.
//!
//! The server asks for a password over TCP, so every URL here holds one: no log line or error may show it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_runtime::spec::{StoreBackendSpec, StoreSpec, StoreTableSpec};
use gateway_runtime::store::{
    Condition, ListQuery, PostgresUrl, Store, StoreError, StoreLocation, StoreOverride, open_all,
};
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::postgres::PostgresServer;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::assert_problem;

const BIN: &str = "depot-gateway";

/// A store like the ones the generator emits: one table with filters, one without. Its own URL is never used: the
/// tests point it at their server.
static SPEC: StoreSpec = StoreSpec {
    name: "t",
    backend: StoreBackendSpec::Postgres {
        url: "postgres://nobody@127.0.0.1:9/never",
    },
    tables: &[
        StoreTableSpec {
            name: "pets",
            indexes: &["status", "n", "ok"],
        },
        StoreTableSpec {
            name: "toys",
            indexes: &[],
        },
    ],
};

/// The store of [`SPEC`] in the database at `url`.
fn open(url: &str) -> Store {
    let at = StoreLocation::Postgres(PostgresUrl::parse(url).expect("a PostgreSQL URL"));
    Store::open(&SPEC, Some(&at)).expect("the store opens")
}

fn is_unavailable(result: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable { .. }))
}

#[tokio::test]
async fn postgres_store_calls_are_versioned_and_conditional_and_never_reuse_a_version() {
    let pg = PostgresServer::start();
    let url = pg.create_database("calls");
    let store = open(&url);
    let pet = json!({"name": "Rex", "status": "available"});

    assert_eq!(store.get("pets", "1").await.expect("get"), None);
    // Conditions on an item that does not exist.
    for condition in [Condition::IfMatch(1), Condition::IfExists] {
        let refused = store.put("pets", "1", pet.clone(), condition).await;
        assert!(
            matches!(refused, Err(StoreError::PreconditionFailed)),
            "{condition:?}: {refused:?}"
        );
        let refused = store.merge("pets", "1", json!({}), condition).await;
        assert!(matches!(refused, Err(StoreError::PreconditionFailed)), "{refused:?}");
        let refused = store.delete("pets", "1", condition).await;
        assert!(matches!(refused, Err(StoreError::PreconditionFailed)), "{refused:?}");
    }
    let missing = store.merge("pets", "1", json!({}), Condition::Always).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "a merge never creates: {missing:?}"
    );
    assert!(!store.delete("pets", "1", Condition::Always).await.expect("delete"));

    let (item, created) = store
        .put("pets", "1", pet.clone(), Condition::IfNoneMatchAny)
        .await
        .expect("create-only put");
    assert!(created);
    assert_eq!((item.version, &item.value), (1, &pet));
    let again = store.put("pets", "1", pet.clone(), Condition::IfNoneMatchAny).await;
    assert!(matches!(again, Err(StoreError::PreconditionFailed)), "{again:?}");
    let stale = store.put("pets", "1", pet.clone(), Condition::IfMatch(7)).await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed)), "{stale:?}");
    let (item, created) = store
        .put("pets", "1", pet.clone(), Condition::IfMatch(1))
        .await
        .expect("put");
    assert!(!created);
    assert_eq!(item.version, 2);
    let (item, _) = store
        .put("pets", "1", pet.clone(), Condition::IfExists)
        .await
        .expect("put");
    assert_eq!(item.version, 3);
    let (item, created) = store
        .put("pets", "1", pet.clone(), Condition::Always)
        .await
        .expect("upsert");
    assert_eq!((item.version, created), (4, false));

    // A merge patch, RFC 7396: members replaced, `null` removed; the document keeps its members' order.
    let merged = store
        .merge(
            "pets",
            "1",
            json!({"tag": "dog", "status": null}),
            Condition::IfMatch(4),
        )
        .await
        .expect("merge");
    assert_eq!(merged.value, json!({"name": "Rex", "tag": "dog"}));
    assert_eq!(merged.version, 5);
    let read = store.get("pets", "1").await.expect("get").expect("the item");
    assert_eq!(read, merged);
    assert_eq!(read.value.to_string(), r#"{"name":"Rex","tag":"dog"}"#);
    let stale = store
        .merge("pets", "1", json!({"tag": "cat"}), Condition::IfMatch(4))
        .await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed)), "{stale:?}");

    let stale = store.delete("pets", "1", Condition::IfMatch(4)).await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed)), "{stale:?}");
    assert!(store.delete("pets", "1", Condition::IfMatch(5)).await.expect("delete"));
    assert_eq!(store.get("pets", "1").await.expect("get"), None);
    let exists = store.put("pets", "1", pet.clone(), Condition::IfNoneMatchAny).await;
    // Created again, the key does not get an old version back: an old ETag cannot match the new item.
    assert_eq!(exists.expect("created again").0.version, 6);
    assert!(store.delete("pets", "1", Condition::IfExists).await.expect("delete"));

    // Another table has its own counter; any JSON document is stored as it is.
    let (toy, _) = store
        .put("toys", "a", Value::Null, Condition::Always)
        .await
        .expect("put");
    assert_eq!(toy.version, 1);
    let created = store
        .create_with_id("toys", json!({"x": 1}), Some("id"))
        .await
        .expect("create");
    assert_eq!(created.version, 2);
    assert_eq!(created.value["id"], json!(created.key));
    let unknown = store.get("cats", "1").await;
    assert!(matches!(unknown, Err(StoreError::UnknownTable { .. })), "{unknown:?}");

    // What PostgreSQL cannot hold is the client's mistake, not an outage.
    let nul = store.put("toys", "a\0b", json!(1), Condition::Always).await;
    assert!(matches!(nul, Err(StoreError::KeyNotStorable(_))), "{nul:?}");
    let nul = store
        .put("pets", "n", json!({"name": "a\u{0}b"}), Condition::Always)
        .await;
    assert!(matches!(nul, Err(StoreError::ValueNotStorable(_))), "{nul:?}");
    let (kept, _) = store
        .put("toys", "n", json!({"name": "a\u{0}b"}), Condition::Always)
        .await
        .expect("no index: kept");
    assert_eq!(store.get("toys", "n").await.expect("get"), Some(kept));

    // A second store on the database (another replica, or a restart): the schema is there, the counters go on.
    drop(store);
    let store = open(&url);
    let (item, _) = store
        .put("pets", "2", Value::Null, Condition::Always)
        .await
        .expect("put");
    assert_eq!(
        item.version, 8,
        "after 1 to 6, and 7 used by the write that was refused"
    );
    // What was created: a table, a sequence and an index per filter, no more.
    let objects = pg.psql(
        "calls",
        "SELECT string_agg(relkind::text || ':' || relname, ' ' ORDER BY relname) FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace",
    );
    assert_eq!(objects.matches("r:").count(), 2, "{objects}");
    assert_eq!(objects.matches("S:").count(), 2, "{objects}");
    assert_eq!(objects.matches("i:_gateway_i_pets_").count(), 3, "{objects}");
}

#[tokio::test]
async fn postgres_store_lists_page_in_key_order_through_filters() {
    let pg = PostgresServer::start();
    let store = open(&pg.create_database("lists"));
    for i in 0..25 {
        let status = if i % 2 == 0 { "sold" } else { "available" };
        let value = json!({"n": i, "status": status, "ok": i % 5 == 0});
        store
            .put("pets", &format!("{i:03}"), value, Condition::Always)
            .await
            .expect("put");
    }
    let mut query = ListQuery {
        limit: 5,
        cursor: None,
        filters: vec![("status".to_owned(), Value::from("sold"))],
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list("pets", &query).await.expect("list");
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|item| item.value["n"].as_i64().unwrap_or(-1)));
        pages += 1;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).step_by(2).collect::<Vec<i64>>());
    assert_eq!(pages, 3, "13 items, 5 a page");

    let only = |field: &str, value: Value| ListQuery {
        limit: 100,
        cursor: None,
        filters: vec![(field.to_owned(), value)],
    };
    // Numbers compare as numbers (`3` is `3.0`), never as text; booleans as booleans.
    let page = store.list("pets", &only("n", json!(3))).await.expect("list");
    assert_eq!(page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["003"]);
    store
        .put("pets", "100", json!({"n": 3.0}), Condition::Always)
        .await
        .expect("put");
    store
        .put("pets", "101", json!({"n": "3"}), Condition::Always)
        .await
        .expect("put");
    let page = store.list("pets", &only("n", json!(3))).await.expect("list");
    assert_eq!(
        page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["003", "100"]
    );
    let page = store.list("pets", &only("ok", json!(true))).await.expect("list");
    assert_eq!(page.items.len(), 5);
    let mut both = only("ok", json!(true));
    both.filters.push(("status".to_owned(), json!("sold")));
    let page = store.list("pets", &both).await.expect("list");
    assert_eq!(
        page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["000", "010", "020"]
    );

    // Key order is byte order, whatever the database's collation: as SQLite's.
    for key in ["b", "B", "a", "ä", "a-1", "a1"] {
        store
            .put("toys", key, json!(key), Condition::Always)
            .await
            .expect("put");
    }
    let page = store
        .list(
            "toys",
            &ListQuery {
                limit: 3,
                ..ListQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(
        page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["B", "a", "a-1"]
    );
    let rest = ListQuery {
        limit: 10,
        cursor: page.next_cursor,
        filters: Vec::new(),
    };
    let page = store.list("toys", &rest).await.expect("list");
    assert_eq!(
        page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["a1", "b", "ä"]
    );
    assert_eq!(page.next_cursor, None);

    for cursor in ["%%%", "AA"] {
        let bad = ListQuery {
            cursor: Some(cursor.to_owned()),
            ..only("n", json!(1))
        };
        assert!(
            matches!(store.list("pets", &bad).await, Err(StoreError::BadCursor)),
            "{cursor}"
        );
    }
    let too_many = ListQuery {
        limit: 1001,
        ..ListQuery::default()
    };
    assert!(matches!(
        store.list("pets", &too_many).await,
        Err(StoreError::BadLimit(1001))
    ));
}

#[tokio::test]
async fn two_stores_on_one_database_race_and_exactly_one_conditional_write_wins() {
    let pg = PostgresServer::start();
    let url = pg.create_database("race");
    let (a, b) = (open(&url), open(&url));
    let (item, _) = a
        .put("pets", "x", json!({"n": 0}), Condition::Always)
        .await
        .expect("put");
    let mut version = item.version;
    for round in 1..=20 {
        let (left, right) = tokio::join!(
            a.put("pets", "x", json!({"n": round, "by": "a"}), Condition::IfMatch(version)),
            b.merge("pets", "x", json!({"n": round, "by": "b"}), Condition::IfMatch(version)),
        );
        let winners: Vec<u64> = [left.map(|(item, _)| item.version), right.map(|item| item.version)]
            .into_iter()
            .filter_map(|result| match result {
                Ok(version) => Some(version),
                Err(StoreError::PreconditionFailed) => None,
                Err(other) => panic!("round {round}: {other}"),
            })
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of two `If-Match: {version}` wins"
        );
        version = winners[0];
    }
    let last = b.get("pets", "x").await.expect("get").expect("the item");
    assert_eq!((last.version, &last.value["n"]), (version, &json!(20)));

    // Creating one key from both at once: one creates it, the other finds it there.
    for round in 0..20 {
        let key = format!("new-{round}");
        let (left, right) = tokio::join!(
            a.put("pets", &key, json!("a"), Condition::IfNoneMatchAny),
            b.put("pets", &key, json!("b"), Condition::IfNoneMatchAny),
        );
        let created = [&left, &right].iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "round {round}: {left:?} {right:?}");
        // Unconditional upserts of one new key from both: both succeed, one creating and one replacing.
        let key = format!("up-{round}");
        let (left, right) = tokio::join!(
            a.put("pets", &key, json!("a"), Condition::Always),
            b.put("pets", &key, json!("b"), Condition::Always),
        );
        let (left, right) = (left.expect("upsert"), right.expect("upsert"));
        assert!(left.1 != right.1, "round {round}: exactly one created it");
        assert_ne!(left.0.version, right.0.version);
    }

    // Many writes from both: every version once.
    let writes: Vec<_> = (0..100)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .put("toys", &format!("k{i}"), json!(i), Condition::IfNoneMatchAny)
                    .await
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for write in writes {
        let (item, created) = write.await.expect("task").expect("put");
        assert!(created);
        assert!(versions.insert(item.version), "version {} given twice", item.version);
    }
    assert_eq!(versions.len(), 100);
}

#[tokio::test]
async fn a_database_that_is_down_or_slow_is_unavailable_within_seconds_and_the_store_recovers() {
    let mut pg = PostgresServer::start();
    let url = pg.create_database("outage");
    let store = open(&url);
    store
        .put("pets", "held", json!({"n": 1}), Condition::Always)
        .await
        .expect("put");

    // A row another session keeps locked: the write waits for its statement timeout, no longer.
    let mut holder = pg.psql_in_background(
        "outage",
        r#"BEGIN; SELECT 1 FROM "pets" WHERE "key" = 'held' FOR UPDATE; SELECT pg_sleep(60); COMMIT;"#,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql(
        "outage",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'tuple' OR mode = 'RowShareLock'",
    ) == "0"
    {
        assert!(Instant::now() < deadline, "the lock is taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let blocked = store.put("pets", "held", json!({"n": 2}), Condition::Always).await;
    assert!(is_unavailable(&blocked), "{blocked:?}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "bounded, took {:?}",
        started.elapsed()
    );
    let read = store
        .get("pets", "held")
        .await
        .expect("reads do not wait for row locks");
    assert_eq!(read.map(|i| i.value), Some(json!({"n": 1})));
    let _ = holder.kill();
    let _ = holder.wait();

    // The server goes away: calls fail at once or within the timeout, never hang, and never show the password.
    pg.stop();
    let started = Instant::now();
    let down = store.get("pets", "held").await;
    assert!(is_unavailable(&down), "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let text = down.expect_err("unavailable").to_string();
    assert!(!text.contains(&pg.password), "{text}");

    // A store opened while the database is down: open does not fail, calls are refused at once.
    let started = Instant::now();
    let late = open(&url);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "open waits briefly, took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let refused = late.put("pets", "late", json!(1), Condition::Always).await;
    assert!(is_unavailable(&refused), "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "at once, took {:?}",
        started.elapsed()
    );

    // Back: both stores recover by themselves.
    pg.restart();
    for store in [&store, &late] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match store.put("pets", "late", json!(2), Condition::Always).await {
                Ok(_) => break,
                Err(err) => assert!(Instant::now() < deadline, "the store recovers: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        late.get("pets", "held").await.expect("get").map(|i| i.value),
        Some(json!({"n": 1})),
        "the refused write changed nothing"
    );
}

#[tokio::test]
async fn store_overrides_pick_postgres_by_url_and_sqlite_by_path() {
    let pg = PostgresServer::start();
    let url = pg.create_database("overrides");
    let dir = std::env::temp_dir().join(format!("e2e-pg-override-{}", std::process::id()));
    let overrides: Vec<StoreOverride> = vec![format!("t={}", dir.join("t.db").display()).parse().expect("a path")];
    let stores = open_all(std::slice::from_ref(&SPEC), &overrides, None).expect("SQLite at the path");
    stores[0]
        .put("toys", "a", json!(1), Condition::Always)
        .await
        .expect("put");
    assert!(dir.join("t.db").exists());
    drop(stores);
    let _ = std::fs::remove_dir_all(&dir);
    let overrides: Vec<StoreOverride> = vec![format!("t={url}").parse().expect("a URL")];
    let stores = open_all(std::slice::from_ref(&SPEC), &overrides, None).expect("PostgreSQL");
    stores[0]
        .put("toys", "a", json!(1), Condition::Always)
        .await
        .expect("put");
    assert_eq!(pg.psql("overrides", r#"SELECT "value"::text FROM "toys""#), "1");
    let bad = "t=postgres://u:topsecret@h:nope/db"
        .parse::<StoreOverride>()
        .expect_err("refused");
    assert!(!bad.to_string().contains("topsecret"), "{bad}");
}

// ---- Through the gateway ----

/// The depot gateway with its store in the database at `url`.
fn start(url: &str) -> Gateway {
    start_with(url, &[])
}

fn start_with(url: &str, env: &[(&str, &str)]) -> Gateway {
    Gateway::start_with_env(
        BIN,
        &[
            "--store".into(),
            format!("main={url}"),
            "--access-log".into(),
            "off".into(),
            "--admin-listen".into(),
            "off".into(),
        ],
        env,
    )
    .expect("gateway starts")
}

async fn call(gw: &Gateway, method: Method, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let mut all = headers.to_vec();
    if !body.is_null() {
        all.push(("content-type", "application/json"));
    }
    send(method.clone(), &gw.url(path), &all, bytes)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn parcel(to: &str, status: &str) -> Value {
    json!({ "to": to, "status": status, "kg": 2 })
}

#[tokio::test]
async fn a_postgres_store_target_serves_crud_and_conditional_writes_over_http() {
    let pg = PostgresServer::start();
    let mut gw = start(&pg.create_database("depot"));
    let missing = call(&gw, Method::GET, "/parcels/p1", &[], &Value::Null).await;
    assert_problem(&missing, StatusCode::NOT_FOUND);

    let created = call(
        &gw,
        Method::PUT,
        "/parcels/p1",
        &[("if-none-match", "*")],
        &parcel("Ann", "packed"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("etag"), Some("\"1\""));
    let exists = call(
        &gw,
        Method::PUT,
        "/parcels/p1",
        &[("if-none-match", "*")],
        &parcel("Bo", "packed"),
    )
    .await;
    assert_problem(&exists, StatusCode::PRECONDITION_FAILED);
    let read = call(&gw, Method::GET, "/parcels/p1", &[], &Value::Null).await;
    assert_eq!((read.status, read.header("etag")), (StatusCode::OK, Some("\"1\"")));
    assert_eq!(
        read.text(),
        parcel("Ann", "packed").to_string(),
        "the document as written"
    );
    let fresh = call(
        &gw,
        Method::GET,
        "/parcels/p1",
        &[("if-none-match", "\"1\"")],
        &Value::Null,
    )
    .await;
    assert_eq!(fresh.status, StatusCode::NOT_MODIFIED);

    for tag in ["\"7\"", "W/\"1\""] {
        let stale = call(
            &gw,
            Method::PUT,
            "/parcels/p1",
            &[("if-match", tag)],
            &parcel("Bo", "sent"),
        )
        .await;
        assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
        let stale = call(
            &gw,
            Method::PATCH,
            "/parcels/p1",
            &[("if-match", tag)],
            &json!({"status": "sent"}),
        )
        .await;
        assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
        let stale = call(&gw, Method::DELETE, "/parcels/p1", &[("if-match", tag)], &Value::Null).await;
        assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
    }
    let put = call(
        &gw,
        Method::PUT,
        "/parcels/p1",
        &[("if-match", "\"1\"")],
        &json!({"to": "Bo", "status": "sent", "kg": 2, "notes": "fragile"}),
    )
    .await;
    assert_eq!((put.status, put.header("etag")), (StatusCode::OK, Some("\"2\"")));
    let patched = call(
        &gw,
        Method::PATCH,
        "/parcels/p1",
        &[("if-match", "\"2\""), ("content-type", "application/merge-patch+json")],
        &json!({"status": "delivered", "notes": null}),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(patched.json(), json!({"to": "Bo", "status": "delivered", "kg": 2}));
    assert_eq!(patched.header("etag"), Some("\"3\""));
    let gone = call(&gw, Method::DELETE, "/parcels/p1", &[("if-match", "*")], &Value::Null).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = call(&gw, Method::PUT, "/parcels/p1", &[], &parcel("Cy", "packed")).await;
    assert_eq!(
        (again.status, again.header("etag")),
        (StatusCode::CREATED, Some("\"4\""))
    );

    // Creations, listed in order, filtered and paged.
    let mut ids = Vec::new();
    for i in 0..7 {
        let status = if i % 2 == 0 { "sent" } else { "packed" };
        let created = call(
            &gw,
            Method::POST,
            "/parcels",
            &[],
            &json!({"to": format!("c{i}"), "status": status}),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let id = created.json()["id"].as_str().expect("an id").to_owned();
        assert_eq!(created.header("location"), Some(format!("/parcels/{id}").as_str()));
        ids.push(id);
    }
    let mut path = "/parcels?status=sent&limit=2".to_owned();
    let mut listed = Vec::new();
    loop {
        let page = call(&gw, Method::GET, &path, &[], &Value::Null).await.json();
        listed.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["id"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/parcels?status=sent&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(listed, [ids[0].clone(), ids[2].clone(), ids[4].clone(), ids[6].clone()]);
    let by_weight = call(&gw, Method::GET, "/parcels?kg=2", &[], &Value::Null).await.json();
    assert_eq!(by_weight["items"], json!([parcel("Cy", "packed")]));
    let bad = call(&gw, Method::GET, "/parcels?cursor=%25%25", &[], &Value::Null).await;
    assert_eq!(
        assert_problem(&bad, StatusCode::BAD_REQUEST)["parameter"]["name"],
        "cursor"
    );
    let nul = call(&gw, Method::PUT, "/parcels/a%00b", &[], &parcel("Ann", "packed")).await;
    assert_problem(&nul, StatusCode::BAD_REQUEST);

    let _ = gw.terminate(Duration::from_secs(10));
    let logs = gw.take_stderr();
    assert!(logs.contains("store opened (PostgreSQL"), "{logs}");
    assert!(!logs.contains(&pg.password), "the password is never logged: {logs}");
}

/// `kill -9` of a process by its PID.
fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

/// A write of parcel `key` (its key also in `notes`); `true` when the gateway acknowledged it.
async fn write(url: String, key: String) -> bool {
    let body = json!({ "to": "durable", "status": "packed", "notes": key });
    send(
        Method::PUT,
        &format!("{url}/parcels/{key}"),
        &[("content-type", "application/json")],
        Bytes::from(body.to_string()),
    )
    .await
    .is_ok_and(|reply| reply.status == StatusCode::CREATED)
}

/// Every parcel's `notes`, read through the gateway a page at a time.
async fn stored_notes(gw: &Gateway) -> BTreeSet<String> {
    let mut notes = BTreeSet::new();
    let mut path = "/parcels?limit=1000".to_owned();
    loop {
        let page = call(gw, Method::GET, &path, &[], &Value::Null).await.json();
        for item in page["items"].as_array().into_iter().flatten() {
            notes.insert(item["notes"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/parcels?limit=1000&cursor={cursor}"),
            None => return notes,
        }
    }
}

#[tokio::test]
async fn a_killed_gateway_loses_no_write_it_acknowledged_to_postgres() {
    const CLIENTS: usize = 4;
    let pg = PostgresServer::start();
    let db = pg.create_database("durable");
    let mut gw = start(&db);
    let url = gw.url("");

    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, acked, sent) = (url.clone(), Arc::clone(&acked), Arc::clone(&sent));
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("w-{c}-{i:04}");
                    sent.lock().unwrap_or_else(PoisonError::into_inner).push(key.clone());
                    if !write(url.clone(), key.clone()).await {
                        return;
                    }
                    acked.lock().unwrap_or_else(PoisonError::into_inner).push(key);
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap_or_else(PoisonError::into_inner).len() < 100 {
        assert!(started.elapsed() < Duration::from_secs(60), "writes are acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill_9(gw.pid());
    let status = gw.terminate(Duration::from_secs(10)).expect("the process ended");
    assert!(!status.success(), "killed, not shut down: {status:?}");
    for writer in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    }
    let acked: BTreeSet<String> = acked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    let sent: BTreeSet<String> = sent
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();

    let gw = start(&db);
    let stored = stored_notes(&gw).await;
    let missing: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    let unexpected: Vec<&String> = stored.iter().filter(|k| !sent.contains(*k)).collect();
    assert!(unexpected.is_empty(), "items nobody wrote: {unexpected:?}");
}

#[tokio::test]
async fn two_gateways_on_one_database_see_each_others_writes_and_one_if_match_wins() {
    let pg = PostgresServer::start();
    let db = pg.create_database("pair");
    let (a, b) = (start(&db), start(&db));
    let put = call(&a, Method::PUT, "/parcels/shared", &[], &parcel("Ann", "packed")).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let read = call(&b, Method::GET, "/parcels/shared", &[], &Value::Null).await;
    assert_eq!((read.status, read.header("etag")), (StatusCode::OK, Some("\"1\"")));
    let patched = call(
        &b,
        Method::PATCH,
        "/parcels/shared",
        &[("if-match", "\"1\"")],
        &json!({"status": "sent"}),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK);
    let stale = call(
        &a,
        Method::PUT,
        "/parcels/shared",
        &[("if-match", "\"1\"")],
        &parcel("Ann", "delivered"),
    )
    .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);

    // The same `If-Match` through both at once, many times: one 200 and one 412 each time.
    let mut etag = patched.header("etag").expect("an ETag").to_owned();
    for round in 0..15 {
        let condition = [("if-match", etag.as_str())];
        let (whole, patch) = (parcel("a", "sent"), json!({"to": "b"}));
        let (left, right) = tokio::join!(
            call(&a, Method::PUT, "/parcels/shared", &condition, &whole),
            call(&b, Method::PATCH, "/parcels/shared", &condition, &patch),
        );
        let mut statuses = [left.status, right.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}"
        );
        let winner = if left.status == StatusCode::OK { left } else { right };
        etag = winner.header("etag").expect("an ETag").to_owned();
    }
    let created = call(&b, Method::POST, "/parcels", &[], &parcel("Bo", "packed")).await;
    let location = created.header("location").expect("Location").to_owned();
    assert_eq!(
        call(&a, Method::GET, &location, &[], &Value::Null).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_gateway_starts_before_its_database_and_serves_once_it_is_up() {
    let mut pg = PostgresServer::start();
    let db = pg.create_database("late");
    pg.stop();
    let mut gw = start(&db);
    let refused = call(&gw, Method::GET, "/parcels/p1", &[], &Value::Null).await;
    assert_eq!(
        assert_problem(&refused, StatusCode::SERVICE_UNAVAILABLE)["detail"],
        "the store is unavailable"
    );
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let put = call(&gw, Method::PUT, "/parcels/p1", &[], &parcel("Ann", "packed")).await;
        if put.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(put.status, StatusCode::SERVICE_UNAVAILABLE, "{}", put.text());
        assert!(Instant::now() < deadline, "the gateway serves once the database is up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A wrong password: the gateway starts, its store is unavailable, and no log shows the password.
    let wrong = db.replace(&pg.password, "not-the-password");
    let mut other = start_with(&wrong, &[]);
    let refused = call(&other, Method::GET, "/parcels/p1", &[], &Value::Null).await;
    assert_problem(&refused, StatusCode::SERVICE_UNAVAILABLE);
    // PGPASSWORD fills in a URL without one.
    let bare = db.replace(&format!(":{}@", pg.password), "@");
    let from_env = start_with(&bare, &[("PGPASSWORD", pg.password.as_str())]);
    let read = call(&from_env, Method::GET, "/parcels/p1", &[], &Value::Null).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    for gateway in [&mut gw, &mut other] {
        let _ = gateway.terminate(Duration::from_secs(10));
        let logs = gateway.take_stderr();
        assert!(logs.contains("cannot be reached"), "{logs}");
        assert!(
            !logs.contains(&pg.password) && !logs.contains("not-the-password"),
            "{logs}"
        );
    }
}
