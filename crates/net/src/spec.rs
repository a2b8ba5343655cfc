//! The resolved, validated description of one host's network configuration.
//!
//! These types carry no Lab.toml knowledge: the `lab` crate validates a Lab.toml, derives what was
//! left out, and hands each host's [`HostNet`] to the renderers here. Everything in a `HostNet` is
//! assumed valid (names checked, addresses inside their prefixes, ids unique).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// One host's network configuration, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostNet {
    /// The host's name in the lab (used in comments and file names only).
    pub host: String,
    /// Interfaces that get a static address from the lab.
    pub interfaces: Vec<Interface>,
    /// Interfaces that are configured by DHCP (a VM's NAT NIC); never part of MPTCP.
    pub dhcp_interfaces: Vec<String>,
    /// Per-source routing tables, one per path interface (each with its addresses as sources).
    pub tables: Vec<Table>,
    /// Routes in the main table (`ip route add ... metric N`), in the order they are added.
    pub routes: Vec<Route>,
    /// MPTCP endpoints, in the order they are added.
    pub endpoints: Vec<Endpoint>,
    /// MPTCP limits; `None` leaves the kernel's defaults.
    pub limits: Option<Limits>,
    /// Sysctls in the order they are written.
    pub sysctls: Vec<Sysctl>,
}

/// A statically addressed interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    /// Addresses with their prefix lengths, IPv4 or IPv6 (`10.1.1.1/24`,
    /// `dead:beef:1::1/64`); the first is the interface's primary address.
    pub addresses: Vec<IpNet>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub shaping: Option<Shaping>,
}

/// A per-source routing table: for each of its addresses `ip rule add from ADDRESS table NAME`
/// and an on-link route to the address's subnet; with a gateway of a family, a default route of
/// that family through it. (The kernel keeps IPv4 and IPv6 routes of one table id apart.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub id: u32,
    pub name: String,
    /// The device the table's routes leave by.
    pub dev: String,
    /// The source addresses whose packets use this table, with their prefixes (the on-link
    /// subnets).
    pub addresses: Vec<IpNet>,
    /// Default gateways, at most one per family.
    pub gateways: Vec<IpAddr>,
}

/// A route in the main table: `ip route add TO [via VIA] dev DEV [metric N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `None` is the default route.
    pub to: Option<IpNet>,
    pub via: Option<IpAddr>,
    pub dev: String,
    /// `None`: the kernel's default (0 for IPv4, 1024 for IPv6).
    pub metric: Option<u32>,
}

impl Route {
    /// Whether this is an IPv6 route (by its destination, else its gateway).
    pub fn is_ipv6(&self) -> bool {
        self.to
            .map(|t| t.addr().is_ipv6())
            .or(self.via.map(|v| v.is_ipv6()))
            .unwrap_or(false)
    }
}

/// An MPTCP path-manager endpoint (`ip mptcp endpoint add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub address: IpAddr,
    pub id: Option<u8>,
    pub dev: Option<String>,
    pub port: Option<u16>,
    pub flags: EndpointFlags,
}

/// Endpoint flags, with the kernel's bit values (include/uapi/linux/mptcp.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct EndpointFlags {
    pub signal: bool,
    pub subflow: bool,
    pub backup: bool,
    pub fullmesh: bool,
    pub laminar: bool,
}

impl EndpointFlags {
    pub const SIGNAL: u32 = 1 << 0;
    pub const SUBFLOW: u32 = 1 << 1;
    pub const BACKUP: u32 = 1 << 2;
    pub const FULLMESH: u32 = 1 << 3;
    pub const LAMINAR: u32 = 1 << 5;

    /// The flags as the kernel's `MPTCP_PM_ADDR_FLAG_*` bit set.
    pub fn bits(self) -> u32 {
        [
            (self.signal, Self::SIGNAL),
            (self.subflow, Self::SUBFLOW),
            (self.backup, Self::BACKUP),
            (self.fullmesh, Self::FULLMESH),
            (self.laminar, Self::LAMINAR),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit)
    }

    /// The flags of a kernel bit set; unknown bits are ignored.
    pub fn from_bits(bits: u32) -> Self {
        Self {
            signal: bits & Self::SIGNAL != 0,
            subflow: bits & Self::SUBFLOW != 0,
            backup: bits & Self::BACKUP != 0,
            fullmesh: bits & Self::FULLMESH != 0,
            laminar: bits & Self::LAMINAR != 0,
        }
    }

    /// The flag words in `ip mptcp endpoint` order.
    pub fn words(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.signal {
            out.push("signal");
        }
        if self.subflow {
            out.push("subflow");
        }
        if self.laminar {
            out.push("laminar");
        }
        if self.backup {
            out.push("backup");
        }
        if self.fullmesh {
            out.push("fullmesh");
        }
        out
    }
}

/// `ip mptcp limits set subflow N add_addr_accepted M`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub subflows: u32,
    pub add_addr_accepted: u32,
}

/// One sysctl, `key = value`, with the key in dotted form (`net.ipv4.conf.all.rp_filter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl Sysctl {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The key of a per-interface IPv4 setting. A dot inside an interface name (a VLAN such as
    /// `eth0.100`) is written as `/`, as sysctl(8) requires.
    pub fn ipv4_conf_key(ifname: &str, setting: &str) -> String {
        format!("net.ipv4.conf.{}.{setting}", ifname.replace('.', "/"))
    }
}

/// Link shaping on an interface's egress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Shaping {
    /// Rate in bit/s (tbf, or netem's `rate` with delay/loss).
    pub rate_bps: Option<u64>,
    /// Bucket size in bytes; derived from the rate when absent.
    pub burst_bytes: Option<u32>,
    /// One-way delay in microseconds (netem).
    pub delay_us: Option<u32>,
    /// Loss in parts per million (netem; 10_000 ppm = 1 %).
    pub loss_ppm: Option<u32>,
}

impl Shaping {
    /// Whether this needs netem (delay or loss) rather than tbf alone.
    pub fn needs_netem(&self) -> bool {
        self.delay_us.is_some() || self.loss_ppm.is_some()
    }

    /// The tbf bucket: the configured burst, or 10 ms worth of the rate, at least 32 KiB.
    pub fn effective_burst(&self) -> Option<u32> {
        let rate = self.rate_bps?;
        Some(self.burst_bytes.unwrap_or_else(|| {
            let ten_ms = rate / 8 / 100;
            u32::try_from(ten_ms.max(32 * 1024)).unwrap_or(u32::MAX)
        }))
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "`{s}` is not a MAC address (six hex pairs, e.g. 08:00:27:aa:bb:01)"
            ));
        }
        for (slot, part) in out.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(format!(
                    "`{s}` is not a MAC address: `{part}` is not two hex digits"
                ));
            }
            *slot = u8::from_str_radix(part, 16)
                .map_err(|_| format!("`{s}` is not a MAC address: `{part}` is not hex"))?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_round_trip() {
        for bits in 0..64u32 {
            let known = bits & !0x10; // 0x10 is the kernel's internal `implicit` flag
            assert_eq!(EndpointFlags::from_bits(bits).bits(), known);
        }
        assert_eq!(EndpointFlags::from_bits(0x20).words(), ["laminar"]);
        assert_eq!(
            EndpointFlags::from_bits(0x0a).words(),
            ["subflow", "fullmesh"]
        );
    }

    #[test]
    fn mac_parsing() {
        let m: MacAddr = "08:00:27:AA:bb:01".parse().unwrap();
        assert_eq!(m.to_string(), "08:00:27:aa:bb:01");
        assert!("08:00:27:aa:bb".parse::<MacAddr>().is_err());
        assert!("08:00:27:aa:bb:zz".parse::<MacAddr>().is_err());
        assert!("080:0:27:aa:bb:01".parse::<MacAddr>().is_err());
    }

    #[test]
    fn sysctl_keys_for_vlan_names() {
        assert_eq!(
            Sysctl::ipv4_conf_key("eth0.100", "arp_ignore"),
            "net.ipv4.conf.eth0/100.arp_ignore"
        );
    }

    #[test]
    fn tbf_burst_defaults() {
        let s = Shaping {
            rate_bps: Some(50_000_000),
            ..Default::default()
        };
        assert_eq!(s.effective_burst(), Some(62_500));
        let s = Shaping {
            rate_bps: Some(1_000_000),
            ..Default::default()
        };
        assert_eq!(s.effective_burst(), Some(32 * 1024));
        assert_eq!(Shaping::default().effective_burst(), None);
    }
}
