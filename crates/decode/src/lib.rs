//! MPTCP v1 from packet captures, without IO but reading the bytes given: pcap (micro- and
//! nanosecond, either byte order) and pcapng (several sections and interfaces, each with its
//! time resolution, its name and the kernel's drop count), Ethernet, Linux cooked (SLL, SLL2)
//! and raw IP links, IPv4 and IPv6 (etherparse), TCP, and every MPTCP option ([`mptcp`], with
//! the kernel's size rules). Subflows are grouped into connections by token and IDSN
//! ([`conn`]).
//!
//! Nothing in a capture makes this panic: a truncated file, a frame cut short, an option whose
//! length lies are counted in [`Capture::problems`] and reading goes on where it can (a proptest
//! feeds it random and mutated bytes).
//!
//! ```
//! // An empty pcap (header only): no packets, nothing wrong.
//! let mut file = Vec::new();
//! file.extend(0xa1b2_c3d4u32.to_le_bytes());
//! file.extend(2u16.to_le_bytes());
//! file.extend(4u16.to_le_bytes());
//! file.extend([0u8; 8]);
//! file.extend(65535u32.to_le_bytes());
//! file.extend(1u32.to_le_bytes()); // Ethernet
//! let c = decode::read(&file).unwrap();
//! assert!(c.packets.is_empty() && c.problems.is_empty());
//! ```

pub mod analysis;
pub mod conn;
pub mod mptcp;

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{Linktype, PcapError};
use serde::Serialize;

pub use mptcp::Mptcp;

/// A capture that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a pcap or pcapng file (the first bytes are {0:02x?})")]
    NotACapture(Vec<u8>),
}

/// One TCP segment of the capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// The frame number, from 1, counting every frame of the file (as Wireshark numbers them).
    pub frame: u64,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The interface it was captured on (pcapng's interface id; 0 in pcap).
    pub iface: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    /// TCP flags: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10.
    pub flags: u8,
    pub window: u16,
    /// The segment's payload length from the IP header (also when the capture cut it short).
    pub payload_len: u32,
    pub mptcp: Vec<Mptcp>,
}

impl Packet {
    pub fn syn(&self) -> bool {
        self.flags & 0x02 != 0
    }
    pub fn ack_flag(&self) -> bool {
        self.flags & 0x10 != 0
    }
    pub fn rst(&self) -> bool {
        self.flags & 0x04 != 0
    }
    pub fn fin(&self) -> bool {
        self.flags & 0x01 != 0
    }
}

/// A capture interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// pcapng's `if_name` (None in pcap or when not recorded).
    pub name: Option<String>,
    /// The link type number (1 Ethernet, 113 SLL, 276 SLL2, 101 raw IP).
    pub linktype: i32,
    /// Packets the kernel dropped, from the last interface statistics block (`isb_ifdrop`).
    pub drops: Option<u64>,
}

/// Something in the capture that could not be read as it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The frame (0: the file itself).
    pub frame: u64,
    pub what: String,
}

/// A capture, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capture {
    /// The TCP segments, in file order.
    pub packets: Vec<Packet>,
    pub interfaces: Vec<Interface>,
    /// Every frame of the file, TCP or not.
    pub frames: u64,
    /// The first frame's time (ns since the epoch): Wireshark's time 0 of the file.
    pub first_ts_ns: Option<u64>,
    /// Frames that are not TCP over IP (ARP, ICMP, UDP...).
    pub not_tcp: u64,
    /// Frames, options and file structure that could not be read (at most [`MAX_PROBLEMS`]
    /// listed; `problem_count` counts all).
    pub problems: Vec<Problem>,
    pub problem_count: u64,
    /// MPTCP options the kernel would not apply ([`Mptcp::Invalid`]).
    pub invalid_options: u64,
}

/// How many problems a [`Capture`] lists (all are counted).
pub const MAX_PROBLEMS: usize = 100;

impl Capture {
    fn problem(&mut self, frame: u64, what: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                frame,
                what: what.into(),
            });
        }
    }

    /// The segments of MPTCP connections grouped: see [`conn::group`].
    pub fn connections(&self) -> Vec<conn::Connection> {
        conn::group(&self.packets)
    }
}

/// Read a whole pcap or pcapng file.
///
/// Frames are numbered as Wireshark numbers them; a frame that is not TCP is counted, one that
/// cannot be read is a [`Problem`]. A file cut short ends the packets where it is cut, with a
/// problem saying so.
pub fn read(bytes: &[u8]) -> Result<Capture, Error> {
    if pcap_parser::pcapng::parse_sectionheaderblock(bytes).is_ok() {
        Ok(read_pcapng(bytes))
    } else if let Ok((rest, header)) = pcap_parser::parse_pcap_header(bytes) {
        Ok(read_pcap(bytes.len() - rest.len(), rest, &header))
    } else {
        Err(Error::NotACapture(bytes.iter().take(8).copied().collect()))
    }
}

fn read_pcap(mut offset: usize, mut rest: &[u8], header: &pcap_parser::PcapHeader) -> Capture {
    let mut c = Capture {
        interfaces: vec![Interface {
            name: None,
            linktype: header.network.0,
            drops: None,
        }],
        ..Capture::default()
    };
    let nanos = header.is_nanosecond_precision();
    while !rest.is_empty() {
        let parsed = if header.is_modified_format() {
            pcap_parser::pcap::parse_pcap_frame_modified(rest)
        } else if header.is_bigendian() {
            pcap_parser::pcap::parse_pcap_frame_be(rest)
        } else {
            pcap_parser::pcap::parse_pcap_frame(rest)
        };
        match parsed {
            Ok((next, block)) => {
                offset += rest.len() - next.len();
                rest = next;
                c.frames += 1;
                let frac = u64::from(block.ts_usec) * if nanos { 1 } else { 1000 };
                let ts = u64::from(block.ts_sec) * 1_000_000_000 + frac;
                let frame = c.frames;
                frame_of(
                    &mut c,
                    frame,
                    ts,
                    0,
                    header.network,
                    block.data,
                    block.origlen,
                );
            }
            Err(e) => {
                c.problem(
                    0,
                    format!(
                        "file cut short or damaged at byte {offset}: {}",
                        describe(&e)
                    ),
                );
                break;
            }
        }
    }
    c
}

fn describe<I>(e: &pcap_parser::nom::Err<PcapError<I>>) -> String {
    use pcap_parser::nom::Err;
    match e {
        Err::Incomplete(_) => "a record is incomplete".into(),
        Err::Error(e) | Err::Failure(e) => match e {
            PcapError::Eof => "end of file".into(),
            PcapError::ReadError => "read error".into(),
            PcapError::Incomplete(n) => format!("{n} more bytes needed"),
            PcapError::HeaderNotRecognized => "header not recognized".into(),
            PcapError::NomError(_, kind) => format!("unreadable record ({kind:?})"),
            PcapError::OwnedNomError(_, kind) => format!("unreadable record ({kind:?})"),
            PcapError::BufferTooSmall => "record larger than the buffer".into(),
            PcapError::UnexpectedEof => "unexpected end of file".into(),
        },
    }
}

/// An interface's time resolution (units per second) and offset (seconds).
#[derive(Debug, Clone, Copy)]
struct Clock {
    resolution: u64,
    offset: i64,
}

fn read_pcapng(bytes: &[u8]) -> Capture {
    let mut c = Capture::default();
    let mut rest = bytes;
    let mut big_endian = false;
    // Interfaces of the current section: (index into c.interfaces, clock).
    let mut section: Vec<(usize, Clock)> = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let parsed = if big_endian {
            pcap_parser::pcapng::parse_block_be(rest)
        } else {
            pcap_parser::pcapng::parse_block_le(rest)
        };
        let (next, block) = match parsed {
            Ok(x) => x,
            Err(e) => {
                // A new section may change the byte order: try it as a section header.
                if let Ok((next, shb)) = pcap_parser::pcapng::parse_sectionheaderblock(rest) {
                    big_endian = shb.big_endian();
                    section.clear();
                    rest = next;
                    continue;
                }
                c.problem(
                    0,
                    format!(
                        "file cut short or damaged at byte {offset}: {}",
                        describe(&e)
                    ),
                );
                break;
            }
        };
        rest = next;
        match block {
            Block::SectionHeader(shb) => {
                big_endian = shb.big_endian();
                section.clear();
            }
            Block::InterfaceDescription(idb) => {
                let name = idb
                    .options
                    .iter()
                    .find(|o| o.code.0 == 2)
                    .and_then(|o| o.as_str().ok())
                    .map(|s| s.trim_end_matches('\0').to_string());
                let clock = Clock {
                    resolution: idb.ts_resolution().unwrap_or(1_000_000),
                    offset: idb.ts_offset(),
                };
                c.interfaces.push(Interface {
                    name,
                    linktype: idb.linktype.0,
                    drops: None,
                });
                section.push((c.interfaces.len() - 1, clock));
            }
            Block::EnhancedPacket(epb) => {
                c.frames += 1;
                let frame = c.frames;
                let Some(&(index, clock)) =
                    usize::try_from(epb.if_id).ok().and_then(|i| section.get(i))
                else {
                    c.problem(
                        frame,
                        format!("interface {} was never described", epb.if_id),
                    );
                    continue;
                };
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts = to_ns(units, clock);
                let linktype = Linktype(c.interfaces[index].linktype);
                let iface = u32::try_from(index).unwrap_or(u32::MAX);
                frame_of(&mut c, frame, ts, iface, linktype, epb.data, epb.origlen);
            }
            Block::SimplePacket(spb) => {
                c.frames += 1;
                let frame = c.frames;
                match section.first() {
                    Some(&(index, _)) => {
                        let linktype = Linktype(c.interfaces[index].linktype);
                        let iface = u32::try_from(index).unwrap_or(u32::MAX);
                        frame_of(&mut c, frame, 0, iface, linktype, spb.data, spb.origlen);
                    }
                    None => c.problem(frame, "simple packet before any interface"),
                }
            }
            Block::InterfaceStatistics(isb) => {
                let drops = isb
                    .options
                    .iter()
                    .find(|o| o.code.0 == 5)
                    .and_then(|o| o.as_bytes().ok())
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(|b| {
                        if big_endian {
                            u64::from_be_bytes(b)
                        } else {
                            u64::from_le_bytes(b)
                        }
                    });
                if let Some(&(index, _)) =
                    usize::try_from(isb.if_id).ok().and_then(|i| section.get(i))
                    && drops.is_some()
                {
                    c.interfaces[index].drops = drops;
                }
            }
            _ => {}
        }
    }
    c
}

/// Timestamp units of an interface to nanoseconds since the epoch.
fn to_ns(units: u64, clock: Clock) -> u64 {
    let res = u128::from(clock.resolution.max(1));
    let ns = u128::from(units) * 1_000_000_000 / res;
    let offset = i128::from(clock.offset) * 1_000_000_000;
    u64::try_from((i128::try_from(ns).unwrap_or(i128::MAX) + offset).max(0)).unwrap_or(u64::MAX)
}

/// Decode one frame's link, IP and TCP layers.
fn frame_of(
    c: &mut Capture,
    frame: u64,
    ts_ns: u64,
    iface: u32,
    linktype: Linktype,
    data: &[u8],
    _origlen: u32,
) {
    c.first_ts_ns.get_or_insert(ts_ns);
    let sliced = match linktype.0 {
        // Ethernet
        1 => LaxSlicedPacket::from_ethernet(data).map_err(|e| e.to_string()),
        // Linux cooked (SLL): the protocol at 14, the packet at 16.
        113 => match data.get(14..16) {
            Some(p) => Ok(LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([p[0], p[1]])),
                &data[16..],
            )),
            None => Err("SLL header cut short".to_string()),
        },
        // Linux cooked v2 (SLL2): the protocol at 0, the packet at 20.
        276 => match (data.get(0..2), data.get(20..)) {
            (Some(p), Some(rest)) => Ok(LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([p[0], p[1]])),
                rest,
            )),
            _ => Err("SLL2 header cut short".to_string()),
        },
        // Raw IP (101, and 228/229 for IPv4/IPv6 only).
        101 | 228 | 229 => LaxSlicedPacket::from_ip(data).map_err(|e| e.to_string()),
        other => {
            c.problem(frame, format!("link type {other} is not read"));
            return;
        }
    };
    let p = match sliced {
        Ok(p) => p,
        Err(e) => {
            c.problem(frame, e);
            return;
        }
    };
    let (src, dst, ip_payload_len) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let len = usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                len,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let ext = v6.extensions().slice().len();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                usize::from(h.payload_length()).saturating_sub(ext),
            )
        }
        _ => {
            c.not_tcp += 1;
            return;
        }
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        if let Some((e, _)) = &p.stop_err
            && p.transport.is_none()
            && matches!(p.net, Some(LaxNetSlice::Ipv4(_) | LaxNetSlice::Ipv6(_)))
            && is_tcp(&p)
        {
            c.problem(frame, format!("TCP header unreadable: {e}"));
        } else {
            c.not_tcp += 1;
        }
        return;
    };
    let header_len = usize::from(tcp.data_offset()) * 4;
    let payload_len = ip_payload_len.saturating_sub(header_len);
    let flags = u8::from(tcp.fin())
        | u8::from(tcp.syn()) << 1
        | u8::from(tcp.rst()) << 2
        | u8::from(tcp.psh()) << 3
        | u8::from(tcp.ack()) << 4;
    let ctx = mptcp::Context {
        syn: tcp.syn(),
        ack: tcp.ack(),
        rst: tcp.rst(),
        payload: payload_len > 0,
    };
    let opts = mptcp::options(tcp.options(), ctx);
    let invalid = opts
        .iter()
        .filter(|o| matches!(o, Mptcp::Invalid { .. }))
        .count();
    c.invalid_options += invalid as u64;
    c.packets.push(Packet {
        frame,
        ts_ns,
        iface,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags,
        window: tcp.window_size(),
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        mptcp: opts,
    });
}

/// Whether the IP layer says TCP follows.
fn is_tcp(p: &LaxSlicedPacket<'_>) -> bool {
    match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => v4.payload().ip_number == etherparse::IpNumber::TCP,
        Some(LaxNetSlice::Ipv6(v6)) => v6.payload().ip_number == etherparse::IpNumber::TCP,
        _ => false,
    }
}
