//! Idempotent apply, the pure half: a host's live state ([`Observed`]) against its plan gives the
//! [`Change`]s that make the host match, and nothing else.
//!
//! Appliers read the state (netlink in a namespace, `ip -json` over SSH), call [`diff`], and run
//! the changes. An applied host diffs to no change at all. What lab owns on a host is bounded: the
//! plan's interfaces (their IPv4 addresses and root qdisc), the plan's routing tables (rules that
//! point at them, every route in them), the MPTCP endpoints and limits, and the plan's sysctls.
//! Anything else (the main table, other tables, other interfaces) is left alone.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::plan::{Step, TableNaming, ip, plan};
use crate::spec::{EndpointFlags, HostNet, Limits};

/// A host's network state as read from the live system, restricted to what lab manages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub links: Vec<LinkState>,
    /// Global IPv4 and IPv6 addresses per device.
    pub addresses: Vec<AddressState>,
    /// Rules of the form `from ADDR/32 lookup TABLE` (`/128` for IPv6).
    pub rules: Vec<RuleState>,
    /// Unicast routes in the main table and in tables other than local and default.
    pub routes: Vec<RouteState>,
    pub endpoints: Vec<EndpointState>,
    pub limits: Limits,
    /// Current values of the plan's sysctl keys (keys that do not exist are missing here).
    pub sysctls: Vec<(String, String)>,
    /// Root qdisc per device.
    pub qdiscs: Vec<QdiscState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkState {
    pub name: String,
    pub up: bool,
    pub mtu: u32,
    /// Its hardware address (`aa:bb:cc:dd:ee:ff`), when it has one (not on loopback,
    /// tunnels).
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressState {
    pub dev: String,
    pub address: IpNet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RuleState {
    pub from: IpAddr,
    pub table: u32,
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteState {
    pub table: u32,
    /// `None` is the default route.
    pub to: Option<IpNet>,
    pub via: Option<IpAddr>,
    pub dev: String,
    pub scope_link: bool,
    /// The route's priority (`metric`); the kernel gives IPv6 routes 1024 when none is asked.
    pub metric: Option<u32>,
    pub ipv6: bool,
}

impl RouteState {
    /// Whether this live route is the one `want` plans. A planned route without a metric
    /// takes whatever metric the kernel gave it.
    pub fn matches(&self, want: &RouteState) -> bool {
        self.table == want.table
            && self.to == want.to
            && self.via == want.via
            && self.dev == want.dev
            && self.scope_link == want.scope_link
            && self.ipv6 == want.ipv6
            && want.metric.is_none_or(|m| self.metric.unwrap_or(0) == m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointState {
    pub id: u8,
    pub address: IpAddr,
    pub port: Option<u16>,
    pub dev: Option<String>,
    pub flags: EndpointFlags,
    /// The kernel's `implicit` flag (0x10): created by the kernel, not by a user; never removed.
    pub implicit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QdiscState {
    pub dev: String,
    /// `tbf`, `netem`, `noqueue`, ...
    pub kind: String,
    /// tbf's rate in bit/s.
    pub rate_bps: Option<u64>,
}

/// One change to a host. Removals come first in a diff, then the plan's steps in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Apply a plan step (add, set, or replace).
    Apply(Step),
    DelEndpoint {
        id: u8,
        address: IpAddr,
    },
    DelRule(RuleState),
    DelRoute(RouteState),
    DelAddress(AddressState),
    DelQdisc {
        dev: String,
    },
}

impl Change {
    /// The `ip`/`tc`/`sysctl` command that makes this change (tables by id). `None` for a file
    /// edit, which a diff never contains.
    pub fn argv(&self) -> Option<Vec<String>> {
        let s = |w: &[&str]| w.iter().map(|w| (*w).to_string()).collect::<Vec<_>>();
        Some(match self {
            Change::Apply(step) => return step.argv(TableNaming::Id),
            // iproute2 takes an address only for id 0 ("invalid for non-zero id address").
            Change::DelEndpoint { id: 0, address } => s(&[
                "ip",
                "mptcp",
                "endpoint",
                "delete",
                "id",
                "0",
                &address.to_string(),
            ]),
            Change::DelEndpoint { id, .. } => {
                s(&["ip", "mptcp", "endpoint", "delete", "id", &id.to_string()])
            }
            Change::DelRule(r) => {
                let mut v = ip(r.from.is_ipv6());
                v.extend(s(&["rule", "del", "from", &r.from.to_string()]));
                v.extend(s(&["table", &r.table.to_string()]));
                if let Some(p) = r.priority {
                    v.extend(s(&["priority", &p.to_string()]));
                }
                v
            }
            Change::DelRoute(r) => {
                let mut v = ip(r.ipv6);
                v.extend(s(&["route", "del"]));
                v.push(r.to.map_or_else(|| "default".into(), |n| n.to_string()));
                if let Some(via) = r.via {
                    v.extend(s(&["via", &via.to_string()]));
                }
                v.extend(s(&["dev", &r.dev]));
                if let Some(m) = r.metric {
                    v.extend(s(&["metric", &m.to_string()]));
                }
                v.extend(s(&["table", &r.table.to_string()]));
                v
            }
            Change::DelAddress(a) => s(&[
                "ip",
                "address",
                "del",
                &a.address.to_string(),
                "dev",
                &a.dev,
            ]),
            Change::DelQdisc { dev } => s(&["tc", "qdisc", "del", "dev", dev, "root"]),
        })
    }
}

/// The MTU of an interface whose Lab.toml sets none: Ethernet's, which the kernel gives veth
/// pairs and virtio, e1000 and most other NICs. An interface lab manages is brought back to it
/// when `mtu` is removed from Lab.toml.
pub const DEFAULT_MTU: u32 = 1500;

/// The changes that take a host from `observed` to its plan.
pub fn diff(host: &HostNet, observed: &Observed) -> Vec<Change> {
    let steps = plan(host);
    let mut removals = Vec::new();
    let mut applies = Vec::new();

    let managed_devs: Vec<&str> = host.interfaces.iter().map(|i| i.name.as_str()).collect();
    let owned_tables: Vec<u32> = host.tables.iter().map(|t| t.id).collect();

    // Endpoints: matched by address and port; a mismatch in flags, id or device is replaced.
    let mut kept_endpoints = vec![false; observed.endpoints.len()];
    for step in &steps {
        let Step::Endpoint(want) = step else { continue };
        let found = observed
            .endpoints
            .iter()
            .position(|e| !e.implicit && e.address == want.address && e.port == want.port);
        let same = found.is_some_and(|i| {
            let e = &observed.endpoints[i];
            e.flags == want.flags
                && want.id.is_none_or(|id| id == e.id)
                && want.dev.as_ref().is_none_or(|d| e.dev.as_ref() == Some(d))
        });
        if same {
            kept_endpoints[found.unwrap()] = true;
        } else {
            applies.push(Change::Apply(step.clone()));
        }
    }
    for (e, kept) in observed.endpoints.iter().zip(&kept_endpoints) {
        if !kept && !e.implicit {
            removals.push(Change::DelEndpoint {
                id: e.id,
                address: e.address,
            });
        }
    }

    // Rules pointing at the plan's tables that the plan does not have.
    let wanted_rules: Vec<(IpAddr, u32)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Rule { from, table_id, .. } => Some((*from, *table_id)),
            _ => None,
        })
        .collect();
    for r in &observed.rules {
        if owned_tables.contains(&r.table) && !wanted_rules.contains(&(r.from, r.table)) {
            removals.push(Change::DelRule(*r));
        }
    }
    // Every route in the plan's tables that the plan does not have.
    let wanted_routes: Vec<RouteState> = steps.iter().filter_map(route_state).collect();
    for r in &observed.routes {
        if owned_tables.contains(&r.table) && !wanted_routes.iter().any(|w| r.matches(w)) {
            removals.push(Change::DelRoute(r.clone()));
        }
    }
    // Global addresses on the plan's interfaces that the plan does not have.
    for a in &observed.addresses {
        let wanted = host
            .interfaces
            .iter()
            .any(|i| i.name == a.dev && i.addresses.contains(&a.address));
        if managed_devs.contains(&a.dev.as_str()) && !wanted {
            removals.push(Change::DelAddress(a.clone()));
        }
    }
    // Shaping that the plan no longer has.
    for q in &observed.qdiscs {
        let shaped = host
            .interfaces
            .iter()
            .any(|i| i.name == q.dev && i.shaping.is_some());
        if managed_devs.contains(&q.dev.as_str()) && !shaped && is_lab_qdisc(&q.kind) {
            removals.push(Change::DelQdisc { dev: q.dev.clone() });
        }
    }

    let mut out = removals;
    for step in steps {
        let needed = match &step {
            Step::Sysctl(s) => observed
                .sysctls
                .iter()
                .find(|(k, _)| *k == s.key)
                .is_none_or(|(_, v)| v.trim() != s.value),
            Step::LinkUp { dev, mtu } => {
                let link = observed.links.iter().find(|l| l.name == *dev);
                let want = mtu.unwrap_or(DEFAULT_MTU);
                if let Some(l) = link
                    && l.mtu != want
                    && mtu.is_none()
                {
                    // Lab.toml sets no MTU (any more): back to the kernel's default.
                    out.push(Change::Apply(Step::LinkUp {
                        dev: dev.clone(),
                        mtu: Some(DEFAULT_MTU),
                    }));
                    continue;
                }
                link.is_none_or(|l| !l.up || l.mtu != want)
            }
            Step::Address { dev, address } => !observed
                .addresses
                .iter()
                .any(|a| a.dev == *dev && a.address == *address),
            Step::RtTable { .. } => false,
            Step::Rule { from, table_id, .. } => !observed
                .rules
                .iter()
                .any(|r| r.from == *from && r.table == *table_id),
            Step::Route { .. } => {
                let want = route_state(&step).expect("a route step");
                !observed.routes.iter().any(|r| r.matches(&want))
            }
            Step::Endpoint(_) => false, // handled above
            Step::Limits(l) => observed.limits != *l,
            Step::Qdisc { dev, shaping } => {
                let current = observed.qdiscs.iter().find(|q| q.dev == *dev);
                match current {
                    Some(q) if !shaping.needs_netem() => {
                        q.kind != "tbf" || q.rate_bps != shaping.rate_bps
                    }
                    // netem's parameters are not read back: replace it every time.
                    _ => true,
                }
            }
        };
        if needed {
            out.push(Change::Apply(step));
        }
    }
    // Endpoint additions go where the plan has them: after routes, before limits.
    let limits_at = out
        .iter()
        .position(|c| matches!(c, Change::Apply(Step::Limits(_) | Step::Qdisc { .. })))
        .unwrap_or(out.len());
    out.splice(limits_at..limits_at, applies);
    out
}

fn is_lab_qdisc(kind: &str) -> bool {
    matches!(kind, "tbf" | "netem")
}

fn route_state(step: &Step) -> Option<RouteState> {
    match step {
        Step::Route {
            to,
            via,
            dev,
            scope_link,
            metric,
            table_id,
            ipv6,
            ..
        } => Some(RouteState {
            table: *table_id,
            to: *to,
            via: *via,
            dev: dev.clone(),
            scope_link: *scope_link,
            metric: *metric,
            ipv6: *ipv6,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Endpoint, Interface, Shaping, Sysctl, Table};

    fn host() -> HostNet {
        HostNet {
            host: "ue2".into(),
            interfaces: vec![Interface {
                name: "enp0s8".into(),
                addresses: vec!["10.1.1.4/24".parse().unwrap()],
                mac: None,
                mtu: None,
                shaping: Some(Shaping {
                    rate_bps: Some(50_000_000),
                    ..Default::default()
                }),
            }],
            dhcp_interfaces: vec![],
            tables: vec![Table {
                id: 100,
                name: "table1".into(),
                dev: "enp0s8".into(),
                addresses: vec!["10.1.1.4/24".parse().unwrap()],
                gateways: vec!["10.1.1.1".parse().unwrap()],
            }],
            routes: vec![],
            endpoints: vec![Endpoint {
                address: "10.1.1.4".parse().unwrap(),
                id: Some(1),
                dev: Some("enp0s8".into()),
                port: None,
                flags: EndpointFlags {
                    laminar: true,
                    ..Default::default()
                },
            }],
            limits: Some(Limits {
                subflows: 3,
                add_addr_accepted: 3,
            }),
            sysctls: vec![Sysctl::new("net.mptcp.enabled", "1")],
        }
    }

    /// The state of a host on which the plan has been applied.
    fn applied() -> Observed {
        Observed {
            links: vec![LinkState {
                name: "enp0s8".into(),
                up: true,
                mtu: 1500,
                mac: None,
            }],
            addresses: vec![AddressState {
                dev: "enp0s8".into(),
                address: "10.1.1.4/24".parse().unwrap(),
            }],
            rules: vec![RuleState {
                from: "10.1.1.4".parse().unwrap(),
                table: 100,
                priority: Some(32765),
            }],
            routes: vec![
                RouteState {
                    table: 100,
                    to: Some("10.1.1.0/24".parse().unwrap()),
                    via: None,
                    dev: "enp0s8".into(),
                    scope_link: true,
                    metric: None,
                    ipv6: false,
                },
                RouteState {
                    table: 100,
                    to: None,
                    via: Some("10.1.1.1".parse().unwrap()),
                    dev: "enp0s8".into(),
                    scope_link: false,
                    metric: None,
                    ipv6: false,
                },
            ],
            endpoints: vec![EndpointState {
                id: 1,
                address: "10.1.1.4".parse().unwrap(),
                port: None,
                dev: Some("enp0s8".into()),
                flags: EndpointFlags::from_bits(EndpointFlags::LAMINAR),
                implicit: false,
            }],
            limits: Limits {
                subflows: 3,
                add_addr_accepted: 3,
            },
            sysctls: vec![("net.mptcp.enabled".into(), "1\n".into())],
            qdiscs: vec![QdiscState {
                dev: "enp0s8".into(),
                kind: "tbf".into(),
                rate_bps: Some(50_000_000),
            }],
        }
    }

    #[test]
    fn applied_host_has_no_changes() {
        assert_eq!(diff(&host(), &applied()), vec![]);
    }

    #[test]
    fn an_mtu_removed_from_lab_toml_goes_back_to_the_default() {
        let mut o = applied();
        o.links[0].mtu = 1400;
        assert_eq!(
            diff(&host(), &o),
            vec![Change::Apply(Step::LinkUp {
                dev: "enp0s8".into(),
                mtu: Some(DEFAULT_MTU),
            })]
        );
        assert_eq!(
            diff(&host(), &o)[0].argv().unwrap().join(" "),
            "ip link set dev enp0s8 mtu 1500 up"
        );
        // One that Lab.toml sets is kept, and changed when it differs.
        let mut h = host();
        h.interfaces[0].mtu = Some(1400);
        assert_eq!(diff(&h, &o), vec![]);
        h.interfaces[0].mtu = Some(9000);
        assert!(matches!(
            &diff(&h, &o)[..],
            [Change::Apply(Step::LinkUp {
                mtu: Some(9000),
                ..
            })]
        ));
    }

    #[test]
    fn fresh_host_gets_the_whole_plan_in_order() {
        let mut fresh = Observed {
            links: vec![LinkState {
                name: "enp0s8".into(),
                up: false,
                mtu: 1500,
                mac: None,
            }],
            ..Default::default()
        };
        fresh.qdiscs.push(QdiscState {
            dev: "enp0s8".into(),
            kind: "noqueue".into(),
            rate_bps: None,
        });
        let changes = diff(&host(), &fresh);
        let argv: Vec<String> = changes
            .iter()
            .map(|c| c.argv().unwrap().join(" "))
            .collect();
        assert_eq!(
            argv,
            [
                "sysctl -w net.mptcp.enabled=1",
                "ip link set dev enp0s8 up",
                "ip address add 10.1.1.4/24 dev enp0s8",
                "ip rule add from 10.1.1.4 table 100",
                "ip route add 10.1.1.0/24 dev enp0s8 scope link table 100",
                "ip route add default via 10.1.1.1 dev enp0s8 table 100",
                "ip mptcp endpoint add 10.1.1.4 dev enp0s8 id 1 laminar",
                "ip mptcp limits set subflow 3 add_addr_accepted 3",
                "tc qdisc replace dev enp0s8 root tbf rate 50mbit burst 62500 latency 50ms",
            ]
        );
    }

    #[test]
    fn stale_state_is_removed_first_and_foreign_state_is_kept() {
        let mut o = applied();
        // A stale rule and route in the lab's table, an old address, a wrong endpoint.
        o.rules.push(RuleState {
            from: "10.9.9.9".parse().unwrap(),
            table: 100,
            priority: Some(32764),
        });
        o.routes.push(RouteState {
            table: 100,
            to: Some("10.9.0.0/16".parse().unwrap()),
            via: None,
            dev: "enp0s8".into(),
            scope_link: true,
            metric: None,
            ipv6: false,
        });
        o.addresses.push(AddressState {
            dev: "enp0s8".into(),
            address: "10.1.1.99/24".parse().unwrap(),
        });
        o.endpoints[0].flags = EndpointFlags::from_bits(EndpointFlags::SUBFLOW);
        // Not the lab's: another table, another interface, an implicit endpoint.
        o.rules.push(RuleState {
            from: "192.168.1.5".parse().unwrap(),
            table: 500,
            priority: None,
        });
        o.routes.push(RouteState {
            table: 500,
            to: None,
            via: Some("192.168.1.1".parse().unwrap()),
            dev: "eth0".into(),
            scope_link: false,
            metric: None,
            ipv6: false,
        });
        o.addresses.push(AddressState {
            dev: "eth0".into(),
            address: "192.168.1.5/24".parse().unwrap(),
        });
        o.endpoints.push(EndpointState {
            id: 9,
            address: "10.1.1.77".parse().unwrap(),
            port: None,
            dev: None,
            flags: EndpointFlags::default(),
            implicit: true,
        });
        let argv: Vec<String> = diff(&host(), &o)
            .iter()
            .map(|c| c.argv().unwrap().join(" "))
            .collect();
        assert_eq!(
            argv,
            [
                "ip mptcp endpoint delete id 1",
                "ip rule del from 10.9.9.9 table 100 priority 32764",
                "ip route del 10.9.0.0/16 dev enp0s8 table 100",
                "ip address del 10.1.1.99/24 dev enp0s8",
                "ip mptcp endpoint add 10.1.1.4 dev enp0s8 id 1 laminar",
            ]
        );
    }

    #[test]
    fn changed_rate_and_removed_shaping() {
        let mut o = applied();
        o.qdiscs[0].rate_bps = Some(100_000_000);
        let c = diff(&host(), &o);
        assert!(matches!(&c[..], [Change::Apply(Step::Qdisc { .. })]));
        let mut h = host();
        h.interfaces[0].shaping = None;
        let c = diff(&h, &applied());
        assert_eq!(
            c,
            vec![Change::DelQdisc {
                dev: "enp0s8".into()
            }]
        );
    }

    #[test]
    fn down_link_and_dropped_routes_come_back() {
        let mut o = applied();
        o.links[0].up = false;
        o.routes.clear();
        let argv: Vec<String> = diff(&host(), &o)
            .iter()
            .map(|c| c.argv().unwrap().join(" "))
            .collect();
        assert_eq!(
            argv,
            [
                "ip link set dev enp0s8 up",
                "ip route add 10.1.1.0/24 dev enp0s8 scope link table 100",
                "ip route add default via 10.1.1.1 dev enp0s8 table 100",
            ]
        );
    }

    /// A dual-stack interface with a main-table route: every family gets its rule and routes
    /// (`ip -6`), the IPv6 address skips DAD, the main-table route carries its metric, and
    /// the kernel's metric on an IPv6 route that asked for none is not a difference.
    #[test]
    fn dual_stack_and_main_table_routes() {
        let mut h = host();
        h.interfaces[0]
            .addresses
            .push("dead:beef:1::4/64".parse().unwrap());
        h.tables[0].addresses = h.interfaces[0].addresses.clone();
        h.tables[0].gateways.push("dead:beef:1::1".parse().unwrap());
        h.routes.push(crate::spec::Route {
            to: Some("10.0.0.0/8".parse().unwrap()),
            via: Some("10.1.1.1".parse().unwrap()),
            dev: "enp0s8".into(),
            metric: Some(100),
        });
        let argv: Vec<String> = diff(&h, &applied())
            .iter()
            .map(|c| c.argv().unwrap().join(" "))
            .collect();
        assert_eq!(
            argv,
            [
                "ip address add dead:beef:1::4/64 dev enp0s8 nodad",
                "ip -6 rule add from dead:beef:1::4 table 100",
                "ip -6 route add dead:beef:1::/64 dev enp0s8 table 100",
                "ip -6 route add default via dead:beef:1::1 dev enp0s8 table 100",
                "ip route add 10.0.0.0/8 via 10.1.1.1 dev enp0s8 metric 100 table 254",
            ]
        );
        // Applied, as the kernel reports it (IPv6 routes with metric 1024), plus the
        // kernel's own main-table routes, which are not the lab's to remove.
        let mut o = applied();
        o.addresses.push(AddressState {
            dev: "enp0s8".into(),
            address: "dead:beef:1::4/64".parse().unwrap(),
        });
        o.rules.push(RuleState {
            from: "dead:beef:1::4".parse().unwrap(),
            table: 100,
            priority: Some(32764),
        });
        let route = |table, to: Option<&str>, via: Option<&str>, metric, ipv6| RouteState {
            table,
            to: to.map(|t| t.parse().unwrap()),
            via: via.map(|v| v.parse().unwrap()),
            dev: "enp0s8".into(),
            scope_link: false,
            metric,
            ipv6,
        };
        o.routes.extend([
            route(100, Some("dead:beef:1::/64"), None, Some(1024), true),
            route(100, None, Some("dead:beef:1::1"), Some(1024), true),
            route(254, Some("10.0.0.0/8"), Some("10.1.1.1"), Some(100), false),
            route(254, Some("dead:beef:1::/64"), None, Some(256), true),
        ]);
        assert_eq!(diff(&h, &o), vec![]);
        // The same route with another metric is not the planned one.
        o.routes[4].metric = Some(200);
        assert_eq!(
            diff(&h, &o)
                .iter()
                .map(|c| c.argv().unwrap().join(" "))
                .collect::<Vec<_>>(),
            ["ip route add 10.0.0.0/8 via 10.1.1.1 dev enp0s8 metric 100 table 254"]
        );
        assert_eq!(
            Change::DelRoute(o.routes[2].clone())
                .argv()
                .unwrap()
                .join(" "),
            "ip -6 route del dead:beef:1::/64 dev enp0s8 metric 1024 table 100"
        );
    }
}
