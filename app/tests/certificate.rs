//! A certificate that cannot be used never stops portico: HTTP keeps answering, HTTPS
//! falls back to the next certificate there is (in the end a generated one), and the log
//! says, at error priority, what is wrong and what to do. The owner's upload is saved as
//! one file, so no crash leaves half a pair.

#![cfg(feature = "tls")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::owner::Session;
use common::tls::Client;
use common::*;
use nix::sys::signal::Signal;

impl Device {
    /// The certificate /api/status says is in use: (fingerprint, source).
    fn certificate(&self) -> (String, String) {
        let status = api_status(self.http);
        let field = |name: &str| status["certificate"][name].as_str().unwrap().to_owned();
        (field("fingerprint_sha256"), field("source"))
    }

    /// The lines logged at the journal's error priority.
    fn errors(&self) -> Vec<String> {
        self.portico.stderr().lines().filter(|l| l.starts_with("<3>")).map(str::to_owned).collect()
    }

    fn reload(&self) {
        self.portico.signal(Signal::SIGHUP);
        self.notify.wait_for("RELOADING=1");
        self.notify.wait_for("READY=1");
    }
}

/// Sets the owner up and opens the status page to everyone, so /api/status keeps naming
/// the certificate in use to the checks here.
fn set_up_in_the_open(device: &Device) -> Session {
    let session = Session::set_up(device.https);
    let opened = session.post(&mut Client::connect(device.https), "/settings/access", &[("public", "on")]);
    assert_eq!(opened.status, 303, "{}", opened.body);
    session
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What must hold whatever was wrong with the certificate: HTTP answers, and HTTPS
/// completes a handshake with the certificate /api/status names. Returns its fingerprint.
fn serves_both(device: &Device) -> String {
    assert_eq!(get(device.http, "/healthz").status, 200);
    let mut client = Client::connect(device.https);
    assert_eq!(client.get("/healthz").status, 200);
    assert_eq!(device.certificate().0, client.fingerprint);
    client.fingerprint
}

/// An earlier portico saved an upload as two files, the key first: killed between the
/// two writes, it left the new key beside the old certificate, and portico then exited 78
/// at every start, port 80 included.
#[test]
fn a_pair_left_half_replaced_by_an_interrupted_old_upload_does_not_stop_portico() {
    let state = state_directory();
    let generated = serves_both(&start(&state, &[], &[]));
    let (_, other_key, _) = certificate_pair();
    std::fs::copy(other_key, state.join("tls.key")).unwrap();

    let device = start(&state, &[], &[]);
    let fallback = serves_both(&device);
    assert_ne!(fallback, generated);
    assert!(device.certificate().1.starts_with("generated"), "{:?}", device.certificate());
    let errors = device.errors();
    assert!(errors.iter().any(|l| l.contains("do not belong together")), "{}", device.portico.stderr());
    assert!(state.join("tls.key.unusable").exists(), "the broken pair is set aside, not deleted");
    drop(device);

    let again = start(&state, &[], &[]);
    assert_eq!(serves_both(&again), fallback, "the new certificate is kept");
    assert_eq!(again.errors(), Vec::<String>::new());
}

/// An earlier portico saved the owner's upload over the generated pair, as two files: after
/// an upgrade it is still the one in use.
#[test]
fn an_upload_saved_by_an_earlier_version_still_loads() {
    let state = state_directory();
    drop(start(&state, &[], &[]));
    let (cert, key, fingerprint) = certificate_pair();
    std::fs::copy(cert, state.join("tls.crt")).unwrap();
    std::fs::copy(key, state.join("tls.key")).unwrap();
    let device = start(&state, &[], &[]);
    assert_eq!(serves_both(&device), fingerprint);
    assert_eq!(device.errors(), Vec::<String>::new());
}

/// The config's certificate is the device maker's, and a device in the field has nobody to
/// fix it: portico says what is wrong at every start and serves with the generated one.
/// A reload keeps the certificate in use while the file is still broken, and takes it once
/// it is fixed.
#[test]
fn a_broken_configured_certificate_falls_back_until_a_reload_finds_it_fixed() {
    let (cert, key, fingerprint) = certificate_pair();
    let (_, other_key, _) = certificate_pair();
    let not_pem = scratch_path("not-pem.crt");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = scratch_path("missing.crt");
    for (broken_cert, broken_key, why) in [
        (&not_pem, &key, "no certificate in it"),
        (&missing, &key, "cannot read"),
        (&cert, &other_key, "do not belong together"),
    ] {
        let args =
            ["--tls-certificate", broken_cert.to_str().unwrap(), "--tls-key", broken_key.to_str().unwrap()];
        let device = start(&state_directory(), &args, &[]);
        assert_ne!(serves_both(&device), fingerprint);
        assert!(device.certificate().1.starts_with("generated"), "{:?}", device.certificate());
        let errors = device.errors();
        assert!(
            errors.iter().any(|l| l.contains(why) && l.contains("tls_certificate")),
            "{why}: says what is wrong and what to fix:\n{}",
            device.portico.stderr()
        );
    }

    let configured = scratch_path("configured.crt");
    std::fs::write(&configured, "not a certificate\n").unwrap();
    let args = ["--tls-certificate", configured.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let device = start(&state_directory(), &args, &[]);
    let fallback = serves_both(&device);
    let reload_failures = || device.portico.stderr().matches("reload failed").count();
    device.reload();
    assert_eq!(serves_both(&device), fallback, "a reload with the file still broken keeps the one in use");
    assert_eq!(reload_failures(), 1, "{}", device.portico.stderr());
    std::fs::copy(&cert, &configured).unwrap();
    device.reload();
    assert_eq!(serves_both(&device), fingerprint);
    assert!(device.certificate().1.starts_with("config"), "{:?}", device.certificate());
    std::fs::write(&configured, "broken again\n").unwrap();
    device.reload();
    assert_eq!(serves_both(&device), fingerprint, "a reload never falls back: it keeps the one in use");
    assert_eq!(reload_failures(), 2, "{}", device.portico.stderr());
}

/// Two certificates of portico's own making, as PEM texts: [(certificate, key, fingerprint)].
fn uploads() -> [(String, String, String); 2] {
    [certificate_pair(), certificate_pair()]
        .map(|(cert, key, fingerprint)| (read(&cert), read(&key), fingerprint))
}

fn upload(session: &Session, client: &mut Client, (cert, key, _): &(String, String, String)) -> Response {
    session.post(client, "/settings/certificate", &[("certificate", cert), ("key", key)])
}

/// The files in the state directory that are not the owner's login state.
fn certificate_files(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with("owner"))
        .collect();
    names.sort();
    names
}

#[test]
fn an_upload_is_saved_as_one_file_the_generated_pair_kept_beside_it() {
    let state = state_directory();
    let credentials = owner::credentials();
    let env = [("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())];
    let device = start(&state, &[], &env);
    let generated = [read(&state.join("tls.crt")), read(&state.join("tls.key"))];
    let [uploaded, _] = uploads();
    let saved = upload(&set_up_in_the_open(&device), &mut Client::connect(device.https), &uploaded);
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(serves_both(&device), uploaded.2);

    assert_eq!(certificate_files(&state), ["tls.crt", "tls.key", "uploaded.pem"]);
    let file = state.join("uploaded.pem");
    let pem = read(&file);
    assert!(pem.contains(uploaded.0.trim()) && pem.contains(uploaded.1.trim()), "{pem}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!([read(&state.join("tls.crt")), read(&state.join("tls.key"))], generated, "the fallback");
    drop(device);

    let again = start(&state, &[], &env);
    assert_eq!(serves_both(&again), uploaded.2);
    assert!(again.certificate().1.starts_with("uploaded"), "{:?}", again.certificate());
}

/// SIGKILL at random points while the owner uploads certificates, again and again: every
/// start afterwards serves, without an error, with the generated certificate or one of the
/// uploaded ones. This is about atomicity, not power loss: a killed process's writes are
/// in the kernel already, so it shows that no moment of a save leaves half a pair, not
/// that the disk holds the pair after a power cut (that is the fsyncs' job).
#[test]
fn sigkill_during_uploads_never_leaves_a_state_that_fails_to_start() {
    let state = state_directory();
    let credentials = owner::credentials();
    let env = [("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())];
    let mut device = start(&state, &[], &env);
    let pairs = uploads();
    let mut known = vec![serves_both(&device)];
    known.extend(pairs.iter().map(|pair| pair.2.clone()));
    let session = set_up_in_the_open(&device);
    // The kill lands anywhere in the first few uploads of a round.
    let started = Instant::now();
    assert_eq!(upload(&session, &mut Client::connect(device.https), &pairs[0]).status, 303);
    let span = started.elapsed().as_micros() as u64 * 4;
    let mut session = Some(session);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..40 {
        let session = session.take().unwrap_or_else(|| Session::log_in(device.https));
        let (pairs, addr) = (pairs.clone(), device.https);
        let (connected, uploading) = std::sync::mpsc::channel();
        // One kept-alive connection, uploading until portico dies under it.
        let writer = std::thread::spawn(move || {
            let mut client = Client::connect(addr);
            connected.send(()).unwrap();
            for pair in pairs.iter().cycle().take(40) {
                upload(&session, &mut client, pair);
            }
        });
        uploading.recv_timeout(PATIENCE).unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % span));
        device.portico.signal(Signal::SIGKILL);
        let _ = device.portico.wait_exit(PATIENCE);
        let _ = writer.join();

        device = start(&state, &[], &env);
        let fingerprint = serves_both(&device);
        assert!(known.contains(&fingerprint), "round {round}: {fingerprint} is none of {known:?}");
        assert_eq!(device.errors(), Vec::<String>::new(), "round {round}");
    }
}
