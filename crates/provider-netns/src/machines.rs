//! Namespace hosts on other machines (`[machines.NAME]`, `machine = "NAME"`), made there over
//! lab's SSH with iproute2 through the command seam, and a segment that spans machines joined
//! by one VXLAN tunnel per segment (its own VNI and UDP port), so each MPTCP path crosses the
//! underlay in a tunnel of its own.
//!
//! On each machine, as on this one: a namespace per host (`lab.<lab>.<host>`), a namespace per
//! segment holding its bridge (`lab.<lab>.<machine>.sw.<segment>`), a veth from each host
//! interface to its segment's bridge (or straight to the other end of a point-to-point link on
//! the same machine). A segment on several machines gets, on each, a VXLAN device created in
//! the machine's own namespace (where the underlay is), flooding to the other machines'
//! underlay addresses, then moved into the segment's namespace and put on its bridge. The MTU
//! inside a tunnel is the smallest underlay MTU of its machines less the encapsulation; the
//! hosts' interfaces on it get that MTU unless Lab.toml sets one.
//!
//! Everything lab makes there is inside namespaces named with the lab's prefix, so `destroy`
//! removes it on every machine by name, without a state file.

use std::collections::BTreeMap;
use std::time::Instant;

use guest::{Command, Exec};
use model::{Host, Lab, Machine};
use netns::Topology;
use provider::{Error, Event, StateDir};

use crate::NAME;

/// Whether any namespace host of the lab is placed on a machine.
pub fn any(lab: &Lab) -> bool {
    lab.hosts
        .iter()
        .any(|h| h.provider == NAME && h.machine.is_some())
}

fn machine<'a>(lab: &'a Lab, name: &str) -> Result<&'a Machine, Error> {
    provider::machine(lab, NAME, name)
}

/// lab's SSH to a machine ([`provider::machine_ssh`]).
pub fn ssh(m: &Machine, state: &StateDir) -> Result<guest::Ssh, Error> {
    Ok(guest::Ssh::new(provider::machine_ssh(m, state)?))
}

pub fn host_ns(lab: &Lab, host: &str) -> String {
    format!("{}{host}", Topology::prefix_of(&lab.name))
}

pub fn switch_ns(lab: &Lab, machine: &str, segment: &str) -> String {
    format!("{}{machine}.sw.{segment}", Topology::prefix_of(&lab.name))
}

/// One interface on a wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub host: String,
    pub iface: String,
    pub machine: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
}

/// A segment or link of the lab's machine-placed namespace hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    /// `net-<network>` or `link-<link>`.
    pub key: String,
    pub ends: Vec<End>,
}

impl Wire {
    /// The machines it is on, in Lab.toml order of their first host.
    pub fn machines(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for e in &self.ends {
            if !v.contains(&e.machine.as_str()) {
                v.push(&e.machine);
            }
        }
        v
    }

    /// A point-to-point link with both ends on one machine: one veth, no bridge.
    pub fn is_direct(&self) -> bool {
        self.key.starts_with("link-") && self.machines().len() == 1 && self.ends.len() == 2
    }

    fn vxlan_dev(&self, lab: &Lab) -> String {
        format!(
            "vx{:010x}",
            provider::vm::stable_hash(&[&lab.name, &self.key]) & 0xff_ffff_ffff
        )
    }
}

/// The wires of the lab's machine-placed namespace hosts, in Lab.toml order.
pub fn wires(lab: &Lab) -> Vec<Wire> {
    let mut out: Vec<Wire> = Vec::new();
    for h in lab.hosts.iter().filter(|h| h.provider == NAME) {
        let Some(m) = &h.machine else { continue };
        for i in &h.interfaces {
            let Some(key) = i.attach.wire() else {
                continue;
            };
            let end = End {
                host: h.name.clone(),
                iface: i.name.clone(),
                machine: m.clone(),
                mac: i.mac.map(|m| m.to_string()),
                // Lab.toml's, else the inside of the wire's tunnel (placement derives it).
                mtu: i.effective_mtu(),
            };
            match out.iter_mut().find(|w| w.key == key) {
                Some(w) => w.ends.push(end),
                None => out.push(Wire {
                    key,
                    ends: vec![end],
                }),
            }
        }
    }
    out
}

fn peer_name(host: &str, iface: &str) -> String {
    format!(
        "v{:010x}",
        provider::vm::stable_hash(&[host, iface]) & 0xff_ffff_ffff
    )
}

/// What `up` runs on machine `m`, in order (pure: `--dry-run` prints it).
pub fn plan(lab: &Lab, m: &Machine) -> Result<Vec<Vec<String>>, Error> {
    use net::devices as d;
    let ws = wires(lab);
    let tunnels: BTreeMap<String, model::Tunnel> = lab
        .tunnels()
        .into_iter()
        .map(|t| (t.wire.clone(), t))
        .collect();
    let mut out = Vec::new();
    for h in hosts_on(lab, &m.name) {
        let ns = host_ns(lab, &h.name);
        out.push(d::netns_add(&ns));
        out.push(d::in_netns(&ns, &["link", "set", "dev", "lo", "up"]));
    }
    for w in &ws {
        let here: Vec<&End> = w.ends.iter().filter(|e| e.machine == m.name).collect();
        if here.is_empty() {
            continue;
        }
        if w.is_direct() {
            let (a, b) = (&w.ends[0], &w.ends[1]);
            let (a_ns, b_ns) = (host_ns(lab, &a.host), host_ns(lab, &b.host));
            let mtu = a.mtu.or(b.mtu);
            out.push(d::veth(
                (&a.iface, &a_ns),
                (&b.iface, &b_ns),
                a.mac.as_deref(),
                mtu,
            ));
            if let Some(mac) = &b.mac {
                out.push(d::in_netns(
                    &b_ns,
                    &["link", "set", "dev", &b.iface, "address", mac],
                ));
            }
            out.push(d::in_netns(&a_ns, &["link", "set", "dev", &a.iface, "up"]));
            out.push(d::in_netns(&b_ns, &["link", "set", "dev", &b.iface, "up"]));
            continue;
        }
        let sw = switch_ns(lab, &m.name, &w.key);
        out.push(d::netns_add(&sw));
        out.push(d::in_netns(&sw, &["link", "add", "br0", "type", "bridge"]));
        out.push(d::in_netns(&sw, &["link", "set", "dev", "br0", "up"]));
        for e in here {
            let hns = host_ns(lab, &e.host);
            let peer = peer_name(&e.host, &e.iface);
            out.push(d::veth(
                (&e.iface, &hns),
                (&peer, &sw),
                e.mac.as_deref(),
                e.mtu,
            ));
            out.push(d::in_netns(
                &sw,
                &["link", "set", "dev", &peer, "master", "br0", "up"],
            ));
            out.push(d::in_netns(&hns, &["link", "set", "dev", &e.iface, "up"]));
        }
        if let Some(t) = tunnels.get(&w.key) {
            let vx = w.vxlan_dev(lab);
            out.extend(provider::tunnel_end(lab, NAME, &m.name, t, &vx)?);
            out.push(d::move_to(&vx, &sw));
            out.push(d::in_netns(
                &sw,
                &["link", "set", "dev", &vx, "master", "br0", "up"],
            ));
        }
    }
    Ok(out)
}

fn hosts_on<'a>(lab: &'a Lab, machine: &'a str) -> impl Iterator<Item = &'a Host> {
    lab.hosts
        .iter()
        .filter(move |h| h.provider == NAME && h.machine.as_deref() == Some(machine))
}

/// The namespaces `plan` makes on `m`.
fn expected(lab: &Lab, m: &Machine) -> Vec<String> {
    let mut v: Vec<String> = hosts_on(lab, &m.name)
        .map(|h| host_ns(lab, &h.name))
        .collect();
    for w in wires(lab) {
        if !w.is_direct() && w.ends.iter().any(|e| e.machine == m.name) {
            v.push(switch_ns(lab, &m.name, &w.key));
        }
    }
    v
}

fn namespaces(exec: &dyn Exec) -> Result<Vec<String>, Error> {
    let out = exec.check(&Command::new(net::devices::netns_list()))?;
    Ok(net::devices::netns_names(&out.stdout_lossy()))
}

/// A machine's part of the lab after `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineUp {
    pub machine: String,
    pub hosts: Vec<String>,
    /// It was up as planned already: nothing was made.
    pub adopted: bool,
}

/// Make every machine's part of the lab (machines in parallel). A machine whose namespaces
/// are all there is adopted; one with a part of them (an interrupted `up`) is cleared and made
/// again.
pub fn up(
    lab: &Lab,
    state: &StateDir,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<MachineUp>, Error> {
    let used: Vec<&Machine> = lab
        .machines
        .iter()
        .filter(|m| hosts_on(lab, &m.name).next().is_some())
        .collect();
    for m in &used {
        events(Event::Step(format!(
            "machine {} ({}): {} hosts",
            m.name,
            m.ssh.address,
            hosts_on(lab, &m.name).count()
        )));
    }
    let results = provider::vm::each_in_parallel(&used, |m| -> Result<MachineUp, Error> {
        let exec = ssh(m, state)?;
        let have = namespaces(&exec)?;
        let want = expected(lab, m);
        let hosts: Vec<String> = hosts_on(lab, &m.name).map(|h| h.name.clone()).collect();
        if want.iter().all(|n| have.contains(n)) {
            return Ok(MachineUp {
                machine: m.name.clone(),
                hosts,
                adopted: true,
            });
        }
        for n in have.iter().filter(|n| want.contains(n)) {
            exec.check(&Command::new(net::devices::netns_del(n)))?;
        }
        for argv in plan(lab, m)? {
            exec.check(&Command::new(argv))?;
        }
        Ok(MachineUp {
            machine: m.name.clone(),
            hosts,
            adopted: false,
        })
    });
    results.into_iter().collect()
}

/// Each machine-placed host's state.
pub fn status(lab: &Lab, state: &StateDir) -> Vec<provider::HostState> {
    let mut out = Vec::new();
    for m in &lab.machines {
        let hosts: Vec<&Host> = hosts_on(lab, &m.name).collect();
        if hosts.is_empty() {
            continue;
        }
        let have = ssh(m, state).and_then(|e| namespaces(&e));
        for h in hosts {
            let ns = host_ns(lab, &h.name);
            let mut s = match &have {
                Ok(have) if have.contains(&ns) => {
                    provider::HostState::new(&h.name, NAME, "present")
                }
                Ok(_) => provider::HostState::new(&h.name, NAME, "not created"),
                Err(e) => {
                    let mut s = provider::HostState::new(&h.name, NAME, "unreachable");
                    s.detail = Some(e.to_string());
                    s
                }
            };
            s.machine = Some(format!("{ns} on machine {}", m.name));
            out.push(s);
        }
    }
    out
}

/// How lab reaches a machine-placed host: its namespace through lab's SSH to the machine.
pub fn access(lab: &Lab, state: &StateDir, h: &Host) -> Result<provider::Access, Error> {
    let name = h.machine.as_deref().unwrap_or_default();
    let m = machine(lab, name)?;
    let exec = ssh(m, state)?;
    let ns = host_ns(lab, &h.name);
    if !namespaces(&exec)?.contains(&ns) {
        return Err(Error::NotUp {
            provider: NAME.into(),
            host: h.name.clone(),
        });
    }
    Ok(provider::Access::Exec(Box::new(guest::InNetns::new(
        h.name.clone(),
        exec,
        ns,
    ))))
}

/// Remove the lab's namespaces on every machine Lab.toml names (also those a host left).
pub fn destroy(lab: &Lab, state: &StateDir) -> Result<Vec<String>, Error> {
    let prefix = Topology::prefix_of(&lab.name);
    let t = Instant::now();
    let mut removed = Vec::new();
    for m in &lab.machines {
        let exec = ssh(m, state)?;
        for n in namespaces(&exec)? {
            if n.starts_with(&prefix) {
                exec.check(&Command::new(net::devices::netns_del(&n)))?;
                removed.push(format!("{n} on machine {}", m.name));
            }
        }
    }
    tracing::debug!(elapsed = ?t.elapsed(), "machines cleared");
    Ok(removed)
}
