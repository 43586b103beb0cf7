//! One listener type and one stream type for TCP and Unix sockets, plain or TLS, so that
//! hyper's connection machinery, most of the binary, is compiled once rather than once per
//! kind of connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::activation::Listener;

pub(crate) enum AsyncListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl AsyncListener {
    /// Registers a listening socket with the runtime; call it inside the runtime.
    pub(crate) fn new(listener: Listener) -> io::Result<Self> {
        Ok(match listener {
            Listener::Tcp(l) => AsyncListener::Tcp(TcpListener::from_std(l)?),
            Listener::Unix(l) => AsyncListener::Unix(UnixListener::from_std(l)?),
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        match self {
            AsyncListener::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                // Responses are written whole; don't let Nagle hold back their last segment.
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            AsyncListener::Unix(l) => Ok(Stream::Unix(l.accept().await?.0)),
        }
    }
}

impl Stream {
    /// The client's address; None for a Unix socket.
    pub(crate) fn peer(&self) -> Option<std::net::SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok(),
            Stream::Unix(_) => None,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0.peer(),
        }
    }
}

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Stream>>),
}

/// Runs `$body` with `$s` bound to the pinned inner stream, whichever it is.
macro_rules! each {
    ($stream:expr, $s:ident => $body:expr) => {
        match $stream.get_mut() {
            Stream::Tcp(inner) => {
                let $s = Pin::new(inner);
                $body
            }
            Stream::Unix(inner) => {
                let $s = Pin::new(inner);
                $body
            }
            #[cfg(feature = "tls")]
            Stream::Tls(inner) => {
                let $s = Pin::new(inner.as_mut());
                $body
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}
