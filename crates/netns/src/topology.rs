//! Wiring a lab out of namespaces: one namespace per host, a bridge in a namespace of its own per
//! shared segment, a veth pair per point-to-point link.
//!
//! Crash safety: the state file lists every namespace `up` is about to create and is written
//! (atomically) before the first one exists. Every name starts with `lab.<lab>.`, and lab names
//! cannot contain a dot, so `down` also finds what a lost state file would have listed, and never
//! anything of another lab. Interfaces and bridges only ever live inside those namespaces, so
//! deleting the namespaces removes everything.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::host::Host;
use crate::mptcp_pm::MptcpPm;
use crate::ns::Namespace;
use crate::rtnl::{Rtnl, VethEnd, VethNear};

/// What a lab's namespaces are made of. Built by the `lab` crate from a Lab.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub lab: String,
    pub hosts: Vec<TopoHost>,
    /// Shared L2 segments (bridges).
    pub segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoHost {
    pub name: String,
    pub interfaces: Vec<TopoIface>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoIface {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub attach: TopoAttach,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopoAttach {
    /// A port on the segment's bridge.
    Segment(String),
    /// One end of a veth pair whose other end is `host`'s `iface`.
    Peer { host: String, iface: String },
}

/// The state file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyState {
    pub lab: String,
    /// Every namespace the lab owns (or was about to create).
    pub namespaces: Vec<String>,
    /// The host → namespace map.
    pub hosts: Vec<(String, String)>,
    /// Whether `up` finished wiring.
    pub complete: bool,
}

/// Timings of `up`, for reports and `lab bench`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpReport {
    pub namespaces: usize,
    pub interfaces: usize,
    pub elapsed: Duration,
    /// The lab was already up: nothing was created.
    pub adopted: bool,
}

impl Topology {
    /// Every namespace name of a lab starts with this.
    pub fn prefix_of(lab: &str) -> String {
        format!("lab.{lab}.")
    }

    pub fn host_ns(&self, host: &str) -> String {
        format!("{}{host}", Self::prefix_of(&self.lab))
    }

    pub fn segment_ns(&self, segment: &str) -> String {
        format!("{}sw.{segment}", Self::prefix_of(&self.lab))
    }

    fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.hosts.iter().map(|h| self.host_ns(&h.name)).collect();
        v.extend(self.segments.iter().map(|s| self.segment_ns(s)));
        v
    }

    fn state(&self, complete: bool) -> TopologyState {
        TopologyState {
            lab: self.lab.clone(),
            namespaces: self.namespaces(),
            hosts: self
                .hosts
                .iter()
                .map(|h| (h.name.clone(), self.host_ns(&h.name)))
                .collect(),
            complete,
        }
    }

    /// Create the lab's namespaces and wiring. A lab that is fully up is adopted as it is; a
    /// partial one (an interrupted `up`) is removed first.
    pub fn up(&self, state_file: &Path) -> Result<UpReport, Error> {
        self.up_with(state_file, &mut |_| {})
    }

    /// Open every host of a lab that is up.
    pub fn open_hosts(&self) -> Result<Vec<Host>, Error> {
        self.hosts
            .iter()
            .map(|h| Host::open(&h.name, &self.host_ns(&h.name)))
            .collect()
    }

    /// [`up`](Self::up), handing each host (with its netlink connections open) to `ready` as
    /// soon as it has all its interfaces, so that configuring it can overlap wiring the rest.
    /// An adopted lab hands over every host.
    pub fn up_with(
        &self,
        state_file: &Path,
        ready: &mut dyn FnMut(Host),
    ) -> Result<UpReport, Error> {
        let start = Instant::now();
        if let Some(s) = read_state(state_file)?
            && s.complete
            && s == self.state(true)
            && s.namespaces.iter().all(|n| crate::ns::path_of(n).exists())
        {
            for h in self.open_hosts()? {
                ready(h);
            }
            return Ok(UpReport {
                namespaces: s.namespaces.len(),
                adopted: true,
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        down(&self.lab, state_file)?;
        write_state(state_file, &self.state(false))?;

        // Namespaces are created in parallel: the kernel's set-up of a namespace dominates.
        // Each host's netlink connections are opened on its creating thread, inside it.
        type Made = (Namespace, Option<(Rtnl, MptcpPm)>);
        let created: Vec<Result<Made, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .hosts
                .iter()
                .map(|h| (self.host_ns(&h.name), true))
                .chain(self.segments.iter().map(|g| (self.segment_ns(g), false)))
                .map(|(name, is_host)| {
                    s.spawn(move || {
                        Namespace::create_with(&name, || {
                            // Loopback up (services bound to 127.0.0.1 inside a host).
                            let mut rt = Rtnl::open()?;
                            let lo = rt.index("lo")?;
                            rt.set_link(lo, Some(true), None, None)?;
                            Ok(if is_host {
                                Some((rt, MptcpPm::open()?))
                            } else {
                                None
                            })
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(Error::Panicked)))
                .collect()
        });
        let mut created = created.into_iter().collect::<Result<Vec<_>, _>>()?;
        let switches: Vec<Namespace> = created
            .split_off(self.hosts.len())
            .into_iter()
            .map(|(ns, _)| ns)
            .collect();
        let mut conns = Vec::new();
        let mut hosts = Vec::new();
        for (ns, c) in created {
            hosts.push(ns);
            conns.push(c);
        }
        let mut interfaces = 0;
        // One bridge per segment, in the segment's namespace.
        let mut bridges = Vec::new();
        for sw in &switches {
            let mut rt = sw.run(Rtnl::open)??;
            rt.add_bridge("br0")?;
            let br = rt.index("br0")?;
            rt.set_link(br, Some(true), None, None)?;
            bridges.push((rt, br));
        }
        // Host by host, so each host can be configured (`ready`) while the next is wired: a
        // host's ports on every segment, then its links to hosts after it (links to hosts
        // before it were made with those).
        for (hi, h) in self.hosts.iter().enumerate() {
            for (si, seg) in self.segments.iter().enumerate() {
                let ports: Vec<(usize, &TopoIface)> = h
                    .interfaces
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.attach == TopoAttach::Segment(seg.clone()))
                    .collect();
                let (rt, br) = &mut bridges[si];
                for (ii, i) in ports {
                    rt.add_veth(
                        &VethNear {
                            name: &format!("p{hi}x{ii}"),
                            up: true,
                            master: Some(*br),
                            ..Default::default()
                        },
                        &VethEnd {
                            name: &i.name,
                            ns: Some(hosts[hi].fd()),
                            mac: i.mac,
                            mtu: i.mtu,
                        },
                    )?;
                    interfaces += 1;
                }
            }
            let mut rt = None;
            for i in &h.interfaces {
                let TopoAttach::Peer { host, iface } = &i.attach else {
                    continue;
                };
                let Some(pi) = self.hosts.iter().position(|x| x.name == *host) else {
                    return Err(Error::Setup(format!(
                        "link {}:{} names unknown host {host}",
                        h.name, i.name
                    )));
                };
                // Each pair once: from the end that comes first.
                if (pi, iface.as_str()) < (hi, i.name.as_str()) {
                    continue;
                }
                let peer = self.hosts[pi]
                    .interfaces
                    .iter()
                    .find(|x| x.name == *iface)
                    .ok_or_else(|| Error::NoInterface(format!("{iface} (host {host})")))?;
                if rt.is_none() {
                    rt = Some(hosts[hi].run(Rtnl::open)??);
                }
                let rt = rt.as_mut().expect("opened above");
                rt.add_veth(
                    &VethNear {
                        name: &i.name,
                        mac: i.mac,
                        mtu: i.mtu,
                        ..Default::default()
                    },
                    &VethEnd {
                        name: &peer.name,
                        ns: Some(hosts[pi].fd()),
                        mac: peer.mac,
                        mtu: peer.mtu,
                    },
                )?;
                interfaces += 2;
            }
            if let Some((rt, pm)) = conns[hi].take() {
                let ns = hosts[hi].try_clone()?;
                ready(Host::from_parts(&h.name, ns, rt, pm));
            }
        }
        write_state(state_file, &self.state(true))?;
        Ok(UpReport {
            namespaces: self.namespaces().len(),
            interfaces,
            elapsed: start.elapsed(),
            adopted: false,
        })
    }
}

/// Remove every namespace of `lab`: those in the state file and any other whose name carries
/// the lab's prefix. Returns the names deleted.
pub fn down(lab: &str, state_file: &Path) -> Result<Vec<String>, Error> {
    let mut names = match read_state(state_file) {
        Ok(Some(s)) => s.namespaces,
        Ok(None) => Vec::new(),
        // A torn or foreign state file does not stop `down`: the prefix finds the namespaces.
        Err(_) => Vec::new(),
    };
    let prefix = Topology::prefix_of(lab);
    names.extend(
        Namespace::list()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix)),
    );
    names.sort();
    names.dedup();
    let mut deleted = Vec::new();
    for n in names {
        if Namespace::delete(&n)? {
            deleted.push(n);
        }
    }
    match fs::remove_file(state_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing {}", state_file.display()), e)),
    }
    Ok(deleted)
}

/// The namespaces of `lab` that exist now.
pub fn existing(lab: &str) -> Result<Vec<String>, Error> {
    let prefix = Topology::prefix_of(lab);
    Ok(Namespace::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

pub fn read_state(path: &Path) -> Result<Option<TopologyState>, Error> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::State {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Write the state file atomically: a temp file beside it, then rename. No fsync: the file must
/// survive the process being killed (the page cache does that), not a power cut, after which
/// the namespaces it lists are gone anyway.
fn write_state(path: &Path, state: &TopologyState) -> Result<(), Error> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::State {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut f =
        fs::File::create(&tmp).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(&json)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}
