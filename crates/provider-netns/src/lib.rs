//! lab's default provider: each host a network namespace on this machine, each segment a
//! bridge in a namespace of its own, each link a veth pair (through the `netns` crate, the
//! only one that speaks netlink).
//!
//! `up` writes the state file (`.lab/<lab>.netns.json`) before creating anything, and
//! overlaps wiring with applying each host's plan; `destroy` removes every namespace with the
//! lab's prefix, also without the state file.

use std::time::Instant;

use model::{Attach, Host, Lab};
use netns::Topology;
use netns::topology::{TopoAttach, TopoHost, TopoIface};
use provider::{
    Access, Action, Applied, Capability, Ctx, Error, Events, HostState, HostUp, Missing, UpOptions,
    UpReport,
};

/// The provider's name in Lab.toml.
pub mod machines;

pub const NAME: &str = "netns";

/// Network namespaces on this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Namespaces;

/// The namespace wiring of a lab's hosts of this provider. NAT interfaces (a VM's management
/// NIC) have no counterpart.
pub fn topology(lab: &Lab) -> Topology {
    let hosts: Vec<TopoHost> = lab
        .hosts
        .iter()
        .filter(|h| h.provider == NAME && h.machine.is_none())
        .map(|h| TopoHost {
            name: h.name.clone(),
            interfaces: h
                .interfaces
                .iter()
                .filter_map(|i| {
                    let attach = match &i.attach {
                        Attach::Nat => return None,
                        Attach::Network(n) => TopoAttach::Segment(n.clone()),
                        Attach::Link(l) => {
                            let link = lab.links.iter().find(|x| x.name == *l)?;
                            let other = if link.a.host == h.name && link.a.interface == i.name {
                                &link.b
                            } else {
                                &link.a
                            };
                            TopoAttach::Peer {
                                host: other.host.clone(),
                                iface: other.interface.clone(),
                            }
                        }
                    };
                    Some(TopoIface {
                        name: i.name.clone(),
                        mac: i.mac.map(|m| m.0),
                        mtu: i.mtu,
                        attach,
                    })
                })
                .collect(),
        })
        .collect();
    // Segments with at least one namespace host on them.
    let segments = lab
        .networks
        .iter()
        .filter(|n| {
            hosts.iter().any(|h: &TopoHost| {
                h.interfaces
                    .iter()
                    .any(|i| i.attach == TopoAttach::Segment(n.name.clone()))
            })
        })
        .map(|n| n.name.clone())
        .collect();
    Topology {
        lab: lab.name.clone(),
        hosts,
        segments,
    }
}

/// The state file's name in `.lab/`.
pub fn state_name(lab: &Lab) -> String {
    format!("{}.netns.json", lab.name)
}

fn err(e: netns::Error) -> Error {
    Error::provider(NAME, e)
}

fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Apply `plan` to a host whose namespace was just created. Nothing of the plan is there yet,
/// so the state is not dumped; only what a new namespace starts with that the plan may set is
/// read back: the MPTCP limits (the kernel's defaults, e.g. `subflows 2`, which a plan of 0/0
/// must still change).
fn apply_fresh(
    host: &mut netns::Host,
    plan: &net::HostNet,
) -> Result<netns::Applied, netns::Error> {
    let (subflows, add_addr_accepted) = host.pm().limits()?;
    let fresh = net::Observed {
        limits: net::Limits {
            subflows,
            add_addr_accepted,
        },
        ..net::Observed::default()
    };
    let changes = net::diff(plan, &fresh);
    let replaced_sysctls = host.apply(&changes)?;
    Ok(netns::Applied {
        changes,
        replaced_sysctls,
    })
}

impl provider::Provider for Namespaces {
    fn name(&self) -> &str {
        NAME
    }

    fn describe(&self) -> &str {
        "network namespaces on this machine (instant; needs root and the kernel's MPTCP), or on [machines] over SSH"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Lifecycle,
            Capability::DryRun,
            Capability::Machines,
        ]
    }

    fn preflight(&self, ctx: &Ctx<'_>) -> Vec<Missing> {
        let mut m = Vec::new();
        // Hosts placed on other machines need nothing of this one.
        if ctx.hosts.iter().all(|h| h.machine.is_some()) {
            return m;
        }
        if !euid_is_root() {
            m.push(Missing {
                what: "root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into(),
                fix: "run it as root, e.g. `sudo lab ...`".into(),
            });
        }
        if !std::path::Path::new("/proc/sys/net/mptcp").exists() {
            m.push(Missing {
                what: "the kernel's MPTCP (/proc/sys/net/mptcp)".into(),
                fix: "boot a kernel with CONFIG_MPTCP=y (`lab kernel check`)".into(),
            });
        }
        m
    }

    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        let topo = topology(ctx.lab);
        let mut plan = Vec::new();
        for m in &ctx.lab.machines {
            let argvs = machines::plan(ctx.lab, m)?;
            if argvs.is_empty() {
                continue;
            }
            plan.push(Action::note(
                None,
                format!(
                    "on machine {} ({}@{}:{}, over lab's SSH):",
                    m.name, m.ssh.user, m.ssh.address, m.ssh.port
                ),
            ));
            for argv in argvs {
                plan.push(Action {
                    host: None,
                    what: format!("on machine {}", m.name),
                    argv: Some(argv),
                });
            }
        }
        for s in &topo.segments {
            plan.push(Action::note(
                None,
                format!("namespace {} with bridge {s}", topo.segment_ns(s)),
            ));
        }
        for h in &topo.hosts {
            plan.push(Action::note(
                Some(&h.name),
                format!("namespace {}", topo.host_ns(&h.name)),
            ));
            for i in &h.interfaces {
                let what = match &i.attach {
                    TopoAttach::Segment(s) => {
                        format!("veth {} on bridge {s} ({})", i.name, topo.segment_ns(s))
                    }
                    TopoAttach::Peer { host, iface } => {
                        format!("veth {} paired with {host}'s {iface}", i.name)
                    }
                };
                plan.push(Action::note(Some(&h.name), what));
            }
        }
        Ok(plan)
    }

    fn up(&self, ctx: &Ctx<'_>, opts: &UpOptions, events: Events<'_>) -> Result<UpReport, Error> {
        let missing = self.preflight(ctx);
        if !missing.is_empty() {
            return Err(Error::Missing {
                provider: NAME.into(),
                missing,
            });
        }
        let lab = ctx.lab;
        let topo = topology(lab);
        let start = Instant::now();
        let remote = if machines::any(lab) {
            machines::up(lab, ctx.state, events)?
        } else {
            Vec::new()
        };
        let remote_hosts = remote.iter().flat_map(|m| {
            m.hosts.iter().map(move |h| HostUp {
                host: h.clone(),
                machine: format!("{} on machine {}", machines::host_ns(lab, h), m.machine),
                created: !m.adopted,
                ssh: None,
                boot_seconds: None,
                kernel: None,
            })
        });
        if topo.hosts.is_empty() {
            // Every host is on another machine: the session applies them through the seam.
            let mut hosts: Vec<HostUp> = remote_hosts.collect();
            hosts.sort_by_key(|u| lab.hosts.iter().position(|h| h.name == u.host));
            return Ok(UpReport {
                hosts,
                applied: Vec::new(),
                elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            });
        }
        let remote_hosts: Vec<HostUp> = remote_hosts.collect();
        let state = ctx.state.file(&state_name(lab));
        events(provider::Event::Step(format!(
            "namespaces: {} hosts, {} segments",
            topo.hosts.len(),
            topo.segments.len()
        )));
        let (r, applied) = if opts.apply {
            // Each host is configured on its own thread as soon as its interfaces exist, while
            // the next host is being wired.
            std::thread::scope(|s| {
                let mut workers = Vec::new();
                let report = topo.up_with(&state, &mut |mut host, fresh| {
                    workers.push(s.spawn(move || -> Result<Applied, netns::Error> {
                        let start = Instant::now();
                        let plan = lab
                            .host(host.name())
                            .map(Host::net)
                            .ok_or(netns::Error::Panicked)?;
                        let done = if fresh {
                            apply_fresh(&mut host, &plan)?
                        } else {
                            host.converge(&plan)?
                        };
                        Ok(Applied {
                            host: host.name().to_string(),
                            changes: done.changes,
                            files: Vec::new(),
                            warnings: Vec::new(),
                            elapsed_us: start.elapsed().as_micros(),
                            replaced_sysctls: done.replaced_sysctls,
                        })
                    }));
                });
                let applied: Vec<Result<Applied, netns::Error>> = workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or(Err(netns::Error::Panicked)))
                    .collect();
                let report = report.map_err(err)?;
                let applied = applied
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                Ok::<_, Error>((report, applied))
            })?
        } else {
            (topo.up(&state).map_err(err)?, Vec::new())
        };
        if r.adopted {
            events(provider::Event::Note(format!(
                "lab `{}` was already up: adopted its {} namespaces",
                lab.name, r.namespaces
            )));
        }
        if r.rewired {
            events(provider::Event::Note(format!(
                "lab `{}` was up with other interfaces, networks or hosts: wired again as Lab.toml describes it now",
                lab.name
            )));
        }
        let mut applied = applied;
        // Lab.toml order.
        applied.sort_by_key(|a| lab.hosts.iter().position(|h| h.name == a.host));
        let mut hosts: Vec<HostUp> = topo
            .hosts
            .iter()
            .map(|h| HostUp {
                host: h.name.clone(),
                machine: topo.host_ns(&h.name),
                created: !r.adopted,
                ssh: None,
                boot_seconds: None,
                kernel: None,
            })
            .chain(remote_hosts)
            .collect();
        hosts.sort_by_key(|u| lab.hosts.iter().position(|h| h.name == u.host));
        Ok(UpReport {
            hosts,
            applied,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
        let topo = topology(ctx.lab);
        let existing = netns::topology::existing(&ctx.lab.name).map_err(err)?;
        let remote = machines::status(ctx.lab, ctx.state);
        Ok(ctx
            .hosts
            .iter()
            .map(|h| {
                if let Some(s) = remote.iter().find(|s| s.host == h.name) {
                    return s.clone();
                }
                let ns = topo.host_ns(&h.name);
                let present = existing.contains(&ns);
                let mut s = HostState::new(
                    &h.name,
                    NAME,
                    if present { "present" } else { "not created" },
                );
                s.machine = Some(ns);
                s
            })
            .collect())
    }

    fn halt(
        &self,
        _ctx: &Ctx<'_>,
        _grace: std::time::Duration,
        _events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        Err(Error::unsupported(
            NAME,
            "halt",
            "network namespaces have no power state (`lab down` removes them)",
        ))
    }

    fn destroy(&self, ctx: &Ctx<'_>, _events: Events<'_>) -> Result<Vec<String>, Error> {
        if !euid_is_root() {
            return Err(Error::Missing {
                provider: NAME.into(),
                missing: vec![Missing {
                    what: "root (removing network namespaces needs CAP_SYS_ADMIN)".into(),
                    fix: "run it as root, e.g. `sudo lab down`".into(),
                }],
            });
        }
        let mut removed =
            netns::topology::down(&ctx.lab.name, &ctx.state.file(&state_name(ctx.lab)))
                .map_err(err)?;
        removed.extend(machines::destroy(ctx.lab, ctx.state)?);
        Ok(removed)
    }

    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        if host.machine.is_some() {
            return machines::access(ctx.lab, ctx.state, host);
        }
        let ns = topology(ctx.lab).host_ns(&host.name);
        if !std::path::Path::new(netns::ns::RUN_DIR).join(&ns).exists() {
            return Err(Error::NotUp {
                provider: NAME.into(),
                host: host.name.clone(),
            });
        }
        Ok(Access::Namespace(ns))
    }

    fn snapshot(
        &self,
        _ctx: &Ctx<'_>,
        _op: &provider::SnapshotOp,
        _boot_timeout: std::time::Duration,
        _events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        Err(Error::unsupported(
            NAME,
            "snapshot",
            "network namespaces keep no disk state (`lab up` rebuilds a lab in milliseconds)",
        ))
    }
}
