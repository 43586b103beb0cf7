//! TLS for the listeners that speak HTTPS: the device's certificate and the rustls
//! acceptor the server wraps those connections in.
//!
//! The certificate comes from the first of: the `tls_certificate`/`tls_key` files of the
//! config, the systemd credentials `tls.crt`/`tls.key` (LoadCredential=, the way secrets
//! reach a DynamicUser service), or a self-signed ECDSA P-256 certificate generated once
//! and kept in the state directory, so the fingerprint an owner has checked stays the same
//! across restarts, reboots and upgrades. `reload` reads it again (SIGHUP): new handshakes
//! get the new certificate, open connections keep theirs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key are looked for.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `tls_certificate` and `tls_key` from the config, if both are set.
    pub files: Option<(PathBuf, PathBuf)>,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd when the unit loads credentials.
    pub credentials: Option<PathBuf>,
    /// Where a generated certificate is kept.
    pub state_directory: PathBuf,
}

/// What the page and the log say about the certificate in use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// SHA-256 of the certificate, as browsers show it: `AB:CD:...`.
    pub fingerprint_sha256: String,
    /// Where it came from: "generated", "config" or "credential", and the path.
    pub source: String,
}

#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// What the settings page calls to install an uploaded certificate and key (PEM).
pub type Replace = Box<dyn Fn(&[u8], &[u8]) -> Result<Summary, String> + Send + Sync>;

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

pub struct Tls {
    sources: Sources,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads (or, the first time, generates) the certificate and builds the acceptor.
    pub fn new(sources: Sources) -> Result<(Self, Summary), TlsError> {
        let (key, summary) = load(&sources)?;
        let current = Arc::new(Current(RwLock::new(key)));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| TlsError(format!("TLS setup: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok((Tls { sources, current, acceptor }, summary))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Takes a certificate and key the owner uploaded, if they belong together, in place
    /// of the generated one, and uses them from the next handshake on.
    pub fn replace(&self, cert: &[u8], key: &[u8]) -> Result<Summary, TlsError> {
        if self.sources.files.is_some() || self.sources.credentials.iter().any(|d| d.join("tls.crt").exists())
        {
            return Err(TlsError(
                "this device's certificate comes from its image (the config or a systemd credential): \
                 replace it there"
                    .into(),
            ));
        }
        certified_key_from_pem(cert, key, "the uploaded certificate", "the uploaded key")?;
        let dir = &self.sources.state_directory;
        let failed =
            |e: std::io::Error| TlsError(format!("cannot keep the certificate in {}: {e}", dir.display()));
        crate::state::write_atomically(&dir.join("tls.key"), key, 0o600).map_err(failed)?;
        crate::state::write_atomically(&dir.join("tls.crt"), cert, 0o644).map_err(failed)?;
        self.reload()
    }

    /// Reads the certificate again; on failure the one in use stays.
    pub fn reload(&self) -> Result<Summary, TlsError> {
        let (key, summary) = load(&self.sources)?;
        *self.current.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
        Ok(summary)
    }
}

fn load(sources: &Sources) -> Result<(Arc<CertifiedKey>, Summary), TlsError> {
    let credential = |name| sources.credentials.as_ref().map(|dir| dir.join(name)).filter(|p| p.exists());
    let (cert, key, source) = if let Some((cert, key)) = &sources.files {
        (cert.clone(), key.clone(), "config")
    } else if let (Some(cert), Some(key)) = (credential("tls.crt"), credential("tls.key")) {
        (cert, key, "credential")
    } else {
        let (cert, key) = (sources.state_directory.join("tls.crt"), sources.state_directory.join("tls.key"));
        if !cert.exists() || !key.exists() {
            generate(&sources.state_directory, &cert, &key)?;
        }
        (cert, key, "generated")
    };
    let certified = certified_key(&cert, &key)?;
    let summary = Summary {
        fingerprint_sha256: fingerprint(&certified.cert[0]),
        source: format!("{source} ({})", cert.display()),
    };
    Ok((Arc::new(certified), summary))
}

/// Reads a PEM certificate chain and key and checks that they belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
    };
    certified_key_from_pem(&read(cert)?, &read(key)?, &cert.display().to_string(), &key.display().to_string())
}

/// Parses a PEM chain and key, named in errors as `cert_name` and `key_name`.
fn certified_key_from_pem(
    cert: &[u8],
    key: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{cert_name}: not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{cert_name}: no certificate in it (want PEM)")));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| TlsError(format!("{key_name}: not a PEM private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| TlsError(format!("{key_name}: unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        TlsError(format!(
            "{cert_name} and {key_name} do not belong together: the key is not the certificate's"
        ))
    })?;
    Ok(certified)
}

/// A self-signed ECDSA P-256 certificate for this device's hostname, written atomically
/// (the key readable by portico alone).
fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "portico".to_owned());
    let names = vec![hostname.clone(), format!("{hostname}.local")];
    let failed = |e: rcgen::Error| TlsError(format!("cannot generate a certificate: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(failed)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, hostname);
    // Valid whatever a device without a battery-backed clock believes the date is, and
    // for its whole life: a self-signed certificate is trusted by its fingerprint, not its dates.
    params.not_before = rcgen::date_time_ymd(1970, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let cert = params.self_signed(&key).map_err(failed)?;

    let write_failed = |path: &Path, e: std::io::Error| {
        TlsError(format!(
            "cannot write {}: {e}. portico keeps its generated certificate in its state \
             directory (StateDirectory= in the unit, `state_directory` in the config); make it \
             writable, or provide a certificate (tls_certificate and tls_key)",
            path.display()
        ))
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| write_failed(dir, e))?;
    crate::state::write_atomically(key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| write_failed(key_path, e))?;
    crate::state::write_atomically(cert_path, cert.pem().as_bytes(), 0o644)
        .map_err(|e| write_failed(cert_path, e))?;
    tracing::info!("generated a self-signed certificate in {}", dir.display());
    Ok(())
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
