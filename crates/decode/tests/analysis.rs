//! The analysis on a connection written segment by segment: two subflows, a TCP
//! retransmission, a reinjection on the other subflow, ACKs for RTT samples, and signals.

use std::net::SocketAddr;

use decode::Packet;
use decode::analysis::{Options, analyze};
use decode::mptcp::{Dss, Mapping, MpCapable, MpJoin, Mptcp};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Script {
    packets: Vec<Packet>,
}

impl Script {
    fn seg(
        &mut self,
        at_ms: u64,
        (src, dst): (&str, &str),
        flags: u8,
        (seq, ack): (u32, u32),
        len: u32,
        mptcp: Vec<Mptcp>,
    ) {
        let frame = self.packets.len() as u64 + 1;
        self.packets.push(Packet {
            frame,
            ts_ns: T0 + at_ms * MS,
            iface: 0,
            src: addr(src),
            dst: addr(dst),
            seq,
            ack,
            flags,
            window: 1000,
            payload_len: len,
            mptcp,
        });
    }
}

/// The client's first data sequence number: its key's IDSN + 1.
fn base() -> u64 {
    decode::conn::token_idsn(7).1.wrapping_add(1)
}

fn data(dsn: u64, ssn: u32, len: u16) -> Vec<Mptcp> {
    let dsn = base().wrapping_add(dsn);
    vec![Mptcp::Dss(Dss {
        data_fin: false,
        data_ack: None,
        ack64: false,
        mapping: Some(Mapping {
            dsn,
            dsn64: true,
            ssn,
            len,
            checksum: None,
        }),
    })]
}

#[test]
fn bytes_shares_retransmissions_reinjections_rtt_and_signals() {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let (c0, s0) = ("10.0.1.1:40000", "10.0.1.2:5201");
    let (c1, s1) = ("10.0.2.1:40001", "10.0.2.2:5201");
    let ckey = 7u64;
    let skey = 9u64;
    let (stoken, _) = decode::conn::token_idsn(skey);
    let cap = |sender: Option<u64>, receiver: Option<u64>| {
        vec![Mptcp::MpCapable(MpCapable {
            version: 1,
            flags: 1,
            sender_key: sender,
            receiver_key: receiver,
            data_len: None,
            checksum: None,
        })]
    };
    let mut s = Script {
        packets: Vec::new(),
    };
    s.seg(0, (c0, s0), SYN, (100, 0), 0, cap(None, None));
    s.seg(
        10,
        (s0, c0),
        SYN | ACK,
        (500, 101),
        0,
        cap(Some(skey), None),
    );
    s.seg(
        20,
        (c0, s0),
        ACK,
        (101, 501),
        0,
        cap(Some(ckey), Some(skey)),
    );
    s.seg(
        30,
        (c1, s1),
        SYN,
        (1000, 0),
        0,
        vec![Mptcp::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 1,
            token: stoken,
            nonce: 1,
        })],
    );
    s.seg(
        40,
        (s1, c1),
        SYN | ACK,
        (2000, 1001),
        0,
        vec![Mptcp::MpJoin(MpJoin::SynAck {
            backup: false,
            addr_id: 0,
            hmac: 0,
            nonce: 2,
        })],
    );
    s.seg(
        50,
        (c1, s1),
        ACK,
        (1001, 2001),
        0,
        vec![Mptcp::MpJoin(MpJoin::Ack { hmac: [0; 20] })],
    );
    // Subflow 0: DSN 0..1000 at 100 ms, ACKed at 130 ms (RTT 30 ms).
    s.seg(100, (c0, s0), ACK, (101, 501), 1000, data(0, 1, 1000));
    s.seg(130, (s0, c0), ACK, (501, 1101), 0, vec![]);
    // Subflow 1: DSN 1000..1500 at 1100 ms (second interval).
    s.seg(1100, (c1, s1), ACK, (1001, 2001), 500, data(1000, 1, 500));
    // Subflow 0 sends DSN 1500..2000, it is lost; retransmitted at 1300 ms on subflow 0 (TCP
    // retransmission) and reinjected at 1250 ms on subflow 1.
    s.seg(1200, (c0, s0), ACK, (1101, 501), 500, data(1500, 1001, 500));
    s.seg(1250, (c1, s1), ACK, (1501, 2001), 500, data(1500, 501, 500));
    s.seg(1300, (c0, s0), ACK, (1101, 501), 500, data(1500, 1001, 500));
    s.seg(1310, (s0, c0), ACK, (501, 1601), 0, vec![]);
    // Reordering at the server: DSN 2500..3000 arrives (subflow 0, 1350 ms) ahead of
    // 2000..2500 (subflow 1, 1400 ms), which then fills the gap: a 50 ms wait.
    s.seg(1350, (c0, s0), ACK, (1601, 501), 500, data(2500, 1501, 500));
    s.seg(
        1400,
        (c1, s1),
        ACK,
        (2001, 2001),
        500,
        data(2000, 1001, 500),
    );

    let conns = decode::conn::group(&s.packets);
    assert_eq!(conns.len(), 1);
    let r = &analyze(&s.packets, &conns, Options::default(), |_| true)[0];
    assert_eq!(r.start_ns, T0);
    let (a, b) = (&r.subflows[0], &r.subflows[1]);
    assert_eq!((a.join, b.join), (false, true));
    assert!((b.syn_at - 0.030).abs() < 1e-9);
    assert!((a.handshake.unwrap() - 0.020).abs() < 1e-9);
    assert_eq!(a.up.bytes, 2500);
    assert_eq!(a.up.per_interval, [1000, 1500]);
    assert_eq!(b.up.per_interval, [0, 1500]);
    assert_eq!((a.up.retransmissions, a.up.retransmitted_bytes), (1, 500));
    assert_eq!(a.up.unique_data_bytes, 2000);
    assert_eq!(b.up.unique_data_bytes, 1000);
    assert_eq!(b.up.reinjected_bytes, 500);
    assert_eq!(b.up.reinjection_delays.len(), 1);
    assert!((b.up.reinjection_delays[0] - 0.050).abs() < 1e-9);
    // RTT: 30 ms for the first segment; the retransmitted one is not sampled (Karn), the
    // original of it is ACKed late (110 ms after it was first sent).
    assert_eq!(a.up.rtt.len(), 2, "{:?}", a.up.rtt);
    assert!((a.up.rtt[0].1 - 0.030).abs() < 1e-9 && (a.up.rtt[0].0 - 0.130).abs() < 1e-9);
    assert_eq!(b.up.reinjections.len(), 1);
    assert_eq!(b.up.reinjections[0].1, base() + 1500);
    assert_eq!(a.up.dsn.first(), Some(&(0.1, base())));
    // Data-level reordering at the receiver: one mapping waited 50 ms for the gap to fill.
    assert_eq!(r.reordering_up.delayed, 1, "{:?}", r.reordering_up);
    assert!((r.reordering_up.delays[0] - 0.050).abs() < 1e-9);
    // Shares of all bytes sent, retransmissions included: 2500 and 1500.
    assert!((a.up_share - 0.625).abs() < 1e-9 && (b.up_share - 0.375).abs() < 1e-9);
    let whats: Vec<&str> = r.signals.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "MP_CAPABLE SYN",
            "MP_CAPABLE SYN/ACK",
            "MP_JOIN SYN (address id 1)",
            "MP_JOIN SYN/ACK (address id 0)",
            "MP_JOIN ACK"
        ]
    );
    // One vantage point only: the server's segments left out.
    let r = &analyze(&s.packets, &conns, Options::default(), |p| {
        p.src.port() != 5201
    })[0];
    assert!(r.subflows[0].up.rtt.is_empty());
}

/// A server that answers MP_CAPABLE with a plain SYN/ACK: the connection falls back to TCP,
/// and the time line says so.
#[test]
fn fallback_is_on_the_time_line() {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let (c, srv) = ("10.0.1.1:40000", "10.0.1.2:5201");
    let mut s = Script {
        packets: Vec::new(),
    };
    let syn = vec![Mptcp::MpCapable(MpCapable {
        version: 1,
        flags: 1,
        sender_key: None,
        receiver_key: None,
        data_len: None,
        checksum: None,
    })];
    s.seg(0, (c, srv), SYN, (100, 0), 0, syn);
    s.seg(10, (srv, c), SYN | ACK, (500, 101), 0, vec![]);
    s.seg(20, (c, srv), ACK, (101, 501), 0, vec![]);
    let conns = decode::conn::group(&s.packets);
    let r = &analyze(&s.packets, &conns, Options::default(), |_| true)[0];
    let whats: Vec<&str> = r.signals.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "MP_CAPABLE SYN",
            "fallback to TCP: SYN/ACK without MP_CAPABLE"
        ]
    );
}
