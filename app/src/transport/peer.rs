//! What the transport tells the pages about a request's connection, as a request
//! extension: who is asking, and whether over HTTPS.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    /// None for a Unix socket. An IPv4 client is named by its IPv4 address, also when a
    /// dual-stack socket mapped it to ::ffff:a.b.c.d.
    pub ip: Option<IpAddr>,
    pub https: bool,
}
