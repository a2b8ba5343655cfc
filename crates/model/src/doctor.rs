//! `lab doctor`: the MPTCP misconfigurations people actually hit, each explained with its fix.
//!
//! The checks come from the guide's own mistakes (../shared/seed/GUIDE.md, ../shared/MEASURED.md)
//! and the recurring questions in mptcp_net-next and mptcpd issues (../shared/ANCHORS.md).

use serde::Serialize;

use crate::model::{Attach, Host, Lab, MptcpdPlugin, Role};

/// One problem found in a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable identifier, e.g. `limits-too-low`.
    pub code: &'static str,
    pub host: String,
    /// What is wrong and what it does to the traffic.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// The kernel's defaults when no limits are set (net/mptcp/pm_kernel.c).
const KERNEL_DEFAULT_LIMITS: net::Limits = net::Limits {
    subflows: 2,
    add_addr_accepted: 0,
};

/// Check every host of `lab`. An empty result means the lab is clean.
pub fn check(lab: &Lab) -> Vec<Finding> {
    let mut out = Vec::new();
    let max_paths = lab.max_paths();
    let announced: usize = lab
        .hosts_with_role(Role::Server)
        .map(|h| h.endpoints.iter().filter(|e| e.flags.signal).count())
        .max()
        .unwrap_or(0);
    // The family of the test's connections: that of the server's primary address.
    let connection_v6 = lab
        .hosts_with_role(Role::Server)
        .find_map(crate::expect::primary_address)
        .map(|a| a.is_ipv6());
    for h in &lab.hosts {
        let mut f = |code: &'static str, message: String, fix: String| {
            out.push(Finding {
                code,
                host: h.name.clone(),
                message,
                fix,
            });
        };
        let paths = h.path_interfaces().count();
        if max_paths >= 2 {
            limits(h, max_paths, announced, &mut f);
        }
        roles(h, paths, &mut f);
        endpoints(h, paths, &mut f);
        families(h, connection_v6, &mut f);
        sysctls(h, paths, &mut f);
        if h.mptcpd.enabled
            && h.mptcpd.path_manager == MptcpdPlugin::AddrAdv
            && !h.endpoints.is_empty()
        {
            f(
                "mptcpd-addr-adv",
                "mptcpd runs its addr_adv plugin, which adds an endpoint for every address that appears (the NAT NIC's too), fighting the endpoints this lab sets".into(),
                "stop mptcpd (`systemctl disable --now mptcp.service`) or set `path-manager=sspi` in /etc/mptcpd/mptcpd.conf; `mptcpize` works without the daemon".into(),
            );
        }
    }
    underlay(lab, &mut out);
    out
}

/// A segment or link whose hosts sit on more than one machine: what it is, its machines, and
/// its interfaces with their host.
type Crossing<'a> = (
    String,
    Vec<String>,
    Vec<(&'a Host, &'a crate::model::Interface)>,
);

/// The segments and links that span machines.
fn crossing(lab: &Lab) -> Vec<Crossing<'_>> {
    let mut wires: Vec<Crossing<'_>> = Vec::new();
    for h in &lab.hosts {
        let Some(m) = &h.machine else { continue };
        for i in &h.interfaces {
            let key = match &i.attach {
                Attach::Nat => continue,
                Attach::Network(n) => format!("network {n}"),
                Attach::Link(l) => format!("link {l}"),
            };
            let at = match wires.iter().position(|w| w.0 == key) {
                Some(at) => at,
                None => {
                    wires.push((key, Vec::new(), Vec::new()));
                    wires.len() - 1
                }
            };
            if !wires[at].1.contains(m) {
                wires[at].1.push(m.clone());
            }
            wires[at].2.push((h, i));
        }
    }
    wires.retain(|w| w.1.len() > 1);
    wires
}

/// Paths between machines go through one tunnel each over the machines' underlay: the
/// shaped paths that cross one underlay NIC must fit in it, and a packet of the interfaces'
/// MTU must fit in the tunnel.
fn underlay(lab: &Lab, out: &mut Vec<Finding>) {
    let wires = crossing(lab);
    for m in &lab.machines {
        let mine: Vec<&Crossing<'_>> = wires.iter().filter(|w| w.1.contains(&m.name)).collect();
        // A path's rate is the fastest direction's shaping; an unshaped path is not bounded and
        // not counted.
        let rates: Vec<(String, u64)> = mine
            .iter()
            .filter_map(|w| {
                w.2.iter()
                    .filter_map(|(_, i)| i.shaping.as_ref().and_then(|s| s.rate_bps))
                    .max()
                    .map(|r| (w.0.clone(), r))
            })
            .collect();
        let total: u64 = rates.iter().map(|r| r.1).sum();
        if let Some(cap) = m.underlay_rate_bps
            && total > cap
        {
            out.push(Finding {
                code: "underlay-too-slow",
                host: format!("machine {}", m.name),
                message: format!(
                    "the shaped paths that cross machine {}'s underlay need {:.0} Mbit/s ({}) and it carries {:.0} Mbit/s: the underlay, not the shaping, limits the paths, and the test measures it",
                    m.name,
                    total as f64 / 1e6,
                    rates
                        .iter()
                        .map(|(w, r)| format!("{w}: {:.0}", *r as f64 / 1e6))
                        .collect::<Vec<_>>()
                        .join(", "),
                    cap as f64 / 1e6
                ),
                fix: "shape the paths lower, place their hosts on one machine, or give the machine a faster underlay (underlay_rate)".into(),
            });
        }
        for w in &mine {
            // The tunnel's inside: the smallest of its machines'.
            let inner = lab
                .tunnel_inside(w.1.iter().map(String::as_str))
                .unwrap_or(m.tunnel_mtu());
            for (h, i) in
                w.2.iter()
                    .filter(|(h, _)| h.machine.as_deref() == Some(&m.name))
            {
                let v6 = i.addresses.iter().any(|a| a.addr().is_ipv6());
                let needs = i.mtu.unwrap_or(0).max(if v6 { 1280 } else { 576 });
                if inner < needs {
                    out.push(Finding {
                        code: "underlay-mtu-too-small",
                        host: h.name.clone(),
                        message: format!(
                            "{} of {} crosses machines {} in a tunnel whose inside is {inner} bytes (the smallest underlay MTU less the encapsulation), below the {needs} bytes {}: larger packets are dropped",
                            i.name,
                            w.0,
                            w.1.join(" and "),
                            if i.mtu.is_some_and(|x| x >= needs) {
                                "the interface's mtu sends"
                            } else if v6 {
                                "IPv6 needs"
                            } else {
                                "IPv4 needs"
                            }
                        ),
                        fix: format!(
                            "raise underlay_mtu to at least {} on every machine of the tunnel (jumbo frames on the underlay), or set mtu = {inner} on the interface",
                            needs + (m.underlay_mtu - m.tunnel_mtu())
                        ),
                    });
                }
            }
        }
    }
}

fn limits(
    h: &Host,
    paths: usize,
    announced: usize,
    f: &mut impl FnMut(&'static str, String, String),
) {
    let (l, source) = match h.limits {
        Some(l) => (l, "limits"),
        None => (KERNEL_DEFAULT_LIMITS, "the kernel's default limits"),
    };
    let extra = paths - 1;
    // What lab derives: one subflow and one accepted address per path of the widest host.
    // What lab derives (the derive module): N accepted, 2N-1 subflows, both capped at 8.
    let n = u32::try_from(paths.max(announced)).unwrap_or(u32::MAX);
    let accept = n.min(crate::load::MAX_LIMIT);
    let want = (2 * n).saturating_sub(1).min(crate::load::MAX_LIMIT);
    let fix = format!(
        "ip mptcp limits set subflow {want} add_addr_accepted {accept} (in Lab.toml: [hosts.{}.mptcp.limits] subflows = {want}, add_addr_accepted = {accept}, or leave the table out and lab derives it)",
        h.name
    );
    if (l.subflows as usize) < extra {
        f(
            "limits-too-low",
            format!(
                "{source} allow {} extra subflow(s) per connection, but the lab has {extra} extra path(s): at most {} path(s) can carry data",
                l.subflows,
                l.subflows + 1
            ),
            fix.clone(),
        );
    }
    if h.role == Role::Client && (l.add_addr_accepted as usize) < announced {
        f(
            "limits-too-low",
            format!(
                "{source} accept {} announced address(es) (add_addr_accepted), but the server announces {announced}: the rest are ignored",
                l.add_addr_accepted
            ),
            fix,
        );
    }
}

fn roles(h: &Host, paths: usize, f: &mut impl FnMut(&'static str, String, String)) {
    match h.role {
        Role::Server => {
            if paths >= 2 && !h.endpoints.iter().any(|e| e.flags.signal) {
                f(
                    "no-signal-endpoint",
                    "the server announces none of its extra addresses (no `signal` endpoint): clients can only open subflows to the one address they connected to".into(),
                    format!(
                        "on the server, add each extra address as a signal endpoint, e.g. `ip mptcp endpoint add ADDR dev IFACE signal` ([[hosts.{}.mptcp.endpoints]] flags = [\"signal\"])",
                        h.name
                    ),
                );
            }
            let subflow: Vec<String> = h
                .endpoints
                .iter()
                .filter(|e| e.flags.subflow)
                .map(|e| e.address.to_string())
                .collect();
            if !subflow.is_empty() {
                f(
                    "subflow-endpoint-on-server",
                    format!(
                        "the server has `subflow` endpoints ({}): a server does not open subflows, these only cause join errors (MPJoinSynTxCreatSkErr)",
                        subflow.join(", ")
                    ),
                    "replace `subflow` by `signal` on the server; `subflow` (or laminar/fullmesh) belongs on the client".into(),
                );
            }
        }
        Role::Client => {
            let signal: Vec<String> = h
                .endpoints
                .iter()
                .filter(|e| e.flags.signal)
                .map(|e| e.address.to_string())
                .collect();
            if !signal.is_empty() {
                f(
                    "signal-endpoint-on-client",
                    format!(
                        "the client announces {} (`signal`): roles are reversed, the server will not open subflows back",
                        signal.join(", ")
                    ),
                    "use `subflow` (or laminar) endpoints on the client and `signal` on the server"
                        .into(),
                );
            }
        }
    }
}

fn endpoints(h: &Host, paths: usize, f: &mut impl FnMut(&'static str, String, String)) {
    for e in &h.endpoints {
        let carried = h.interface_with(e.address).is_some();
        if !carried {
            f(
                "endpoint-address-not-here",
                format!(
                    "endpoint {} is an address no interface of {} carries: a peer's joins to it (signal) fail, and subflows from it (subflow) cannot bind",
                    e.address, h.name
                ),
                "give the address to an interface, or remove the endpoint (mptcp_join.sh's \"invalid address\" tests do this on purpose)".into(),
            );
        }
        let iface = e.dev.as_deref().and_then(|d| h.interface(d));
        if iface.is_some_and(|i| i.is_nat()) {
            f(
                "endpoint-on-nat",
                format!(
                    "endpoint {} is on the NAT interface {}: VirtualBox and QEMU user-mode NAT strip MPTCP options, so subflows there fall back or die",
                    e.address,
                    e.dev.as_deref().unwrap_or("")
                ),
                "remove that endpoint; keep MPTCP on the lab's internal networks".into(),
            );
        }
        if e.dev.is_none() {
            f(
                "endpoint-without-dev",
                format!(
                    "endpoint {} has no `dev`: the kernel cannot bind its subflows to an interface, so they leave by whatever route wins",
                    e.address
                ),
                format!(
                    "add the interface: `ip mptcp endpoint add {} dev IFACE ...`",
                    e.address
                ),
            );
        }
        if e.flags.fullmesh && e.flags.signal {
            f(
                "fullmesh-with-signal",
                format!(
                    "endpoint {} has both `fullmesh` and `signal`: the kernel refuses this combination",
                    e.address
                ),
                "fullmesh goes with `subflow` on the client; announce with `signal` on the server"
                    .into(),
            );
        }
        if paths >= 2
            && !h
                .tables
                .iter()
                .any(|t| t.addresses.iter().any(|a| a.addr() == e.address))
        {
            f(
                "endpoint-without-routing",
                format!(
                    "endpoint {} has no per-source routing table: its packets follow the main table and leave by the first NIC of the subnet",
                    e.address
                ),
                format!(
                    "give the interface holding {} a table (`table = {{ id = 100, name = \"table1\" }}`), or let lab derive it; by hand: `ip rule add from {} table ID` plus routes in that table",
                    e.address, e.address
                ),
            );
        }
    }
}

/// IPv6 and dual-stack: endpoints of the other family than the connections', and IPv6
/// addresses on interfaces where the lab's sysctls turn IPv6 off.
fn families(
    h: &Host,
    connection_v6: Option<bool>,
    f: &mut impl FnMut(&'static str, String, String),
) {
    if connection_v6 == Some(false) {
        let v6: Vec<String> = h
            .endpoints
            .iter()
            .filter(|e| e.address.is_ipv6())
            .map(|e| e.address.to_string())
            .collect();
        if !v6.is_empty() {
            f(
                "endpoint-family-unused",
                format!(
                    "IPv6 endpoint(s) {} on {}, but the lab's connections are IPv4 (the server's primary address is IPv4): an IPv4 socket never uses IPv6 addresses (Linux 6.3 and later; mptcp_join.sh \"IPv4 sockets do not use IPv6 addresses\")",
                    v6.join(", "),
                    h.name
                ),
                "write the IPv6 address first on the server's interfaces to test over IPv6 (an IPv6 socket takes IPv4 joins too), or drop those endpoints".into(),
            );
        }
    }
    let off = |key: String| h.sysctl(&key).is_some_and(|v| v.trim() == "1");
    let disabled: Vec<&str> = h
        .path_interfaces()
        .filter(|i| i.addresses.iter().any(|a| a.addr().is_ipv6()))
        .filter(|i| {
            off("net.ipv6.conf.all.disable_ipv6".into())
                || off(format!(
                    "net.ipv6.conf.{}.disable_ipv6",
                    i.name.replace('.', "/")
                ))
        })
        .map(|i| i.name.as_str())
        .collect();
    if !disabled.is_empty() {
        f(
            "ipv6-disabled",
            format!(
                "{} carr{} IPv6 addresses, but the lab sets disable_ipv6 = 1 there: the kernel refuses the addresses and every IPv6 path is dead",
                disabled.join(", "),
                if disabled.len() == 1 { "ies" } else { "y" }
            ),
            "remove the disable_ipv6 sysctl (or the IPv6 addresses)".into(),
        );
    }
}

fn effective(h: &Host, iface: &str, setting: &str) -> Option<u32> {
    let all = h
        .sysctl(&format!("net.ipv4.conf.all.{setting}"))
        .and_then(|v| v.parse::<u32>().ok());
    let dev = h
        .sysctl(&net::Sysctl::ipv4_conf_key(iface, setting))
        .and_then(|v| v.parse::<u32>().ok());
    // The kernel uses the larger of the `all` and per-device values for these settings.
    match (all, dev) {
        (None, None) => None,
        (a, d) => Some(a.unwrap_or(0).max(d.unwrap_or(0))),
    }
}

fn sysctls(h: &Host, paths: usize, f: &mut impl FnMut(&'static str, String, String)) {
    // rp_filter and ARP are IPv4's: IPv6 has neither (and answers neighbour solicitations
    // only for the receiving interface's own addresses).
    let v4 = |i: &&crate::model::Interface| i.addresses.iter().any(|a| a.addr().is_ipv4());
    if paths >= 2 {
        let strict: Vec<&str> = h
            .path_interfaces()
            .filter(v4)
            .filter(|i| effective(h, &i.name, "rp_filter") == Some(1))
            .map(|i| i.name.as_str())
            .collect();
        if !strict.is_empty() {
            f(
                "rp-filter-strict",
                format!(
                    "rp_filter=1 (strict) on {}: with several paths, replies and joins arrive on a NIC the main table would not use, and the kernel drops them",
                    strict.join(", ")
                ),
                "set net.ipv4.conf.all.rp_filter = 2 (loose) or 0, and the same per interface"
                    .into(),
            );
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    for i in h.path_interfaces() {
        if let Attach::Network(n) = &i.attach
            && !segments.contains(&n.as_str())
        {
            segments.push(n);
        }
    }
    for seg in segments {
        let nics: Vec<&str> = h
            .path_interfaces()
            .filter(v4)
            .filter(|i| matches!(&i.attach, Attach::Network(n) if n == seg))
            .map(|i| i.name.as_str())
            .collect();
        if nics.len() < 2 {
            continue;
        }
        let bad: Vec<&str> = nics
            .iter()
            .copied()
            .filter(|i| {
                effective(h, i, "arp_ignore").unwrap_or(0) < 1
                    || effective(h, i, "arp_announce").unwrap_or(0) < 2
            })
            .collect();
        if !bad.is_empty() {
            f(
                "arp-flux",
                format!(
                    "{} NICs ({}) share segment `{seg}` without arp_ignore=1/arp_announce=2: every NIC answers ARP for every address (ARP flux), so traffic for one address arrives on another NIC",
                    nics.len(),
                    nics.join(", ")
                ),
                format!(
                    "sysctl -w net.ipv4.conf.IFACE.arp_ignore=1 net.ipv4.conf.IFACE.arp_announce=2 for {} (lab derives these unless the Lab.toml sets them)",
                    bad.join(", ")
                ),
            );
        }
    }
}
