//! The HTTP/1.1 server: an accept loop per listening socket, a task per connection, and
//! the limits that keep one slow or hostile client from starving the others.
//!
//! Each connection records what it is doing (requests in flight, when it last went idle,
//! when the head of its next request began to arrive, whether its route is waiting for a
//! request body that has not arrived) in atomics the request path updates without waking
//! anyone. The connection's own task reads them when its timer fires, to apply the
//! keep-alive timeout to an idle connection and the header-read timeout to one whose
//! request head is arriving, or whose body is awaited, from its start; the accept loop
//! reads them to pick a connection to evict when the connection limit is reached: one
//! that is idle or waiting for its client, never one whose route is busy. Either closes
//! the connection. Every request body passes through one size limit here, whichever
//! route reads it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, STRICT_TRANSPORT_SECURITY};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower_service::Service;

use super::peer::Peer;
use super::shutdown::Shutdown;
use super::stats::Counters;
use super::stream::{AsyncListener, Stream};
use super::tls::TlsAcceptor;

/// The limits a connection is held to.
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// Strict-Transport-Security max-age for HTTPS responses; zero sends none.
    pub hsts_max_age: Duration,
}

/// Answers what needs no routing (the pages' choice: compiled-in assets, say), or passes.
pub(super) type FastPath = fn(&hyper::Request<Incoming>) -> Option<axum::response::Response>;

/// `head_started_ms` when no request head is arriving.
const NO_HEAD: u64 = u64::MAX;

/// `body_wait` when no route is reading a request body it has had to wait for.
const NO_BODY_WAIT: u64 = u64::MAX;
/// The bit of `body_wait` set while the route's last read of the body found nothing.
const WAITING: u64 = 1;

/// How often the accept loop, at the connection limit, asks again for a connection to
/// evict: one busy a moment ago may be idle, or waiting for its client, now.
const EVICT_RETRY: Duration = Duration::from_millis(100);

/// What one connection is doing.
struct Connection {
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request's head arrived, in ms since `epoch`.
    head_started_ms: AtomicU64,
    /// When the route first had to wait for its request's body, in ms since `epoch`,
    /// shifted left by one, with `WAITING` set while it is waiting again. Only the task
    /// reading the body writes it.
    body_wait: AtomicU64,
    epoch: Instant,
    requests: AtomicU64,
    request_started: Notify,
    evict: Notify,
}

impl Connection {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Since when (ms since `epoch`) the route has been waiting for a request body that
    /// has not all arrived, if it is waiting for it now.
    fn body_stalled_since(&self) -> Option<u64> {
        let wait = self.body_wait.load(Ordering::Relaxed);
        (wait != NO_BODY_WAIT && wait & WAITING != 0).then_some(wait >> 1)
    }

    /// Whether closing it loses only what its client has not sent: nothing in flight, or
    /// a route waiting for the client's body. A route busy with its request is not.
    fn evictable(&self) -> bool {
        self.is_idle() || self.body_stalled_since().is_some()
    }

    /// When the connection is to be closed if nothing changes: an idle one after the
    /// keep-alive timeout, one whose request head is arriving after the header-read
    /// timeout from its first byte, one whose route waits for the request's body after
    /// the header-read timeout from when it began waiting (progress does not push it
    /// back, as it does not for a head). None while a route is busy with its request.
    fn deadline(&self, keep_alive: Duration, header_read: Duration) -> Option<Instant> {
        if !self.is_idle() {
            return self.body_stalled_since().map(|started| self.at(started) + header_read);
        }
        Some(match self.head_started_ms.load(Ordering::Relaxed) {
            NO_HEAD => self.at(self.idle_since_ms.load(Ordering::Relaxed)) + keep_alive,
            started => self.at(started) + header_read,
        })
    }

    /// Called for every read from the client: bytes that arrive while no request is in
    /// flight are the head of the next one.
    fn bytes_arrived(&self) {
        if self.is_idle() && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD {
            self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn begin_request(&self) {
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_started.notify_one();
    }

    /// The route found no body bytes to read: it waits for the client, since now if it
    /// had not waited before.
    fn body_awaited(&self) {
        let wait = self.body_wait.load(Ordering::Relaxed);
        if wait == NO_BODY_WAIT {
            self.body_wait.store(self.now_ms() << 1 | WAITING, Ordering::Relaxed);
        } else if wait & WAITING == 0 {
            self.body_wait.store(wait | WAITING, Ordering::Relaxed);
        }
    }

    /// Body bytes arrived: the route has work to do with them until it reads again.
    fn body_arrived(&self) {
        let wait = self.body_wait.load(Ordering::Relaxed);
        if wait != NO_BODY_WAIT && wait & WAITING != 0 {
            self.body_wait.store(wait & !WAITING, Ordering::Relaxed);
        }
    }

    /// The body is read, refused or dropped: nothing more to wait for.
    fn body_done(&self) {
        self.body_wait.store(NO_BODY_WAIT, Ordering::Relaxed);
    }

    fn end_request(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
pub(crate) struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
    slots: Arc<Semaphore>,
}

impl Connections {
    pub(crate) fn new(max_connections: usize, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Connections {
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            counters,
            slots: Arc::new(Semaphore::new(max_connections)),
        })
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
            head_started_ms: AtomicU64::new(NO_HEAD),
            body_wait: AtomicU64::new(NO_BODY_WAIT),
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            request_started: Notify::new(),
            evict: Notify::new(),
        });
        let mut open = self.lock();
        open.insert(id, connection.clone());
        self.counters.set_open(open.len());
        (id, connection)
    }

    fn unregister(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        self.counters.set_open(open.len());
    }

    /// Asks the oldest connection that is idle or waiting for its client to close, to
    /// make room. Slow clients that never finish their headers or bodies count: that is
    /// the point.
    fn evict_oldest_idle(&self) {
        if let Some(connection) = self.lock().values().find(|c| c.evictable()) {
            connection.evict.notify_one();
        }
    }

    /// Resolves once no connection is open.
    pub(crate) async fn all_closed(&self) {
        let _ = self.counters.watch_open().wait_for(|n| *n == 0).await;
    }

    /// Resolves once `idle_for` has passed with no connection open at all.
    pub(crate) async fn idle_for(&self, idle_for: Duration) {
        let mut count = self.counters.watch_open();
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
pub(crate) struct Server {
    app: Router,
    fast_path: FastPath,
    connections: Arc<Connections>,
    shutdown: Shutdown,
    http: http1::Builder,
    keep_alive_timeout: Duration,
    header_read_timeout: Duration,
    max_body_bytes: usize,
    hsts: Option<HeaderValue>,
    access_log: bool,
}

impl Server {
    pub(crate) fn new(
        app: Router,
        fast_path: FastPath,
        connections: Arc<Connections>,
        shutdown: Shutdown,
        limits: &Limits,
        access_log: bool,
    ) -> Arc<Self> {
        let mut http = http1::Builder::new();
        // hyper's own header timer runs from the end of the previous response, so it would
        // cut idle keep-alive connections short; Connection::deadline times both instead.
        http.header_read_timeout(None).max_header_size(limits.max_header_bytes).keep_alive(true);
        Arc::new(Server {
            app,
            fast_path,
            connections,
            shutdown,
            http,
            keep_alive_timeout: limits.keep_alive_timeout,
            header_read_timeout: limits.header_read_timeout,
            max_body_bytes: limits.max_body_bytes,
            hsts: (!limits.hsts_max_age.is_zero())
                .then(|| HeaderValue::from_str(&format!("max-age={}", limits.hsts_max_age.as_secs())).ok())
                .flatten(),
            access_log,
        })
    }

    /// Accepts connections until the shutdown starts; with `tls`, each speaks TLS.
    pub(crate) async fn accept_loop(self: Arc<Self>, listener: AsyncListener, tls: Option<TlsAcceptor>) {
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
            self.connections.counters.accepted();
            let (slot, stopping) = match self.connections.slots.clone().try_acquire_owned() {
                Ok(slot) => (Some(slot), false),
                Err(_) => {
                    tracing::debug!("connection limit reached: closing the oldest idle connection");
                    loop {
                        self.connections.evict_oldest_idle();
                        tokio::select! {
                            slot = self.connections.slots.clone().acquire_owned() => break (slot.ok(), false),
                            // Accepted, so no longer in the backlog the next instance inherits:
                            // it is served (its first request, as in any drain) over the limit.
                            _ = &mut shutdown => break (None, true),
                            _ = tokio::time::sleep(EVICT_RETRY) => {}
                        }
                    }
                }
            };
            // Registered here, not in the task: the drain must not miss a connection that
            // was accepted but whose task has not run yet.
            let (id, connection) = self.connections.register();
            tokio::spawn(self.clone().serve(stream, tls.clone(), slot, id, connection));
            if stopping {
                return;
            }
        }
    }

    async fn serve(
        self: Arc<Self>,
        stream: Stream,
        tls: Option<TlsAcceptor>,
        _slot: Option<OwnedSemaphorePermit>,
        id: u64,
        connection: Arc<Connection>,
    ) {
        let https = tls.is_some();
        let stream = match tls {
            None => Some(stream),
            Some(tls) => self.handshake(&tls, stream, &connection).await,
        };
        if let Some(stream) = stream {
            self.serve_http(stream, https, &connection).await;
        }
        self.connections.unregister(id);
    }

    /// The TLS handshake, within the header-read timeout from the accept, and given up
    /// when the connection is evicted: until it completes the connection counts as idle,
    /// so a flood of handshakes makes room for others instead of taking it. A shutdown
    /// lets it finish, so its first request is served as a plain connection's is.
    async fn handshake(&self, tls: &TlsAcceptor, stream: Stream, connection: &Connection) -> Option<Stream> {
        let deadline = connection.at(0) + self.header_read_timeout;
        tokio::select! {
            result = tokio::time::timeout_at(deadline, super::tls::handshake(tls, stream)) => {
                let stream = match result {
                    Ok(Ok(stream)) => Some(stream),
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake not done within the header-read timeout: closing");
                        None
                    }
                };
                self.connections.counters.tls_handshake(stream.is_some());
                stream
            }
            _ = connection.evict.notified() => {
                self.connections.counters.evicted();
                self.connections.counters.tls_handshake(false);
                None
            }
        }
    }

    async fn serve_http(self: &Arc<Self>, stream: Stream, https: bool, connection: &Arc<Connection>) {
        // A dual-stack socket (portico.socket's [::]:80) gives an IPv4 client as
        // ::ffff:a.b.c.d; as that, every IPv4 client would share one IPv6 /64 in the login
        // throttle, and the logs would not name it as its owner knows it.
        let peer = Peer { ip: stream.peer().map(|a| a.ip().to_canonical()), https };
        let service = RequestService { connection: connection.clone(), server: self.clone(), peer };
        let io = Watched { stream, connection: connection.clone() };
        let conn = self.http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);

        let (keep_alive, header_read) = (self.keep_alive_timeout, self.header_read_timeout);
        // The timer wakes at least this often, so a head that starts arriving, or a body
        // wait that starts, between two wakes is cut off on time however the two timeouts
        // compare.
        let period = keep_alive.min(header_read);
        let timer = tokio::time::sleep(period);
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
                // Closing loses nothing the client sent: it is idle between requests, or
                // too slow to finish sending one, head or body.
                _ = &mut timer => {
                    let now = Instant::now();
                    let deadline = connection.deadline(keep_alive, header_read);
                    if deadline.is_some_and(|deadline| deadline <= now) {
                        break;
                    }
                    timer.as_mut().reset(deadline.map_or(now + period, |d| d.min(now + period)));
                }
                _ = connection.evict.notified() => {
                    if connection.evictable() {
                        self.connections.counters.evicted();
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
    peer: Peer,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        self.connection.begin_request();
        request.extensions_mut().insert(self.peer);
        let in_flight = InFlight(self.connection.clone());
        let server = self.server.clone();
        let https = self.peer.https;
        let logged = self.server.access_log.then(|| Logged {
            client: self.peer.ip,
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
            started: Instant::now(),
        });
        let finish = move |mut response: axum::response::Response| {
            server.connections.counters.served(response.status().as_u16());
            if let Some(logged) = logged {
                logged.write(&response);
            }
            if let Some(hsts) = server.hsts.as_ref().filter(|_| https) {
                response.headers_mut().insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            // Draining: the client learns from the response itself that this connection
            // ends here, so it sends its next request on a new one (to the next instance).
            if server.shutdown.is_started() {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| TrackedBody { body, _in_flight: in_flight }))
        };
        if let Some(response) = self.answer_at_once(&request) {
            return Box::pin(std::future::ready(finish(response)));
        }
        // A body without Content-Length (chunked) is cut off at the limit as it is read; the
        // extractor reading it then answers 413.
        let limit = self.server.max_body_bytes;
        // Only a request with a body can keep its route waiting for the client.
        let connection = (!http_body::Body::is_end_stream(request.body())).then(|| self.connection.clone());
        let body = |body| Body::new(RequestBody { body: Limited::new(body, limit), connection });
        let routed = self.server.app.clone().call(request.map(body));
        Box::pin(async move { finish(routed.await?) })
    }
}

/// What the access log says of a request: method, path (never the query, which may carry
/// secrets), status, body bytes, time to the response, client.
struct Logged {
    /// None for a Unix socket.
    client: Option<std::net::IpAddr>,
    method: axum::http::Method,
    path: String,
    started: Instant,
}

impl Logged {
    fn write(self, response: &axum::response::Response) {
        use http_body::Body as _;
        let bytes = response.body().size_hint().exact().map_or_else(|| "-".to_owned(), |n| n.to_string());
        super::logging::access(format_args!(
            "{} {} {} {bytes} {}us {}",
            self.method,
            self.path,
            response.status().as_u16(),
            self.started.elapsed().as_micros(),
            self.client.map_or_else(|| "unix".to_owned(), |ip| ip.to_string())
        ));
    }
}

impl RequestService {
    /// What needs no routing: a declared body over the limit (refused before it arrives),
    /// and whatever the pages' fast path answers.
    fn answer_at_once(&self, request: &hyper::Request<Incoming>) -> Option<axum::response::Response> {
        let declared =
            request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.server.max_body_bytes as u64) {
            return Some((StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response());
        }
        (self.server.fast_path)(request)
    }
}

/// The request body as routes read it, telling the connection's record when the route
/// waits for bytes the client has not sent, and when it has them; None for no body.
struct RequestBody {
    body: Limited<Incoming>,
    connection: Option<Arc<Connection>>,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = <Limited<Incoming> as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(connection) = &this.connection {
            match &polled {
                Poll::Pending => connection.body_awaited(),
                Poll::Ready(Some(Ok(_))) => connection.body_arrived(),
                // The end, the size limit or a broken connection.
                Poll::Ready(_) => {
                    connection.body_done();
                    this.connection = None;
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A route that drops the body unread is done waiting for it.
impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.body_done();
        }
    }
}

/// The client's stream, telling the connection's record when bytes arrive.
struct Watched {
    stream: Stream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.bytes_arrived();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
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

/// The server with routes of the tests' own: one that reads a body, one that holds its
/// request in flight until told to finish. Real sockets, the real accept loop.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::routing::{MethodRouter, any, get, post};
    use http_body_util::BodyExt;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;
    use tokio::time::{Instant, sleep, timeout};

    use super::{Connections, Limits, Server};
    use crate::transport::activation::Listener;
    use crate::transport::shutdown::{Reason, Shutdown};
    use crate::transport::stats::Counters;
    use crate::transport::stream::AsyncListener;

    const LIMITS: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(5),
        max_header_bytes: 8192,
        max_body_bytes: 1024,
        hsts_max_age: Duration::ZERO,
    };

    struct Running {
        addr: std::net::SocketAddr,
        counters: Arc<Counters>,
        shutdown: Shutdown,
        accepting: tokio::task::JoinHandle<()>,
    }

    fn serve(app: Router, max_connections: usize) -> Running {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let connections = Connections::new(max_connections, counters.clone());
        let shutdown = Shutdown::new();
        let server = Server::new(app, |_| None, connections, shutdown.clone(), &LIMITS, false);
        let listener = AsyncListener::new(Listener::Tcp(listener)).unwrap();
        let accepting = tokio::spawn(server.accept_loop(listener, None));
        Running { addr, counters, shutdown, accepting }
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        read_all(stream).await
    }

    async fn read_all(mut stream: TcpStream) -> String {
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    fn echo_length() -> Router {
        Router::new().route("/upload", post(|body: Bytes| async move { format!("{} bytes\n", body.len()) }))
    }

    /// A route that holds its request in flight, its body unread, until `release` gets a
    /// permit: (the route, `entered` that gets a permit once it has the request, release).
    fn hold() -> (MethodRouter, Arc<Semaphore>, Arc<Semaphore>) {
        let (entered, release) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        let route = {
            let (entered, release) = (entered.clone(), release.clone());
            any(move || async move {
                entered.add_permits(1);
                let _ = release.acquire().await;
                "held\n"
            })
        };
        (route, entered, release)
    }

    const QUICK: &[u8] = b"GET /quick HTTP/1.1\r\nHost: device\r\n\r\n";
    const QUICK_CLOSE: &[u8] = b"GET /quick HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n";

    /// The head of a 100-byte upload.
    const STALLING: &[u8] = b"POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: 100\r\n\r\n";

    /// Sends the head of a 100-byte upload and `first` of its body, no more.
    async fn stall_in_body(addr: std::net::SocketAddr, first: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(STALLING).await.unwrap();
        stream.write_all(first).await.unwrap();
        stream
    }

    /// How long until the server closes `stream`; fails the test after a minute.
    async fn time_to_close(mut stream: impl AsyncRead + Unpin) -> Duration {
        let started = Instant::now();
        let mut sink = Vec::new();
        let closed = timeout(Duration::from_secs(60), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "still open after a minute: {}", String::from_utf8_lossy(&sink));
        started.elapsed()
    }

    /// The length of the body's next data frame; None at its end.
    async fn next_data(body: &mut Body) -> Option<usize> {
        let frame = body.frame().await?.unwrap();
        Some(frame.into_data().map_or(0, |data| data.len()))
    }

    /// One request on a kept-alive connection; its response, which ends in `last`.
    async fn ask(stream: &mut TcpStream, request: &[u8], last: &str) -> String {
        stream.write_all(request).await.unwrap();
        let mut response = Vec::new();
        while !response.ends_with(last.as_bytes()) {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&response));
            response.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(response).unwrap()
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_gets_413_from_a_route_that_reads_it() {
        let running = serve(echo_length(), 8);
        let chunk = "x".repeat(512);
        let mut request = String::from(
            "POST /upload HTTP/1.1\r\nHost: device\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        for _ in 0..4 {
            request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        }
        request.push_str("0\r\n\r\n");
        let response = exchange(running.addr, request.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");

        let small = "POST /upload HTTP/1.1\r\nHost: device\r\nTransfer-Encoding: chunked\r\n\
                     Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let response = exchange(running.addr, small.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("5 bytes\n"), "{response}");
    }

    /// One byte over the limit is refused before it arrives; exactly the limit is read.
    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
        let running = serve(echo_length(), 8);
        let at_the_limit = LIMITS.max_body_bytes;
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            at_the_limit + 1
        );
        let response = exchange(running.addr, head.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");

        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: {at_the_limit}\r\nConnection: close\r\n\r\n{}",
            "x".repeat(at_the_limit)
        );
        let response = exchange(running.addr, request.as_bytes()).await;
        assert!(response.ends_with(&format!("\r\n{at_the_limit} bytes\n")), "{response}");
    }

    /// At max_connections an accepted connection waits for a slot. If shutdown starts
    /// meanwhile it has already left the backlog the next instance inherits: it must be
    /// answered, not dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_waiting_for_a_slot_is_served_when_shutdown_starts() {
        let (hold, entered, release) = hold();
        let app = Router::new().route("/hold", hold).route("/quick", get(|| async { "quick\n" }));
        let running = serve(app, 1);

        let mut holding = TcpStream::connect(running.addr).await.unwrap();
        holding.write_all(b"GET /hold HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n").await.unwrap();
        let _ = entered.acquire().await.unwrap();
        let mut waiting = TcpStream::connect(running.addr).await.unwrap();
        waiting.write_all(QUICK_CLOSE).await.unwrap();
        while running.counters.snapshot().connections_accepted < 2 {
            tokio::task::yield_now().await;
        }

        running.shutdown.begin(Reason::Signal("SIGTERM"));
        running.accepting.await.unwrap();
        release.add_permits(1);
        let (held, quick) = (read_all(holding).await, read_all(waiting).await);
        assert!(held.starts_with("HTTP/1.1 200") && held.ends_with("held\n"), "{held}");
        assert!(quick.starts_with("HTTP/1.1 200") && quick.ends_with("quick\n"), "{quick}");
    }

    /// A body that stops arriving, or trickles in, is cut at the header-read timeout from
    /// when the route began waiting for it, as a head is from its first byte: progress does
    /// not push the deadline back, or a byte every few seconds would hold a connection for
    /// ever.
    #[tokio::test(start_paused = true)]
    async fn a_body_is_cut_at_the_header_read_timeout_however_it_trickles() {
        let running = serve(echo_length(), 8);
        // It served a request first, so the route begins to wait a while after it opened.
        let mut stalled = TcpStream::connect(running.addr).await.unwrap();
        let upload = b"POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: 2\r\n\r\nhi";
        ask(&mut stalled, upload, "2 bytes\n").await;
        sleep(LIMITS.keep_alive_timeout - Duration::from_secs(1)).await;
        stalled.write_all(&[STALLING, b"0123456789"].concat()).await.unwrap();
        let (reading, mut writing) = stall_in_body(running.addr, b"").await.into_split();
        tokio::spawn(async move {
            while writing.write_all(b"x").await.is_ok() {
                sleep(Duration::from_secs(3)).await;
            }
        });
        let (stalled, trickling) = tokio::join!(time_to_close(stalled), time_to_close(reading));
        for took in [stalled, trickling] {
            assert!(
                (LIMITS.header_read_timeout..LIMITS.header_read_timeout + Duration::from_millis(100))
                    .contains(&took),
                "closed after {took:?}; header_read_timeout is {:?}",
                LIMITS.header_read_timeout
            );
        }
    }

    /// A route that reads its body only after some work of its own finds the first bytes
    /// there already; when the rest stalls, the timeout runs from when it began to wait.
    #[tokio::test(start_paused = true)]
    async fn a_body_read_late_is_timed_from_when_the_route_waits_for_it() {
        let work = Duration::from_secs(1);
        let later = post(move |mut body: Body| async move {
            sleep(work).await;
            let mut total = 0;
            while let Some(n) = next_data(&mut body).await {
                total += n;
            }
            format!("{total} bytes\n")
        });
        let running = serve(Router::new().route("/later", later), 8);
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream
            .write_all(b"POST /later HTTP/1.1\r\nHost: device\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let took = time_to_close(stream).await;
        let expected = work + LIMITS.header_read_timeout;
        assert!((expected..expected + Duration::from_millis(100)).contains(&took), "closed after {took:?}");
    }

    /// Slow but within the timeout: answered.
    #[tokio::test(start_paused = true)]
    async fn a_slow_body_that_arrives_within_the_header_read_timeout_is_answered() {
        let running = serve(echo_length(), 8);
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream
            .write_all(
                b"POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: 4\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        for byte in [&b"a"[..], b"b", b"c", b"d"] {
            sleep(Duration::from_millis(2_400)).await;
            stream.write_all(byte).await.unwrap();
        }
        let response = read_all(stream).await;
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("4 bytes\n"), "{response}");
    }

    /// A route that is busy rather than waiting for its client is not cut, however long it
    /// takes: one that works between two reads of its body, and one that gave up waiting
    /// for the body and answers without it.
    #[tokio::test(start_paused = true)]
    async fn a_route_busy_between_reads_of_its_body_or_done_with_it_is_not_cut() {
        let work = Duration::from_secs(30);
        let between = post(move |mut body: Body| async move {
            let mut total = next_data(&mut body).await.unwrap_or(0);
            sleep(work).await;
            while let Some(n) = next_data(&mut body).await {
                total += n;
            }
            format!("{total} bytes\n")
        });
        let gave_up = post(move |mut body: Body| async move {
            let _ = timeout(Duration::from_secs(1), body.frame()).await;
            drop(body);
            sleep(work).await;
            "gave up\n"
        });
        let running = serve(Router::new().route("/between", between).route("/gave-up", gave_up), 8);

        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream
            .write_all(
                b"POST /between HTTP/1.1\r\nHost: device\r\nContent-Length: 20\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        sleep(Duration::from_secs(1)).await;
        stream.write_all(b"0123456789").await.unwrap();
        sleep(Duration::from_secs(19)).await;
        stream.write_all(b"0123456789").await.unwrap();
        let response = read_all(stream).await;
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("20 bytes\n"), "{response}");

        let response = exchange(
            running.addr,
            b"POST /gave-up HTTP/1.1\r\nHost: device\r\nContent-Length: 20\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("gave up\n"), "{response}");
    }

    /// At the connection limit, a connection whose route waits for a body that is not
    /// coming makes room as an idle one does, oldest first; one whose route is busy with
    /// its request (here holding it, body unread) is neither evicted nor timed out.
    #[tokio::test(start_paused = true)]
    async fn stalled_bodies_make_room_at_the_limit_and_a_busy_route_keeps_its_connection() {
        let (hold, entered, release) = hold();
        let app = echo_length().route("/hold", hold).route("/quick", get(|| async { "quick\n" }));
        let running = serve(app, 3);
        let mut holding = TcpStream::connect(running.addr).await.unwrap();
        holding
            .write_all(
                b"POST /hold HTTP/1.1\r\nHost: device\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        entered.acquire().await.unwrap().forget();
        let stalled = [stall_in_body(running.addr, b"").await, stall_in_body(running.addr, b"01").await];

        // Each kept open, so the next one needs room again: the two stalled bodies make it,
        // then the first of these, idle by then.
        let mut quick = Vec::new();
        for _ in 0..3 {
            let asked = timeout(Duration::from_secs(1), async {
                let mut stream = TcpStream::connect(running.addr).await.unwrap();
                let response = ask(&mut stream, QUICK, "quick\n").await;
                (stream, response)
            });
            let (stream, response) = asked.await.expect("no room made beside the stalled bodies");
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            quick.push(stream);
        }
        for stream in stalled {
            assert!(
                time_to_close(stream).await < Duration::from_secs(1),
                "a stalled body kept its connection"
            );
        }
        assert!(
            time_to_close(quick.remove(0)).await < Duration::from_secs(1),
            "the idle one kept its connection"
        );

        sleep(Duration::from_secs(60)).await;
        release.add_permits(1);
        let held = read_all(holding).await;
        assert!(held.starts_with("HTTP/1.1 200") && held.ends_with("held\n"), "{held}");
    }

    /// At the limit, the accept loop asks again for a connection to evict: one whose
    /// request was in flight when the next client came, and is idle now, makes room then,
    /// not when its keep-alive timeout ends.
    #[tokio::test(start_paused = true)]
    async fn a_connection_waiting_for_a_slot_gets_one_once_a_busy_one_goes_idle() {
        let (hold, entered, release) = hold();
        let app = Router::new().route("/hold", hold).route("/quick", get(|| async { "quick\n" }));
        let running = serve(app, 1);
        let mut holding = TcpStream::connect(running.addr).await.unwrap();
        let holding_asked = tokio::spawn(async move {
            let response = ask(&mut holding, b"GET /hold HTTP/1.1\r\nHost: device\r\n\r\n", "held\n").await;
            (holding, response)
        });
        entered.acquire().await.unwrap().forget();
        let waiting = tokio::spawn(exchange(running.addr, QUICK_CLOSE));
        while running.counters.snapshot().connections_accepted < 2 {
            tokio::task::yield_now().await;
        }
        release.add_permits(1);
        let (holding, held) = holding_asked.await.unwrap();
        assert!(held.starts_with("HTTP/1.1 200"), "{held}");
        let started = Instant::now();
        let quick = waiting.await.unwrap();
        assert!(quick.starts_with("HTTP/1.1 200") && quick.ends_with("quick\n"), "{quick}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "waited {took:?} for the idle connection to make room");
        assert!(time_to_close(holding).await < Duration::from_secs(1), "the idle one kept its connection");
    }

    /// Idle, a connection is closed at the keep-alive timeout from its last response, its
    /// request's body bytes notwithstanding; a head that starts arriving gets the
    /// header-read timeout from its first byte instead.
    #[tokio::test(start_paused = true)]
    async fn keep_alive_runs_from_the_last_response_and_header_read_from_the_first_byte() {
        let running = serve(echo_length(), 8);
        let mut idle = TcpStream::connect(running.addr).await.unwrap();
        idle.write_all(b"POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: 2\r\n\r\n").await.unwrap();
        sleep(Duration::from_secs(1)).await;
        ask(&mut idle, b"hi", "2 bytes\n").await;
        let took = time_to_close(idle).await;
        let keep_alive = LIMITS.keep_alive_timeout;
        assert!(
            (keep_alive..keep_alive + Duration::from_millis(100)).contains(&took),
            "idle, closed after {took:?}"
        );

        let mut slow = TcpStream::connect(running.addr).await.unwrap();
        sleep(keep_alive - Duration::from_secs(1)).await;
        slow.write_all(b"GET /upload HTTP/1.1\r\n").await.unwrap();
        let took = time_to_close(slow).await;
        let header_read = LIMITS.header_read_timeout;
        assert!(
            (header_read..header_read + Duration::from_millis(100)).contains(&took),
            "head, closed after {took:?}"
        );
    }
}
