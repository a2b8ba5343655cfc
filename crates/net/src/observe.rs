//! A host's live state from iproute2's and tc's JSON output, for appliers that reach a host only
//! through commands (SSH). Pure: the applier runs [`COMMANDS`] and hands the outputs here.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::diff::{
    AddressState, EndpointState, LinkState, Observed, QdiscState, RouteState, RuleState,
};
use crate::spec::{EndpointFlags, HostNet, Limits};

/// What to run on the host, in the order of [`Outputs`]' fields. `sysctl` gets the plan's keys
/// appended (see [`sysctl_argv`]).
pub const COMMANDS: [&[&str]; 9] = [
    &["ip", "-json", "link", "show"],
    &["ip", "-json", "address", "show"],
    &["ip", "-json", "-4", "rule", "show"],
    &["ip", "-json", "-6", "rule", "show"],
    &["ip", "-json", "-4", "route", "show", "table", "all"],
    &["ip", "-json", "-6", "route", "show", "table", "all"],
    &["ip", "-json", "mptcp", "endpoint", "show"],
    &["ip", "mptcp", "limits", "show"],
    &["tc", "-json", "qdisc", "show"],
];

/// `sysctl -e KEY...`: `key = value` lines, unknown keys skipped.
pub fn sysctl_argv(plan: &HostNet) -> Vec<String> {
    let mut v = vec!["sysctl".to_string(), "-e".into()];
    v.extend(plan.sysctls.iter().map(|s| s.key.clone()));
    v
}

/// The outputs of [`COMMANDS`] and [`sysctl_argv`].
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub link: String,
    pub address: String,
    pub rule: String,
    pub rule6: String,
    pub route: String,
    pub route6: String,
    pub endpoint: String,
    pub limits: String,
    pub qdisc: String,
    pub sysctl: String,
}

#[derive(Deserialize)]
struct JLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: u32,
    /// The hardware address (`00:00:00:00:00:00` on loopback).
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    link_type: Option<String>,
}

#[derive(Deserialize)]
struct JAddrIf {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<JAddr>,
}

#[derive(Deserialize)]
struct JAddr {
    family: String,
    local: String,
    prefixlen: u8,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct JRule {
    src: Option<String>,
    #[serde(rename = "srclen")]
    src_len: Option<u8>,
    table: Option<String>,
    priority: Option<u32>,
}

#[derive(Deserialize)]
struct JRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
    table: Option<String>,
    scope: Option<String>,
    metric: Option<u32>,
}

#[derive(Deserialize)]
struct JEndpoint {
    address: String,
    id: u8,
    port: Option<u16>,
    dev: Option<String>,
    #[serde(default)]
    signal: bool,
    #[serde(default)]
    subflow: bool,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    fullmesh: bool,
    #[serde(default)]
    laminar: bool,
    #[serde(default)]
    implicit: bool,
    /// Flags iproute2 has no name for (6.1 prints laminar, 0x20, this way).
    rawflags: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct JQdisc {
    kind: String,
    dev: String,
    #[serde(default)]
    root: bool,
    options: Option<serde_json::Value>,
}

fn json<'a, T: Deserialize<'a>>(what: &str, s: &'a str) -> Result<Vec<T>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(s).map_err(|e| format!("cannot read `{what}` output: {e}"))
}

/// The IPv4 and the IPv6 output of one `ip -json -4|-6 OBJECT show`, each item tagged with
/// whether it is IPv6.
fn both<'a, T: Deserialize<'a>>(
    object: &str,
    v4: &'a str,
    v6: &'a str,
) -> Result<Vec<(T, bool)>, String> {
    let tagged = |family: &str, s: &'a str, ipv6: bool| -> Result<Vec<(T, bool)>, String> {
        Ok(json::<T>(&format!("ip {family} {object}"), s)?
            .into_iter()
            .map(|x| (x, ipv6))
            .collect())
    };
    let mut out = tagged("-4", v4, false)?;
    out.extend(tagged("-6", v6, true)?);
    Ok(out)
}

/// Table ids from iproute2's names: numbers, the plan's names, and the built-in ones.
fn table_id(plan: &HostNet, t: Option<&str>) -> u32 {
    match t {
        None | Some("main") => 254,
        Some("local") => 255,
        Some("default") => 253,
        Some(t) => t
            .parse()
            .unwrap_or_else(|_| plan.tables.iter().find(|x| x.name == t).map_or(0, |x| x.id)),
    }
}

/// Parse everything into the state [`crate::diff()`] compares against the plan.
pub fn parse(plan: &HostNet, o: &Outputs) -> Result<Observed, String> {
    let links: Vec<JLink> = json("ip link", &o.link)?;
    let addrs: Vec<JAddrIf> = json("ip address", &o.address)?;
    let rules: Vec<(JRule, bool)> = both("rule", &o.rule, &o.rule6)?;
    let routes: Vec<(JRoute, bool)> = both("route", &o.route, &o.route6)?;
    let endpoints: Vec<JEndpoint> = json("ip mptcp endpoint", &o.endpoint)?;
    let qdiscs: Vec<JQdisc> = json("tc qdisc", &o.qdisc)?;
    let system = [0u32, 253, 254, 255];
    // Routes of the main table are read too: the plan may own some of them.
    let not_routes = [0u32, 253, 255];
    Ok(Observed {
        links: links
            .into_iter()
            .map(|l| LinkState {
                up: l.flags.iter().any(|f| f == "UP"),
                mac: l
                    .address
                    .filter(|_| l.link_type.as_deref() == Some("ether")),
                name: l.ifname,
                mtu: l.mtu,
            })
            .collect(),
        addresses: addrs
            .into_iter()
            .flat_map(|i| {
                let dev = i.ifname;
                i.addr_info.into_iter().filter_map(move |a| {
                    let ip: IpAddr = a.local.parse().ok()?;
                    let global = a.scope.as_deref().is_none_or(|s| s == "global");
                    (matches!(a.family.as_str(), "inet" | "inet6") && global).then_some(
                        AddressState {
                            dev: dev.clone(),
                            address: IpNet::new(ip, a.prefixlen).ok()?,
                        },
                    )
                })
            })
            .collect(),
        rules: rules
            .into_iter()
            .filter_map(|(r, v6)| {
                let table = table_id(plan, r.table.as_deref());
                let from: IpAddr = r.src.as_deref()?.parse().ok()?;
                let host_len = if v6 { 128 } else { 32 };
                (r.src_len.unwrap_or(host_len) == host_len && !system.contains(&table)).then_some(
                    RuleState {
                        from,
                        table,
                        priority: r.priority,
                    },
                )
            })
            .collect(),
        routes: routes
            .into_iter()
            .filter_map(|(r, v6)| {
                let table = table_id(plan, r.table.as_deref());
                let unicast = r.kind.as_deref().is_none_or(|k| k == "unicast");
                if !unicast || not_routes.contains(&table) {
                    return None;
                }
                let to = if r.dst == "default" {
                    None
                } else if r.dst.contains('/') {
                    Some(r.dst.parse().ok()?)
                } else {
                    let ip: IpAddr = r.dst.parse().ok()?;
                    Some(IpNet::new(ip, if v6 { 128 } else { 32 }).ok()?)
                };
                Some(RouteState {
                    table,
                    to,
                    via: r.gateway.as_deref().and_then(|g| g.parse().ok()),
                    dev: r.dev.unwrap_or_default(),
                    scope_link: r.scope.as_deref() == Some("link"),
                    metric: r.metric,
                    ipv6: v6,
                })
            })
            .collect(),
        endpoints: endpoints
            .into_iter()
            .filter_map(|e| {
                let raw = match &e.rawflags {
                    Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0) as u32,
                    Some(serde_json::Value::String(s)) => {
                        u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0)
                    }
                    _ => 0,
                };
                let mut flags = EndpointFlags::from_bits(raw);
                flags.signal |= e.signal;
                flags.subflow |= e.subflow;
                flags.backup |= e.backup;
                flags.fullmesh |= e.fullmesh;
                flags.laminar |= e.laminar;
                Some(EndpointState {
                    id: e.id,
                    address: e.address.parse().ok()?,
                    port: e.port.filter(|p| *p != 0),
                    dev: e.dev,
                    flags,
                    implicit: e.implicit || raw & 0x10 != 0,
                })
            })
            .collect(),
        limits: parse_limits(&o.limits),
        sysctls: o
            .sysctl
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(" = ")?;
                Some((k.trim().replace('/', "."), v.trim().to_string()))
            })
            .map(|(k, v)| (unslash(plan, &k), v))
            .collect(),
        qdiscs: qdiscs
            .into_iter()
            .filter(|q| q.root)
            .map(|q| QdiscState {
                rate_bps: q
                    .options
                    .as_ref()
                    .and_then(|o| o.get("rate"))
                    .and_then(serde_json::Value::as_u64)
                    .filter(|_| q.kind == "tbf")
                    .map(|bytes| bytes * 8),
                dev: q.dev,
                kind: q.kind,
            })
            .collect(),
    })
}

/// sysctl(8) prints `net.ipv4.conf.eth0/100.rp_filter` for a VLAN's dot; the plan's key for the
/// same setting is the one it asked for.
fn unslash(plan: &HostNet, printed: &str) -> String {
    plan.sysctls
        .iter()
        .find(|s| s.key.replace('/', ".") == printed)
        .map_or_else(|| printed.to_string(), |s| s.key.clone())
}

/// `add_addr_accepted 2 subflows 2` (iproute2 prints limits as text even with -json).
pub fn parse_limits(s: &str) -> Limits {
    let words: Vec<&str> = s.split_whitespace().collect();
    let get = |name: &str| {
        words
            .windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(0)
    };
    Limits {
        subflows: get("subflows"),
        add_addr_accepted: get("add_addr_accepted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Interface, Sysctl, Table};

    fn plan() -> HostNet {
        HostNet {
            host: "h".into(),
            interfaces: vec![Interface {
                name: "va".into(),
                addresses: vec!["10.9.0.1/24".parse().unwrap()],
                mac: None,
                mtu: None,
                shaping: None,
            }],
            dhcp_interfaces: vec![],
            tables: vec![Table {
                id: 100,
                name: "table1".into(),
                dev: "va".into(),
                addresses: vec!["10.9.0.1/24".parse().unwrap()],
                gateways: vec![],
            }],
            routes: vec![],
            endpoints: vec![],
            limits: None,
            sysctls: vec![Sysctl::new("net.ipv4.conf.eth0/100.rp_filter", "2")],
        }
    }

    /// Output recorded from iproute2 6.1 and tc in a namespace (Debian 12).
    #[test]
    fn parses_recorded_iproute2_output() {
        let o = Outputs {
            link: r#"[{"ifindex":3,"link":"vb","ifname":"va","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP","M-DOWN"],"mtu":1500,"link_type":"ether","address":"02:4c:41:42:00:01"},{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00"}]"#.into(),
            address: r#"[{"ifindex":3,"link":"vb","ifname":"va","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"02:4c:41:42:00:01","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"10.9.0.1","prefixlen":24,"scope":"global","label":"va","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"dead:beef:9::1","prefixlen":64,"scope":"global","nodad":true,"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::4c:41ff:fe42:1","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]"#.into(),
            rule: r#"[{"priority":0,"src":"all","table":"local"},{"priority":32765,"src":"10.9.0.1","table":"100"},{"priority":32764,"src":"10.9.0.9","table":"table1"},{"priority":32766,"src":"all","table":"main"}]"#.into(),
            route: r#"[{"dst":"default","gateway":"10.9.0.2","dev":"va","table":"100","flags":["onlink","linkdown"]},{"dst":"10.9.0.0/24","dev":"va","table":"100","scope":"link","flags":["linkdown"]},{"dst":"10.9.0.0/24","dev":"va","protocol":"kernel","scope":"link","prefsrc":"10.9.0.1"},{"type":"local","dst":"10.9.0.1","dev":"va","table":"local","protocol":"kernel","scope":"host"}]"#.into(),
            endpoint: r#"[{"address":"10.9.0.1","id":1,"signal":true,"dev":"va"},{"address":"10.9.0.5","id":2,"rawflags":"20","dev":"va"}]"#.into(),
            // Recorded with iproute2 6.1 in a namespace (Linux 6.18): an IPv6 address (and the
            // kernel's link-local one), a rule and routes in table 100.
            rule6: r#"[{"priority":0,"src":"all","table":"local"},{"priority":32765,"src":"dead:beef:9::1","table":"100"},{"priority":32766,"src":"all","table":"main"}]"#.into(),
            route6: r#"[{"dst":"dead:beef:9::/64","dev":"va","table":"100","metric":1024,"flags":[],"pref":"medium"},{"dst":"default","gateway":"dead:beef:9::2","dev":"va","table":"100","metric":1024,"flags":[],"pref":"medium"},{"dst":"dead:beef:9::/64","dev":"va","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"fe80::/64","dev":"va","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"type":"local","dst":"dead:beef:9::1","dev":"va","table":"local","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},{"type":"multicast","dst":"ff00::/8","dev":"va","table":"local","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]"#.into(),
            limits: "add_addr_accepted 2 subflows 3 \n".into(),
            qdisc: r#"[{"kind":"tbf","handle":"82e2:","dev":"va","root":true,"refcnt":3,"options":{"rate":6250000,"burst":62500,"lat":50000}},{"kind":"noqueue","handle":"0:","dev":"lo","root":true,"refcnt":2,"options":{}}]"#.into(),
            sysctl: "net.ipv4.conf.eth0/100.rp_filter = 2\nnet.mptcp.enabled = 1\n".into(),
        };
        let s = parse(&plan(), &o).unwrap();
        assert_eq!(
            s.links,
            vec![
                LinkState {
                    name: "va".into(),
                    up: true,
                    mtu: 1500,
                    mac: Some("02:4c:41:42:00:01".into()),
                },
                LinkState {
                    name: "lo".into(),
                    up: true,
                    mtu: 65536,
                    mac: None,
                }
            ]
        );
        let addrs: Vec<String> = s.addresses.iter().map(|a| a.address.to_string()).collect();
        assert_eq!(addrs, ["10.9.0.1/24", "dead:beef:9::1/64"], "no link-local");
        assert_eq!(
            s.rules,
            vec![
                RuleState {
                    from: "10.9.0.1".parse().unwrap(),
                    table: 100,
                    priority: Some(32765)
                },
                RuleState {
                    from: "10.9.0.9".parse().unwrap(),
                    table: 100,
                    priority: Some(32764)
                },
                RuleState {
                    from: "dead:beef:9::1".parse().unwrap(),
                    table: 100,
                    priority: Some(32765)
                },
            ]
        );
        // Unicast routes of table 100 and main, IPv4 then IPv6; none of table local.
        let routes: Vec<String> = s
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?} {} {:?} {}",
                    r.table, r.to, r.via, r.scope_link, r.metric, r.ipv6
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                "100 None Some(10.9.0.2) false None false",
                "100 Some(10.9.0.0/24) None true None false",
                "254 Some(10.9.0.0/24) None true None false",
                "100 Some(dead:beef:9::/64) None false Some(1024) true",
                "100 None Some(dead:beef:9::2) false Some(1024) true",
                "254 Some(dead:beef:9::/64) None false Some(256) true",
                "254 Some(fe80::/64) None false Some(256) true",
            ]
        );
        assert!(s.endpoints[0].flags.signal);
        assert!(s.endpoints[1].flags.laminar, "rawflags 20 is laminar");
        assert_eq!(
            s.limits,
            Limits {
                subflows: 3,
                add_addr_accepted: 2
            }
        );
        assert_eq!(s.qdiscs[0].rate_bps, Some(50_000_000));
        assert_eq!(s.qdiscs[1].rate_bps, None);
        assert_eq!(
            s.sysctls[0],
            (
                "net.ipv4.conf.eth0/100.rp_filter".to_string(),
                "2".to_string()
            )
        );
        assert!(
            parse(
                &plan(),
                &Outputs {
                    link: "nonsense".into(),
                    ..Default::default()
                }
            )
            .is_err()
        );
    }
}
