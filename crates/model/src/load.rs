//! Lab.toml: parse (with spans), validate (every error at once), derive what was left out.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use ipnet::IpNet;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, InvalidLab};
use crate::model::{
    Attach, Attachment, Host, Interface, JoinMode, Lab, Link, Machine, Mptcpd, MptcpdPlugin,
    Network, Provider, Role, SshTarget, Vm,
};

/// Why a lab could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid lab ({} problem(s))", .0.path, .0.diagnostics.len())]
    Invalid(Box<InvalidLab>),
}

/// The largest MPTCP limit the kernel accepts (MPTCP_PM_ADDR_MAX).
pub const MAX_LIMIT: u32 = 8;

// ---------------------------------------------------------------- raw, as written in the file

/// A sysctl's value as Lab.toml may write it (a schema type only: values are read as TOML).
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum SysctlValue {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// The JSON Schema of Lab.toml, generated from the types the loader reads it into (every key,
/// its type and whether it is required; unknown keys are not allowed). Editors that read
/// JSON Schemas for TOML (taplo, Even Better TOML) complete and check Lab.toml with it.
///
/// ```
/// let s = model::load::schema();
/// assert_eq!(s["properties"]["hosts"]["type"], "object");
/// assert_eq!(s["additionalProperties"], false);
/// ```
pub fn schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(RawLab)).unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        o.insert("title".into(), "Lab.toml".into());
        o.insert(
            "description".into(),
            "A lab of lab (the MPTCP testbed tool): hosts, their interfaces and networks, MPTCP settings, checks and events".into(),
        );
    }
    s
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLab {
    lab: RawLabSection,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, RawNetwork>")]
    networks: IndexMap<Spanned<String>, RawNetwork>,
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, RawHost>")]
    hosts: IndexMap<Spanned<String>, RawHost>,
    #[serde(default)]
    checks: Vec<crate::checks::RawCheck>,
    #[serde(default)]
    test: RawTest,
    /// Machines hosts are placed on (`[machines.NAME]`): lab reaches each over SSH, and joins
    /// a segment that spans machines with one VXLAN tunnel per segment over their underlay.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, RawMachine>")]
    machines: IndexMap<Spanned<String>, RawMachine>,
}

/// `[machines.NAME]`: a machine lab places hosts on.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    /// Where lab's SSH reaches it.
    #[schemars(with = "String")]
    address: Spanned<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    user: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<PathBuf>,
    /// The machine's address on the underlay, which the other machines' tunnels reach.
    #[schemars(with = "String")]
    underlay: Spanned<String>,
    /// The underlay's MTU (default 1500): a tunnel's inside is 50 bytes less (70 over IPv6).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    underlay_mtu: Option<Spanned<u32>>,
    /// What the underlay NIC carries (`1gbit`): `lab doctor` warns when the shaped paths that
    /// cross it need more.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    underlay_rate: Option<Spanned<String>>,
}

/// `[test]`: what `lab test` does besides the transfer.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTest {
    /// The transfer's time line (`model::events` grammar).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    events: Vec<Spanned<String>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLabSection {
    #[schemars(with = "String")]
    name: Spanned<String>,
    #[serde(default)]
    provider: Option<Provider>,
    #[serde(default = "yes")]
    derive: bool,
    /// The hypervisor of the lab's libvirt hosts: `qemu:///system` (the default) or
    /// `qemu+ssh://[user@]host[:port]/system`; a host's `[hosts.NAME.vm] uri` overrides it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    uri: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    subnet: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    subnets: Vec<Spanned<String>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLink {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    name: Option<Spanned<String>>,
    #[schemars(with = "Vec<String>")]
    endpoints: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHost {
    role: Role,
    #[serde(default)]
    provider: Option<Provider>,
    /// The machine (`[machines.NAME]`) the host runs on; hosts that name none are spread over
    /// the machines, fewest hosts first, when their provider can place hosts on other
    /// machines.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    machine: Option<Spanned<String>>,
    #[serde(default)]
    vm: RawVm,
    #[serde(default)]
    ssh: Option<RawSsh>,
    #[serde(default)]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    mptcp: RawMptcp,
    #[serde(default)]
    mptcpd: RawMptcpd,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, crate::load::SysctlValue>")]
    sysctls: IndexMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawVm {
    #[schemars(with = "Option<u32>")]
    memory_mib: Option<Spanned<u32>>,
    #[schemars(with = "Option<u32>")]
    cpus: Option<Spanned<u32>>,
    #[schemars(with = "Option<u32>")]
    disk_gib: Option<Spanned<u32>>,
    #[schemars(with = "Option<String>")]
    image: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    user: Option<Spanned<String>>,
    /// The SHA-256 of a box downloaded from a URL, `sha256:HEX`, as Vagrant's
    /// `box_download_checksum`: lab checks the download against it.
    #[schemars(with = "Option<String>")]
    checksum: Option<Spanned<String>>,
    /// The hypervisor this host runs under (libvirt): `qemu:///system` or
    /// `qemu+ssh://[user@]host[:port]/system`. Default: `[lab] uri`.
    #[schemars(with = "Option<String>")]
    uri: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    #[schemars(with = "String")]
    address: Spanned<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    user: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<PathBuf>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    #[schemars(with = "String")]
    name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    network: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    nat: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    address: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    gateway: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    gateways: Vec<Spanned<String>>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    mac: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    mtu: Option<Spanned<u32>>,
    #[serde(default)]
    table: Option<RawTable>,
    #[serde(default)]
    shaping: Option<RawShaping>,
}

/// A main-table route by this interface: `{ to = "default" | "CIDR", via = "ADDR", metric = N }`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[schemars(with = "String")]
    to: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    via: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    metric: Option<Spanned<u32>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[schemars(with = "u32")]
    id: Spanned<u32>,
    #[schemars(with = "String")]
    name: Spanned<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawShaping {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    rate: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    burst: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    delay: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    loss: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawMptcp {
    #[serde(default)]
    endpoints: Option<Vec<RawEndpoint>>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    join: Option<JoinMode>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    #[schemars(with = "String")]
    address: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    dev: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u8>")]
    id: Option<Spanned<u8>>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    flags: Vec<Flag>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Flag {
    Signal,
    Subflow,
    Backup,
    Fullmesh,
    Laminar,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[schemars(with = "u32")]
    subflows: Spanned<u32>,
    #[schemars(with = "u32")]
    add_addr_accepted: Spanned<u32>,
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawMptcpd {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    path_manager: Option<MptcpdPlugin>,
}

// ---------------------------------------------------------------- entry points

/// Parse and validate a Lab.toml. `path` names the source in diagnostics.
pub fn parse(path: &str, src: &str) -> Result<Lab, LoadError> {
    let invalid = |diagnostics: Vec<Diagnostic>| {
        LoadError::Invalid(Box::new(InvalidLab {
            path: path.to_string(),
            source_text: src.to_string(),
            diagnostics,
        }))
    };
    // Unknown keys are reported all at once, with the rest: each one serde names is blanked
    // out of a copy of the text (same length, so every span still points into the file) and
    // the copy parsed again; what the copy then says (a missing field, or the semantic
    // checks below) joins them.
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut text = src.to_string();
    let raw: Option<RawLab> = loop {
        match toml::from_str::<RawLab>(&text) {
            Ok(raw) => break Some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim_end().to_string();
                let blank = message.starts_with("unknown field")
                    && diags.len() < 64
                    && blank_entry(&mut text, &span);
                diags.push(
                    Diagnostic::new(span, message).help("see `lab init` for a complete Lab.toml"),
                );
                if !blank {
                    break None;
                }
            }
        }
    };
    let Some(raw) = raw else {
        diags.sort_by_key(|d| d.span.start);
        return Err(invalid(diags));
    };
    let mut v = Validator::default();
    let lab = v.lab(raw);
    v.diags.extend(diags);
    if v.diags.is_empty() {
        Ok(lab)
    } else {
        v.diags.sort_by_key(|d| d.span.start);
        Err(invalid(v.diags))
    }
}

/// Blank out (with spaces, newlines kept) the `key = value` entry whose key is at `key` in
/// `text`; false when no such entry is found.
fn blank_entry(text: &mut String, key: &Range<usize>) -> bool {
    fn find(table: &toml::de::DeTable<'_>, key: &Range<usize>) -> Option<Range<usize>> {
        for (k, v) in table {
            if k.span() == *key {
                return Some(k.span().start..v.span().end.max(k.span().end));
            }
            let found = match v.get_ref() {
                toml::de::DeValue::Table(t) => find(t, key),
                toml::de::DeValue::Array(a) => a.iter().find_map(|item| match item.get_ref() {
                    toml::de::DeValue::Table(t) => find(t, key),
                    _ => None,
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return false;
    };
    let Some(range) = find(doc.get_ref(), key) else {
        return false;
    };
    let blanked: String = text[range.clone()]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    // A multi-byte character becomes one space: pad to keep every later offset.
    let pad = range.len() - blanked.len();
    text.replace_range(range, &format!("{blanked}{}", " ".repeat(pad)));
    true
}

/// Read and parse a Lab.toml file.
pub fn load_file(path: &Path) -> Result<Lab, LoadError> {
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &src)
}

/// The nearest `Lab.toml` in `dir` or one of its parents, as Vagrant finds a Vagrantfile.
pub fn find_lab_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Lab.toml"))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------- validation

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
}

fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// Where the address of interface `name` is written in a raw host.
fn address_span(raw: &RawHost, name: &str) -> Range<usize> {
    raw.interfaces
        .iter()
        .find(|r| r.name.get_ref() == name)
        .and_then(|r| r.address.as_ref().or(r.addresses.first()))
        .map(span)
        .unwrap_or(0..0)
}

/// Names used in namespace, VM and file names: lab and host names.
fn check_ident(v: &mut Validator, what: &str, s: &Spanned<String>) {
    let name = s.get_ref();
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        v.err(
            span(s),
            format!("`{name}` is not a valid {what} name"),
            "1 to 32 of [A-Za-z0-9_-], starting with a letter or digit",
        );
    }
}

impl Validator {
    fn err(&mut self, span: Range<usize>, message: String, help: &str) {
        let mut d = Diagnostic::new(span, message);
        if !help.is_empty() {
            d = d.help(help);
        }
        self.diags.push(d);
    }

    fn lab(&mut self, raw: RawLab) -> Lab {
        check_ident(self, "lab", &raw.lab.name);
        let default_provider = raw.lab.provider.clone().unwrap_or_default();
        let default_uri = raw.lab.uri.as_ref().and_then(|u| self.uri(u));

        let mut networks = Vec::new();
        for (name, n) in &raw.networks {
            self.segment_name(name);
            let mut subnets: Vec<IpNet> = Vec::new();
            for s in n.subnet.iter().chain(&n.subnets) {
                let Some(net) = self.subnet(s) else { continue };
                if subnets
                    .iter()
                    .any(|x| x.addr().is_ipv6() == net.addr().is_ipv6())
                {
                    self.err(
                        span(s),
                        format!(
                            "network `{}` has two {} subnets",
                            name.get_ref(),
                            family(net.addr())
                        ),
                        "one subnet per family: an IPv4 one and an IPv6 one",
                    );
                    continue;
                }
                subnets.push(net);
            }
            networks.push(Network {
                name: name.get_ref().clone(),
                subnets,
            });
        }

        let mut hosts: Vec<Host> = Vec::new();
        let mut iface_spans: HashMap<(String, String), Range<usize>> = HashMap::new();
        let mut raw_hosts = Vec::new();
        for (name, h) in raw.hosts {
            check_ident(self, "host", &name);
            let host_name = name.get_ref().clone();
            if host_name.len() > 32 {
                continue;
            }
            let mut host = self.host(
                &host_name,
                span(&name),
                &h,
                &default_provider,
                &raw.networks,
                &mut iface_spans,
            );
            // A host on a machine runs under that machine's hypervisor, not the lab's default.
            if host.vm.uri.is_none() && h.machine.is_none() {
                host.vm.uri = default_uri.clone();
            }
            hosts.push(host);
            raw_hosts.push(h);
        }

        let links = self.links(&raw.links, &mut hosts);

        // Every non-NAT interface must be plugged into something.
        for h in &hosts {
            for i in &h.interfaces {
                if let Attach::Network(n) = &i.attach
                    && n.is_empty()
                {
                    let sp = iface_spans[&(h.name.clone(), i.name.clone())].clone();
                    self.err(
                        sp,
                        format!("interface `{}` of `{}` is on no network", i.name, h.name),
                        "set `network = \"NAME\"` (a [networks.NAME] segment), name it in a [[links]] entry, or mark it `nat = true`",
                    );
                }
            }
        }

        let machines = self.machines(&raw.machines);
        self.place(&mut hosts, &raw_hosts, &machines);
        self.one_provider_per_segment(&hosts, &links, &iface_spans);
        self.unique_addresses(&hosts, &raw_hosts);
        self.subnets(&hosts, &networks, &raw_hosts);

        let checks = crate::checks::validate(raw.checks, &hosts, &mut self.diags);
        let mut lab = Lab {
            events: Vec::new(),
            name: raw.lab.name.into_inner(),
            derive: raw.lab.derive,
            networks,
            links,
            hosts,
            checks,
            machines,
        };
        for e in &raw.test.events {
            match crate::events::parse(&lab, e.get_ref()) {
                Ok(ev) => lab.events.push(ev),
                Err(why) => self.err(
                    e.span(),
                    format!("event `{}`: {why}", e.get_ref()),
                    "AT HOST ACTION ARGS, e.g. \"2s ue2 link-down enp0s9\" (see `lab test --help`)",
                ),
            }
        }
        if lab.derive && self.diags.is_empty() {
            crate::derive::derive(&mut lab);
        }
        lab
    }

    /// Hosts of different providers cannot share a segment or a link: each provider builds
    /// its own (a bridge in a namespace, a vde switch, a VirtualBox internal network, a real
    /// network for existing machines), and none of them joins another's.
    fn one_provider_per_segment(
        &mut self,
        hosts: &[Host],
        links: &[Link],
        iface_spans: &HashMap<(String, String), Range<usize>>,
    ) {
        let mut first: HashMap<&str, (&Host, &str)> = HashMap::new();
        let mut said: HashSet<(String, String)> = HashSet::new();
        for h in hosts {
            for i in &h.interfaces {
                let Attach::Network(n) = &i.attach else {
                    continue;
                };
                if n.is_empty() {
                    continue;
                }
                match first.get(n.as_str()) {
                    None => {
                        first.insert(n, (h, &i.name));
                    }
                    Some((other, other_iface))
                        if other.provider != h.provider
                            && said.insert((n.clone(), h.name.clone())) =>
                    {
                        let sp = iface_spans[&(h.name.clone(), i.name.clone())].clone();
                        self.err(
                            sp,
                            format!(
                                "network `{n}` joins `{}` (provider \"{}\", {other_iface}) and `{}` (provider \"{}\"): hosts of different providers cannot share a segment",
                                other.name, other.provider, h.name, h.provider
                            ),
                            "put the hosts of one network on one provider (`provider = \"...\"` on the host or in [lab]), or give each provider its own network",
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        for l in links {
            let (Some(a), Some(b)) = (
                hosts.iter().find(|h| h.name == l.a.host),
                hosts.iter().find(|h| h.name == l.b.host),
            ) else {
                continue;
            };
            if a.provider != b.provider
                && let Some(sp) = iface_spans.get(&(b.name.clone(), l.b.interface.clone()))
            {
                self.err(
                    sp.clone(),
                    format!(
                        "link `{}` joins `{}` (provider \"{}\") and `{}` (provider \"{}\"): hosts of different providers cannot share a link",
                        l.name, a.name, a.provider, b.name, b.provider
                    ),
                    "put both ends of a link on one provider",
                );
            }
        }
    }

    fn segment_name(&mut self, s: &Spanned<String>) {
        let name = s.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            self.err(
                span(s),
                format!("`{name}` is not a valid network name"),
                "1 to 64 of [A-Za-z0-9_.-] (VirtualBox internal network names such as ue1-ue2_v1_2)",
            );
        }
    }

    fn subnet(&mut self, s: &Spanned<String>) -> Option<IpNet> {
        let net = self.cidr(s)?;
        if net.trunc() != net {
            self.err(
                span(s),
                format!("subnet `{net}` has host bits set"),
                &format!("write the network address: {}", net.trunc()),
            );
            return None;
        }
        Some(net)
    }

    fn cidr(&mut self, s: &Spanned<String>) -> Option<IpNet> {
        let text = s.get_ref().trim();
        match text.parse::<IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                let help = match text.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => "add the prefix length, e.g. 10.1.1.1/24",
                    Ok(IpAddr::V6(_)) => "add the prefix length, e.g. dead:beef:1::1/64",
                    Err(_) => {
                        "an IPv4 or IPv6 address with its prefix length, e.g. 10.1.1.1/24 or dead:beef:1::1/64"
                    }
                };
                self.err(span(s), format!("`{text}` is not an address/prefix"), help);
                None
            }
        }
    }

    fn addr(&mut self, s: &Spanned<String>) -> Option<IpAddr> {
        let text = s.get_ref().trim();
        match text.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    span(s),
                    format!("`{text}` is not an IP address"),
                    "e.g. 10.1.1.4 or dead:beef:1::4 (no prefix length here)",
                );
                None
            }
        }
    }

    fn ifname(&mut self, s: &Spanned<String>) -> bool {
        let name = s.get_ref();
        if name.is_empty() || name.len() > 15 {
            self.err(
                span(s),
                format!(
                    "interface name `{name}` is {} bytes; Linux allows 1 to 15",
                    name.len()
                ),
                "IFNAMSIZ is 16 including the terminating NUL",
            );
            return false;
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || name == "."
            || name == ".."
        {
            self.err(
                span(s),
                format!("interface name `{name}` has characters outside [A-Za-z0-9_.-]"),
                "use names like enp0s8, eth1 or wan0",
            );
            return false;
        }
        true
    }

    fn host(
        &mut self,
        host_name: &str,
        host_span: Range<usize>,
        h: &RawHost,
        default_provider: &Provider,
        networks: &IndexMap<Spanned<String>, RawNetwork>,
        iface_spans: &mut HashMap<(String, String), Range<usize>>,
    ) -> Host {
        let provider = h
            .provider
            .clone()
            .unwrap_or_else(|| default_provider.clone());
        let vm = self.vm(&h.vm);
        let ssh = self.ssh(host_name, host_span, h, &provider);

        let mut interfaces = Vec::new();
        let mut tables: Vec<net::Table> = Vec::new();
        let mut seen_ids: HashMap<u32, Range<usize>> = HashMap::new();
        let mut seen_names: HashMap<String, Range<usize>> = HashMap::new();
        for ri in &h.interfaces {
            if !self.ifname(&ri.name) {
                continue;
            }
            let name = ri.name.get_ref().clone();
            if iface_spans.contains_key(&(host_name.to_string(), name.clone())) {
                self.err(
                    span(&ri.name),
                    format!("host `{host_name}` has two interfaces named `{name}`"),
                    "interface names are unique per host",
                );
                continue;
            }
            iface_spans.insert((host_name.to_string(), name.clone()), span(&ri.name));
            if let Some(i) = self.interface(host_name, ri, networks) {
                if let (Some(t), false) = (&ri.table, i.addresses.is_empty()) {
                    if let Some(table) = self.table(t, &i, &mut seen_ids, &mut seen_names) {
                        tables.push(table);
                    }
                } else if let Some(t) = &ri.table {
                    self.err(
                        span(&t.id),
                        format!("`{}` has a routing table but no address", i.name),
                        "a per-source table needs the interface's addresses as its sources",
                    );
                }
                interfaces.push(i);
            }
        }

        let endpoints = match &h.mptcp.endpoints {
            Some(eps) => self.endpoints(host_name, eps, &interfaces),
            None => Vec::new(),
        };
        let limits = h.mptcp.limits.as_ref().map(|l| {
            for (what, n) in [
                ("subflows", &l.subflows),
                ("add_addr_accepted", &l.add_addr_accepted),
            ] {
                if *n.get_ref() > MAX_LIMIT {
                    self.err(
                        span(n),
                        format!("{what} = {} is above the kernel's maximum", n.get_ref()),
                        &format!("the in-kernel path manager accepts 0 to {MAX_LIMIT}"),
                    );
                }
            }
            net::Limits {
                subflows: *l.subflows.get_ref(),
                add_addr_accepted: *l.add_addr_accepted.get_ref(),
            }
        });
        let sysctls = self.sysctls(&h.sysctls);

        Host {
            name: host_name.to_string(),
            role: h.role,
            provider,
            machine: None,
            balanced: false,
            vm,
            ssh,
            interfaces,
            tables,
            endpoints,
            limits,
            sysctls,
            mptcpd: Mptcpd {
                enabled: h.mptcpd.enabled,
                path_manager: h.mptcpd.path_manager.unwrap_or_default(),
            },
            join: h.mptcp.join.unwrap_or_default(),
        }
    }

    fn machines(&mut self, raw: &IndexMap<Spanned<String>, RawMachine>) -> Vec<Machine> {
        let mut out = Vec::new();
        for (name, m) in raw {
            check_ident(self, "machine", name);
            let ssh = self.ssh_target(&RawSsh {
                address: m.address.clone(),
                port: m.port,
                user: m.user.clone(),
                key: m.key.clone(),
            });
            let underlay = match m.underlay.get_ref().trim().parse::<IpAddr>() {
                Ok(a) if !a.is_unspecified() && !a.is_multicast() => a,
                _ => {
                    self.err(
                        span(&m.underlay),
                        format!("`{}` is not a unicast IP address", m.underlay.get_ref()),
                        "the machine's address on the network between the machines, e.g. 192.0.2.10",
                    );
                    continue;
                }
            };
            let mtu = m.underlay_mtu.as_ref().map_or(1500, |v| *v.get_ref());
            if let Some(v) = &m.underlay_mtu
                && !(576..=65535).contains(v.get_ref())
            {
                self.err(
                    span(v),
                    format!("underlay_mtu = {} is out of range", v.get_ref()),
                    "576 to 65535",
                );
            }
            let rate_bps = m.underlay_rate.as_ref().and_then(|r| {
                let v = crate::units::rate_bps(r.get_ref());
                if v.is_none() {
                    self.err(
                        span(r),
                        format!("`{}` is not a rate", r.get_ref()),
                        "e.g. 1gbit, 100mbit",
                    );
                }
                v
            });
            out.push(Machine {
                name: name.get_ref().clone(),
                ssh,
                underlay,
                underlay_mtu: mtu,
                underlay_rate_bps: rate_bps,
            });
        }
        out
    }

    /// Each host on the machine it names. Hosts that name none are placed by [`Lab::balance`],
    /// which the session calls with its providers' capabilities.
    fn place(&mut self, hosts: &mut [Host], raw_hosts: &[RawHost], machines: &[Machine]) {
        for (h, raw) in hosts.iter_mut().zip(raw_hosts) {
            let Some(m) = &raw.machine else { continue };
            if let Some(u) = &raw.vm.uri {
                self.err(
                    span(u),
                    format!(
                        "host `{}` names machine `{}` and a hypervisor URI",
                        h.name,
                        m.get_ref()
                    ),
                    "a host on a machine runs under that machine's hypervisor (lab reaches it over the machine's SSH): drop one of them",
                );
            }
            if machines.iter().any(|x| x.name == *m.get_ref()) {
                h.machine = Some(m.get_ref().clone());
            } else {
                self.err(
                    span(m),
                    format!("no machine `{}`", m.get_ref()),
                    "declare it in [machines.NAME] (address and underlay)",
                );
            }
        }
    }

    fn vm(&mut self, raw: &RawVm) -> Vm {
        let mut vm = Vm::default();
        let num = |v: &mut Self, field: &Option<Spanned<u32>>, min: u32, what: &str| {
            field.as_ref().map(|n| {
                if *n.get_ref() < min {
                    v.err(
                        span(n),
                        format!("{what} = {} is too small", n.get_ref()),
                        &format!("at least {min}"),
                    );
                }
                *n.get_ref()
            })
        };
        if let Some(m) = num(self, &raw.memory_mib, 128, "memory_mib") {
            vm.memory_mib = m;
        }
        if let Some(c) = num(self, &raw.cpus, 1, "cpus") {
            vm.cpus = c;
        }
        if let Some(d) = num(self, &raw.disk_gib, 1, "disk_gib") {
            vm.disk_gib = d;
        }
        if let Some(img) = &raw.image {
            if img.get_ref().trim().is_empty() {
                self.err(
                    span(img),
                    "image is empty".into(),
                    "e.g. ubuntu-22.04 or debian-12",
                );
            }
            vm.image = Some(img.get_ref().clone());
        }
        if let Some(u) = &raw.user {
            let name = u.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid {
                self.err(
                    span(u),
                    format!("`{name}` is not a user name"),
                    "lowercase letters, digits, `_` and `-`, starting with a letter",
                );
            }
            vm.user = name.clone();
        } else if vm.image.as_deref().is_some_and(boxes::is_box) {
            // A Vagrant box logs in as `vagrant` (with Vagrant's insecure key, which lab replaces
            // with its own on the first boot).
            vm.user = "vagrant".into();
        }
        let box_url = vm.image.as_deref().is_some_and(|i| {
            matches!(
                boxes::BoxRef::parse(i, Path::new("/")),
                Some(boxes::BoxRef::Url(_))
            )
        });
        match (&raw.checksum, box_url) {
            (Some(c), true) => {
                let text = c.get_ref().trim();
                match text.strip_prefix("sha256:") {
                    Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                        vm.checksum = Some(hex.to_ascii_lowercase());
                    }
                    _ => self.err(
                        span(c),
                        format!("`{text}` is not a SHA-256 checksum"),
                        "sha256: and 64 hex digits, as `sha256sum NAME.box` prints them",
                    ),
                }
            }
            (Some(c), false) => self.err(
                span(c),
                "checksum is for a box downloaded from a URL".into(),
                "set image to the box's https:// URL ending in .box, or remove checksum",
            ),
            (None, true) => {
                if let Some(img) = &raw.image {
                    self.err(
                        span(img),
                        "a box URL needs its checksum".into(),
                        "add checksum = \"sha256:...\" (sha256sum of the .box file): lab checks the download against it",
                    );
                }
            }
            (None, false) => {}
        }
        vm.uri = raw.uri.as_ref().and_then(|u| self.uri(u));
        vm
    }

    fn uri(&mut self, u: &Spanned<String>) -> Option<crate::uri::HypervisorUri> {
        match crate::uri::HypervisorUri::parse(u.get_ref()) {
            Ok(uri) => Some(uri),
            Err(why) => {
                self.err(
                    span(u),
                    why,
                    "qemu:///system (this machine) or qemu+ssh://user@host/system",
                );
                None
            }
        }
    }

    fn ssh(
        &mut self,
        host_name: &str,
        host_span: Range<usize>,
        h: &RawHost,
        provider: &Provider,
    ) -> Option<SshTarget> {
        let Some(raw) = &h.ssh else {
            if provider == "ssh" {
                self.err(
                    host_span,
                    format!("host `{host_name}` uses provider \"ssh\" but has no [hosts.{host_name}.ssh] table"),
                    "add address, and optionally port, user and key",
                );
            }
            return None;
        };
        Some(self.ssh_target(raw))
    }

    fn ssh_target(&mut self, raw: &RawSsh) -> SshTarget {
        let address = raw.address.get_ref().trim().to_string();
        if address.is_empty()
            || address.starts_with('-')
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(
                span(&raw.address),
                format!("`{address}` is not a host name or address"),
                "",
            );
        }
        let user = raw
            .user
            .as_ref()
            .map_or_else(|| "root".to_string(), |u| u.get_ref().clone());
        if let Some(u) = &raw.user
            && (u.get_ref().is_empty()
                || u.get_ref().starts_with('-')
                || !u
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
        {
            self.err(
                span(u),
                format!("`{}` is not a valid user name", u.get_ref()),
                "",
            );
        }
        SshTarget {
            address,
            port: raw.port.unwrap_or(22),
            user,
            key: raw.key.clone(),
        }
    }

    fn interface(
        &mut self,
        host_name: &str,
        ri: &RawInterface,
        networks: &IndexMap<Spanned<String>, RawNetwork>,
    ) -> Option<Interface> {
        let name = ri.name.get_ref().clone();
        let nat = ri.nat.as_ref().is_some_and(|n| *n.get_ref());
        let mac = ri.mac.as_ref().and_then(|m| match m.get_ref().parse() {
            Ok(mac) => Some(mac),
            Err(e) => {
                self.err(span(m), e, "");
                None
            }
        });
        let mtu = ri.mtu.as_ref().map(|m| {
            if !(68..=65535).contains(m.get_ref()) {
                self.err(
                    span(m),
                    format!("mtu {} is out of range", m.get_ref()),
                    "IPv4 needs 68 to 65535",
                );
            }
            *m.get_ref()
        });
        if nat {
            let nat_span = ri.nat.as_ref().map(span).unwrap_or(0..0);
            for (field, present) in [
                ("network", ri.network.is_some()),
                ("address", ri.address.is_some()),
                ("addresses", !ri.addresses.is_empty()),
                ("gateway", ri.gateway.is_some()),
                ("gateways", !ri.gateways.is_empty()),
                ("routes", !ri.routes.is_empty()),
                ("table", ri.table.is_some()),
                ("shaping", ri.shaping.is_some()),
            ] {
                if present {
                    self.err(
                        nat_span.clone(),
                        format!("NAT interface `{name}` of `{host_name}` cannot have `{field}`"),
                        "a NAT NIC gets its address by DHCP and is never an MPTCP path",
                    );
                }
            }
            return Some(Interface {
                name,
                attach: Attach::Nat,
                addresses: Vec::new(),
                gateways: Vec::new(),
                routes: Vec::new(),
                mac,
                mtu,
                tunnel_mtu: None,
                shaping: None,
            });
        }
        let attach = match &ri.network {
            Some(n) => {
                if !networks.contains_key(n.get_ref().as_str()) {
                    let known: Vec<&str> = networks.keys().map(|k| k.get_ref().as_str()).collect();
                    self.err(
                        span(n),
                        format!("network `{}` is not defined", n.get_ref()),
                        &if known.is_empty() {
                            format!("add a [networks.{}] table", n.get_ref())
                        } else {
                            format!(
                                "defined networks: {}; or add [networks.{}]",
                                known.join(", "),
                                n.get_ref()
                            )
                        },
                    );
                }
                Attach::Network(n.get_ref().clone())
            }
            // Filled in by [[links]]; an empty name means "on nothing" (reported later).
            None => Attach::Network(String::new()),
        };
        let written: Vec<&Spanned<String>> = ri.address.iter().chain(&ri.addresses).collect();
        if written.is_empty() {
            self.err(
                span(&ri.name),
                format!("interface `{name}` of `{host_name}` has no address"),
                "add `address = \"10.1.1.1/24\"` (or `addresses = [...]`, IPv4 and IPv6), or `nat = true` for a NAT NIC",
            );
            return None;
        }
        let mut addresses: Vec<IpNet> = Vec::new();
        for addr_s in written {
            let Some(address) = self.cidr(addr_s) else {
                continue;
            };
            let special = match address {
                IpNet::V4(a) if a.prefix_len() < 31 => {
                    if a.addr() == a.network() {
                        Some("the network address of its subnet")
                    } else if a.addr() == a.broadcast() {
                        Some("the broadcast address of its subnet")
                    } else {
                        None
                    }
                }
                IpNet::V6(a) if a.addr().is_unicast_link_local() => {
                    Some("link-local (the kernel gives every interface one)")
                }
                IpNet::V6(a) if a.prefix_len() < 127 && a.addr() == a.network() => {
                    Some("the subnet-router anycast address of its prefix")
                }
                _ => None,
            };
            if let Some(what) = special {
                self.err(
                    span(addr_s),
                    format!("`{address}` is {what}"),
                    "use a host address inside the prefix",
                );
                continue;
            }
            if address.addr().is_loopback()
                || address.addr().is_multicast()
                || address.addr().is_unspecified()
            {
                self.err(
                    span(addr_s),
                    format!("`{address}` is not a unicast address for a path"),
                    "use a private address, e.g. 10.1.1.1/24 or dead:beef:1::1/64",
                );
                continue;
            }
            if addresses.iter().any(|a| a.addr() == address.addr()) {
                self.err(
                    span(addr_s),
                    format!("`{}` is written twice on `{name}`", address.addr()),
                    "",
                );
                continue;
            }
            addresses.push(address);
        }
        if addresses.is_empty() {
            return None;
        }
        if let Some(m) = &ri.mtu
            && *m.get_ref() < 1280
            && addresses.iter().any(|a| a.addr().is_ipv6())
        {
            self.err(
                span(m),
                format!("mtu {} is below IPv6's minimum", m.get_ref()),
                "an interface with an IPv6 address needs an MTU of at least 1280",
            );
        }
        let mut gateways: Vec<IpAddr> = Vec::new();
        for g in ri.gateway.iter().chain(&ri.gateways) {
            let Some(gw) = self.addr(g) else { continue };
            if !addresses.iter().any(|a| a.contains(&gw)) {
                self.err(
                    span(g),
                    format!(
                        "gateway {gw} is outside {name}'s prefixes ({})",
                        addresses
                            .iter()
                            .map(|a| a.trunc().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "a gateway must be on-link: inside one of the interface's address/prefixes",
                );
            } else if addresses.iter().any(|a| a.addr() == gw) {
                self.err(
                    span(g),
                    format!("gateway {gw} is the interface's own address"),
                    "name the peer's address",
                );
            } else if gateways.iter().any(|x| x.is_ipv6() == gw.is_ipv6()) {
                self.err(
                    span(g),
                    format!("`{name}` has two {} gateways", family(gw)),
                    "one default gateway per family",
                );
                continue;
            }
            gateways.push(gw);
        }
        let routes = ri
            .routes
            .iter()
            .filter_map(|r| self.route(&name, r, &addresses))
            .collect();
        let shaping = ri.shaping.as_ref().and_then(|s| self.shaping(s));
        Some(Interface {
            name,
            attach,
            addresses,
            gateways,
            routes,
            mac,
            mtu,
            tunnel_mtu: None,
            shaping,
        })
    }

    /// A main-table route by interface `dev`: `to` a prefix (no host bits) or `default`, `via`
    /// an on-link address of the same family, an optional metric.
    fn route(&mut self, dev: &str, r: &RawRoute, addresses: &[IpNet]) -> Option<net::Route> {
        let to_text = r.to.get_ref().trim();
        let to = if to_text == "default" {
            None
        } else {
            let net = self.cidr(&r.to)?;
            if net.trunc() != net {
                self.err(
                    span(&r.to),
                    format!("route destination `{net}` has host bits set"),
                    &format!("write the network address: {}", net.trunc()),
                );
                return None;
            }
            Some(net)
        };
        let via = match &r.via {
            Some(v) => Some(self.addr(v)?),
            None => None,
        };
        if let Some(v) = &r.via
            && let Some(gw) = via
        {
            if to.is_some_and(|t| t.addr().is_ipv6() != gw.is_ipv6()) {
                self.err(
                    span(v),
                    format!(
                        "route to {to_text} is {}, its gateway {gw} is not",
                        family(to.unwrap().addr())
                    ),
                    "a route and its gateway are of one family",
                );
                return None;
            }
            if !addresses.iter().any(|a| a.contains(&gw)) {
                self.err(
                    span(v),
                    format!("gateway {gw} is not on-link on `{dev}`"),
                    "a route's gateway must be inside one of the interface's address/prefixes",
                );
                return None;
            }
        }
        if to.is_none() && via.is_none() {
            self.err(
                span(&r.to),
                "a default route needs `via`".into(),
                "name the gateway, e.g. { to = \"default\", via = \"10.0.1.254\", metric = 100 }",
            );
            return None;
        }
        Some(net::Route {
            to,
            via,
            dev: dev.to_string(),
            metric: r.metric.as_ref().map(|m| *m.get_ref()),
        })
    }

    fn table(
        &mut self,
        t: &RawTable,
        iface: &Interface,
        seen_ids: &mut HashMap<u32, Range<usize>>,
        seen_names: &mut HashMap<String, Range<usize>>,
    ) -> Option<net::Table> {
        let id = *t.id.get_ref();
        let name = t.name.get_ref().clone();
        let mut ok = true;
        if matches!(id, 0 | 253..=255) {
            self.err(
                span(&t.id),
                format!("table id {id} is reserved (unspec 0, default 253, main 254, local 255)"),
                "use an id from 1 to 252 or above 255, e.g. 100",
            );
            ok = false;
        } else if seen_ids.insert(id, span(&t.id)).is_some() {
            self.err(
                span(&t.id),
                format!("table id {id} is used twice on this host"),
                "every source address needs its own table",
            );
            ok = false;
        }
        if matches!(name.as_str(), "local" | "main" | "default" | "unspec") {
            self.err(
                span(&t.name),
                format!("table name `{name}` is reserved by iproute2"),
                "use a name like table1",
            );
            ok = false;
        } else if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            || name.chars().all(|c| c.is_ascii_digit())
        {
            self.err(
                span(&t.name),
                format!("`{name}` is not a valid routing-table name"),
                "letters, digits, _ and -, not only digits (e.g. table1)",
            );
            ok = false;
        } else if seen_names.insert(name.clone(), span(&t.name)).is_some() {
            self.err(
                span(&t.name),
                format!("table name `{name}` is used twice on this host"),
                "every table needs its own name",
            );
            ok = false;
        }
        ok.then(|| net::Table {
            id,
            name,
            dev: iface.name.clone(),
            addresses: iface.addresses.clone(),
            gateways: iface.gateways.clone(),
        })
    }

    fn shaping(&mut self, s: &RawShaping) -> Option<net::Shaping> {
        let mut out = net::Shaping::default();
        let mut ok = true;
        let mut field = |v: &mut Self,
                         f: &Option<Spanned<String>>,
                         parse: fn(&str) -> Option<u64>,
                         what: &str,
                         help: &str| {
            f.as_ref().and_then(|x| match parse(x.get_ref()) {
                Some(n) => Some(n),
                None => {
                    v.err(
                        span(x),
                        format!("`{}` is not a valid {what}", x.get_ref()),
                        help,
                    );
                    ok = false;
                    None
                }
            })
        };
        out.rate_bps = field(
            self,
            &s.rate,
            crate::units::rate_bps,
            "rate",
            "e.g. 50mbit, 1gbit, 500kbit",
        );
        out.burst_bytes = field(
            self,
            &s.burst,
            crate::units::size_bytes,
            "burst",
            "e.g. 64kb, 32768",
        )
        .map(|b| u32::try_from(b).unwrap_or(u32::MAX));
        out.delay_us = field(
            self,
            &s.delay,
            crate::units::time_us,
            "delay",
            "e.g. 10ms, 500us",
        )
        .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
        out.loss_ppm = field(
            self,
            &s.loss,
            crate::units::loss_ppm,
            "loss",
            "a percentage from 0% to 100%, e.g. 0.5%",
        )
        .map(|l| u32::try_from(l).unwrap_or(u32::MAX));
        if ok && out == net::Shaping::default() {
            return None;
        }
        ok.then_some(out)
    }

    fn endpoints(
        &mut self,
        host_name: &str,
        eps: &[RawEndpoint],
        interfaces: &[Interface],
    ) -> Vec<net::Endpoint> {
        let mut out = Vec::new();
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        for e in eps {
            let dev = e.dev.as_ref().and_then(|d| {
                match interfaces.iter().find(|i| &i.name == d.get_ref()) {
                    Some(i) => Some(i),
                    None => {
                        self.err(
                            span(d),
                            format!("host `{host_name}` has no interface `{}`", d.get_ref()),
                            &format!(
                                "interfaces of {host_name}: {}",
                                interfaces
                                    .iter()
                                    .map(|i| i.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        None
                    }
                }
            });
            let Some(address) = self.addr(&e.address) else {
                continue;
            };
            let holder = interfaces.iter().find(|i| i.has_address(address));
            match (holder, dev) {
                // An address no interface carries is allowed (mptcp_join.sh announces such
                // addresses on purpose); `lab doctor` warns about it.
                (None, _) => {}
                (Some(h), Some(d)) if h.name != d.name => {
                    self.err(
                        span(e.dev.as_ref().unwrap_or(&e.address)),
                        format!("{address} is on `{}`, not on `{}`", h.name, d.name),
                        &format!("set dev = \"{}\"", h.name),
                    );
                }
                _ => {}
            }
            if !addrs.insert(address) {
                self.err(
                    span(&e.address),
                    format!("two endpoints of `{host_name}` have the address {address}"),
                    "one endpoint per address",
                );
            }
            if let Some(id) = &e.id {
                if *id.get_ref() == 0 {
                    self.err(
                        span(id),
                        "endpoint id 0 is reserved for the initial subflow's address".into(),
                        "use 1 to 255",
                    );
                } else if !ids.insert(*id.get_ref()) {
                    self.err(
                        span(id),
                        format!(
                            "endpoint id {} is used twice on `{host_name}`",
                            id.get_ref()
                        ),
                        "ids are unique per host",
                    );
                }
            }
            let mut flags = net::EndpointFlags::default();
            for f in &e.flags {
                match f {
                    Flag::Signal => flags.signal = true,
                    Flag::Subflow => flags.subflow = true,
                    Flag::Backup => flags.backup = true,
                    Flag::Fullmesh => flags.fullmesh = true,
                    Flag::Laminar => flags.laminar = true,
                }
            }
            out.push(net::Endpoint {
                address,
                id: e.id.as_ref().map(|i| *i.get_ref()),
                dev: e.dev.as_ref().map(|d| d.get_ref().clone()),
                port: e.port,
                flags,
            });
        }
        out
    }

    fn sysctls(
        &mut self,
        raw: &IndexMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> Vec<net::Sysctl> {
        let mut out = Vec::new();
        for (k, v) in raw {
            let key = k.get_ref();
            let key_ok = key.contains('.')
                && !key.starts_with('.')
                && !key.ends_with('.')
                && !key.contains("..")
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
            if !key_ok {
                self.err(
                    span(k),
                    format!("`{key}` is not a sysctl key"),
                    "dotted form, e.g. \"net.ipv4.conf.all.rp_filter\" (quote keys with dots)",
                );
                continue;
            }
            let value = match v.get_ref() {
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => u8::from(*b).to_string(),
                toml::Value::String(s)
                    if !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '=') =>
                {
                    s.clone()
                }
                _ => {
                    self.err(
                        span(v),
                        format!("the value of `{key}` must be an integer or a plain string"),
                        "e.g. 1, or \"cubic\"",
                    );
                    continue;
                }
            };
            out.push(net::Sysctl::new(key.clone(), value));
        }
        out
    }

    fn links(&mut self, raw: &[RawLink], hosts: &mut [Host]) -> Vec<Link> {
        let mut out = Vec::new();
        let mut used: HashSet<(String, String)> = HashSet::new();
        for l in raw {
            let ends = l.endpoints.get_ref();
            if ends.len() != 2 {
                self.err(
                    span(&l.endpoints),
                    format!("a link joins exactly 2 interfaces, this one lists {}", ends.len()),
                    "endpoints = [\"ue1:enp0s8\", \"ue2:enp0s8\"]; use [networks] for a shared segment",
                );
                continue;
            }
            let mut atts = Vec::new();
            for e in ends {
                let Some((h, i)) = e.get_ref().split_once(':') else {
                    self.err(
                        span(e),
                        format!("`{}` is not HOST:INTERFACE", e.get_ref()),
                        "e.g. \"ue1:enp0s8\"",
                    );
                    continue;
                };
                let Some(host) = hosts.iter().find(|x| x.name == h) else {
                    let names: Vec<&str> = hosts.iter().map(|x| x.name.as_str()).collect();
                    self.err(
                        span(e),
                        format!("link names host `{h}`, which is not defined"),
                        &format!("hosts: {}", names.join(", ")),
                    );
                    continue;
                };
                let Some(iface) = host.interface(i) else {
                    self.err(
                        span(e),
                        format!("host `{h}` has no interface `{i}`"),
                        "add it under [[hosts.HOST.interfaces]] (without `network`)",
                    );
                    continue;
                };
                if iface.is_nat() || matches!(&iface.attach, Attach::Network(n) if !n.is_empty()) {
                    self.err(
                        span(e),
                        format!("`{h}:{i}` is already on a network; a link needs a free interface"),
                        "remove `network`/`nat` from that interface",
                    );
                    continue;
                }
                if !used.insert((h.to_string(), i.to_string())) {
                    self.err(span(e), format!("`{h}:{i}` is in two links"), "");
                    continue;
                }
                atts.push((
                    Attachment {
                        host: h.to_string(),
                        interface: i.to_string(),
                    },
                    span(e),
                ));
            }
            if atts.len() != 2 {
                continue;
            }
            if atts[0].0.host == atts[1].0.host {
                self.err(
                    atts[1].1.clone(),
                    "a link must join two different hosts".into(),
                    "",
                );
                continue;
            }
            let name = match &l.name {
                Some(n) => {
                    self.segment_name(n);
                    n.get_ref().clone()
                }
                None => format!(
                    "{}-{}--{}-{}",
                    atts[0].0.host, atts[0].0.interface, atts[1].0.host, atts[1].0.interface
                ),
            };
            for (a, _) in &atts {
                if let Some(h) = hosts.iter_mut().find(|h| h.name == a.host)
                    && let Some(i) = h.interfaces.iter_mut().find(|i| i.name == a.interface)
                {
                    i.attach = Attach::Link(name.clone());
                }
            }
            let [(a, _), (b, _)]: [(Attachment, Range<usize>); 2] = match atts.try_into() {
                Ok(pair) => pair,
                Err(_) => continue,
            };
            out.push(Link { name, a, b });
        }
        out
    }

    fn unique_addresses(&mut self, hosts: &[Host], raw_hosts: &[RawHost]) {
        let mut seen: HashMap<IpAddr, (String, String)> = HashMap::new();
        for (h, rh) in hosts.iter().zip(raw_hosts) {
            for i in &h.interfaces {
                for a in &i.addresses {
                    if let Some((ph, pi)) = seen.get(&a.addr()) {
                        let sp = address_span(rh, &i.name);
                        self.err(
                            sp,
                            format!("address {} is already used by {ph}:{pi}", a.addr()),
                            "every interface in a lab needs its own addresses",
                        );
                    } else {
                        seen.insert(a.addr(), (h.name.clone(), i.name.clone()));
                    }
                }
            }
        }
    }

    fn subnets(&mut self, hosts: &[Host], networks: &[Network], raw_hosts: &[RawHost]) {
        for (h, rh) in hosts.iter().zip(raw_hosts) {
            for i in &h.interfaces {
                let Attach::Network(n) = &i.attach else {
                    continue;
                };
                let Some(net) = networks.iter().find(|x| &x.name == n) else {
                    continue;
                };
                for a in &i.addresses {
                    let Some(subnet) = net
                        .subnets
                        .iter()
                        .find(|s| s.addr().is_ipv6() == a.addr().is_ipv6())
                    else {
                        continue;
                    };
                    if !subnet.contains(&a.addr()) || a.prefix_len() < subnet.prefix_len() {
                        let sp = address_span(rh, &i.name);
                        self.err(
                            sp,
                            format!("{a} is not inside network `{n}`'s subnet {subnet}"),
                            "change the address or the network's subnet",
                        );
                    }
                }
            }
        }
    }
}

/// `IPv4` or `IPv6`, for messages.
fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}
