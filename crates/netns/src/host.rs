//! One namespace host: read its state, apply changes, take links down and up.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use guest::{Command, Exec};
use net::diff::{
    AddressState, EndpointState, LinkState, Observed, QdiscState, RouteState, RuleState,
};
use net::{Change, EndpointFlags, HostNet, Limits, Step};

use crate::Error;
use crate::mptcp_pm::{MptcpPm, PmEndpoint, PmReq};
use crate::ns::Namespace;
use crate::rtnl::{Route, RtReq, Rtnl};

/// The kernel's `implicit` endpoint flag.
const FLAG_IMPLICIT: u32 = 0x10;
/// Tables that are never lab's: unspec, default, main, local.
const SYSTEM_TABLES: [u32; 4] = [0, 253, 254, 255];

/// A lab host that lives in a network namespace, with netlink connections opened inside it.
#[derive(Debug)]
pub struct Host {
    name: String,
    ns: Namespace,
    rtnl: Rtnl,
    pm: MptcpPm,
}

/// What applying a list of changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub changes: Vec<Change>,
    /// Each sysctl the changes set to a new value, with the value it had before.
    pub replaced_sysctls: Vec<(String, String)>,
}

impl Host {
    /// Open host `name` in namespace `ns`.
    pub fn open(name: &str, ns: &str) -> Result<Self, Error> {
        let ns = Namespace::open(ns)?;
        let (rtnl, pm) = ns.run(|| Ok::<_, Error>((Rtnl::open()?, MptcpPm::open()?)))??;
        Ok(Self {
            name: name.to_string(),
            ns,
            rtnl,
            pm,
        })
    }

    /// A host from connections opened inside `ns`.
    pub fn from_parts(name: &str, ns: Namespace, rtnl: Rtnl, pm: MptcpPm) -> Self {
        Self {
            name: name.to_string(),
            ns,
            rtnl,
            pm,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    pub fn rtnl(&mut self) -> &mut Rtnl {
        &mut self.rtnl
    }

    pub fn pm(&mut self) -> &mut MptcpPm {
        &mut self.pm
    }

    /// The command seam for this host (`ip netns exec`), for tools such as tc and iperf3.
    pub fn exec(&self) -> guest::Netns {
        guest::Netns::new(self.name.clone(), self.ns.name())
    }

    /// Read the host's live state, as far as `plan` manages it.
    pub fn observe(&mut self, plan: &HostNet) -> Result<Observed, Error> {
        let links = self.rtnl.links()?;
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        let name_of = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("#{i}"));

        let addresses = self
            .rtnl
            .addresses()?
            .into_iter()
            .map(|(i, address)| AddressState {
                dev: name_of(i),
                address,
            })
            .collect();
        let rules = self
            .rtnl
            .rules()?
            .into_iter()
            .filter(|r| r.lookup && !SYSTEM_TABLES.contains(&r.table))
            .filter_map(|r| {
                let from = r.from.filter(|f| f.prefix_len() == f.max_prefix_len())?;
                Some(RuleState {
                    from: from.addr(),
                    table: r.table,
                    priority: r.priority,
                })
            })
            .collect();
        let routes = self
            .rtnl
            .routes()?
            .into_iter()
            // The main table's routes are read too: the plan may own some of them.
            .filter(|r| {
                r.kind_unicast
                    && (r.table == net::plan::MAIN_TABLE || !SYSTEM_TABLES.contains(&r.table))
            })
            .map(|r| RouteState {
                table: r.table,
                to: r.dst,
                via: r.gateway,
                dev: r.oif.map(name_of).unwrap_or_default(),
                scope_link: r.scope_link,
                metric: r.metric,
                ipv6: r.ipv6,
            })
            .collect();
        let endpoints = self
            .pm
            .endpoints()?
            .into_iter()
            .filter_map(|e| {
                Some(EndpointState {
                    id: e.id,
                    address: e.address?,
                    port: e.port,
                    dev: u32::try_from(e.ifindex)
                        .ok()
                        .filter(|i| *i != 0)
                        .map(name_of),
                    flags: EndpointFlags::from_bits(e.flags),
                    implicit: e.flags & FLAG_IMPLICIT != 0,
                })
            })
            .collect();
        let (subflows, add_addr_accepted) = self.pm.limits()?;
        let qdiscs = self
            .rtnl
            .qdiscs()?
            .into_iter()
            .map(|q| QdiscState {
                dev: name_of(q.index),
                kind: q.kind,
                rate_bps: q.rate_bps,
            })
            .collect();
        let keys: Vec<String> = plan.sysctls.iter().map(|s| s.key.clone()).collect();
        let sysctls = self.ns.run(move || {
            keys.into_iter()
                .filter_map(|k| {
                    let v = fs::read_to_string(sysctl_path(&k)).ok()?;
                    Some((k, v.trim().to_string()))
                })
                .collect::<Vec<_>>()
        })?;
        Ok(Observed {
            links: links
                .into_iter()
                .map(|l| LinkState {
                    name: l.name,
                    up: l.up,
                    mtu: l.mtu,
                    mac: l.mac.map(|m| net::MacAddr(m).to_string()),
                })
                .collect(),
            addresses,
            rules,
            routes,
            endpoints,
            limits: Limits {
                subflows,
                add_addr_accepted,
            },
            sysctls,
            qdiscs,
        })
    }

    /// Apply `changes` in order; stop at the first that fails. Returns each sysctl that was set
    /// to a new value, with the value it had before (read just before the write), so that a
    /// setting removed from Lab.toml can be put back.
    pub fn apply(&mut self, changes: &[Change]) -> Result<Vec<(String, String)>, Error> {
        // Sysctls go in one pass on one namespace thread.
        let sysctls: Vec<(String, String)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Apply(Step::Sysctl(s)) => Some((s.key.clone(), s.value.clone())),
                _ => None,
            })
            .collect();
        let mut replaced = Vec::new();
        if !sysctls.is_empty() {
            replaced = self.ns.run(move || {
                let mut replaced = Vec::new();
                for (k, v) in sysctls {
                    let path = sysctl_path(&k);
                    if let Ok(old) = fs::read_to_string(&path) {
                        let old = old.trim().to_string();
                        if old != v.trim() {
                            replaced.push((k.clone(), old));
                        }
                    }
                    fs::write(&path, v.as_bytes()).map_err(|e| {
                        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                            " (refused inside a network namespace; for \
                             tcp_congestion_control the algorithm must be listed in the \
                             machine's net.ipv4.tcp_allowed_congestion_control)"
                        } else {
                            ""
                        };
                        Error::io(format!("writing sysctl {k}={v}{hint}"), e)
                    })?;
                }
                Ok::<_, Error>(replaced)
            })??;
        }
        let mut index = HashMap::new();
        for l in self.rtnl.links()? {
            index.insert(l.name, l.index);
        }
        let host = self.name.clone();
        let idx = |dev: &str| {
            index
                .get(dev)
                .copied()
                .ok_or_else(|| Error::NoInterface(format!("{dev} (host {host})")))
        };
        // Consecutive changes of one kind go to the kernel in one write; the order is kept.
        let mut rt: Vec<RtReq> = Vec::new();
        let mut pm: Vec<PmReq> = Vec::new();
        for c in changes {
            let tc_argv = match c {
                Change::Apply(step @ Step::Qdisc { shaping, .. }) => Some((
                    step.argv(net::TableNaming::Id).unwrap_or_default(),
                    shaping.needs_netem(),
                )),
                Change::DelQdisc { .. } => Some((c.argv().unwrap_or_default(), false)),
                _ => None,
            };
            if let Some((argv, netem)) = tc_argv {
                self.flush(&mut rt, &mut pm)?;
                self.tc(argv, netem)?;
                continue;
            }
            match c {
                Change::Apply(step) => match step {
                    Step::Sysctl(_) | Step::RtTable { .. } | Step::Qdisc { .. } => {}
                    Step::LinkUp { dev, mtu } => rt.push(RtReq::SetLink {
                        index: idx(dev)?,
                        up: Some(true),
                        mtu: *mtu,
                        master: None,
                    }),
                    Step::Address { dev, address } => {
                        rt.push(RtReq::AddAddress(idx(dev)?, *address))
                    }
                    Step::Rule { from, table_id, .. } => rt.push(RtReq::AddRule {
                        from: *from,
                        table: *table_id,
                    }),
                    Step::Route {
                        to,
                        via,
                        dev,
                        scope_link,
                        metric,
                        table_id,
                        ipv6,
                        ..
                    } => rt.push(RtReq::AddRoute(Route {
                        table: *table_id,
                        dst: *to,
                        gateway: *via,
                        oif: Some(idx(dev)?),
                        scope_link: *scope_link,
                        kind_unicast: true,
                        metric: *metric,
                        ipv6: *ipv6,
                    })),
                    Step::Endpoint(e) => {
                        let ifindex = match &e.dev {
                            Some(d) => i32::try_from(idx(d)?).unwrap_or(0),
                            None => 0,
                        };
                        self.flush_rt(&mut rt)?;
                        pm.push(PmReq::AddEndpoint(PmEndpoint {
                            id: e.id.unwrap_or(0),
                            address: Some(e.address),
                            port: e.port,
                            flags: e.flags.bits(),
                            ifindex,
                        }));
                    }
                    Step::Limits(l) => {
                        self.flush_rt(&mut rt)?;
                        pm.push(PmReq::SetLimits {
                            subflows: l.subflows,
                            add_addr_accepted: l.add_addr_accepted,
                        });
                    }
                },
                Change::DelEndpoint { id, address } => {
                    self.flush_rt(&mut rt)?;
                    pm.push(PmReq::DelEndpoint {
                        id: *id,
                        address: *address,
                    });
                }
                Change::DelRule(r) => {
                    self.flush_pm(&mut pm)?;
                    rt.push(RtReq::DelRule {
                        from: r.from,
                        table: r.table,
                        priority: r.priority,
                    });
                }
                Change::DelRoute(r) => {
                    self.flush_pm(&mut pm)?;
                    rt.push(RtReq::DelRoute(Route {
                        table: r.table,
                        dst: r.to,
                        gateway: r.via,
                        oif: Some(idx(&r.dev)?),
                        scope_link: r.scope_link,
                        kind_unicast: true,
                        metric: r.metric,
                        ipv6: r.ipv6,
                    }));
                }
                Change::DelAddress(a) => {
                    self.flush_pm(&mut pm)?;
                    rt.push(RtReq::DelAddress(idx(&a.dev)?, a.address));
                }
                Change::DelQdisc { .. } => {}
            }
            if matches!(
                c,
                Change::Apply(
                    Step::LinkUp { .. }
                        | Step::Address { .. }
                        | Step::Rule { .. }
                        | Step::Route { .. }
                )
            ) {
                self.flush_pm(&mut pm)?;
            }
        }
        self.flush(&mut rt, &mut pm)?;
        Ok(replaced)
    }

    fn flush_rt(&mut self, rt: &mut Vec<RtReq>) -> Result<(), Error> {
        self.rtnl.batch(rt)?;
        rt.clear();
        Ok(())
    }

    fn flush_pm(&mut self, pm: &mut Vec<PmReq>) -> Result<(), Error> {
        self.pm.batch(pm)?;
        pm.clear();
        Ok(())
    }

    fn flush(&mut self, rt: &mut Vec<RtReq>, pm: &mut Vec<PmReq>) -> Result<(), Error> {
        // Only one of the two is non-empty: a change of kind flushes the other.
        self.flush_rt(rt)?;
        self.flush_pm(pm)
    }

    /// Read the state, diff it against `plan`, apply the difference, and return what changed.
    pub fn converge(&mut self, plan: &HostNet) -> Result<Applied, Error> {
        let observed = self.observe(plan)?;
        let changes = net::diff(plan, &observed);
        let replaced_sysctls = self.apply(&changes)?;
        Ok(Applied {
            changes,
            replaced_sysctls,
        })
    }

    /// Set an interface administratively down or up.
    pub fn set_link(&mut self, dev: &str, up: bool) -> Result<(), Error> {
        let i = self.rtnl.index(dev)?;
        self.rtnl.set_link(i, Some(up), None, None)
    }

    fn tc(&self, argv: Vec<String>, netem: bool) -> Result<(), Error> {
        let out = self.exec().check(&Command::new(argv)).map_err(|source| {
            if netem && source.to_string().contains("unknown") {
                return Error::Missing(
                    "the netem qdisc (CONFIG_NET_SCH_NETEM), needed for delay and loss; \
                         rate alone works with tbf"
                        .into(),
                );
            }
            Error::Command {
                host: self.name.clone(),
                source: Box::new(source),
            }
        })?;
        drop(out);
        Ok(())
    }
}

/// `/proc/sys` path of a dotted sysctl key (a `/` inside a component stands for a `.`).
pub fn sysctl_path(key: &str) -> PathBuf {
    let mut p = PathBuf::from("/proc/sys");
    for part in key.split('.') {
        p.push(part.replace('/', "."));
    }
    p
}
