//! `cargo xtask cert`: a self-signed development CA and a server certificate it signed, for HTTPS on a developer's
//! machine (`--tls-cert`/`--tls-key`) and in the `tls` benchmark.
//!
//! Three PEM files go into one directory (`target/dev-tls` by default): `ca.pem` (the CA certificate: what a client
//! trusts, e.g. `curl --cacert`), `server.crt` and `server.key` (mode 0600). The CA's own key is never written: it
//! signs the one server certificate and is dropped, so nothing made later can chain to that CA. A set of files
//! already there is kept (the CA a browser or a keychain was told to trust stays the same) unless `--force`.
//!
//! Names that parse as IP addresses become IP SANs (`127.0.0.1`, `::1`); the others are DNS names, `*.` wildcards
//! allowed. The certificates are valid from today (00:00 UTC): the server's for a year (under the 825 days some
//! clients allow any TLS server certificate), the CA's for ten.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::workspace_root;

/// Where the files go by default, under the workspace root.
pub const DEFAULT_DIR: &str = "target/dev-tls";

/// The names the server certificate is for by default.
pub const DEFAULT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The port the gateway listens on by default (`--listen 127.0.0.1:8080`), for the printed curl line.
const GATEWAY_PORT: u16 = 8080;

/// A path the petstore gateway answers by itself (a mock), for the printed curl line.
const EXAMPLE_PATH: &str = "/health";

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Directory to write ca.pem, server.crt and server.key into [default: target/dev-tls in the workspace].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A name the server certificate is for (repeatable): a DNS name (`localhost`, `api.example.test`,
    /// `*.example.test`) or an IP address, which becomes an IP SAN [default: localhost and 127.0.0.1].
    #[arg(long = "name", value_name = "HOST")]
    pub names: Vec<String>,
    /// Replace the files if they exist (a new CA too: trust the new ca.pem).
    #[arg(long)]
    pub force: bool,
}

/// The three files of a development CA and its server certificate, in one directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// The CA certificate (PEM): what clients trust.
    pub ca: PathBuf,
    /// The server certificate (PEM), signed by the CA: `--tls-cert`.
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS#8 PEM, mode 0600): `--tls-key`.
    pub key: PathBuf,
}

impl Files {
    /// The files' paths in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }

    /// Every path, in order.
    fn all(&self) -> [&Path; 3] {
        [&self.ca, &self.cert, &self.key]
    }

    /// The gateway's flags for these files: `--tls-cert CERT --tls-key KEY`.
    pub fn gateway_flags(&self) -> [String; 4] {
        [
            String::from("--tls-cert"),
            self.cert.display().to_string(),
            String::from("--tls-key"),
            self.key.display().to_string(),
        ]
    }
}

/// Whether [`ensure`] made new files or found a set already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new CA and server certificate were written.
    Made,
    /// All three files were there already and were kept.
    Kept,
}

/// A name of the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    /// A DNS name or a `*.` wildcard.
    Dns(String),
    /// An IP address (an IP SAN).
    Ip(IpAddr),
}

impl Name {
    /// Reads `HOST`: an IP address (IPv6 with or without brackets) or a DNS name of letters, digits, `-` and `.`,
    /// optionally starting with `*.`.
    fn parse(raw: &str) -> anyhow::Result<Self> {
        let name = raw.trim();
        let unbracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let dns = name.trim_end_matches('.').to_ascii_lowercase();
        let labels = dns.strip_prefix("*.").unwrap_or(&dns);
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if labels.is_empty() || dns.len() > 253 || !labels.split('.').all(label_ok) {
            bail!(
                "`{raw}` is neither an IP address nor a DNS name (letters, digits, `-` and `.`, optionally starting \
                 with `*.`)"
            );
        }
        Ok(Self::Dns(dns))
    }

    /// The subject alternative name.
    fn san(&self) -> anyhow::Result<SanType> {
        Ok(match self {
            Self::Ip(ip) => SanType::IpAddress(*ip),
            Self::Dns(dns) => SanType::DnsName(
                dns.clone()
                    .try_into()
                    .with_context(|| format!("`{dns}` is not a valid DNS name"))?,
            ),
        })
    }

    /// As it goes in a URL's host: IPv6 in brackets.
    fn url_host(&self) -> String {
        match self {
            Self::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Self::Ip(ip) => ip.to_string(),
            Self::Dns(dns) => dns.clone(),
        }
    }

    /// As printed.
    fn text(&self) -> String {
        match self {
            Self::Ip(ip) => ip.to_string(),
            Self::Dns(dns) => dns.clone(),
        }
    }
}

/// Reads the `--name` values (the defaults when there are none); duplicates are dropped.
fn parse_names(raw: &[String]) -> anyhow::Result<Vec<Name>> {
    let raw: Vec<String> = if raw.is_empty() {
        DEFAULT_NAMES.iter().map(|n| (*n).to_owned()).collect()
    } else {
        raw.to_vec()
    };
    let mut names: Vec<Name> = Vec::new();
    for text in &raw {
        let name = Name::parse(text)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Makes the files in `dir` for `names` (the defaults when empty), unless all three are there already and `force`
/// is off; fails if only some of them are there (a server certificate without the CA that signed it, say) and
/// `force` is off.
pub fn ensure(dir: &Path, names: &[String], force: bool) -> anyhow::Result<(Files, Outcome)> {
    let names = parse_names(names)?;
    let files = Files::in_dir(dir);
    let present: Vec<&Path> = files.all().into_iter().filter(|p| p.exists()).collect();
    if !force && present.len() == 3 {
        return Ok((files, Outcome::Kept));
    }
    if !force && !present.is_empty() {
        let shown: Vec<String> = present.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{} holds {} but not the whole set (ca.pem, server.crt, server.key); pass --force to make a new one",
            dir.display(),
            shown.join(", ")
        );
    }
    write(dir, &names, &files)?;
    Ok((files, Outcome::Made))
}

/// A new CA and server certificate for `names` (the defaults when empty) in `dir`, replacing any files there.
pub fn make(dir: &Path, names: &[String]) -> anyhow::Result<Files> {
    ensure(dir, names, true).map(|(files, _)| files)
}

/// Generates the CA and the server certificate and writes the three files.
fn write(dir: &Path, names: &[Name], files: &Files) -> anyhow::Result<()> {
    let first = names.first().context("no name for the certificate")?;
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // The 28th at the latest, so that the same day some years on always exists.
    let (year, month, day) = (
        i32::from(today.year()),
        u8::try_from(today.month()).unwrap_or(1),
        u8::try_from(today.day().min(28)).unwrap_or(1),
    );

    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gateway development CA (cargo xtask cert)");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(year, month, day);
    ca_params.not_after = rcgen::date_time_ymd(year + 10, month, day);
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA certificate")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, first.text());
    params.subject_alt_names = names.iter().map(Name::san).collect::<anyhow::Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 1, month, day);
    let key = KeyPair::generate().context("generating the server key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;

    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(&files.ca, ca_cert.pem()).with_context(|| format!("writing {}", files.ca.display()))?;
    fs::write(&files.cert, cert.pem()).with_context(|| format!("writing {}", files.cert.display()))?;
    write_private(&files.key, &key.serialize_pem())
}

/// Writes `text` to `path` readable by its owner only (mode 0600, also when the file was there before).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        // A file that was there keeps its mode through `open`: narrow it before anything is written into it.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| workspace_root().join(DEFAULT_DIR));
    let names = parse_names(&args.names)?;
    let (files, outcome) = ensure(&dir, &args.names, args.force)?;
    // Absolute paths, so that the printed lines work from any directory.
    let files = Files {
        ca: fs::canonicalize(&files.ca).unwrap_or(files.ca),
        cert: fs::canonicalize(&files.cert).unwrap_or(files.cert),
        key: fs::canonicalize(&files.key).unwrap_or(files.key),
    };
    let shown: Vec<String> = names.iter().map(Name::text).collect();
    match outcome {
        Outcome::Made => println!(
            "made a development CA and a server certificate for {} (valid for a year):",
            shown.join(", ")
        ),
        Outcome::Kept => println!(
            "kept the files already in {} (pass --force to make new ones, e.g. for other --name values):",
            dir.display()
        ),
    }
    println!(
        "  CA certificate      {}    (trust it for development only)",
        files.ca.display()
    );
    println!("  server certificate  {}", files.cert.display());
    println!("  server key          {}    (mode 0600)", files.key.display());
    println!(
        "\nServe HTTPS with them, e.g.:\n\n  target/release/petstore-gateway {}",
        files.gateway_flags().join(" ")
    );
    let host = names.first().map_or_else(|| String::from("localhost"), Name::url_host);
    println!(
        "\nand ask it, trusting the CA:\n\n  curl --cacert {} https://{host}:{GATEWAY_PORT}{EXAMPLE_PATH}",
        files.ca.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-cert-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn names_parse_into_ip_and_dns_sans() -> anyhow::Result<()> {
        assert_eq!(Name::parse("127.0.0.1")?, Name::Ip(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(Name::parse("[::1]")?, Name::Ip("::1".parse()?));
        assert_eq!(Name::parse("LocalHost.")?, Name::Dns("localhost".into()));
        assert_eq!(Name::parse("*.example.test")?, Name::Dns("*.example.test".into()));
        for bad in ["", "a b", "-x.test", "*.", "ex_ample.test", "é.test"] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Name::parse("::1")?.url_host(), "[::1]");
        assert_eq!(parse_names(&[])?.len(), 2);
        assert_eq!(parse_names(&["a.test".into(), "A.test".into()])?.len(), 1);
        Ok(())
    }

    #[test]
    fn makes_keeps_and_replaces_the_files() -> anyhow::Result<()> {
        let dir = scratch("set");
        let (files, outcome) = ensure(&dir, &[], false)?;
        assert_eq!(outcome, Outcome::Made);
        let ca = fs::read_to_string(&files.ca)?;
        let key = fs::read_to_string(&files.key)?;
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(fs::read_to_string(&files.cert)?.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&files.key)?.permissions().mode() & 0o777, 0o600);
        }
        // Kept as they are without --force; replaced with it.
        assert_eq!(ensure(&dir, &["other.test".into()], false)?.1, Outcome::Kept);
        assert_eq!(fs::read_to_string(&files.ca)?, ca);
        assert_eq!(ensure(&dir, &[], true)?.1, Outcome::Made);
        assert_ne!(fs::read_to_string(&files.ca)?, ca);
        // A partial set is not silently completed.
        fs::remove_file(&files.ca)?;
        assert!(ensure(&dir, &[], false).is_err());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// The server certificate chains to the CA for each of its names, as a client that trusts only `ca.pem`
    /// checks it (rustls's verifier, the same the gateway's clients and the tests use).
    #[test]
    fn the_server_certificate_verifies_against_the_ca() -> anyhow::Result<()> {
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let dir = scratch("verify");
        let files = make(&dir, &["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&files.ca)?)?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build()?;
        let leaf = CertificateDer::from_pem_file(&files.cert)?;
        for name in ["localhost", "127.0.0.1", "::1"] {
            let name = ServerName::try_from(name)?;
            verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())?;
        }
        let other = ServerName::try_from("example.com")?;
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
                .is_err()
        );
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
