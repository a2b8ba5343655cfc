//! What a capture says about each MPTCP connection, subflow and direction: bytes per interval
//! and each subflow's share, TCP retransmissions, data-level bytes sent for the first time
//! against bytes sent again on another subflow (reinjections, with the delay since the first
//! sending), RTT samples per subflow, when each subflow joined, and the connection's time
//! line of MPTCP signals. Computed from the segments of one vantage point: pass the frames of
//! one host's interfaces (a capture on both ends sees every segment twice).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::Packet;
use crate::conn::Connection;
use crate::mptcp::{MpJoin, Mptcp};

/// One direction of a subflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Direction {
    /// Payload bytes of every segment, retransmissions included.
    pub bytes: u64,
    /// Payload bytes per interval (index `i`: from `start + i * interval`).
    pub per_interval: Vec<u64>,
    /// Segments that carried payload.
    pub segments: u64,
    /// Segments whose bytes this direction had sent before (TCP retransmissions).
    pub retransmissions: u64,
    /// Their payload bytes.
    pub retransmitted_bytes: u64,
    /// Data-level bytes first sent on this subflow.
    pub unique_data_bytes: u64,
    /// Data-level bytes sent earlier on another subflow (reinjections).
    pub reinjected_bytes: u64,
    /// Seconds from each reinjected mapping's first sending to its reinjection.
    pub reinjection_delays: Vec<f64>,
    /// Round-trip samples: (when the ACK came, seconds from time 0; the RTT, seconds): a
    /// data segment to the first ACK that covers it, not for retransmitted segments (Karn).
    pub rtt: Vec<(f64, f64)>,
    /// Data sequence numbers over time: (seconds, DSN at the mapping's start), at most
    /// [`MAX_POINTS`] of them (evenly thinned).
    pub dsn: Vec<(f64, u64)>,
    /// The reinjected mappings: (seconds, DSN).
    pub reinjections: Vec<(f64, u64)>,
    /// The data ACKs this direction's data got back on this subflow: (seconds, data ACK),
    /// thinned as `dsn`.
    pub data_acks: Vec<(f64, u64)>,
}

/// How many points a series keeps for plotting.
pub const MAX_POINTS: usize = 2000;

/// Data-level reordering at the receiver: how long data that arrived ahead of a gap waited
/// for the gap to fill before it could be delivered in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reordering {
    /// Data mappings that arrived (duplicates left out).
    pub mappings: u64,
    /// Of them, those that arrived ahead of a gap.
    pub delayed: u64,
    /// The delays of the delayed ones, seconds.
    pub delays: Vec<f64>,
}

fn thin<T: Copy>(v: &mut Vec<T>) {
    if v.len() > MAX_POINTS {
        let step = v.len().div_ceil(MAX_POINTS);
        let kept: Vec<T> = v.iter().step_by(step).copied().collect();
        *v = kept;
    }
}

/// One subflow's analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubflowReport {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub join: bool,
    pub backup: bool,
    /// Seconds from the connection's first SYN to this subflow's SYN.
    pub syn_at: f64,
    /// Seconds from this subflow's SYN to the ACK that completed its handshake.
    pub handshake: Option<f64>,
    /// Client to server.
    pub up: Direction,
    /// Server to client.
    pub down: Direction,
    /// This subflow's share of the connection's bytes client to server (0 to 1).
    pub up_share: f64,
    pub down_share: f64,
}

/// An MPTCP signal on the time line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Seconds from the connection's first SYN.
    pub at: f64,
    pub frame: u64,
    pub from: SocketAddr,
    pub what: String,
}

/// One connection's analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionReport {
    /// The first SYN's time (ns since the epoch): time 0 of the report.
    pub start_ns: u64,
    pub interval: f64,
    pub subflows: Vec<SubflowReport>,
    pub signals: Vec<Signal>,
    /// Data-level reordering seen at the vantage point, client to server and back.
    pub reordering_up: Reordering,
    pub reordering_down: Reordering,
}

/// Per-direction state while walking the segments.
#[derive(Default)]
struct Walk {
    /// Highest sequence number sent so far (end of payload), wrapping-aware by u64 extension.
    high: Option<u64>,
    /// Data segments awaiting an ACK: (seq end, ts, retransmitted).
    in_flight: Vec<(u64, u64, bool)>,
    last_seq: Option<u64>,
}

/// Sequence numbers extended past 32 bits from the previous value (wraps forward).
fn extend(prev: Option<u64>, v: u32) -> u64 {
    match prev {
        None => u64::from(v),
        Some(p) => {
            let base = p & !0xffff_ffff;
            let candidates = [base.wrapping_sub(1 << 32), base, base + (1 << 32)];
            candidates
                .iter()
                .map(|b| b.wrapping_add(u64::from(v)))
                .min_by_key(|c| c.abs_diff(p))
                .unwrap_or(u64::from(v))
        }
    }
}

fn describe(o: &Mptcp) -> Option<String> {
    Some(match o {
        Mptcp::MpCapable(c) if c.sender_key.is_none() => "MP_CAPABLE SYN".into(),
        Mptcp::MpCapable(c) if c.receiver_key.is_none() => "MP_CAPABLE SYN/ACK".into(),
        Mptcp::MpCapable(_) => return None,
        Mptcp::MpJoin(MpJoin::Syn {
            addr_id, backup, ..
        }) => format!(
            "MP_JOIN SYN (address id {addr_id}{})",
            if *backup { ", backup" } else { "" }
        ),
        Mptcp::MpJoin(MpJoin::SynAck { addr_id, .. }) => {
            format!("MP_JOIN SYN/ACK (address id {addr_id})")
        }
        Mptcp::MpJoin(MpJoin::Ack { .. }) => "MP_JOIN ACK".into(),
        Mptcp::Dss(d) if d.data_fin => "DATA_FIN".into(),
        Mptcp::Dss(_) => return None,
        Mptcp::AddAddr(a) => format!(
            "ADD_ADDR{} id {} {}{}",
            if a.echo { " echo" } else { "" },
            a.id,
            a.addr,
            a.port.map(|p| format!(" port {p}")).unwrap_or_default()
        ),
        Mptcp::RmAddr { ids } => format!("RM_ADDR ids {ids:?}"),
        Mptcp::MpPrio { backup } => format!("MP_PRIO backup={backup}"),
        Mptcp::MpFail { dsn } => format!("MP_FAIL at DSN {dsn}"),
        Mptcp::MpFastclose { .. } => "MP_FASTCLOSE".into(),
        Mptcp::MpTcpRst { flags, reason } => {
            format!(
                "MP_TCPRST reason {reason}{}",
                if flags & 1 != 0 { " (transient)" } else { "" }
            )
        }
        Mptcp::Invalid { subtype, why, .. } => format!("invalid MPTCP option {subtype}: {why}"),
    })
}

/// How to analyse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Seconds per interval of [`Direction::per_interval`].
    pub interval: f64,
    /// Time 0 of the intervals and of the report (ns since the epoch); `None`: each
    /// connection's first SYN.
    pub origin_ns: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: 1.0,
            origin_ns: None,
        }
    }
}

/// Analyse the connections `conns` (from [`crate::conn::group`] over `packets`), counting
/// only segments for which `seen(packet)` holds (one vantage point).
///
/// ```
/// // A capture with no MPTCP connection gives no report.
/// let opts = decode::analysis::Options::default();
/// assert!(decode::analysis::analyze(&[], &[], opts, |_| true).is_empty());
/// ```
pub fn analyze(
    packets: &[Packet],
    conns: &[Connection],
    opts: Options,
    seen: impl Fn(&Packet) -> bool,
) -> Vec<ConnectionReport> {
    conns
        .iter()
        .filter_map(|c| one(packets, c, opts, &seen))
        .collect()
}

fn one(
    packets: &[Packet],
    c: &Connection,
    opts: Options,
    seen: &impl Fn(&Packet) -> bool,
) -> Option<ConnectionReport> {
    let interval = opts.interval;
    let first = c.subflows.first()?.packets.first()?;
    let start_ns = opts.origin_ns.unwrap_or(packets[*first].ts_ns);
    let secs = |ts: u64| (ts.saturating_sub(start_ns)) as f64 / 1e9;
    let slot = |ts: u64| (secs(ts) / interval).floor() as usize;
    // Data-level mappings already sent, per direction (client to server: true): DSN range ->
    // (first time, subflow).
    let mut sent_dsn: [BTreeMap<u64, (u64, u64, usize)>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut signals = Vec::new();
    let mut subflows = Vec::new();
    for (si, s) in c.subflows.iter().enumerate() {
        let mut up = Direction::default();
        let mut down = Direction::default();
        let mut walk = [Walk::default(), Walk::default()];
        let mut syn_at = None;
        let mut handshake = None;
        for &i in &s.packets {
            let p = &packets[i];
            if !seen(p) {
                continue;
            }
            let from_client = p.src == s.client;
            let dir = usize::from(!from_client);
            if p.syn() && !p.ack_flag() && syn_at.is_none() {
                syn_at = Some(p.ts_ns);
            }
            // The server answered the MP_CAPABLE SYN without MP_CAPABLE: plain TCP.
            if si == 0
                && p.syn()
                && p.ack_flag()
                && !from_client
                && !p.mptcp.iter().any(|o| matches!(o, Mptcp::MpCapable(_)))
            {
                signals.push(Signal {
                    at: secs(p.ts_ns),
                    frame: p.frame,
                    from: p.src,
                    what: "fallback to TCP: SYN/ACK without MP_CAPABLE".into(),
                });
            }
            if handshake.is_none()
                && from_client
                && !p.syn()
                && p.ack_flag()
                && let Some(t) = syn_at
            {
                handshake = Some((p.ts_ns.saturating_sub(t)) as f64 / 1e9);
            }
            for o in &p.mptcp {
                if let Some(what) = describe(o) {
                    signals.push(Signal {
                        at: secs(p.ts_ns),
                        frame: p.frame,
                        from: p.src,
                        what,
                    });
                }
            }
            // ACKs of the other direction's data: RTT samples, and its data ACKs.
            let other = 1 - dir;
            for o in &p.mptcp {
                if let Mptcp::Dss(dss) = o
                    && let Some(a) = dss.data_ack
                {
                    let d = if other == 0 { &mut up } else { &mut down };
                    d.data_acks.push((secs(p.ts_ns), a));
                }
            }
            if p.ack_flag() {
                let ack = extend(walk[other].last_seq, p.ack);
                let d = if other == 0 { &mut up } else { &mut down };
                let w = &mut walk[other];
                let mut keep = Vec::new();
                for (end, ts, retx) in w.in_flight.drain(..) {
                    if end <= ack {
                        if !retx {
                            d.rtt
                                .push((secs(p.ts_ns), (p.ts_ns.saturating_sub(ts)) as f64 / 1e9));
                        }
                    } else {
                        keep.push((end, ts, retx));
                    }
                }
                w.in_flight = keep;
            }
            if p.payload_len == 0 {
                continue;
            }
            let d = if dir == 0 { &mut up } else { &mut down };
            let w = &mut walk[dir];
            let seq = extend(w.last_seq, p.seq);
            w.last_seq = Some(seq);
            let end = seq + u64::from(p.payload_len);
            let retx = w.high.is_some_and(|h| end <= h);
            w.high = Some(w.high.map_or(end, |h| h.max(end)));
            w.in_flight.push((end, p.ts_ns, retx));
            d.bytes += u64::from(p.payload_len);
            d.segments += 1;
            let k = slot(p.ts_ns);
            if d.per_interval.len() <= k {
                d.per_interval.resize(k + 1, 0);
            }
            d.per_interval[k] += u64::from(p.payload_len);
            if retx {
                d.retransmissions += 1;
                d.retransmitted_bytes += u64::from(p.payload_len);
            }
            // Data level: the mapping this segment carries.
            for o in &p.mptcp {
                let Mptcp::Dss(dss) = o else { continue };
                let Some(m) = &dss.mapping else { continue };
                if m.len == 0 || retx {
                    continue;
                }
                d.dsn.push((secs(p.ts_ns), m.dsn));
                let sent = &mut sent_dsn[dir];
                let before = sent
                    .range(..=m.dsn)
                    .next_back()
                    .filter(|(start, (stop, _, _))| **start <= m.dsn && m.dsn < *stop)
                    .map(|(_, v)| *v);
                match before {
                    Some((_, first_ts, first_sf)) if first_sf != si => {
                        d.reinjections.push((secs(p.ts_ns), m.dsn));
                        d.reinjected_bytes += u64::from(m.len);
                        d.reinjection_delays
                            .push((p.ts_ns.saturating_sub(first_ts)) as f64 / 1e9);
                    }
                    Some(_) => {}
                    None => {
                        d.unique_data_bytes += u64::from(m.len);
                        sent.insert(m.dsn, (m.dsn + u64::from(m.len), p.ts_ns, si));
                    }
                }
            }
        }
        for d in [&mut up, &mut down] {
            thin(&mut d.dsn);
            thin(&mut d.rtt);
            thin(&mut d.reinjections);
            thin(&mut d.data_acks);
        }
        subflows.push(SubflowReport {
            client: s.client,
            server: s.server,
            join: s.join,
            backup: s.backup,
            syn_at: syn_at.map_or(0.0, secs),
            handshake,
            up,
            down,
            up_share: 0.0,
            down_share: 0.0,
        });
    }
    let (tu, td): (u64, u64) = subflows
        .iter()
        .fold((0, 0), |(u, d), s| (u + s.up.bytes, d + s.down.bytes));
    for s in &mut subflows {
        s.up_share = if tu == 0 {
            0.0
        } else {
            s.up.bytes as f64 / tu as f64
        };
        s.down_share = if td == 0 {
            0.0
        } else {
            s.down.bytes as f64 / td as f64
        };
    }
    signals.sort_by(|a, b| a.at.total_cmp(&b.at));
    let first_dsn = |key: Option<u64>| key.map(|k| crate::conn::token_idsn(k).1.wrapping_add(1));
    let reordering_up = reordering(packets, c, true, first_dsn(c.client_key), seen);
    let reordering_down = reordering(packets, c, false, first_dsn(c.server_key), seen);
    Some(ConnectionReport {
        start_ns,
        interval,
        subflows,
        signals,
        reordering_up,
        reordering_down,
    })
}

/// A 32-bit DSN put next to `near` (the closest 64-bit value with those low bits).
fn widen(dsn32: u64, near: u64) -> u64 {
    let base = near & !0xffff_ffff;
    [base.wrapping_sub(1 << 32), base, base.wrapping_add(1 << 32)]
        .into_iter()
        .map(|b| b | (dsn32 & 0xffff_ffff))
        .min_by_key(|c| c.abs_diff(near))
        .unwrap_or(dsn32)
}

/// The receiver's data-level reordering, one direction (`up`: client to server), from the
/// mappings as they arrive at the vantage point in time order. `first`: the direction's first
/// DSN (the sender's IDSN + 1), else the lowest DSN of the first mapping.
fn reordering(
    packets: &[Packet],
    c: &Connection,
    up: bool,
    first: Option<u64>,
    seen: &impl Fn(&Packet) -> bool,
) -> Reordering {
    let mut order: Vec<usize> = c
        .subflows
        .iter()
        .flat_map(|s| {
            s.packets
                .iter()
                .copied()
                .filter(move |&i| (packets[i].src == s.client) == up)
        })
        .filter(|&i| seen(&packets[i]) && packets[i].payload_len > 0)
        .collect();
    order.sort_by_key(|&i| packets[i].ts_ns);
    let mut r = Reordering::default();
    let mut next: Option<u64> = first;
    // Ahead of the gap: start -> (end, arrival).
    let mut ahead: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for i in order {
        let p = &packets[i];
        for o in &p.mptcp {
            let Mptcp::Dss(d) = o else { continue };
            let Some(m) = &d.mapping else { continue };
            if m.len == 0 {
                continue;
            }
            let n = *next.get_or_insert(m.dsn);
            let dsn = if m.dsn64 { m.dsn } else { widen(m.dsn, n) };
            let end = dsn + u64::from(m.len);
            if end <= n || ahead.get(&dsn).is_some_and(|(e, _)| *e >= end) {
                continue; // already here
            }
            r.mappings += 1;
            if dsn > n {
                ahead.insert(dsn, (end, p.ts_ns));
                continue;
            }
            let mut n = n.max(end);
            while let Some((&start, &(e, at))) = ahead.first_key_value() {
                if start > n {
                    break;
                }
                ahead.remove(&start);
                if e > n {
                    n = e;
                }
                r.delayed += 1;
                r.delays.push((p.ts_ns.saturating_sub(at)) as f64 / 1e9);
            }
            next = Some(n);
        }
    }
    r
}
