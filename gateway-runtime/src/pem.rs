//! Reading PEM files for TLS: CA certificates to trust, a certificate chain, a private key. One place for the
//! listener's certificates and client CA (`serving::tls`) and the upstreams' own CA and client certificates
//! (`targets::proxy::connect`); each caller names the file and the flag or key in its own error.

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CA certificates in `path`, as a root store; an error when it holds none.
pub(crate) fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in chain(path)? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

/// The certificates in `path`, in file order (a chain: leaf first); an error when it holds none.
pub(crate) fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(chain)
}

/// The private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| e.to_string())
}
