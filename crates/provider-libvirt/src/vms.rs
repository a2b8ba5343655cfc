//! The libvirt provider's work: one domain per host under the hypervisor its `uri` names
//! (this machine's `qemu:///system`, or another machine's through `qemu+ssh://`), each on a
//! qcow2 overlay volume in the storage pool `lab` over its image (lab's Debian image, a cloud
//! image with a NoCloud seed volume, or a libvirt Vagrant box: the `images` crate, shared with
//! the QEMU provider), NIC 1 on QEMU's user-mode NAT with SSH forwarded, NICs 2..n on taps lab
//! puts on a bridge per segment.
//!
//! Everything lab creates is named from the lab and tagged, so `destroy` finds it without a
//! state file, also after lab was killed half-way through `up`:
//! - domains `lab-<lab>-<host>`, with lab's metadata (lab, host, directory, SSH port);
//! - volumes `lab-<lab>-<host>-<dirtag>.qcow2` (and a cloud image's seed,
//!   `lab-<lab>-<host>-<dirtag>.iso`), backed on this machine by the cached image in place, and
//!   on another by `lab-base-<sha>.<format>`, uploaded once and shared, as Vagrant keeps a
//!   box's volume;
//! - networks `lab-<lab>-<segment>` over bridges whose name is a hash of directory, lab and
//!   segment;
//! - bridges and taps, whose alias is `lab:<dirtag>:<lab>:...`.
//!
//! On another machine lab runs virsh, `ip` and `ss` there through its own SSH connection (the
//! lab's key, the lab's known_hosts, and a host key that must be known beforehand, as for
//! existing machines), so a `qemu+ssh://` hypervisor needs nothing but sshd and libvirt.
//!
//! A host placed on one of the lab's machines (`machine = "NAME"`, or balanced onto one) runs
//! under that machine's libvirtd, reached over the machine's SSH as above. Its SSH forward
//! listens on the machine's loopback only, and lab reaches the VM through the machine (a jump,
//! as `ProxyJump`; the VM's host key is kept under an alias naming the domain and machine). A
//! segment whose hosts sit on several machines gets, on each, a VXLAN device on its bridge
//! (the lab's tunnel for that wire: [`model::Lab::tunnels`], its own VNI and UDP port, from the
//! machine's underlay address, flooding to the others'), tagged like the bridge so `destroy`
//! removes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Auth, Command, Exec, Output, SshConfig};
use libvirt::domain::{Domain, LabMeta, TapNic, VirtType};
use libvirt::network::Network;
use libvirt::virsh::{self, DomState, Virsh};
use model::uri::HypervisorUri;
use model::{Host, Lab, Tunnel};
use provider::{Event, StateDir};

use crate::NAME;

/// The storage pool of lab's volumes on each hypervisor (a directory pool lab defines when
/// missing, in `/var/lib/libvirt/<pool>`); `LAB_LIBVIRT_POOL` names another.
pub const POOL: &str = "lab";

/// The pool lab uses: `LAB_LIBVIRT_POOL`, else [`POOL`].
pub fn pool_name() -> String {
    std::env::var("LAB_LIBVIRT_POOL")
        .ok()
        .filter(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        })
        .unwrap_or_else(|| POOL.to_string())
}

/// Where a pool lab defines keeps its files.
pub fn pool_dir(pool: &str) -> String {
    format!("/var/lib/libvirt/{pool}")
}
/// Where each domain's serial console is written, on the hypervisor's machine.
pub const CONSOLE_DIR: &str = "/var/log/libvirt/qemu";
pub use images::DEFAULT_IMAGE;
/// The first port tried for a VM's SSH forward (the QEMU provider starts at 42301).
pub const FIRST_PORT: u16 = 42401;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] qemu::image::Error),
    /// A download of a cloud image or box failed, or was refused.
    #[error(transparent)]
    Download(images::Error),
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error(transparent)]
    State(#[from] provider::Error),
    #[error("host `{host}`: {message}")]
    Model { host: String, message: String },
    #[error("hypervisor {uri}: {message}")]
    Hypervisor { uri: String, message: String },
    #[error(
        "host `{host}`: SSH did not come up (serial console: {console} on the hypervisor {uri}): {source}"
    )]
    Ssh {
        host: String,
        uri: String,
        console: String,
        source: Box<guest::Error>,
    },
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Host(Box::new(e))
    }
}

impl From<images::Error> for Error {
    fn from(e: images::Error) -> Self {
        match e {
            images::Error::Image(e) => Error::Image(e),
            images::Error::Host(e) => Error::Host(e),
            images::Error::State(e) => Error::State(e),
            images::Error::Model { host, message } => Error::Model { host, message },
            e @ images::Error::Fetch(_) => Error::Download(e),
        }
    }
}

/// The lab directory's tag (8 hex digits): two labs of one name in two directories differ.
pub fn dir_tag(dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!(
        "{:08x}",
        provider::vm::stable_hash(&[&dir.display().to_string()]) as u32
    )
}

fn abs(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

pub fn domain_name(lab: &Lab, host: &str) -> String {
    format!("lab-{}-{host}", lab.name)
}

pub fn volume_name(lab: &Lab, host: &str, dir: &Path) -> String {
    format!("lab-{}-{host}-{}.qcow2", lab.name, dir_tag(dir))
}

/// A cloud image host's NoCloud seed volume.
pub fn seed_volume_name(lab: &Lab, host: &str, dir: &Path) -> String {
    format!("lab-{}-{host}-{}.iso", lab.name, dir_tag(dir))
}

pub fn network_name(lab: &Lab, segment: &str) -> String {
    format!("lab-{}-{segment}", lab.name)
}

/// A segment's bridge (13 bytes: within the kernel's 15).
pub fn bridge_name(lab: &Lab, dir: &Path, segment: &str) -> String {
    format!(
        "lb{:011x}",
        provider::vm::stable_hash(&[&dir_tag(dir), &lab.name, segment]) & 0xfff_ffff_ffff
    )
}

/// A segment's VXLAN device on a machine, when its hosts sit on several (13 bytes).
pub fn vxlan_name(lab: &Lab, dir: &Path, segment: &str) -> String {
    format!(
        "lx{:011x}",
        provider::vm::stable_hash(&[&dir_tag(dir), &lab.name, segment, "vxlan"]) & 0xfff_ffff_ffff
    )
}

/// The argv that join `machine`'s part of a segment to the others' (`tunnel`): its VXLAN
/// device from the machine's underlay address, flooding to every other machine of the
/// tunnel, tagged and on the segment's bridge, up.
///
/// ```
/// let text = model::Preset::Builtin.source().replacen(
///     "[hosts.ue1]\n",
///     "[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
///      [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n[hosts.ue1]\n",
///     1,
/// );
/// let lab = model::parse("Lab.toml", &text).unwrap().balance(|_| true);
/// let t = &lab.tunnels()[0];
/// let dir = std::path::Path::new("/labs/a");
/// let argv = provider_libvirt::vms::tunnel_argv(&lab, dir, "m1", t).unwrap();
/// let line = |i: usize| argv[i].join(" ");
/// assert!(line(0).contains(&format!("type vxlan id {} local 192.0.2.1 dstport 4790", t.vni)));
/// assert!(line(1).ends_with("dst 192.0.2.2"), "floods to m2");
/// assert!(argv.iter().any(|a| a.contains(&"master".to_string())));
/// ```
pub fn tunnel_argv(
    lab: &Lab,
    dir: &Path,
    machine: &str,
    tunnel: &Tunnel,
) -> Result<Vec<Vec<String>>, Error> {
    let dev = vxlan_name(lab, dir, &tunnel.wire);
    let mut out = provider::tunnel_end(lab, NAME, machine, tunnel, &dev)?;
    out.extend(net::devices::port(
        &dev,
        &bridge_name(lab, dir, &tunnel.wire),
        &format!("{}{}:vxlan", alias_prefix(lab, dir), tunnel.wire),
    ));
    Ok(out)
}

fn tap_name(lab: &Lab, dir: &Path, host: &str, iface: &str) -> String {
    format!(
        "lt{:011x}",
        provider::vm::stable_hash(&[&dir_tag(dir), &lab.name, host, iface]) & 0xfff_ffff_ffff
    )
}

/// The alias prefix of every device lab made for this lab.
pub fn alias_prefix(lab: &Lab, dir: &Path) -> String {
    format!("lab:{}:{}:", dir_tag(dir), lab.name)
}

fn console_path(lab: &Lab, host: &str) -> String {
    format!("{CONSOLE_DIR}/{}.serial.log", domain_name(lab, host))
}

/// The PCI slots of NICs 2-8, as the QEMU provider (and VirtualBox) number them.
pub const SEGMENT_SLOTS: [u8; 7] = [8, 9, 10, 16, 17, 18, 19];

/// A host's NIC on a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub segment: String,
    pub tap: String,
    pub mac: [u8; 6],
    pub slot: u8,
    /// Its name in Lab.toml (and in the guest).
    pub name: String,
}

pub fn hosts_of(lab: &Lab) -> impl Iterator<Item = &Host> {
    lab.hosts.iter().filter(|h| h.provider == NAME)
}

/// A host's segment NICs; the first interface must be NAT (lab reaches the VM through it).
pub fn nics(lab: &Lab, h: &Host, dir: &Path) -> Result<Vec<Nic>, Error> {
    let model = |message: String| Error::Model {
        host: h.name.clone(),
        message,
    };
    provider::vm::nat_first(h, "a libvirt VM").map_err(model)?;
    let mut slots = SEGMENT_SLOTS.iter();
    let mut out = Vec::new();
    for iface in &h.interfaces[1..] {
        let Some(segment) = iface.attach.wire() else {
            return Err(model(format!(
                "{}: only the first interface can be NAT",
                iface.name
            )));
        };
        let slot = *slots
            .next()
            .ok_or_else(|| model("a libvirt VM of lab has at most 8 NICs".into()))?;
        out.push(Nic {
            segment,
            tap: tap_name(lab, dir, &h.name, &iface.name),
            mac: iface
                .mac
                .map(|m| m.0)
                .unwrap_or_else(|| qemu::vm::stable_mac(&lab.name, &h.name, slot)),
            slot,
            name: iface.name.clone(),
        });
    }
    Ok(out)
}

fn nat_mac(lab: &Lab, h: &Host) -> [u8; 6] {
    h.interfaces
        .first()
        .and_then(|i| i.mac)
        .map(|m| m.0)
        .unwrap_or_else(|| qemu::vm::stable_mac(&lab.name, &h.name, 3))
}

/// The hypervisor a host runs under.
pub fn uri_of(h: &Host) -> HypervisorUri {
    h.vm.uri.clone().unwrap_or_else(|| {
        HypervisorUri::parse(model::uri::DEFAULT).unwrap_or(HypervisorUri {
            host: None,
            user: None,
            port: None,
            instance: "system".into(),
        })
    })
}

/// Which hypervisor a host runs under, as a key: `machine NAME` for a host on one of the lab's
/// machines, else its URI.
pub fn key_of(h: &Host) -> String {
    match &h.machine {
        Some(m) => machine_key(m),
        None => uri_of(h).to_string(),
    }
}

fn machine_key(machine: &str) -> String {
    format!("machine {machine}")
}

/// The hypervisor a host runs under: its machine's, or its URI's.
pub fn hypervisor_of(lab: &Lab, h: &Host, state: &StateDir) -> Result<Hypervisor, Error> {
    match &h.machine {
        Some(m) => Hypervisor::on_machine(provider::machine(lab, NAME, m)?, state),
        None => Hypervisor::open(&uri_of(h), state),
    }
}

/// One of the lab's machines a hypervisor runs on.
#[derive(Debug, Clone)]
pub struct OnMachine {
    pub name: String,
    /// lab's SSH to it: the way to its VMs' SSH forwards, which listen on its loopback.
    pub ssh: SshConfig,
}

/// A hypervisor and the way to its machine: this machine's commands, or lab's SSH to it.
pub struct Hypervisor {
    /// Which it is ([`key_of`]).
    pub key: String,
    pub uri: HypervisorUri,
    /// The lab's machine it runs on, when its hosts were placed on one.
    pub on: Option<OnMachine>,
    /// The storage pool of lab's volumes there.
    pub pool: String,
    /// This machine, or lab's SSH connection to the hypervisor's machine.
    pub machine: Machine,
    pub virsh: Virsh,
}

/// Where a hypervisor's commands run.
#[derive(Debug)]
pub enum Machine {
    Local(guest::Local),
    Remote(Box<guest::Ssh>),
}

impl std::fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hypervisor({})", self.label())
    }
}

impl Hypervisor {
    /// How lab reaches `uri`'s machine: locally, or over SSH with the lab's key and known_hosts
    /// (the machine's host key must be known: lab did not make that machine).
    pub fn open(uri: &HypervisorUri, state: &StateDir) -> Result<Hypervisor, Error> {
        let machine = match &uri.host {
            None => Machine::Local(guest::Local::new("local")),
            Some(host) => {
                let user = uri.user.clone().unwrap_or_else(|| "root".into());
                let mut c = SshConfig::new(
                    format!("hypervisor {host}"),
                    host.clone(),
                    uri.port.unwrap_or(22),
                    user.clone(),
                    Auth::Key(state.key()?),
                    state.known_hosts(),
                );
                c.trust_on_first_use = false;
                c.connect_timeout = Duration::from_secs(15);
                c.sudo = user != "root";
                Machine::Remote(Box::new(guest::Ssh::new(c)))
            }
        };
        Ok(Hypervisor {
            key: uri.to_string(),
            uri: uri.clone(),
            on: None,
            pool: pool_name(),
            machine,
            virsh: Virsh::new(uri.local_form()),
        })
    }

    /// The libvirtd of one of the lab's machines (`qemu:///system` there), over lab's SSH to
    /// the machine ([`provider::machine_ssh`]).
    pub fn on_machine(m: &model::Machine, state: &StateDir) -> Result<Hypervisor, Error> {
        let ssh = provider::machine_ssh(m, state)?;
        let uri = HypervisorUri {
            host: Some(m.ssh.address.clone()),
            user: Some(m.ssh.user.clone()),
            port: (m.ssh.port != 22).then_some(m.ssh.port),
            instance: "system".into(),
        };
        Ok(Hypervisor {
            key: machine_key(&m.name),
            virsh: Virsh::new(uri.local_form()),
            uri,
            on: Some(OnMachine {
                name: m.name.clone(),
                ssh: ssh.clone(),
            }),
            pool: pool_name(),
            machine: Machine::Remote(Box::new(guest::Ssh::new(ssh))),
        })
    }

    /// How messages name it: its URI, and the lab's machine it is on.
    pub fn label(&self) -> String {
        match &self.on {
            Some(m) => format!("machine {} ({})", m.name, self.uri),
            None => self.uri.to_string(),
        }
    }

    /// The command seam to the hypervisor's machine.
    pub fn exec(&self) -> &dyn Exec {
        match &self.machine {
            Machine::Local(l) => l,
            Machine::Remote(s) => s.as_ref(),
        }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Hypervisor {
            uri: self.label(),
            message: message.into(),
        }
    }

    fn run(&self, argv: Vec<String>) -> Result<Output, Error> {
        Ok(self.exec().run(&Command::new(argv))?)
    }

    fn check(&self, argv: Vec<String>) -> Result<Output, Error> {
        Ok(self.exec().check(&Command::new(argv))?)
    }

    /// Run a removal; "does not exist" is not a failure.
    fn remove(&self, argv: Vec<String>) -> Result<bool, Error> {
        let out = self.run(argv.clone())?;
        if out.success() {
            return Ok(true);
        }
        if virsh::not_found(&out.stderr_lossy()) {
            return Ok(false);
        }
        Err(guest::Error::Failed {
            host: self.exec().host().to_string(),
            argv,
            status: out.status,
            stderr: out.stderr_lossy().trim().to_string(),
        }
        .into())
    }

    /// Define from an XML document given on stdin.
    fn define(&self, argv: Vec<String>, xml: &str) -> Result<(), Error> {
        self.exec()
            .check(&Command::new(argv).stdin(xml.as_bytes().to_vec()))?;
        Ok(())
    }

    /// Is libvirtd there and answering?
    pub fn ping(&self) -> Result<(), Error> {
        let out = self
            .exec()
            .run(&Command::new(self.virsh.version()))
            .map_err(|e| match &self.machine {
                Machine::Remote(_) => self.err(format!("cannot reach its machine: {e}")),
                Machine::Local(_) => self.err(format!(
                    "cannot run virsh ({e}): apt-get install libvirt-clients"
                )),
            })?;
        match out.status {
            guest::Status::Code(0) => Ok(()),
            guest::Status::Code(127) => Err(self.err(
                "virsh is not installed on the hypervisor's machine (Debian: libvirt-clients)",
            )),
            _ => Err(self.err(format!(
                "libvirtd does not answer: {} (start it: `libvirtd -d`, or `systemctl start libvirtd`)",
                out.stderr_lossy().trim()
            ))),
        }
    }

    /// The address lab reaches VMs' SSH forwards at, and the one QEMU binds them to.
    pub fn ssh_endpoint(&self) -> (String, String) {
        if self.on.is_some() {
            // One of the lab's machines: lab comes through its SSH, so loopback there.
            return ("127.0.0.1".into(), "127.0.0.1".into());
        }
        match &self.uri.host {
            None => ("127.0.0.1".into(), "127.0.0.1".into()),
            Some(h)
                if h == "localhost"
                    || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback()) =>
            {
                (h.clone(), h.clone())
            }
            // Another machine: the forward listens on its addresses (the guests take lab's
            // key only), and lab connects to the address the URI names.
            Some(h) => (h.clone(), "0.0.0.0".into()),
        }
    }

    /// KVM when the hypervisor offers it (its capabilities) and it is not the PVM nested
    /// module (which cannot run normal guests); TCG otherwise, with why.
    pub fn virt_type(&self) -> Result<(VirtType, Option<String>), Error> {
        let caps = self.check(self.virsh.capabilities())?;
        if !virsh::has_kvm(&caps.stdout_lossy()) {
            return Ok((
                VirtType::Qemu,
                Some("the hypervisor offers no KVM for x86_64".into()),
            ));
        }
        if self
            .run(vec![
                "test".into(),
                "-e".into(),
                "/sys/module/kvm_pvm".into(),
            ])?
            .success()
        {
            return Ok((
                VirtType::Qemu,
                Some("its /dev/kvm is the PVM nested-KVM module (kvm_pvm), which cannot run normal guests".into()),
            ));
        }
        Ok((VirtType::Kvm, None))
    }

    fn domains(&self) -> Result<Vec<String>, Error> {
        Ok(virsh::names(
            &self.check(self.virsh.list_all())?.stdout_lossy(),
        ))
    }

    fn networks(&self) -> Result<Vec<String>, Error> {
        Ok(virsh::names(
            &self.check(self.virsh.net_list_all())?.stdout_lossy(),
        ))
    }

    fn meta(&self, domain: &str) -> Result<Option<LabMeta>, Error> {
        let out = self.run(self.virsh.dumpxml(domain))?;
        if !out.success() {
            return Ok(None);
        }
        Ok(LabMeta::from_domain_xml(&out.stdout_lossy()))
    }

    fn state(&self, domain: &str) -> Result<DomState, Error> {
        Ok(DomState::parse(
            &self.check(self.virsh.domstate(domain))?.stdout_lossy(),
        ))
    }

    fn volumes(&self) -> Result<Vec<String>, Error> {
        let out = self.run(self.virsh.vol_list(&self.pool))?;
        if !out.success() {
            return Ok(Vec::new());
        }
        Ok(virsh::volumes(&out.stdout_lossy()))
    }

    /// lab's devices on this machine (name, alias) whose alias starts with `prefix`.
    fn devices(&self, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        let out = self.check(net::devices::list())?;
        Ok(net::devices::aliased(&out.stdout_lossy(), prefix))
    }

    /// The TCP ports something listens on there.
    fn listening(&self) -> Result<Vec<u16>, Error> {
        let out = self.check(vec!["ss".into(), "-Hltn".into()])?;
        Ok(out
            .stdout_lossy()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
            .collect())
    }

    /// The pool, defined, built and started when missing.
    fn ensure_pool(&self) -> Result<(), Error> {
        let pool = &self.pool;
        if !self.run(self.virsh.pool_info(pool))?.success() {
            self.check(self.virsh.pool_define_as(pool, &pool_dir(pool)))?;
            self.check(self.virsh.pool_build(pool))?;
            self.check(self.virsh.pool_autostart(pool))?;
        }
        let info = self.check(self.virsh.pool_info(pool))?.stdout_lossy();
        if info
            .lines()
            .any(|l| l.starts_with("State:") && !l.contains("running"))
        {
            self.check(self.virsh.pool_start(pool))?;
        }
        self.check(self.virsh.pool_refresh(pool))?;
        Ok(())
    }
}

/// A base image on this machine (built, downloaded, unpacked or found: [`images::resolve`]),
/// with what its upload to another machine needs.
#[derive(Debug, Clone)]
pub struct Base {
    pub image: images::Base,
    pub sha256: String,
    pub size: u64,
}

impl Base {
    /// Its volume's name in a pool (by content: a changed image is a new volume).
    pub fn volume(&self) -> String {
        format!("lab-base-{}.{}", &self.sha256[..16], self.image.format)
    }
}

/// The SHA-256 of a file, remembered beside it (keyed by size and modification time) so the
/// next `up` does not read a gigabyte again.
fn sha256_of(path: &Path) -> Result<String, Error> {
    use sha2::Digest as _;
    let io = |e| Error::File {
        what: "read",
        path: path.to_path_buf(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let stamp = format!(
        "{} {}",
        meta.len(),
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    );
    let side = path.with_extension("qcow2.sha256");
    if let Ok(text) = std::fs::read_to_string(&side)
        && let Some((s, sum)) = text.trim().rsplit_once(' ')
        && s == stamp
        && sum.len() == 64
    {
        return Ok(sum.to_string());
    }
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io)?;
    let sum: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let _ = std::fs::write(&side, format!("{stamp} {sum}\n"));
    Ok(sum)
}

/// The base image of every libvirt host of the lab, by `image`, on this machine: built,
/// downloaded (against signed sums), unpacked from a box or found ([`images::resolve`]).
pub fn base_images(
    lab: &Lab,
    dir: &Path,
    opts: &UpOptions,
    events: &mut dyn FnMut(Event),
) -> Result<BTreeMap<String, Base>, Error> {
    let local = guest::Local::new("local");
    let accel = qemu::accel::probe(Path::new("/"));
    let mut out = BTreeMap::new();
    for h in hosts_of(lab) {
        let image = h.vm.image_or(DEFAULT_IMAGE);
        if out.contains_key(image) {
            continue;
        }
        let b = images::resolve(h, dir, &local, &opts.images, &accel, events)?;
        let size = std::fs::metadata(&b.path)
            .map_err(|e| Error::File {
                what: "read",
                path: b.path.clone(),
                source: e,
            })?
            .len();
        out.insert(
            image.to_string(),
            Base {
                sha256: sha256_of(&b.path)?,
                image: b,
                size,
            },
        );
    }
    Ok(out)
}

/// What the hosts' overlays are backed by on a hypervisor: on this machine, lab's cached
/// image itself (nothing is copied); on another, its volume in the pool, uploaded once (by
/// content) and reused.
fn ensure_base(
    hv: &Hypervisor,
    base: &Base,
    events: &mut dyn FnMut(Event),
) -> Result<String, Error> {
    hv.ensure_pool()?;
    if let Machine::Local(_) = hv.machine {
        return Ok(base.image.path.display().to_string());
    }
    let vol = base.volume();
    let path = |hv: &Hypervisor| -> Result<String, Error> {
        Ok(hv
            .check(hv.virsh.vol_path(&hv.pool, &vol))?
            .stdout_lossy()
            .trim()
            .to_string())
    };
    if hv.volumes()?.contains(&vol) {
        return path(hv);
    }
    events(Event::Step(format!(
        "uploading the base image to {} (pool {}, volume {vol}, {} MB)",
        hv.uri,
        hv.pool,
        base.size >> 20
    )));
    upload_volume(hv, &base.image.path, base.size, &vol)?;
    path(hv)
}

/// A file of this machine as a new volume `vol` of the hypervisor's pool: a raw volume of the
/// file's length, overwritten with the file (copied to the hypervisor's machine first when it
/// is another), then read again by the pool as what it is (qcow2, ISO). A half-uploaded volume
/// is deleted, so it is never taken for the file next time.
fn upload_volume(hv: &Hypervisor, file: &Path, size: u64, vol: &str) -> Result<(), Error> {
    hv.check(hv.virsh.vol_create_as(&hv.pool, vol, size, "raw", None))?;
    let upload = || -> Result<(), Error> {
        let source = match &hv.machine {
            Machine::Remote(ssh) => {
                let tmp = format!("/var/tmp/{vol}.upload");
                ssh.upload(file, Path::new(&tmp), 0o600)?;
                tmp
            }
            Machine::Local(_) => file.display().to_string(),
        };
        hv.check(hv.virsh.vol_upload(&hv.pool, vol, &source))?;
        if hv.uri.is_remote() {
            hv.run(vec!["rm".into(), "-f".into(), source])?;
        }
        hv.check(hv.virsh.pool_refresh(&hv.pool))?;
        Ok(())
    };
    upload().inspect_err(|_| {
        let _ = hv.remove(hv.virsh.vol_delete(&hv.pool, vol));
    })
}

/// Write a cloud image host's NoCloud seed on this machine (its files in
/// `.lab/libvirt/<domain>/seed/`, for people to read) and put it in the hypervisor's pool as
/// its seed volume, replacing an older one.
fn ensure_seed(
    hv: &Hypervisor,
    lab: &Lab,
    h: &Host,
    dir: &Path,
    public_key: &str,
) -> Result<String, Error> {
    let local = guest::Local::new("local");
    let vmdir = StateDir::new(dir)
        .file("libvirt")
        .join(domain_name(lab, &h.name));
    let seed = images::Seed {
        instance_id: domain_name(lab, &h.name),
        hostname: h.name.clone(),
        user: h.vm.user.clone(),
        public_key: public_key.to_string(),
        nat_mac: qemu::vm::mac(nat_mac(lab, h)),
        nat_name: h.interfaces[0].name.clone(),
    };
    let iso = images::write_seed(&local, &seed, &vmdir)?;
    let size = std::fs::metadata(&iso)
        .map_err(|e| Error::File {
            what: "read",
            path: iso.clone(),
            source: e,
        })?
        .len();
    let vol = seed_volume_name(lab, &h.name, dir);
    if hv.volumes()?.contains(&vol) {
        hv.remove(hv.virsh.vol_delete(&hv.pool, &vol))?;
    }
    upload_volume(hv, &iso, size, &vol)?;
    Ok(vol)
}

/// The hypervisors of the lab's libvirt hosts, each opened once, keyed by [`key_of`].
pub fn hypervisors(lab: &Lab, state: &StateDir) -> Result<BTreeMap<String, Hypervisor>, Error> {
    let mut out = BTreeMap::new();
    for h in hosts_of(lab) {
        if let std::collections::btree_map::Entry::Vacant(e) = out.entry(key_of(h)) {
            e.insert(hypervisor_of(lab, h, state)?);
        }
    }
    Ok(out)
}

/// Hosts on one segment run under one hypervisor, or all on the lab's machines (whose tunnels
/// join the segment across them).
fn one_hypervisor_per_segment(lab: &Lab, dir: &Path) -> Result<(), Error> {
    // Per segment, its hosts in Lab.toml order, each with its hypervisor (`key_of`).
    let mut segments: BTreeMap<String, Vec<(&Host, String)>> = BTreeMap::new();
    for h in hosts_of(lab) {
        for n in nics(lab, h, dir)? {
            segments.entry(n.segment).or_default().push((h, key_of(h)));
        }
    }
    for (segment, hosts) in &segments {
        let (first, k) = &hosts[0];
        if hosts.iter().all(|(h, _)| h.machine.is_some()) {
            continue;
        }
        if let Some((h, key)) = hosts.iter().find(|(_, key)| key != k) {
            return Err(Error::Model {
                host: h.name.clone(),
                message: format!(
                    "segment {segment} joins `{}` (under {k}) and `{}` (under {key}): hosts of one segment run under one hypervisor, or all on the lab's machines (`machine = \"NAME\"`), which a tunnel joins",
                    first.name, h.name
                ),
            });
        }
    }
    Ok(())
}

/// A segment's bridge and network, made when missing.
fn ensure_segment(
    hv: &Hypervisor,
    lab: &Lab,
    dir: &Path,
    segment: &str,
    existing: &[(String, String)],
    networks: &[String],
) -> Result<(), Error> {
    let bridge = bridge_name(lab, dir, segment);
    if !existing.iter().any(|(n, _)| *n == bridge) {
        let alias = format!("{}{segment}", alias_prefix(lab, dir));
        for argv in net::devices::bridge(&bridge, &alias) {
            hv.check(argv)?;
        }
    }
    let name = network_name(lab, segment);
    if networks.contains(&name) {
        let xml = hv.check(hv.virsh.net_dumpxml(&name))?.stdout_lossy();
        if libvirt::network::bridge_of(&xml).as_deref() != Some(bridge.as_str()) {
            return Err(hv.err(format!(
                "network {name} exists and is not this lab's (its bridge is not {bridge}): another lab named `{}` in another directory? Destroy it there, or rename this lab",
                lab.name
            )));
        }
    } else {
        let net = Network {
            name: name.clone(),
            bridge,
        };
        hv.define(hv.virsh.net_define(virsh::STDIN), &net.xml())?;
    }
    let info = hv.check(hv.virsh.net_info(&name))?.stdout_lossy();
    if info
        .lines()
        .any(|l| l.starts_with("Active:") && l.contains("no"))
    {
        hv.check(hv.virsh.net_start(&name))?;
    }
    Ok(())
}

/// A segment's tunnel on one of the lab's machines ([`tunnel_argv`]); a device left half made
/// is removed again, so the next `up` makes it whole.
fn ensure_tunnel(
    hv: &Hypervisor,
    lab: &Lab,
    dir: &Path,
    machine: &str,
    tunnel: &Tunnel,
) -> Result<(), Error> {
    let argv = tunnel_argv(lab, dir, machine, tunnel)?;
    let mut made = false;
    for a in argv {
        if let Err(e) = hv.check(a) {
            if made {
                let _ = hv.run(net::devices::delete(&vxlan_name(lab, dir, &tunnel.wire)));
            }
            return Err(e);
        }
        made = true;
    }
    Ok(())
}

/// A domain as lab defines it: `ssh` is where its forward is reached, where it binds, and
/// its port; `seeded`, whether a NoCloud seed volume goes with it.
pub fn domain(
    lab: &Lab,
    h: &Host,
    dir: &Path,
    pool: &str,
    virt: VirtType,
    ssh: (&str, &str, u16),
    seeded: bool,
) -> Result<Domain, Error> {
    let (address, bind, port) = ssh;
    Ok(Domain {
        name: domain_name(lab, &h.name),
        uuid: None,
        virt_type: virt,
        memory_mib: h.vm.memory_mib,
        cpus: h.vm.cpus,
        pool: pool.into(),
        volume: volume_name(lab, &h.name, dir),
        seed: seeded.then(|| seed_volume_name(lab, &h.name, dir)),
        console: console_path(lab, &h.name),
        nics: nics(lab, h, dir)?
            .into_iter()
            .map(|n| TapNic {
                tap: n.tap,
                mac: qemu::vm::mac(n.mac),
                pci_slot: n.slot,
            })
            .collect(),
        qemu_args: qemu::vm::user_nat(bind, port, Some(nat_mac(lab, h))),
        meta: LabMeta {
            lab: lab.name.clone(),
            host: h.name.clone(),
            dir: abs(dir),
            ssh_address: address.to_string(),
            ssh_port: port,
            user: h.vm.user.clone(),
            hardware: None,
            image: Some(h.vm.image_or(DEFAULT_IMAGE).to_string()),
        },
    })
}

/// A VM after `up`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpVm {
    pub host: String,
    pub domain: String,
    pub ssh: String,
    pub started: bool,
    pub boot_seconds: f64,
    pub kernel: String,
    pub uri: String,
    /// A box's first boot: the kind of Vagrant's insecure key lab logged in with and replaced.
    pub key_swapped: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub boot_timeout: Duration,
    /// Where images come from and go (the cache also holds lab's key).
    pub images: images::Options,
}

/// A running domain of this lab whose Lab.toml now asks for other hardware (a NIC added or
/// removed, another network, MAC, memory or CPU count) cannot take it while it runs:
/// refused before anything is changed, naming the hosts and the fix (halt, then up: the
/// domain is defined again, its disk and snapshots kept).
fn refuse_changed_hardware(
    hv: &Hypervisor,
    lab: &Lab,
    dir: &Path,
    hosts: &[&Host],
    virt: VirtType,
    bases: &BTreeMap<String, Base>,
    present: &BTreeMap<String, Present>,
) -> Result<(), Error> {
    let (address, bind) = hv.ssh_endpoint();
    let mut changed = Vec::new();
    for h in hosts {
        let Some(Present {
            meta: Some(m),
            state,
            ..
        }) = present.get(&domain_name(lab, &h.name))
        else {
            continue;
        };
        if m.dir != abs(dir) || m.lab != lab.name || *state != DomState::Running {
            continue;
        }
        let seeded = bases[h.vm.image_or(DEFAULT_IMAGE)].image.seeded;
        let d = domain(
            lab,
            h,
            dir,
            &hv.pool,
            virt,
            (&address, &bind, m.ssh_port),
            seeded,
        )?;
        if m.hardware.as_deref() != Some(d.fingerprint().as_str()) {
            changed.push(h.name.clone());
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Model {
        host: changed.join(", "),
        message: format!(
            "Lab.toml changed the VM's hardware (NICs, networks, MACs, memory or CPUs) while it runs on {}, and a running domain cannot take that; nothing was changed. `lab halt` then `lab up` defines it again with the new hardware (its disk and snapshots are kept)",
            hv.uri
        ),
    })
}

/// One of the lab's domains as a hypervisor holds it, read once per `up` (one `dumpxml` and
/// one `domstate`), for the refusals and the adoption that follow.
struct Present {
    uuid: Option<String>,
    meta: Option<LabMeta>,
    state: DomState,
}

/// The lab's hosts' domains that exist under `hv`, by domain name.
fn present(hv: &Hypervisor, lab: &Lab) -> Result<BTreeMap<String, Present>, Error> {
    let domains = hv.domains()?;
    let mut out = BTreeMap::new();
    for h in hosts_of(lab).filter(|h| key_of(h) == hv.key) {
        let name = domain_name(lab, &h.name);
        if !domains.contains(&name) {
            continue;
        }
        let xml = hv.run(hv.virsh.dumpxml(&name))?;
        let xml = xml.success().then(|| xml.stdout_lossy());
        let state = hv.state(&name)?;
        out.insert(
            name,
            Present {
                uuid: xml.as_deref().and_then(libvirt::domain::uuid_of),
                meta: xml.as_deref().and_then(LabMeta::from_domain_xml),
                state,
            },
        );
    }
    Ok(out)
}

/// A domain whose disk was made from another image than Lab.toml now gives its host: the disk
/// (an overlay on that image's base volume) holds what was done on the VM and cannot move, so
/// `up` refuses before anything is fetched or changed, naming the hosts, both images and the fix.
fn refuse_changed_image(
    hv: &Hypervisor,
    lab: &Lab,
    dir: &Path,
    present: &BTreeMap<String, Present>,
) -> Result<(), Error> {
    let mut changed = Vec::new();
    for h in hosts_of(lab).filter(|h| key_of(h) == hv.key) {
        let Some(Present { meta: Some(m), .. }) = present.get(&domain_name(lab, &h.name)) else {
            continue;
        };
        let now = h.vm.image_or(DEFAULT_IMAGE);
        if let Some(was) = m
            .image
            .as_deref()
            .filter(|i| m.dir == abs(dir) && m.lab == lab.name && *i != now)
        {
            changed.push((h.name.clone(), was.to_string(), now.to_string()));
        }
    }
    match provider::vm::changed_images(&changed, Some(&hv.uri.to_string())) {
        None => Ok(()),
        Some((host, message)) => Err(Error::Model { host, message }),
    }
}

/// Make whatever is missing and start every domain that is not running; wait for SSH; name the
/// guests' NICs as in Lab.toml.
pub fn up(
    lab: &Lab,
    dir: &Path,
    state: &StateDir,
    opts: &UpOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<UpVm>, Error> {
    for h in hosts_of(lab) {
        nics(lab, h, dir)?;
    }
    one_hypervisor_per_segment(lab, dir)?;
    let hvs = hypervisors(lab, state)?;
    let mut found: BTreeMap<&str, BTreeMap<String, Present>> = BTreeMap::new();
    for (key, hv) in &hvs {
        hv.ping()?;
        let p = present(hv, lab)?;
        refuse_changed_image(hv, lab, dir, &p)?;
        found.insert(key, p);
    }
    let local = guest::Local::new("local");
    let public_key = qemu::image::ensure_key(&local, &opts.images.cache)?;
    let key = opts.images.cache.join("id_ed25519");
    let bases = base_images(lab, dir, opts, events)?;

    let mut started: Vec<(&Host, &Hypervisor, Domain, bool, Instant)> = Vec::new();
    let tunnels = lab.tunnels();
    for (key, hv) in &hvs {
        let uri = hv.label();
        let hosts: Vec<&Host> = hosts_of(lab).filter(|h| key_of(h) == *key).collect();
        let (virt, why) = hv.virt_type()?;
        if let Some(why) = why {
            events(Event::Note(format!(
                "{uri}: software emulation (TCG): {why}"
            )));
        }
        let present = &found[key.as_str()];
        refuse_changed_hardware(hv, lab, dir, &hosts, virt, &bases, present)?;
        // What the overlays are backed by there, per image.
        let mut backings: BTreeMap<&str, String> = BTreeMap::new();
        for h in &hosts {
            let image = h.vm.image_or(DEFAULT_IMAGE);
            if !backings.contains_key(image) {
                backings.insert(image, ensure_base(hv, &bases[image], events)?);
            }
        }
        let devices = hv.devices(&alias_prefix(lab, dir))?;
        let networks = hv.networks()?;
        let mut segments: Vec<String> = Vec::new();
        for h in &hosts {
            for n in nics(lab, h, dir)? {
                if !segments.contains(&n.segment) {
                    events(Event::Step(format!("{uri}: segment {}", n.segment)));
                    ensure_segment(hv, lab, dir, &n.segment, &devices, &networks)?;
                    if let Some(on) = &hv.on
                        && let Some(t) = tunnels.iter().find(|t| t.wire == n.segment)
                        && !devices
                            .iter()
                            .any(|(d, _)| *d == vxlan_name(lab, dir, &t.wire))
                    {
                        events(Event::Step(format!(
                            "{uri}: tunnel for {} (VXLAN {}, UDP {}) to {}",
                            n.segment,
                            t.vni,
                            t.port,
                            t.machines
                                .iter()
                                .filter(|m| **m != on.name)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                        ensure_tunnel(hv, lab, dir, &on.name, t)?;
                    }
                    segments.push(n.segment);
                }
            }
        }
        let volumes = hv.volumes()?;
        let mut taken = hv.listening()?;
        let (address, bind) = hv.ssh_endpoint();
        for h in &hosts {
            let name = domain_name(lab, &h.name);
            let base = &bases[h.vm.image_or(DEFAULT_IMAGE)];
            let seeded = base.image.seeded;
            let mut port = None;
            let mut uuid = None;
            if let Some(p) = present.get(&name) {
                match &p.meta {
                    Some(m) if m.dir == abs(dir) && m.lab == lab.name => {
                        if p.state == DomState::Running {
                            let d = domain(
                                lab,
                                h,
                                dir,
                                &hv.pool,
                                virt,
                                (&address, &bind, m.ssh_port),
                                seeded,
                            )?;
                            started.push((h, hv, d, false, Instant::now()));
                            continue;
                        }
                        if !taken.contains(&m.ssh_port) {
                            port = Some(m.ssh_port);
                        }
                        uuid.clone_from(&p.uuid);
                    }
                    Some(m) => {
                        return Err(hv.err(format!(
                            "domain {name} belongs to lab `{}` in {}: destroy it there, or rename this lab",
                            m.lab, m.dir
                        )));
                    }
                    None => {
                        return Err(hv.err(format!(
                            "domain {name} exists and lab did not make it: rename this lab or host"
                        )));
                    }
                }
            }
            let port = match port {
                Some(p) => p,
                None => (FIRST_PORT..FIRST_PORT.saturating_add(500))
                    .find(|p| !taken.contains(p))
                    .ok_or_else(|| hv.err("no free port for the VM's SSH forward"))?,
            };
            taken.push(port);
            let mut d = domain(lab, h, dir, &hv.pool, virt, (&address, &bind, port), seeded)?;
            // A stopped domain of this lab is defined again (Lab.toml may have changed it),
            // keeping its UUID and snapshots.
            d.uuid = uuid;
            // Taps (a tap of a domain that is not running is idle: made again only when gone).
            for n in nics(lab, h, dir)? {
                if !devices.iter().any(|(t, _)| *t == n.tap) {
                    let alias = format!("{}{}:{}", alias_prefix(lab, dir), h.name, n.name);
                    for argv in
                        net::devices::tap(&n.tap, &bridge_name(lab, dir, &n.segment), &alias)
                    {
                        hv.check(argv)?;
                    }
                }
            }
            if !volumes.contains(&d.volume) {
                // A cloud image grows its root filesystem into the room the overlay gives it.
                let capacity = (u64::from(h.vm.disk_gib) << 30).max(base.image.virtual_size);
                let vol = libvirt::volume::Volume {
                    name: d.volume.clone(),
                    capacity_bytes: capacity,
                    backing: Some((
                        backings[h.vm.image_or(DEFAULT_IMAGE)].clone(),
                        base.image.format.clone(),
                    )),
                };
                hv.define(hv.virsh.vol_create(&hv.pool, virsh::STDIN), &vol.xml())?;
            }
            if seeded {
                ensure_seed(hv, lab, h, dir, &public_key)?;
            }
            hv.define(hv.virsh.define(virsh::STDIN), &d.xml())?;
            events(Event::Step(format!("{}: starting {name} on {uri}", h.name)));
            let t = Instant::now();
            hv.check(hv.virsh.start(&name))?;
            started.push((h, hv, d, true, t));
        }
    }

    let (key, bases, public_key) = (&key, &bases, &public_key);
    let results =
        provider::vm::each_in_parallel(&started, |(h, hv, d, fresh, t)| -> Result<UpVm, Error> {
            let cfg = vm_ssh(state, &d.meta, key, hv.on.as_ref());
            let ssh = guest::Ssh::new(cfg.clone());
            let base = &bases[h.vm.image_or(DEFAULT_IMAGE)].image;
            let ssh_failed = |e: guest::Error| Error::Ssh {
                host: h.name.clone(),
                uri: hv.label(),
                console: d.console.clone(),
                source: Box::new(e),
            };
            let mut key_swapped = None;
            if base.boxed {
                // Vagrant's first boot: the box's insecure key gives way to the lab's.
                let how = provider::vagrant::swap_insecure_key(
                    &cfg,
                    public_key,
                    &state.path(),
                    opts.boot_timeout,
                )
                .map_err(|e| match e {
                    provider::Error::Command(source) => ssh_failed(*source),
                    other => other.into(),
                })?;
                if let provider::vagrant::KeyLogin::Replaced(kind) = how {
                    key_swapped = Some(kind);
                }
            } else {
                ssh.wait_reachable(opts.boot_timeout).map_err(ssh_failed)?;
            }
            if d.seed.is_some() {
                images::wait_cloud_init(&ssh, &h.name, opts.boot_timeout)?;
            }
            let boot = t.elapsed().as_secs_f64();
            let names: Vec<(String, String)> = nics(lab, h, dir)?
                .into_iter()
                .map(|n| (qemu::vm::mac(n.mac), n.name))
                .collect();
            provider::vm::name_nics(&ssh, &h.name, &names)?;
            let kernel = ssh
                .check(&Command::new(["uname", "-r"]))?
                .stdout_lossy()
                .trim()
                .to_string();
            Ok(UpVm {
                host: h.name.clone(),
                domain: d.name.clone(),
                ssh: match &hv.on {
                    Some(on) => format!(
                        "{}:{} of machine {} (through its SSH)",
                        d.meta.ssh_address, d.meta.ssh_port, on.name
                    ),
                    None => format!("{}:{}", d.meta.ssh_address, d.meta.ssh_port),
                },
                started: *fresh,
                boot_seconds: boot,
                kernel,
                uri: hv.label(),
                key_swapped,
            })
        });
    if guest::cancel::requested() {
        // Interrupted while VMs were booting: the domains this `up` started are powered off
        // (defined, with their disks: `lab up` starts them again, `lab destroy` removes them).
        for (h, hv, d, fresh, _) in &started {
            if *fresh && hv.run(hv.virsh.destroy(&d.name)).is_ok() {
                events(Event::Note(format!(
                    "{}: interrupted while it booted: {} powered off",
                    h.name, d.name
                )));
            }
        }
    }
    results.into_iter().collect()
}

/// lab's SSH to a VM: its forward on the hypervisor's machine, the image's key, the lab's
/// known_hosts (a VM lab made: its key is trusted on first use, and forgotten by `destroy`).
/// On one of the lab's machines, through the machine, and its key kept under an alias.
fn vm_ssh(state: &StateDir, meta: &LabMeta, key: &Path, on: Option<&OnMachine>) -> SshConfig {
    let mut c = SshConfig::new(
        meta.host.clone(),
        meta.ssh_address.clone(),
        meta.ssh_port,
        meta.user.clone(),
        Auth::Key(key.to_path_buf()),
        state.known_hosts(),
    );
    c.trust_on_first_use = true;
    c.connect_timeout = Duration::from_secs(10);
    if let Some(on) = on {
        c.jump = Some(Box::new(on.ssh.clone()));
        c.host_key_alias = Some(format!("lab-{}-{}.{}", meta.lab, meta.host, on.name));
    }
    c
}

/// How lab reaches a host that is up (from its domain's metadata).
pub fn ssh_config(
    lab: &Lab,
    state: &StateDir,
    h: &Host,
    cache: &Path,
) -> Result<SshConfig, provider::Error> {
    let not_up = || provider::Error::NotUp {
        provider: NAME.into(),
        host: h.name.clone(),
    };
    let hv = hypervisor_of(lab, h, state).map_err(|e| provider::Error::provider(NAME, e))?;
    let meta = hv
        .meta(&domain_name(lab, &h.name))
        .map_err(|e| provider::Error::provider(NAME, e))?
        .filter(|m| m.dir == abs(state.lab_dir()))
        .ok_or_else(not_up)?;
    Ok(vm_ssh(
        state,
        &meta,
        &cache.join("id_ed25519"),
        hv.on.as_ref(),
    ))
}

/// A host's state for `lab status`.
pub fn status(lab: &Lab, state: &StateDir) -> Vec<provider::HostState> {
    let dir = state.lab_dir();
    hosts_of(lab)
        .map(|h| {
            let name = domain_name(lab, &h.name);
            let read = || -> Result<provider::HostState, Error> {
                let hv = hypervisor_of(lab, h, state)?;
                if !hv.domains()?.contains(&name) {
                    return Ok(provider::HostState::new(&h.name, NAME, "not created"));
                }
                let meta = hv.meta(&name)?.filter(|m| m.dir == abs(dir));
                let st = match hv.state(&name)? {
                    DomState::Running => "running".to_string(),
                    DomState::ShutOff => "stopped".to_string(),
                    DomState::Paused => "paused".to_string(),
                    DomState::Other(o) => o,
                };
                let mut s = provider::HostState::new(&h.name, NAME, &st);
                s.machine = Some(format!("{name} on {}", hv.label()));
                s.ssh = meta.map(|m| format!("{}:{}", m.ssh_address, m.ssh_port));
                Ok(s)
            };
            read().unwrap_or_else(|e| {
                let mut s = provider::HostState::new(&h.name, NAME, "unknown");
                s.detail = Some(e.to_string());
                s
            })
        })
        .collect()
}

/// The lab's domains on a hypervisor (by name and metadata: this lab, this directory).
fn own_domains(hv: &Hypervisor, lab: &Lab, dir: &Path) -> Result<Vec<(String, LabMeta)>, Error> {
    let prefix = format!("lab-{}-", lab.name);
    let mut out = Vec::new();
    for d in hv.domains()? {
        if !d.starts_with(&prefix) {
            continue;
        }
        if let Some(m) = hv.meta(&d)?
            && m.dir == abs(dir)
            && m.lab == lab.name
        {
            out.push((d, m));
        }
    }
    Ok(out)
}

/// ACPI shutdown, then power off after `grace`.
pub fn halt(
    lab: &Lab,
    state: &StateDir,
    grace: Duration,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<String>, Error> {
    let mut halted = Vec::new();
    for hv in hypervisors(lab, state)?.values() {
        let running: Vec<String> = own_domains(hv, lab, state.lab_dir())?
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| hv.state(d).is_ok_and(|s| s == DomState::Running))
            .collect();
        for d in &running {
            hv.run(hv.virsh.shutdown(d))?;
        }
        let until = Instant::now() + grace;
        for d in running {
            while hv.state(&d)? != DomState::ShutOff && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(300));
            }
            if hv.state(&d)? != DomState::ShutOff {
                hv.remove(hv.virsh.destroy(&d))?;
                events(Event::Note(format!(
                    "{d}: no ACPI shutdown within {grace:?}; powered off"
                )));
            }
            halted.push(d);
        }
    }
    Ok(halted)
}

/// Remove everything of the lab on every hypervisor it uses: domains (with their volumes and
/// snapshots), leftover volumes, networks, bridges, taps and console logs. Found by name and
/// tag, so also after `up` was killed half-way.
pub fn destroy(
    lab: &Lab,
    state: &StateDir,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<String>, Error> {
    let dir = state.lab_dir();
    let mut removed = Vec::new();
    for hv in hypervisors(lab, state)?.values() {
        hv.ping()?;
        for (d, meta) in own_domains(hv, lab, dir)? {
            if hv.state(&d)? != DomState::ShutOff {
                hv.remove(hv.virsh.destroy(&d))?;
            }
            hv.remove(hv.virsh.undefine(&d))?;
            // The serial console, and libvirt's log of the domain's QEMU.
            hv.run(vec![
                "rm".into(),
                "-f".into(),
                format!("{CONSOLE_DIR}/{d}.serial.log"),
                format!("{CONSOLE_DIR}/{d}.log"),
            ])?;
            state.forget_known_host(
                &vm_ssh(state, &meta, Path::new(""), hv.on.as_ref()).known_hosts_pattern(),
            )?;
            removed.push(d);
        }
        let tags = [
            format!("-{}.qcow2", dir_tag(dir)),
            format!("-{}.iso", dir_tag(dir)),
        ];
        let prefix = format!("lab-{}-", lab.name);
        for v in hv.volumes()? {
            if v.starts_with(&prefix)
                && tags.iter().any(|t| v.ends_with(t))
                && hv.remove(hv.virsh.vol_delete(&hv.pool, &v))?
            {
                events(Event::Note(format!("{}: volume {v} removed", hv.label())));
            }
        }
        for n in hv.networks()? {
            let Some(segment) = n.strip_prefix(&prefix) else {
                continue;
            };
            let out = hv.run(hv.virsh.net_dumpxml(&n))?;
            if !out.success()
                || libvirt::network::bridge_of(&out.stdout_lossy()).as_deref()
                    != Some(bridge_name(lab, dir, segment).as_str())
            {
                continue;
            }
            let _ = hv.remove(hv.virsh.net_destroy(&n));
            hv.remove(hv.virsh.net_undefine(&n))?;
            removed.push(format!("network {n}"));
        }
        // Taps first (a bridge goes with its ports, but a tap of a domain lab was killed
        // before defining is on no bridge).
        let mut devices = hv.devices(&alias_prefix(lab, dir))?;
        devices.sort_by_key(|(name, _)| !name.starts_with("lt"));
        for (name, _) in devices {
            hv.check(net::devices::delete(&name))?;
        }
    }
    // The seeds' files lab wrote here.
    let seeds = state.file("libvirt");
    if seeds.exists() {
        std::fs::remove_dir_all(&seeds).map_err(|e| Error::File {
            what: "remove",
            path: seeds.clone(),
            source: e,
        })?;
    }
    Ok(removed)
}

/// Save or restore a snapshot of every running or stopped domain of the lab.
pub fn snapshot(
    lab: &Lab,
    state: &StateDir,
    op: &provider::SnapshotOp,
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    for h in hosts_of(lab) {
        let hv = hypervisor_of(lab, h, state)?;
        let d = domain_name(lab, &h.name);
        if !own_domains(&hv, lab, state.lab_dir())?
            .iter()
            .any(|(n, _)| *n == d)
        {
            return Err(Error::State(provider::Error::NotUp {
                provider: NAME.into(),
                host: h.name.clone(),
            }));
        }
        match op {
            provider::SnapshotOp::Save(name) => {
                let have = virsh::names(&hv.check(hv.virsh.snapshot_list(&d))?.stdout_lossy());
                if have.contains(name) {
                    hv.check(hv.virsh.snapshot_delete(&d, name))?;
                }
                hv.check(hv.virsh.snapshot_create_as(&d, name))?;
            }
            provider::SnapshotOp::Restore(name) => {
                hv.check(hv.virsh.snapshot_revert(&d, name))?;
            }
        }
        done.push(d);
    }
    Ok(done)
}

/// What `up` would do, as values (`lab up --dry-run`): nothing is run, not even virsh.
pub fn plan(
    lab: &Lab,
    dir: &Path,
    cache: &Path,
    ubuntu_mirror: &str,
) -> Result<Vec<provider::Action>, Error> {
    use provider::Action;
    let pool = pool_name();
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for h in hosts_of(lab) {
        let image = h.vm.image_or(DEFAULT_IMAGE);
        if seen.contains(&image) {
            continue;
        }
        seen.push(image);
        out.push(Action::note(
            None,
            format!(
                "base image `{image}`: built (lab's Debian), or downloaded and verified (a cloud image against signed sums, a box against Lab.toml's checksum) into lab's cache in {} when missing; overlays on this machine are backed by it in place, and it is uploaded once to another machine's pool `{pool}` ({}) as lab-base-<sha256>.<format>",
                cache.display(),
                pool_dir(&pool)
            ),
        ));
    }
    let mut segments: Vec<(String, String)> = Vec::new();
    let tunnels = lab.tunnels();
    for h in hosts_of(lab) {
        let seeded = images::seeded(h.vm.image_or(DEFAULT_IMAGE), dir, ubuntu_mirror);
        let uri = uri_of(h);
        let hv = Virsh::new(uri.local_form());
        let key = key_of(h);
        let on = match &h.machine {
            Some(m) => format!(" (on machine {m}, over lab's SSH)"),
            None if uri.is_remote() => format!(" (on {uri}, over lab's SSH)"),
            None => String::new(),
        };
        for n in nics(lab, h, dir)? {
            if segments.iter().any(|(s, k)| *s == n.segment && *k == key) {
                continue;
            }
            segments.push((n.segment.clone(), key.clone()));
            let bridge = bridge_name(lab, dir, &n.segment);
            let alias = format!("{}{}", alias_prefix(lab, dir), n.segment);
            for argv in net::devices::bridge(&bridge, &alias) {
                out.push(Action {
                    host: None,
                    what: format!("bridge {bridge} for {}{on}", n.segment),
                    argv: Some(argv),
                });
            }
            out.push(Action {
                host: None,
                what: format!(
                    "network {}: {}",
                    network_name(lab, &n.segment),
                    Network {
                        name: network_name(lab, &n.segment),
                        bridge
                    }
                    .xml()
                    .replace('\n', " ")
                ),
                argv: Some(hv.net_define(virsh::STDIN)),
            });
            if let Some(m) = &h.machine
                && let Some(t) = tunnels.iter().find(|t| t.wire == n.segment)
            {
                for argv in tunnel_argv(lab, dir, m, t)? {
                    out.push(Action {
                        host: None,
                        what: format!(
                            "tunnel for {} (VXLAN {}, UDP {}, MTU inside {}){on}",
                            n.segment,
                            t.vni,
                            t.port,
                            t.mtu.map_or("-".into(), |m| m.to_string())
                        ),
                        argv: Some(argv),
                    });
                }
            }
        }
        let d = domain(
            lab,
            h,
            dir,
            &pool,
            VirtType::Qemu,
            ("127.0.0.1", "127.0.0.1", FIRST_PORT),
            seeded,
        )?;
        for n in nics(lab, h, dir)? {
            let alias = format!("{}{}:{}", alias_prefix(lab, dir), h.name, n.name);
            for argv in net::devices::tap(&n.tap, &bridge_name(lab, dir, &n.segment), &alias) {
                out.push(Action {
                    host: Some(h.name.clone()),
                    what: format!("tap {} for {}{on}", n.tap, n.name),
                    argv: Some(argv),
                });
            }
        }
        out.push(Action {
            host: Some(h.name.clone()),
            what: format!(
                "overlay volume {}: {}",
                d.volume,
                libvirt::volume::Volume {
                    name: d.volume.clone(),
                    capacity_bytes: u64::from(h.vm.disk_gib) << 30,
                    backing: Some(("<base image>".into(), "<its format>".into())),
                }
                .xml()
                .replace('\n', " ")
            ),
            argv: Some(hv.vol_create(&pool, virsh::STDIN)),
        });
        if let Some(seed) = &d.seed {
            out.push(Action {
                host: Some(h.name.clone()),
                what: format!(
                    "NoCloud seed volume {seed} (user {}, lab's key, the NAT NIC by MAC), written in .lab/libvirt/{}/seed/ and uploaded as a CD-ROM",
                    h.vm.user, d.name
                ),
                argv: Some(hv.vol_create_as(&pool, seed, 0, "raw", None)),
            });
        }
        out.push(Action {
            host: Some(h.name.clone()),
            what: format!(
                "domain {}: {} vCPUs, {} MiB, SSH forwarded from a free port from {FIRST_PORT}{}, KVM or TCG as the hypervisor offers{on}",
                d.name,
                h.vm.cpus,
                h.vm.memory_mib,
                if h.machine.is_some() {
                    " on the machine's loopback (lab reaches it through the machine)"
                } else {
                    ""
                }
            ),
            argv: Some(hv.define(virsh::STDIN)),
        });
        out.push(Action {
            host: Some(h.name.clone()),
            what: format!("start {}", d.name),
            argv: Some(hv.start(&d.name)),
        });
        out.push(Action::note(
            Some(&h.name),
            "wait for SSH, name the NICs by MAC as in Lab.toml",
        ));
    }
    Ok(out)
}
