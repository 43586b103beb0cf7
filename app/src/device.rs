//! What every page is handed: the device as the pages see it (its figures, counts, the
//! certificate in use, who may read /metrics, the owner's side, a team's own settings).
//! The one place that knows whether the owner's side was built in (the `tls` feature):
//! the pages ask the device, and get the same answers either way.

use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::config::Setting;
use crate::pages::metrics_access::Access;
use crate::pages::status::Fixed;
use crate::transport::shutdown::Shutdown;
use crate::transport::stats::Counters;
use crate::transport::tls::Summary as Certificate;

/// What /metrics tells of the updater's last run.
pub(crate) struct UpdateFacts {
    /// When it ran, in unix seconds.
    pub(crate) run_at: u64,
    /// What came of it (up-to-date, installed, rolled-back...).
    pub(crate) result: String,
    /// Whether the feed has a newer portico than the one installed.
    pub(crate) available: bool,
    pub(crate) rollbacks: u64,
}

/// The device, as a handler takes it: `State(device): State<portico::Device>`. Cheap to
/// clone; a team's handler reads its own settings from it ([`Device::setting`]).
#[derive(Clone)]
pub struct Device(Arc<Inner>);

/// The pages' view of the device; `Device` derefs to it inside the crate.
pub struct Inner {
    pub(crate) fixed: Fixed,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown: Shutdown,
    /// Replaced when a reload brings a new certificate.
    certificate: RwLock<Option<Certificate>>,
    /// Who may read /metrics.
    pub(crate) metrics: Access,
    /// A team's settings (`Portico::setting`), by name, as the config gave them.
    settings: Vec<(&'static str, String)>,
    /// The owner's side.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) owner: Owner,
}

/// What the owner's pages need: the login, the updater's report and requests, and the
/// certificate upload.
#[cfg(feature = "tls")]
pub(crate) struct Owner {
    /// The login; none without an HTTPS socket, since it never travels in clear.
    pub(crate) auth: Option<Arc<crate::owner::account::Auth>>,
    pub(crate) updates: crate::owner::updates::Updates,
    /// What the owner asks of the updater; none where the device has no updater.
    pub(crate) update_requests: Option<crate::owner::updates::Requests>,
    /// Checks and installs a certificate the owner uploaded; says what is now in use.
    pub(crate) replace_certificate: Option<crate::transport::tls::Replace>,
}

/// Built without the owner's side, there is nothing of it.
#[cfg(not(feature = "tls"))]
pub(crate) struct Owner;

impl std::ops::Deref for Device {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Device {
    pub(crate) fn new(
        fixed: Fixed,
        counters: Arc<Counters>,
        shutdown: Shutdown,
        certificate: Option<Certificate>,
        metrics: Access,
        settings: Vec<(&'static str, String)>,
        owner: Owner,
    ) -> Self {
        Device(Arc::new(Inner {
            fixed,
            counters,
            shutdown,
            certificate: RwLock::new(certificate),
            metrics,
            settings,
            owner,
        }))
    }

    /// The value of a setting the binary declared with `Portico::setting`: from the config
    /// file, `PORTICO_<NAME>` or a flag, else its default (also for one it did not declare).
    pub fn setting(&self, setting: &Setting) -> &str {
        let value = self.settings.iter().find(|(name, _)| *name == setting.name());
        value.map_or(setting.default(), |(_, value)| value)
    }
}

#[cfg(test)]
impl Device {
    /// A device started by hand with no socket passed, for the router's tests.
    pub(crate) fn for_tests(settings: Vec<(&'static str, String)>, owner: Owner) -> Self {
        use crate::transport::activation::Origin;
        let activation = crate::pages::status::Activation { mode: Origin::SelfBound, listeners: vec![] };
        let fixed = Fixed::read(activation);
        Device::new(fixed, Arc::default(), Shutdown::new(), None, Access::Public, settings, owner)
    }
}

impl Inner {
    /// The certificate in use, as the pages show it.
    pub(crate) fn certificate(&self) -> Option<Certificate> {
        self.certificate.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// What a reload or the owner's upload put in use.
    pub(crate) fn set_certificate(&self, certificate: Certificate) {
        *self.certificate.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(certificate);
    }

    /// The device's label, as its owner set it; empty without one.
    pub(crate) fn label(&self) -> String {
        #[cfg(feature = "tls")]
        if let Some(auth) = &self.owner.auth {
            return auth.glance().label;
        }
        String::new()
    }

    /// What the updater last reported, as /metrics counts it; none without the owner's
    /// side (its parser would cost the binary without TLS more than its 1 MiB budget).
    pub(crate) fn update_facts(&self) -> Option<UpdateFacts> {
        #[cfg(feature = "tls")]
        {
            let report = self.owner.updates.report().unwrap_or_else(|e| {
                tracing::warn!("/metrics: the updater's report: {e}");
                None
            })?;
            Some(UpdateFacts {
                run_at: report.run_at,
                result: report.result,
                available: report.available.is_some(),
                rollbacks: report.rollbacks,
            })
        }
        #[cfg(not(feature = "tls"))]
        None
    }
}

#[cfg(feature = "tls")]
impl crate::owner::HasAuth for Device {
    fn auth(&self) -> Option<&Arc<crate::owner::account::Auth>> {
        self.owner.auth.as_ref()
    }
}

/// How much of the status page and /api/status a request may see (`full`), and the
/// device's label from the same look at the owner's state: all of it where there is no
/// owner's side, else as `owner::extract::may_view` decides.
pub(crate) struct MayView {
    pub(crate) label: String,
    pub(crate) full: bool,
}

impl FromRequestParts<Device> for MayView {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, device: &Device) -> Result<Self, Self::Rejection> {
        #[cfg(feature = "tls")]
        if let Some(auth) = &device.owner.auth {
            let (label, full) = crate::owner::extract::may_view(parts, auth);
            return Ok(MayView { label, full });
        }
        let _ = (parts, device);
        Ok(MayView { label: String::new(), full: true })
    }
}
