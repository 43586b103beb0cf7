//! The build without the `tls` feature: the same names as tls.rs, none of which can ever
//! hold a certificate. A socket that speaks HTTPS is refused at start, saying how to fix it.

use super::activation::{HTTPS_NAME, Listeners};
use super::stream::Stream;
use crate::config::{Config, HTTPS_PREFIX};

/// No certificate is ever in use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Summary {}

impl Summary {
    pub(crate) fn fingerprint(&self) -> &str {
        match *self {}
    }
}

pub(crate) fn describe(certificate: &Summary) -> String {
    match *certificate {}
}

#[derive(Clone)]
pub(crate) enum TlsAcceptor {}

pub(crate) async fn handshake(acceptor: &TlsAcceptor, _: Stream) -> std::io::Result<Stream> {
    match *acceptor {}
}

pub(crate) type TlsError = std::convert::Infallible;

pub(crate) struct Https;

impl Https {
    pub(crate) fn set_up(_: &Config, listeners: &Listeners) -> Result<Self, Box<dyn std::error::Error>> {
        match listeners.sockets.iter().any(|(_, info)| info.https) {
            false => Ok(Https),
            true => Err(format!(
                "a socket speaks HTTPS (named {HTTPS_NAME:?}, or {HTTPS_PREFIX}), but this portico was \
                 built without the `tls` feature: rebuild with it, or drop the HTTPS socket"
            )
            .into()),
        }
    }

    pub(crate) fn certificate(&self) -> Option<Summary> {
        None
    }

    pub(crate) fn reload(&self) -> Option<Result<Summary, TlsError>> {
        None
    }

    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        None
    }
}
