//! portico's own pages: the status page and /api/status, /healthz, /metrics, and what
//! every page shares (the HTML helpers, the security headers). Each page is handed the
//! [`Device`](crate::Device) and no page reaches into another.

pub(crate) mod html;
pub(crate) mod metrics;
pub(crate) mod metrics_access;
pub(crate) mod status;
pub(crate) mod status_page;

use axum::Router;
use axum::routing::get;

use crate::device::Device;

/// portico's pages; `status_page` false leaves out `/` and `/api/status` (a team's binary
/// that has its own).
pub(crate) fn routes(status_page: bool) -> Router<Device> {
    status_page::routes(status_page).route("/metrics", get(metrics::page))
}
