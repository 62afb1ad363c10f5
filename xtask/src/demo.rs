//! `cargo xtask demo`: generate, build (release), start the example upstream and the gateway, show requests.
//!
//! With `--tls` the petstore gateway serves HTTPS (and HTTP/2 by ALPN) with the development certificate of
//! `cargo xtask cert` in `target/dev-tls` (made first if it is not there), and the requests shown trust its CA with
//! `curl --cacert`; the store gateway and the admin listeners stay plain HTTP.

use std::net::SocketAddr;

use anyhow::Context;

use crate::process::{Endpoint, Server};
use crate::workspace_root;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the gateway listens (the store gateway takes the next port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the petstore gateway's admin listener (metrics, health, the live page) listens (the store's takes the
    /// next port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// The petstore stage to serve (`dev` or `prod`: prod serves every route under /prod).
    #[arg(long, default_value = "dev")]
    pub stage: String,
    /// Send the example requests, print the answers and stop (instead of serving until Ctrl-C).
    #[arg(long)]
    pub smoke: bool,
    /// Serve the petstore gateway over HTTPS with the development certificate of `cargo xtask cert`
    /// (target/dev-tls, for localhost and 127.0.0.1; made first if missing).
    #[arg(long)]
    pub tls: bool,
}

const EXAMPLES: &[(&str, &str)] = &[
    (
        "/pets/42?verbose=true",
        "proxied, path rewritten to /v1/pets/42; X-Cache: MISS",
    ),
    (
        "/pets/42?verbose=true",
        "the same again: X-Cache: HIT, served from the cache",
    ),
    (
        "/pets?limit=5&status=sold&tags=a&tags=b",
        "typed query parameters, passed through",
    ),
    ("/inventory", "no target: proxied to the spec's first server URL"),
    ("/health", "a mock response, no upstream involved"),
    (
        "/pets/abc",
        "400 BAD_REQUEST_PARAMETERS (problem+json): petId must be an integer",
    ),
    (
        "/nope",
        "404 NOT_FOUND (problem+json); every response carries X-Request-Id",
    ),
];

/// The HMAC secret of the store's `internal` scheme in the demo.
const DEMO_SECRET: &str = "demo-secret-not-for-production";

/// Keys for the store gateway's demo: runtime data, written next to the build output.
const DEMO_KEYS: &str = "\
- { key: demo-free-key-0001, name: alice, plan: free }
- { key: demo-pro-key-00002, name: bob, plan: pro }
";

pub fn run(args: &Args) -> anyhow::Result<()> {
    // The certificate first: it takes a moment, the build takes minutes.
    let tls = if args.tls {
        let dir = workspace_root().join(crate::cert::DEFAULT_DIR);
        let (files, outcome) = crate::cert::ensure(&dir, &[], false)?;
        let verb = match outcome {
            crate::cert::Outcome::Made => "made",
            crate::cert::Outcome::Kept => "using",
        };
        println!(
            "{verb} the development certificate in {} (`cargo xtask cert`)",
            dir.display()
        );
        Some(files)
    } else {
        None
    };
    crate::process::build_examples_release()?;

    let bin = crate::target_dir().join("release");
    let upstream = Server::start(
        &bin.join("test-upstream"),
        &["--listen".into(), "127.0.0.1:0".into()],
        "test-upstream",
    )?;
    let url = format!("http://{}", upstream.addr);
    // The second server of the `pets` upstream, and the one `pets-next` (the canary of `/pets/{petId}/care`) is.
    let upstream_b = Server::start(
        &bin.join("test-upstream"),
        &["--listen".into(), "127.0.0.1:0".into()],
        "test-upstream",
    )?;
    let url_b = format!("http://{}", upstream_b.addr);
    let access_log = workspace_root().join("target/demo-access.log");
    // This run's lines only.
    std::fs::write(&access_log, "").with_context(|| format!("creating {}", access_log.display()))?;
    // Adoptions are kept from one demo to the next, in the spec's store file under target/.
    let store_file = workspace_root().join("target/petstore-data/petstore.db");
    let mut gateway_args: Vec<String> = tls.iter().flat_map(crate::cert::Files::gateway_flags).collect();
    gateway_args.extend([
        "--listen".into(),
        args.listen.to_string(),
        "--admin-listen".into(),
        args.admin_listen.to_string(),
        "--stage".into(),
        args.stage.clone(),
        "--access-log".into(),
        access_log.display().to_string(),
        // `{stage.petsUrl}` and `{stage.petsUrlB}`: the example upstreams, whatever the stage says.
        "--upstream".into(),
        format!("pets={url},{url_b}"),
        "--upstream".into(),
        format!("pets-next={url_b}/next"),
        "--upstream".into(),
        format!("reports={url}/reporting"),
        "--upstream".into(),
        format!("default={url}/api"),
        // The store's file, wherever the demo is run from (the spec's path is relative to the working directory).
        "--store".into(),
        format!("main={}", store_file.display()),
    ]);
    let gateway =
        Server::start(&bin.join("petstore-gateway"), &gateway_args, "petstore-gateway").with_context(|| {
            format!(
                "is {} or {} already in use? pass --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT",
                args.listen, args.admin_listen
            )
        })?;

    let auth = Server::start(
        &bin.join("test-upstream"),
        &["--listen".into(), "127.0.0.1:0".into(), "--auth".into()],
        "test-upstream --auth",
    )?;
    let auth_url = format!("http://{}", auth.addr);
    let keys = workspace_root().join("target/demo-keys.yaml");
    std::fs::write(&keys, DEMO_KEYS).context("writing the demo key file")?;
    let store_listen = SocketAddr::new(args.listen.ip(), args.listen.port().wrapping_add(1));
    let store_admin = SocketAddr::new(args.admin_listen.ip(), args.admin_listen.port().wrapping_add(1));
    let store = Server::start_with_env(
        &bin.join("store-gateway"),
        &[
            "--listen".into(),
            store_listen.to_string(),
            "--admin-listen".into(),
            store_admin.to_string(),
            "--upstream".into(),
            format!("default={url}/store"),
            "--upstream".into(),
            format!("auth={auth_url}"),
            "--jwks-url".into(),
            format!("bearer={auth_url}/jwks.json"),
            "--oidc-url".into(),
            format!("oidc={auth_url}/.well-known/openid-configuration"),
            "--api-keys".into(),
            keys.display().to_string(),
        ],
        &[("STORE_JWT_SECRET", DEMO_SECRET)],
        "store-gateway",
    )
    .with_context(|| format!("is {store_listen} already in use? pass --listen with another port"))?;

    println!(
        "\nThe example upstreams (pids {} and {}) listen on {url} and {url_b}; they answer with a description of each \
         request, and X-Upstream-Port says which one answered.",
        upstream.pid(),
        upstream_b.pid()
    );
    // Over HTTPS the CA is trusted explicitly; the certificate is for 127.0.0.1 (and localhost), which is also what a
    // gateway on 0.0.0.0 is asked on.
    let (endpoint, curl) = match &tls {
        Some(files) => {
            let ip = gateway.addr.ip();
            let name = if ip.is_unspecified() {
                String::from("127.0.0.1")
            } else {
                ip.to_string()
            };
            (
                Endpoint::https(gateway.addr, &files.ca, &name)?,
                format!("curl --cacert {}", files.ca.display()),
            )
        }
        None => (Endpoint::plain(gateway.addr), String::from("curl")),
    };
    let store_endpoint = Endpoint::plain(store.addr);
    // Where the stage serves its routes: the `servers` of the spec the gateway publishes (`/`, or `/prod`).
    let base = if tls.is_some() {
        published_base(&endpoint).with_context(|| {
            format!(
                "asking the gateway over HTTPS; is the certificate in {} for {}? `cargo xtask cert --force` makes a \
                 new one for localhost and 127.0.0.1",
                crate::cert::DEFAULT_DIR,
                gateway.addr.ip()
            )
        })?
    } else {
        published_base(&endpoint)?
    };
    let root = format!("{}{base}", gateway.addr);
    let web = format!("{}://{root}", endpoint.scheme());
    println!(
        "The petstore gateway (pid {}) serves stage `{}` on {web}; its admin listener is on http://{} \
         (live page: http://{}/, metrics: http://{}/metrics); its access log goes to {}. Try:\n",
        gateway.pid(),
        args.stage,
        args.admin_listen,
        args.admin_listen,
        args.admin_listen,
        access_log.display(),
    );
    for (path, what) in EXAMPLES {
        println!("  {curl} -i '{web}{path}'    # {what}");
    }
    println!(
        "  {curl} -i -X PUT -H 'content-type: application/json' -d '{{\"name\": 5, \"age\": 99}}' '{web}/pets/42'    # 400: every schema violation, with its JSON pointer"
    );
    println!(
        "  {curl} -i -X PUT -H 'content-type: application/json' -d '{{\"name\": \"Rex\"}}' '{web}/pets/42?q=cats&debug=1&body_json=%7B%22id%22%3A42%2C%22name%22%3A%22Rex%22%2C%22secret%22%3A1%7D'    # validated, transformed both ways: the upstream's answer reshaped by jq to {{id, name}}, 404 mapped to 410"
    );
    println!(
        "  {curl} -i -X POST -H 'content-type: application/json' -d '{{\"petId\": 42, \"adopter\": \"Ann\", \"status\": \"requested\"}}' '{web}/adoptions'    # stored by the gateway (store `main`, {}): 201, Location, ETag",
        store_file.display()
    );
    println!(
        "  {curl} -i '{web}/adoptions?status=requested&limit=10'    # a page of adoptions by status: {{\"items\": [...], \"next_cursor\": ...}}"
    );
    println!(
        "  {curl} -i -X PATCH -H 'content-type: application/merge-patch+json' -H 'If-Match: \"1\"' -d '{{\"status\": \"approved\"}}' '{web}/adoptions/ID'    # a merge patch, only if the version is still 1 (else 412)"
    );
    println!(
        "  {curl} -i -X POST -H 'content-type: application/json' -d '{{\"weight_kg\": 12.5, \"temperature_c\": 40}}' '{web}/pets/42/checkups'    # a Rust function (functions/petstore, pets::checkup), its typed body checked first: 201"
    );
    println!(
        "  {curl} -i '{web}/pets/42/age'    # a function that asks the pets upstream (which does not know ages here: the typed 404 variant)"
    );
    println!(
        "  for i in 1 2 3 4; do {curl} -s -D - -o /dev/null '{web}/pets/$i/photos/1.jpg' | grep -i x-upstream-port; done    # the two servers of `pets`, in turn"
    );
    println!(
        "  for u in ann bob cid dan eve fay gus hal ivy jon; do {curl} -s -H \"X-User-Id: $u\" '{web}/pets/1/care' | grep -o '\"path\":\"[^\"]*\"'; done    # the canary: about one caller in ten on pets-next (/next/...), each always on the same side"
    );
    println!(
        "  curl -s 'http://{}/_gateway/upstreams'    # every upstream's servers: healthy, ejected, in flight, failures",
        args.admin_listen
    );
    println!(
        "  curl -s 'http://{}/metrics' | grep gateway_requests_total    # Prometheus metrics",
        args.admin_listen
    );
    println!("  tail -f {}    # one JSON line per request", access_log.display());
    println!(
        "\nThe store gateway (pid {}) listens on http://{}, with keys from {}. Try:\n",
        store.pid(),
        store.addr,
        keys.display()
    );
    println!(
        "  curl -i 'http://{}/orders'    # 401: an API key is required",
        store.addr
    );
    println!(
        "  curl -i -H \"Authorization: Bearer $(cargo xtask token --aud store --scope account:read)\" 'http://{}/account'    # a JWT verified against the provider's JWKS ({auth_url}/jwks.json); its claims reach the upstream as X-User-Id",
        store.addr
    );
    println!(
        "  curl -i -X OPTIONS -H 'Origin: https://shop.example.com' -H 'Access-Control-Request-Method: GET' 'http://{}/account'    # a CORS preflight, answered by the gateway",
        store.addr
    );
    println!(
        "  curl -i -H 'X-Partner-Token: allow-acme' 'http://{}/partner/feed'    # the partner authorizer admits allow-…, refuses deny-…",
        store.addr
    );
    println!(
        "  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' -H 'x-api-key: demo-free-key-0001' 'http://{}/orders'; done    # free plan: burst 5, then 429 THROTTLED, rendered as the spec says",
        store.addr
    );
    if args.smoke {
        println!();
        for (path, what) in EXAMPLES {
            smoke(&endpoint, &format!("{base}{path}"), &[], what)?;
        }
        show_observability(args.admin_listen, &access_log)?;
        smoke_functions(&endpoint, &base)?;
        smoke_store(&endpoint, &base)?;
        smoke(&store_endpoint, "/orders", &[], "no key: 401")?;
        for i in 1..=6 {
            let what = if i <= 5 {
                "within the free plan's burst of 5"
            } else {
                "over the burst: 429"
            };
            smoke(&store_endpoint, "/orders", &[("x-api-key", "demo-free-key-0001")], what)?;
        }
        let token = crate::token::demo_token_for("store", "account:read")?;
        let bearer = format!("Bearer {token}");
        smoke(
            &store_endpoint,
            "/account",
            &[("authorization", &bearer)],
            "a demo JWT: 200",
        )?;
        smoke(
            &store_endpoint,
            "/account",
            &[("authorization", "Bearer not-a-token")],
            "not a JWT: 401",
        )?;
        smoke(
            &store_endpoint,
            "/partner/feed",
            &[("x-partner-token", "allow-acme")],
            "admitted by the authorizer",
        )?;
        return Ok(());
    }
    println!("\nEnter or Ctrl-C stops them all.");
    wait_for_interrupt();
    Ok(())
}

/// One request of the smoke run, printed with its status, cache and limit headers, and the start of its body.
fn smoke(endpoint: &Endpoint, path: &str, headers: &[(&str, &str)], what: &str) -> anyhow::Result<()> {
    smoke_request(endpoint, "GET", path, headers, None, what).map(|_| ())
}

/// [`smoke`] for any method and body; returns the status and the response's head and body.
fn smoke_request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    what: &str,
) -> anyhow::Result<(u16, String, String)> {
    let (status, response) = endpoint.request(method, path, headers, body)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut notes = String::new();
    for name in ["x-cache", "ratelimit", "retry-after", "etag", "location"] {
        if let Some(value) = head.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))) {
            notes.push_str(&format!(" [{name}: {value}]"));
        }
    }
    println!(
        "{method} {path} -> {status}{notes} ({what})\n  {}",
        body.trim().chars().take(160).collect::<String>()
    );
    Ok((status, head.to_owned(), body.to_owned()))
}

/// The function targets of the smoke run: a checkup answered by `pets::checkup` from its typed body, a body that
/// fails its schema (never reaching the function), and `pets::age` asking the pets upstream.
fn smoke_functions(endpoint: &Endpoint, base: &str) -> anyhow::Result<()> {
    let json = [("content-type", "application/json")];
    let (status, _, _) = smoke_request(
        endpoint,
        "POST",
        &format!("{base}/pets/42/checkups"),
        &json,
        Some(r#"{"weight_kg": 12.5, "temperature_c": 40, "vaccines": ["rabies"]}"#),
        "a Rust function's typed answer",
    )?;
    anyhow::ensure!(status == 201, "POST /pets/42/checkups answered {status}");
    let (status, _, _) = smoke_request(
        endpoint,
        "POST",
        &format!("{base}/pets/42/checkups"),
        &json,
        Some(r#"{"weight_kg": -1}"#),
        "refused by the schema before the function runs",
    )?;
    anyhow::ensure!(status == 400, "an invalid checkup answered {status}");
    smoke(
        endpoint,
        &format!("{base}/pets/42/age"),
        &[],
        "a function asking the pets upstream, which knows no ages here: the typed 404",
    )
}

/// The store-backed `/adoptions` of the smoke run: a create, a read of its `Location`, a conditional merge patch
/// that holds and one that no longer does, a list by status, and a write the schema refuses.
fn smoke_store(endpoint: &Endpoint, base: &str) -> anyhow::Result<()> {
    println!();
    let json = [("content-type", "application/json")];
    let (status, head, _) = smoke_request(
        endpoint,
        "POST",
        &format!("{base}/adoptions"),
        &json,
        Some(r#"{"petId": 42, "adopter": "Ann", "status": "requested"}"#),
        "stored by the gateway: 201, the new id in Location",
    )?;
    anyhow::ensure!(status == 201, "POST /adoptions answered {status}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .context("the create answered no Location")?
        .trim()
        .to_owned();
    smoke_request(endpoint, "GET", &location, &[], None, "read back, with its ETag")?;
    let patch = [("content-type", "application/merge-patch+json"), ("if-match", "\"1\"")];
    let approve = Some(r#"{"status": "approved"}"#);
    smoke_request(
        endpoint,
        "PATCH",
        &location,
        &patch,
        approve,
        "a merge patch if still at version 1",
    )?;
    smoke_request(
        endpoint,
        "PATCH",
        &location,
        &patch,
        approve,
        "the same again: 412, the version moved on",
    )?;
    smoke_request(
        endpoint,
        "GET",
        &format!("{base}/adoptions?status=approved&limit=2"),
        &[],
        None,
        "a page of approved adoptions",
    )?;
    smoke_request(
        endpoint,
        "POST",
        &format!("{base}/adoptions"),
        &json,
        Some(r#"{"petId": 0, "adopter": "", "status": "lost"}"#),
        "refused by the schema, nothing stored",
    )?;
    Ok(())
}

/// The base path the gateway serves its routes under: its published spec's first `servers` URL without the `/`.
fn published_base(endpoint: &Endpoint) -> anyhow::Result<String> {
    let (status, response) = endpoint.get("/_gateway/openapi.json")?;
    anyhow::ensure!(status == 200, "GET /_gateway/openapi.json answered {status}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let spec: serde_json::Value = serde_json::from_str(body).context("the published spec is not JSON")?;
    let url = spec["servers"][0]["url"].as_str().unwrap_or("/");
    Ok(url.trim_end_matches('/').to_owned())
}

/// What the smoke run's requests left behind: the petstore's request counters and its last access-log line.
fn show_observability(admin: SocketAddr, access_log: &std::path::Path) -> anyhow::Result<()> {
    let (status, response) = Endpoint::plain(admin).get("/metrics")?;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    println!("\nmetrics (http://{admin}/metrics), the requests above:");
    for line in response.lines().filter(|l| l.starts_with("gateway_requests_total")) {
        println!("  {line}");
    }
    // The access log is written by a thread of its own: give it a moment to catch up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let last = loop {
        let text = std::fs::read_to_string(access_log).unwrap_or_default();
        if let Some(line) = text.lines().last().filter(|_| text.lines().count() >= EXAMPLES.len()) {
            break Some(line.to_owned());
        }
        if std::time::Instant::now() > deadline {
            break text.lines().last().map(str::to_owned);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    println!(
        "\nthe last access-log line ({}):\n  {}",
        access_log.display(),
        last.as_deref().unwrap_or("(none yet)")
    );
    Ok(())
}

/// Blocks until the task is interrupted; the servers are stopped by their PIDs as they drop.
fn wait_for_interrupt() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Ctrl-C reaches the whole process group, servers included; waiting on stdin's end covers `cargo xtask demo <
    // /dev/null` too. Either way the servers are then stopped by PID.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        let _ = tx.send(());
    });
    let _ = rx.recv();
}
