//! Whether the client of a waiting request is still there.
//!
//! actix-web does not drop a pending handler when its client disconnects
//! (actix/actix-web#1313), so a queued acquire cannot learn from its own future that
//! the caller gave up. Instead each connection records its socket, and a request that
//! queues keeps a duplicate of it to peek at: end of stream or an error means gone.
//! Under TLS the peek sees encrypted bytes, which is enough: only end of stream counts.
//! A client that half-closes its side after sending counts as gone too; HTTP clients
//! that wait for an answer do not do that.

use std::any::Any;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

use crate::actors::GoneProbe;

/// The socket of a connection, by number: no descriptor is held per connection.
#[derive(Clone, Copy)]
struct Socket(RawFd);

/// Records each TCP connection's socket, under TLS or not (an `on_connect` hook).
pub(crate) fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Tcp = actix_web::rt::net::TcpStream;
    let tcp = conn.downcast_ref::<Tcp>().or_else(|| {
        conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<Tcp>>()
            .map(|tls| tls.get_ref().0)
    });
    if let Some(tcp) = tcp {
        ext.insert(Socket(tcp.as_raw_fd()));
    }
}

/// A probe that tells whether the client of `req` has gone away, or `None` when the
/// connection is not TCP or its socket cannot be duplicated.
pub(crate) fn probe(req: &HttpRequest) -> Option<GoneProbe> {
    let Socket(fd) = *req.conn_data::<Socket>()?;
    // SAFETY: the connection owns `fd` and outlives every request handled on it; this
    // runs inside such a handler, so `fd` is open and is this connection's socket. The
    // duplicate keeps the socket itself open for as long as the probe lives.
    let socket = match unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() {
        Ok(socket) => socket,
        Err(e) => {
            // The waiter still queues; only a reply channel closed by actix then tells
            // that its caller left.
            let _in_request = super::lazy_span(req).map(tracing::Span::entered);
            tracing::warn!(error = %e, "cannot watch a waiting client's connection");
            return None;
        }
    };
    let socket = TcpStream::from(socket);
    socket.set_nonblocking(true).ok()?;
    Some(Box::new(move || {
        let mut byte = [0u8; 1];
        match socket.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }))
}
