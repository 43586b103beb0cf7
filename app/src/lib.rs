//! portico: a device's web interface, socket-activated. A binary built on it serves the
//! sockets systemd passes (HTTP and HTTPS), drops root, reports readiness, status and
//! watchdog, drains on stop and restarts in place without refusing a connection, and
//! serves portico's pages (status page, `/api/status`, `/healthz`, `/metrics`, the owner's
//! set-up, login and settings) beside the team's own.
//!
//! A team's binary is a few lines: its routes, its settings, and [`Portico::main`].
//!
//! ```no_run
//! use axum::extract::State;
//! use axum::routing::get;
//! use axum::Router;
//! use portico::{Device, LoggedIn, Portico, Setting};
//!
//! /// Public, like the status page.
//! const GREETING: Setting = Setting::new("greeting", "TEXT", "hello", "what /hello says");
//!
//! async fn hello(State(device): State<Device>) -> String {
//!     format!("{}\n", device.setting(&GREETING))
//! }
//!
//! /// The owner's only: taking `LoggedIn` is all it takes.
//! async fn secret(_owner: LoggedIn) -> &'static str {
//!     "for the owner's eyes\n"
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let routes = Router::new().route("/hello", get(hello)).route("/api/secret", get(secret));
//!     Portico::new()
//!         .setting(GREETING)
//!         .routes(routes)
//!         .main()
//! }
//! ```
//!
//! The crate's layout follows its architecture: `transport` (sockets to requests),
//! `pages` (portico's own), `owner` (the login and the owner's state), `config`; the
//! transport knows nothing of the pages, and no page reaches into another.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod config;
mod device;
#[cfg(feature = "tls")]
mod durable;
#[cfg(feature = "tls")]
mod owner;
mod pages;
mod portico;
mod transport;

pub use config::Setting;
pub use device::Device;
#[cfg(feature = "tls")]
pub use owner::{CsrfForm, LoggedIn};
pub use pages::html::escape as escape_html;
pub use portico::Portico;
