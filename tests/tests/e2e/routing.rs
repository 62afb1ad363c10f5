//! Paths at the edge of what a router can do, against `edge-gateway` (`tests/specs/edge.yaml`): segments of several
//! parameters, cut at run time by the literals between them and checked parameter by parameter, and two templates
//! that match the same requests served as one route that accepts what either accepts.

use gateway_tests::client::get;
use http::StatusCode;

use crate::edge::edge;
use crate::support::assert_problem;

#[tokio::test]
async fn a_segment_of_several_parameters_is_cut_at_its_literals_and_reproduced_upstream() {
    let (upstream, gw) = edge().await;
    // The upstream path is the template's own: each value percent-encoded into its place, the literals between.
    for (path, upstream_path) in [
        ("/search/2/geocode/paris.json", "/search/2/geocode/paris.json"),
        // The query may hold the literal (`.`): the format is what follows the last one.
        (
            "/search/2/geocode/St.%20Louis.json",
            "/search/2/geocode/St.%20Louis.json",
        ),
        ("/search/2/geocode/archive.tar.xml", "/search/2/geocode/archive.tar.xml"),
    ] {
        let reply = get(&gw.url(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.json()["path"], upstream_path, "{path}");
    }
    assert_eq!(upstream.calls(), 3);
    // Each parameter has its own typed check, named in the 400.
    for (path, name) in [
        ("/search/two/geocode/paris.json", "versionNumber"),
        ("/search/2/geocode/paris.yaml", "ext"),
        ("/search/2/geocode/paris.tar.gz", "ext"),
    ] {
        let problem = assert_problem(&get(&gw.url(path)).await, StatusCode::BAD_REQUEST);
        assert_eq!(problem["parameter"]["name"], name, "{path}: {problem}");
        assert_eq!(problem["parameter"]["in"], "path");
    }
    // Without the literal, or with nothing on one side of it, the segment is not the template's: 404.
    for path in [
        "/search/2/geocode/paris",
        "/search/2/geocode/.json",
        "/search/2/geocode/paris.",
    ] {
        assert_problem(&get(&gw.url(path)).await, StatusCode::NOT_FOUND);
    }
    // A value that is a dot-segment is refused wherever it sits.
    assert_problem(
        &get(&gw.url("/search/2/geocode/...json")).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(upstream.calls(), 3, "nothing refused reached the upstream");
}

#[tokio::test]
async fn a_literal_prefix_and_two_parameters_in_one_segment_are_rewritten_apart() {
    let (_upstream, gw) = edge().await;
    let reply = get(&gw.url("/api/v1.2/status")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/status/1/2");
    // `1.2.3`: the minor is what follows the last dot, and a major of `1.2` is no integer.
    for (path, name) in [("/api/v1.x/status", "minor"), ("/api/v1.2.3/status", "major")] {
        let problem = assert_problem(&get(&gw.url(path)).await, StatusCode::BAD_REQUEST);
        assert_eq!(problem["parameter"]["name"], name, "{path}: {problem}");
    }
    for path in ["/api/v1/status", "/api/1.2/status", "/api/v.2/status"] {
        assert_problem(&get(&gw.url(path)).await, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn twin_templates_are_one_route_accepting_what_either_accepts() {
    let (upstream, gw) = edge().await;
    // `http_request_firewall` only the first accepts, `ddos_l7` only the second, `http_request_transform` both.
    for phase in ["http_request_firewall", "ddos_l7", "http_request_transform"] {
        let path = format!("/zones/z1/phases/{phase}/entrypoint");
        let reply = get(&gw.url(&path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.json()["path"], path);
    }
    assert_eq!(upstream.calls(), 3);
    // Neither accepts it: the first operation's error, naming its parameter.
    let problem = assert_problem(
        &get(&gw.url("/zones/z1/phases/nope/entrypoint")).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(problem["parameter"]["name"], "phase", "{problem}");
    assert_eq!(upstream.calls(), 3);
}
