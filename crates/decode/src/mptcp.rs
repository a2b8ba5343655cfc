//! Every MPTCP v1 option (RFC 8684, TCP option kind 30), read with the size rules of the Linux
//! kernel's `mptcp_parse_option()` (net/mptcp/options.c, 6.x; the lengths are protocol.h's
//! `TCPOLEN_MPTCP_*`): an option whose size does not fit its subtype and the packet, or whose
//! MP_CAPABLE version or flags the kernel refuses, is not applied by the kernel, and is
//! [`Mptcp::Invalid`] here, with the reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// TCP option kind of MPTCP.
pub const TCPOPT_MPTCP: u8 = 30;

/// The subtypes (the high nibble of the option's third byte).
pub mod subtype {
    pub const MP_CAPABLE: u8 = 0;
    pub const MP_JOIN: u8 = 1;
    pub const DSS: u8 = 2;
    pub const ADD_ADDR: u8 = 3;
    pub const RM_ADDR: u8 = 4;
    pub const MP_PRIO: u8 = 5;
    pub const MP_FAIL: u8 = 6;
    pub const MP_FASTCLOSE: u8 = 7;
    pub const MP_TCPRST: u8 = 8;
}

// protocol.h's TCPOLEN_MPTCP_* (option sizes, kind and length bytes included).
const MPC_SYN: usize = 4;
const MPC_SYNACK: usize = 12;
const MPC_ACK: usize = 20;
const MPC_ACK_DATA: usize = 22;
const MPC_ACK_DATA_CSUM: usize = 24;
const MPJ_SYN: usize = 12;
const MPJ_SYNACK: usize = 16;
const MPJ_ACK: usize = 24;
const DSS_BASE: usize = 4;
const DSS_ACK32: usize = 4;
const DSS_ACK64: usize = 8;
const DSS_MAP32: usize = 10;
const DSS_MAP64: usize = 14;
const DSS_CHECKSUM: usize = 2;
const ADD_ADDR: usize = 16;
const ADD_ADDR_PORT: usize = 18;
const ADD_ADDR_BASE: usize = 8;
const ADD_ADDR_BASE_PORT: usize = 10;
const ADD_ADDR6: usize = 28;
const ADD_ADDR6_PORT: usize = 30;
const ADD_ADDR6_BASE: usize = 20;
const ADD_ADDR6_BASE_PORT: usize = 22;
const RM_ADDR_BASE: usize = 3;
const RM_IDS_MAX: usize = 8;
const PRIO: usize = 3;
const FASTCLOSE: usize = 12;
const RST: usize = 4;
const FAIL: usize = 12;

/// The MPTCP version this decoder (and Linux) speaks.
pub const VERSION: u8 = 1;

/// One MPTCP option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mptcp {
    MpCapable(MpCapable),
    MpJoin(MpJoin),
    Dss(Dss),
    AddAddr(AddAddr),
    /// The address ids removed.
    RmAddr {
        ids: Vec<u8>,
    },
    MpPrio {
        backup: bool,
    },
    /// The data sequence number where the checksum failed.
    MpFail {
        dsn: u64,
    },
    /// The receiver's key.
    MpFastclose {
        key: u64,
    },
    /// MP_TCPRST: `transient` (T flag) and the reason (RFC 8684 3.6).
    MpTcpRst {
        flags: u8,
        reason: u8,
    },
    /// An option the kernel would not apply: its subtype, size, and why.
    Invalid {
        subtype: u8,
        len: u8,
        why: &'static str,
    },
}

impl Mptcp {
    /// The subtype number.
    pub fn subtype(&self) -> u8 {
        match self {
            Mptcp::MpCapable(_) => subtype::MP_CAPABLE,
            Mptcp::MpJoin(_) => subtype::MP_JOIN,
            Mptcp::Dss(_) => subtype::DSS,
            Mptcp::AddAddr(_) => subtype::ADD_ADDR,
            Mptcp::RmAddr { .. } => subtype::RM_ADDR,
            Mptcp::MpPrio { .. } => subtype::MP_PRIO,
            Mptcp::MpFail { .. } => subtype::MP_FAIL,
            Mptcp::MpFastclose { .. } => subtype::MP_FASTCLOSE,
            Mptcp::MpTcpRst { .. } => subtype::MP_TCPRST,
            Mptcp::Invalid { subtype, .. } => *subtype,
        }
    }
}

/// MP_CAPABLE, on the SYN, SYN/ACK, third ACK, or the first data packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MpCapable {
    pub version: u8,
    /// A (checksum required), B (extensibility), C (no join to the initial address), H (SHA-256).
    pub flags: u8,
    /// The sender's key (SYN/ACK and later).
    pub sender_key: Option<u64>,
    /// The receiver's key (third ACK and data).
    pub receiver_key: Option<u64>,
    /// The data-level length of the first data packet's mapping.
    pub data_len: Option<u16>,
    pub checksum: Option<u16>,
}

impl MpCapable {
    /// Checksums were asked for (flag A).
    pub fn checksum_required(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// MP_JOIN's three forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum MpJoin {
    Syn {
        backup: bool,
        addr_id: u8,
        /// The receiver's token: the connection this subflow joins.
        token: u32,
        nonce: u32,
    },
    SynAck {
        backup: bool,
        addr_id: u8,
        /// The sender's truncated HMAC.
        hmac: u64,
        nonce: u32,
    },
    Ack {
        /// The sender's full HMAC (20 bytes).
        hmac: [u8; 20],
    },
}

/// DSS: a data ACK, a mapping, or both; DATA_FIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dss {
    pub data_fin: bool,
    /// The data ACK as sent (4 or 8 bytes: `ack64`).
    pub data_ack: Option<u64>,
    pub ack64: bool,
    pub mapping: Option<Mapping>,
}

/// A DSS mapping: data-level bytes `dsn..dsn+len` are subflow bytes from `ssn` on (relative to
/// the subflow's initial sequence number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The data sequence number as sent (4 or 8 bytes: `dsn64`).
    pub dsn: u64,
    pub dsn64: bool,
    /// The relative subflow sequence number.
    pub ssn: u32,
    pub len: u16,
    pub checksum: Option<u16>,
}

/// ADD_ADDR: an address announced (or, with `echo`, acknowledged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddAddr {
    pub echo: bool,
    pub id: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
    /// The truncated HMAC (not on an echo).
    pub hmac: Option<u64>,
}

/// What of the TCP header the kernel's rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    /// The segment carries payload (the kernel's `skb->len > doff * 4`).
    pub payload: bool,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The MPTCP options among a TCP header's options (the bytes after the fixed 20), walked as the
/// kernel's `mptcp_get_options()` walks them: EOL ends, NOP is skipped, a length below 2 or past
/// the end stops the walk. Each MPTCP option is decoded or [`Mptcp::Invalid`].
///
/// ```
/// use decode::mptcp::{options, Context, Mptcp, MpCapable};
/// // MP_CAPABLE on a SYN: version 1, flags H (SHA-256).
/// let syn = Context { syn: true, ack: false, rst: false, payload: false };
/// let got = options(&[30, 4, 0x01, 0x01], syn);
/// assert_eq!(got, [Mptcp::MpCapable(MpCapable {
///     version: 1, flags: 1, sender_key: None, receiver_key: None, data_len: None, checksum: None,
/// })]);
/// ```
pub fn options(mut opts: &[u8], ctx: Context) -> Vec<Mptcp> {
    let mut out = Vec::new();
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(1) else { break };
        let size = usize::from(len);
        if size < 2 || size > opts.len() {
            break;
        }
        if kind == TCPOPT_MPTCP {
            out.push(one(&opts[..size], ctx));
        }
        opts = &opts[size..];
    }
    out
}

/// One MPTCP option, `opt` from its kind byte to its end (at least 2 bytes).
fn one(opt: &[u8], ctx: Context) -> Mptcp {
    let size = opt.len();
    let invalid = |subtype: u8, why: &'static str| Mptcp::Invalid {
        subtype,
        len: u8::try_from(size).unwrap_or(u8::MAX),
        why,
    };
    // The kernel reads the subtype byte without checking that it exists; a 2-byte option has
    // none.
    let Some(&first) = opt.get(2) else {
        return invalid(0xff, "no subtype byte");
    };
    let st = first >> 4;
    let p = &opt[2..];
    match st {
        subtype::MP_CAPABLE => {
            let expected = match (ctx.syn, ctx.ack) {
                (false, _) if ctx.payload => MPC_ACK_DATA,
                (false, _) => MPC_ACK,
                (true, true) => MPC_SYNACK,
                (true, false) => MPC_SYN,
            };
            if size != expected && (expected != MPC_ACK_DATA || size != MPC_ACK_DATA_CSUM) {
                return invalid(
                    st,
                    "size does not fit the packet (SYN 4, SYN/ACK 12, ACK 20, data 22 or 24)",
                );
            }
            let version = first & 0x0f;
            if (size != MPC_SYN && version != VERSION) || (size == MPC_SYN && version < VERSION) {
                return invalid(st, "MPTCP version other than 1");
            }
            let flags = p[1];
            if flags & 0x1f != 0x01 || flags & 0x40 != 0 {
                return invalid(st, "flags without SHA-256 alone, or with extensibility");
            }
            let mut c = MpCapable {
                version,
                flags,
                sender_key: None,
                receiver_key: None,
                data_len: None,
                checksum: None,
            };
            if size >= MPC_SYNACK {
                c.sender_key = Some(be64(&p[2..]));
            }
            if size >= MPC_ACK {
                c.receiver_key = Some(be64(&p[10..]));
            }
            if size >= MPC_ACK_DATA {
                c.data_len = Some(be16(&p[18..]));
            }
            if size == MPC_ACK_DATA_CSUM {
                c.checksum = Some(be16(&p[20..]));
            }
            Mptcp::MpCapable(c)
        }
        subtype::MP_JOIN => match size {
            MPJ_SYN => Mptcp::MpJoin(MpJoin::Syn {
                backup: first & 0x01 != 0,
                addr_id: p[1],
                token: be32(&p[2..]),
                nonce: be32(&p[6..]),
            }),
            MPJ_SYNACK => Mptcp::MpJoin(MpJoin::SynAck {
                backup: first & 0x01 != 0,
                addr_id: p[1],
                hmac: be64(&p[2..]),
                nonce: be32(&p[10..]),
            }),
            MPJ_ACK => {
                let mut hmac = [0u8; 20];
                hmac.copy_from_slice(&p[2..22]);
                Mptcp::MpJoin(MpJoin::Ack { hmac })
            }
            _ => invalid(st, "size other than 12 (SYN), 16 (SYN/ACK) or 24 (ACK)"),
        },
        subtype::DSS => {
            let Some(&flags) = p.get(1) else {
                return invalid(st, "no flags byte");
            };
            let flags = flags & 0x1f;
            let data_fin = flags & 0x10 != 0;
            let dsn64 = flags & 0x08 != 0;
            let has_map = flags & 0x04 != 0;
            let ack64 = flags & 0x02 != 0;
            let has_ack = flags & 0x01 != 0;
            let mut expected = DSS_BASE;
            if has_ack {
                expected += if ack64 { DSS_ACK64 } else { DSS_ACK32 };
            }
            if has_map {
                expected += if dsn64 { DSS_MAP64 } else { DSS_MAP32 };
            }
            if size != expected && size != expected + DSS_CHECKSUM {
                return invalid(st, "size does not match its flags");
            }
            let mut at = &p[2..];
            let data_ack = has_ack.then(|| {
                if ack64 {
                    let v = be64(at);
                    at = &at[8..];
                    v
                } else {
                    let v = u64::from(be32(at));
                    at = &at[4..];
                    v
                }
            });
            let mapping = has_map.then(|| {
                let dsn = if dsn64 {
                    let v = be64(at);
                    at = &at[8..];
                    v
                } else {
                    let v = u64::from(be32(at));
                    at = &at[4..];
                    v
                };
                let ssn = be32(at);
                let len = be16(&at[4..]);
                let checksum = (size == expected + DSS_CHECKSUM).then(|| be16(&at[6..]));
                Mapping {
                    dsn,
                    dsn64,
                    ssn,
                    len,
                    checksum,
                }
            });
            Mptcp::Dss(Dss {
                data_fin,
                data_ack,
                ack64,
                mapping,
            })
        }
        subtype::ADD_ADDR => {
            let echo = first & 0x01 != 0;
            let (v6, port) = match (echo, size) {
                (false, ADD_ADDR) | (true, ADD_ADDR_BASE) => (false, false),
                (false, ADD_ADDR_PORT) | (true, ADD_ADDR_BASE_PORT) => (false, true),
                (false, ADD_ADDR6) | (true, ADD_ADDR6_BASE) => (true, false),
                (false, ADD_ADDR6_PORT) | (true, ADD_ADDR6_BASE_PORT) => (true, true),
                _ => return invalid(st, "size fits no IPv4/IPv6, port, echo form"),
            };
            let id = p[1];
            let mut at = &p[2..];
            let addr = if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&at[..16]);
                at = &at[16..];
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                let a = Ipv4Addr::new(at[0], at[1], at[2], at[3]);
                at = &at[4..];
                IpAddr::V4(a)
            };
            let port = port.then(|| {
                let v = be16(at);
                at = &at[2..];
                v
            });
            let hmac = (!echo).then(|| be64(at));
            Mptcp::AddAddr(AddAddr {
                echo,
                id,
                addr,
                port,
                hmac,
            })
        }
        subtype::RM_ADDR => {
            if !(RM_ADDR_BASE + 1..=RM_ADDR_BASE + RM_IDS_MAX).contains(&size) {
                return invalid(st, "not 1 to 8 address ids");
            }
            Mptcp::RmAddr {
                ids: p[1..].to_vec(),
            }
        }
        subtype::MP_PRIO => {
            if size != PRIO {
                return invalid(st, "size other than 3");
            }
            Mptcp::MpPrio {
                backup: first & 0x01 != 0,
            }
        }
        subtype::MP_FASTCLOSE => {
            if size != FASTCLOSE {
                return invalid(st, "size other than 12");
            }
            Mptcp::MpFastclose { key: be64(&p[2..]) }
        }
        subtype::MP_TCPRST => {
            if size != RST {
                return invalid(st, "size other than 4");
            }
            if !ctx.rst {
                return invalid(st, "on a segment without RST");
            }
            Mptcp::MpTcpRst {
                flags: first & 0x0f,
                reason: p[1],
            }
        }
        subtype::MP_FAIL => {
            if size != FAIL {
                return invalid(st, "size other than 12");
            }
            Mptcp::MpFail { dsn: be64(&p[2..]) }
        }
        _ => invalid(st, "unknown subtype"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: Context = Context {
        syn: true,
        ack: false,
        rst: false,
        payload: false,
    };
    const ACK: Context = Context {
        syn: false,
        ack: true,
        rst: false,
        payload: false,
    };

    #[test]
    fn walk_stops_as_the_kernel_does() {
        // NOPs skipped, then MP_PRIO, then EOL: what follows is not read.
        let got = options(&[1, 1, 30, 3, 0x51, 0, 30, 3, 0x50], ACK);
        assert_eq!(got, [Mptcp::MpPrio { backup: true }]);
        // A length past the end stops the walk.
        assert!(options(&[30, 40, 0x50], ACK).is_empty());
        // A 2-byte MPTCP option has no subtype.
        assert!(matches!(
            options(&[30, 2], ACK)[..],
            [Mptcp::Invalid { .. }]
        ));
    }

    #[test]
    fn sizes_that_the_kernel_refuses() {
        // MP_CAPABLE of SYN size on an ACK.
        assert!(matches!(
            options(&[30, 4, 0x01, 0x01], ACK)[..],
            [Mptcp::Invalid { subtype: 0, .. }]
        ));
        // Version 0 (RFC 6824) and a SHA-1 only flag set.
        assert!(matches!(
            options(&[30, 4, 0x00, 0x01], SYN)[..],
            [Mptcp::Invalid { .. }]
        ));
        assert!(matches!(
            options(&[30, 4, 0x01, 0x00], SYN)[..],
            [Mptcp::Invalid { .. }]
        ));
        // DSS whose size does not match its flags (ACK32 announced, nothing there).
        assert!(matches!(
            options(&[30, 4, 0x20, 0x01], ACK)[..],
            [Mptcp::Invalid { .. }]
        ));
        // MP_TCPRST without RST.
        assert!(matches!(
            options(&[30, 4, 0x80, 1], ACK)[..],
            [Mptcp::Invalid { .. }]
        ));
        // RM_ADDR with 9 ids.
        let mut rm = vec![30, 12, 0x40];
        rm.extend(1..=9);
        assert!(matches!(options(&rm, ACK)[..], [Mptcp::Invalid { .. }]));
    }
}
