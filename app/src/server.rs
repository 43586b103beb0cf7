//! The HTTP/1.1 server: an accept loop per listening socket, a task per connection, and
//! the limits that keep one slow or hostile client from starving the others.
//!
//! Each connection records what it is doing (requests in flight, when it last went idle)
//! in two atomics the request path updates without waking anyone. The connection's own
//! task reads them when its keep-alive timer fires, and the accept loop reads them to pick
//! an idle connection to evict when the connection limit is reached.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower_service::Service;

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::stream::{AsyncListener, Stream};

/// The limits a connection is held to.
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Limits {
            header_read_timeout: config.header_read_timeout,
            keep_alive_timeout: config.keep_alive_timeout,
            max_header_bytes: config.max_header_bytes,
            max_body_bytes: config.max_body_bytes,
        }
    }
}

/// Figures for the status page and the STATUS= line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub open_connections: usize,
    pub requests_served: u64,
}

/// What one connection is doing.
struct Connection {
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    requests: AtomicU64,
    request_started: Notify,
    evict: Notify,
}

impl Connection {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn idle_since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }

    fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_started.notify_one();
    }

    fn end_request(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.idle_since_ms.store(now, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
pub struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    served: AtomicU64,
    count: watch::Sender<usize>,
    slots: Arc<Semaphore>,
}

impl Connections {
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Connections {
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            served: AtomicU64::new(0),
            count: watch::channel(0).0,
            slots: Arc::new(Semaphore::new(max_connections)),
        })
    }

    pub fn stats(&self) -> Stats {
        Stats { open_connections: *self.count.borrow(), requests_served: self.served.load(Ordering::Relaxed) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self) -> (u64, Arc<Connection>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            request_started: Notify::new(),
            evict: Notify::new(),
        });
        let mut open = self.lock();
        open.insert(id, connection.clone());
        self.count.send_replace(open.len());
        (id, connection)
    }

    fn unregister(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        self.count.send_replace(open.len());
    }

    /// Asks the oldest connection with no request in flight to close, to make room.
    /// Slow clients that never finish their headers count as idle: that is the point.
    fn evict_oldest_idle(&self) {
        if let Some(connection) = self.lock().values().find(|c| c.is_idle()) {
            connection.evict.notify_one();
        }
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        let _ = self.count.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Resolves once `idle_for` has passed with no connection open at all.
    pub async fn idle_for(&self, idle_for: Duration) {
        let mut count = self.count.subscribe();
        loop {
            let _ = count.wait_for(|n| *n == 0).await;
            tokio::select! {
                _ = tokio::time::sleep(idle_for) => return,
                _ = count.wait_for(|n| *n > 0) => {}
            }
        }
    }
}

/// Everything a connection task needs.
pub struct Server {
    app: Router,
    connections: Arc<Connections>,
    shutdown: Shutdown,
    http: http1::Builder,
    keep_alive_timeout: Duration,
    max_body_bytes: usize,
}

impl Server {
    pub fn new(app: Router, connections: Arc<Connections>, shutdown: Shutdown, limits: &Limits) -> Arc<Self> {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_header_bytes)
            .keep_alive(true);
        Arc::new(Server {
            app,
            connections,
            shutdown,
            http,
            keep_alive_timeout: limits.keep_alive_timeout,
            max_body_bytes: limits.max_body_bytes,
        })
    }

    /// Accepts connections until the shutdown starts.
    pub async fn accept_loop(self: Arc<Self>, listener: AsyncListener) {
        let shutdown = self.shutdown.started();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut shutdown => return,
            };
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            let slot = match self.connections.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    tracing::debug!("connection limit reached: closing the oldest idle connection");
                    self.connections.evict_oldest_idle();
                    tokio::select! {
                        slot = self.connections.slots.clone().acquire_owned() => match slot {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                        _ = &mut shutdown => return,
                    }
                }
            };
            // Registered here, not in the task: the drain must not miss a connection that
            // was accepted but whose task has not run yet.
            let (id, connection) = self.connections.register();
            tokio::spawn(self.clone().serve(stream, slot, id, connection));
        }
    }

    async fn serve(
        self: Arc<Self>,
        stream: Stream,
        _slot: OwnedSemaphorePermit,
        id: u64,
        connection: Arc<Connection>,
    ) {
        let service = RequestService { connection: connection.clone(), server: self.clone() };
        let conn = self.http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);

        let keep_alive = self.keep_alive_timeout;
        let timer = tokio::time::sleep(keep_alive);
        let shutdown = self.shutdown.started();
        tokio::pin!(timer, shutdown);
        let mut closing = false;
        let mut close_after_first_request = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended: {e}");
                    }
                    break;
                }
                // With no request in flight, closing loses nothing: the client is idle
                // between requests, or too slow to finish sending one.
                _ = &mut timer => {
                    let expires = connection.idle_since() + keep_alive;
                    if connection.is_idle() && expires <= Instant::now() {
                        break;
                    }
                    let next = if connection.is_idle() { expires } else { Instant::now() + keep_alive };
                    timer.as_mut().reset(next);
                }
                _ = connection.evict.notified() => {
                    if connection.is_idle() {
                        break;
                    }
                }
                // hyper closes an idle keep-alive connection at once and lets a request in
                // progress finish. It would also close a connection it has read nothing
                // from yet, but that one was accepted from a client that is sending its
                // request right now: serve that request first.
                _ = &mut shutdown, if !closing && !close_after_first_request => {
                    if connection.requests.load(Ordering::Relaxed) == 0 {
                        close_after_first_request = true;
                    } else {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = connection.request_started.notified(), if close_after_first_request && !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
        self.connections.unregister(id);
    }
}

/// Too many open files and the like are passing conditions: wait, don't spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::warn!("accept failed: {e}; retrying in 100ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Runs the router for one connection and keeps its activity record up to date.
#[derive(Clone)]
struct RequestService {
    connection: Arc<Connection>,
    server: Arc<Server>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.connection.begin_request();
        let in_flight = InFlight(self.connection.clone());
        let server = self.server.clone();
        let finish = move |response: axum::response::Response| {
            server.connections.served.fetch_add(1, Ordering::Relaxed);
            Ok(response.map(|body| TrackedBody { body, _in_flight: in_flight }))
        };
        if let Some(response) = self.answer_at_once(&request) {
            return Box::pin(std::future::ready(finish(response)));
        }
        let routed = self.server.app.clone().call(request.map(Body::new));
        Box::pin(async move { finish(routed.await?) })
    }
}

impl RequestService {
    /// What needs no routing: a body over the limit, and the compiled-in assets.
    fn answer_at_once(&self, request: &hyper::Request<Incoming>) -> Option<axum::response::Response> {
        // No route reads a body; refuse a large one up front rather than let it arrive.
        let declared =
            request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.server.max_body_bytes as u64) {
            return Some((StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response());
        }
        crate::routes::asset(request)
    }
}

/// Counts a request as in flight until its response body is done with (or dropped).
struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
