//! Certificates made for a test (rcgen): a CA and leaf certificates signed by it, written as PEM files in a
//! temporary directory; and an HTTPS client that trusts only that CA, speaks HTTP/1.1 or HTTP/2 as ALPN decides,
//! and reports which certificate the server presented.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A CA of its own, and the directory its certificates are written to (removed on drop).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    dir: PathBuf,
}

/// A leaf certificate's files, and its DER to compare with what a server presents.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA, its files under a fresh temporary directory.
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gateway-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "gateway test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_der = cert.der().clone();
        Self {
            issuer: Issuer::new(params, key),
            ca_der,
            ca_pem: cert.pem(),
            dir,
        }
    }

    /// A certificate for `names` (DNS names, `*.example.test` wildcards), written as `FILE.crt` and `FILE.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("leaf params");
        self.signed(file, &params)
    }

    /// A certificate made from `params`, signed by the CA, written as `FILE.crt` and `FILE.key`.
    fn signed(&self, file: &str, params: &CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }

    /// The CA certificate as a PEM file (for `--tls-client-ca`).
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write CA");
        path
    }

    /// A client certificate with common name `cn` and the DNS name and e-mail SANs given.
    pub fn client_leaf(&self, file: &str, cn: &str, dns: &[&str], email: &str) -> Leaf {
        let mut params =
            CertificateParams::new(dns.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Gateway Tests");
        params
            .subject_alt_names
            .push(rcgen::SanType::Rfc822Name(email.try_into().expect("e-mail SAN")));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.signed(file, &params)
    }

    /// [`TestCa::client`], presenting `leaf` as its client certificate.
    pub fn client_with_cert(&self, alpn: &[&[u8]], leaf: &Leaf) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;
        let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("client key");
        let config = self
            .trusting()
            .with_client_auth_cert(vec![CertificateDer::from(leaf.der.clone())], key)
            .expect("client certificate");
        offering(config, alpn)
    }

    /// A client configuration trusting only this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        offering(self.trusting().with_no_client_auth(), alpn)
    }

    /// A client configuration trusting only this CA, before its client certificate (or none) is chosen.
    fn trusting(&self) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA into the root store");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
    }
}

/// `config` offering `alpn`, with a full handshake on every connection: a resumed session would report the
/// certificate of the session it resumed, not the one the server would present now.
fn offering(mut config: rustls::ClientConfig, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct HttpsReply {
    pub status: StatusCode,
    pub version: Version,
    pub body: Bytes,
    /// The DER of the certificate the server presented.
    pub presented: Vec<u8>,
    /// The protocol ALPN settled on.
    pub alpn: Option<Vec<u8>>,
}

/// `GET path` over a new TLS connection to `addr`, asking for `sni`; HTTP/2 when ALPN picks `h2`.
pub async fn https_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
    path: &str,
) -> Result<HttpsReply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let presented = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let request = Request::get(format!("https://{sni}{path}"))
        .header(http::header::HOST, sni)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(connection);
        // HTTP/2 takes the authority from the URI, not a Host header.
        let (mut parts, body) = request.into_parts();
        parts.headers.remove(http::header::HOST);
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| format!("request: {e}"))?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("h1: {e}"))?;
        tokio::spawn(connection);
        let (mut parts, body) = request.into_parts();
        parts.uri = path.parse().map_err(|e| format!("{e}"))?;
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| format!("request: {e}"))?
    };
    let status = response.status();
    let version = response.version();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(HttpsReply {
        status,
        version,
        body,
        presented,
        alpn,
    })
}

/// An HTTPS upstream: HTTP/1.1 or HTTP/2 as ALPN decides, asking for client certificates signed by a CA of its
/// choice (and serving clients without one too). Every answer is a JSON description of the exchange: `version`,
/// and `client_cert`, the base64 DER of the certificate the client presented (`null` without one). Stops when dropped.
pub struct HttpsUpstream {
    pub addr: SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl HttpsUpstream {
    /// Serves `leaf` on an ephemeral port of 127.0.0.1, verifying client certificates against `client_ca`.
    pub async fn start(leaf: &Leaf, client_ca: &TestCa) -> std::io::Result<Self> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject as _;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca.ca_der.clone()).map_err(std::io::Error::other)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .map_err(std::io::Error::other)?;
        let key = PrivateKeyDer::from_pem_file(&leaf.key).map_err(std::io::Error::other)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![CertificateDer::from(leaf.der.clone())], key)
            .map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let presented = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|c| {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.encode(c.as_ref())
                        });
                    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let body = serde_json::json!({
                            "version": format!("{:?}", req.version()),
                            "client_cert": presented,
                        })
                        .to_string();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(Bytes::from(body)))
                                    .unwrap_or_default(),
                            )
                        }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Ok(Self { addr, _stop: stop })
    }
}
