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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
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
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config,
            certs,
            server: Arc::new(server),
        })
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
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.cert)
        .map_err(|e| bad(&pair.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&pair.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(&pair.cert, "no PEM certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| bad(&pair.key, e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| bad(&pair.key, format!("{e} (is it the key of {}?)", pair.cert.display())))
}
