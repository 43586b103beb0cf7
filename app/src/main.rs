//! portico: a device's status page, JSON API and health check, served on the sockets
//! systemd passes it (or on addresses it binds itself when started by hand).
//!
//! Start-up order matters: configuration, logging, sockets and the switch away from root
//! all happen on the one thread the process starts with; only then does the async
//! runtime start its workers.

mod activation;
#[cfg(feature = "tls")]
mod auth;
#[cfg(feature = "tls")]
mod common_passwords;
mod config;
#[cfg(feature = "example-page")]
mod example_page;
mod flat_toml;
mod handover;
mod logging;
mod metrics;
mod notify;
#[cfg(feature = "tls")]
mod owner;
mod peer;
mod privileges;
mod routes;
mod server;
mod shutdown;
#[cfg(feature = "tls")]
mod state;
mod stats;
mod status;
mod stream;
mod threads;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod updates;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::activation::Listeners;
use crate::config::{Command, Config};
use crate::routes::AppState;
use crate::server::{Connections, Limits, Server};
use crate::shutdown::{Reason, Shutdown};
use crate::stats::Counters;
use crate::status::Activation;
use crate::stream::AsyncListener;

/// Exit status for a setup that a restart alone cannot fix (bad config, bad sockets, root):
/// EX_CONFIG. systemd retries it all the same, so fixing the config file is enough.
const EXIT_SETUP: u8 = 78;

fn main() -> ExitCode {
    let config = match config::load(std::env::args_os().skip(1)) {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("portico {}", config::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Command::ResetOwner(config)) => return reset_owner(&config),
        Err(e) => return fatal(&e, EXIT_SETUP),
    };
    logging::init(config.log_level);
    let workers = match threads::workers(config.workers) {
        Ok(workers) => workers,
        Err(e) => return fatal(&e, EXIT_SETUP),
    };

    let listeners = match activation::listeners(&config) {
        Ok(listeners) => listeners,
        Err(e) => return fatal(&e, EXIT_SETUP),
    };
    if let Err(e) = privileges::drop_root(config.user.as_deref(), config.allow_root) {
        return fatal(&e, EXIT_SETUP);
    }
    // After the switch of user, so a generated certificate belongs to the user that
    // reloads it later.
    let https = match Https::set_up(&config, &listeners) {
        Ok(https) => https,
        Err(e) => return fatal(&*e, EXIT_SETUP),
    };
    let metrics = match metrics_access(&config) {
        Ok(metrics) => metrics,
        Err(e) => return fatal(&*e, EXIT_SETUP),
    };
    let handover = match handover::Handover::keep(&listeners.sockets) {
        Ok(handover) => handover,
        Err(e) => return fatal(&e, 1),
    };
    match run(config, listeners, workers, https, metrics) {
        Ok(Reason::Restart) => {
            let e = handover.exec();
            fatal(&*Box::<dyn Error>::from(format!("cannot restart in place: {e}")), 1)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fatal(&*e, 1),
    }
}

/// `portico reset-owner`, run by root on the device: the state directory is the running
/// service's (systemd keeps a DynamicUser= service's under /var/lib/private). The reset is
/// written as that directory's owner, not as root: whatever that user left in it (a link to
/// a file of root's, say) can then do no more than the user could itself.
#[cfg(feature = "tls")]
fn reset_owner(config: &Config) -> ExitCode {
    use std::os::unix::fs::MetadataExt;
    let private = std::path::Path::new("/var/lib/private/portico");
    let dir = match config.state_directory == std::path::Path::new(config::DEFAULT_STATE_DIRECTORY)
        && private.is_dir()
    {
        true => private.to_path_buf(),
        false => config.state_directory.clone(),
    };
    let result = std::fs::metadata(&dir)
        .map_err(|e| e.to_string())
        .and_then(|owner| {
            let (uid, gid) =
                (nix::unistd::Uid::from_raw(owner.uid()), nix::unistd::Gid::from_raw(owner.gid()));
            match nix::unistd::geteuid().is_root() && !uid.is_root() {
                true => privileges::become_ids(uid, gid)
                    .map_err(|e| format!("cannot become the directory's owner (uid {uid}): {e}")),
                false => Ok(()),
            }
        })
        .and_then(|()| auth::reset(&state::Store::new(&dir)).map_err(|e| e.to_string()));
    match result {
        Ok(code) => {
            println!(
                "The owner's password is cleared and every login has ended.\n\
                 Set-up code: {code}\n\
                 Open https://<this device>/setup, enter the code and choose a new password."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(&*Box::<dyn Error>::from(format!("cannot reset the owner in {}: {e}", dir.display())), 1)
        }
    }
}

#[cfg(not(feature = "tls"))]
fn reset_owner(_: &Config) -> ExitCode {
    fatal(
        &*Box::<dyn Error>::from("this portico was built without the `tls` feature: it has no owner login"),
        EXIT_SETUP,
    )
}

/// One line on stderr, with the journal's error priority when that is where it goes.
fn fatal(error: &dyn Error, code: u8) -> ExitCode {
    let prefix = if logging::stderr_is_journal() { "<3>" } else { "" };
    eprintln!("{prefix}portico: error: {error}");
    ExitCode::from(code)
}

fn run(
    config: Box<Config>,
    listeners: Listeners,
    workers: usize,
    https: Https,
    metrics: metrics::Access,
) -> Result<Reason, Box<dyn Error>> {
    let mut builder = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    // Nothing in portico blocks; the cap keeps the thread count within threads::OTHER_THREADS.
    let runtime = builder.max_blocking_threads(1).enable_all().build()?;
    let reason = runtime.block_on(serve(config, listeners, https, metrics))?;
    // The workers end before a restart in place replaces the process under them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(reason)
}

/// The HTTPS side, when a socket speaks it: the certificate, what reloads it, and the
/// owner's login, which only ever travels over it.
struct Https {
    #[cfg(feature = "tls")]
    tls: Option<Arc<tls::Tls>>,
    #[cfg(feature = "tls")]
    auth: Option<Arc<auth::Auth>>,
    certificate: Option<status::Certificate>,
}

impl Https {
    fn set_up(config: &Config, listeners: &Listeners) -> Result<Self, Box<dyn Error>> {
        if !listeners.sockets.iter().any(|(_, info)| info.https) {
            return Ok(Https {
                #[cfg(feature = "tls")]
                tls: None,
                #[cfg(feature = "tls")]
                auth: None,
                certificate: None,
            });
        }
        #[cfg(not(feature = "tls"))]
        let _ = config;
        #[cfg(not(feature = "tls"))]
        return Err(format!(
            "a socket speaks HTTPS (named {:?}, or {}), but this portico was built without \
             the `tls` feature: rebuild with it, or drop the HTTPS socket",
            activation::HTTPS_NAME,
            config::HTTPS_PREFIX
        )
        .into());
        #[cfg(feature = "tls")]
        {
            let sources = tls::Sources {
                files: config.tls_certificate.clone().zip(config.tls_key.clone()),
                credentials: std::env::var_os("CREDENTIALS_DIRECTORY").map(Into::into),
                state_directory: config.state_directory.clone(),
            };
            let (tls, certificate) = tls::Tls::new(sources)?;
            tracing::info!("{}", describe(&certificate));
            let auth = open_owner(config)?;
            Ok(Https { tls: Some(Arc::new(tls)), auth: Some(Arc::new(auth)), certificate: Some(certificate) })
        }
    }

    /// What the settings page calls to install an uploaded certificate.
    #[cfg(feature = "tls")]
    fn replacer(&self) -> tls::Replace {
        let tls = self.tls.clone();
        Box::new(move |cert, key| match &tls {
            Some(tls) => tls.replace(cert, key).map_err(|e| e.to_string()),
            None => Err("this device has no HTTPS socket".to_owned()),
        })
    }

    /// Reads the certificate again; None without HTTPS.
    fn reload(&self) -> Option<Result<status::Certificate, Box<dyn Error>>> {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().map(|tls| tls.reload().map_err(Into::into));
        #[cfg(not(feature = "tls"))]
        None
    }

    fn acceptor(&self) -> Option<crate::stream::TlsAcceptor> {
        #[cfg(feature = "tls")]
        return self.tls.as_deref().map(tls::Tls::acceptor);
        #[cfg(not(feature = "tls"))]
        None
    }
}

/// Opens the owner's state; while the device has no owner, says how to set it up.
#[cfg(feature = "tls")]
fn open_owner(config: &Config) -> Result<auth::Auth, Box<dyn Error>> {
    let provisioned = credential("setup-code")?;
    let lifetimes = auth::Lifetimes { idle: config.session_idle_timeout, absolute: config.session_lifetime };
    let (auth, opened) = auth::Auth::open(state::Store::new(&config.state_directory), provisioned, lifetimes);
    match opened {
        auth::Opened::Owned => {}
        auth::Opened::Code(code) => tracing::warn!(
            "this device has no owner yet: set-up code {code}; open https://<this device>/setup to \
             choose the owner's password"
        ),
        auth::Opened::Reset => tracing::warn!(
            "this device has no owner: open https://<this device>/setup with the code that \
             `portico reset-owner` printed"
        ),
        auth::Opened::Unreadable(why) => tracing::error!(
            "the owner's state cannot be read or kept ({why}): it is left as it is, the owner's pages \
             say so and the status page is private until it can be (portico tries again at each request)"
        ),
        auth::Opened::Provisioned => tracing::warn!(
            "this device has no owner yet: open https://<this device>/setup with the set-up code \
             on its label"
        ),
    }
    Ok(auth)
}

/// A systemd credential's first line (LoadCredential=), if the unit passes it.
fn credential(name: &str) -> Result<Option<String>, Box<dyn Error>> {
    let Some(path) =
        std::env::var_os("CREDENTIALS_DIRECTORY").map(|dir| std::path::Path::new(&dir).join(name))
    else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.lines().next().unwrap_or("").trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the credential {}: {e}", path.display()).into()),
    }
}

/// Who may read /metrics: the config's token, else the credential `metrics-token`.
fn metrics_access(config: &Config) -> Result<metrics::Access, Box<dyn Error>> {
    let token = match (&config.metrics_token, credential("metrics-token")?) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(token)) if token.len() < config::MIN_TOKEN_LENGTH => {
            let least = config::MIN_TOKEN_LENGTH;
            return Err(format!("the credential metrics-token is shorter than {least} characters").into());
        }
        (None, token) => token,
    };
    Ok(match (token, config.metrics_public) {
        (_, true) => metrics::Access::Public,
        (Some(token), false) => metrics::Access::Token(token),
        (None, false) => metrics::Access::Closed,
    })
}

/// The log line that lets an owner check a browser's certificate warning.
#[cfg(feature = "tls")]
fn describe(certificate: &status::Certificate) -> String {
    format!("HTTPS certificate SHA-256 {} from {}", certificate.fingerprint_sha256, certificate.source)
}
#[cfg(not(feature = "tls"))]
fn describe(certificate: &status::Certificate) -> String {
    match *certificate {}
}

async fn serve(
    config: Box<Config>,
    listeners: Listeners,
    https: Https,
    metrics: metrics::Access,
) -> Result<Reason, Box<dyn Error>> {
    let shutdown = Shutdown::new();
    let signals = shutdown::listen(shutdown.clone())?;
    let counters = Arc::new(Counters::default());
    let connections = Connections::new(config.max_connections, counters.clone());
    let activation = Activation {
        mode: listeners.origin,
        listeners: listeners.sockets.iter().map(|(_, info)| info.clone()).collect(),
    };
    let summary = status::describe_activation(&activation);
    let state = Arc::new(AppState {
        fixed: status::Fixed::read(activation),
        counters: counters.clone(),
        shutdown: shutdown.clone(),
        certificate: std::sync::RwLock::new(https.certificate.clone()),
        metrics,
        #[cfg(feature = "tls")]
        updates: updates::Updates::new(config.update_status.clone()),
        #[cfg(feature = "tls")]
        update_requests: config
            .update_status
            .as_ref()
            .map(|_| updates::Requests::new(&config.state_directory)),
        #[cfg(feature = "tls")]
        auth: https.auth.clone(),
        #[cfg(feature = "tls")]
        replace_certificate: https.replacer(),
    });
    let app = app(state.clone());
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        keep_alive_timeout: config.keep_alive_timeout,
        max_header_bytes: config.max_header_bytes,
        max_body_bytes: config.max_body_bytes,
        hsts_max_age: config.hsts_max_age,
    };
    let server =
        Server::new(app, routes::asset, connections.clone(), shutdown.clone(), &limits, config.access_log);

    let mut accept_loops = JoinSet::new();
    let acceptor = https.acceptor();
    for (listener, info) in listeners.sockets {
        let tls = acceptor.clone().filter(|_| info.https);
        accept_loops.spawn(server.clone().accept_loop(AsyncListener::new(listener)?, tls));
    }
    tokio::spawn(reload_on_sighup(https, state)?);
    tracing::info!("portico {} serving {summary}", config::VERSION);
    notify::ready(&format!("Serving {summary}"));
    tokio::spawn(notify::watchdog());
    tokio::spawn(report_status(counters.clone()));
    if let Some(after) = config.exit_idle_after {
        let (connections, shutdown) = (connections.clone(), shutdown.clone());
        tokio::spawn(async move {
            connections.idle_for(after).await;
            shutdown.begin(Reason::Idle);
        });
    }

    let second_signal = tokio::spawn(signals);
    let reason = shutdown.started().await;
    match reason {
        Reason::Signal(signal) => {
            tracing::info!("{signal}: draining connections for up to {:?}", config.drain_timeout)
        }
        Reason::Restart => tracing::info!(
            "SIGUSR2: draining connections for up to {:?}, then restarting in place with the same sockets",
            config.drain_timeout
        ),
        Reason::Idle => tracing::info!(
            "no connection for {:?}: exiting until the next one starts portico again",
            config.exit_idle_after.unwrap_or_default()
        ),
    }
    notify::stopping("Draining connections", config.drain_timeout);
    // The accept loops end first, so no new connection is taken from here on; the
    // listening sockets stay open in systemd for the next instance.
    while accept_loops.join_next().await.is_some() {}
    tokio::select! {
        _ = connections.all_closed() => tracing::info!("all connections closed; exiting"),
        _ = tokio::time::sleep(config.drain_timeout) => tracing::warn!(
            "drain timeout: closing {} connections still open",
            counters.snapshot().open_connections
        ),
        _ = second_signal => {}
    }
    Ok(reason)
}

/// Every page, each response with the headers `routes::secure` sets.
fn app(state: Arc<AppState>) -> axum::Router {
    let app = routes::router();
    #[cfg(feature = "tls")]
    let app = app.merge(owner::routes());
    app.layer(axum::middleware::map_response(routes::secured)).with_state(state)
}

/// `systemctl reload portico` (SIGHUP, ExecReload=): reads the certificate again, so a
/// replaced one is used for new connections without dropping any. SIGHUP never ends the
/// process, with or without HTTPS.
fn reload_on_sighup(https: Https, state: Arc<AppState>) -> std::io::Result<impl Future<Output = ()>> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            notify::reloading();
            match https.reload() {
                None => tracing::info!("SIGHUP: nothing to reload (no HTTPS socket)"),
                Some(Ok(certificate)) => {
                    tracing::info!("reloaded: {}", describe(&certificate));
                    state.set_certificate(certificate);
                }
                Some(Err(e)) => tracing::error!("reload failed, keeping the certificate in use: {e}"),
            }
            notify::ready("Reloaded");
        }
    })
}

/// Keeps `systemctl status` showing live figures.
async fn report_status(counters: Arc<Counters>) {
    let mut last = None;
    let mut tick = tokio::time::interval(notify::STATUS_INTERVAL);
    loop {
        tick.tick().await;
        let stats = counters.snapshot();
        if last != Some(stats) {
            notify::status(&format!(
                "{} connections open, {} requests served",
                stats.open_connections, stats.requests_served
            ));
            last = Some(stats);
        }
    }
}
