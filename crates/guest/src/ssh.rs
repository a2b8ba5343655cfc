//! Acting on a host over SSH: one ssh2 session per host, reused for every command (no process
//! per command), with host-key checking against a lab-local known_hosts, key or agent
//! authentication, keepalive, timeouts on connect and on each command, and reconnection after a
//! dropped session.
//!
//! Remote commands are argv lists joined with [`net::shell::join`], so every argument reaches
//! the remote program exactly as given (the remote login shell must be a POSIX shell).

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ssh2::{HostKeyType, Session};

use crate::known_hosts;
use crate::{Command, Error, Exec, FileMode, Output, Status, Stream};

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A private key file (the lab's own ed25519 key, or the user's).
    Key(PathBuf),
    /// The user's ssh-agent (`SSH_AUTH_SOCK`).
    Agent,
}

/// Where and how to reach a host.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The lab host's name (messages only).
    pub host: String,
    /// Host name or address to connect to.
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    /// The lab-local known_hosts file.
    pub known_hosts: PathBuf,
    /// Record an unknown host key instead of refusing it: only for machines the lab created.
    pub trust_on_first_use: bool,
    /// Limit on TCP connect, SSH handshake and authentication, each.
    pub connect_timeout: Duration,
    /// Keepalive interval (`None`: off).
    pub keepalive: Option<Duration>,
    /// Run every command as root through `sudo -n` when `user` is not root.
    pub sudo: bool,
    /// Reach the host through this one's SSH server (OpenSSH's `ProxyJump`): `address` and
    /// `port` are then as that server sees them, e.g. a VM's forward on its hypervisor's
    /// loopback.
    pub jump: Option<Box<SshConfig>>,
    /// The name its host key is kept under in `known_hosts` (OpenSSH's `HostKeyAlias`), for
    /// hosts whose address and port are not unique from here (loopback forwards on several
    /// machines behind jumps).
    pub host_key_alias: Option<String>,
}

impl SshConfig {
    pub fn new(
        host: impl Into<String>,
        address: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        auth: Auth,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        Self {
            host: host.into(),
            address: address.into(),
            port,
            user: user.into(),
            auth,
            known_hosts: known_hosts.into(),
            trust_on_first_use: false,
            connect_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(15)),
            sudo: true,
            jump: None,
            host_key_alias: None,
        }
    }

    /// The entry of its host key in `known_hosts`: the alias, else `[address]:port`.
    ///
    /// ```
    /// let mut c = guest::SshConfig::new("vm", "127.0.0.1", 2222, "root", guest::Auth::Agent, "kh");
    /// assert_eq!(c.known_hosts_pattern(), "[127.0.0.1]:2222");
    /// c.host_key_alias = Some("lab-m1-vm".into());
    /// assert_eq!(c.known_hosts_pattern(), "lab-m1-vm");
    /// ```
    pub fn known_hosts_pattern(&self) -> String {
        self.host_key_alias
            .clone()
            .unwrap_or_else(|| known_hosts::pattern(&self.address, self.port))
    }

    /// OpenSSH client options (`-o NAME=VALUE`, or an ssh_config block) that reach the host as
    /// lab does: port, user, lab's key only, lab's known_hosts strictly, keepalive, the host
    /// key alias, and a jump as a `ProxyCommand` running `ssh -W` with the jump's own options
    /// (a shell line, every word quoted).
    ///
    /// ```
    /// use guest::{Auth, SshConfig};
    /// let hop = SshConfig::new("m1", "m1.example", 22, "lab", Auth::Key("/k".into()), "/kh");
    /// let mut vm = SshConfig::new("vm", "127.0.0.1", 42401, "root", Auth::Key("/k".into()), "/kh");
    /// vm.jump = Some(Box::new(hop));
    /// let o = vm.openssh_options();
    /// assert!(o.contains(&("Port".into(), "42401".into())));
    /// let proxy = &o.iter().find(|(k, _)| k == "ProxyCommand").unwrap().1;
    /// assert!(proxy.starts_with("ssh -o Port=22 -o User=lab"), "{proxy}");
    /// assert!(proxy.ends_with("-W %h:%p m1.example"), "{proxy}");
    /// ```
    pub fn openssh_options(&self) -> Vec<(String, String)> {
        let mut o: Vec<(String, String)> = vec![
            ("Port".into(), self.port.to_string()),
            ("User".into(), self.user.clone()),
        ];
        if let Auth::Key(k) = &self.auth {
            o.push(("IdentityFile".into(), k.display().to_string()));
            o.push(("IdentitiesOnly".into(), "yes".into()));
        }
        o.push((
            "UserKnownHostsFile".into(),
            self.known_hosts.display().to_string(),
        ));
        o.push(("StrictHostKeyChecking".into(), "yes".into()));
        if let Some(k) = self.keepalive {
            o.push(("ServerAliveInterval".into(), k.as_secs().max(1).to_string()));
        }
        if let Some(a) = &self.host_key_alias {
            o.push(("HostKeyAlias".into(), a.clone()));
        }
        if let Some(j) = &self.jump {
            let mut argv: Vec<String> = vec!["ssh".into()];
            for (k, v) in j.openssh_options() {
                argv.push("-o".into());
                argv.push(format!("{k}={v}"));
            }
            argv.extend(["-W".into(), "%h:%p".into(), j.address.clone()]);
            o.push(("ProxyCommand".into(), net::shell::join(&argv)));
        }
        o
    }

    /// `address:port`, as messages show it.
    pub fn target(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// Opens the TCP connection a session runs on. The default connects from this machine; a lab
/// can connect from inside a network namespace instead.
pub type Connector = Box<dyn Fn(&SshConfig) -> io::Result<TcpStream> + Send + Sync>;

/// The default connector: every address the name resolves to, each within the connect timeout.
pub fn direct(cfg: &SshConfig) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (cfg.address.as_str(), cfg.port)
        .to_socket_addrs()?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, cfg.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

pub(crate) struct Conn {
    pub(crate) sess: Session,
    /// A second handle on the session's socket, to wait for it to become readable.
    pub(crate) tcp: TcpStream,
}

impl Conn {
    /// Acknowledge what arrives at once. sshd leaves Nagle on for sessions without a pty, so
    /// each of its small replies (channel confirmation, exit status, EOF, close) waits for the
    /// ACK of the one before; a delayed ACK (40 ms) per reply would dominate a short command.
    fn quickack(&self) {
        let _ = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true);
    }
}

/// A host reached over SSH.
pub struct Ssh {
    cfg: SshConfig,
    connector: Connector,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Keepalives a peer may leave unanswered before its session counts as dead (OpenSSH's
/// `ServerAliveCountMax` default, which the client options leave as it is).
const SILENT_KEEPALIVES: u32 = 3;

/// Why one attempt failed: the session broke (reconnect and maybe retry) or something else.
enum Failure {
    Broken(String),
    Other(Error),
}

impl Ssh {
    /// Connections go straight to the host, or through its jump ([`SshConfig::jump`]).
    pub fn new(cfg: SshConfig) -> Self {
        let connector: Connector = match &cfg.jump {
            Some(j) => crate::jump::through(j.as_ref().clone()),
            None => Box::new(direct),
        };
        Self::with_connector(cfg, connector)
    }

    pub fn with_connector(cfg: SshConfig, connector: Connector) -> Self {
        Self {
            cfg,
            connector,
            conn: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, step: &'static str, message: impl std::fmt::Display) -> Error {
        Error::Connect {
            host: self.cfg.host.clone(),
            target: self.cfg.target(),
            step,
            message: message.to_string(),
        }
    }

    /// Connect now (if not connected): TCP, handshake, host key, authentication.
    pub fn connect(&self) -> Result<(), Error> {
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        Ok(())
    }

    /// Copy a local file to `remote` on the host (SCP, streamed: a disk image need not fit in
    /// memory), with permissions `mode`. Returns the bytes sent. Written as the SSH user (no
    /// sudo), so `remote` must be writable by it (`/var/tmp`).
    pub fn upload(&self, local: &Path, remote: &Path, mode: i32) -> Result<u64, Error> {
        let file_err = |op: &'static str, path: &Path, e: io::Error| Error::File {
            host: self.cfg.host.clone(),
            op,
            path: path.to_path_buf(),
            source: e,
        };
        let mut f = std::fs::File::open(local).map_err(|e| file_err("read", local, e))?;
        let size = f.metadata().map_err(|e| file_err("read", local, e))?.len();
        self.connect()?;
        let guard = self.lock();
        let conn = guard
            .as_ref()
            .ok_or_else(|| self.err("scp", "not connected"))?;
        let sess = &conn.sess;
        sess.set_blocking(true);
        sess.set_timeout(ms(self.cfg.connect_timeout));
        let mut ch = sess
            .scp_send(remote, mode, size, None)
            .map_err(|e| file_err("write", remote, io::Error::other(e.to_string())))?;
        sess.set_timeout(0);
        let sent = io::copy(&mut f, &mut ch).map_err(|e| file_err("write", remote, e))?;
        let mut finish = || -> Result<(), ssh2::Error> {
            ch.send_eof()?;
            ch.wait_eof()?;
            ch.close()?;
            ch.wait_close()
        };
        let done = finish();
        sess.set_timeout(ms(self.cfg.connect_timeout));
        done.map_err(|e| file_err("write", remote, io::Error::other(e.to_string())))?;
        Ok(sent)
    }

    /// Drop the session (the next command reconnects).
    pub fn disconnect(&self) {
        if let Some(c) = self.lock().take() {
            let _ = c.sess.disconnect(None, "bye", None);
        }
    }

    /// Wait until the host accepts an SSH session (a VM booting or rebooting), retrying with
    /// exponential backoff (0.1 s doubling to 0.5 s: a failed attempt on a booting VM costs
    /// little, and the time it reports is accurate to that) until `within` has passed. Returns
    /// how long it took. Host-key and authentication failures are not retried: they will not go away.
    /// An interrupt ([`crate::cancel`]) ends the wait.
    pub fn wait_reachable(&self, within: Duration) -> Result<Duration, Error> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            self.disconnect();
            match self.connect() {
                Ok(()) => return Ok(start.elapsed()),
                Err(e @ (Error::HostKeyChanged { .. } | Error::HostKeyUnknown { .. })) => {
                    return Err(e);
                }
                // A refused key is final; a machine still booting may time out in the middle
                // of authentication (libssh2's -9), which is worth another try.
                Err(
                    e @ Error::Connect {
                        step: "authentication",
                        ..
                    },
                ) if !e.to_string().contains("Timed out") => return Err(e),
                Err(e) => {
                    if start.elapsed() + delay > within {
                        return Err(self.err(
                            "waiting until reachable",
                            format!("not reachable within {within:?}; last error: {e}"),
                        ));
                    }
                }
            }
            if !crate::cancel::sleep(delay) {
                return Err(Error::Cancelled {
                    host: self.cfg.host.clone(),
                    argv: vec!["(waiting for SSH)".into()],
                });
            }
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    pub(crate) fn open(&self) -> Result<Conn, Error> {
        let tcp = (self.connector)(&self.cfg).map_err(|e| self.err("TCP connect", e))?;
        let _ = tcp.set_nodelay(true);
        let poll_handle = tcp.try_clone().map_err(|e| self.err("TCP connect", e))?;
        let mut sess = Session::new().map_err(|e| self.err("session setup", e))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(ms(self.cfg.connect_timeout));
        sess.handshake().map_err(|e| self.err("SSH handshake", e))?;
        self.check_host_key(&sess)?;
        match &self.cfg.auth {
            Auth::Key(path) => sess.userauth_pubkey_file(&self.cfg.user, None, path, None),
            Auth::Agent => sess.userauth_agent(&self.cfg.user),
        }
        .map_err(|e| {
            self.err(
                "authentication",
                format!(
                    "user {} with {}: {e}",
                    self.cfg.user,
                    describe(&self.cfg.auth)
                ),
            )
        })?;
        if !sess.authenticated() {
            return Err(self.err(
                "authentication",
                format!("user {} was not accepted", self.cfg.user),
            ));
        }
        if let Some(k) = self.cfg.keepalive {
            // With a reply asked for (OpenSSH answers every keepalive), a silent peer shows.
            sess.set_keepalive(true, u32::try_from(k.as_secs()).unwrap_or(15).max(1));
        }
        Ok(Conn {
            sess,
            tcp: poll_handle,
        })
    }

    fn check_host_key(&self, sess: &Session) -> Result<(), Error> {
        let (blob, kind) = sess
            .host_key()
            .ok_or_else(|| self.err("host key", "the server sent no host key"))?;
        let kind = key_type_name(kind);
        let pattern = self.cfg.known_hosts_pattern();
        let offered = known_hosts::fingerprint(blob);
        let known = known_hosts::lookup(&self.cfg.known_hosts, &pattern).map_err(|e| {
            self.err(
                "host key",
                format!("reading {}: {e}", self.cfg.known_hosts.display()),
            )
        })?;
        match known {
            Some((_, known_blob)) if known_blob == blob => Ok(()),
            Some((_, known_blob)) => Err(Error::HostKeyChanged {
                host: self.cfg.host.clone(),
                target: self.cfg.target(),
                known: known_hosts::fingerprint(&known_blob),
                offered,
                known_hosts: self.cfg.known_hosts.clone(),
            }),
            None if self.cfg.trust_on_first_use => {
                known_hosts::record(&self.cfg.known_hosts, &pattern, kind, blob).map_err(|e| {
                    self.err(
                        "host key",
                        format!("writing {}: {e}", self.cfg.known_hosts.display()),
                    )
                })?;
                tracing::info!(host = %self.cfg.host, target = %self.cfg.target(), %offered, "recorded host key (first use)");
                Ok(())
            }
            None => Err(Error::HostKeyUnknown {
                host: self.cfg.host.clone(),
                target: self.cfg.target(),
                offered,
                known_hosts: self.cfg.known_hosts.clone(),
            }),
        }
    }

    /// The remote command line: `sudo -n --` first when needed, every word quoted.
    pub fn command_line(&self, argv: &[String]) -> String {
        if self.cfg.sudo && self.cfg.user != "root" {
            let mut v = vec!["sudo".to_string(), "-n".into(), "--".into()];
            v.extend(argv.iter().cloned());
            net::shell::join(&v)
        } else {
            net::shell::join(argv)
        }
    }

    /// Run `cmd`, reconnecting first if the session is gone. When the session breaks during
    /// the command, it is dropped (the next command reconnects) and, for commands marked safe
    /// to repeat, run once more on a fresh session.
    fn run_with(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Status, Error> {
        let attempts = if cmd.retry_safe { 2 } else { 1 };
        let mut last = String::new();
        for _ in 0..attempts {
            let mut guard = self.lock();
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let conn = guard.as_ref().expect("connected above");
            match self.exec(conn, cmd, sink) {
                Ok(status) => return Ok(status),
                Err(Failure::Other(e)) => return Err(e),
                Err(Failure::Broken(msg)) => {
                    *guard = None;
                    last = msg;
                }
            }
        }
        Err(Error::SessionLost {
            host: self.cfg.host.clone(),
            target: self.cfg.target(),
            argv: cmd.argv.clone(),
            message: last,
        })
    }

    fn exec(
        &self,
        conn: &Conn,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Status, Failure> {
        let sess = &conn.sess;
        let broken = |e: &dyn std::fmt::Display| Failure::Broken(e.to_string());
        sess.set_blocking(true);
        sess.set_timeout(ms(self.cfg.connect_timeout));
        let mut ch = sess.channel_session().map_err(|e| broken(&e))?;
        ch.exec(&self.command_line(&cmd.argv))
            .map_err(|e| broken(&e))?;
        if let Some(input) = &cmd.stdin {
            // No limit on a large upload: the remote reads as fast as it can.
            sess.set_timeout(0);
            ch.write_all(input).map_err(|e| broken(&e))?;
        }
        ch.send_eof().map_err(|e| broken(&e))?;

        let start = Instant::now();
        // When the peer last sent anything: after SILENT_KEEPALIVES keepalives without an
        // answer the session is dead (OpenSSH's ServerAliveCountMax), also where TCP cannot
        // tell (a jump's channel to a VM that stopped answering).
        let mut heard = Instant::now();
        sess.set_blocking(false);
        let mut buf = vec![0u8; 64 * 1024];
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            conn.quickack();
            let mut progressed = false;
            for (stream, open) in [
                (Stream::Stdout, &mut out_open),
                (Stream::Stderr, &mut err_open),
            ] {
                if !*open {
                    continue;
                }
                let read = match stream {
                    Stream::Stdout => ch.read(&mut buf),
                    Stream::Stderr => ch.stderr().read(&mut buf),
                };
                match read {
                    Ok(0) => {
                        if ch.eof() {
                            *open = false;
                        }
                    }
                    Ok(n) => {
                        sink(stream, &buf[..n]);
                        progressed = true;
                        heard = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        sess.set_blocking(true);
                        return Err(broken(&e));
                    }
                }
            }
            if let Some(limit) = cmd.timeout
                && start.elapsed() > limit
            {
                sess.set_blocking(true);
                sess.set_timeout(1000);
                let _ = ch.close();
                return Err(Failure::Other(Error::Timeout {
                    host: self.cfg.host.clone(),
                    argv: cmd.argv.clone(),
                    after: limit,
                }));
            }
            if cmd.cancellable && crate::cancel::requested() {
                sess.set_blocking(true);
                sess.set_timeout(1000);
                let _ = ch.close();
                return Err(Failure::Other(Error::Cancelled {
                    host: self.cfg.host.clone(),
                    argv: cmd.argv.clone(),
                }));
            }
            if !progressed && (out_open || err_open) {
                // Wait for the socket (or a keepalive tick) instead of spinning.
                // Sends a keepalive when one is due (no-op when keepalive is off).
                let _ = sess.keepalive_send();
                let mut fds = [PollFd::new(conn.tcp.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(50u8));
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN))
                {
                    heard = Instant::now();
                }
                if let Some(k) = self.cfg.keepalive
                    && heard.elapsed() > k.max(Duration::from_secs(1)) * (SILENT_KEEPALIVES + 1)
                {
                    sess.set_blocking(true);
                    sess.set_timeout(1000);
                    return Err(Failure::Broken(format!(
                        "no answer to {SILENT_KEEPALIVES} keepalives in {:.0?}",
                        heard.elapsed()
                    )));
                }
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
                    && !ch.eof()
                {
                    // Readable data is still drained above; a hang-up with nothing left is a break.
                    let mut probe = [0u8; 1];
                    if matches!(ch.read(&mut probe), Err(ref e) if e.kind() != io::ErrorKind::WouldBlock)
                    {
                        sess.set_blocking(true);
                        return Err(Failure::Broken("the connection was closed".into()));
                    }
                }
            }
        }
        sess.set_blocking(true);
        sess.set_timeout(ms(self.cfg.connect_timeout));
        conn.quickack();
        ch.wait_close().map_err(|e| broken(&e))?;
        let signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
        if let Some(sig) = signal {
            return Ok(Status::Signal(signal_number(&sig)));
        }
        let code = ch.exit_status().map_err(|e| broken(&e))?;
        Ok(Status::Code(code))
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn describe(a: &Auth) -> String {
    match a {
        Auth::Key(p) => format!("key {}", p.display()),
        Auth::Agent => "the ssh-agent".into(),
    }
}

fn key_type_name(k: HostKeyType) -> &'static str {
    match k {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// A signal's number from its name as SSH reports it (`KILL`, `TERM`); 0 when unknown.
fn signal_number(name: &str) -> i32 {
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map_or(0, |s| s as i32)
}

/// Upload: write to a temp file beside the target, set mode (and owner), rename over it. The
/// script is constant; paths and modes arrive as positional arguments, never spliced in.
const PUT_SCRIPT: &str = r#"set -e
tmp="$(dirname -- "$1")/.lab-put.$$"
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chmod "$2" "$tmp"
if [ -n "$3" ]; then chown "$3" "$tmp"; fi
mv -f -- "$tmp" "$1"
trap - EXIT"#;

impl Exec for Ssh {
    fn host(&self) -> &str {
        &self.cfg.host
    }

    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self.run_with(cmd, &mut |s, b| match s {
            Stream::Stdout => stdout.extend_from_slice(b),
            Stream::Stderr => stderr.extend_from_slice(b),
        })?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Status, Error> {
        let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let status = self.run_with(cmd, &mut |s, bytes| {
            let k = usize::from(s == Stream::Stderr);
            partial[k].extend_from_slice(bytes);
            while let Some(pos) = partial[k].iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial[k].drain(..=pos).collect();
                on_line(s, String::from_utf8_lossy(&line[..line.len() - 1]).as_ref());
            }
        })?;
        for (k, s) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !partial[k].is_empty() {
                on_line(s, String::from_utf8_lossy(&partial[k]).as_ref());
            }
        }
        Ok(status)
    }

    fn run_bytes(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Status, Error> {
        self.run_with(cmd, sink)
    }

    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error> {
        let owner = mode
            .owner
            .map_or_else(String::new, |(u, g)| format!("{u}:{g}"));
        let argv = vec![
            "sh".to_string(),
            "-c".into(),
            PUT_SCRIPT.into(),
            "lab-put".into(),
            path.display().to_string(),
            format!("{:o}", mode.mode),
            owner,
        ];
        let out = self.run(&Command::new(argv).stdin(contents.to_vec()).retry_safe())?;
        if out.success() {
            Ok(())
        } else {
            Err(Error::File {
                host: self.cfg.host.clone(),
                op: "write",
                path: path.to_path_buf(),
                source: io::Error::other(out.stderr_lossy().trim().to_string()),
            })
        }
    }

    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error> {
        let out =
            self.run(&Command::new(["cat", "--", &path.display().to_string()]).retry_safe())?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(Error::File {
                host: self.cfg.host.clone(),
                op: "read",
                path: path.to_path_buf(),
                source: io::Error::other(out.stderr_lossy().trim().to_string()),
            })
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// `ssh-keygen` making an ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn keygen(path: &std::path::Path, comment: &str) -> crate::Command {
    crate::Command::new([
        "ssh-keygen".to_string(),
        "-q".into(),
        "-t".into(),
        "ed25519".into(),
        "-N".into(),
        String::new(),
        "-C".into(),
        comment.into(),
        "-f".into(),
        path.display().to_string(),
    ])
}
