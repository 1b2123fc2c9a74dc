//! The connection loop, with every frontend message checked before pgwire
//! decodes it.
//!
//! pgwire 0.41 decodes a message body in place on the connection's read
//! buffer and trusts the counts and lengths inside it: a Bind parameter that
//! declares more bytes than the message holds makes `split_to` panic, a body
//! shorter than its fields reads into the next message (and everything after
//! is misread), and a length below 4 underflows. [`FrameGuard`] sits between
//! the (decrypted) stream and pgwire's codec: it reads whole messages, checks
//! that each body has exactly the layout its type requires
//! ([`check_message`], [`check_startup`]), and only then hands the bytes on.
//! A malformed message ends the connection with `FATAL 08P01`, as PostgreSQL
//! ends it, and pgwire never sees the bytes.
//!
//! [`serve`] is pgwire's own `process_socket` (TLS negotiation, startup
//! timeout, message dispatch, error reporting) with the guard put in place
//! after the TLS handshake.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use futures::StreamExt;
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// pgwire drops a connection that has not finished its startup in this time.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest Query, Parse, Bind or CopyData message pgwire accepts.
const LARGE_MESSAGE: usize = 0x3fff_fffe;
/// Largest message of any other type (and of the startup packet).
const SMALL_MESSAGE: usize = 10_000;

const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// Serve one client connection: pgwire's `process_socket` with every
/// message after the TLS handshake checked by [`FrameGuard`].
pub async fn serve<H>(socket: TcpStream, tls: Option<TlsAcceptor>, handlers: H) -> io::Result<()>
where
    H: PgWireServerHandlers,
{
    let peer = socket.peer_addr()?;
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);

    let negotiated = tokio::select! {
        _ = &mut startup_deadline => return Ok(()),
        s = negotiate_tls(socket, tls) => s?,
    };
    // A client that asked for direct TLS where none is configured.
    let Some(negotiated) = negotiated else {
        return Ok(());
    };
    // Bytes pgwire already read past the SSL negotiation go through the
    // guard like every other byte.
    let parts = negotiated.into_parts();
    let mut guard = FrameGuard::new(parts.io, peer);
    guard.raw.extend_from_slice(&parts.read_buf);
    let mut guarded = FramedParts::new(guard, parts.codec);
    guarded.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(guarded);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let on_error = handlers.error_handler();

    loop {
        let in_startup = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if in_startup {
            tokio::select! {
                _ = &mut startup_deadline => None,
                m = socket.next() => m,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = next else { break };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let wait_for_sync = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let handled = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = handled {
            on_error.on_error(&socket, &mut e);
            process_error(&mut socket, e, wait_for_sync).await?;
        }
    }
    Ok(())
}

/// Reads whole frontend messages from `inner`, checks them, and yields only
/// the bytes of well-formed ones.
pub struct FrameGuard<T> {
    inner: T,
    peer: SocketAddr,
    /// Read from `inner`, not yet checked.
    raw: BytesMut,
    /// Checked, waiting to be read by the codec.
    ready: BytesMut,
    /// The next message is the untagged startup packet.
    awaiting_startup: bool,
    eof: bool,
    /// Why the connection was ended, once it was.
    failed: Option<String>,
}

impl<T> FrameGuard<T> {
    pub fn new(inner: T, peer: SocketAddr) -> Self {
        Self {
            inner,
            peer,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            awaiting_startup: true,
            eof: false,
            failed: None,
        }
    }

    /// Move every complete, well-formed message from `raw` to `ready`;
    /// stop at the first incomplete one. `Err` names the malformed one.
    fn release_complete(&mut self) -> Result<(), String> {
        loop {
            if self.awaiting_startup {
                let Some(len) = declared_len(&self.raw, 0) else {
                    return Ok(());
                };
                check_startup_len(len)?;
                let len = len as usize;
                if self.raw.len() < len {
                    return Ok(());
                }
                check_startup(&self.raw[4..len])?;
                self.ready.extend_from_slice(&self.raw.split_to(len));
                self.awaiting_startup = false;
            } else {
                let Some(len) = declared_len(&self.raw, 1) else {
                    return Ok(());
                };
                let tag = self.raw[0];
                check_message_len(tag, len)?;
                let total = 1 + len as usize;
                if self.raw.len() < total {
                    return Ok(());
                }
                check_message(tag, &self.raw[5..total])?;
                self.ready.extend_from_slice(&self.raw.split_to(total));
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> FrameGuard<T> {
    /// Tell the client why, as PostgreSQL would (one non-blocking attempt:
    /// a client that does not read is not waited for).
    fn send_fatal(&mut self, cx: &mut Context<'_>, reason: &str) {
        let bytes = fatal_response("08P01", reason);
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(_)) = inner.as_mut().poll_write(cx, &bytes) {
            let _ = inner.poll_flush(cx);
        }
    }
}

/// An ErrorResponse message with severity FATAL.
fn fatal_response(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(5 + body.len());
    out.put_u8(b'E');
    out.put_i32((4 + body.len()) as i32);
    out.extend_from_slice(&body);
    out
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(out.remaining());
                out.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(reason) = &this.failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    reason.clone(),
                )));
            }
            if let Err(reason) = this.release_complete() {
                tracing::warn!(peer = %this.peer, "closing connection: {reason}");
                this.send_fatal(cx, &reason);
                this.raw.clear();
                this.failed = Some(reason);
                continue;
            }
            if !this.ready.is_empty() {
                continue;
            }
            if this.eof {
                // A message cut off by the end of the stream is dropped, as
                // pgwire would drop it.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = chunk_buf.filled();
                    if filled.is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(filled);
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The big-endian i32 length at `at`, once its four bytes have arrived.
fn declared_len(buf: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

fn check_startup_len(len: i32) -> Result<(), String> {
    if !(8..=SMALL_MESSAGE as i32).contains(&len) {
        return Err(format!(
            "invalid length of startup packet: {len} (must be 8 to {SMALL_MESSAGE})"
        ));
    }
    Ok(())
}

/// The startup packet after its length: a protocol code, then for a
/// StartupMessage NUL-terminated name/value pairs ended by one more NUL.
pub fn check_startup(body: &[u8]) -> Result<(), String> {
    let mut r = Reader::new("startup packet".into(), body);
    let code = r.i32("protocol version")?;
    if code == CANCEL_REQUEST_CODE {
        // pid and secret key; pgwire closes the connection after it.
        if body.len() < 12 {
            return Err(format!(
                "CancelRequest of {} bytes is shorter than 16",
                body.len() + 4
            ));
        }
        return Ok(());
    }
    if body.len() == 4 {
        // SSLRequest / GSSENCRequest sent again, or a bare version:
        // pgwire refuses it.
        return Ok(());
    }
    loop {
        let name = r.cstring("parameter name")?;
        if name.is_empty() {
            return r.finish();
        }
        r.cstring("parameter value")?;
    }
}

fn check_message_len(tag: u8, len: i32) -> Result<(), String> {
    let name = message_name(tag)
        .ok_or_else(|| format!("invalid frontend message type {}", describe_tag(tag)))?;
    let max = match tag {
        b'Q' | b'P' | b'B' | b'd' => LARGE_MESSAGE,
        _ => SMALL_MESSAGE,
    };
    if len < 4 || len as usize > max {
        return Err(format!(
            "invalid length of {name} message: {len} (must be 4 to {max})"
        ));
    }
    Ok(())
}

/// Check that `body` (after type byte and length) is exactly a well-formed
/// message of type `tag`.
pub fn check_message(tag: u8, body: &[u8]) -> Result<(), String> {
    let name = message_name(tag)
        .ok_or_else(|| format!("invalid frontend message type {}", describe_tag(tag)))?;
    let mut r = Reader::new(format!("{name} message"), body);
    match tag {
        // Password, SASLInitialResponse, SASLResponse: their layout depends
        // on the authentication exchange and is checked there (auth.rs);
        // CopyData is opaque.
        b'p' | b'd' => return Ok(()),
        b'Q' | b'f' => {
            r.cstring(if tag == b'Q' {
                "query string"
            } else {
                "error message"
            })?;
        }
        b'P' => {
            r.cstring("statement name")?;
            r.cstring("query string")?;
            let n = r.u16("parameter type count")?;
            r.skip(4 * n as usize, "parameter types")?;
        }
        b'B' => {
            r.cstring("portal name")?;
            r.cstring("statement name")?;
            let formats = r.u16("parameter format count")?;
            r.skip(2 * formats as usize, "parameter formats")?;
            let params = r.u16("parameter count")?;
            for i in 1..=params {
                let len = r.i32("parameter length")?;
                if len >= 0 {
                    r.skip(len as usize, &format!("parameter {i}"))?;
                } else if len != -1 {
                    return Err(format!(
                        "invalid Bind message: parameter {i} has length {len}"
                    ));
                }
            }
            let results = r.u16("result format count")?;
            r.skip(2 * results as usize, "result formats")?;
        }
        b'C' | b'D' => {
            let target = r.u8("target type")?;
            if target != b'S' && target != b'P' {
                return Err(format!(
                    "invalid {name} message: target type {} (must be 'S' or 'P')",
                    describe_tag(target)
                ));
            }
            r.cstring("name")?;
        }
        b'E' => {
            r.cstring("portal name")?;
            r.i32("row limit")?;
        }
        // Sync, Flush, Terminate, CopyDone carry nothing.
        _ => {}
    }
    r.finish()
}

fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'p' => "password",
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'C' => "Close",
        b'D' => "Describe",
        b'E' => "Execute",
        b'H' => "Flush",
        b'S' => "Sync",
        b'X' => "Terminate",
        b'd' => "CopyData",
        b'c' => "CopyDone",
        b'f' => "CopyFail",
        _ => return None,
    })
}

fn describe_tag(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// A cursor over one message body whose errors say which field is wrong.
struct Reader<'a> {
    /// "Bind message", "startup packet".
    what: String,
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(what: String, body: &'a [u8]) -> Self {
        Self { what, body, at: 0 }
    }

    fn short(&self, field: &str, needed: usize) -> String {
        format!(
            "invalid {}: {field} needs {needed} bytes at offset {} but {} remain",
            self.what,
            self.at,
            self.body.len() - self.at
        )
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        if self.body.len() - self.at < n {
            return Err(self.short(field, n));
        }
        let bytes = &self.body[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    fn u8(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.skip(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, String> {
        let b = self.skip(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &str) -> Result<i32, String> {
        let b = self.skip(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstring(&mut self, field: &str) -> Result<&'a [u8], String> {
        let rest = &self.body[self.at..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(format!(
                "invalid {}: {field} at offset {} is not NUL-terminated",
                self.what, self.at
            ));
        };
        self.at += end + 1;
        Ok(&rest[..end])
    }

    fn finish(&self) -> Result<(), String> {
        let extra = self.body.len() - self.at;
        if extra > 0 {
            return Err(format!(
                "invalid {}: {extra} bytes after the last field",
                self.what
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(params: &[Option<&[u8]>], declared: Option<i32>) -> Vec<u8> {
        let mut b = b"\0s1\0".to_vec();
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&(params.len() as u16).to_be_bytes());
        for p in params {
            match p {
                Some(v) => {
                    let len = declared.unwrap_or(v.len() as i32);
                    b.extend_from_slice(&len.to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b.extend_from_slice(&0u16.to_be_bytes());
        b
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(check_message(b'Q', b"select 1\0"), Ok(()));
        assert_eq!(check_message(b'S', b""), Ok(()));
        assert_eq!(check_message(b'D', b"Ss1\0"), Ok(()));
        assert_eq!(check_message(b'E', b"\0\0\0\0\0"), Ok(()));
        assert_eq!(check_message(b'd', b"any\0bytes"), Ok(()));
        let mut parse = b"s1\0select $1\0".to_vec();
        parse.extend_from_slice(&1u16.to_be_bytes());
        parse.extend_from_slice(&23u32.to_be_bytes());
        assert_eq!(check_message(b'P', &parse), Ok(()));
        assert_eq!(
            check_message(b'B', &bind(&[Some(b"42"), None], None)),
            Ok(())
        );
    }

    #[test]
    fn a_bind_parameter_longer_than_the_message_is_refused() {
        // The message pgwire 0.41 panics on: "split_to out of bounds".
        assert_eq!(
            check_message(b'B', &bind(&[Some(b"42")], Some(564))),
            Err(
                "invalid Bind message: parameter 1 needs 564 bytes at offset 12 but 4 remain"
                    .into()
            )
        );
        assert_eq!(
            check_message(b'B', &bind(&[Some(b"42")], Some(-7))),
            Err("invalid Bind message: parameter 1 has length -7".into())
        );
    }

    #[test]
    fn short_long_and_unterminated_bodies_are_refused() {
        assert_eq!(
            check_message(b'E', b"\0\0\0"),
            Err("invalid Execute message: row limit needs 4 bytes at offset 1 but 2 remain".into())
        );
        assert_eq!(
            check_message(b'Q', b"select 1"),
            Err("invalid Query message: query string at offset 0 is not NUL-terminated".into())
        );
        assert_eq!(
            check_message(b'Q', b"select 1\0X\0\0\0\x04"),
            Err("invalid Query message: 5 bytes after the last field".into())
        );
        assert_eq!(
            check_message(b'S', b"\0"),
            Err("invalid Sync message: 1 bytes after the last field".into())
        );
        assert_eq!(
            check_message(b'C', b"Xs1\0"),
            Err("invalid Close message: target type 'X' (must be 'S' or 'P')".into())
        );
        let mut parse = b"s1\0select $1\0".to_vec();
        parse.extend_from_slice(&3u16.to_be_bytes());
        assert_eq!(
            check_message(b'P', &parse),
            Err(
                "invalid Parse message: parameter types needs 12 bytes at offset 15 but 0 remain"
                    .into()
            )
        );
    }

    #[test]
    fn lengths_and_types_are_checked_before_the_body_is_awaited() {
        assert_eq!(
            check_message_len(b'S', 3),
            Err("invalid length of Sync message: 3 (must be 4 to 10000)".into())
        );
        assert_eq!(
            check_message_len(b'D', 1_000_000),
            Err("invalid length of Describe message: 1000000 (must be 4 to 10000)".into())
        );
        assert_eq!(check_message_len(b'B', 1_000_000), Ok(()));
        assert_eq!(
            check_message_len(b'F', 8),
            Err("invalid frontend message type 'F'".into())
        );
        assert_eq!(
            check_message_len(0x01, 8),
            Err("invalid frontend message type 0x01".into())
        );
        assert_eq!(
            check_startup_len(-1),
            Err("invalid length of startup packet: -1 (must be 8 to 10000)".into())
        );
    }

    #[test]
    fn startup_packets_must_end_exactly_after_their_parameters() {
        let mut ok = 196_608i32.to_be_bytes().to_vec();
        ok.extend_from_slice(b"user\0crm\0database\0crm\0\0");
        assert_eq!(check_startup(&ok), Ok(()));
        let mut trailing = ok.clone();
        trailing.extend_from_slice(b"B\0\0\0\x04");
        assert_eq!(
            check_startup(&trailing),
            Err("invalid startup packet: 5 bytes after the last field".into())
        );
        let mut cut = 196_608i32.to_be_bytes().to_vec();
        cut.extend_from_slice(b"user\0crm");
        assert_eq!(
            check_startup(&cut),
            Err("invalid startup packet: parameter value at offset 9 is not NUL-terminated".into())
        );
        let mut cancel = CANCEL_REQUEST_CODE.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[0, 0, 0, 1]);
        assert_eq!(
            check_startup(&cancel),
            Err("CancelRequest of 12 bytes is shorter than 16".into())
        );
        cancel.extend_from_slice(&[0, 0, 0, 2]);
        assert_eq!(check_startup(&cancel), Ok(()));
    }

    #[test]
    fn the_fatal_response_is_a_well_formed_error_message() {
        let m = fatal_response("08P01", "bad");
        assert_eq!(m[0], b'E');
        assert_eq!(declared_len(&m, 1), Some(m.len() as i32 - 1));
        assert_eq!(&m[5..], b"SFATAL\0VFATAL\0C08P01\0Mbad\0\0");
    }
}
