//! HTTPS: certificates by SNI, reloaded without a restart, and the TLS settings of the listener.
//!
//! Every `--tls-cert`/`--tls-key` pair is one certificate (with its chain). A handshake gets the first certificate
//! valid for the name the client asked for (SNI), checked the way a client checks it — so a wildcard certificate
//! serves every name one label under it — or, without SNI or a match, the first pair's. TLS 1.3 and 1.2 only, with
//! rustls's cipher suites (AEAD, forward secret); ALPN offers `h2` and `http/1.1`.
//!
//! [`Tls::reload`] (SIGHUP) reads every file again and swaps the whole set at once: handshakes from then on get the
//! new certificates, connections already open keep theirs. A file that cannot be read or a key that does not fit
//! its certificate fails the reload, and the certificates in force stay.
//!
//! With `--tls-client-ca` the listener asks for client certificates (mutual TLS) and verifies them against that
//! CA: `required` refuses a handshake without one, `optional` lets it through, and operations that need one
//! (a `mutualTLS` security scheme, `x-gateway: { mtls: required }`) answer `401` without it. The verified
//! certificate's subject and SANs are the connection's [`ClientCert`], in every request's context.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One certificate: its PEM chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate chain file.
    pub cert: PathBuf,
    /// The private key file (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What the HTTPS listener is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificates, the first being the default.
    pub pairs: Vec<CertPair>,
    /// Client certificates: the CA that signs them and whether one is required.
    pub client_auth: Option<ClientAuth>,
}

/// `--tls-client-ca` and `--tls-client-auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The PEM file of the CA certificates client certificates must chain to.
    pub ca: PathBuf,
    /// Whether a handshake without a client certificate is refused.
    pub mode: ClientAuthMode,
}

/// Whether a client certificate is required at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuthMode {
    /// A handshake without a valid client certificate fails.
    Required,
    /// A client may connect without one; operations that require one answer `401`. A certificate that is
    /// presented must still be valid.
    Optional,
}

/// The verified certificate a client presented: what requests know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject's distinguished name, RFC 4514 style (`CN=client-a, O=Example`).
    pub subject: String,
    /// The subject alternative names: `DNS:name`, `email:address`, `URI:uri`, `IP:address`.
    pub sans: Vec<String>,
}

impl ClientCert {
    /// What the leaf certificate `der` says of its subject; `None` if it does not parse (it was verified, so it
    /// does).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
                        GeneralName::RFC822Name(mail) => Some(format!("email:{mail}")),
                        GeneralName::URI(uri) => Some(format!("URI:{uri}")),
                        GeneralName::IPAddress(bytes) => ip_text(bytes).map(|ip| format!("IP:{ip}")),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            subject: cert.subject().to_string(),
            sans,
        })
    }
}

fn ip_text(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No `--tls-cert`.
    #[error("HTTPS needs at least one --tls-cert and --tls-key")]
    NoCertificate,
    /// A file could not be read or holds no PEM of the expected kind.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The client CA file holds no usable certificate.
    #[error("--tls-client-ca {path}: {reason}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings were refused.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The listener's TLS: the acceptor's configuration and the certificates behind it.
#[derive(Debug, Clone)]
pub struct Tls {
    config: TlsConfig,
    certs: Arc<Certificates>,
    server: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Loads every pair and makes the server configuration.
    pub fn new(config: TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(Certificates {
            current: ArcSwap::from_pointee(load(&config.pairs, &provider)?),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match &config.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => builder.with_client_cert_verifier(client_verifier(auth, &provider)?),
        };
        let mut server = builder.with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config,
            certs,
            server: Arc::new(server),
        })
    }

    /// Whether client certificates are asked for.
    pub fn asks_client_certs(&self) -> bool {
        self.config.client_auth.is_some()
    }

    /// The acceptor for new connections.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
    }

    /// Reads every certificate file again and, when all load, serves them from the next handshake on; returns how
    /// many are in force. On error nothing changes.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let loaded = load(&self.config.pairs, &provider)?;
        let count = loaded.len();
        self.certs.current.store(Arc::new(loaded));
        Ok(count)
    }
}

/// The certificates in force, swapped whole by a reload.
#[derive(Debug)]
struct Certificates {
    current: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.current.load();
        let asked = hello.server_name().and_then(|name| ServerName::try_from(name).ok());
        if let Some(name) = asked
            && certs.len() > 1
        {
            let fits = |key: &&Arc<CertifiedKey>| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|leaf| ParsedCertificate::try_from(leaf).ok())
                    .is_some_and(|parsed| rustls::client::verify_server_name(&parsed, &name).is_ok())
            };
            if let Some(found) = certs.iter().find(fits) {
                return Some(Arc::clone(found));
            }
        }
        certs.first().cloned()
    }
}

/// The verifier of client certificates: chains to the CA in `auth.ca`, optionally absent.
fn client_verifier(
    auth: &ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let bad = |reason: String| TlsError::ClientCa {
        path: auth.ca.clone(),
        reason,
    };
    let roots = crate::pem::roots(&auth.ca).map_err(bad)?;
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    };
    builder.build().map_err(|e| bad(e.to_string()))
}

/// Every pair, or the first error.
fn load(pairs: &[CertPair], provider: &CryptoProvider) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    if pairs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    pairs
        .iter()
        .map(|pair| load_pair(pair, provider).map(Arc::new))
        .collect()
}

fn load_pair(pair: &CertPair, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let bad = |path: &Path, reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let chain = crate::pem::chain(&pair.cert).map_err(|e| bad(&pair.cert, e))?;
    let key = crate::pem::key(&pair.key).map_err(|e| bad(&pair.key, e))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| bad(&pair.key, format!("{e} (is it the key of {}?)", pair.cert.display())))
}
