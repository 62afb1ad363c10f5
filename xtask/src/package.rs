//! `cargo xtask package NAME`: what it takes to ship a generated gateway as a container, written into
//! `target/package/NAME/`:
//!
//! - `Dockerfile`: a multi-stage build from the workspace root. The builder is the official Rust image of the
//!   workspace's toolchain (`rust-toolchain.toml` if it names a version, else `rust-version` in `Cargo.toml`), which
//!   runs `cargo build --release --locked -p NAME-gateway`; the runtime is distroless (glibc, CA certificates, no
//!   shell) as user 65532, with only the binary copied in. The TLS files and the store directory are volumes, never
//!   baked into the image. The entrypoint listens on `0.0.0.0` (right inside a container; tests and benchmarks use
//!   127.0.0.1).
//! - `.dockerignore` (and the same as `Dockerfile.dockerignore`, which BuildKit reads beside a `-f` Dockerfile).
//! - `kubernetes.yaml`: a Deployment (2 replicas; readiness and liveness probes on the admin listener; requests and
//!   limits; non-root, read-only root filesystem; the certificate from the Secret `NAME-tls`; a `preStop` sleep so
//!   that endpoints deregister before SIGTERM, and a grace period longer than that sleep plus the drain), a Service
//!   and a PodDisruptionBudget.
//!
//! The manifest is parsed back (every document) and checked before the task succeeds, and linted with `yamllint`
//! when it is on `PATH`. Nothing is built or applied here: see `docs/deploy.md`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize as _;

use crate::process::{on_path, output_within};
use crate::{display_path, workspace_root};

/// The port the gateway listens on in the container.
pub const LISTEN_PORT: u16 = 8080;
/// The port of its admin listener (metrics, health, readiness) in the container.
pub const ADMIN_PORT: u16 = 9090;
/// The admin listener's readiness endpoint: 503 until every worker listens, and again while draining.
pub const READY_PATH: &str = "/_gateway/ready";
/// The admin listener's liveness endpoint: 200 while the process serves.
pub const HEALTH_PATH: &str = "/_gateway/health";
/// `--shutdown-timeout`: how long in-flight requests may take to finish after SIGTERM.
const DRAIN_SECONDS: u64 = 20;
/// The `preStop` sleep: time for the endpoints to drop the pod before it gets SIGTERM.
const PRE_STOP_SECONDS: u64 = 5;
/// `terminationGracePeriodSeconds`: the sleep, the drain, and margin for the exit itself.
const GRACE_SECONDS: u64 = 40;
const _: () = assert!(PRE_STOP_SECONDS + DRAIN_SECONDS < GRACE_SECONDS);
/// Where the certificate and key of the Secret are mounted.
const TLS_DIR: &str = "/etc/gateway/tls";
/// The working directory: a writable volume, where stores with a relative `sqlite` path keep their files.
const DATA_DIR: &str = "/var/lib/gateway";
/// The runtime base image: glibc and libgcc (what a Rust binary built on bookworm needs), CA certificates, no shell.
const RUNTIME_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";
/// The `nonroot` user and group of the distroless image, numerically (so that `runAsNonRoot` can check it).
const NONROOT: u32 = 65532;
/// How long `yamllint` may take.
const LINT_LIMIT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The generated gateway: its crate name in gateways/ without `-gateway` (e.g. `petstore`).
    pub name: String,
}

/// A generated gateway crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The crate name without `-gateway`: `petstore`.
    pub name: String,
    /// The crate: `petstore-gateway`.
    pub package: String,
    /// Its binary (the crate's `[[bin]]`, or the crate's name).
    pub binary: String,
    /// The crate's version, for the image tag.
    pub version: String,
}

impl Gateway {
    /// The name of its Kubernetes objects (lower case, `-` for `_`): `petstore-gateway`.
    fn object_name(&self) -> String {
        self.package.to_ascii_lowercase().replace('_', "-")
    }

    /// The Secret holding its certificate and key: `petstore-tls`.
    fn secret_name(&self) -> String {
        format!("{}-tls", self.name.to_ascii_lowercase().replace('_', "-"))
    }

    /// The image reference the manifest and the docs use: `petstore-gateway:0.1.0`.
    fn image(&self) -> String {
        format!("{}:{}", self.object_name(), self.version)
    }
}

/// The generated gateways: every `gateways/*/Cargo.toml` whose crate is named `*-gateway`, sorted.
pub fn gateways(root: &Path) -> anyhow::Result<Vec<Gateway>> {
    let dir = root.join("gateways");
    let mut found = Vec::new();
    let entries = fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let manifest = entry?.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
        let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        let package = doc.get("package").and_then(toml::Value::as_table);
        let Some(crate_name) = package.and_then(|p| p.get("name")).and_then(toml::Value::as_str) else {
            continue;
        };
        let Some(name) = crate_name.strip_suffix("-gateway") else {
            continue;
        };
        let version = package
            .and_then(|p| p.get("version"))
            .and_then(toml::Value::as_str)
            .unwrap_or("latest");
        let binary = doc
            .get("bin")
            .and_then(toml::Value::as_array)
            .and_then(|bins| bins.first())
            .and_then(|bin| bin.get("name"))
            .and_then(toml::Value::as_str)
            .unwrap_or(crate_name);
        found.push(Gateway {
            name: name.to_owned(),
            package: crate_name.to_owned(),
            binary: binary.to_owned(),
            version: version.to_owned(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The gateway called `name` (`petstore`, or `petstore-gateway`); an error listing the known ones otherwise.
fn find(root: &Path, name: &str) -> anyhow::Result<Gateway> {
    let known = gateways(root)?;
    let wanted = name.strip_suffix("-gateway").unwrap_or(name);
    if let Some(gateway) = known.iter().find(|g| g.name == wanted) {
        return Ok(gateway.clone());
    }
    let names: Vec<&str> = known.iter().map(|g| g.name.as_str()).collect();
    if names.is_empty() {
        bail!("no generated gateway in gateways/: run `cargo xtask generate` first");
    }
    bail!(
        "no generated gateway `{name}`; the gateways in gateways/ are: {} (run `cargo xtask generate` after adding a \
         spec)",
        names.join(", ")
    )
}

/// The builder image and where its version comes from: the toolchain `rust-toolchain.toml` (or `rust-toolchain`)
/// pins if it names a version, else the workspace's `rust-version`, else the latest Rust 1.x.
fn builder_image(root: &Path) -> anyhow::Result<(String, String)> {
    let is_version = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    for file in ["rust-toolchain.toml", "rust-toolchain"] {
        let Ok(text) = fs::read_to_string(root.join(file)) else {
            continue;
        };
        // The TOML form, or the legacy one: the channel alone on one line.
        let channel = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("toolchain")?.get("channel")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        if is_version(&channel) {
            return Ok((format!("rust:{channel}-bookworm"), format!("the toolchain {file} pins")));
        }
    }
    let manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let rust_version = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(toml::Value::as_str)
        .filter(|v| is_version(v));
    Ok(match rust_version {
        Some(v) => (
            format!("rust:{v}-bookworm"),
            format!("rust-version {v} in the workspace's Cargo.toml"),
        ),
        None => (
            String::from("rust:1-bookworm"),
            String::from("the latest Rust 1.x: the workspace pins no version"),
        ),
    })
}

/// The files of the package, by name.
fn render(gateway: &Gateway, builder: &(String, String)) -> Vec<(&'static str, String)> {
    let ignore = dockerignore(gateway);
    vec![
        ("Dockerfile", dockerfile(gateway, builder)),
        (".dockerignore", ignore.clone()),
        ("Dockerfile.dockerignore", ignore),
        ("kubernetes.yaml", kubernetes(gateway)),
    ]
}

fn dockerfile(gateway: &Gateway, (builder, why): &(String, String)) -> String {
    let Gateway {
        name, package, binary, ..
    } = gateway;
    let image = gateway.image();
    format!(
        r#"# Written by `cargo xtask package {name}`: the {package} as a container image. Build it from the workspace
# root (the context is the whole workspace; Dockerfile.dockerignore beside this file keeps target/ and .git out):
#
#   docker build -f target/package/{name}/Dockerfile -t {image} .
#
# See docs/deploy.md.

# The build: {why}.
FROM {builder} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p {package} --bin {binary} \
    && mkdir -p /out/data /out/tls \
    && cp target/release/{binary} /out/{binary}

# The runtime: glibc, CA certificates and nothing else (no shell, no package manager), as user nonroot (65532).
FROM {RUNTIME_IMAGE}
COPY --from=build /out/{binary} /usr/local/bin/{binary}
# Stores with a relative `sqlite` path keep their files under the working directory: a volume, writable by the user.
COPY --from=build --chown={NONROOT}:{NONROOT} /out/data {DATA_DIR}
# The certificate and key are mounted here, never copied into the image:
#   --tls-cert {TLS_DIR}/tls.crt --tls-key {TLS_DIR}/tls.key
COPY --from=build /out/tls {TLS_DIR}
VOLUME ["{DATA_DIR}", "{TLS_DIR}"]
WORKDIR {DATA_DIR}
USER {NONROOT}:{NONROOT}
# The gateway (HTTPS when given a certificate, else HTTP; HTTP/2 either way) and its admin listener (metrics,
# {HEALTH_PATH}, {READY_PATH}). SIGTERM drains in-flight requests (--shutdown-timeout).
EXPOSE {LISTEN_PORT} {ADMIN_PORT}
ENTRYPOINT ["/usr/local/bin/{binary}", "--listen", "0.0.0.0:{LISTEN_PORT}", "--admin-listen", "0.0.0.0:{ADMIN_PORT}"]
"#
    )
}

fn dockerignore(gateway: &Gateway) -> String {
    format!(
        "# Written by `cargo xtask package {}`: what the image build does not need from the workspace. Docker reads\n\
         # it as Dockerfile.dockerignore beside the Dockerfile (BuildKit, with -f) or as .dockerignore at the root of\n\
         # the build context.\n\
         .git\n\
         **/target\n\
         **/*.db\n\
         **/*.db-shm\n\
         **/*.db-wal\n",
        gateway.name
    )
}

fn kubernetes(gateway: &Gateway) -> String {
    let name = gateway.object_name();
    let secret = gateway.secret_name();
    let image = gateway.image();
    let short = &gateway.name;
    format!(
        r#"# Written by `cargo xtask package {short}`: the {package} on Kubernetes
# (1.30 or later, for the preStop sleep action). See docs/deploy.md.
#
# The certificate: kubectl create secret tls {secret} --cert=FILE --key=FILE
# Shutdown: preStop sleeps {PRE_STOP_SECONDS}s (endpoints drop the pod), then SIGTERM
# drains for up to {DRAIN_SECONDS}s (--shutdown-timeout); both fit in
# terminationGracePeriodSeconds ({GRACE_SECONDS}s).
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
    spec:
      terminationGracePeriodSeconds: {GRACE_SECONDS}
      securityContext:
        runAsNonRoot: true
        runAsUser: {NONROOT}
        runAsGroup: {NONROOT}
        fsGroup: {NONROOT}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: gateway
          image: {image}
          imagePullPolicy: IfNotPresent
          # After the image's --listen 0.0.0.0:{LISTEN_PORT} --admin-listen
          # 0.0.0.0:{ADMIN_PORT}. Point each upstream of the spec at what
          # the cluster reaches: --upstream NAME=URL (repeatable).
          args:
            - --tls-cert
            - {TLS_DIR}/tls.crt
            - --tls-key
            - {TLS_DIR}/tls.key
            - --shutdown-timeout
            - {DRAIN_SECONDS}s
            - --log-format
            - json
          ports:
            - name: https
              containerPort: {LISTEN_PORT}
            - name: admin
              containerPort: {ADMIN_PORT}
          readinessProbe:
            httpGet:
              path: {READY_PATH}
              port: admin
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          livenessProbe:
            httpGet:
              path: {HEALTH_PATH}
              port: admin
            initialDelaySeconds: 5
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          lifecycle:
            preStop:
              sleep:
                seconds: {PRE_STOP_SECONDS}
          resources:
            requests:
              cpu: 250m
              memory: 64Mi
            limits:
              cpu: "1"
              memory: 256Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: tls
              mountPath: {TLS_DIR}
              readOnly: true
            - name: data
              mountPath: {DATA_DIR}
      volumes:
        - name: tls
          secret:
            secretName: {secret}
            defaultMode: 288  # 0440: the owner and the pod's fsGroup
        - name: data
          emptyDir:
            sizeLimit: 256Mi
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: https
      port: 443
      targetPort: https
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
"#,
        package = gateway.package,
    )
}

/// Every document of a YAML stream, parsed.
fn documents(text: &str) -> anyhow::Result<Vec<serde_yaml::Value>> {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| serde_yaml::Value::deserialize(doc).with_context(|| format!("YAML document {}", i + 1)))
        .collect()
}

/// What [`check`] found: one line per object.
#[derive(Debug)]
struct Checked {
    kinds: Vec<String>,
}

/// Parses the manifest back and checks what the deployment relies on: a Deployment, a Service and a
/// PodDisruptionBudget; both probes on the container's admin port, at the admin listener's paths; the Secret
/// mounted and passed with `--tls-cert`/`--tls-key`; a grace period longer than the `preStop` sleep plus the drain.
fn check(text: &str, gateway: &Gateway) -> anyhow::Result<Checked> {
    let docs = documents(text)?;
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_owned())
        .collect();
    for wanted in ["Deployment", "Service", "PodDisruptionBudget"] {
        if !kinds.iter().any(|k| k == wanted) {
            bail!("no {wanted} in the manifest (found: {})", kinds.join(", "));
        }
    }
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .context("no Deployment")?;
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let ports = container["ports"].as_sequence().context("the container has no ports")?;
    let port_number = |port: &serde_yaml::Value| -> Option<u64> {
        match port {
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::String(name) => ports
                .iter()
                .find(|p| p["name"].as_str() == Some(name))
                .and_then(|p| p["containerPort"].as_u64()),
            _ => None,
        }
    };
    for (probe, path) in [("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)] {
        let get = &container[probe]["httpGet"];
        let port = port_number(&get["port"]);
        if port != Some(u64::from(ADMIN_PORT)) {
            bail!(
                "the {probe} asks port {:?}, not the admin port {ADMIN_PORT}",
                get["port"]
            );
        }
        if get["path"].as_str() != Some(path) {
            bail!("the {probe} asks {:?}, not {path}", get["path"]);
        }
    }
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .context("the container has no args")?
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .copied()
    };
    let drain = after("--shutdown-timeout").context("no --shutdown-timeout in the args")?;
    let drain = humantime::parse_duration(drain).with_context(|| format!("--shutdown-timeout {drain}"))?;
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .context("no preStop sleep")?;
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .context("no terminationGracePeriodSeconds")?;
    if Duration::from_secs(pre_stop) + drain >= Duration::from_secs(grace) {
        bail!("preStop {pre_stop}s + drain {drain:?} do not fit in terminationGracePeriodSeconds {grace}");
    }
    let secret = pod["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find_map(|v| v["secret"]["secretName"].as_str()))
        .context("no Secret volume")?;
    if secret != gateway.secret_name() {
        bail!("the Secret mounted is {secret}, not {}", gateway.secret_name());
    }
    for (flag, file) in [("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")] {
        if after(flag) != Some(&format!("{TLS_DIR}/{file}")) {
            bail!("{flag} is not {TLS_DIR}/{file}");
        }
    }
    if container["securityContext"]["readOnlyRootFilesystem"].as_bool() != Some(true)
        || pod["securityContext"]["runAsNonRoot"].as_bool() != Some(true)
    {
        bail!("the pod must run as non-root with a read-only root filesystem");
    }
    Ok(Checked { kinds })
}

/// Writes the package of `gateway` into `dir`; the paths written.
fn write(gateway: &Gateway, builder: &(String, String), dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (file, text) in render(gateway, builder) {
        let path = dir.join(file);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// What `yamllint` said.
enum Lint {
    /// It found nothing.
    Clean,
    /// It found warnings only (its output).
    Warnings(String),
    /// It is not on `PATH`.
    Skipped,
}

/// Runs `yamllint -d relaxed` on `path` if it is on `PATH`; fails on errors.
fn yamllint(path: &Path) -> anyhow::Result<Lint> {
    let Some(program) = on_path("yamllint") else {
        return Ok(Lint::Skipped);
    };
    let mut command = Command::new(program);
    command.args(["-f", "parsable", "-d", "relaxed"]).arg(path);
    let output = output_within(command, LINT_LIMIT)?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        bail!(
            "yamllint found errors in {}:\n{text}{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(if text.is_empty() {
        Lint::Clean
    } else {
        Lint::Warnings(text)
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let gateway = find(&root, &args.name)?;
    let builder = builder_image(&root)?;
    let dir = root.join("target/package").join(&gateway.name);
    let written = write(&gateway, &builder, &dir)?;
    println!("wrote the package of {} ({}):", gateway.package, gateway.image());
    for path in &written {
        println!("  {}", display_path(path));
    }
    let manifest = dir.join("kubernetes.yaml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let checked = check(&text, &gateway).context("the manifest does not check out")?;
    println!(
        "\nkubernetes.yaml parses back ({}); probes on the admin port {ADMIN_PORT}; preStop {PRE_STOP_SECONDS}s + \
         drain {DRAIN_SECONDS}s < grace {GRACE_SECONDS}s",
        checked.kinds.join(", ")
    );
    match yamllint(&manifest)? {
        Lint::Clean => println!("yamllint (relaxed): clean"),
        Lint::Warnings(text) => println!("yamllint (relaxed): warnings only:\n{text}"),
        Lint::Skipped => {
            println!("yamllint: skipped (not on PATH; `pip install yamllint` or `apt-get install yamllint`)")
        }
    }
    println!(
        "\nbuilder image: {} ({})\n\nNext (from the workspace root):\n\n  \
         docker build -f {}/Dockerfile -t {} .\n  \
         kubectl create secret tls {} --cert=server.crt --key=server.key\n  \
         kubectl apply -f {}\n\nSee docs/deploy.md.",
        builder.0,
        builder.1,
        display_path(&dir),
        gateway.image(),
        gateway.secret_name(),
        display_path(&manifest),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Gateway {
        Gateway {
            name: String::from("petstore"),
            package: String::from("petstore-gateway"),
            binary: String::from("petstore-gateway"),
            version: String::from("0.1.0"),
        }
    }

    #[test]
    fn the_package_parses_and_its_probes_ask_the_admin_port() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-package-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let gateway = example();
        let builder = (String::from("rust:1.89-bookworm"), String::from("test"));
        let written = write(&gateway, &builder, &dir)?;
        assert_eq!(written.len(), 4);

        let text = fs::read_to_string(dir.join("kubernetes.yaml"))?;
        let docs = documents(&text)?;
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["Deployment", "Service", "PodDisruptionBudget"]);
        let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
        let admin = container["ports"]
            .as_sequence()
            .context("ports")?
            .iter()
            .find(|p| p["containerPort"].as_u64() == Some(u64::from(ADMIN_PORT)))
            .context("the admin port")?;
        for (probe, path) in [("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)] {
            assert_eq!(container[probe]["httpGet"]["port"], admin["name"], "{probe}");
            assert_eq!(container[probe]["httpGet"]["path"].as_str(), Some(path), "{probe}");
        }
        assert_eq!(docs[0]["spec"]["replicas"].as_u64(), Some(2));
        assert_eq!(docs[2]["spec"]["minAvailable"].as_u64(), Some(1));
        assert_eq!(docs[1]["spec"]["ports"][0]["targetPort"].as_str(), Some("https"));
        check(&text, &gateway)?;

        let dockerfile = fs::read_to_string(dir.join("Dockerfile"))?;
        assert!(dockerfile.contains("FROM rust:1.89-bookworm AS build"));
        assert!(dockerfile.contains("cargo build --release --locked -p petstore-gateway"));
        assert!(dockerfile.contains(&format!("EXPOSE {LISTEN_PORT} {ADMIN_PORT}")));
        assert!(dockerfile.contains(r#""--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9090""#));
        let copies: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("COPY")).collect();
        assert!(
            copies.iter().all(|l| !l.contains(".key") && !l.contains(".crt")),
            "no certificate or key is copied into the image: {copies:?}"
        );
        assert!(dockerfile.contains(r#"VOLUME ["/var/lib/gateway", "/etc/gateway/tls"]"#));
        assert!(fs::read_to_string(dir.join(".dockerignore"))?.contains("**/target"));
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_broken_manifest_is_caught() -> anyhow::Result<()> {
        let gateway = example();
        let good = kubernetes(&gateway);
        let wrong_port = good.replacen("port: admin", "port: https", 1);
        assert!(check(&wrong_port, &gateway).is_err());
        let too_short = good.replace(
            &format!("terminationGracePeriodSeconds: {GRACE_SECONDS}"),
            "terminationGracePeriodSeconds: 10",
        );
        assert!(check(&too_short, &gateway).is_err());
        assert!(check("kind: [unclosed", &gateway).is_err());
        Ok(())
    }

    #[test]
    fn the_workspace_gateways_are_found_and_unknown_names_listed() -> anyhow::Result<()> {
        let root = workspace_root();
        let known = gateways(&root)?;
        let petstore = known
            .iter()
            .find(|g| g.name == "petstore")
            .context("gateways/petstore")?;
        assert_eq!(petstore.binary, "petstore-gateway");
        assert_eq!(find(&root, "petstore-gateway")?, *petstore);
        let error = format!("{:#}", find(&root, "no-such").err().context("an unknown name fails")?);
        assert!(error.contains("petstore"), "{error}");
        let (image, _) = builder_image(&root)?;
        assert!(image.starts_with("rust:") && image.ends_with("-bookworm"), "{image}");
        Ok(())
    }
}
