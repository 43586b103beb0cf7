//! TLS for the listeners that speak HTTPS: the device's certificate and the rustls
//! acceptor the server wraps those connections in.
//!
//! The certificate comes from the first of: the `tls_certificate`/`tls_key` files of the
//! config, the systemd credentials `tls.crt`/`tls.key` (LoadCredential=, the way secrets
//! reach a DynamicUser service), the owner's upload (chain and key in one file of the state
//! directory, so no crash leaves half a pair), or a self-signed ECDSA P-256 certificate
//! generated once and kept in the state directory, so the fingerprint an owner has checked
//! stays the same across restarts, reboots and upgrades. `reload` reads it again (SIGHUP):
//! new handshakes get the new certificate, open connections keep theirs.
//!
//! At start, one that cannot be used is logged as an error and the next tried, down to the
//! generated one: a device in the field has nobody to fix a file, and with no certificate at
//! all it would serve neither HTTPS nor HTTP. The browser warns about the generated one
//! anyway, and the log and /api/status say which is in use. A reload takes the first there
//! is or keeps the one in use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::activation::Listeners;
use super::stream::Stream;
use crate::config::Config;

/// Where the certificate and key are looked for.
#[derive(Clone, Debug)]
pub(super) struct Sources {
    /// `tls_certificate` and `tls_key` from the config, if both are set.
    pub files: Option<(PathBuf, PathBuf)>,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd when the unit loads credentials.
    pub credentials: Option<PathBuf>,
    /// Where a generated certificate is kept.
    pub state_directory: PathBuf,
}

/// What the page and the log say about the certificate in use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Summary {
    /// SHA-256 of the certificate, as browsers show it: `AB:CD:...`.
    pub fingerprint_sha256: String,
    /// Where it came from: "config", "credential", "uploaded" or "generated", and the path.
    pub source: String,
}

impl Summary {
    /// SHA-256 of the certificate, as browsers show it.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint_sha256
    }
}

/// The log line that lets an owner check a browser's certificate warning.
pub(crate) fn describe(certificate: &Summary) -> String {
    format!("HTTPS certificate SHA-256 {} from {}", certificate.fingerprint_sha256, certificate.source)
}

/// What turns an accepted connection into a TLS one.
pub(crate) use tokio_rustls::TlsAcceptor;

/// Runs the TLS handshake on an accepted connection.
pub(crate) async fn handshake(acceptor: &TlsAcceptor, stream: Stream) -> std::io::Result<Stream> {
    Ok(Stream::Tls(Box::new(acceptor.accept(stream).await?)))
}

/// The HTTPS side, when a socket speaks it: the certificate and what reloads it.
pub(crate) struct Https {
    tls: Option<Arc<Tls>>,
    certificate: Option<Summary>,
}

impl Https {
    /// Loads the certificate if a socket speaks HTTPS (config, credential, the owner's
    /// upload, else a generated one: see `Tls::new`).
    pub(crate) fn set_up(config: &Config, listeners: &Listeners) -> Result<Self, Box<dyn std::error::Error>> {
        if !listeners.sockets.iter().any(|(_, info)| info.https) {
            return Ok(Https { tls: None, certificate: None });
        }
        let sources = Sources {
            files: config.tls_certificate.clone().zip(config.tls_key.clone()),
            credentials: std::env::var_os("CREDENTIALS_DIRECTORY").map(Into::into),
            state_directory: config.state_directory.clone(),
        };
        let (tls, certificate) = Tls::new(sources)?;
        tracing::info!("{}", describe(&certificate));
        Ok(Https { tls: Some(Arc::new(tls)), certificate: Some(certificate) })
    }

    /// The certificate in use at start; none without an HTTPS socket.
    pub(crate) fn certificate(&self) -> Option<Summary> {
        self.certificate.clone()
    }

    /// What the settings page calls to install an uploaded certificate; none without an
    /// HTTPS socket.
    pub(crate) fn replacer(&self) -> Option<Replace> {
        let tls = self.tls.clone()?;
        Some(Box::new(move |cert, key| tls.replace(cert, key).map_err(|e| e.to_string())))
    }

    /// Reads the certificate again; None without HTTPS.
    pub(crate) fn reload(&self) -> Option<Result<Summary, TlsError>> {
        self.tls.as_ref().map(|tls| tls.reload())
    }

    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.as_deref().map(Tls::acceptor)
    }
}

#[derive(Debug)]
pub(crate) struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// What the settings page calls to install an uploaded certificate and key (PEM).
pub(crate) type Replace = Box<dyn Fn(&[u8], &[u8]) -> Result<Summary, String> + Send + Sync>;

/// The owner's upload in the state directory: chain, then key.
const UPLOADED: &str = "uploaded.pem";
/// The generated pair in the state directory; versions before `UPLOADED` saved an upload
/// there too, and it loads as it did.
const GENERATED: [&str; 2] = ["tls.crt", "tls.key"];

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

pub(super) struct Tls {
    sources: Sources,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads (or, the first time, generates) the certificate and builds the acceptor.
    pub(crate) fn new(sources: Sources) -> Result<(Self, Summary), TlsError> {
        let (key, summary) = load(&sources, true)?;
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

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Takes a certificate and key the owner uploaded, if they belong together, in place
    /// of the generated one (kept to fall back on), and uses them from the next handshake
    /// on. What is saved, in one file, is exactly what was checked.
    pub(crate) fn replace(&self, cert: &[u8], key: &[u8]) -> Result<Summary, TlsError> {
        if self.sources.files.is_some() || self.sources.credentials.iter().any(|d| d.join("tls.crt").exists())
        {
            return Err(TlsError(
                "this device's certificate comes from its image (the config or a systemd credential): \
                 replace it there"
                    .into(),
            ));
        }
        let pair = [cert, b"\n", key].concat();
        certified_key_from_pem(&pair, &pair, "the uploaded certificate", "the uploaded key")?;
        let dir = &self.sources.state_directory;
        crate::durable::write_atomically(&dir.join(UPLOADED), &pair, 0o600)
            .map_err(|e| TlsError(format!("cannot keep the certificate in {}: {e}", dir.display())))?;
        self.reload()
    }

    /// Reads the certificate again; on failure the one in use stays.
    pub(crate) fn reload(&self) -> Result<Summary, TlsError> {
        let (key, summary) = load(&self.sources, false)?;
        *self.current.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
        Ok(summary)
    }
}

/// The certificates there are, best first: (source, certificate, key); an upload is one
/// file holding both.
fn candidates(sources: &Sources) -> Vec<(&'static str, PathBuf, PathBuf)> {
    let pair = |dir: &Path, [cert, key]: [&str; 2]| (dir.join(cert), dir.join(key));
    let mut found = Vec::new();
    if let Some((cert, key)) = &sources.files {
        found.push(("config", cert.clone(), key.clone()));
    }
    if let Some((cert, key)) = sources.credentials.as_deref().map(|dir| pair(dir, GENERATED)) {
        if cert.exists() && key.exists() {
            found.push(("credential", cert, key));
        }
    }
    let state = &sources.state_directory;
    if state.join(UPLOADED).exists() {
        found.push(("uploaded", state.join(UPLOADED), state.join(UPLOADED)));
    }
    let (cert, key) = pair(state, GENERATED);
    if cert.exists() && key.exists() {
        found.push(("generated", cert, key));
    }
    found
}

/// The first certificate that can be used; with `fall_back` (at start) one that cannot is
/// logged and the next tried, else (on reload) it is the error. With none, a new one is
/// generated.
fn load(sources: &Sources, fall_back: bool) -> Result<(Arc<CertifiedKey>, Summary), TlsError> {
    let summarize = |certified: CertifiedKey, source: &str, cert: &Path| {
        let fingerprint_sha256 = fingerprint(&certified.cert[0]);
        (
            Arc::new(certified),
            Summary { fingerprint_sha256, source: format!("{source} ({})", cert.display()) },
        )
    };
    for (source, cert, key) in candidates(sources) {
        match certified_key(&cert, &key) {
            Ok(certified) => return Ok(summarize(certified, source, &cert)),
            Err(e) if fall_back => tracing::error!(
                "cannot use the {source} HTTPS certificate: {e}. {} Meanwhile portico uses the next \
                 certificate there is.",
                remedy(source)
            ),
            Err(e) => return Err(e),
        }
    }
    let dir = &sources.state_directory;
    let [cert, key] = GENERATED.map(|name| dir.join(name));
    let (cert_pem, key_pem) = self_signed()?;
    match keep(dir, &cert, &key, &cert_pem, &key_pem) {
        Ok(()) => {}
        Err(e) if fall_back => tracing::error!(
            "{e}. Meanwhile portico serves HTTPS with a certificate made for this run only: a new \
             fingerprint at each start until it can be kept"
        ),
        Err(e) => return Err(e),
    }
    let certified = certified_key_from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), "generated", "its key")?;
    Ok(summarize(certified, "generated", &cert))
}

/// What the owner or the device maker does about a certificate that cannot be used.
fn remedy(source: &str) -> &'static str {
    match source {
        "config" => "Fix tls_certificate and tls_key in the config, then run `systemctl reload portico`.",
        "credential" => "Fix the credentials tls.crt and tls.key (LoadCredential=), then restart portico.",
        "uploaded" => "Upload the certificate and key again on https://<this device>/settings.",
        _ => {
            "It is set aside as *.unusable and a new one generated (a new fingerprint); if it was an \
              uploaded one, upload it again on https://<this device>/settings."
        }
    }
}

/// Reads a PEM certificate chain and key and checks that they belong together; one file
/// holding both is read once, so a save landing in between cannot mix two.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = if key == cert { cert_pem.clone() } else { read(key)? };
    certified_key_from_pem(&cert_pem, &key_pem, &cert.display().to_string(), &key.display().to_string())
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

/// A self-signed ECDSA P-256 certificate for this device's hostname, and its key (PEM).
fn self_signed() -> Result<(String, String), TlsError> {
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
    Ok((cert.pem(), key.serialize_pem()))
}

/// Keeps a generated pair in the state directory, written atomically (the key readable by
/// portico alone). What was there before is set aside, not lost.
fn keep(dir: &Path, cert_path: &Path, key_path: &Path, cert: &str, key: &str) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    let write_failed = |path: &Path, e: std::io::Error| {
        TlsError(format!(
            "cannot write {}: {e}. portico keeps its generated certificate in its state \
             directory (StateDirectory= in the unit, `state_directory` in the config); make it \
             writable, or provide a certificate (tls_certificate and tls_key)",
            path.display()
        ))
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| write_failed(dir, e))?;
    for path in [cert_path, key_path].into_iter().filter(|path| path.exists()) {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".unusable");
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside).map_err(|e| write_failed(&aside, e))?;
    }
    crate::durable::write_atomically(key_path, key.as_bytes(), 0o600)
        .map_err(|e| write_failed(key_path, e))?;
    crate::durable::write_atomically(cert_path, cert.as_bytes(), 0o644)
        .map_err(|e| write_failed(cert_path, e))?;
    tracing::info!("generated a self-signed certificate in {}", dir.display());
    Ok(())
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
