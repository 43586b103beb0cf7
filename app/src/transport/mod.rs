//! The transport: from the sockets systemd passes (or portico binds) to requests a router
//! answers, and back. Activation, the switch away from root, the listeners and streams,
//! TLS, the server and its limits, readiness and watchdog, drain and restart in place.
//! It knows nothing of the pages: it is handed a router and an asset function.

pub(crate) mod activation;
pub(crate) mod handover;
pub(crate) mod logging;
pub(crate) mod notify;
pub(crate) mod peer;
pub(crate) mod privileges;
pub(crate) mod server;
pub(crate) mod shutdown;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod threads;
#[cfg(feature = "tls")]
pub(crate) mod tls;
#[cfg(not(feature = "tls"))]
#[path = "without_tls.rs"]
pub(crate) mod tls;
