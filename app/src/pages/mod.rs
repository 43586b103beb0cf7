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

/// Adds portico's pages to `router` (a team's); `status_page` false leaves out `/` and
/// `/api/status`. Added route by route, not merged: a path both have panics at start, and
/// the binary carries no router merging.
pub(crate) fn routes(router: Router<Device>, status_page: bool) -> Router<Device> {
    status_page::routes(router, status_page).route("/metrics", get(metrics::page))
}
