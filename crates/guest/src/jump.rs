//! Reaching a host through another's SSH server (OpenSSH's `ProxyJump`): a `direct-tcpip`
//! channel of a session to the jump host, carried to a loopback socket pair in this process so
//! the target's own session runs on a `TcpStream` as any other.
//!
//! One session to the jump host per connection, and one thread that copies both ways with the
//! session non-blocking, waiting in `poll` on both sockets; it ends when both sides have closed
//! or either fails.

use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ssh2::{BlockDirections, Channel};

use crate::ssh::{Conn, Connector, Ssh, SshConfig};

/// A connector that opens each connection through `hop`'s SSH server.
pub fn through(hop: SshConfig) -> Connector {
    Box::new(move |target: &SshConfig| {
        let ssh = Ssh::new(hop.clone());
        let conn = ssh.open().map_err(|e| {
            io::Error::other(format!("through {} ({}): {e}", hop.host, hop.target()))
        })?;
        conn.sess
            .set_timeout(u32::try_from(target.connect_timeout.as_millis()).unwrap_or(u32::MAX));
        let ch = conn
            .sess
            .channel_direct_tcpip(&target.address, target.port, None)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "{} ({}) could not open a connection to {}: {e}",
                        hop.host,
                        hop.target(),
                        target.target()
                    ),
                )
            })?;
        conn.sess.set_timeout(0);
        let (ours, theirs) = pair()?;
        std::thread::Builder::new()
            .name(format!("jump {}", target.host))
            .spawn(move || {
                if let Err(e) = pump(&conn, ch, theirs) {
                    tracing::debug!(error = %e, "jump connection ended");
                }
            })?;
        Ok(ours)
    })
}

/// Two connected loopback sockets; the accepted one is checked to be ours (another process
/// could connect to the listener in between).
fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let ours = TcpStream::connect(l.local_addr()?)?;
    let me = ours.local_addr()?;
    loop {
        let (s, peer) = l.accept()?;
        if peer == me {
            let _ = ours.set_nodelay(true);
            let _ = s.set_nodelay(true);
            return Ok((ours, s));
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Copy between the channel and the local socket until both directions are done.
fn pump(conn: &Conn, mut ch: Channel, mut local: TcpStream) -> io::Result<()> {
    conn.sess.set_blocking(false);
    local.set_nonblocking(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes read and not yet written, each way.
    let (mut up, mut down): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
    let (mut local_eof, mut remote_eof, mut eof_sent) = (false, false, false);
    loop {
        let mut moved = false;
        if up.is_empty() && !local_eof {
            match local.read(&mut buf) {
                Ok(0) => local_eof = true,
                Ok(n) => {
                    up.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !up.is_empty() {
            match ch.write(&up) {
                Ok(n) => {
                    up.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if local_eof && up.is_empty() && !eof_sent {
            match ch.send_eof() {
                Ok(()) => eof_sent = true,
                Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {}
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        if down.is_empty() && !remote_eof {
            match ch.read(&mut buf) {
                Ok(0) if ch.eof() => {
                    remote_eof = true;
                    let _ = local.shutdown(std::net::Shutdown::Write);
                }
                Ok(0) => {}
                Ok(n) => {
                    down.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !down.is_empty() {
            match local.write(&down) {
                Ok(n) => {
                    down.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if remote_eof && (local_eof || eof_sent) && up.is_empty() && down.is_empty() {
            let _ = ch.close();
            let _ = conn.sess.disconnect(None, "done", None);
            return Ok(());
        }
        if moved {
            continue;
        }
        let mut local_flags = PollFlags::empty();
        if up.is_empty() && !local_eof {
            local_flags |= PollFlags::POLLIN;
        }
        if !down.is_empty() {
            local_flags |= PollFlags::POLLOUT;
        }
        let mut remote_flags = PollFlags::POLLIN;
        if matches!(
            conn.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            remote_flags |= PollFlags::POLLOUT;
        }
        let mut fds = [
            PollFd::new(local.as_fd(), local_flags),
            PollFd::new(conn.tcp.as_fd(), remote_flags),
        ];
        // A bounded wait: libssh2 may hold data it already read (a window adjust, a second
        // packet) that no readiness of the socket announces.
        poll(&mut fds, PollTimeout::from(50u16)).map_err(io::Error::from)?;
    }
}
