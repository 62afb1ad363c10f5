//! The admin listener's live page in a real browser: headless Chromium loads `http://ADMIN/` while traffic flows
//! through the petstore gateway, its script polls `/_gateway/stats` several times (on Chromium's virtual clock),
//! and the test reads the DOM it rendered; a screenshot is left at `target/live-page.png` for a person to look at.
//!
//! Without Chromium the test fails and says how to install it: `.ci/run` installs it, so a pass always means a
//! browser rendered the page.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gateway_tests::browser::{self, Dom, Load};
use gateway_tests::client::get;
use http::StatusCode;

use crate::support::setup;

/// Virtual time for the page: a first poll at load, then one every 2 s, so six in all.
const VIRTUAL_TIME: Duration = Duration::from_secs(10);

/// Real time the browser may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Requests of each kind sent before the browser starts (the totals it must show at least).
const WARM_UP: u64 = 12;

/// Where the screenshot goes.
fn screenshot_path() -> PathBuf {
    browser::target_dir().join("live-page.png")
}

/// `data-value` of `field` in `row`, which must be a number.
fn number(row: &Dom<'_>, field: &str) -> f64 {
    row.number(field)
        .unwrap_or_else(|| panic!("no number in data-field={field:?} of {}", row.as_str()))
}

#[tokio::test]
async fn headless_chromium_renders_a_live_page_row_per_operation_with_the_traffic_it_served() {
    // Fail, not skip, when there is no browser: CI installs it.
    let chromium = browser::chromium().unwrap_or_else(|hint| panic!("{hint}"));
    let (_upstream, gw) = setup().await;

    // Traffic the page must show: 2xx (a cached GET: one miss, then hits), a 400, throttled mock calls, 404s.
    for _ in 0..WARM_UP {
        assert_eq!(get(&gw.url("/pets/1")).await.status, StatusCode::OK);
        assert_eq!(get(&gw.url("/pets?limit=5")).await.status, StatusCode::OK);
        assert_eq!(get(&gw.url("/inventory")).await.status, StatusCode::OK);
        assert_eq!(get(&gw.url("/pets/abc")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(get(&gw.url("/no/such/path")).await.status, StatusCode::NOT_FOUND);
        // `version` allows a burst of 2, then one a second.
        get(&gw.url("/version")).await;
    }
    // And more while the browser looks: hits on getPet and 404s, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let background = tokio::spawn({
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let (pet, missing) = (gw.url("/pets/1"), gw.url("/no/such/path"));
        async move {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(get(&pet).await.status, StatusCode::OK);
                assert_eq!(get(&missing).await.status, StatusCode::NOT_FOUND);
                sent.fetch_add(2, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let info = get(&gw.admin_url("/_gateway/info")).await.json();
    let stats = get(&gw.admin_url("/_gateway/stats")).await.json();
    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let url = gw.admin_url("/");
    let loaded = {
        let (url, screenshot) = (url.clone(), screenshot.clone());
        tokio::task::spawn_blocking(move || {
            browser::load(
                &chromium,
                &Load {
                    url: &url,
                    virtual_time: VIRTUAL_TIME,
                    window: (1280, 900),
                    screenshot: Some(&screenshot),
                    limit: BROWSER_LIMIT,
                },
            )
        })
        .await
        .expect("the browser thread")
        .unwrap_or_else(|e| panic!("{e}"))
    };
    stop.store(true, Ordering::Relaxed);
    background.await.expect("the background traffic");
    eprintln!(
        "chromium rendered {url} in {:?} while {} more requests were sent; screenshot: {}",
        loaded.elapsed,
        sent.load(Ordering::Relaxed),
        screenshot.display()
    );
    assert!(
        loaded.status.success(),
        "chromium failed ({}):\n{}",
        loaded.status,
        browser::tail(&loaded.stderr, 40)
    );
    let dom = Dom(&loaded.dom);
    let context = || {
        format!(
            "the DOM:\n{}\nchromium's stderr:\n{}",
            loaded.dom,
            browser::tail(&loaded.stderr, 20)
        )
    };

    // The script ran, polled more than once (so rates over an interval were computed), and nothing was blocked by
    // the page's Content-Security-Policy or failed.
    let polls: u32 = dom
        .attr("<body", "data-polls")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no data-polls on <body>; {}", context()));
    assert!(polls >= 2, "{polls} polls; {}", context());
    assert_eq!(
        dom.attr("<body", "data-csp-violations").as_deref(),
        Some("0"),
        "{}",
        context()
    );
    let banner = dom.tag("id=\"error-banner\"").expect("the error banner");
    assert!(
        banner.contains(" hidden"),
        "a poll failed: {}",
        dom.text("id=\"error-banner\"").unwrap_or_default()
    );
    assert!(
        dom.attr("id=\"interval\"", "data-value")
            .is_some_and(|dt| dt.parse::<f64>().is_ok_and(|dt| dt > 0.0))
    );

    // The header, from /_gateway/info.
    let name = info["gateway"].as_str().expect("the gateway's name");
    assert_eq!(dom.text("id=\"gateway\"").as_deref(), Some(name));
    let sha = info["spec_sha256"].as_str().expect("the spec's hash");
    assert_eq!(sha.len(), 64, "{sha}");
    assert_eq!(dom.text("id=\"spec-sha\"").as_deref(), Some(&sha[..12]));
    assert_eq!(dom.attr("id=\"spec-sha\"", "data-value").as_deref(), Some(sha));
    assert_eq!(dom.text("id=\"stage\"").as_deref(), info["stage"].as_str());

    // A row per operation of the spec, each with a rate (zero or more) once two snapshots were compared.
    let operations: Vec<&str> = stats["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|op| op["id"].as_str())
        .collect();
    assert!(operations.len() > 10, "{operations:?}");
    assert_eq!(
        dom.count("<tr data-operation="),
        operations.len() + 1,
        "and the unmatched row"
    );
    let row = |id: &str| {
        dom.element(&format!("data-operation=\"{id}\""))
            .unwrap_or_else(|| panic!("no row for {id}; {}", context()))
    };
    for id in &operations {
        let row = row(id);
        assert!(number(&row, "rps") >= 0.0, "{id}");
        assert!(number(&row, "requests_total") >= 0.0, "{id}");
        assert!(
            row.attr("data-field=\"trend\"", "data-points")
                .is_some_and(|n| n != "0"),
            "{id}"
        );
    }

    // The operations that got traffic show it; p50 and p99 have a value (over the interval, or since start).
    for id in ["getPet", "listPets", "getInventory", "version"] {
        let row = row(id);
        assert!(
            number(&row, "requests_total") >= WARM_UP as f64,
            "{id}: {}",
            row.as_str()
        );
        let (p50, p99) = (number(&row, "p50"), number(&row, "p99"));
        assert!(p50 > 0.0 && p99 >= p50, "{id}: p50 {p50}, p99 {p99}");
        let basis = row.attr("data-field=\"p50\"", "data-basis").unwrap_or_default();
        assert!(basis == "interval" || basis == "cumulative", "{id}: {basis:?}");
    }
    // getPet: cache hits (all but the first warm-up call), and the 400s among its errors.
    let pet = row("getPet");
    assert!(
        number(&pet, "cache_hits_total") >= (WARM_UP - 1) as f64,
        "{}",
        pet.as_str()
    );
    let ratio = number(&pet, "cache_hit_ratio");
    assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
    assert!(number(&pet, "errors_total") >= WARM_UP as f64, "{}", pet.as_str());
    // version: refused by its bucket (a burst of 2, then one a second).
    assert!(number(&row("version"), "throttled_total") >= 1.0);
    // Operations nobody called: zero, and not cached ones show no ratio.
    let idle = row("createPet");
    assert_eq!(number(&idle, "requests_total"), 0.0);
    assert_eq!(idle.number("cache_hit_ratio"), None);

    // The 404s are in the unmatched row, all of them failures.
    let unmatched = row("(none)");
    let missing = number(&unmatched, "requests_total");
    assert!(missing >= WARM_UP as f64, "{}", unmatched.as_str());
    assert_eq!(number(&unmatched, "errors_total"), missing);

    // Traffic flowed while the page polled: some interval saw requests.
    let peak = |id: &str| {
        row(id)
            .attr("data-field=\"trend\"", "data-peak")
            .and_then(|p| p.parse::<f64>().ok())
            .unwrap_or_default()
    };
    assert!(
        peak("getPet") > 0.0 || peak("(none)") > 0.0,
        "no interval saw requests; {}",
        context()
    );

    // Upstreams, with their calls and their rotation (the example's pets upstream is health-checked; here it is the
    // one test upstream, which passes).
    let pets = dom
        .element("data-upstream=\"pets\"")
        .unwrap_or_else(|| panic!("no row for the pets upstream; {}", context()));
    assert!(number(&pets, "calls_total") >= 1.0);
    assert_eq!(pets.text("data-field=\"health\"").as_deref(), Some("health: 1 of 1 up"));

    // The screenshot, for a person.
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| panic!("{}: {e}", screenshot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        screenshot.display()
    );
    assert!(png.len() > 10_000, "a {}-byte screenshot", png.len());
}
