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
use std::io::Write;
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
pub fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: not a PEM certificate: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{}: no certificate in it (want PEM)", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| TlsError(format!("{}: not a PEM private key: {e}", key.display())))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| TlsError(format!("{}: unusable private key: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        TlsError(format!(
            "{} and {} do not belong together: the key is not the certificate's",
            cert.display(),
            key.display()
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
    write_atomically(key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| write_failed(key_path, e))?;
    write_atomically(cert_path, cert.pem().as_bytes(), 0o644).map_err(|e| write_failed(cert_path, e))?;
    tracing::info!("generated a self-signed certificate in {}", dir.display());
    Ok(())
}

/// Temporary file, fsync, rename, fsync of the directory: after a power loss the file is
/// the old one or the new one, never a torn one.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
