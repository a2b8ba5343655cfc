//! The kernel's MPTCP path manager over generic netlink (family "mptcp_pm",
//! include/uapi/linux/mptcp_pm.h): endpoints and limits, with every flag the kernel has,
//! including `laminar` (0x20, 6.18), which Debian's iproute2 6.1 cannot set.
//!
//! The mptcp-pm crate covers only the two GET commands and needs tokio; this module adds
//! ADD_ADDR, DEL_ADDR, SET_LIMITS and FLUSH_ADDRS on the same netlink-packet-generic types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, emit_u16, emit_u32, parse_u8, parse_u16, parse_u32,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::protocols::NETLINK_GENERIC;

use crate::Error;
use crate::nl::Conn;

const CMD_ADD_ADDR: u8 = 1;
const CMD_DEL_ADDR: u8 = 2;
const CMD_GET_ADDR: u8 = 3;
const CMD_FLUSH_ADDRS: u8 = 4;
const CMD_SET_LIMITS: u8 = 5;
const CMD_GET_LIMITS: u8 = 6;

const ATTR_ADDR: u16 = 1;
const ATTR_RCV_ADD_ADDRS: u16 = 2;
const ATTR_SUBFLOWS: u16 = 3;

const ADDR_FAMILY: u16 = 1;
const ADDR_ID: u16 = 2;
const ADDR_ADDR4: u16 = 3;
const ADDR_ADDR6: u16 = 4;
const ADDR_PORT: u16 = 5;
const ADDR_FLAGS: u16 = 6;
const ADDR_IF_IDX: u16 = 7;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// An endpoint as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PmEndpoint {
    pub id: u8,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    /// `MPTCP_PM_ADDR_FLAG_*` bits.
    pub flags: u32,
    /// Interface index (0: none).
    pub ifindex: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrAttr {
    Family(u16),
    Id(u8),
    Addr4(Ipv4Addr),
    Addr6(Ipv6Addr),
    Port(u16),
    Flags(u32),
    IfIndex(i32),
    Other(DefaultNla),
}

impl Nla for AddrAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Family(_) | Self::Port(_) => 2,
            Self::Id(_) => 1,
            Self::Addr4(_) | Self::Flags(_) | Self::IfIndex(_) => 4,
            Self::Addr6(_) => 16,
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Family(_) => ADDR_FAMILY,
            Self::Id(_) => ADDR_ID,
            Self::Addr4(_) => ADDR_ADDR4,
            Self::Addr6(_) => ADDR_ADDR6,
            Self::Port(_) => ADDR_PORT,
            Self::Flags(_) => ADDR_FLAGS,
            Self::IfIndex(_) => ADDR_IF_IDX,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, b: &mut [u8]) {
        match self {
            Self::Family(v) => {
                let _ = emit_u16(b, *v);
            }
            // The port is in network byte order (NLA_BE16 in the kernel's policy).
            Self::Port(v) => b.copy_from_slice(&v.to_be_bytes()),
            Self::Id(v) => b[0] = *v,
            Self::Addr4(a) => b.copy_from_slice(&a.octets()),
            Self::Addr6(a) => b.copy_from_slice(&a.octets()),
            Self::Flags(v) => {
                let _ = emit_u32(b, *v);
            }
            Self::IfIndex(v) => b.copy_from_slice(&v.to_ne_bytes()),
            Self::Other(o) => o.emit_value(b),
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&T>> for AddrAttr {
    fn parse(buf: &NlaBuffer<&T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            ADDR_FAMILY => Self::Family(parse_u16(v)?),
            ADDR_ID => Self::Id(parse_u8(v)?),
            ADDR_ADDR4 if v.len() == 4 => Self::Addr4(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            ADDR_ADDR6 if v.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(v);
                Self::Addr6(Ipv6Addr::from(o))
            }
            ADDR_PORT if v.len() == 2 => Self::Port(u16::from_be_bytes([v[0], v[1]])),
            ADDR_FLAGS => Self::Flags(parse_u32(v)?),
            ADDR_IF_IDX if v.len() == 4 => {
                Self::IfIndex(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PmAttr {
    Addr(Vec<AddrAttr>),
    RcvAddAddrs(u32),
    Subflows(u32),
    Other(DefaultNla),
}

impl Nla for PmAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Addr(a) => a.as_slice().buffer_len(),
            Self::RcvAddAddrs(_) | Self::Subflows(_) => 4,
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Addr(_) => ATTR_ADDR | NLA_F_NESTED,
            Self::RcvAddAddrs(_) => ATTR_RCV_ADD_ADDRS,
            Self::Subflows(_) => ATTR_SUBFLOWS,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, b: &mut [u8]) {
        match self {
            Self::Addr(a) => a.as_slice().emit(b),
            Self::RcvAddAddrs(v) | Self::Subflows(v) => {
                let _ = emit_u32(b, *v);
            }
            Self::Other(o) => o.emit_value(b),
        }
    }
}

/// One mptcp_pm message: a command and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmMessage {
    cmd: u8,
    attrs: Vec<PmAttr>,
}

impl GenlFamily for PmMessage {
    fn family_name() -> &'static str {
        "mptcp_pm"
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for PmMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for PmMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            attrs.push(match nla.kind() {
                ATTR_ADDR => PmAttr::Addr(
                    NlasIterator::new(nla.value())
                        .map(|a| a.and_then(|a| AddrAttr::parse(&a)))
                        .collect::<Result<_, _>>()?,
                ),
                ATTR_RCV_ADD_ADDRS => PmAttr::RcvAddAddrs(parse_u32(nla.value())?),
                ATTR_SUBFLOWS => PmAttr::Subflows(parse_u32(nla.value())?),
                _ => PmAttr::Other(DefaultNla::parse(&nla)?),
            });
        }
        Ok(Self {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// A change request, so that many can go in one write ([`MptcpPm::batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmReq {
    AddEndpoint(PmEndpoint),
    DelEndpoint {
        id: u8,
        address: IpAddr,
    },
    SetLimits {
        subflows: u32,
        add_addr_accepted: u32,
    },
}

impl PmReq {
    fn message(&self) -> (String, u8, Vec<PmAttr>) {
        match self {
            PmReq::AddEndpoint(e) => {
                let mut attrs = vec![AddrAttr::Family(match e.address {
                    Some(IpAddr::V6(_)) => AF_INET6,
                    _ => AF_INET,
                })];
                if e.id != 0 {
                    attrs.push(AddrAttr::Id(e.id));
                }
                if let Some(ip) = e.address {
                    attrs.push(addr_attr(ip));
                }
                if let Some(p) = e.port {
                    attrs.push(AddrAttr::Port(p));
                }
                attrs.push(AddrAttr::Flags(e.flags));
                if e.ifindex != 0 {
                    attrs.push(AddrAttr::IfIndex(e.ifindex));
                }
                let what = format!(
                    "adding MPTCP endpoint {} (flags 0x{:x})",
                    e.address.map_or_else(String::new, |a| a.to_string()),
                    e.flags
                );
                (what, CMD_ADD_ADDR, vec![PmAttr::Addr(attrs)])
            }
            PmReq::DelEndpoint { id, address } => (
                format!("deleting MPTCP endpoint id {id} {address}"),
                CMD_DEL_ADDR,
                vec![PmAttr::Addr(vec![
                    AddrAttr::Family(if address.is_ipv6() { AF_INET6 } else { AF_INET }),
                    AddrAttr::Id(*id),
                    addr_attr(*address),
                ])],
            ),
            PmReq::SetLimits {
                subflows,
                add_addr_accepted,
            } => (
                format!(
                    "setting MPTCP limits subflow {subflows} add_addr_accepted {add_addr_accepted}"
                ),
                CMD_SET_LIMITS,
                vec![
                    PmAttr::RcvAddAddrs(*add_addr_accepted),
                    PmAttr::Subflows(*subflows),
                ],
            ),
        }
    }
}

fn addr_attr(ip: IpAddr) -> AddrAttr {
    match ip {
        IpAddr::V4(a) => AddrAttr::Addr4(a),
        IpAddr::V6(a) => AddrAttr::Addr6(a),
    }
}

/// A connection to the MPTCP path manager of one namespace.
#[derive(Debug)]
pub struct MptcpPm {
    conn: Conn,
    family: u16,
}

impl MptcpPm {
    /// Open in the current thread's namespace and resolve the family id.
    pub fn open() -> Result<Self, Error> {
        let mut conn = Conn::open(NETLINK_GENERIC)?;
        let req = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName("mptcp_pm".into())],
        });
        let replies = conn
            .get("resolving the mptcp_pm generic netlink family", req)
            .map_err(|e| match e {
                Error::Netlink { source, .. } if source.raw_os_error() == Some(2) => {
                    Error::Missing("the kernel's MPTCP path manager (CONFIG_MPTCP)".into())
                }
                e => e,
            })?;
        let family = replies
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| Error::Decode("no family id for mptcp_pm".into()))?;
        Ok(Self { conn, family })
    }

    fn msg(&self, cmd: u8, attrs: Vec<PmAttr>) -> GenlMessage<PmMessage> {
        let mut m = GenlMessage::from_payload(PmMessage { cmd, attrs });
        m.set_resolved_family_id(self.family);
        m
    }

    pub fn endpoints(&mut self) -> Result<Vec<PmEndpoint>, Error> {
        let req = self.msg(CMD_GET_ADDR, vec![]);
        let replies = self.conn.dump("listing MPTCP endpoints", req)?;
        let mut out = Vec::new();
        for m in replies {
            for a in m.payload.attrs {
                let PmAttr::Addr(attrs) = a else { continue };
                let mut e = PmEndpoint::default();
                for a in attrs {
                    match a {
                        AddrAttr::Id(id) => e.id = id,
                        AddrAttr::Addr4(ip) => e.address = Some(IpAddr::V4(ip)),
                        AddrAttr::Addr6(ip) => e.address = Some(IpAddr::V6(ip)),
                        AddrAttr::Port(p) if p != 0 => e.port = Some(p),
                        AddrAttr::Flags(f) => e.flags = f,
                        AddrAttr::IfIndex(i) => e.ifindex = i,
                        _ => {}
                    }
                }
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    /// Add an endpoint (id 0: the kernel picks one).
    pub fn add_endpoint(&mut self, e: &PmEndpoint) -> Result<(), Error> {
        self.batch(&[PmReq::AddEndpoint(e.clone())])
    }

    pub fn del_endpoint(&mut self, id: u8, address: IpAddr) -> Result<(), Error> {
        self.batch(&[PmReq::DelEndpoint { id, address }])
    }

    pub fn set_limits(&mut self, subflows: u32, add_addr_accepted: u32) -> Result<(), Error> {
        self.batch(&[PmReq::SetLimits {
            subflows,
            add_addr_accepted,
        }])
    }

    /// Send `reqs` in one write and wait for all of them (in order; the first error stops).
    pub fn batch(&mut self, reqs: &[PmReq]) -> Result<(), Error> {
        let msgs = reqs
            .iter()
            .map(|r| {
                let (what, cmd, attrs) = r.message();
                (what, self.msg(cmd, attrs), 0)
            })
            .collect();
        self.conn.batch(msgs)
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        let req = self.msg(
            CMD_FLUSH_ADDRS,
            vec![PmAttr::Addr(vec![AddrAttr::Family(AF_INET)])],
        );
        self.conn.ack("flushing MPTCP endpoints", req, 0)
    }

    /// (subflows, add_addr_accepted)
    pub fn limits(&mut self) -> Result<(u32, u32), Error> {
        let req = self.msg(CMD_GET_LIMITS, vec![]);
        let replies = self.conn.get("reading MPTCP limits", req)?;
        let (mut subflows, mut accepted) = (0, 0);
        for m in replies {
            for a in m.payload.attrs {
                match a {
                    PmAttr::Subflows(v) => subflows = v,
                    PmAttr::RcvAddAddrs(v) => accepted = v,
                    _ => {}
                }
            }
        }
        Ok((subflows, accepted))
    }
}
