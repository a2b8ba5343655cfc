//! The session: a lab and its state, and every operation on it, provider by provider.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guest::Exec;
use provider::{Access, Ctx, Event, Registry, SnapshotOp, StateDir, UpOptions};
use serde::Serialize;

use crate::remote;
use crate::traffic::{TestError, TestOptions, TestResult};
use model::{Host, Lab, Preset, Provider};

/// Errors of a session's operations; each keeps its source.
///
/// ```no_run
/// # fn main() {
/// let s = lab::Session::open("Lab.toml".as_ref()).unwrap();
/// match s.halt(std::time::Duration::from_secs(60)) {
///     Ok(h) => println!("halted {:?}", h.halted),
///     // Some providers halted their hosts, others could not (each error names its provider).
///     Err(lab::Error::Incomplete { done, errors }) => {
///         println!("done: {done}");
///         errors.iter().for_each(|e| eprintln!("{e}"));
///     }
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Lab.toml could not be read or is not valid.
    #[error(transparent)]
    Load(#[from] model::LoadError),
    /// A provider could not do its part.
    #[error(transparent)]
    Provider(#[from] provider::Error),
    /// Some providers did their part, others could not (each error names its provider).
    #[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Incomplete {
        /// What was done before (rendered by the caller as the operation's report).
        done: Box<serde_json::Value>,
        /// Each provider's error.
        errors: Vec<provider::Error>,
    },
    /// A capture could not start or finish.
    #[error(transparent)]
    Capture(#[from] capture::Error),
    /// A chart could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// A run directory could not be read for `lab report`.
    #[error("report: {0}")]
    Report(String),
    /// A host name the lab does not have.
    #[error("lab `{lab}` has no host `{host}` (hosts: {known})")]
    NoHost {
        /// The lab's name.
        lab: String,
        /// The name asked for.
        host: String,
        /// The lab's hosts.
        known: String,
    },
    #[error(
        "host `{host}` has no interface `{iface}` that carries MPTCP paths (interfaces: {known})"
    )]
    /// An interface name the host does not have.
    NoInterface {
        /// The host.
        host: String,
        /// The interface asked for.
        iface: String,
        /// The host's interfaces.
        known: String,
    },
    /// Applying or reading a host over SSH failed.
    #[error("host `{host}`: {source}")]
    Remote {
        /// The host.
        host: String,
        /// What failed.
        #[source]
        source: remote::Error,
    },
    /// A network namespace operation failed.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// The traffic test failed to run (a verdict that fails is not an error).
    #[error(transparent)]
    Test(#[from] TestError),
    /// Installing a kernel failed.
    #[error(transparent)]
    Kernel(#[from] kernel::install::InstallError),
    /// The operation needs SSH, and the host is a network namespace.
    #[error(
        "host `{host}` is a network namespace: it has no SSH server (use `lab exec {host} -- CMD`)"
    )]
    NoSsh {
        /// The host.
        host: String,
    },
    /// `lab inventory` on a lab without SSH hosts.
    #[error(
        "no host of lab `{lab}` is reachable over SSH ({skipped}): an inventory lists SSH hosts (QEMU, VirtualBox, `provider = \"ssh\"`)"
    )]
    NoSshHosts {
        /// The lab.
        lab: String,
        /// Each host and why it is not an SSH host.
        skipped: String,
    },
    /// A rate that does not parse.
    #[error("`{0}` is not a rate (e.g. 50mbit)")]
    Rate(String),
    /// The host's kernel lacks what the operation needs.
    #[error("host `{host}` lacks {what}")]
    Missing {
        /// The host.
        host: String,
        /// What it lacks.
        what: String,
    },
    /// The kernel build failed.
    #[error(transparent)]
    Build(#[from] kernel::build::BuildError),
    /// A step of [`Session::guide`] failed: the report of the steps so far, and its error.
    #[error("{source}")]
    Guide {
        /// The steps that ran, the last one failed.
        report: Box<crate::guide::GuideReport>,
        /// Why the step failed.
        #[source]
        source: Box<Error>,
    },
    /// A command failed (argv, status and stderr inside).
    #[error(transparent)]
    Command(Box<guest::Error>),
    /// Another directory's lab of the same name is up: its namespaces and VMs carry the name,
    /// so this one would take them over.
    #[error(
        "lab `{name}` is up in {}: hosts are named after the lab, so this directory would take that lab over; give this one another `[lab] name`, or run `lab down` in {}",
        dir.display(),
        dir.display()
    )]
    NameTaken {
        /// The lab's name.
        name: String,
        /// The directory whose lab it is.
        dir: std::path::PathBuf,
    },
    /// This directory's lab was brought up under another name, and Lab.toml has been renamed
    /// since: its hosts still carry the old name.
    #[error(
        "this directory's lab is up as `{old}`, and Lab.toml now names it `{new}`: run `lab down` (it removes `{old}` too), then `lab up`"
    )]
    Renamed {
        /// The name it was brought up under.
        old: String,
        /// The name Lab.toml gives it now.
        new: String,
    },
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Command(Box::new(e))
    }
}

/// A provider's progress, with where it comes from (`netns`, `qemu`, ..., or `lab`).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Who reports: a provider's name, or `lab`, `kernel`, `guide`.
    pub source: String,
    /// What it reports.
    pub event: Event,
}

type Callback = Box<dyn FnMut(&Progress) + Send>;

/// lab's own providers: network namespaces (`netns`, the default), `qemu`, `virtualbox`, and
/// existing machines over `ssh`.
///
/// ```
/// let r = lab::default_registry();
/// assert_eq!(r.names(), ["libvirt", "netns", "qemu", "ssh", "virtualbox"]);
/// ```
pub fn default_registry() -> Registry {
    let mut r = Registry::new();
    r.register(Box::new(provider_netns::Namespaces));
    r.register(Box::new(provider_qemu::Qemu::default()));
    r.register(Box::new(provider_virtualbox::VirtualBox));
    r.register(Box::new(provider_ssh::Existing));
    r.register(Box::new(provider_libvirt::Libvirt::default()));
    r
}

/// Options of [`Session::apply`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only report the changes.
    pub dry_run: bool,
    /// On hosts reached over SSH, also persist netplan and rt_tables under this root (`/`).
    pub persist: Option<PathBuf>,
}

/// What [`Session::up`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Up {
    /// The lab's name.
    pub lab: String,
    /// Per provider, in the order they ran.
    pub providers: Vec<(String, provider::UpReport)>,
    /// Every host's network plan applied (by its provider or by the session), Lab.toml order.
    pub applied: Vec<provider::Applied>,
}

/// What [`Session::halt`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Halted {
    /// The lab's name.
    pub lab: String,
    /// (provider, machines halted)
    pub halted: Vec<(String, Vec<String>)>,
}

/// What [`Session::destroy`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Destroyed {
    /// The lab's name.
    pub lab: String,
    /// (provider, what was removed)
    pub removed: Vec<(String, Vec<String>)>,
}

/// What [`Session::snapshot`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The lab's name.
    pub lab: String,
    /// The snapshot's name.
    pub name: String,
    /// Restored (false: saved).
    pub restored: bool,
    /// (provider, machines)
    pub machines: Vec<(String, Vec<String>)>,
}

/// A lab's state: every host as its provider sees it, and the network of those that are up.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The lab's name.
    pub lab: String,
    /// The lab's directory.
    pub dir: PathBuf,
    /// `up` (every host up), `partial`, or `down`.
    pub state: &'static str,
    /// Each host, in Lab.toml's order.
    pub hosts: Vec<HostStatus>,
}

/// One host in [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The host's name.
    pub name: String,
    /// The machine, as its provider sees it.
    #[serde(flatten)]
    pub machine: provider::HostState,
    /// Its interfaces as observed (empty when it cannot be reached).
    pub interfaces: Vec<IfaceStatus>,
    /// Its MPTCP endpoints as observed.
    pub endpoints: Vec<net::diff::EndpointState>,
    /// Its MPTCP limits as observed.
    pub limits: Option<net::Limits>,
    /// Changes `lab net apply` would make (0 on an applied host; `None`: not read).
    pub pending_changes: Option<usize>,
    /// Why the network could not be read.
    pub network_error: Option<String>,
}

/// An interface of the plan, as observed.
#[derive(Debug, Clone, Serialize)]
pub struct IfaceStatus {
    /// The interface's name.
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// Its MTU.
    pub mtu: u32,
    /// Its hardware address, when it has one.
    pub mac: Option<String>,
    /// Its IPv4 addresses with prefix length.
    pub addresses: Vec<String>,
    /// Its root qdisc, when not the default.
    pub qdisc: Option<String>,
}

/// A lab open for work: the model, its `.lab/` state, and the providers.
///
/// ```no_run
/// # fn main() -> Result<(), lab::Error> {
/// let mut session = lab::Session::open("Lab.toml".as_ref())?;
/// session.on_progress(|p| eprintln!("{}: {:?}", p.source, p.event));
/// let up = session.up(&lab::UpOptions::default())?;
/// println!("{} hosts applied", up.applied.len());
/// let verdict = session.test(&lab::TestOptions::default())?.verdict;
/// session.destroy()?;
/// assert!(verdict.pass);
/// # Ok(())
/// # }
/// ```
pub struct Session {
    lab: Lab,
    /// Per host, the sysctl keys the session added to the plan to put back a value lab
    /// replaced earlier and Lab.toml no longer sets (see [`SYSCTLS`]).
    restores: BTreeMap<String, BTreeSet<String>>,
    state: StateDir,
    registry: Registry,
    progress: Mutex<Option<Callback>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("lab", &self.lab.name)
            .field("dir", &self.state.lab_dir())
            .field("providers", &self.registry.names())
            .finish()
    }
}

const OVERRIDE: &str = "provider";

/// `lab` with its hosts that name no machine spread over `[machines]`, where their provider
/// has the `Machines` capability (the model balances; the registry says who can be placed).
fn placed(lab: &Lab, registry: &Registry) -> Lab {
    lab.balance(|p| {
        registry
            .get(p.as_str())
            .is_some_and(|p| p.capabilities().contains(&provider::Capability::Machines))
    })
}

fn override_name(lab: &Lab) -> String {
    format!("{}.{OVERRIDE}.json", lab.name)
}

/// `.lab/<lab>.sysctls.json`: per host, each sysctl lab changed, with the value it had before
/// lab first set it. A key Lab.toml no longer sets is put back to that value on the next apply
/// (then forgotten); a per-interface key of an interface that left the lab is forgotten (the
/// interface is gone, or no longer lab's). Removed by `destroy`.
const SYSCTLS: &str = "sysctls";

type SysctlRecord = BTreeMap<String, BTreeMap<String, String>>;

fn sysctls_name(lab: &Lab) -> String {
    format!("{}.{SYSCTLS}.json", lab.name)
}

/// The device of a per-interface key (`net.ipv4.conf.enp0s8.arp_ignore`), not `all`/`default`.
fn sysctl_device(key: &str) -> Option<&str> {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", dev, _]
            if !matches!(*dev, "all" | "default") =>
        {
            Some(dev)
        }
        _ => None,
    }
}

/// `lab` with, on each host, the recorded sysctls Lab.toml no longer sets, at their recorded
/// values; and per host the keys so added or dropped (to forget after the next apply).
fn with_restores(mut lab: Lab, record: &SysctlRecord) -> (Lab, BTreeMap<String, BTreeSet<String>>) {
    let mut restores: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &mut lab.hosts {
        let Some(rec) = record.get(&h.name) else {
            continue;
        };
        for (key, value) in rec {
            if h.sysctls.iter().any(|s| s.key == *key) {
                continue;
            }
            restores
                .entry(h.name.clone())
                .or_default()
                .insert(key.clone());
            let gone =
                sysctl_device(key).is_some_and(|dev| !h.interfaces.iter().any(|i| i.name == dev));
            if !gone {
                h.sysctls.push(net::Sysctl::new(key, value));
            }
        }
    }
    (lab, restores)
}

impl Session {
    /// Open the Lab.toml at `path`; its directory holds the lab's `.lab/`.
    ///
    /// ```no_run
    /// let s = lab::Session::open("Lab.toml".as_ref()).unwrap();
    /// println!("{} hosts", s.lab().hosts.len());
    /// ```
    pub fn open(path: &Path) -> Result<Self, Error> {
        let lab = model::load_file(path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Self::new(lab, dir)
    }

    /// A session on `lab` with its state in `dir/.lab`, lab's own providers registered.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// assert_eq!(s.providers(), ["netns"]);
    /// ```
    pub fn new(lab: Lab, dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::with_registry(lab, dir, default_registry())
    }

    /// A session with the providers of `registry` (lab's own and a program's; see
    /// [`default_registry`]). Every host's provider must be registered. After
    /// `up` with [`Session::set_provider`], the lab's hosts stay on that provider.
    ///
    /// ```
    /// let mut registry = lab::default_registry();
    /// // registry.register(Box::new(MyProvider)); // a program's own (examples/custom_provider.rs)
    /// let dir = tempfile::tempdir().unwrap();
    /// let lab = lab::Preset::Builtin.load().unwrap();
    /// let s = lab::Session::with_registry(lab, dir.path(), registry).unwrap();
    /// assert_eq!(s.registry().names().len(), 5);
    /// ```
    pub fn with_registry(
        lab: Lab,
        dir: impl Into<PathBuf>,
        registry: Registry,
    ) -> Result<Self, Error> {
        let state = StateDir::new(dir);
        let recorded: Option<String> = state.read(&override_name(&lab));
        let lab = match recorded.and_then(|p| Provider::new(&p).ok()) {
            Some(p) => lab.with_provider(&p),
            None => lab,
        };
        let lab = placed(&lab, &registry);
        for h in &lab.hosts {
            registry.for_host(h)?;
        }
        let record: SysctlRecord = state.read(&sysctls_name(&lab));
        let (lab, restores) = with_restores(lab, &record);
        Ok(Self {
            lab,
            restores,
            state,
            registry,
            progress: Mutex::new(None),
        })
    }

    /// Every host on `provider` (`lab up --provider virtualbox`); remembered by `up` so that
    /// later sessions on this directory see the same, until `destroy`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// s.set_provider("qemu").unwrap();
    /// assert_eq!(s.providers(), ["qemu"]);
    /// let e = s.set_provider("docker").unwrap_err();
    /// assert!(e.to_string().contains("provider \"docker\", which is not registered"));
    /// ```
    pub fn set_provider(&mut self, provider: &str) -> Result<(), Error> {
        let p = Provider::new(provider)
            .map_err(|why| provider::Error::unsupported(provider, "be used", &why))?;
        let lab = placed(&self.lab.with_provider(&p), &self.registry);
        for h in &lab.hosts {
            self.registry.for_host(h)?;
        }
        self.lab = lab;
        Ok(())
    }

    /// Where progress goes (the CLI draws it; a program may log it).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// s.on_progress(|p| eprintln!("{}: {:?}", p.source, p.event));
    /// ```
    pub fn on_progress(&mut self, f: impl FnMut(&Progress) + Send + 'static) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    pub(crate) fn emit(&self, source: &str, event: Event) {
        tracing::info!(source, ?event, "progress");
        if let Some(f) = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            f(&Progress {
                source: source.to_string(),
                event,
            });
        }
    }

    /// The lab (validated, derived, providers resolved).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// assert_eq!(s.lab().hosts.len(), 2);
    /// ```
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The lab's state directory.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// assert_eq!(s.state().path(), dir.path().join(".lab"));
    /// ```
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The providers.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// assert!(s.registry().get("netns").is_some());
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The providers this lab's hosts use, in the order of their first host.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// assert_eq!(s.providers(), ["netns"]);
    /// ```
    pub fn providers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for h in &self.lab.hosts {
            if !v.contains(&h.provider.as_str()) {
                v.push(h.provider.as_str());
            }
        }
        v
    }

    fn each_provider(&self) -> Vec<(&dyn provider::Provider, Ctx<'_>)> {
        self.providers()
            .into_iter()
            .filter_map(|name| {
                let p = self.registry.get(name)?;
                Some((p, Ctx::of(&self.lab, name, &self.state)))
            })
            .collect()
    }

    /// The name this directory's lab was brought up under, when Lab.toml has renamed it
    /// since.
    fn renamed_from(&self) -> Option<String> {
        provider::index::in_dir(self.state.lab_dir())
            .into_iter()
            .map(|e| e.name)
            .find(|n| *n != self.lab.name)
    }

    /// Refuse when another directory's lab of this name is up (see [`Error::NameTaken`]).
    pub(crate) fn name_is_ours(&self) -> Result<(), Error> {
        match provider::index::elsewhere(self.state.lab_dir(), &self.lab.name) {
            Some(other) => Err(Error::NameTaken {
                name: self.lab.name.clone(),
                dir: other.dir,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn lock(&self, command: &str) -> Result<provider::Lock, Error> {
        self.name_is_ours()?;
        Ok(self.state.lock(command, true, &mut |pid, cmd| {
            self.emit(
                "lab",
                Event::Note(format!(
                    "waiting for process {pid} ({cmd}) to finish with this lab"
                )),
            );
        })?)
    }

    /// `host`'s path interface `iface` (not its NAT NIC), or an error listing its path
    /// interfaces.
    pub(crate) fn path_iface(&self, host: &str, iface: &str) -> Result<&model::Interface, Error> {
        let h = self.host(host)?;
        h.path_interfaces()
            .find(|i| i.name == iface)
            .ok_or_else(|| Error::NoInterface {
                host: host.to_string(),
                iface: iface.to_string(),
                known: h
                    .path_interfaces()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub(crate) fn host(&self, name: &str) -> Result<&Host, Error> {
        self.lab.host(name).ok_or_else(|| Error::NoHost {
            lab: self.lab.name.clone(),
            host: name.to_string(),
            known: self
                .lab
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// What `up` would do, per provider, changing nothing.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// let plan = s.plan_up().unwrap();
    /// assert_eq!(plan[0].0, "netns");
    /// assert!(plan[0].1.iter().any(|a| a.what.contains("bridge")));
    /// ```
    pub fn plan_up(&self) -> Result<Vec<(String, Vec<provider::Action>)>, Error> {
        let mut out = Vec::new();
        for (p, ctx) in self.each_provider() {
            out.push((p.name().to_string(), p.plan_up(&ctx)?));
        }
        Ok(out)
    }

    /// What this machine lacks for the lab's providers.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = lab::Session::new(lab::Preset::Builtin.load().unwrap(), dir.path()).unwrap();
    /// for (provider, missing) in s.preflight() {
    ///     for m in missing {
    ///         eprintln!("{provider}: {} (fix: {})", m.what, m.fix);
    ///     }
    /// }
    /// ```
    pub fn preflight(&self) -> Vec<(String, Vec<provider::Missing>)> {
        self.each_provider()
            .into_iter()
            .map(|(p, ctx)| (p.name().to_string(), p.preflight(&ctx)))
            .filter(|(_, m)| !m.is_empty())
            .collect()
    }

    /// Bring every provider's hosts up (adopting what exists), then apply every host's network
    /// plan (unless `opts.apply` is false). Holds the lab's lock; records the lab in this
    /// machine's index.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let up = s.up(&lab::UpOptions::default())?;
    /// for (provider, r) in &up.providers {
    ///     println!("{provider}: {} hosts", r.hosts.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn up(&self, opts: &UpOptions) -> Result<Up, Error> {
        let _lock = self.lock("lab up")?;
        if let Some(old) = self.renamed_from() {
            return Err(Error::Renamed {
                old,
                new: self.lab.name.clone(),
            });
        }
        let mut report = Up {
            lab: self.lab.name.clone(),
            providers: Vec::new(),
            applied: Vec::new(),
        };
        let providers = self.each_provider();
        // A host placed on another machine needs a provider that can put it there.
        for (p, ctx) in &providers {
            if let Some(h) = ctx.hosts.iter().find(|h| h.machine.is_some())
                && !p.capabilities().contains(&provider::Capability::Machines)
            {
                let can: Vec<&str> = self
                    .registry
                    .iter()
                    .filter(|p| p.capabilities().contains(&provider::Capability::Machines))
                    .map(|p| p.name())
                    .collect();
                return Err(provider::Error::unsupported(
                    p.name(),
                    "place hosts on other machines",
                    &format!(
                        "host `{}` names machine `{}`; providers that can place hosts: {}",
                        h.name,
                        h.machine.as_deref().unwrap_or_default(),
                        can.join(", ")
                    ),
                )
                .into());
            }
        }
        // Record the provider override and the lab before anything is created.
        self.remember_override()?;
        provider::index::record(
            self.state.lab_dir(),
            &self.lab.name,
            self.providers().iter().map(ToString::to_string).collect(),
            "up (in progress)",
        )?;
        for (p, ctx) in &providers {
            let name = p.name().to_string();
            self.emit(
                &name,
                Event::Step(format!("{name}: up {} hosts", ctx.hosts.len())),
            );
            let r = p.up(ctx, opts, &mut |e| self.emit(&name, e))?;
            report.providers.push((name, r));
        }
        if opts.apply {
            let done: Vec<String> = report
                .providers
                .iter()
                .flat_map(|(_, r)| r.applied.iter().map(|a| a.host.clone()))
                .collect();
            let mut applied: Vec<provider::Applied> = report
                .providers
                .iter()
                .flat_map(|(_, r)| r.applied.iter().cloned())
                .collect();
            for h in self.lab.hosts.iter().filter(|h| !done.contains(&h.name)) {
                applied.push(self.apply_host(h, &ApplyOptions::default())?);
            }
            applied.sort_by_key(|a| self.lab.hosts.iter().position(|h| h.name == a.host));
            self.remember_sysctls(&applied)?;
            report.applied = applied;
        }
        provider::index::record(
            self.state.lab_dir(),
            &self.lab.name,
            self.providers().iter().map(ToString::to_string).collect(),
            "up",
        )?;
        Ok(report)
    }

    fn remember_override(&self) -> Result<(), Error> {
        let first = self.lab.hosts.first().map(|h| h.provider.clone());
        // Only a lab whose hosts were all put on one provider by `set_provider` differs from
        // its Lab.toml; record that provider so that later sessions see the same hosts.
        if let Some(p) = first
            && self.lab.hosts.iter().all(|h| h.provider == p)
            && p != Provider::DEFAULT
        {
            self.state
                .write(&override_name(&self.lab), &p.to_string())?;
        }
        Ok(())
    }

    /// How `host` is reached.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// match s.access("ue1")? {
    ///     lab::Access::Namespace(ns) => println!("namespace {ns}"),
    ///     lab::Access::Ssh(c) => println!("ssh {}@{}:{}", c.user, c.address, c.port),
    ///     lab::Access::Exec(_) => println!("a program's own command seam"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn access(&self, host: &str) -> Result<Access, Error> {
        let h = self.host(host)?;
        let p = self.registry.for_host(h)?;
        let ctx = Ctx::of(&self.lab, h.provider.as_str(), &self.state);
        Ok(p.access(&ctx, h)?)
    }

    /// A command seam on `host` (a namespace, or one SSH session).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let ue1 = s.exec("ue1")?;
    /// let out = ue1.run(&guest::Command::new(["ip", "-br", "addr"]))?;
    /// print!("{}", out.stdout_lossy());
    /// # Ok(())
    /// # }
    /// ```
    pub fn exec(&self, host: &str) -> Result<Box<dyn Exec>, Error> {
        Ok(match self.access(host)? {
            Access::Namespace(ns) => Box::new(guest::Netns::new(host.to_string(), ns)),
            Access::Ssh(cfg) => Box::new(guest::Ssh::new(cfg)),
            Access::Exec(e) => e,
        })
    }

    fn apply_host(&self, h: &Host, opts: &ApplyOptions) -> Result<provider::Applied, Error> {
        let start = Instant::now();
        let plan = h.net();
        let exec: Box<dyn Exec> = match self.access(&h.name)? {
            Access::Namespace(ns) => {
                let mut host = netns::Host::open(&h.name, &ns)?;
                let done = if opts.dry_run {
                    netns::Applied {
                        changes: net::diff(&plan, &host.observe(&plan)?),
                        replaced_sysctls: Vec::new(),
                    }
                } else {
                    host.converge(&plan)?
                };
                return Ok(provider::Applied {
                    host: h.name.clone(),
                    changes: done.changes,
                    files: Vec::new(),
                    warnings: Vec::new(),
                    elapsed_us: start.elapsed().as_micros(),
                    replaced_sysctls: done.replaced_sysctls,
                });
            }
            Access::Ssh(cfg) => Box::new(guest::Ssh::new(cfg)),
            Access::Exec(e) => e,
        };
        let persist = opts.persist.as_ref().map(|root| remote::Persist {
            root: root.clone(),
            netplan_apply: true,
        });
        let mut a = remote::apply(exec.as_ref(), &plan, opts.dry_run, persist.as_ref()).map_err(
            |source| Error::Remote {
                host: h.name.clone(),
                source,
            },
        )?;
        a.host = h.name.clone();
        a.elapsed_us = start.elapsed().as_micros();
        Ok(a)
    }

    /// Converge the hosts (all, or one) on their plans: read the live state, change only the
    /// difference, whichever way each host is reached. Hosts are converged in parallel.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let dry = lab::ApplyOptions { dry_run: true, ..Default::default() };
    /// for a in s.apply(None, &dry)? {
    ///     println!("{}: {} changes pending", a.host, a.changes.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply(
        &self,
        host: Option<&str>,
        opts: &ApplyOptions,
    ) -> Result<Vec<provider::Applied>, Error> {
        if let Some(h) = host {
            self.host(h)?;
        }
        let _lock = if opts.dry_run {
            None
        } else {
            Some(self.lock("lab net apply")?)
        };
        let hosts: Vec<&Host> = self
            .lab
            .hosts
            .iter()
            .filter(|h| host.is_none_or(|n| n == h.name))
            .collect();
        let applied: Vec<provider::Applied> =
            provider::vm::each_in_parallel(&hosts, |h| self.apply_host(h, opts))
                .into_iter()
                .collect::<Result<_, _>>()?;
        if !opts.dry_run {
            self.remember_sysctls(&applied)?;
        }
        Ok(applied)
    }

    /// Updates [`SYSCTLS`] after hosts were applied: the first value lab replaced for each key
    /// Lab.toml sets is kept; the keys put back (or dropped) by this apply are forgotten.
    fn remember_sysctls(&self, applied: &[provider::Applied]) -> Result<(), Error> {
        let name = sysctls_name(&self.lab);
        let mut record: SysctlRecord = self.state.read(&name);
        let before = record.clone();
        for a in applied {
            let restored = self.restores.get(&a.host);
            let rec = record.entry(a.host.clone()).or_default();
            if let Some(keys) = restored {
                rec.retain(|k, _| !keys.contains(k));
            }
            for (k, old) in &a.replaced_sysctls {
                if !restored.is_some_and(|r| r.contains(k)) {
                    rec.entry(k.clone()).or_insert_with(|| old.clone());
                }
            }
        }
        record.retain(|_, rec| !rec.is_empty());
        if record == before {
            return Ok(());
        }
        if record.is_empty() {
            self.state.remove(&name)?;
        } else {
            self.state.write(&name, &record)?;
        }
        Ok(())
    }

    /// Every host as its provider sees it, with the network of the hosts that are up.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let st = s.status()?;
    /// for h in &st.hosts {
    ///     println!("{}: {} ({})", h.name, h.machine.state, h.machine.provider);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> Result<Status, Error> {
        let mut states: Vec<provider::HostState> = Vec::new();
        for (p, ctx) in self.each_provider() {
            states.extend(p.status(&ctx)?);
        }
        let mut hosts = Vec::new();
        for h in &self.lab.hosts {
            let machine = states
                .iter()
                .find(|s| s.host == h.name)
                .cloned()
                .unwrap_or_else(|| {
                    provider::HostState::new(&h.name, h.provider.as_str(), "unknown")
                });
            let mut hs = HostStatus {
                name: h.name.clone(),
                machine,
                interfaces: Vec::new(),
                endpoints: Vec::new(),
                limits: None,
                pending_changes: None,
                network_error: None,
            };
            if hs.machine.is_up() {
                match self.observe_against(h) {
                    Ok((plan, observed)) => {
                        hs.pending_changes = Some(net::diff(&plan, &observed).len());
                        hs.interfaces = observed
                            .links
                            .iter()
                            .filter(|l| l.name != "lo")
                            .map(|l| IfaceStatus {
                                name: l.name.clone(),
                                up: l.up,
                                mtu: l.mtu,
                                mac: l.mac.clone(),
                                addresses: observed
                                    .addresses
                                    .iter()
                                    .filter(|a| a.dev == l.name)
                                    .map(|a| a.address.to_string())
                                    .collect(),
                                qdisc: observed.qdiscs.iter().find(|q| q.dev == l.name).map(|q| {
                                    match q.rate_bps {
                                        Some(r) => {
                                            format!("{} {}", q.kind, net::plan::format_rate(r))
                                        }
                                        None => q.kind.clone(),
                                    }
                                }),
                            })
                            .collect();
                        hs.endpoints = observed.endpoints;
                        hs.limits = Some(observed.limits);
                    }
                    Err(e) => hs.network_error = Some(e.to_string()),
                }
            }
            hosts.push(hs);
        }
        let up = hosts.iter().filter(|h| h.machine.is_up()).count();
        Ok(Status {
            lab: self.lab.name.clone(),
            dir: std::path::absolute(self.state.lab_dir())
                .unwrap_or_else(|_| self.state.lab_dir().to_path_buf()),
            state: if up == 0 {
                "down"
            } else if up == hosts.len() {
                "up"
            } else {
                "partial"
            },
            hosts,
        })
    }

    pub(crate) fn observe(&self, h: &Host) -> Result<net::Observed, Error> {
        Ok(self.observe_against(h)?.1)
    }

    /// The host's plan as its iproute2 can set it ([`remote::settable`]; a namespace is set
    /// by this machine's), and what it has now.
    fn observe_against(&self, h: &Host) -> Result<(net::HostNet, net::Observed), Error> {
        let plan = h.net();
        let remote = |exec: &dyn guest::Exec| -> Result<_, Error> {
            let err = |source| Error::Remote {
                host: h.name.clone(),
                source,
            };
            let (plan, _) = remote::settable(exec, &plan).map_err(err)?;
            let observed = remote::observe(exec, &plan).map_err(err)?;
            Ok((plan, observed))
        };
        match self.access(&h.name)? {
            Access::Namespace(ns) => {
                let observed = netns::Host::open(&h.name, &ns)?.observe(&plan)?;
                Ok((plan, observed))
            }
            Access::Ssh(cfg) => remote(&guest::Ssh::new(cfg)),
            Access::Exec(e) => remote(e.as_ref()),
        }
    }

    /// Run `f` on every provider; what could not be done is an [`Error::Incomplete`] that
    /// carries what was.
    fn on_each<R: Serialize>(
        &self,
        mut report: R,
        mut f: impl FnMut(&dyn provider::Provider, &Ctx<'_>, &mut R) -> Result<(), provider::Error>,
    ) -> Result<R, Error> {
        let mut errors = Vec::new();
        for (p, ctx) in self.each_provider() {
            if let Err(e) = f(p, &ctx, &mut report) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(Error::Incomplete {
                done: Box::new(serde_json::to_value(&report).unwrap_or_default()),
                errors,
            })
        }
    }

    /// Shut every provider's hosts down (a provider without a power state says so).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let h = s.halt(std::time::Duration::from_secs(60))?;
    /// println!("{:?}", h.halted);
    /// # Ok(())
    /// # }
    /// ```
    pub fn halt(&self, grace: Duration) -> Result<Halted, Error> {
        let _lock = self.lock("lab halt")?;
        let r = self.on_each(
            Halted {
                lab: self.lab.name.clone(),
                halted: Vec::new(),
            },
            |p, ctx, r| {
                let name = p.name().to_string();
                let done = p.halt(ctx, grace, &mut |e| self.emit(&name, e))?;
                r.halted.push((name, done));
                Ok(())
            },
        )?;
        provider::index::record(
            self.state.lab_dir(),
            &self.lab.name,
            self.providers().iter().map(ToString::to_string).collect(),
            "halted",
        )?;
        Ok(r)
    }

    /// Remove everything every provider made for the lab (also after an interrupted `up`),
    /// and the lab from this machine's index.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// for (provider, removed) in s.destroy()?.removed {
    ///     println!("{provider}: removed {}", removed.join(", "));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn destroy(&self) -> Result<Destroyed, Error> {
        let _lock = self.lock("lab destroy")?;
        let r = self.on_each(
            Destroyed {
                lab: self.lab.name.clone(),
                removed: Vec::new(),
            },
            |p, ctx, r| {
                let name = p.name().to_string();
                let done = p.destroy(ctx, &mut |e| self.emit(&name, e))?;
                r.removed.push((name, done));
                Ok(())
            },
        );
        let mut r = r;
        if let Ok(done) = &mut r {
            self.state.remove(&override_name(&self.lab))?;
            self.state.remove(&sysctls_name(&self.lab))?;
            provider::index::forget(self.state.lab_dir(), &self.lab.name)?;
            // What this directory brought up under an earlier name goes too: found by its
            // recorded name and providers.
            for old in provider::index::in_dir(self.state.lab_dir()) {
                let mut old_lab = self.lab.clone();
                old_lab.name = old.name.clone();
                for name in &old.providers {
                    let Some(p) = self.registry.get(name) else {
                        continue;
                    };
                    let ctx = Ctx::of(&old_lab, name, &self.state);
                    let removed = p.destroy(&ctx, &mut |e| self.emit(name, e))?;
                    done.removed
                        .push((format!("{name} (as `{}`)", old.name), removed));
                }
                provider::index::forget(self.state.lab_dir(), &old.name)?;
            }
        }
        r
    }

    /// Save or restore a snapshot of every host (providers with the snapshots capability).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let op = lab::provider::SnapshotOp::Save("before-test".into());
    /// s.snapshot(&op, std::time::Duration::from_secs(300))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot(&self, op: &SnapshotOp, boot_timeout: Duration) -> Result<Snapshot, Error> {
        let _lock = self.lock("lab snapshot")?;
        let (name, restored) = match op {
            SnapshotOp::Save(n) => (n.clone(), false),
            SnapshotOp::Restore(n) => (n.clone(), true),
        };
        self.on_each(
            Snapshot {
                lab: self.lab.name.clone(),
                name,
                restored,
                machines: Vec::new(),
            },
            |p, ctx, r| {
                let pname = p.name().to_string();
                let done = p.snapshot(ctx, op, boot_timeout, &mut |e| self.emit(&pname, e))?;
                r.machines.push((pname, done));
                Ok(())
            },
        )
    }

    /// Take an interface of a host down, or bring it up and restore what the kernel dropped
    /// with it (its table's routes) by converging the host.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// s.set_link("ue1", "enp0s9", false)?; // the path through enp0s9 fails
    /// let restored = s.set_link("ue1", "enp0s9", true)?; // and comes back with its routes
    /// println!("{} changes", restored.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_link(&self, host: &str, iface: &str, up: bool) -> Result<Vec<net::Change>, Error> {
        let h = self.host(host)?;
        self.path_iface(host, iface)?;
        let _lock = self.lock("lab link")?;
        match self.access(host)? {
            Access::Namespace(ns) => {
                let mut n = netns::Host::open(host, &ns)?;
                n.set_link(iface, up)?;
                Ok(if up {
                    n.converge(&h.net())?.changes
                } else {
                    Vec::new()
                })
            }
            _ => {
                let exec = self.exec(host)?;
                exec.check(&guest::Command::new(net::plan::link_state_argv(iface, up)))?;
                if up {
                    Ok(remote::apply(exec.as_ref(), &h.net(), false, None)
                        .map_err(|source| Error::Remote {
                            host: host.to_string(),
                            source,
                        })?
                        .changes)
                } else {
                    Ok(Vec::new())
                }
            }
        }
    }

    /// MPTCP traffic from the lab's client to its server, measured and judged. Namespace
    /// hosts are entered directly; others through two command seams each (one runs the
    /// traffic, the other reads counters meanwhile).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let r = s.test(&lab::TestOptions { seconds: 5, ..Default::default() })?;
    /// println!("{} subflows, {:.0} Mbit/s", r.report.subflows_mib, r.report.goodput_bps / 1e6);
    /// assert!(r.verdict.pass);
    /// # Ok(())
    /// # }
    /// ```
    pub fn test(&self, opts: &TestOptions) -> Result<TestResult, Error> {
        self.name_is_ours()?;
        let (server, client) = crate::expect::pair(&self.lab).ok_or(TestError::NoPair)?;
        let mut opts = opts.clone();
        // The lab's own time line (`[test] events`) with the caller's.
        opts.events.extend(self.lab.events.iter().cloned());
        let mut namespaces = Vec::new();
        let mut sessions: Vec<Box<dyn Exec>> = Vec::new();
        let mut remote_hosts = false;
        for h in [server, client] {
            match self.access(&h.name)? {
                Access::Namespace(ns) => namespaces.push(netns::Namespace::open(&ns)?),
                _ => {
                    remote_hosts = true;
                    sessions.push(self.exec(&h.name)?);
                    sessions.push(self.exec(&h.name)?);
                }
            }
        }
        // The built-in sender needs both ends on this machine; elsewhere iperf3 runs.
        if remote_hosts && opts.tool == measure::Tool::Builtin && opts.tool_auto {
            opts.tool = measure::Tool::Iperf3;
        }
        let mut ns_iter = namespaces.iter();
        let mut ex_iter = sessions.iter();
        let mut place = |h: &Host| -> Result<measure::Place<'_>, Error> {
            Ok(match self.access(&h.name)? {
                Access::Namespace(_) => {
                    measure::Place::Netns(ns_iter.next().expect("opened above"))
                }
                _ => {
                    let run = ex_iter.next().expect("opened above").as_ref();
                    let sample = ex_iter.next().expect("opened above").as_ref();
                    measure::Place::Remote { run, sample }
                }
            })
        };
        let (sp, cp) = (place(server)?, place(client)?);
        // The capture starts before the first SYN and ends after the transfer, also a failed one.
        let capture = match &opts.capture {
            Some(file) => {
                let targets = [server, client].map(|h| crate::capture::Target {
                    host: h.name.clone(),
                    iface: None,
                });
                Some(self.start_capture(&targets, file)?)
            }
            None => None,
        };
        // The path managers' events, on both hosts; a host where `ip mptcp monitor` cannot
        // start is named in the report's events, not a failed test.
        let mut monitors = Vec::new();
        let mut monitor_notes = Vec::new();
        for h in [server, client] {
            let started = match self.access(&h.name)? {
                Access::Namespace(ns) => capture::monitor::start_local(&ns, &h.name),
                Access::Ssh(_) | Access::Exec(_) => {
                    capture::monitor::start_remote(self.exec(&h.name)?, &h.name)
                }
            };
            match started {
                Ok(m) => monitors.push(m),
                Err(e) => monitor_notes.push(format!("ip mptcp monitor on {}: {e}", h.name)),
            }
        }
        let result = crate::traffic::test_with(&self.lab, &opts, sp, cp);
        let mut pm_events = Vec::new();
        for m in monitors {
            match m.stop() {
                Ok(ev) => pm_events.extend(ev),
                Err(e) => monitor_notes.push(format!("ip mptcp monitor: {e}")),
            }
        }
        pm_events.sort_by_key(|e| e.ts_ns);
        let captured = capture.map(crate::capture::Running::finish).transpose();
        let mut r = result?;
        r.monitor = pm_events;
        r.report.events.extend(monitor_notes);
        r.capture = captured?;
        // The packet-level view against the counters.
        let mut decoded = None;
        if let Some(c) = &mut r.capture
            && let Ok(bytes) = std::fs::read(&c.file)
            && let Ok(cap) = decode::read(&bytes)
        {
            let d = crate::capture::Decoded::new(cap);
            c.paths = crate::capture::cross_check(c, &d, &r.report.interfaces);
            decoded = Some(d);
        }
        if let Some(d) = &decoded {
            let counters = crate::capture::counter_checks(d, &r);
            if let Some(c) = &mut r.capture {
                c.counters = counters;
            }
        }
        // The run's directory: its files, with what the hosts were running.
        let run_dir = opts.run_dir.clone().or_else(|| {
            opts.capture
                .as_ref()
                .and_then(|f| f.parent().map(Path::to_path_buf))
        });
        if let Some(dir) = run_dir {
            let metadata = self.run_metadata(&[server, client], &opts);
            let files = crate::capture::write_run(&dir, &r, decoded.as_ref(), &metadata)?;
            r.run = Some(crate::capture::RunFiles { dir, files });
        }
        // Kept for `lab check`, which judges the declared checks against the last test.
        self.state
            .write(&crate::checks::last_test_name(&self.lab), &r)?;
        Ok(r)
    }

    /// What a run records of its hosts beside its result: each host's kernel, `net.mptcp.*`
    /// sysctls, MPTCP endpoints and limits, qdiscs and iperf3 version, read on the host (a
    /// command that fails is recorded with its error), lab's version, and the lab as resolved.
    fn run_metadata(&self, hosts: &[&Host], opts: &TestOptions) -> serde_json::Value {
        let mut per_host = serde_json::Map::new();
        for h in hosts {
            let mut m = serde_json::Map::new();
            match self.exec(&h.name) {
                Ok(ex) => {
                    let mut read = |key: &str, argv: &[&str]| {
                        let v = match ex.run(&guest::Command::new(argv.to_vec())) {
                            Ok(o) if o.success() && key == "sysctls" => {
                                // `./name:value` lines: an object of net.mptcp.NAME -> value.
                                let map: serde_json::Map<String, serde_json::Value> = o
                                    .stdout_lossy()
                                    .lines()
                                    .filter_map(|l| l.strip_prefix("./")?.split_once(':'))
                                    .map(|(k, v)| {
                                        (
                                            format!("net.mptcp.{k}"),
                                            serde_json::Value::String(v.into()),
                                        )
                                    })
                                    .collect();
                                serde_json::Value::Object(map)
                            }
                            Ok(o) if o.success() => {
                                let text = o.stdout_lossy().trim().to_string();
                                serde_json::from_str(&text)
                                    .unwrap_or(serde_json::Value::String(text))
                            }
                            Ok(o) => serde_json::json!({ "error": o.stderr_lossy().trim() }),
                            Err(e) => serde_json::json!({ "error": e.to_string() }),
                        };
                        m.insert(key.to_string(), v);
                    };
                    read("kernel", &["uname", "-r"]);
                    read(
                        "sysctls",
                        &["sh", "-c", "cd /proc/sys/net/mptcp && grep -r . ."],
                    );
                    read("endpoints", &["ip", "-json", "mptcp", "endpoint", "show"]);
                    read("limits", &["ip", "mptcp", "limits", "show"]);
                    read("qdiscs", &["tc", "-json", "qdisc", "show"]);
                    if opts.tool == measure::Tool::Iperf3 {
                        read("iperf3", &["iperf3", "--version"]);
                    }
                }
                Err(e) => {
                    m.insert("error".into(), serde_json::Value::String(e.to_string()));
                }
            }
            per_host.insert(h.name.clone(), serde_json::Value::Object(m));
        }
        serde_json::json!({
            "lab_version": env!("CARGO_PKG_VERSION"),
            "congestion": opts.congestion,
            "hosts": per_host,
            "lab": self.lab,
        })
    }

    /// Install (or check, with `check_only`) the guide's tools on the hosts reached over SSH
    /// (all, or one).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// for p in s.provision(None, true)? {
    ///     println!("{}: missing {:?}", p.host, p.missing);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn provision(
        &self,
        host: Option<&str>,
        check_only: bool,
    ) -> Result<Vec<crate::provision::Provisioned>, Error> {
        if let Some(h) = host {
            self.host(h)?;
        }
        let mut out = Vec::new();
        for h in self
            .lab
            .hosts
            .iter()
            .filter(|h| host.is_none_or(|n| n == h.name))
        {
            let exec = match self.access(&h.name)? {
                Access::Namespace(_) if host.is_none() => continue,
                Access::Namespace(_) => {
                    return Err(Error::NoSsh {
                        host: h.name.clone(),
                    });
                }
                Access::Ssh(cfg) => Box::new(guest::Ssh::new(cfg)) as Box<dyn Exec>,
                Access::Exec(e) => e,
            };
            out.push(crate::provision::provision(exec.as_ref(), check_only)?);
        }
        Ok(out)
    }

    /// Install kernel packages on a host reached over SSH: upload, dpkg, GRUB default by
    /// release, reboot, wait, verify (see `kernel::install`).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let debs = ["linux-image-6.1.158-mptcp_1_amd64.deb".into()];
    /// let done = s.install_kernel("ue1", &debs, "6.1.158-mptcp", false)?;
    /// println!("running {} after {:.0} s", done.release, done.boot_seconds);
    /// # Ok(())
    /// # }
    /// ```
    pub fn install_kernel(
        &self,
        host: &str,
        packages: &[PathBuf],
        release: &str,
        trial: bool,
    ) -> Result<kernel::install::Installed, Error> {
        let _lock = self.lock("lab kernel install")?;
        let cfg = match self.access(host)? {
            Access::Ssh(cfg) => cfg,
            _ => {
                return Err(Error::NoSsh {
                    host: host.to_string(),
                });
            }
        };
        let ssh = guest::Ssh::new(cfg);
        Ok(kernel::install::install(
            &ssh,
            packages,
            release,
            trial,
            &mut || ssh.wait_reachable(Duration::from_secs(600)),
        )?)
    }

    /// An OpenSSH client configuration block per host reached over SSH (like
    /// `vagrant ssh-config`), using the lab's known_hosts strictly.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// std::fs::write("ssh_config", s.openssh_config()?).unwrap(); // ssh -F ssh_config ue1
    /// # Ok(())
    /// # }
    /// ```
    pub fn openssh_config(&self) -> Result<String, Error> {
        let mut out = String::new();
        for h in &self.lab.hosts {
            match self.access(&h.name)? {
                Access::Ssh(c) => {
                    out.push_str(&format!("Host {}\n", h.name));
                    out.push_str(&format!("  HostName {}\n", c.address));
                    for (k, v) in c.openssh_options() {
                        out.push_str(&format!("  {k} {v}\n"));
                    }
                    out.push('\n');
                }
                Access::Namespace(ns) => out.push_str(&format!(
                    "# {}: a network namespace ({ns}), reached with `lab exec {} -- CMD`\n\n",
                    h.name, h.name
                )),
                Access::Exec(_) => out.push_str(&format!(
                    "# {}: reached through its provider's command seam (`lab exec {} -- CMD`)\n\n",
                    h.name, h.name
                )),
            }
        }
        Ok(out)
    }

    /// The lab's SSH-reachable hosts as an Ansible inventory ([`crate::inventory`]); hosts that
    /// are namespaces are left out, with why. None at all is an error
    /// ([`Error::NoSshHosts`]).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// std::fs::write("inventory.ini", s.inventory()?.ini()).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn inventory(&self) -> Result<crate::inventory::Inventory, Error> {
        let mut inv = crate::inventory::Inventory {
            lab: self.lab.name.clone(),
            hosts: Vec::new(),
            skipped: Vec::new(),
        };
        for h in &self.lab.hosts {
            match self.access(&h.name)? {
                Access::Ssh(c) => inv.hosts.push(crate::inventory::InventoryHost {
                    name: h.name.clone(),
                    role: h.role.as_str().to_string(),
                    provider: h.provider.as_str().to_string(),
                    address: c.address.clone(),
                    port: c.port,
                    user: c.user.clone(),
                    key: match &c.auth {
                        guest::Auth::Key(k) => Some(k.clone()),
                        guest::Auth::Agent => None,
                    },
                    known_hosts: c.known_hosts.clone(),
                    sudo: c.sudo,
                    options: c
                        .openssh_options()
                        .into_iter()
                        .filter(|(k, _)| k == "HostKeyAlias" || k == "ProxyCommand")
                        .collect(),
                }),
                Access::Namespace(ns) => inv.skipped.push((
                    h.name.clone(),
                    format!(
                        "a network namespace ({ns}) without SSH; `lab exec {} -- CMD`",
                        h.name
                    ),
                )),
                Access::Exec(_) => inv.skipped.push((
                    h.name.clone(),
                    format!(
                        "reached through its provider's command seam (`lab exec {} -- CMD`)",
                        h.name
                    ),
                )),
            }
        }
        if inv.hosts.is_empty() {
            return Err(Error::NoSshHosts {
                lab: self.lab.name.clone(),
                skipped: inv
                    .skipped
                    .iter()
                    .map(|(h, why)| format!("{h}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok(inv)
    }

    /// The `ssh` argv that opens an interactive session on a host (what `lab ssh` runs).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let argv = s.interactive_argv("ue1", &[])?;
    /// std::process::Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn interactive_argv(&self, host: &str, extra: &[String]) -> Result<Vec<String>, Error> {
        let c = match self.access(host)? {
            Access::Ssh(c) => c,
            _ => {
                return Err(Error::NoSsh {
                    host: host.to_string(),
                });
            }
        };
        let mut v: Vec<String> = vec!["ssh".into()];
        for (k, val) in c.openssh_options() {
            v.push("-o".into());
            v.push(format!("{k}={val}"));
        }
        v.push(c.address.clone());
        if !extra.is_empty() {
            v.push("--".into());
            v.extend(extra.iter().cloned());
        }
        Ok(v)
    }
}

/// What [`demo`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Demo {
    /// What `up` did.
    pub up: Up,
    /// The test and its verdict.
    pub test: TestResult,
    /// What `destroy` removed.
    pub destroyed: Destroyed,
}

/// The whole job on this machine: `preset` up on namespaces with every link shaped to
/// `rate`, applied, tested with the demo's stricter promise (every NIC at least a quarter of
/// its fair share, goodput at least 0.90 of the links' rate), and destroyed again, also when a
/// step fails. The lab is `demo` (or `demo-guide`) in `dir`: a demo interrupted by Ctrl-C is
/// cleaned up by the next one.
///
/// ```no_run
/// let dir = tempfile::tempdir().unwrap();
/// let opts = lab::TestOptions { seconds: 5, ..Default::default() };
/// let d = lab::demo(lab::Preset::Builtin, "50mbit", &opts, dir.path(), |_| {}).unwrap();
/// println!("verdict: {}", if d.test.verdict.pass { "PASS" } else { "FAIL" });
/// ```
pub fn demo(
    preset: Preset,
    rate: &str,
    opts: &TestOptions,
    dir: &Path,
    progress: impl FnMut(&Progress) + Send + 'static,
) -> Result<Demo, Error> {
    let opts = TestOptions {
        min_share: 0.25,
        min_efficiency: Some(0.90),
        ..opts.clone()
    };
    let rate_bps = crate::units::rate_bps(rate).ok_or_else(|| Error::Rate(rate.to_string()))?;
    let mut lab = preset.load()?;
    // Two demos at once each get their own lab (named with this process), so that neither
    // adopts, tests or removes the other's hosts.
    lab.name = match preset {
        Preset::Builtin => format!("demo-{}", std::process::id()),
        Preset::Guide => format!("demo-guide-{}", std::process::id()),
    };
    lab.shape_paths(rate_bps);
    let mut s = Session::new(lab, dir)?;
    s.on_progress(progress);
    let result = (|| -> Result<(Up, TestResult), Error> {
        let up = s.up(&UpOptions::default())?;
        s.emit(
            "lab",
            Event::Step(format!("test: {} s of MPTCP traffic...", opts.seconds)),
        );
        let t = s.test(&opts)?;
        Ok((up, t))
    })();
    let destroyed = s.destroy();
    let (up, test) = result?;
    Ok(Demo {
        up,
        test,
        destroyed: destroyed?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts that name no machine are spread over `[machines]` when their provider has the
    /// `Machines` capability (netns, libvirt), and come back to this machine when the lab is put on a
    /// provider without it; a host that names its machine keeps it.
    #[test]
    fn placement_follows_the_providers_capability() {
        let text = crate::Preset::Builtin.source().replacen(
            "[hosts.ue1]\n",
            "[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
             [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n[hosts.ue1]\n",
            1,
        );
        let dir = tempfile::tempdir().unwrap();
        let lab = model::parse("Lab.toml", &text).unwrap();
        let mut s = Session::new(lab, dir.path()).unwrap();
        let on = |s: &Session| -> Vec<Option<String>> {
            s.lab().hosts.iter().map(|h| h.machine.clone()).collect()
        };
        assert_eq!(on(&s), [Some("m1".into()), Some("m2".into())]);
        s.set_provider("qemu").unwrap();
        assert_eq!(on(&s), [None, None]);
        s.set_provider("libvirt").unwrap();
        assert_eq!(on(&s), [Some("m1".into()), Some("m2".into())]);
        s.set_provider("netns").unwrap();
        assert_eq!(on(&s), [Some("m1".into()), Some("m2".into())]);
    }

    #[test]
    fn recorded_sysctls_come_back_unless_lab_toml_sets_them_or_their_interface_left() {
        let lab = crate::Preset::Builtin.load().unwrap();
        let h = lab.hosts[0].name.clone();
        let dev = lab.hosts[0].interfaces.last().unwrap().name.clone();
        let record: SysctlRecord = [(
            h.clone(),
            [
                ("net.ipv4.tcp_ecn".to_string(), "2".to_string()),
                ("net.mptcp.enabled".to_string(), "0".to_string()),
                (format!("net.ipv4.conf.{dev}.arp_ignore"), "0".to_string()),
                (
                    "net.ipv4.conf.gone0.arp_ignore".to_string(),
                    "0".to_string(),
                ),
            ]
            .into_iter()
            .collect(),
        )]
        .into_iter()
        .collect();
        let before = lab.hosts[0].sysctls.clone();
        let (lab, restores) = with_restores(lab, &record);
        let after = &lab.hosts[0].sysctls;
        // tcp_ecn is put back; mptcp.enabled and the interface's arp_ignore are Lab.toml's
        // (derived); gone0 left the lab: forgotten, not written.
        assert_eq!(after.len(), before.len() + 1, "{after:?}");
        assert!(
            after
                .iter()
                .any(|s| s.key == "net.ipv4.tcp_ecn" && s.value == "2")
        );
        assert!(!after.iter().any(|s| s.key.contains("gone0")));
        assert_eq!(
            restores[&h].iter().cloned().collect::<Vec<_>>(),
            ["net.ipv4.conf.gone0.arp_ignore", "net.ipv4.tcp_ecn"]
        );
        assert_eq!(
            sysctl_device("net.ipv6.conf.enp0s8.disable_ipv6"),
            Some("enp0s8")
        );
        assert_eq!(sysctl_device("net.ipv4.conf.all.rp_filter"), None);
        assert_eq!(sysctl_device("net.mptcp.enabled"), None);
    }
}
