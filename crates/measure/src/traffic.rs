//! One MPTCP transfer from a client namespace to a server namespace, measured on every side:
//! goodput per second at the receiver, the connection's subflows (MPTCP_INFO), the kernel's MIB
//! counters in both namespaces, and bytes per interface per second on both hosts (what the
//! guide's ifstat shows).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use guest::{Command, Exec};
use netns::Namespace;
use netns::rtnl::Rtnl;
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::mib::{self, Mib};
use crate::mptcp_info::{self, MptcpInfo};
use crate::{Error, iperf3};

/// Which traffic generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// lab's own sender/receiver on IPPROTO_MPTCP sockets.
    Builtin,
    /// `mptcpize run iperf3`, as in the guide.
    Iperf3,
    /// The built-in sender on plain TCP sockets: the one-path baseline.
    Tcp,
}

/// Where a side of the transfer lives.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// A network namespace on this machine: sockets, netlink and /proc directly.
    Netns(&'a Namespace),
    /// A host reached through the command seam (SSH): `run` carries the commands, `sample` is
    /// a second session that reads counters while a command runs on the first.
    Remote {
        run: &'a dyn Exec,
        sample: &'a dyn Exec,
    },
}

impl std::fmt::Debug for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Netns(ns) => write!(f, "Netns({})", ns.name()),
            Place::Remote { run, .. } => write!(f, "Remote({})", run.host()),
        }
    }
}

/// One side of the transfer: a host and the interfaces to count.
#[derive(Debug)]
pub struct Side<'a> {
    pub host: &'a str,
    pub place: Place<'a>,
    pub interfaces: Vec<String>,
}

impl Side<'_> {
    fn ns(&self) -> Result<&Namespace, Error> {
        match self.place {
            Place::Netns(ns) => Ok(ns),
            Place::Remote { .. } => Err(Error::NeedsNamespace(self.host.to_string())),
        }
    }

    /// Run `f` with the command seam of this side (`ip netns exec`, or the remote session).
    fn with_exec<R>(&self, f: impl FnOnce(&dyn Exec) -> R) -> R {
        match self.place {
            Place::Netns(ns) => f(&guest::Netns::new(self.host, ns.name())),
            Place::Remote { run, .. } => f(run),
        }
    }

    /// A command's stdout on the sampling session (or, in a namespace, the command seam).
    fn sample_output(&self, argv: &[&str]) -> Result<String, Error> {
        let cmd = Command::new(argv.iter().copied()).retry_safe();
        let out = match self.place {
            Place::Netns(ns) => guest::Netns::new(self.host, ns.name()).check(&cmd),
            Place::Remote { sample, .. } => sample.check(&cmd),
        };
        out.map(|o| o.stdout_lossy())
            .map_err(|e| Error::Command(Box::new(e)))
    }
}

/// Something to do during the transfer, `at` after it starts (a link taken down).
pub struct Event<'a> {
    pub at: Duration,
    pub label: String,
    pub action: Box<dyn FnOnce() -> Result<(), String> + Send + 'a>,
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("at", &self.at)
            .field("label", &self.label)
            .finish()
    }
}

#[derive(Debug)]
pub struct Spec {
    /// The server address the client connects to (IPv4 or IPv6; the client's socket is of
    /// its family).
    pub dst: IpAddr,
    pub duration: Duration,
    pub tool: Tool,
    /// TCP congestion control for the built-in sender's socket (`TCP_CONGESTION`, applied to
    /// every subflow); `None` keeps the namespace's default.
    pub congestion: Option<String>,
}

/// Bytes an interface carried: totals and per second.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct IfaceBytes {
    pub host: String,
    pub iface: String,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// tx + rx per second of the transfer, in bit/s.
    pub per_second_bps: Vec<f64>,
    /// When the first sample was read, in ns since the epoch on this machine's clock (a
    /// remote host's own time moved by its measured offset): the start of `per_second_bps`.
    #[serde(default)]
    pub start_ns: u64,
    /// A host with a clock of its own (reached over SSH): its offset from this machine's and
    /// the uncertainty of that offset, which is the uncertainty of `start_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
}

/// A host's clock against this machine's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Clock {
    /// The host's time minus this machine's, ns.
    pub offset_ns: i64,
    /// Half the round trip of the best of five `date` calls, ns.
    pub error_ns: u64,
}

fn epoch_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0))
}

impl IfaceBytes {
    pub fn bytes(&self) -> u64 {
        self.tx_bytes + self.rx_bytes
    }
}

/// What happened during one transfer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub tool: Tool,
    /// Congestion control of the sender, when set (else the namespace's default).
    pub congestion: Option<String>,
    /// The client's command line, when the tool is a program (iperf3).
    pub command: Option<Vec<String>>,
    pub seconds: f64,
    /// Application bytes the receiver got.
    pub bytes: u64,
    pub goodput_bps: f64,
    pub per_second_bps: Vec<f64>,
    /// Where `per_second_bps`'s first second begins, in ns since the epoch on this machine's
    /// clock (the clock of [`IfaceBytes::start_ns`]): the built-in receiver's first byte, or
    /// the moment lab launched iperf3's client (0: not known).
    #[serde(default)]
    pub goodput_start_ns: u64,
    /// How far the transfer's real start may lie after `goodput_start_ns`: 0 for the built-in
    /// receiver (this process's clock); for iperf3, the round trip of a whole command on the
    /// client's host, measured just before (what launching the client over its seam may take).
    #[serde(default)]
    pub goodput_start_error_ns: u64,
    /// Most subflows seen at once (MPTCP_INFO; builtin only).
    pub subflows_max: Option<u8>,
    /// Subflows at the end of the transfer (MPTCP_INFO; builtin only).
    pub subflows_end: Option<u8>,
    /// MPTCP connections the server accepted (MPCapableSYNRX): iperf3 opens two, a control
    /// connection and the data connection.
    pub connections: u64,
    /// Subflows per connection from the server's MIB: the initial one plus MPJoinAckRx shared
    /// out over the connections.
    pub subflows_mib: u64,
    /// The connection fell back to TCP.
    pub fallback: bool,
    /// The transfer ran to the end without a socket error.
    pub survived: bool,
    pub error: Option<String>,
    /// Every `MPTcpExt` counter's increase on the server over the transfer.
    pub server_mib: std::collections::BTreeMap<String, u64>,
    /// The same on the client.
    pub client_mib: std::collections::BTreeMap<String, u64>,
    pub interfaces: Vec<IfaceBytes>,
    pub events: Vec<String>,
}

/// Run one transfer from `client` to `server`, with `events` along the way. The built-in
/// sender needs both sides in namespaces on this machine; iperf3 runs anywhere.
pub fn run(
    spec: &Spec,
    server: &Side<'_>,
    client: &Side<'_>,
    events: Vec<Event<'_>>,
) -> Result<Report, Error> {
    if spec.tool != Tool::Iperf3 {
        server.ns()?;
        client.ns()?;
    }
    let mib_before = (read_mib(server)?, read_mib(client)?);
    let probes = [Probe::open(server)?, Probe::open(client)?];
    let stop = AtomicBool::new(false);
    let (outcome, interfaces, events) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample(probes, &stop));
        let start = Instant::now();
        let event_log = s.spawn(move || run_events(start, events));
        let outcome = match spec.tool {
            Tool::Builtin => builtin(spec, server, client, start, Protocol::MPTCP),
            Tool::Tcp => builtin(spec, server, client, start, Protocol::TCP),
            Tool::Iperf3 => iperf3_transfer(spec, server, client),
        };
        stop.store(true, Ordering::Relaxed);
        let interfaces = sampler.join().unwrap_or_default();
        let events = event_log.join().unwrap_or_default();
        (outcome, interfaces, events)
    });
    if guest::cancel::requested() {
        return Err(Error::Interrupted);
    }
    let outcome = outcome?;
    let server_mib = read_mib(server)?.since(&mib_before.0);
    let client_mib = read_mib(client)?.since(&mib_before.1);
    let seconds = outcome.seconds;
    Ok(Report {
        tool: spec.tool,
        congestion: spec.congestion.clone(),
        command: outcome.command.clone(),
        seconds,
        bytes: outcome.bytes,
        goodput_bps: if seconds > 0.0 {
            outcome.bytes as f64 * 8.0 / seconds
        } else {
            0.0
        },
        per_second_bps: outcome.per_second_bps,
        goodput_start_ns: outcome.start_ns,
        goodput_start_error_ns: outcome.start_error_ns,
        subflows_max: outcome.info_max.map(|i| i.subflows),
        subflows_end: outcome.info_end.map(|i| i.subflows),
        connections: server_mib.get("MPCapableSYNRX"),
        subflows_mib: 1 + server_mib.get("MPJoinAckRx") / server_mib.get("MPCapableSYNRX").max(1),
        fallback: spec.tool != Tool::Tcp
            && (outcome.info_end.is_some_and(|i| i.fallback)
                || server_mib.get("MPCapableSYNRX") == 0),
        survived: outcome.error.is_none(),
        error: outcome.error,
        server_mib: server_mib.0,
        client_mib: client_mib.0,
        interfaces,
        events,
    })
}

fn read_mib(side: &Side<'_>) -> Result<Mib, Error> {
    match side.place {
        Place::Netns(ns) => ns
            .run(mib::read_here)?
            .map_err(|e| Error::io("reading /proc/net/netstat", e)),
        Place::Remote { .. } => Ok(Mib::parse(
            &side.sample_output(&["cat", "/proc/net/netstat"])?,
        )),
    }
}

/// How long after the transfer's time the receiver waits for the end of the data.
const RECEIVE_GRACE: Duration = Duration::from_secs(15);

fn run_events(start: Instant, mut events: Vec<Event<'_>>) -> Vec<String> {
    events.sort_by_key(|e| e.at);
    let mut log = Vec::new();
    for e in events {
        let wait = e.at.saturating_sub(start.elapsed());
        if !guest::cancel::sleep(wait) {
            // Interrupted: no event happens after that (no link goes down during the clean-up).
            log.push(format!("{}: not run (interrupted)", e.label));
            continue;
        }
        let at = start.elapsed().as_secs_f64();
        match (e.action)() {
            Ok(()) => log.push(format!("{at:.1}s: {}", e.label)),
            Err(err) => log.push(format!("{at:.1}s: {} failed: {err}", e.label)),
        }
    }
    log
}

struct Outcome {
    /// The client's command line, for tools run as a process.
    command: Option<Vec<String>>,
    bytes: u64,
    seconds: f64,
    per_second_bps: Vec<f64>,
    /// Where `per_second_bps` begins on this machine's clock (ns since the epoch), and how much
    /// later it may really begin.
    start_ns: u64,
    start_error_ns: u64,
    info_max: Option<MptcpInfo>,
    info_end: Option<MptcpInfo>,
    error: Option<String>,
}

const CHUNK: usize = 128 * 1024;

fn stream_socket(domain: Domain, proto: Protocol) -> Result<Socket, Error> {
    Socket::new(domain, Type::STREAM, Some(proto)).map_err(|e| {
        if matches!(
            e.raw_os_error(),
            Some(libc::EPROTONOSUPPORT) | Some(libc::ENOPROTOOPT)
        ) {
            Error::NoMptcp
        } else {
            Error::io("creating an MPTCP socket", e)
        }
    })
}

fn builtin(
    spec: &Spec,
    server: &Side<'_>,
    client: &Side<'_>,
    start: Instant,
    proto: Protocol,
) -> Result<Outcome, Error> {
    // The receiver listens on `::` for both families, as mptcp_join.sh's listener does: an
    // IPv6 connection can then take IPv4 joins (v4-mapped). With IPv4 only, an IPv4 socket.
    let v4_only = spec.dst.is_ipv4();
    let listener: TcpListener = server.ns()?.run(|| -> Result<TcpListener, Error> {
        let dual = stream_socket(Domain::IPV6, proto).and_then(|s| {
            s.set_only_v6(false)
                .map_err(|e| Error::io("IPV6_V6ONLY", e))?;
            Ok(s)
        });
        let (s, any) = match dual {
            Ok(s) => (s, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
            Err(_) if v4_only => (
                stream_socket(Domain::IPV4, proto)?,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            ),
            Err(e) => return Err(e),
        };
        s.set_reuse_address(true)
            .map_err(|e| Error::io("SO_REUSEADDR", e))?;
        s.bind(&any.into())
            .map_err(|e| Error::io("binding the receiver", e))?;
        s.listen(1).map_err(|e| Error::io("listening", e))?;
        Ok(s.into())
    })??;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("reading the receiver's port", e))?
        .port();

    // The receiver gives up when the end of the data has not come well after the transfer's
    // time (a connection whose last path died would otherwise hold the test for ever).
    let give_up = spec.duration + RECEIVE_GRACE;
    type Received = (u64, Vec<u64>, f64, Option<String>, u64);
    let receiver = std::thread::spawn(move || -> Result<Received, String> {
        let (mut conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
        let t0 = Instant::now();
        let t0_ns = u64::try_from(epoch_ns()).unwrap_or(0);
        let mut bins: Vec<u64> = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if guest::cancel::requested() {
                        let why = "receive: interrupted".to_string();
                        return Ok((total, bins, t0.elapsed().as_secs_f64(), Some(why), t0_ns));
                    }
                    if t0.elapsed() > give_up {
                        let why = format!(
                            "receive: the data did not end within {} s of the transfer's {} s (no DATA_FIN: the connection lost its paths)",
                            RECEIVE_GRACE.as_secs(),
                            give_up.saturating_sub(RECEIVE_GRACE).as_secs()
                        );
                        return Ok((total, bins, t0.elapsed().as_secs_f64(), Some(why), t0_ns));
                    }
                }
                Ok(n) => {
                    total += n as u64;
                    let bin = t0.elapsed().as_secs() as usize;
                    if bins.len() <= bin {
                        bins.resize(bin + 1, 0);
                    }
                    bins[bin] += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        Ok((total, bins, t0.elapsed().as_secs_f64(), None, t0_ns))
    });

    let dst = SocketAddr::new(spec.dst, port);
    let sock = client
        .ns()?
        .run(|| stream_socket(Domain::for_address(dst), proto))??;
    if let Some(cc) = &spec.congestion {
        sock.set_tcp_congestion(cc.as_bytes())
            .map_err(|e| Error::io(format!("setting congestion control {cc}"), e))?;
    }
    sock.connect_timeout(&dst.into(), Duration::from_secs(5))
        .map_err(|e| Error::io(format!("connecting to {dst}"), e))?;
    sock.set_write_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| Error::io("SO_SNDTIMEO", e))?;
    let mut stream: TcpStream = sock.into();
    let chunk = vec![0x5au8; CHUNK];
    let mut info_max: Option<MptcpInfo> = None;
    let mut last_info = Instant::now() - Duration::from_secs(1);
    let mut error = None;
    let deadline = start + spec.duration;
    while Instant::now() < deadline && !guest::cancel::requested() {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                error = Some(format!("send: {e}"));
                break;
            }
        }
        if last_info.elapsed() >= Duration::from_millis(100) {
            last_info = Instant::now();
            if let Ok(Some(i)) = mptcp_info::read(&stream) {
                info_max = Some(match info_max {
                    Some(m) if m.subflows >= i.subflows => m,
                    _ => i,
                });
            }
        }
    }
    let info_end = mptcp_info::read(&stream).ok().flatten();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let received = receiver.join().map_err(|_| Error::Panicked)?;
    drop(stream);
    let (bytes, bins, seconds, start_ns) = match received {
        Ok((bytes, bins, seconds, late, start_ns)) => {
            if let Some(e) = late {
                error.get_or_insert(e);
            }
            (bytes, bins, seconds, start_ns)
        }
        Err(e) => {
            error.get_or_insert(e);
            (0, Vec::new(), spec.duration.as_secs_f64(), 0)
        }
    };
    // A last bin shorter than half a second says little per second; its bytes stay in the total.
    let mut per_second_bps: Vec<f64> = bins.iter().map(|b| *b as f64 * 8.0).collect();
    if seconds - seconds.floor() < 0.5 && per_second_bps.len() > seconds.floor() as usize {
        per_second_bps.pop();
    }
    Ok(Outcome {
        command: None,
        bytes,
        seconds,
        per_second_bps,
        start_ns,
        start_error_ns: 0,
        info_max,
        info_end,
        error,
    })
}

fn iperf3_transfer(spec: &Spec, server: &Side<'_>, client: &Side<'_>) -> Result<Outcome, Error> {
    let port = free_port(server)?;
    let secs = spec.duration.as_secs().max(1).to_string();
    let cmd_err = |e| Error::Command(Box::new(e));
    let asked = Instant::now();
    let version = client
        .with_exec(|x| {
            x.check(&Command::new(["iperf3", "--version"]).timeout(Duration::from_secs(10)))
        })
        .map_err(cmd_err)?;
    // A whole command's round trip on the client's host: the most launching the client can
    // add before iperf3 runs.
    let round_trip = asked.elapsed();
    let version = iperf3::version(&version.stdout_lossy());
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let server_cmd = Command::new(iperf3::mptcp_argv(
        version,
        &words(&["-s", "-1", "-J", "-p", &port.to_string()]),
    ))
    .timeout(spec.duration + Duration::from_secs(30))
    .cancellable();
    let mut args = words(&[
        "-c",
        &spec.dst.to_string(),
        "-p",
        &port.to_string(),
        "-t",
        &secs,
        "-J",
    ]);
    if let Some(cc) = &spec.congestion {
        args.extend(["-C".to_string(), cc.clone()]);
    }
    let client_argv = iperf3::mptcp_argv(version, &args);
    let launched = std::sync::atomic::AtomicU64::new(0);
    let (out, srv) = std::thread::scope(|s| {
        let srv = s.spawn(|| server.with_exec(|x| x.run(&server_cmd)));
        let out = wait_listening(server, port, Duration::from_secs(10)).and_then(|()| {
            launched.store(u64::try_from(epoch_ns()).unwrap_or(0), Ordering::Relaxed);
            client
                .with_exec(|x| {
                    x.check(
                        &Command::new(client_argv.clone())
                            .timeout(spec.duration + Duration::from_secs(30))
                            .cancellable(),
                    )
                })
                .map_err(cmd_err)
        });
        (out, srv.join())
    });
    let srv = srv.map_err(|_| Error::Panicked)?;
    let out = out?;
    srv.map_err(cmd_err)?;
    let parsed = iperf3::parse(&out.stdout_lossy())?;
    Ok(Outcome {
        command: Some(client_argv),
        bytes: parsed.bytes_received,
        seconds: parsed.seconds,
        per_second_bps: parsed.per_second_bps,
        start_ns: launched.load(Ordering::Relaxed),
        start_error_ns: u64::try_from(round_trip.as_nanos()).unwrap_or(u64::MAX),
        info_max: None,
        info_end: None,
        error: parsed.error,
    })
}

/// The TCP listening table (`/proc/net/tcp` and `tcp6`) of a side.
fn tcp_table(side: &Side<'_>) -> Result<String, Error> {
    match side.place {
        Place::Netns(ns) => ns
            .run(|| {
                let v4 = std::fs::read_to_string("/proc/thread-self/net/tcp")?;
                let v6 = std::fs::read_to_string("/proc/thread-self/net/tcp6").unwrap_or_default();
                Ok::<_, std::io::Error>(v4 + &v6)
            })?
            .map_err(|e| Error::io("reading /proc/net/tcp", e)),
        Place::Remote { .. } => side.sample_output(&["cat", "/proc/net/tcp", "/proc/net/tcp6"]),
    }
}

/// Local ports in state LISTEN (0A) of a `/proc/net/tcp` table.
fn listening_ports(table: &str) -> Vec<u16> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 3 && f[3] == "0A" {
                let port = f[1].rsplit(':').next()?;
                u16::from_str_radix(port, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

/// A port nothing listens on: in a namespace, bound and released; on a remote host, one not in
/// its listening table.
fn free_port(side: &Side<'_>) -> Result<u16, Error> {
    match side.place {
        Place::Netns(ns) => ns
            .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|l| l.local_addr()))?
            .map(|a| a.port())
            .map_err(|e| Error::io("finding a free port", e)),
        Place::Remote { .. } => {
            let taken = listening_ports(&tcp_table(side)?);
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            (0..1000u32)
                .map(|k| 20_000 + ((seed / 7 + k * 7919) % 40_000) as u16)
                .find(|p| !taken.contains(p))
                .ok_or_else(|| Error::io("finding a free port", std::io::Error::other("none free")))
        }
    }
}

/// Wait until something listens on `port` (a TCP listener, state 0A; an MPTCP listener has
/// one; iperf3 listens on `::`, so both tables count).
fn wait_listening(side: &Side<'_>, port: u16, within: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    loop {
        if listening_ports(&tcp_table(side)?).contains(&port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::NotListening { port });
        }
        if guest::cancel::requested() {
            return Err(Error::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a side's byte counters are read.
enum Probe<'a> {
    Netlink(Rtnl, String, Vec<String>),
    Remote(Side<'a>, Clock),
}

impl<'a> Probe<'a> {
    fn open(side: &Side<'a>) -> Result<Self, Error> {
        Ok(match side.place {
            Place::Netns(ns) => Probe::Netlink(
                ns.run(Rtnl::open)??,
                side.host.to_string(),
                side.interfaces.clone(),
            ),
            Place::Remote { .. } => {
                let side = Side {
                    host: side.host,
                    place: side.place,
                    interfaces: side.interfaces.clone(),
                };
                // The host's clock against this machine's: the best of five round trips.
                let mut best: Option<Clock> = None;
                for _ in 0..5 {
                    let t0 = epoch_ns();
                    let out = side.sample_output(&["date", "+%s%N"]).unwrap_or_default();
                    let t1 = epoch_ns();
                    if let Ok(remote) = out.trim().parse::<i128>() {
                        let c = Clock {
                            offset_ns: i64::try_from(remote - (t0 + t1) / 2).unwrap_or(0),
                            error_ns: u64::try_from((t1 - t0) / 2).unwrap_or(u64::MAX),
                        };
                        if best.is_none_or(|b| c.error_ns < b.error_ns) {
                            best = Some(c);
                        }
                    }
                }
                Probe::Remote(side, best.unwrap_or_default())
            }
        })
    }

    fn host(&self) -> &str {
        match self {
            Probe::Netlink(_, h, _) => h,
            Probe::Remote(s, _) => s.host,
        }
    }

    fn interfaces(&self) -> &[String] {
        match self {
            Probe::Netlink(_, _, i) => i,
            Probe::Remote(s, _) => &s.interfaces,
        }
    }

    /// (tx, rx) bytes per interface (zeros where unreadable), and when they were read, in
    /// seconds on the probe's own clock: this machine's (`t0`), or the remote host's, read
    /// in the same command as the counters, so that a slow session does not stretch or
    /// shift the seconds they are counted in.
    fn read(&mut self, t0: Instant) -> (Vec<(u64, u64)>, f64) {
        match self {
            Probe::Netlink(rt, _, ifaces) => {
                let links = rt.links().unwrap_or_default();
                let at = t0.elapsed().as_secs_f64();
                let v = ifaces
                    .iter()
                    .map(|i| {
                        links
                            .iter()
                            .find(|l| l.name == *i)
                            .map_or((0, 0), |l| (l.tx_bytes, l.rx_bytes))
                    })
                    .collect();
                (v, at)
            }
            Probe::Remote(side, _) => {
                let paths: Vec<String> = side
                    .interfaces
                    .iter()
                    .flat_map(|i| {
                        [
                            format!("/sys/class/net/{i}/statistics/tx_bytes"),
                            format!("/sys/class/net/{i}/statistics/rx_bytes"),
                        ]
                    })
                    .collect();
                // The host's time first, then the counters, in one command.
                let mut argv = vec!["sh", "-c", "date +%s%N && cat \"$@\"", "sh"];
                argv.extend(paths.iter().map(String::as_str));
                let sent = t0.elapsed().as_secs_f64();
                let text = side.sample_output(&argv).unwrap_or_default();
                let mut lines = text.lines();
                let at = lines
                    .next()
                    .and_then(|l| l.trim().parse::<u128>().ok())
                    .map_or(sent, |ns| ns as f64 / 1e9);
                let nums: Vec<u64> = lines.filter_map(|l| l.trim().parse().ok()).collect();
                let v = (0..side.interfaces.len())
                    .map(|k| {
                        (
                            nums.get(2 * k).copied().unwrap_or(0),
                            nums.get(2 * k + 1).copied().unwrap_or(0),
                        )
                    })
                    .collect();
                (v, at)
            }
        }
    }
}

/// Sample every interface's byte counters once per second until `stop`.
fn sample(mut probes: [Probe<'_>; 2], stop: &AtomicBool) -> Vec<IfaceBytes> {
    let t0 = Instant::now();
    // Each interface's counters, and the time its probe read them (on the probe's clock).
    let read = |probes: &mut [Probe<'_>; 2]| -> (Vec<(u64, u64)>, Vec<f64>) {
        let mut v = Vec::new();
        let mut at = Vec::new();
        for p in probes.iter_mut() {
            let (counters, t) = p.read(t0);
            at.extend(std::iter::repeat_n(t, counters.len()));
            v.extend(counters);
        }
        (v, at)
    };
    let t0_epoch = epoch_ns() - i128::try_from(t0.elapsed().as_nanos()).unwrap_or(0);
    let (first, mut prev_at) = read(&mut probes);
    // Each interface's first sample on this machine's clock: a remote host's own time less
    // its offset; a namespace's, this machine's.
    let first_at = prev_at.clone();
    let mut prev = first.clone();
    let mut per_second: Vec<Vec<f64>> = vec![Vec::new(); first.len()];
    let mut tick = 1u32;
    loop {
        let next = t0 + Duration::from_secs(u64::from(tick));
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (now, at) = read(&mut probes);
        let stopped = stop.load(Ordering::Relaxed);
        for (k, ((tx, rx), (ptx, prx))) in now.iter().zip(&prev).enumerate() {
            let d = (tx.saturating_sub(*ptx) + rx.saturating_sub(*prx)) as f64;
            // The seconds between this interface's two reads, on its probe's clock.
            let span = (at[k] - prev_at[k]).max(1e-3);
            // A final partial second is kept only when it is most of a second.
            if !stopped || span >= 0.5 {
                per_second[k].push(d * 8.0 / span);
            }
        }
        prev = now;
        prev_at = at;
        tick += 1;
        if stopped {
            break;
        }
    }
    let mut out = Vec::new();
    let mut k = 0;
    for p in &probes {
        let clock = match p {
            Probe::Remote(_, c) => Some(*c),
            Probe::Netlink(..) => None,
        };
        for i in p.interfaces() {
            let start = match clock {
                Some(c) => (first_at[k] * 1e9) as i128 - i128::from(c.offset_ns),
                None => t0_epoch + (first_at[k] * 1e9) as i128,
            };
            out.push(IfaceBytes {
                host: p.host().to_string(),
                iface: i.clone(),
                tx_bytes: prev[k].0.saturating_sub(first[k].0),
                rx_bytes: prev[k].1.saturating_sub(first[k].1),
                per_second_bps: std::mem::take(&mut per_second[k]),
                start_ns: u64::try_from(start.max(0)).unwrap_or(0),
                clock,
            });
            k += 1;
        }
    }
    out
}
