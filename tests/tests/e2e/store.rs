//! Store targets, against the generated `petstore-gateway`: its `/adoptions` resource lives in store `main`, put in
//! a fresh directory of each test with `--store main=PATH`.
//!
//! Besides what each action answers, two properties of the store itself: a write the gateway acknowledged survives
//! a `kill -9` of the gateway (the real binary, killed by its PID, restarted on the same file), and a database another
//! process has locked is a `503` after the lock wait, never a hang, while reads go on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{BIN, assert_problem};

/// A directory of its own under the system's temporary one, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("e2e-store-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    /// The database file (in a subdirectory the gateway must create).
    fn db(&self) -> PathBuf {
        self.0.join("data/petstore.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The petstore gateway with its store at `db`.
fn start(db: &Path) -> Gateway {
    Gateway::start(
        BIN,
        &[
            "--store".into(),
            format!("main={}", db.display()),
            "--access-log".into(),
            "off".into(),
            "--admin-listen".into(),
            "off".into(),
        ],
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
    if !body.is_null() && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        all.push(("content-type", "application/json"));
    }
    send(method.clone(), &gw.url(path), &all, bytes)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn adoption(pet: i64, adopter: &str) -> Value {
    json!({ "petId": pet, "adopter": adopter, "status": "requested" })
}

#[tokio::test]
async fn store_items_round_trip_with_versions_as_etags_and_missing_keys_are_404() {
    let scratch = Scratch::new("crud");
    let gw = start(&scratch.db());
    assert!(
        scratch.db().exists(),
        "the file and its directory are created at start-up"
    );

    let missing = call(&gw, Method::GET, "/adoptions/a1", &[], &Value::Null).await;
    assert_eq!(
        assert_problem(&missing, StatusCode::NOT_FOUND)["detail"],
        "no item with this key"
    );

    let created = call(&gw, Method::PUT, "/adoptions/a1", &[], &adoption(1, "Ann")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.json(), adoption(1, "Ann"));

    let read = call(&gw, Method::GET, "/adoptions/a1", &[], &Value::Null).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("content-type"), Some("application/json"));
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.json(), adoption(1, "Ann"));

    // An upsert: the same key again replaces the item, under a new version.
    let replaced = call(&gw, Method::PUT, "/adoptions/a1", &[], &adoption(1, "Bob")).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.header("etag"), Some("\"2\""));
    let read = call(&gw, Method::GET, "/adoptions/a1", &[], &Value::Null).await;
    assert_eq!(read.json()["adopter"], "Bob");

    // A read naming the current version is answered 304, without the item; an old one gets the item.
    let fresh = call(
        &gw,
        Method::GET,
        "/adoptions/a1",
        &[("if-none-match", "\"2\"")],
        &Value::Null,
    )
    .await;
    assert_eq!(fresh.status, StatusCode::NOT_MODIFIED);
    assert_eq!(fresh.header("etag"), Some("\"2\""));
    assert!(fresh.body.is_empty());
    let stale = call(
        &gw,
        Method::GET,
        "/adoptions/a1",
        &[("if-none-match", "\"1\"")],
        &Value::Null,
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);

    let deleted = call(&gw, Method::DELETE, "/adoptions/a1", &[], &Value::Null).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let gone = call(&gw, method, "/adoptions/a1", &[], &Value::Null).await;
        assert_problem(&gone, StatusCode::NOT_FOUND);
    }
    // Created again, it does not get an old version back: a client's old ETag cannot match the new item.
    let again = call(&gw, Method::PUT, "/adoptions/a1", &[], &adoption(1, "Cy")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("etag"), Some("\"3\""));
}

#[tokio::test]
async fn store_writes_are_validated_against_the_schema_and_nothing_invalid_is_stored() {
    let scratch = Scratch::new("validated");
    let gw = start(&scratch.db());
    let invalid = [
        json!({ "petId": 1, "adopter": "", "status": "requested" }),
        json!({ "petId": 1, "adopter": "Ann", "status": "lost" }),
        json!({ "petId": 1, "adopter": "Ann" }),
        json!({ "petId": 1, "adopter": "Ann", "status": "requested", "extra": true }),
    ];
    for body in &invalid {
        for (method, path) in [(Method::POST, "/adoptions"), (Method::PUT, "/adoptions/x1")] {
            let refused = call(&gw, method.clone(), path, &[], body).await;
            let problem = assert_problem(&refused, StatusCode::BAD_REQUEST);
            assert_eq!(problem["type"], "urn:gateway:error:bad-request-body", "{method} {body}");
        }
    }
    let not_json = send(
        Method::POST,
        &gw.url("/adoptions"),
        &[("content-type", "application/json")],
        Bytes::from_static(b"{not json"),
    )
    .await
    .expect("answered");
    assert_problem(&not_json, StatusCode::BAD_REQUEST);
    let text = send(
        Method::POST,
        &gw.url("/adoptions"),
        &[("content-type", "text/plain")],
        "hi",
    )
    .await
    .expect("answered");
    assert_problem(&text, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let empty = call(
        &gw,
        Method::POST,
        "/adoptions",
        &[("content-type", "application/json")],
        &Value::Null,
    )
    .await;
    assert_problem(&empty, StatusCode::BAD_REQUEST);
    // A patch is checked against the patch schema.
    call(&gw, Method::PUT, "/adoptions/x2", &[], &adoption(2, "Ann")).await;
    let bad_patch = call(&gw, Method::PATCH, "/adoptions/x2", &[], &json!({ "status": 3 })).await;
    assert_problem(&bad_patch, StatusCode::BAD_REQUEST);

    let page = call(&gw, Method::GET, "/adoptions", &[], &Value::Null).await;
    assert_eq!(
        page.json(),
        json!({ "items": [adoption(2, "Ann")], "next_cursor": null }),
        "only the valid write was stored, unpatched"
    );
}

#[tokio::test]
async fn store_merge_applies_a_json_merge_patch_of_either_media_type() {
    let scratch = Scratch::new("merge");
    let gw = start(&scratch.db());
    let missing = call(
        &gw,
        Method::PATCH,
        "/adoptions/m1",
        &[],
        &json!({ "status": "approved" }),
    )
    .await;
    assert_problem(&missing, StatusCode::NOT_FOUND);

    let mut item = adoption(3, "Ann");
    item["notes"] = json!("first visit");
    call(&gw, Method::PUT, "/adoptions/m1", &[], &item).await;
    let patched = call(
        &gw,
        Method::PATCH,
        "/adoptions/m1",
        &[("content-type", "application/merge-patch+json")],
        &json!({ "status": "approved", "notes": null }),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert_eq!(
        patched.json(),
        json!({ "petId": 3, "adopter": "Ann", "status": "approved" }),
        "members replaced, `null` removed, the rest kept"
    );
    let patched = call(&gw, Method::PATCH, "/adoptions/m1", &[], &json!({ "adopter": "Bo" })).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.json()["adopter"], "Bo");
    let read = call(&gw, Method::GET, "/adoptions/m1", &[], &Value::Null).await;
    assert_eq!(
        read.json(),
        json!({ "petId": 3, "adopter": "Bo", "status": "approved" })
    );
    assert_eq!(read.header("etag"), Some("\"3\""));
}

/// A valid body for a write of `method`: a whole adoption to put, a patch, nothing to delete.
fn body_for(method: &Method, adopter: &str) -> Value {
    match *method {
        Method::PUT => adoption(4, adopter),
        Method::PATCH => json!({ "adopter": adopter }),
        _ => Value::Null,
    }
}

#[tokio::test]
async fn store_conditional_writes_are_412_when_the_version_or_existence_differs() {
    let scratch = Scratch::new("conditional");
    let gw = start(&scratch.db());
    // If-Match on an item that does not exist.
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let body = body_for(&method, "Ann");
        let refused = call(&gw, method.clone(), "/adoptions/c1", &[("if-match", "\"1\"")], &body).await;
        assert_eq!(
            assert_problem(&refused, StatusCode::PRECONDITION_FAILED)["type"],
            "urn:gateway:error:precondition-failed",
            "{method}"
        );
    }
    let created = call(
        &gw,
        Method::PUT,
        "/adoptions/c1",
        &[("if-none-match", "*")],
        &adoption(4, "Ann"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // If-None-Match: * when it exists: create-only.
    let exists = call(
        &gw,
        Method::PUT,
        "/adoptions/c1",
        &[("if-none-match", "*")],
        &adoption(4, "Bob"),
    )
    .await;
    assert_problem(&exists, StatusCode::PRECONDITION_FAILED);
    // If-Match with another version, with a weak tag, with a tag that is no version.
    for tag in ["\"7\"", "W/\"1\"", "\"x\""] {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            let body = body_for(&method, "Bob");
            let refused = call(&gw, method.clone(), "/adoptions/c1", &[("if-match", tag)], &body).await;
            assert_problem(&refused, StatusCode::PRECONDITION_FAILED);
        }
    }
    let unchanged = call(&gw, Method::GET, "/adoptions/c1", &[], &Value::Null).await;
    assert_eq!(unchanged.json()["adopter"], "Ann", "no refused write changed the item");
    assert_eq!(unchanged.header("etag"), Some("\"1\""));
    // If-Match with the current version succeeds, each write moving it on.
    let put = call(
        &gw,
        Method::PUT,
        "/adoptions/c1",
        &[("if-match", "\"1\"")],
        &adoption(4, "Bob"),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let etag = put.header("etag").expect("an ETag").to_owned();
    assert_eq!(etag, "\"2\"");
    let patch = call(
        &gw,
        Method::PATCH,
        "/adoptions/c1",
        &[("if-match", &etag)],
        &json!({ "notes": "x" }),
    )
    .await;
    assert_eq!(patch.status, StatusCode::OK);
    let stale = call(
        &gw,
        Method::DELETE,
        "/adoptions/c1",
        &[("if-match", &etag)],
        &Value::Null,
    )
    .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
    let any = call(&gw, Method::DELETE, "/adoptions/c1", &[("if-match", "*")], &Value::Null).await;
    assert_eq!(any.status, StatusCode::NO_CONTENT);
    // Two preconditions at once, or several tags, are refused as the client's mistake.
    let both = call(
        &gw,
        Method::PUT,
        "/adoptions/c2",
        &[("if-match", "\"1\""), ("if-none-match", "*")],
        &adoption(4, "Ann"),
    )
    .await;
    assert_problem(&both, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn store_create_makes_an_id_and_answers_201_with_location_and_the_item() {
    let scratch = Scratch::new("create");
    let gw = start(&scratch.db());
    let created = call(&gw, Method::POST, "/adoptions", &[], &adoption(5, "Ann")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let item = created.json();
    let id = item["id"].as_str().expect("the id is in the item").to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(&id[14..15], "7", "version 7: {id}");
    assert_eq!(created.header("location"), Some(format!("/adoptions/{id}").as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    let mut expected = adoption(5, "Ann");
    expected["id"] = json!(id);
    assert_eq!(item, expected);
    let location = created.header("location").expect("Location").to_owned();
    let read = call(&gw, Method::GET, &location, &[], &Value::Null).await;
    assert_eq!(read.json(), expected);
    // Ids made later sort later: a list returns creations in order.
    let second = call(&gw, Method::POST, "/adoptions", &[], &adoption(6, "Bo")).await;
    let second_id = second.json()["id"].as_str().unwrap_or_default().to_owned();
    assert!(second_id > id);
    let page = call(&gw, Method::GET, "/adoptions", &[], &Value::Null).await.json();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str(), second_id.as_str()]);
}

#[tokio::test]
async fn store_lists_page_through_a_filter_with_an_opaque_cursor() {
    let scratch = Scratch::new("list");
    let gw = start(&scratch.db());
    for i in 0..23 {
        let mut item = adoption(i + 1, &format!("adopter {i}"));
        if i % 3 == 0 {
            item["status"] = json!("approved");
        }
        let put = call(&gw, Method::PUT, &format!("/adoptions/k{i:02}"), &[], &item).await;
        assert_eq!(put.status, StatusCode::CREATED);
    }
    // Approved ones (0, 3, …, 21: eight of them), three a page: three pages.
    let mut path = "/adoptions?status=approved&limit=3".to_owned();
    let mut pets = Vec::new();
    let mut pages = 0;
    loop {
        let reply = call(&gw, Method::GET, &path, &[], &Value::Null).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let page = reply.json();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        pets.extend(items.iter().map(|i| i["petId"].as_i64().unwrap_or(-1)));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/adoptions?status=approved&limit=3&cursor={cursor}"),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
        assert!(pages < 10, "the pages must end");
    }
    assert_eq!(pets, [1, 4, 7, 10, 13, 16, 19, 22]);
    assert_eq!(pages, 3);
    // Without a filter, the default page holds all 23 (the default limit is 50).
    let all = call(&gw, Method::GET, "/adoptions", &[], &Value::Null).await.json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(23));
    assert!(all["next_cursor"].is_null());
    for limit in ["0", "1001", "-1", "ten"] {
        let refused = call(
            &gw,
            Method::GET,
            &format!("/adoptions?limit={limit}"),
            &[],
            &Value::Null,
        )
        .await;
        let problem = assert_problem(&refused, StatusCode::BAD_REQUEST);
        assert_eq!(problem["parameter"]["name"], "limit", "{limit}");
    }
    let bad = call(&gw, Method::GET, "/adoptions?cursor=%25%25", &[], &Value::Null).await;
    assert_eq!(
        assert_problem(&bad, StatusCode::BAD_REQUEST)["parameter"]["name"],
        "cursor"
    );
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

/// Every adoption's `notes` (the key the test wrote it under), read through the gateway a page at a time.
async fn stored_notes(gw: &Gateway) -> BTreeSet<String> {
    let mut notes = BTreeSet::new();
    let mut path = "/adoptions?limit=1000".to_owned();
    loop {
        let page = call(gw, Method::GET, &path, &[], &Value::Null).await.json();
        for item in page["items"].as_array().into_iter().flatten() {
            notes.insert(item["notes"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/adoptions?limit=1000&cursor={cursor}"),
            None => return notes,
        }
    }
}

/// A write of `key`, the key also in the item's `notes`; `true` when the gateway acknowledged it.
async fn write(url: String, key: String) -> bool {
    let body = json!({ "petId": 1, "adopter": "durable", "status": "requested", "notes": key });
    send(
        Method::PUT,
        &format!("{url}/adoptions/{key}"),
        &[("content-type", "application/json")],
        Bytes::from(body.to_string()),
    )
    .await
    .is_ok_and(|reply| reply.status == StatusCode::CREATED)
}

#[tokio::test]
async fn a_killed_gateway_loses_no_acknowledged_write() {
    const CLIENTS: usize = 4;
    const WRITES: usize = 50;
    let scratch = Scratch::new("durable");
    let mut gw = start(&scratch.db());
    let url = gw.url("");

    // 200 acknowledged writes from four concurrent clients.
    let tasks: Vec<_> = (0..CLIENTS)
        .flat_map(|c| (0..WRITES).map(move |i| format!("a-{c}-{i:02}")))
        .map(|key| tokio::spawn(write(url.clone(), key)))
        .collect();
    let mut acknowledged = BTreeSet::new();
    for (task, key) in tasks
        .into_iter()
        .zip((0..CLIENTS).flat_map(|c| (0..WRITES).map(move |i| format!("a-{c}-{i:02}"))))
    {
        assert!(task.await.expect("task"), "write {key} acknowledged");
        acknowledged.insert(key);
    }
    assert_eq!(acknowledged.len(), CLIENTS * WRITES);

    // More writes in flight when the gateway is killed: those acknowledged must be kept, the others may or may not
    // be there, and nothing that was never sent may be.
    let acked_late = Arc::new(Mutex::new(Vec::new()));
    let sent_late = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, acked, sent) = (url.clone(), Arc::clone(&acked_late), Arc::clone(&sent_late));
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("b-{c}-{i:04}");
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
    while acked_late.lock().unwrap_or_else(PoisonError::into_inner).len() < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "late writes are acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill_9(gw.pid());
    let status = gw.terminate(Duration::from_secs(10)).expect("the process ended");
    assert!(!status.success(), "killed, not shut down: {status:?}");
    for writer in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    }
    let acked_late: BTreeSet<String> = acked_late
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    let sent_late: BTreeSet<String> = sent_late
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();

    let gw = start(&scratch.db());
    let stored = stored_notes(&gw).await;
    let missing: Vec<&String> = acknowledged
        .union(&acked_late)
        .filter(|k| !stored.contains(*k))
        .collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    let unexpected: Vec<&String> = stored
        .iter()
        .filter(|k| !acknowledged.contains(*k) && !sent_late.contains(*k))
        .collect();
    assert!(unexpected.is_empty(), "items nobody wrote: {unexpected:?}");
    let early = stored.iter().filter(|k| k.starts_with("a-")).count();
    assert_eq!(
        early,
        CLIENTS * WRITES,
        "all of the first writes, and nothing else of theirs"
    );
}

#[tokio::test]
async fn an_unknown_store_on_the_command_line_is_a_start_up_error() {
    let failed = Gateway::start(BIN, &["--store".into(), "mian=/tmp/x.db".into()])
        .err()
        .expect("refused");
    assert!(
        failed.contains("unknown store `mian` (this gateway has: main)"),
        "{failed}"
    );
}

#[tokio::test]
async fn a_database_locked_by_another_process_answers_503_after_the_wait_and_reads_go_on() {
    let scratch = Scratch::new("locked");
    let gw = start(&scratch.db());
    let put = call(&gw, Method::PUT, "/adoptions/l1", &[], &adoption(1, "Ann")).await;
    assert_eq!(put.status, StatusCode::CREATED);

    // Another process takes the database's write lock and keeps it.
    let other = rusqlite::Connection::open(scratch.db()).expect("the database opens");
    other.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    other.execute_batch("BEGIN IMMEDIATE").expect("the write lock");

    let started = Instant::now();
    let refused = call(&gw, Method::PUT, "/adoptions/l2", &[], &adoption(2, "Bo")).await;
    let waited = started.elapsed();
    let problem = assert_problem(&refused, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["detail"], "the store is unavailable");
    assert!(
        waited < Duration::from_secs(20),
        "bounded by the lock wait, took {waited:?}"
    );
    // WAL: reads do not wait for the writer's lock.
    let read = call(&gw, Method::GET, "/adoptions/l1", &[], &Value::Null).await;
    assert_eq!(read.status, StatusCode::OK);

    other.execute_batch("ROLLBACK").expect("the lock released");
    let put = call(&gw, Method::PUT, "/adoptions/l2", &[], &adoption(2, "Bo")).await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "the store recovers once the lock is gone"
    );
}
