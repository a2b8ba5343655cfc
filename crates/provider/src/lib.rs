#![warn(missing_docs)]
//! The provider interface: what lab asks of whatever makes a lab's hosts.
//!
//! A provider makes and runs the hosts of a lab that name it (`provider = "qemu"` in Lab.toml):
//! network namespaces on this machine, QEMU or VirtualBox VMs, existing machines over SSH, or
//! one a program brings itself and [registers](Registry::register). It works per lab, not per
//! machine, because a provider's hosts share segments (a bridge namespace, a vde switch, an
//! internal network), so every operation gets all the lab's hosts of that provider at once in
//! a [`Ctx`].
//!
//! After Vagrant's provider plugins: [`Provider::preflight`] is `usable?` (what is missing, with
//! the fix), [`Provider::status`] is `state`, [`Provider::access`] is `ssh_info` (the only way
//! the rest of lab reaches a host: a namespace, an SSH configuration, or a command seam), and
//! optional features are [`Capability`]s. An operation a provider cannot do is
//! [`Error::Unsupported`], naming the provider and the operation: never a silent success.
//!
//! Plan, then apply: [`Provider::plan_up`] returns the actions `up` would take as values, so
//! `lab up --dry-run` works for every provider.
//!
//! [`StateDir`] owns a lab's `.lab/` (per-provider state written atomically, the lab's key and
//! known_hosts, the lock that keeps two commands from changing a lab at once); [`index`] is
//! this machine's list of labs; [`cache_dir`] the one place for image and kernel caches.
//!
//! ```
//! use provider::{Capability, Ctx, Error, HostState, Provider, Registry};
//!
//! /// A provider whose hosts are always there (e.g. a program's own containers).
//! #[derive(Debug)]
//! struct Always;
//!
//! impl Provider for Always {
//!     fn name(&self) -> &str { "always" }
//!     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
//!         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "always", "running")).collect())
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(Box::new(Always));
//! let p = registry.get("always").unwrap();
//! assert!(!p.capabilities().contains(&Capability::Snapshots));
//! ```

mod error;
pub mod index;
mod machines;
mod registry;
mod state;
pub mod vagrant;
pub mod vm;

use std::time::Duration;

use serde::Serialize;

pub use error::{Error, Missing};
pub use machines::{machine, machine_ssh, tunnel_end};
pub use registry::Registry;
pub use state::{Lock, StateDir, cache_dir};

use model::{Host, Lab};

/// What an operation of a provider works on: the lab, this provider's hosts of it, and the
/// lab's state directory.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// The whole lab (segments and links name hosts of it).
    pub lab: &'a Lab,
    /// The lab's hosts that use this provider, in Lab.toml order.
    pub hosts: Vec<&'a Host>,
    /// The lab's `.lab/`.
    pub state: &'a StateDir,
}

impl<'a> Ctx<'a> {
    /// The hosts of `lab` that name `provider`.
    ///
    /// ```
    /// let lab = model::Preset::Builtin.load().unwrap();
    /// let state = provider::StateDir::new(std::env::temp_dir());
    /// let ctx = provider::Ctx::of(&lab, "netns", &state);
    /// assert_eq!(ctx.hosts.len(), 2);
    /// assert!(provider::Ctx::of(&lab, "qemu", &state).hosts.is_empty());
    /// ```
    pub fn of(lab: &'a Lab, provider: &str, state: &'a StateDir) -> Self {
        Self {
            lab,
            hosts: lab
                .hosts
                .iter()
                .filter(|h| h.provider == provider)
                .collect(),
            state,
        }
    }

    /// One of this provider's hosts by name.
    ///
    /// ```
    /// let lab = model::Preset::Builtin.load().unwrap();
    /// let state = provider::StateDir::new(std::env::temp_dir());
    /// let ctx = provider::Ctx::of(&lab, "netns", &state);
    /// assert!(ctx.host("ue1").is_some() && ctx.host("nope").is_none());
    /// ```
    pub fn host(&self, name: &str) -> Option<&'a Host> {
        self.hosts.iter().copied().find(|h| h.name == name)
    }
}

/// How lab reaches a host to apply its network, measure or run commands.
///
/// ```no_run
/// # fn reach(access: provider::Access) -> Result<(), Box<dyn std::error::Error>> {
/// use guest::Exec as _;
/// let exec: Box<dyn guest::Exec> = match access {
///     provider::Access::Namespace(ns) => Box::new(guest::Netns::new("ue1".to_string(), ns)),
///     provider::Access::Ssh(config) => Box::new(guest::Ssh::new(config)),
///     provider::Access::Exec(e) => e,
/// };
/// exec.check(&guest::Command::new(["uname", "-r"]))?;
/// # Ok(())
/// # }
/// ```
pub enum Access {
    /// A network namespace on this machine, by name (`ip netns` compatible).
    Namespace(String),
    /// An SSH server: lab keeps one session per host.
    Ssh(guest::SshConfig),
    /// Any other command seam the provider opens itself.
    Exec(Box<dyn guest::Exec>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Namespace(ns) => f.debug_tuple("Namespace").field(ns).finish(),
            Access::Ssh(c) => f.debug_tuple("Ssh").field(c).finish(),
            Access::Exec(_) => f.write_str("Exec(..)"),
        }
    }
}

/// Optional features, looked up by name as Vagrant's capabilities are.
///
/// ```
/// use provider::Capability;
/// let caps = [Capability::Lifecycle, Capability::Halt];
/// assert!(!caps.contains(&Capability::Snapshots)); // `lab snapshot` will be refused
/// assert_eq!(serde_json::to_string(&Capability::DryRun).unwrap(), "\"dry-run\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `lab snapshot save|restore|list`.
    Snapshots,
    /// `lab halt` (a power state to leave).
    Halt,
    /// `lab up --dry-run` lists the provider's actions.
    DryRun,
    /// `up` creates the machines (and `destroy` removes them).
    Lifecycle,
    /// Hosts can be placed on other machines (`[machines.NAME]`, `machine = "NAME"`), and
    /// segments joined across them.
    Machines,
}

/// Progress of a provider's operation, for the caller to show (the CLI prints it; a program
/// may log it). Providers also emit `tracing` events.
///
/// ```
/// let mut seen = Vec::new();
/// let mut events = |e: provider::Event| seen.push(e);
/// events(provider::Event::Step("qemu: up 2 hosts".into()));
/// assert!(matches!(&seen[0], provider::Event::Step(s) if s.starts_with("qemu")));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A step begins.
    Step(String),
    /// Worth telling, not a failure.
    Note(String),
    /// An external command the provider runs (VBoxManage, qemu-img, ...), as a shell line.
    Call(String),
    /// Bytes of a download.
    Download {
        /// Bytes received.
        done: u64,
        /// The size, when the server says it.
        total: Option<u64>,
    },
    /// Progress counted in items, e.g. a kernel build's objects compiled (`total`: the
    /// expected count, when known).
    Count {
        /// What is counted.
        what: String,
        /// Done so far.
        done: u64,
        /// The expected total, when known.
        total: Option<u64>,
    },
}

/// Where a provider's progress goes.
pub type Events<'a> = &'a mut dyn FnMut(Event);

/// One action of a provider's plan for `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The host it is for (`None`: the lab's shared resources, such as a segment).
    pub host: Option<String>,
    /// What it does, for people.
    pub what: String,
    /// The command it runs, if it is one.
    pub argv: Option<Vec<String>>,
}

impl Action {
    /// An action described in words.
    ///
    /// ```
    /// let a = provider::Action::note(Some("ue1"), "namespace lab.x.ue1");
    /// assert_eq!((a.host.as_deref(), a.argv), (Some("ue1"), None));
    /// ```
    pub fn note(host: Option<&str>, what: impl Into<String>) -> Self {
        Self {
            host: host.map(str::to_string),
            what: what.into(),
            argv: None,
        }
    }
}

/// What `up` is asked besides the hosts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// How long a VM may take to answer on SSH.
    pub boot_timeout: Duration,
    /// Apply each host's network plan too, if the provider can overlap that with bring-up
    /// (the rest the session applies afterwards).
    pub apply: bool,
    /// `--insecure-skip-signature`: images and kernels a provider downloads are checked against
    /// their sums file's hash only, not its publisher's signature; the provider says so in
    /// every report of such a download.
    pub skip_signatures: bool,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            boot_timeout: Duration::from_secs(600),
            apply: true,
            skip_signatures: false,
        }
    }
}

/// A host after `up`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostUp {
    /// The host's name in Lab.toml.
    pub host: String,
    /// The machine's own name (a namespace, a VM).
    pub machine: String,
    /// Created by this `up` (false: it existed and was adopted).
    pub created: bool,
    /// Where its SSH server answers, `address:port`.
    pub ssh: Option<String>,
    /// Seconds until it answered, when it was booted now.
    pub boot_seconds: Option<f64>,
    /// `uname -r` on it, when known.
    pub kernel: Option<String>,
}

/// A host's network plan applied (by a provider during `up`, or by the session).
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The host's name in Lab.toml.
    pub host: String,
    /// The changes made, in order (none: it had converged).
    pub changes: Vec<net::Change>,
    /// Files written (netplan, rt_tables) when persisting.
    pub files: Vec<String>,
    /// Worth telling, not failures (e.g. mptcpd would fight the endpoints).
    pub warnings: Vec<String>,
    /// Microseconds the apply took.
    pub elapsed_us: u128,
    /// Each sysctl the apply set to a new value, with the value it had before (the session
    /// keeps the first one it sees, to put back when Lab.toml no longer sets the key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced_sysctls: Vec<(String, String)>,
}

/// What a provider's `up` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpReport {
    /// Each of the provider's hosts.
    pub hosts: Vec<HostUp>,
    /// Hosts the provider also applied (namespaces overlap apply with bring-up).
    pub applied: Vec<Applied>,
    /// Milliseconds the provider took.
    pub elapsed_ms: f64,
}

/// A host as its provider sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostState {
    /// The host's name in Lab.toml.
    pub host: String,
    /// The provider that made it.
    pub provider: String,
    /// `running`, `stopped`, `not created`, `reachable`, `unreachable`, `present`, ...
    pub state: String,
    /// The machine's name (namespace, VM).
    pub machine: Option<String>,
    /// Where its SSH server answers.
    pub ssh: Option<String>,
    /// Its running kernel, when the provider reads it.
    pub kernel: Option<String>,
    /// Why, when the state is a failure (unreachable: the error).
    pub detail: Option<String>,
}

impl HostState {
    /// A host in `state`, nothing else known.
    ///
    /// ```
    /// let s = provider::HostState::new("ue1", "ssh", "unreachable");
    /// assert!(!s.is_up());
    /// ```
    pub fn new(host: &str, provider: &str, state: &str) -> Self {
        Self {
            host: host.to_string(),
            provider: provider.to_string(),
            state: state.to_string(),
            machine: None,
            ssh: None,
            kernel: None,
            detail: None,
        }
    }

    /// A VM named `machine` in `state`, its SSH server forwarded to the loopback `ssh_port`
    /// (none: the provider has no record of it).
    ///
    /// ```
    /// let s = provider::HostState::vm("ue1", "qemu", "running", "lab-x-ue1", Some(2222));
    /// assert_eq!(s.ssh.as_deref(), Some("127.0.0.1:2222"));
    /// assert!(s.is_up());
    /// ```
    pub fn vm(
        host: &str,
        provider: &str,
        state: &str,
        machine: impl Into<String>,
        ssh_port: Option<u16>,
    ) -> Self {
        Self {
            machine: Some(machine.into()),
            ssh: ssh_port.map(|p| format!("127.0.0.1:{p}")),
            ..Self::new(host, provider, state)
        }
    }

    /// Whether lab can reach it now.
    ///
    /// ```
    /// assert!(provider::HostState::new("ue1", "qemu", "running").is_up());
    /// assert!(!provider::HostState::new("ue1", "qemu", "stopped").is_up());
    /// ```
    pub fn is_up(&self) -> bool {
        matches!(self.state.as_str(), "running" | "present" | "reachable")
    }
}

/// A snapshot operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotOp {
    /// Save the hosts' state under a name (replacing one of that name).
    Save(String),
    /// Go back to the state saved under a name.
    Restore(String),
}

/// A provider of hosts. Only [`name`](Provider::name) and [`status`](Provider::status) are
/// required; every other operation says it is unsupported unless the provider does it.
///
/// A provider for machines a program already manages, reached over SSH (see
/// crates/lab/examples/custom_provider.rs for one registered with a session):
///
/// ```
/// use provider::{Access, Capability, Ctx, Error, HostState, Provider};
///
/// #[derive(Debug)]
/// struct Rack;
///
/// impl Provider for Rack {
///     fn name(&self) -> &str {
///         "rack"
///     }
///     fn capabilities(&self) -> Vec<Capability> {
///         Vec::new() // no lifecycle: up, halt, destroy and snapshot are refused
///     }
///     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
///         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
///     }
///     fn access(&self, ctx: &Ctx<'_>, host: &model::Host) -> Result<Access, Error> {
///         let key = ctx.state.file("id_ed25519");
///         let auth = guest::Auth::Key(key);
///         let address = format!("{}.rack.example", host.name);
///         Ok(Access::Ssh(guest::SshConfig::new(
///             &host.name, &address, 22, "root", auth, ctx.state.known_hosts(),
///         )))
///     }
/// }
///
/// let mut registry = provider::Registry::new();
/// registry.register(Box::new(Rack));
/// assert_eq!(registry.names(), ["rack"]);
/// ```
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The name hosts use in Lab.toml (`provider = "NAME"`).
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// assert_eq!(Rack.name(), "rack");
    /// ```
    fn name(&self) -> &str;

    /// One line for `lab providers` and messages.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// assert_eq!(Rack.describe(), "rack"); // the name, unless the provider says more
    /// ```
    fn describe(&self) -> &str {
        self.name()
    }

    /// Optional features.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// assert!(Rack.capabilities().is_empty());
    /// ```
    fn capabilities(&self) -> Vec<Capability> {
        Vec::new()
    }

    /// What this machine lacks to run the hosts (a tool, root, a device), each with its fix.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// assert!(Rack.preflight(&ctx).is_empty());
    /// ```
    fn preflight(&self, ctx: &Ctx<'_>) -> Vec<Missing> {
        let _ = ctx;
        Vec::new()
    }

    /// The actions `up` would take, in order, taking nothing (`lab up --dry-run`).
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let e = Rack.plan_up(&ctx).unwrap_err();
    /// assert_eq!(e.to_string(), "provider \"rack\" cannot plan up (--dry-run)");
    /// ```
    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        let _ = ctx;
        Err(Error::unsupported(self.name(), "plan up (--dry-run)", ""))
    }

    /// Make (or adopt) and start the hosts; write state before creating anything.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let e = Rack.up(&ctx, &provider::UpOptions::default(), &mut |_| {}).unwrap_err();
    /// assert_eq!(e.to_string(), "provider \"rack\" cannot up");
    /// ```
    fn up(&self, ctx: &Ctx<'_>, opts: &UpOptions, events: Events<'_>) -> Result<UpReport, Error> {
        let _ = (ctx, opts, events);
        Err(Error::unsupported(self.name(), "up", ""))
    }

    /// Each host's state. Must not fail because a host is down: that is a state.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let hosts = Rack.status(&ctx).unwrap();
    /// assert_eq!((hosts[0].host.as_str(), hosts[0].state.as_str()), ("ue1", "present"));
    /// ```
    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error>;

    /// Shut the hosts down (a grace time, then off). Returns the hosts halted.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let grace = std::time::Duration::from_secs(30);
    /// let e = Rack.halt(&ctx, grace, &mut |_| {}).unwrap_err();
    /// assert!(matches!(e, Error::Unsupported { .. }));
    /// ```
    fn halt(
        &self,
        ctx: &Ctx<'_>,
        grace: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        let _ = (ctx, grace, events);
        Err(Error::unsupported(self.name(), "halt", ""))
    }

    /// Remove everything the provider made for the lab, also when its state file is gone.
    /// Returns what was removed.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let e = Rack.destroy(&ctx, &mut |_| {}).unwrap_err();
    /// assert_eq!(e.to_string(), "provider \"rack\" cannot destroy");
    /// ```
    fn destroy(&self, ctx: &Ctx<'_>, events: Events<'_>) -> Result<Vec<String>, Error> {
        let _ = (ctx, events);
        Err(Error::unsupported(self.name(), "destroy", ""))
    }

    /// How a host is reached; [`Error::NotUp`] when it is not up.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let e = Rack.access(&ctx, ctx.hosts[0]).unwrap_err();
    /// assert_eq!(e.to_string(), "provider \"rack\" cannot reach hosts: host `ue1`");
    /// ```
    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        let _ = ctx;
        Err(Error::unsupported(
            self.name(),
            "reach hosts",
            &format!("host `{}`", host.name),
        ))
    }

    /// Save or restore a snapshot of every host ([`Capability::Snapshots`]).
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider, StateDir};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
    /// #         Ok(ctx.hosts.iter().map(|h| HostState::new(&h.name, "rack", "present")).collect())
    /// #     }
    /// # }
    /// # let lab = model::Preset::Builtin.load().unwrap();
    /// # let lab = lab.with_provider(&model::Provider::new("rack").unwrap());
    /// # let state = StateDir::new(std::env::temp_dir());
    /// # let ctx = Ctx::of(&lab, "rack", &state);
    /// let op = provider::SnapshotOp::Save("s1".into());
    /// let boot = std::time::Duration::from_secs(60);
    /// let e = Rack.snapshot(&ctx, &op, boot, &mut |_| {}).unwrap_err();
    /// assert_eq!(e.to_string(), "provider \"rack\" cannot snapshot");
    /// ```
    fn snapshot(
        &self,
        ctx: &Ctx<'_>,
        op: &SnapshotOp,
        boot_timeout: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        let _ = (ctx, op, boot_timeout, events);
        Err(Error::unsupported(self.name(), "snapshot", ""))
    }
}
