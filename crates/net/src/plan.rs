//! A host's configuration as an ordered list of typed steps, each with the argv that applies it.
//!
//! The order is the guide's: sysctls, links and addresses, routing-table names, `ip rule`,
//! `ip route` per table, MPTCP endpoints, limits, then shaping. Appliers (namespace, SSH) run the
//! steps through the command seam, or diff them against the live state; the script renderer
//! prints them for people.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::spec::{Endpoint, HostNet, Limits, Shaping, Sysctl};

/// The kernel's main routing table (RT_TABLE_MAIN).
pub const MAIN_TABLE: u32 = 254;

/// How `ip` commands name routing tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableNaming {
    /// By the names in /etc/iproute2/rt_tables (`table table1`), as the guide does.
    Name,
    /// By numeric id (`table 100`): needs no edit of the machine's rt_tables.
    Id,
}

/// One step of a host's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    Sysctl(Sysctl),
    LinkUp {
        dev: String,
        mtu: Option<u32>,
    },
    /// An address; IPv6 ones skip duplicate address detection (`nodad`): lab checks that
    /// addresses are unique, and a tentative address cannot be bound for a second or two.
    Address {
        dev: String,
        address: IpNet,
    },
    /// A line in /etc/iproute2/rt_tables (a file edit, not a command).
    RtTable {
        id: u32,
        name: String,
    },
    Rule {
        from: IpAddr,
        table_id: u32,
        table_name: String,
    },
    Route {
        /// `None` is the default route.
        to: Option<IpNet>,
        via: Option<IpAddr>,
        dev: String,
        scope_link: bool,
        /// `None`: the kernel's default metric.
        metric: Option<u32>,
        /// The main table is 254, `main`.
        table_id: u32,
        table_name: String,
        /// An IPv6 route (`ip -6 route`; a default route names its family).
        ipv6: bool,
    },
    Endpoint(Endpoint),
    Limits(Limits),
    Qdisc {
        dev: String,
        shaping: Shaping,
    },
}

/// Plan sections, for headings in the script and for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Sysctls,
    Addresses,
    RoutingTables,
    Rules,
    Routes,
    Endpoints,
    Limits,
    Shaping,
}

impl Phase {
    pub fn title(self) -> &'static str {
        match self {
            Phase::Sysctls => "sysctls",
            Phase::Addresses => "links and addresses (persistent form: --format netplan)",
            Phase::RoutingTables => "routing table names (/etc/iproute2/rt_tables)",
            Phase::Rules => "per-source routing: rules",
            Phase::Routes => "routes: one table per path interface, then the main table's",
            Phase::Endpoints => "MPTCP path manager: endpoints",
            Phase::Limits => "MPTCP path manager: limits",
            Phase::Shaping => "link shaping",
        }
    }
}

impl Step {
    pub fn phase(&self) -> Phase {
        match self {
            Step::Sysctl(_) => Phase::Sysctls,
            Step::LinkUp { .. } | Step::Address { .. } => Phase::Addresses,
            Step::RtTable { .. } => Phase::RoutingTables,
            Step::Rule { .. } => Phase::Rules,
            Step::Route { .. } => Phase::Routes,
            Step::Endpoint(_) => Phase::Endpoints,
            Step::Limits(_) => Phase::Limits,
            Step::Qdisc { .. } => Phase::Shaping,
        }
    }

    /// The command that applies this step, or `None` for a file edit (`RtTable`).
    pub fn argv(&self, naming: TableNaming) -> Option<Vec<String>> {
        let table = |id: u32, name: &str| match naming {
            TableNaming::Name => name.to_string(),
            TableNaming::Id => id.to_string(),
        };
        let v = match self {
            Step::Sysctl(s) => argv(["sysctl", "-w", &format!("{}={}", s.key, s.value)]),
            Step::LinkUp { dev, mtu } => {
                let mut v = argv(["ip", "link", "set", "dev", dev]);
                if let Some(mtu) = mtu {
                    v.extend(argv(["mtu", &mtu.to_string()]));
                }
                v.push("up".into());
                v
            }
            Step::Address { dev, address } => {
                let mut v = argv(["ip", "address", "add", &address.to_string(), "dev", dev]);
                if address.addr().is_ipv6() {
                    v.push("nodad".into());
                }
                v
            }
            Step::RtTable { .. } => return None,
            Step::Rule {
                from,
                table_id,
                table_name,
            } => {
                let mut v = ip(from.is_ipv6());
                v.extend(argv([
                    "rule",
                    "add",
                    "from",
                    &from.to_string(),
                    "table",
                    &table(*table_id, table_name),
                ]));
                v
            }
            Step::Route {
                to,
                via,
                dev,
                scope_link,
                metric,
                table_id,
                table_name,
                ipv6,
            } => {
                let mut v = ip(*ipv6);
                v.extend(argv(["route", "add"]));
                v.push(to.map_or_else(|| "default".to_string(), |n| n.to_string()));
                if let Some(via) = via {
                    v.extend(argv(["via", &via.to_string()]));
                }
                v.extend(argv(["dev", dev]));
                if *scope_link {
                    v.extend(argv(["scope", "link"]));
                }
                if let Some(m) = metric {
                    v.extend(argv(["metric", &m.to_string()]));
                }
                v.extend(argv(["table", &table(*table_id, table_name)]));
                v
            }
            Step::Endpoint(e) => {
                let mut v = argv(["ip", "mptcp", "endpoint", "add", &e.address.to_string()]);
                if let Some(port) = e.port {
                    v.extend(argv(["port", &port.to_string()]));
                }
                if let Some(dev) = &e.dev {
                    v.extend(argv(["dev", dev]));
                }
                if let Some(id) = e.id {
                    v.extend(argv(["id", &id.to_string()]));
                }
                v.extend(e.flags.words().into_iter().map(String::from));
                v
            }
            Step::Limits(l) => argv([
                "ip",
                "mptcp",
                "limits",
                "set",
                "subflow",
                &l.subflows.to_string(),
                "add_addr_accepted",
                &l.add_addr_accepted.to_string(),
            ]),
            Step::Qdisc { dev, shaping } => qdisc_argv(dev, shaping),
        };
        Some(v)
    }
}

/// `ip`, or `ip -6` for an IPv6 rule or route.
pub(crate) fn ip(ipv6: bool) -> Vec<String> {
    if ipv6 {
        argv(["ip", "-6"])
    } else {
        argv(["ip"])
    }
}

fn argv<const N: usize>(words: [&str; N]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

fn qdisc_argv(dev: &str, s: &Shaping) -> Vec<String> {
    let mut v = argv(["tc", "qdisc", "replace", "dev", dev, "root"]);
    if s.needs_netem() {
        v.push("netem".into());
        if let Some(d) = s.delay_us {
            v.extend(argv(["delay", &format_time_us(d)]));
        }
        if let Some(l) = s.loss_ppm {
            v.extend(argv(["loss", &format_loss_ppm(l)]));
        }
        if let Some(r) = s.rate_bps {
            v.extend(argv(["rate", &format_rate(r)]));
        }
    } else if let Some(rate) = s.rate_bps {
        let burst = s.effective_burst().unwrap_or(32 * 1024);
        v.extend(argv([
            "tbf",
            "rate",
            &format_rate(rate),
            "burst",
            &burst.to_string(),
            "latency",
            "50ms",
        ]));
    }
    v
}

/// A rate in tc's units (`50mbit`), exact: falls back to smaller units rather than rounding.
pub fn format_rate(bps: u64) -> String {
    for (div, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bps >= div && bps.is_multiple_of(div) {
            return format!("{}{unit}", bps / div);
        }
    }
    format!("{bps}bit")
}

/// A time in tc's units (`10ms`, `250us`).
pub fn format_time_us(us: u32) -> String {
    if us >= 1000 && us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// A loss ratio in percent as tc reads it (`1%`, `0.25%`).
pub fn format_loss_ppm(ppm: u32) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let frac = format!("{frac:04}");
        format!("{whole}.{}%", frac.trim_end_matches('0'))
    }
}

/// The ordered plan of a host's configuration.
pub fn plan(host: &HostNet) -> Vec<Step> {
    let mut steps: Vec<Step> = host.sysctls.iter().cloned().map(Step::Sysctl).collect();
    for i in &host.interfaces {
        steps.push(Step::LinkUp {
            dev: i.name.clone(),
            mtu: i.mtu,
        });
        steps.extend(i.addresses.iter().map(|a| Step::Address {
            dev: i.name.clone(),
            address: *a,
        }));
    }
    steps.extend(host.tables.iter().map(|t| Step::RtTable {
        id: t.id,
        name: t.name.clone(),
    }));
    for t in &host.tables {
        steps.extend(t.addresses.iter().map(|a| Step::Rule {
            from: a.addr(),
            table_id: t.id,
            table_name: t.name.clone(),
        }));
    }
    for t in &host.tables {
        for a in &t.addresses {
            // IPv6 has no route scopes (the kernel keeps every IPv6 route universe-scoped).
            steps.push(Step::Route {
                to: Some(a.trunc()),
                via: None,
                dev: t.dev.clone(),
                scope_link: a.addr().is_ipv4(),
                metric: None,
                table_id: t.id,
                table_name: t.name.clone(),
                ipv6: a.addr().is_ipv6(),
            });
        }
        for gw in &t.gateways {
            steps.push(Step::Route {
                to: None,
                via: Some(*gw),
                dev: t.dev.clone(),
                scope_link: false,
                metric: None,
                table_id: t.id,
                table_name: t.name.clone(),
                ipv6: gw.is_ipv6(),
            });
        }
    }
    steps.extend(host.routes.iter().map(|r| Step::Route {
        to: r.to,
        via: r.via,
        dev: r.dev.clone(),
        scope_link: false,
        metric: r.metric,
        table_id: MAIN_TABLE,
        table_name: "main".into(),
        ipv6: r.is_ipv6(),
    }));
    steps.extend(host.endpoints.iter().cloned().map(Step::Endpoint));
    steps.extend(host.limits.map(Step::Limits));
    for i in &host.interfaces {
        if let Some(shaping) = i.shaping {
            steps.push(Step::Qdisc {
                dev: i.name.clone(),
                shaping,
            });
        }
    }
    steps
}

/// `ip mptcp endpoint change id ID backup|nobackup`: a path becomes (or stops being) a
/// backup, which the kernel tells the peer with MP_PRIO.
pub fn endpoint_backup_argv(id: u8, backup: bool) -> Vec<String> {
    let id = id.to_string();
    argv([
        "ip",
        "mptcp",
        "endpoint",
        "change",
        "id",
        &id,
        if backup { "backup" } else { "nobackup" },
    ])
}

/// `ip link set dev DEV up|down`: failure injection and its repair.
pub fn link_state_argv(dev: &str, up: bool) -> Vec<String> {
    argv([
        "ip",
        "link",
        "set",
        "dev",
        dev,
        if up { "up" } else { "down" },
    ])
}

/// A step with its argv in both namings, for `--format json`.
#[derive(Debug, Serialize)]
pub struct RenderedStep<'a> {
    pub phase: Phase,
    #[serde(flatten)]
    pub step: &'a Step,
    /// The command as the guide writes it (table names).
    pub argv: Option<Vec<String>>,
    /// The same command naming tables by id (what lab's appliers run).
    pub argv_by_id: Option<Vec<String>>,
}

pub fn rendered(steps: &[Step]) -> Vec<RenderedStep<'_>> {
    steps
        .iter()
        .map(|step| RenderedStep {
            phase: step.phase(),
            step,
            argv: step.argv(TableNaming::Name),
            argv_by_id: step.argv(TableNaming::Id),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_units() {
        assert_eq!(format_rate(50_000_000), "50mbit");
        assert_eq!(format_rate(1_500_000), "1500kbit");
        assert_eq!(format_rate(2_000_000_000), "2gbit");
        assert_eq!(format_rate(999), "999bit");
        assert_eq!(format_time_us(10_000), "10ms");
        assert_eq!(format_time_us(1_500), "1500us");
        assert_eq!(format_loss_ppm(10_000), "1%");
        assert_eq!(format_loss_ppm(5_000), "0.5%");
        assert_eq!(format_loss_ppm(1_250), "0.125%");
        assert_eq!(format_loss_ppm(1), "0.0001%");
    }
}
