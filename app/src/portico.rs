//! The start-up, the run and the end of a portico binary: what `Portico::main` does.
//!
//! Start-up order matters: configuration, logging, sockets and the switch away from root
//! all happen on the one thread the process starts with; only then does the async
//! runtime start its workers.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use tokio::task::JoinSet;

use crate::config::{self, Command, Config, Setting};
use crate::device::{self, Device};
use crate::pages::metrics_access::Access;
use crate::pages::{self, html, status, status_page};
use crate::transport::activation::{self, Listeners};
use crate::transport::server::{Connections, Limits, Server};
use crate::transport::shutdown::{self, Reason, Shutdown};
use crate::transport::stats::Counters;
use crate::transport::stream::AsyncListener;
use crate::transport::tls::{self, Https};
use crate::transport::{handover, logging, notify, privileges, threads};

/// A portico binary: portico's pages and a team's, served on the sockets systemd passes
/// (or on `--listen` addresses when started by hand), with everything portico gives a
/// page: both sockets, limits, drain and restart in place, readiness and watchdog, /metrics
/// counts, the access log, the owner's login and the status page.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// fn main() -> std::process::ExitCode {
///     let hello = Router::new().route("/hello", get(|| async { "hello\n" }));
///     portico::Portico::new().routes(hello).main()
/// }
/// ```
pub struct Portico {
    routes: Router<Device>,
    settings: Vec<Setting>,
    status_page: bool,
}

impl Default for Portico {
    fn default() -> Self {
        Portico { routes: Router::new(), settings: Vec::new(), status_page: true }
    }
}

impl Portico {
    /// portico as it is: its own pages only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a team's routes beside portico's. A handler takes `State<Device>` for the
    /// device and its settings, and (built with the `tls` feature) `LoggedIn` or `CsrfForm`
    /// to be the owner's only. The owner's paths (`/setup`, `/login`, `/logout`,
    /// `/settings...`), `/healthz` and `/metrics` are portico's; a route on one of them
    /// panics at start, as axum does for any overlap.
    pub fn routes(mut self, routes: Router<Device>) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Declares a setting of the team's own: one more key of portico's config table.
    pub fn setting(mut self, setting: Setting) -> Self {
        self.settings.push(setting);
        self
    }

    /// Leaves out portico's status page (`/` and `/api/status`), for a binary with its own.
    pub fn without_status_page(mut self) -> Self {
        self.status_page = false;
        self
    }

    /// Reads the command line, the environment and the config file, and serves until
    /// systemd stops it; what the process returns. Errors go to stderr (the journal) as
    /// one line each; a setup that a restart alone cannot fix exits with 78 (EX_CONFIG).
    pub fn main(self) -> ExitCode {
        let config = match config::load(std::env::args_os().skip(1), &self.settings) {
            Ok(Command::Serve(config)) => config,
            Ok(Command::Help) => {
                print!("{}", config::help(&program(), &self.settings));
                return ExitCode::SUCCESS;
            }
            Ok(Command::Version) => {
                match program().as_str() {
                    "portico" => println!("portico {}", config::VERSION),
                    program => println!("{program} (portico {})", config::VERSION),
                }
                return ExitCode::SUCCESS;
            }
            Ok(Command::ResetOwner(config)) => return reset_owner(&config),
            Err(e) => return fatal(&e, EXIT_SETUP),
        };
        start(self, config)
    }
}

/// Exit status for a setup that a restart alone cannot fix (bad config, bad sockets, root):
/// EX_CONFIG. systemd retries it all the same, so fixing the config file is enough.
const EXIT_SETUP: u8 = 78;

fn start(portico: Portico, config: Box<Config>) -> ExitCode {
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
    let owner = match open_owner(&config, &https) {
        Ok(owner) => owner,
        Err(e) => return fatal(&*e, EXIT_SETUP),
    };
    let metrics = match Access::from_config(&config) {
        Ok(metrics) => metrics,
        Err(e) => return fatal(&e, EXIT_SETUP),
    };
    let handover = match handover::Handover::keep(&listeners.sockets) {
        Ok(handover) => handover,
        Err(e) => return fatal(&e, 1),
    };
    let pages = Pages { routes: portico.routes, status_page: portico.status_page, owner, metrics };
    match run(config, listeners, workers, https, pages) {
        Ok(Reason::Restart) => {
            let e = handover.exec();
            fatal(&*Box::<dyn Error>::from(format!("cannot restart in place: {e}")), 1)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fatal(&*e, 1),
    }
}

/// `portico reset-owner`: see `owner::reset`.
#[cfg(feature = "tls")]
fn reset_owner(config: &Config) -> ExitCode {
    match crate::owner::reset(config) {
        Ok(code) => {
            println!(
                "The owner's password is cleared and every login has ended.\n\
                 Set-up code: {code}\n\
                 Open https://<this device>/setup, enter the code and choose a new password."
            );
            ExitCode::SUCCESS
        }
        Err(e) => fatal(&*Box::<dyn Error>::from(e), 1),
    }
}

#[cfg(not(feature = "tls"))]
fn reset_owner(_: &Config) -> ExitCode {
    fatal(
        &*Box::<dyn Error>::from("this portico was built without the `tls` feature: it has no owner login"),
        EXIT_SETUP,
    )
}

/// The owner's side: the login where a socket speaks HTTPS, the updater's report and
/// requests, the certificate upload.
#[cfg(feature = "tls")]
fn open_owner(config: &Config, https: &Https) -> Result<device::Owner, Box<dyn Error>> {
    use crate::owner::updates::{Requests, Updates};
    let auth = match https.certificate() {
        Some(_) => Some(Arc::new(crate::owner::open(config)?)),
        None => None,
    };
    Ok(device::Owner {
        auth,
        updates: Updates::new(config.update_status.clone()),
        update_requests: config.update_status.as_ref().map(|_| Requests::new(&config.state_directory)),
        replace_certificate: https.replacer(),
    })
}

#[cfg(not(feature = "tls"))]
fn open_owner(_: &Config, _: &Https) -> Result<device::Owner, Box<dyn Error>> {
    Ok(device::Owner)
}

/// The name the binary was started by, as --help, --version and errors give it.
fn program() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0).file_name().map(|n| n.to_string_lossy().into_owned());
    name.filter(|n| !n.is_empty()).unwrap_or_else(|| "portico".to_owned())
}

/// One line on stderr, with the journal's error priority when that is where it goes.
fn fatal(error: &dyn Error, code: u8) -> ExitCode {
    let prefix = if logging::stderr_is_journal() { "<3>" } else { "" };
    eprintln!("{prefix}{}: error: {error}", program());
    ExitCode::from(code)
}

fn run(
    config: Box<Config>,
    listeners: Listeners,
    workers: usize,
    https: Https,
    pages: Pages,
) -> Result<Reason, Box<dyn Error>> {
    let mut builder = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    // What blocks (argon2, the owner's saves) takes turns on one thread; the cap keeps the
    // thread count within threads::OTHER_THREADS.
    let runtime = builder.max_blocking_threads(1).enable_all().build()?;
    let reason = runtime.block_on(serve(config, listeners, https, pages))?;
    // The workers end before a restart in place replaces the process under them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(reason)
}

/// What the router is made of: portico's pages, the team's, and what they are handed.
struct Pages {
    routes: Router<Device>,
    status_page: bool,
    owner: device::Owner,
    metrics: Access,
}

async fn serve(
    config: Box<Config>,
    listeners: Listeners,
    https: Https,
    pages: Pages,
) -> Result<Reason, Box<dyn Error>> {
    let shutdown = Shutdown::new();
    let signals = shutdown::listen(shutdown.clone())?;
    let counters = Arc::new(Counters::default());
    let connections = Connections::new(config.max_connections, counters.clone());
    let activation = status::Activation {
        mode: listeners.origin,
        listeners: listeners.sockets.iter().map(|(_, info)| info.clone()).collect(),
    };
    let summary = status::describe_activation(&activation);
    let device = Device::new(
        status::Fixed::read(activation),
        counters.clone(),
        shutdown.clone(),
        https.certificate(),
        pages.metrics,
        config.settings.clone(),
        pages.owner,
    );
    let app = router(device.clone(), pages.routes, pages.status_page);
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        keep_alive_timeout: config.keep_alive_timeout,
        max_header_bytes: config.max_header_bytes,
        max_body_bytes: config.max_body_bytes,
        hsts_max_age: config.hsts_max_age,
    };
    let server = Server::new(
        app,
        status_page::asset,
        connections.clone(),
        shutdown.clone(),
        &limits,
        config.access_log,
    );

    let mut accept_loops = JoinSet::new();
    let acceptor = https.acceptor();
    for (listener, info) in listeners.sockets {
        let tls = acceptor.clone().filter(|_| info.https);
        accept_loops.spawn(server.clone().accept_loop(AsyncListener::new(listener)?, tls));
    }
    tokio::spawn(reload_on_sighup(https, device)?);
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

/// Every page, portico's and the team's, each response with the headers `html::secure`
/// sets.
pub(crate) fn router(device: Device, own: Router<Device>, status_page: bool) -> Router {
    let app = pages::routes(own, status_page);
    #[cfg(feature = "tls")]
    let app = crate::owner::pages::routes(app);
    app.layer(axum::middleware::map_response(html::secured)).with_state(device)
}

/// `systemctl reload portico` (SIGHUP, ExecReload=): reads the certificate again, so a
/// replaced one is used for new connections without dropping any. SIGHUP never ends the
/// process, with or without HTTPS.
fn reload_on_sighup(https: Https, device: Device) -> std::io::Result<impl Future<Output = ()>> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            notify::reloading();
            match https.reload() {
                None => tracing::info!("SIGHUP: nothing to reload (no HTTPS socket)"),
                Some(Ok(certificate)) => {
                    tracing::info!("reloaded: {}", tls::describe(&certificate));
                    device.set_certificate(certificate);
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn device() -> Device {
        #[cfg(feature = "tls")]
        let owner = device::Owner {
            auth: None,
            updates: crate::owner::updates::Updates::new(None),
            update_requests: None,
            replace_certificate: None,
        };
        #[cfg(not(feature = "tls"))]
        let owner = device::Owner;
        Device::for_tests(vec![("greeting", "hello from the config".to_owned())], owner)
    }

    const GREETING: Setting = Setting::new("greeting", "TEXT", "hello", "what /hello says");
    const UNSET: Setting = Setting::new("unset", "TEXT", "its default", "");

    #[test]
    fn a_setting_reads_its_value_else_its_default() {
        assert_eq!(device().setting(&GREETING), "hello from the config");
        assert_eq!(device().setting(&UNSET), "its default");
    }

    async fn get_of(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A team's route is served beside portico's, reads its setting from the device, and
    /// carries the headers every response does.
    #[tokio::test]
    async fn a_teams_route_is_served_with_its_setting_and_the_security_headers() {
        let hello = Router::new().route(
            "/hello",
            get(|State(device): State<Device>| async move { device.setting(&GREETING).to_owned() }),
        );
        let app = router(device(), hello, true);
        let (status, headers, body) = get_of(&app, "/hello").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from the config"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(get_of(&app, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get_of(&app, "/").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_the_status_page_its_paths_are_the_teams() {
        let app = router(device(), Router::new().route("/", get(|| async { "ours" })), false);
        assert_eq!(get_of(&app, "/").await.2, "ours");
        assert_eq!(get_of(&app, "/api/status").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get_of(&app, "/healthz").await.0, StatusCode::OK);
    }

    /// portico's own paths stay portico's: a team's route on one is refused at start.
    #[test]
    #[should_panic(expected = "Overlapping method route")]
    fn a_teams_route_on_porticos_health_check_is_refused_at_start() {
        let _ = router(device(), Router::new().route("/healthz", get(|| async { "mine" })), true);
    }
}
