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
    /// The hosts' interfaces as wired (names, MACs, MTUs, what each is plugged into): a lab
    /// whose Lab.toml changed them is wired again, not adopted. Empty in state files written
    /// before it was recorded (such a lab is wired again once).
    #[serde(default)]
    pub wiring: Vec<TopoHost>,
}

/// Timings of `up`, for reports and `lab bench`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpReport {
    pub namespaces: usize,
    pub interfaces: usize,
    pub elapsed: Duration,
    /// The lab was already up: nothing was created.
    pub adopted: bool,
    /// The lab was up with other wiring (interfaces, networks or hosts added, removed or
    /// changed in Lab.toml): it was taken down and wired again as described now.
    pub rewired: bool,
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
            wiring: self.hosts.clone(),
        }
    }

    /// Create the lab's namespaces and wiring. A lab that is fully up with this wiring is
    /// adopted as it is; a partial one (an interrupted `up`), or one wired otherwise (hosts,
    /// networks or interfaces changed in Lab.toml since), is removed first and wired anew.
    pub fn up(&self, state_file: &Path) -> Result<UpReport, Error> {
        self.up_with(state_file, &mut |_, _| {})
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
    /// The flag says whether the host was created just now (nothing configured in it yet); an
    /// adopted lab hands over every host with `false`.
    pub fn up_with(
        &self,
        state_file: &Path,
        ready: &mut dyn FnMut(Host, bool),
    ) -> Result<UpReport, Error> {
        let start = Instant::now();
        let before = read_state(state_file)?;
        if let Some(s) = &before
            && s.complete
            && *s == self.state(true)
            && s.namespaces.iter().all(|n| crate::ns::path_of(n).exists())
        {
            for h in self.open_hosts()? {
                ready(h, false);
            }
            return Ok(UpReport {
                namespaces: s.namespaces.len(),
                adopted: true,
                elapsed: start.elapsed(),
                ..Default::default()
            });
        }
        // A complete lab with other wiring is taken down and wired as described now.
        let rewired = before.is_some_and(|s| s.complete && s.wiring != self.hosts);
        down(&self.lab, state_file)?;
        write_state(state_file, &self.state(false))?;

        let interfaces = std::thread::scope(|s| self.create_and_wire(s, ready))?;
        write_state(state_file, &self.state(true))?;
        Ok(UpReport {
            namespaces: self.namespaces().len(),
            interfaces,
            elapsed: start.elapsed(),
            adopted: false,
            rewired,
        })
    }
}

/// What a namespace's creating thread hands back: a host's netlink connections, or a segment's
/// connection and bridge.
enum Made {
    Host(Rtnl, MptcpPm),
    Segment(Rtnl, u32),
}

impl Topology {
    /// Create every namespace in parallel (the kernel's set-up of a namespace dominates) and wire
    /// host by host as soon as the namespaces a host needs exist, so that creating the rest
    /// overlaps wiring, and configuring a host (`ready`) overlaps wiring the next.
    fn create_and_wire<'scope, 'env>(
        &'env self,
        s: &'scope std::thread::Scope<'scope, 'env>,
        ready: &mut dyn FnMut(Host, bool),
    ) -> Result<usize, Error> {
        // Segments are started first: creating one also creates its bridge, and every host's
        // wiring waits for it.
        let names: Vec<(usize, String, bool)> = self
            .segments
            .iter()
            .enumerate()
            .map(|(si, g)| (self.hosts.len() + si, self.segment_ns(g), false))
            .chain(
                self.hosts
                    .iter()
                    .enumerate()
                    .map(|(hi, h)| (hi, self.host_ns(&h.name), true)),
            )
            .collect();
        type Handle<'scope> =
            std::thread::ScopedJoinHandle<'scope, Result<(Namespace, Made), Error>>;
        let mut pending: Vec<Option<Handle<'scope>>> = (0..names.len()).map(|_| None).collect();
        for (k, name, is_host) in names {
            pending[k] = Some(s.spawn(move || {
                Namespace::create_with(&name, || {
                    // Loopback up (services bound to 127.0.0.1 inside a host).
                    let mut rt = Rtnl::open()?;
                    let lo = rt.index("lo")?;
                    rt.set_link(lo, Some(true), None, None)?;
                    if is_host {
                        return Ok(Made::Host(rt, MptcpPm::open()?));
                    }
                    rt.add_bridge("br0")?;
                    let br = rt.index("br0")?;
                    rt.set_link(br, Some(true), None, None)?;
                    Ok(Made::Segment(rt, br))
                })
            }));
        }
        let mut nss: Vec<Option<Namespace>> = (0..pending.len()).map(|_| None).collect();
        let mut made: Vec<Option<Made>> = (0..pending.len()).map(|_| None).collect();
        // Wait for namespace `k` (hosts first, then segments) on first use.
        let mut need = |k: usize,
                        nss: &mut Vec<Option<Namespace>>,
                        made: &mut Vec<Option<Made>>|
         -> Result<(), Error> {
            if let Some(h) = pending[k].take() {
                let (ns, m) = h.join().unwrap_or(Err(Error::Panicked))?;
                nss[k] = Some(ns);
                made[k] = Some(m);
            }
            Ok(())
        };
        let nh = self.hosts.len();
        for si in 0..self.segments.len() {
            need(nh + si, &mut nss, &mut made)?;
        }
        let mut interfaces = 0;
        for (hi, h) in self.hosts.iter().enumerate() {
            need(hi, &mut nss, &mut made)?;
            let host_fd = nss[hi].as_ref().expect("joined above").fd();
            // The host's ports on every segment.
            for (si, seg) in self.segments.iter().enumerate() {
                let Some(Made::Segment(rt, br)) = made[nh + si].as_mut() else {
                    continue;
                };
                for (ii, i) in h.interfaces.iter().enumerate() {
                    if i.attach != TopoAttach::Segment(seg.clone()) {
                        continue;
                    }
                    rt.add_veth(
                        &VethNear {
                            name: &format!("p{hi}x{ii}"),
                            up: true,
                            master: Some(*br),
                            ..Default::default()
                        },
                        &VethEnd {
                            name: &i.name,
                            ns: Some(host_fd),
                            mac: i.mac,
                            mtu: i.mtu,
                        },
                    )?;
                    interfaces += 1;
                }
            }
            // Its links to hosts after it (links to hosts before it were made with those).
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
                if (pi, iface.as_str()) < (hi, i.name.as_str()) {
                    continue;
                }
                let peer = self.hosts[pi]
                    .interfaces
                    .iter()
                    .find(|x| x.name == *iface)
                    .ok_or_else(|| Error::NoInterface(format!("{iface} (host {host})")))?;
                need(pi, &mut nss, &mut made)?;
                let peer_fd = nss[pi].as_ref().expect("joined above").fd();
                let Some(Made::Host(rt, _)) = made[hi].as_mut() else {
                    continue;
                };
                rt.add_veth(
                    &VethNear {
                        name: &i.name,
                        mac: i.mac,
                        mtu: i.mtu,
                        ..Default::default()
                    },
                    &VethEnd {
                        name: &peer.name,
                        ns: Some(peer_fd),
                        mac: peer.mac,
                        mtu: peer.mtu,
                    },
                )?;
                interfaces += 2;
            }
            if let Some(Made::Host(rt, pm)) = made[hi].take() {
                let ns = nss[hi].as_ref().expect("joined above").try_clone()?;
                ready(Host::from_parts(&h.name, ns, rt, pm), true);
            }
        }
        Ok(interfaces)
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
