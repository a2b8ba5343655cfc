//! Packet capture on lab's namespace hosts, without libpcap or tshark: an AF_PACKET socket
//! opened inside the host's network namespace, a classic BPF filter that keeps the asked
//! interfaces' TCP over IPv4 and IPv6 (both directions), a snap length that keeps every TCP
//! option, kernel timestamps in nanoseconds, and the socket's drop counter (`SO_RXQ_OVFL`).
//! [`pcapng`] writes what was captured in the format Wireshark opens.
//!
//! ```no_run
//! # fn main() -> Result<(), capture::Error> {
//! let ns = netns::Namespace::open("lab.mptcp.ue2")?;
//! let running = capture::start(&ns, "ue2", &["enp0s8".into(), "enp0s9".into()], 256)?;
//! std::thread::sleep(std::time::Duration::from_secs(2));
//! let got = running.stop()?;
//! let bytes = capture::pcapng::file("lab capture", &got.interfaces, &got.frames);
//! std::fs::write("capture.pcapng", bytes).unwrap();
//! # Ok(()) }
//! ```

pub mod monitor;
pub mod pcapng;
pub mod remote;

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{self, ControlMessageOwned, LinkAddr, MsgFlags, sockopt};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// Enough of a frame for every header and TCP option: Ethernet 14, IPv6 40 (or IPv4 up to 60),
/// TCP up to 60, with room to spare.
pub const DEFAULT_SNAPLEN: u32 = 256;

/// Why a capture could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Namespace(#[from] netns::Error),
    #[error("{host}: no interface `{iface}` to capture on")]
    NoInterface { host: String, iface: String },
    #[error("{host}: {what}: {source}")]
    Socket {
        host: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: the capture thread panicked")]
    Panicked { host: String },
}

/// A capture running in one namespace.
#[derive(Debug)]
pub struct Running {
    host: String,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Result<Captured, Error>, netns::Error>>,
}

/// What a capture got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// `host:iface`, in the order asked, with their counts.
    pub interfaces: Vec<pcapng::Interface>,
    /// In time order, on this machine's clock.
    pub frames: Vec<pcapng::Frame>,
    /// Hosts with a clock of their own (reached over SSH) and how it compared with this
    /// machine's; namespaces share this machine's clock and are not listed.
    pub clocks: Vec<(String, Clock)>,
}

/// A host's clock against this machine's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    /// The host's time minus this machine's, in nanoseconds (subtracted from its timestamps).
    pub offset_ns: i64,
    /// How far off that offset may be: half the round trip of the measurement.
    pub error_ns: u64,
}

/// The filter: the interfaces `ifindexes`, then Ethernet type IPv4 or IPv6, then TCP; the
/// whole frame is kept (the snap length is applied when reading, so the wire length is
/// known).
///
/// ```
/// let f = capture::filter(&[3, 5]);
/// assert_eq!(f.len(), 13);
/// ```
pub fn filter(ifindexes: &[u32]) -> Vec<SockFilter> {
    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // SKF_AD_OFF + SKF_AD_IFINDEX: the ancillary "interface index" load.
    const AD_IFINDEX: u32 = 0xffff_f000 + 8;
    let n = u8::try_from(ifindexes.len()).unwrap_or(u8::MAX);
    let mut p = vec![SockFilter::new(LD_W_ABS, 0, 0, AD_IFINDEX)];
    for (i, idx) in ifindexes.iter().enumerate() {
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        // Match: on to the Ethernet type (index n+2); else the next index, the last to drop.
        p.push(SockFilter::new(JEQ_K, n - i, 0, *idx));
    }
    p.extend([
        // n+1: not one of ours.
        SockFilter::new(RET_K, 0, 0, 0),
        // n+2: the Ethernet type.
        SockFilter::new(LD_H_ABS, 0, 0, 12),
        SockFilter::new(JEQ_K, 0, 2, 0x0800),
        // n+4: IPv4's protocol.
        SockFilter::new(LD_B_ABS, 0, 0, 23),
        SockFilter::new(JEQ_K, 4, 3, 6),
        // n+6: IPv6's next header.
        SockFilter::new(JEQ_K, 0, 2, 0x86dd),
        SockFilter::new(LD_B_ABS, 0, 0, 20),
        SockFilter::new(JEQ_K, 1, 0, 6),
        // n+9: drop; n+10: keep all of it.
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, 0x0004_0000),
    ]);
    p
}

/// Start capturing on `ifaces` of namespace `ns` (host `host`), keeping `snaplen` bytes of each
/// frame. The socket is open and filtered when this returns: nothing sent after it is missed.
pub fn start(
    ns: &netns::Namespace,
    host: &str,
    ifaces: &[String],
    snaplen: u32,
) -> Result<Running, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let (h, names, flag) = (host.to_string(), ifaces.to_vec(), stop.clone());
    let thread = ns.spawn(move || -> Result<Captured, Error> {
        let opened = open(&h, &names);
        let (sock, indexes) = match opened {
            Ok(x) => {
                let _ = ready_tx.send(Ok(()));
                x
            }
            Err(e) => {
                let _ = ready_tx.send(Err(Error::Socket {
                    host: h.clone(),
                    what: "opening the capture socket",
                    source: std::io::Error::other(e.to_string()),
                }));
                return Err(e);
            }
        };
        read(&h, &sock, &names, &indexes, snaplen, &flag)
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Running {
            host: host.to_string(),
            stop,
            thread,
        }),
        Ok(Err(_)) | Err(_) => match thread.join() {
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(e.into()),
            _ => Err(Error::Panicked {
                host: host.to_string(),
            }),
        },
    }
}

fn sock_err<'a>(host: &'a str, what: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Socket {
        host: host.to_string(),
        what,
        source,
    }
}

/// The socket, inside the namespace (the calling thread is in it).
fn open(host: &str, ifaces: &[String]) -> Result<(Socket, Vec<u32>), Error> {
    let mut indexes = Vec::new();
    for i in ifaces {
        let idx = nix::net::if_::if_nametoindex(i.as_str()).map_err(|_| Error::NoInterface {
            host: host.to_string(),
            iface: i.clone(),
        })?;
        indexes.push(idx);
    }
    // ETH_P_ALL in network byte order.
    let all = i32::from(0x0003u16.to_be());
    let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(all)))
        .map_err(sock_err(host, "AF_PACKET socket"))?;
    sock.attach_filter(&filter(&indexes))
        .map_err(sock_err(host, "attaching the filter"))?;
    // Room for bursts: 32 MiB past net.core.rmem_max (root may), else what the kernel allows.
    if socket::setsockopt(&sock, sockopt::RcvBufForce, &(32 << 20)).is_err() {
        let _ = sock.set_recv_buffer_size(32 << 20);
    }
    socket::setsockopt(&sock, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| sock_err(host, "SO_TIMESTAMPNS")(e.into()))?;
    socket::setsockopt(&sock, sockopt::RxqOvfl, &1)
        .map_err(|e| sock_err(host, "SO_RXQ_OVFL")(e.into()))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(sock_err(host, "SO_RCVTIMEO"))?;
    Ok((sock, indexes))
}

fn read(
    host: &str,
    sock: &Socket,
    names: &[String],
    indexes: &[u32],
    snaplen: u32,
    stop: &AtomicBool,
) -> Result<Captured, Error> {
    let mut interfaces: Vec<pcapng::Interface> = names
        .iter()
        .map(|n| pcapng::Interface {
            name: format!("{host}:{n}"),
            linktype: 1,
            snaplen,
            drops: 0,
            received: 0,
        })
        .collect();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; usize::try_from(snaplen).unwrap_or(256)];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec, u32);
    let mut dropped: u32 = 0;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let got = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<LinkAddr>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_TRUNC,
            ) {
                Ok(m) => {
                    let mut ts = None;
                    for c in m.cmsgs().into_iter().flatten() {
                        match c {
                            ControlMessageOwned::ScmTimestampns(t) => {
                                ts = Some(
                                    u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                                        + u64::try_from(t.tv_nsec()).unwrap_or(0),
                                );
                            }
                            ControlMessageOwned::RxqOvfl(n) => dropped = n,
                            _ => {}
                        }
                    }
                    let ifindex = m.address.map(|a| a.ifindex());
                    Some((m.bytes, ts, ifindex))
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => None,
                Err(e) => return Err(sock_err(host, "reading")(e.into())),
            }
        };
        match got {
            Some((len, ts, Some(ifindex))) => {
                let Some(i) = indexes
                    .iter()
                    .position(|x| usize::try_from(*x).ok() == Some(ifindex))
                else {
                    continue;
                };
                let kept = len.min(buf.len());
                interfaces[i].received += 1;
                frames.push(pcapng::Frame {
                    iface: u32::try_from(i).unwrap_or(0),
                    ts_ns: ts.unwrap_or(0),
                    orig_len: u32::try_from(len).unwrap_or(u32::MAX),
                    data: buf[..kept].to_vec(),
                });
            }
            Some(_) => {}
            // Nothing waiting: stop when asked (the queue is drained first).
            None if stopping => break,
            None => {}
        }
    }
    // The socket's drop counter is one for all its interfaces: it goes on the first.
    if let Some(first) = interfaces.first_mut() {
        first.drops = u64::from(dropped);
    }
    Ok(Captured {
        interfaces,
        frames,
        clocks: Vec::new(),
    })
}

impl Running {
    /// Stop once the socket's queue is drained, and return what was captured.
    pub fn stop(self) -> Result<Captured, Error> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::Panicked { host: self.host }),
        }
    }
}

/// Several namespaces' captures in one file's order: interfaces one after the other, frames
/// merged by time (all namespaces share this machine's clock).
///
/// ```
/// use capture::{merge, Captured, pcapng::{Frame, Interface}};
/// let i = |n: &str| Interface { name: n.into(), linktype: 1, snaplen: 256, drops: 0, received: 1 };
/// let f = |t| Frame { iface: 0, ts_ns: t, orig_len: 60, data: vec![0; 60] };
/// let a = Captured { interfaces: vec![i("ue1:enp0s8")], frames: vec![f(2)], clocks: vec![] };
/// let b = Captured { interfaces: vec![i("ue2:enp0s8")], frames: vec![f(1)], clocks: vec![] };
/// let m = merge(vec![a, b]);
/// assert_eq!(m.frames.iter().map(|f| (f.ts_ns, f.iface)).collect::<Vec<_>>(), [(1, 1), (2, 0)]);
/// ```
pub fn merge(parts: Vec<Captured>) -> Captured {
    let mut interfaces = Vec::new();
    let mut frames = Vec::new();
    let mut clocks = Vec::new();
    for p in parts {
        let base = u32::try_from(interfaces.len()).unwrap_or(0);
        interfaces.extend(p.interfaces);
        clocks.extend(p.clocks);
        frames.extend(p.frames.into_iter().map(|mut f| {
            f.iface += base;
            f
        }));
    }
    frames.sort_by_key(|f| f.ts_ns);
    Captured {
        interfaces,
        frames,
        clocks,
    }
}
