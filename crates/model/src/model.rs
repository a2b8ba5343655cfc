//! The resolved lab: validated, with everything left out of the Lab.toml derived.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A whole lab, as every command and embedder sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lab {
    pub name: String,
    /// Whether lab derived what the file left out (`[lab] derive`, default true).
    pub derive: bool,
    /// Shared L2 segments (VirtualBox internal networks, bridges).
    pub networks: Vec<Network>,
    /// Point-to-point links (veth pairs, socket pairs).
    pub links: Vec<Link>,
    pub hosts: Vec<Host>,
    /// What must hold after a test (`[[checks]]`), in the file's order.
    pub checks: Vec<crate::checks::Check>,
    /// The transfer's time line (`[test] events`), in the file's order.
    pub events: Vec<crate::events::Event>,
    /// The machines hosts are placed on (`[machines.NAME]`); empty: this machine only.
    pub machines: Vec<Machine>,
}

/// The first UDP port of a lab's tunnels (one port per tunnel, counting up).
pub const FIRST_TUNNEL_PORT: u16 = 4790;

/// A network or link whose hosts sit on more than one machine, joined by one VXLAN tunnel of
/// its own: its own VNI and UDP port, so each MPTCP path crosses the underlay apart from the
/// others (whichever provider runs its hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    /// The wire it carries ([`Attach::wire`]: `net-<network>` or `link-<link>`).
    pub wire: String,
    /// Its machines, in the order of their first host on it in [`Lab::hosts`].
    pub machines: Vec<String>,
    /// 24 bits, never 0, from the lab's and the wire's names.
    pub vni: u32,
    pub port: u16,
    /// The MTU inside it ([`Lab::tunnel_inside`]).
    pub mtu: Option<u32>,
}

/// FNV-1a over the parts, each ended by a 0 byte: names derived from it (devices, VNIs, MACs)
/// stay the same from run to run and machine to machine.
///
/// ```
/// assert_eq!(model::stable_hash(&["a", "b"]), model::stable_hash(&["a", "b"]));
/// assert_ne!(model::stable_hash(&["ab", ""]), model::stable_hash(&["a", "b"]));
/// ```
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A machine lab places hosts on, reached over SSH, joined to the others by an underlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub name: String,
    pub ssh: SshTarget,
    /// Its address on the underlay (the tunnels' endpoints).
    pub underlay: IpAddr,
    pub underlay_mtu: u32,
    /// What its underlay NIC carries, if Lab.toml says.
    pub underlay_rate_bps: Option<u64>,
}

impl Machine {
    /// The MTU inside a VXLAN tunnel over this machine's underlay: 50 bytes of outer
    /// Ethernet, IP, UDP and VXLAN headers less over IPv4, 70 over IPv6.
    ///
    /// ```
    /// let m = model::Machine {
    ///     name: "m1".into(),
    ///     ssh: model::SshTarget { address: "m1".into(), port: 22, user: "root".into(), key: None },
    ///     underlay: "192.0.2.1".parse().unwrap(),
    ///     underlay_mtu: 1500,
    ///     underlay_rate_bps: None,
    /// };
    /// assert_eq!(m.tunnel_mtu(), 1450);
    /// ```
    pub fn tunnel_mtu(&self) -> u32 {
        let overhead = if self.underlay.is_ipv6() { 70 } else { 50 };
        self.underlay_mtu.saturating_sub(overhead)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: String,
    /// The segment's subnets (`subnet`, or `subnets` for a dual-stack segment), at most one
    /// per family; an interface's address of a family must lie inside that family's subnet.
    pub subnets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub name: String,
    pub a: Attachment,
    pub b: Attachment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub host: String,
    pub interface: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Client,
}

impl Role {
    /// The name as written in Lab.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// Where a host's machine comes from: the name of a provider (`netns`, the default; `qemu`,
/// `virtualbox`, `ssh`, or one a program registered). The model only checks the name's form;
/// whether a provider of that name exists is the session's question (its registry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Provider(String);

impl schemars::JsonSchema for Provider {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Provider".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9-]{0,31}$",
            "description": "A provider: netns (the default), qemu, virtualbox, ssh, libvirt, or one a program registered",
            "examples": ["netns", "qemu", "virtualbox", "ssh"]
        })
    }
}

impl Provider {
    /// The provider of hosts that name none: network namespaces on this machine.
    pub const DEFAULT: &'static str = "netns";

    /// A provider name: 1 to 32 of `[a-z0-9-]`, starting with a letter.
    ///
    /// ```
    /// assert!(model::Provider::new("qemu").is_ok());
    /// assert!(model::Provider::new("Qemu").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "`{name}` is not a provider name (1 to 32 of a-z, 0-9 and -, starting with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Provider {
    fn default() -> Self {
        Self(Self::DEFAULT.to_string())
    }
}

impl TryFrom<String> for Provider {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(&s)
    }
}

impl From<Provider> for String {
    fn from(p: Provider) -> String {
        p.0
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Provider {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Provider {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// How a client opens extra subflows when lab derives its endpoints.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JoinMode {
    /// `laminar` endpoints on every address: one subflow per announced address, paired 1:1.
    /// Needs a kernel with the laminar flag (6.18); appliers fall back to `subflow` without it.
    #[default]
    Laminar,
    /// `subflow` endpoints on the extra addresses.
    Subflow,
    /// `subflow fullmesh` endpoints on every address.
    Fullmesh,
}

/// mptcpd's path-manager plugins.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MptcpdPlugin {
    /// Adds an endpoint for every address that appears (mptcpd's default).
    #[default]
    AddrAdv,
    /// Single-subflow-per-interface.
    Sspi,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Mptcpd {
    pub enabled: bool,
    pub path_manager: MptcpdPlugin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vm {
    pub memory_mib: u32,
    pub cpus: u32,
    pub disk_gib: u32,
    /// Where the VM's system comes from; `None`: the provider's default ([`Vm::image_or`]).
    /// VirtualBox: `ubuntu-22.04` (an installer ISO in lab's cache), a path to an `.iso` or
    /// `.ova`, or `vbox:BASE[@SNAPSHOT]` (a VirtualBox VM to clone). QEMU: `debian-12` (built
    /// by lab), `ubuntu-22.04` (the cloud image), a cloud image's URL or file. Both: a Vagrant
    /// box, `ORG/NAME[@VERSION]` (in Vagrant's home), a `.box` file or a `.box` URL.
    pub image: Option<String>,
    /// The account lab logs in as over SSH (with the lab's key): `root` unless Lab.toml says,
    /// `vagrant` for a Vagrant box.
    pub user: String,
    /// The SHA-256 (lowercase hex) a box downloaded from a URL must have.
    pub checksum: Option<String>,
    /// The hypervisor the VM runs under (libvirt): `None` is the provider's default,
    /// [`crate::uri::DEFAULT`].
    pub uri: Option<crate::uri::HypervisorUri>,
}

impl Vm {
    /// The image, or `default` (each provider has its own: the guide's Ubuntu 22.04 on
    /// VirtualBox, lab's Debian 12 on QEMU).
    pub fn image_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.image.as_deref().unwrap_or(default)
    }
}

impl Default for Vm {
    fn default() -> Self {
        Self {
            memory_mib: 2048,
            cpus: 2,
            disk_gib: 20,
            image: None,
            user: "root".into(),
            checksum: None,
            uri: None,
        }
    }
}

/// How to reach an existing host (provider `ssh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshTarget {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
}

/// What an interface is plugged into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Attach {
    /// A shared segment from `[networks]`.
    Network(String),
    /// A point-to-point link from `[[links]]`.
    Link(String),
    /// The VM's NAT NIC (DHCP, management only).
    Nat,
}

impl Attach {
    /// The wire it is on, as providers name segments: `net-<network>` or `link-<link>`;
    /// `None` for NAT.
    ///
    /// ```
    /// assert_eq!(model::Attach::Network("lan".into()).wire().as_deref(), Some("net-lan"));
    /// assert_eq!(model::Attach::Nat.wire(), None);
    /// ```
    pub fn wire(&self) -> Option<String> {
        match self {
            Attach::Nat => None,
            Attach::Network(n) => Some(format!("net-{n}")),
            Attach::Link(l) => Some(format!("link-{l}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub attach: Attach,
    /// Static addresses, IPv4 and IPv6 (`address`, or `addresses` for several); empty only
    /// for NAT interfaces. The first is the interface's primary address: lab's derived MPTCP
    /// endpoints and its test traffic use primary addresses.
    pub addresses: Vec<IpNet>,
    /// Default gateways of this path's routing table, at most one per family.
    pub gateways: Vec<IpAddr>,
    /// Routes in the main table that leave by this interface (`routes`).
    pub routes: Vec<net::Route>,
    pub mac: Option<net::MacAddr>,
    /// The MTU Lab.toml sets.
    pub mtu: Option<u32>,
    /// The MTU inside the VXLAN tunnel its network or link takes between machines, set by
    /// placement ([`Lab::balance`]); `None` when the wire stays on one machine.
    pub tunnel_mtu: Option<u32>,
    pub shaping: Option<net::Shaping>,
}

impl Interface {
    /// The MTU lab gives the interface: Lab.toml's, else the inside of its tunnel, else `None`
    /// (the kernel's default).
    pub fn effective_mtu(&self) -> Option<u32> {
        self.mtu.or(self.tunnel_mtu)
    }

    pub fn is_nat(&self) -> bool {
        self.attach == Attach::Nat
    }

    /// The primary (first) address; `None` for a NAT interface.
    pub fn address(&self) -> Option<IpNet> {
        self.addresses.first().copied()
    }

    /// Whether `addr` is one of this interface's addresses.
    pub fn has_address(&self, addr: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.addr() == addr)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    pub role: Role,
    pub provider: Provider,
    /// The machine it runs on (`[machines.NAME]`); `None`: this machine.
    pub machine: Option<String>,
    /// Whether `machine` was chosen by [`Lab::balance`] rather than named in Lab.toml.
    pub balanced: bool,
    pub vm: Vm,
    pub ssh: Option<SshTarget>,
    pub interfaces: Vec<Interface>,
    pub tables: Vec<net::Table>,
    pub endpoints: Vec<net::Endpoint>,
    /// `None`: the kernel's defaults (subflows 2, add_addr_accepted 0).
    pub limits: Option<net::Limits>,
    pub sysctls: Vec<net::Sysctl>,
    pub mptcpd: Mptcpd,
    pub join: JoinMode,
}

impl Host {
    /// Interfaces with a static address (every MPTCP path), in Lab.toml order.
    pub fn path_interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.iter().filter(|i| !i.is_nat())
    }

    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The interface holding `addr`, if any.
    pub fn interface_with(&self, addr: IpAddr) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.has_address(addr))
    }

    /// The value a sysctl is set to by this lab, if it sets it.
    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls
            .iter()
            .rev()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// This host's configuration for the renderers in `net`.
    pub fn net(&self) -> net::HostNet {
        net::HostNet {
            host: self.name.clone(),
            interfaces: self
                .path_interfaces()
                .filter(|i| !i.addresses.is_empty())
                .map(|i| net::Interface {
                    name: i.name.clone(),
                    addresses: i.addresses.clone(),
                    mac: i.mac,
                    mtu: i.effective_mtu(),
                    shaping: i.shaping,
                })
                .collect(),
            dhcp_interfaces: self
                .interfaces
                .iter()
                .filter(|i| i.is_nat())
                .map(|i| i.name.clone())
                .collect(),
            tables: self.tables.clone(),
            routes: self
                .interfaces
                .iter()
                .flat_map(|i| i.routes.iter().cloned())
                .collect(),
            endpoints: self.endpoints.clone(),
            limits: self.limits,
            sysctls: self.sysctls.clone(),
        }
    }
}

impl Lab {
    /// Shape every MPTCP path (each statically addressed interface of every host) to
    /// `rate_bps` with tbf, as `lab demo` and `lab bench` do.
    pub fn shape_paths(&mut self, rate_bps: u64) {
        for h in &mut self.hosts {
            for i in &mut h.interfaces {
                if !i.is_nat() {
                    i.shaping = Some(net::Shaping {
                        rate_bps: Some(rate_bps),
                        ..Default::default()
                    });
                }
            }
        }
    }

    /// The lab with each host that names no machine placed on the machine with the fewest
    /// hosts (the first of those in Lab.toml's order), when `placeable` says its provider can
    /// put hosts on other machines and it names no hypervisor URI; any other host stays where
    /// its provider (or URI) runs it. Places
    /// chosen by an earlier balancing are chosen again. Without `[machines]`, nothing moves.
    ///
    /// ```
    /// let text = model::Preset::Builtin.source().replacen(
    ///     "[hosts.ue1]\n",
    ///     "[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
    ///      [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n[hosts.ue1]\n",
    ///     1,
    /// );
    /// let lab = model::parse("Lab.toml", &text).unwrap();
    /// assert!(lab.hosts.iter().all(|h| h.machine.is_none()));
    /// let spread = lab.balance(|p| p.as_str() == "netns");
    /// let on: Vec<_> = spread.hosts.iter().map(|h| h.machine.as_deref()).collect();
    /// assert_eq!(on, [Some("m1"), Some("m2")]);
    /// assert!(lab.balance(|_| false).hosts.iter().all(|h| h.machine.is_none()));
    /// ```
    pub fn balance(&self, placeable: impl Fn(&Provider) -> bool) -> Lab {
        let mut l = self.clone();
        for h in l.hosts.iter_mut().filter(|h| h.balanced) {
            h.machine = None;
            h.balanced = false;
        }
        if l.machines.is_empty() {
            return l;
        }
        let mut load: Vec<usize> = l
            .machines
            .iter()
            .map(|m| {
                l.hosts
                    .iter()
                    .filter(|h| h.machine.as_deref() == Some(&m.name))
                    .count()
            })
            .collect();
        for h in &mut l.hosts {
            // A host with a hypervisor URI runs where it says.
            if h.machine.is_some() || h.vm.uri.is_some() || !placeable(&h.provider) {
                continue;
            }
            let i = (0..load.len()).min_by_key(|i| (load[*i], *i)).unwrap_or(0);
            load[i] += 1;
            h.machine = Some(l.machines[i].name.clone());
            h.balanced = true;
        }
        l.derive_tunnel_mtus();
        l
    }

    /// The inside of a tunnel between `machines` (names): the smallest of theirs
    /// ([`Machine::tunnel_mtu`]); `None` when none of them is declared.
    pub fn tunnel_inside<'a>(&self, machines: impl IntoIterator<Item = &'a str>) -> Option<u32> {
        let names: Vec<&str> = machines.into_iter().collect();
        self.machines
            .iter()
            .filter(|m| names.contains(&m.name.as_str()))
            .map(Machine::tunnel_mtu)
            .min()
    }

    /// The lab's tunnels: one per network or link whose hosts sit on more than one machine, in
    /// Lab.toml order, ports counting up from [`FIRST_TUNNEL_PORT`].
    ///
    /// ```
    /// let mut text = String::from(
    ///     "[lab]\nname = \"t\"\n\n[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
    ///      [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n\
    ///      [hosts.srv]\nrole = \"server\"\nmachine = \"m1\"\n\n\
    ///      [hosts.cli]\nrole = \"client\"\nmachine = \"m2\"\n\n",
    /// );
    /// for p in 1..=3 {
    ///     text += &format!("[[links]]\nname = \"path{p}\"\nendpoints = [\"srv:eth{p}\", \"cli:eth{p}\"]\n\n");
    ///     text += &format!("[[hosts.srv.interfaces]]\nname = \"eth{p}\"\naddress = \"10.0.{p}.1/24\"\n\n");
    ///     text += &format!("[[hosts.cli.interfaces]]\nname = \"eth{p}\"\naddress = \"10.0.{p}.2/24\"\n\n");
    /// }
    /// let lab = model::parse("Lab.toml", &text).unwrap();
    /// let t = lab.tunnels();
    /// assert_eq!(t.len(), 3, "one per path");
    /// assert_eq!(t[0].wire, "link-path1");
    /// assert_eq!(t[0].machines.len(), 2);
    /// assert_eq!((t[0].port, t[1].port, t[2].port), (4790, 4791, 4792));
    /// assert_eq!(t[0].mtu, Some(1450), "a 1500-byte underlay less VXLAN's 50");
    /// assert!(t[0].vni != t[1].vni && t[0].vni != 0);
    /// // Both hosts on one machine: nothing crosses.
    /// let one = model::parse("Lab.toml", &text.replace("machine = \"m2\"", "machine = \"m1\"")).unwrap();
    /// assert!(one.tunnels().is_empty());
    /// ```
    pub fn tunnels(&self) -> Vec<Tunnel> {
        let mut wires: Vec<(String, Vec<String>)> = Vec::new();
        for h in &self.hosts {
            let Some(m) = h.machine.as_deref() else {
                continue;
            };
            for k in h.interfaces.iter().filter_map(|i| i.attach.wire()) {
                let at = match wires.iter().position(|w| w.0 == k) {
                    Some(at) => at,
                    None => {
                        wires.push((k, Vec::new()));
                        wires.len() - 1
                    }
                };
                if !wires[at].1.iter().any(|x| x == m) {
                    wires[at].1.push(m.to_string());
                }
            }
        }
        wires
            .into_iter()
            .filter(|(_, ms)| ms.len() > 1)
            .enumerate()
            .map(|(i, (wire, machines))| Tunnel {
                vni: ((stable_hash(&[&self.name, &wire]) & 0xff_ffff) as u32).max(1),
                port: FIRST_TUNNEL_PORT.saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
                mtu: self.tunnel_inside(machines.iter().map(String::as_str)),
                wire,
                machines,
            })
            .collect()
    }

    /// Each interface's `tunnel_mtu`: for a network or link whose hosts sit on more than one
    /// machine, the inside of its tunnel ([`Lab::tunnels`]).
    fn derive_tunnel_mtus(&mut self) {
        let inner: BTreeMap<String, u32> = self
            .tunnels()
            .into_iter()
            .filter_map(|t| t.mtu.map(|m| (t.wire, m)))
            .collect();
        for h in &mut self.hosts {
            for i in &mut h.interfaces {
                i.tunnel_mtu = i.attach.wire().and_then(|k| inner.get(&k).copied());
            }
        }
    }

    /// The same lab with every host on `provider` (`lab up --provider ...`).
    pub fn with_provider(&self, provider: &Provider) -> Lab {
        let mut l = self.clone();
        for h in &mut l.hosts {
            h.provider = provider.clone();
        }
        l
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The most MPTCP paths (statically addressed interfaces) any host of the lab has.
    pub fn max_paths(&self) -> usize {
        self.hosts
            .iter()
            .map(|h| h.path_interfaces().count())
            .max()
            .unwrap_or(0)
    }

    pub fn hosts_with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    /// The hosts (and their interfaces) on a segment or link, by its name.
    pub fn members(&self, segment: &str) -> Vec<(&Host, &Interface)> {
        let mut out = Vec::new();
        for h in &self.hosts {
            for i in &h.interfaces {
                match &i.attach {
                    Attach::Network(n) | Attach::Link(n) if n == segment => out.push((h, i)),
                    _ => {}
                }
            }
        }
        out
    }
}
