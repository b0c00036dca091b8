//! TLS client configuration shared by HTTPS, IMAP and SMTP: the system's trusted roots plus any
//! extra roots the user names (`--ca-bundle`). IO: reads the system store and the bundle file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Bundles larger than this are not certificate bundles.
const MAX_BUNDLE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA bundle {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA bundle {0} is larger than 4 MiB")]
    TooLarge(PathBuf),
    #[error("the CA bundle {0} holds no usable PEM certificate")]
    Empty(PathBuf),
}

/// The certificates of a PEM bundle.
pub fn load_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_BUNDLE_BYTES {
        return Err(TlsError::TooLarge(path.to_owned()));
    }
    let pem = std::fs::read(path).map_err(read_err)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_owned()));
    }
    Ok(certs)
}

/// A client configuration trusting the system's roots and `extra_roots` (from [`load_bundle`]).
pub fn client_config(extra_roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots.add_parsable_certificates(extra_roots.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
