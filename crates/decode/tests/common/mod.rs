//! Captures the tests write: every MPTCP option subtype and its forms, as a scripted exchange
//! of two hosts, in pcap and pcapng.

#![allow(dead_code)]

use etherparse::PacketBuilder;

pub const CLIENT_KEY: u64 = 0x1122_3344_5566_7788;
pub const SERVER_KEY: u64 = 0x99aa_bbcc_ddee_ff00;
pub const CLIENT_KEY2: u64 = 0x0f0e_0d0c_0b0a_0908;
pub const SERVER_KEY2: u64 = 0x7f6e_5d4c_3b2a_1908;

/// A frame to write: its bytes (link layer first) and what it shows.
pub struct Frame {
    pub what: &'static str,
    pub bytes: Vec<u8>,
    /// The decoder must find an option the kernel would not apply.
    pub invalid: bool,
}

/// Options padded with NOPs to a multiple of 4, as the kernel writes them.
fn pad(mut o: Vec<u8>) -> Vec<u8> {
    while !o.len().is_multiple_of(4) {
        o.push(1);
    }
    o
}

fn opt(subtype_byte: u8, rest: &[u8]) -> Vec<u8> {
    let mut o = vec![30, u8::try_from(rest.len() + 3).unwrap(), subtype_byte];
    o.extend_from_slice(rest);
    o
}

fn be(v: u64, n: usize) -> Vec<u8> {
    v.to_be_bytes()[8 - n..].to_vec()
}

#[derive(Clone, Copy)]
pub struct Seg {
    pub v6: bool,
    pub from_client: bool,
    pub sub: u8,
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    pub fin: bool,
    pub seq: u32,
    pub payload: usize,
}

impl Seg {
    fn new(from_client: bool) -> Seg {
        Seg {
            v6: false,
            from_client,
            sub: 1,
            syn: false,
            ack: true,
            rst: false,
            fin: false,
            seq: 1000,
            payload: 0,
        }
    }
}

/// An Ethernet frame of `seg` with `options`.
pub fn ethernet(seg: Seg, options: &[u8]) -> Vec<u8> {
    let (c, s) = (40000 + u16::from(seg.sub), 5201);
    let (sport, dport) = if seg.from_client { (c, s) } else { (s, c) };
    let macs = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let (smac, dmac) = if seg.from_client {
        macs
    } else {
        (macs.1, macs.0)
    };
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let ip = if seg.v6 {
        let mut a = [0u8; 16];
        a[..2].copy_from_slice(&[0xfd, 0x00]);
        a[14] = seg.sub;
        let mut b = a;
        a[15] = 1;
        b[15] = 2;
        let (src, dst) = if seg.from_client { (a, b) } else { (b, a) };
        eth.ipv6(src, dst, 64)
    } else {
        let a = [10, 0, seg.sub, 1];
        let b = [10, 0, seg.sub, 2];
        let (src, dst) = if seg.from_client { (a, b) } else { (b, a) };
        eth.ipv4(src, dst, 64)
    };
    let mut tcp = ip.tcp(sport, dport, seg.seq, 64240);
    if seg.syn {
        tcp = tcp.syn();
    }
    if seg.ack {
        tcp = tcp.ack(5000);
    }
    if seg.rst {
        tcp = tcp.rst();
    }
    if seg.fin {
        tcp = tcp.fin();
    }
    let tcp = tcp.options_raw(&pad(options.to_vec())).unwrap();
    let payload = vec![0x61u8; seg.payload];
    let mut out = Vec::new();
    tcp.write(&mut out, &payload).unwrap();
    out
}

/// The scripted exchange: every subtype, every form, then options the kernel refuses.
pub fn frames() -> Vec<Frame> {
    let (ctoken, _) = decode::conn::token_idsn(CLIENT_KEY);
    let (stoken, _) = decode::conn::token_idsn(SERVER_KEY);
    let _ = ctoken;
    let c = Seg::new(true);
    let s = Seg::new(false);
    let syn = Seg {
        syn: true,
        ack: false,
        ..c
    };
    let synack = Seg { syn: true, ..s };
    let data = Seg { payload: 100, ..c };
    let keys = [be(CLIENT_KEY, 8), be(SERVER_KEY, 8)].concat();
    let f = |what, bytes| Frame {
        what,
        bytes,
        invalid: false,
    };
    let bad = |what, bytes| Frame {
        what,
        bytes,
        invalid: true,
    };
    let hmac20: Vec<u8> = (1..=20).collect();
    let mut out = vec![
        f("MP_CAPABLE SYN", ethernet(syn, &opt(0x01, &[0x01]))),
        f(
            "MP_CAPABLE SYN/ACK",
            ethernet(
                synack,
                &opt(0x01, &[[0x01].as_slice(), &be(SERVER_KEY, 8)].concat()),
            ),
        ),
        f(
            "MP_CAPABLE ACK",
            ethernet(c, &opt(0x01, &[[0x01].as_slice(), &keys].concat())),
        ),
        f(
            "MP_CAPABLE with data",
            ethernet(
                data,
                &opt(0x01, &[[0x01].as_slice(), &keys, &be(100, 2)].concat()),
            ),
        ),
        f(
            "DSS data ACK (4)",
            ethernet(s, &opt(0x20, &[0x01, 0, 0, 0x10, 0])),
        ),
        f(
            "DSS data ACK (4), mapping (4)",
            ethernet(
                data,
                &opt(
                    0x20,
                    &[
                        [0x05].as_slice(),
                        &be(7000, 4),
                        &be(9000, 4),
                        &be(101, 4),
                        &be(100, 2),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "DSS DATA_FIN, mapping (8) of length 1",
            ethernet(
                c,
                &opt(
                    0x20,
                    &[
                        [0x1d].as_slice(),
                        &be(7000, 4),
                        &be(9100, 8),
                        &be(0, 4),
                        &be(1, 2),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "ADD_ADDR IPv4",
            ethernet(
                s,
                &opt(
                    0x30,
                    &[[2, 10, 0, 2, 2].as_slice(), &be(0xa1a2_a3a4_a5a6_a7a8, 8)].concat(),
                ),
            ),
        ),
        f(
            "ADD_ADDR IPv4 with port",
            ethernet(
                s,
                &opt(
                    0x30,
                    &[
                        [3, 10, 0, 3, 2].as_slice(),
                        &be(5202, 2),
                        &be(0xb1b2_b3b4_b5b6_b7b8, 8),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "ADD_ADDR echo IPv4",
            ethernet(c, &opt(0x31, &[2, 10, 0, 2, 2])),
        ),
        f(
            "ADD_ADDR IPv6",
            ethernet(
                s,
                &opt(
                    0x30,
                    &[
                        [4].as_slice(),
                        &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 2],
                        &be(0xc1c2_c3c4_c5c6_c7c8, 8),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "ADD_ADDR echo IPv6 with port",
            ethernet(
                c,
                &opt(
                    0x31,
                    &[
                        [5].as_slice(),
                        &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2],
                        &be(5203, 2),
                    ]
                    .concat(),
                ),
            ),
        ),
        f("RM_ADDR one id", ethernet(s, &opt(0x40, &[2]))),
        f("RM_ADDR three ids", ethernet(s, &opt(0x40, &[3, 4, 5]))),
        f(
            "MP_JOIN SYN (backup)",
            ethernet(
                Seg { sub: 2, ..syn },
                &opt(
                    0x11,
                    &[
                        [2].as_slice(),
                        &be(u64::from(stoken), 4),
                        &be(0x0a0b_0c0d, 4),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "MP_JOIN SYN/ACK",
            ethernet(
                Seg { sub: 2, ..synack },
                &opt(
                    0x10,
                    &[
                        [0].as_slice(),
                        &be(0xd1d2_d3d4_d5d6_d7d8, 8),
                        &be(0x0e0f_1011, 4),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "MP_JOIN ACK",
            ethernet(
                Seg { sub: 2, ..c },
                &opt(0x10, &[[0].as_slice(), &hmac20].concat()),
            ),
        ),
        f(
            "MP_PRIO backup",
            ethernet(Seg { sub: 2, ..c }, &opt(0x51, &[])),
        ),
        f(
            "MP_FAIL",
            ethernet(
                c,
                &opt(
                    0x60,
                    &[[0].as_slice(), &be(0x2122_2324_2526_2728, 8)].concat(),
                ),
            ),
        ),
        f(
            "MP_FASTCLOSE",
            ethernet(
                c,
                &opt(0x70, &[[0].as_slice(), &be(SERVER_KEY, 8)].concat()),
            ),
        ),
        f(
            "MP_TCPRST transient, reason 3",
            ethernet(
                Seg {
                    rst: true,
                    ack: false,
                    ..c
                },
                &opt(0x81, &[3]),
            ),
        ),
        f(
            "DSS and ADD_ADDR echo in one segment",
            ethernet(
                data,
                &[
                    opt(
                        0x20,
                        &[
                            [0x05].as_slice(),
                            &be(7100, 4),
                            &be(9200, 4),
                            &be(201, 4),
                            &be(100, 2),
                        ]
                        .concat(),
                    ),
                    opt(0x31, &[2, 10, 0, 2, 2]),
                ]
                .concat(),
            ),
        ),
        f(
            "MP_JOIN SYN over IPv6",
            ethernet(
                Seg {
                    sub: 3,
                    v6: true,
                    ..syn
                },
                &opt(
                    0x10,
                    &[
                        [3].as_slice(),
                        &be(u64::from(stoken), 4),
                        &be(0x0a0b_0c0e, 4),
                    ]
                    .concat(),
                ),
            ),
        ),
    ];
    // A second connection that negotiates checksums (flag A in both SYNs): its mappings carry
    // them (tshark reads a DSS checksum only where the handshake asked for it).
    let keys2 = [be(CLIENT_KEY2, 8), be(SERVER_KEY2, 8)].concat();
    let (c2, s2) = (Seg { sub: 7, ..c }, Seg { sub: 7, ..s });
    let data2 = Seg { payload: 100, ..c2 };
    out.extend([
        f(
            "checksums: MP_CAPABLE SYN",
            ethernet(Seg { sub: 7, ..syn }, &opt(0x01, &[0x81])),
        ),
        f(
            "checksums: MP_CAPABLE SYN/ACK",
            ethernet(
                Seg { sub: 7, ..synack },
                &opt(0x01, &[[0x81].as_slice(), &be(SERVER_KEY2, 8)].concat()),
            ),
        ),
        f(
            "checksums: MP_CAPABLE with data and checksum",
            ethernet(
                data2,
                &opt(
                    0x01,
                    &[[0x81].as_slice(), &keys2, &be(100, 2), &be(0xbeef, 2)].concat(),
                ),
            ),
        ),
        f(
            "checksums: DSS data ACK (8), mapping (8), checksum",
            ethernet(
                Seg { seq: 1100, ..data2 },
                &opt(
                    0x20,
                    &[
                        [0x0f].as_slice(),
                        &be(0x0102_0304_0506_0708, 8),
                        &be(0x1112_1314_1516_1718, 8),
                        &be(101, 4),
                        &be(100, 2),
                        &be(0x1234, 2),
                    ]
                    .concat(),
                ),
            ),
        ),
        f(
            "checksums: DSS data ACK (4)",
            ethernet(s2, &opt(0x20, &[0x01, 0, 0, 0x10, 0])),
        ),
    ]);
    out.extend([
        bad(
            "DSS whose size does not match its flags",
            ethernet(s, &opt(0x20, &[0x01])),
        ),
        bad(
            "MP_CAPABLE of SYN size on an ACK",
            ethernet(c, &opt(0x01, &[0x01])),
        ),
        bad("MP_TCPRST without RST", ethernet(c, &opt(0x81, &[3]))),
        bad(
            "RM_ADDR with nine ids",
            ethernet(s, &opt(0x40, &[1, 2, 3, 4, 5, 6, 7, 8, 9])),
        ),
        bad("MP_PRIO of size 4", ethernet(c, &opt(0x51, &[0]))),
    ]);
    out
}

/// A pcap (microseconds, little-endian, Ethernet) of `frames`, 1 ms apart.
pub fn pcap(frames: &[Frame]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(0xa1b2_c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(262_144u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        let len = u32::try_from(fr.bytes.len()).unwrap();
        f.extend(1_700_000_000u32.to_le_bytes());
        f.extend((u32::try_from(i).unwrap() * 1000).to_le_bytes());
        f.extend(len.to_le_bytes());
        f.extend(len.to_le_bytes());
        f.extend(&fr.bytes);
    }
    f
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = u32::try_from(body.len() + 12).unwrap();
    let mut b = Vec::new();
    b.extend(kind.to_le_bytes());
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

fn option(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    o.extend(code.to_le_bytes());
    o.extend(u16::try_from(value.len()).unwrap().to_le_bytes());
    o.extend(value);
    while !o.len().is_multiple_of(4) {
        o.push(0);
    }
    o
}

/// A pcapng of `frames` with two Ethernet interfaces (named, nanosecond resolution), frames
/// alternating between them, and each interface's drop count.
pub fn pcapng(frames: &[Frame], drops: [u64; 2]) -> Vec<u8> {
    let mut f = Vec::new();
    let mut shb = Vec::new();
    shb.extend(0x1a2b_3c4du32.to_le_bytes());
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    f.extend(block(0x0a0d_0d0a, &shb));
    for name in ["ue1:enp0s8", "ue1:enp0s9"] {
        let mut idb = Vec::new();
        idb.extend(1u16.to_le_bytes());
        idb.extend(0u16.to_le_bytes());
        idb.extend(262_144u32.to_le_bytes());
        idb.extend(option(2, name.as_bytes()));
        idb.extend(option(9, &[9]));
        idb.extend(option(0, &[]));
        f.extend(block(1, &idb));
    }
    let base: u64 = 1_700_000_000_000_000_000;
    for (i, fr) in frames.iter().enumerate() {
        let ts = base + u64::try_from(i).unwrap() * 1_000_000 + 7;
        let mut epb = Vec::new();
        epb.extend(u32::try_from(i % 2).unwrap().to_le_bytes());
        epb.extend(u32::try_from(ts >> 32).unwrap().to_le_bytes());
        epb.extend(u32::try_from(ts & 0xffff_ffff).unwrap().to_le_bytes());
        let len = u32::try_from(fr.bytes.len()).unwrap();
        epb.extend(len.to_le_bytes());
        epb.extend(len.to_le_bytes());
        epb.extend(&fr.bytes);
        while !epb.len().is_multiple_of(4) {
            epb.push(0);
        }
        f.extend(block(6, &epb));
    }
    for (id, d) in drops.iter().enumerate() {
        let mut isb = Vec::new();
        isb.extend(u32::try_from(id).unwrap().to_le_bytes());
        isb.extend(0u32.to_le_bytes());
        isb.extend(0u32.to_le_bytes());
        isb.extend(option(5, &d.to_le_bytes()));
        isb.extend(option(0, &[]));
        f.extend(block(5, &isb));
    }
    f
}
