//! The VirtualBox provider: the guide's VMs from a Lab.toml, through `vbox` (the only crate
//! that knows VBoxManage's syntax).
//!
//! `up` creates what is missing (a linked clone of a base VM, an imported appliance, or an
//! unattended install from an ISO), adopts what exists, moves an SSH forward whose loopback
//! port another program took, starts the VMs headless and waits for SSH with the lab's key.
//! The lab's VMs carry the group `/lab-<lab>` and live in `.lab/vbox/`; `.lab/<lab>.vbox.json`
//! remembers their names and SSH ports, and is written before anything is created, so an
//! interrupted `up` is adopted by the next one. `destroy` finds the VMs by their group even
//! without that file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
pub use vbox::VBoxManage;
use vbox::args::{self, Attachment, Forward, Nic, Settings, Unattended};
use vbox::{Call, State as VmState};

use model::{Attach, Host, Lab};
pub use provider::Event;
use provider::StateDir;

use crate::NAME;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    VBox(#[from] vbox::Error),
    #[error("host `{host}`: {message}")]
    Model { host: String, message: String },
    #[error(
        "host `{host}`: the installer ISO {} is missing. Download ubuntu-22.04.5-live-server-amd64.iso from https://releases.ubuntu.com/22.04/ (check it against SHA256SUMS there) into that path, or set `image` to an .iso, an .ova or `vbox:BASE_VM`",
        path.display()
    )]
    NoIso { host: String, path: PathBuf },
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("host `{host}`: SSH did not come up: {source}")]
    Ssh {
        host: String,
        source: Box<guest::Error>,
    },
    #[error(transparent)]
    State(#[from] provider::Error),
    #[error(
        "VirtualBox {0} is not supported: lab knows the syntax of 6.1 to 7.1 (set LAB_VBOX_ANY_VERSION=1 to try anyway)"
    )]
    Unsupported(vbox::Version),
}

/// The VM name of a host: `lab-<lab>-<host>`.
pub fn vm_name(lab: &Lab, host: &str) -> String {
    format!("lab-{}-{host}", lab.name)
}

/// The VirtualBox group of a lab's VMs.
pub fn group(lab: &Lab) -> String {
    format!("/lab-{}", lab.name)
}

/// Where the lab's VMs live: `<dir>/.lab/vbox` (absolute: VirtualBox resolves relative paths
/// against its own directory).
pub fn basefolder(dir: &Path) -> PathBuf {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    StateDir::new(dir).file("vbox")
}

/// What lab remembers of a lab's VMs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub vms: BTreeMap<String, VmRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    /// The loopback port forwarded to the guest's SSH.
    pub ssh_port: u16,
}

/// The state file's name in `.lab/`: `<lab>.vbox.json`.
pub fn state_name(lab: &Lab) -> String {
    format!("{}.vbox.json", lab.name)
}

pub fn load_state(dir: &Path, lab: &Lab) -> LabState {
    StateDir::new(dir).read(&state_name(lab))
}

fn save_state(dir: &Path, lab: &Lab, s: &LabState) -> Result<(), Error> {
    Ok(StateDir::new(dir).write(&state_name(lab), s)?)
}

/// How lab reaches a VirtualBox host that is up: `user` on its loopback SSH forward with the
/// lab's key.
pub fn ssh_config(lab: &Lab, dir: &Path, h: &Host) -> Result<guest::SshConfig, provider::Error> {
    let port = load_state(dir, lab).vms.get(&h.name).map(|r| r.ssh_port);
    let state = StateDir::new(dir);
    provider::vm::ssh_config(&state, NAME, &h.name, port, &h.vm.user, || state.key())
}

fn hosts_of(lab: &Lab) -> impl Iterator<Item = &Host> {
    lab.hosts.iter().filter(|h| h.provider == NAME)
}

/// Where a VM comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An unattended install from an installer ISO (slow: tens of minutes).
    Iso(PathBuf),
    /// A linked clone of a base VM's snapshot, or a full clone (fast).
    Clone {
        base: String,
        snapshot: Option<String>,
    },
    /// An appliance.
    Ova(PathBuf),
    /// A Vagrant box (virtualbox provider): its `box.ovf` imported once as a base VM in the
    /// group [`BOX_GROUP`], with a snapshot, then a linked clone per host, as Vagrant's
    /// `linked_clone` does. Its VMs log in as `vagrant` with Vagrant's insecure key until lab
    /// puts its own key in place.
    Box {
        /// The box's `box.ovf`.
        ovf: PathBuf,
        /// The base VM's name, `lab-box-<box id>`.
        base: String,
        /// The base VM does not exist yet: import it and take its snapshot first.
        import: bool,
    },
}

/// The VirtualBox group of the base VMs imported from boxes (shared by every lab).
pub const BOX_GROUP: &str = "/lab-boxes";

/// The snapshot of a box's base VM that hosts are linked clones of.
pub const BOX_SNAPSHOT: &str = "lab-base";

/// Where the base VMs imported from boxes live: lab's cache (they outlive any one lab).
pub fn box_basefolder() -> PathBuf {
    provider::cache_dir("boxes").join("virtualbox-vms")
}

/// lab's image cache (`provider::cache_dir("images")`).
pub fn image_cache() -> PathBuf {
    provider::cache_dir("images")
}

/// The guide's OS, Ubuntu 22.04: the live server installer.
/// The image of hosts that set none: the guide's Ubuntu 22.04.
pub const DEFAULT_IMAGE: &str = "ubuntu-22.04";

pub const UBUNTU_22_04_ISO: &str = "ubuntu-22.04.5-live-server-amd64.iso";

pub fn source(h: &Host, dir: &Path) -> Result<Source, Error> {
    let image = h.vm.image_or(DEFAULT_IMAGE);
    if let Some(base) = image.strip_prefix("vbox:") {
        let (base, snapshot) = match base.split_once('@') {
            Some((b, s)) => (b.to_string(), Some(s.to_string())),
            None => (base.to_string(), None),
        };
        return Ok(Source::Clone { base, snapshot });
    }
    let path = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { dir.join(p) }
    };
    if image.ends_with(".ova") || image.ends_with(".ovf") {
        return Ok(Source::Ova(
            std::path::absolute(path(image)).unwrap_or_else(|_| path(image)),
        ));
    }
    if image.ends_with(".iso") {
        return Ok(Source::Iso(
            std::path::absolute(path(image)).unwrap_or_else(|_| path(image)),
        ));
    }
    match image {
        "ubuntu-22.04" => Ok(Source::Iso(image_cache().join(UBUNTU_22_04_ISO))),
        other => Err(Error::Model {
            host: h.name.clone(),
            message: format!(
                "image `{other}` has no VirtualBox source: use ubuntu-22.04, an .iso or .ova path, vbox:BASE_VM[@SNAPSHOT], or a Vagrant box (ORG/NAME[@VERSION], a .box file or URL)"
            ),
        }),
    }
}

/// The adapters of a host's VM: its NAT interface on NIC 1 (SSH forward, never an MPTCP
/// path), the others in Lab.toml order on NICs 2-8, each on an internal network.
pub fn settings(lab: &Lab, h: &Host, ssh_port: u16) -> Result<Settings, Error> {
    let model = |message: String| Error::Model {
        host: h.name.clone(),
        message,
    };
    provider::vm::nat_first(h, "a VirtualBox VM").map_err(model)?;
    let first = &h.interfaces[0];
    let mut nics = vec![Nic {
        slot: 1,
        attachment: Attachment::Nat(vec![Forward::ssh(ssh_port)]),
        mac: first.mac.map(|m| m.0),
    }];
    for (i, iface) in h.interfaces.iter().enumerate().skip(1) {
        let slot = u8::try_from(i + 1)
            .ok()
            .filter(|s| *s <= 8)
            .ok_or_else(|| model("a VirtualBox VM has at most 8 network adapters".into()))?;
        let net = match &iface.attach {
            Attach::Network(n) => n.clone(),
            // A point-to-point link is an internal network with two members.
            Attach::Link(l) => format!("lab-{}-{l}", lab.name),
            Attach::Nat => {
                return Err(model(format!(
                    "{}: only the first interface can be NAT",
                    iface.name
                )));
            }
        };
        nics.push(Nic {
            slot,
            attachment: Attachment::IntNet(net),
            mac: iface.mac.map(|m| m.0),
        });
    }
    Ok(Settings {
        memory_mib: h.vm.memory_mib,
        cpus: h.vm.cpus,
        nics,
    })
}

/// What differs between a VM's hardware (`showvminfo`) and what Lab.toml asks for: memory, CPUs,
/// and each NIC's slot, attachment, internal network and MAC (when Lab.toml gives one). NAT port
/// forwards are `up`'s own business and not compared. Empty when nothing differs.
pub fn hardware_changes(info: &vbox::VmInfo, want: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if info.memory_mib != Some(want.memory_mib) {
        out.push(format!(
            "memory {} -> {} MiB",
            info.memory_mib.map_or("?".into(), |m| m.to_string()),
            want.memory_mib
        ));
    }
    if info.cpus != Some(want.cpus) {
        out.push(format!(
            "CPUs {} -> {}",
            info.cpus.map_or("?".into(), |c| c.to_string()),
            want.cpus
        ));
    }
    let describe = |kind: &str, net: Option<&str>| match net {
        Some(n) => format!("{kind} {n}"),
        None => kind.to_string(),
    };
    for slot in 1..=8u8 {
        let have = info.nics.iter().find(|n| n.slot == slot);
        let wanted = want
            .nics
            .iter()
            .find(|n| n.slot == slot && n.attachment != Attachment::None);
        let have_desc = have.map(|n| describe(&n.kind, n.intnet.as_deref()));
        let want_desc = wanted.map(|n| match &n.attachment {
            Attachment::Nat(_) => "nat".to_string(),
            Attachment::IntNet(net) => describe("intnet", Some(net)),
            Attachment::None => "none".to_string(),
        });
        if have_desc != want_desc {
            out.push(format!(
                "NIC {slot} {} -> {}",
                have_desc.as_deref().unwrap_or("none"),
                want_desc.as_deref().unwrap_or("none")
            ));
            continue;
        }
        if let (Some(h), Some(Nic { mac: Some(m), .. })) = (have, wanted) {
            let want_mac = args::mac_hex(*m);
            if !h
                .mac
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&want_mac))
            {
                out.push(format!(
                    "NIC {slot} MAC {} -> {want_mac}",
                    h.mac.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    out
}

/// The settings that take a powered-off VM from `info` to `want`: the NICs Lab.toml no longer
/// has are removed, and NAT forwards are left as they are (they exist already).
fn reconfigure(info: &vbox::VmInfo, mut want: Settings) -> Settings {
    for n in &mut want.nics {
        if let Attachment::Nat(forwards) = &mut n.attachment {
            forwards.clear();
        }
    }
    for have in &info.nics {
        if !want.nics.iter().any(|n| n.slot == have.slot) {
            want.nics.push(Nic {
                slot: have.slot,
                attachment: Attachment::None,
                mac: None,
            });
        }
    }
    want
}

/// Run at the end of an unattended install, as root in the installer: the lab's key for
/// root, and openssh-server in the installed system.
pub fn post_install_command(public_key: &str) -> String {
    let key = net::shell::quote(public_key.trim());
    format!(
        "t=/target; [ -d /target/etc ] || t=; mkdir -p $t/root/.ssh && echo {key} >> $t/root/.ssh/authorized_keys && chmod 700 $t/root/.ssh && chmod 600 $t/root/.ssh/authorized_keys && (chroot ${{t:-/}} apt-get install -y openssh-server || true)"
    )
}

/// How the lab logs in to a VM it installs: its key, and the file with the user's password.
#[derive(Debug, Clone)]
pub struct Login {
    /// The lab's public key (a line of `authorized_keys`).
    pub public_key: String,
    /// `.lab/vm-password` ([`StateDir::password_file`]).
    pub password_file: PathBuf,
}

/// The calls that create a host's VM, in order. The ISO path starts the VM itself
/// (`unattended install --start-vm=headless`).
pub fn create_calls(
    q: vbox::Quirks,
    lab: &Lab,
    h: &Host,
    src: &Source,
    base: &Path,
    ssh_port: u16,
    login: &Login,
) -> Result<Vec<Call>, Error> {
    let name = vm_name(lab, &h.name);
    let g = group(lab);
    let s = settings(lab, h, ssh_port)?;
    Ok(match src {
        Source::Iso(iso) => {
            let disk = base.join(&name).join(format!("{name}.vdi"));
            vec![
                args::createvm(&name, &g, "Ubuntu_64", base),
                args::modifyvm(q, &name, &s),
                args::createmedium_disk(&disk, u64::from(h.vm.disk_gib) * 1024),
                args::storagectl_sata(&name),
                args::attach_disk(&name, &disk),
                args::attach_empty_dvd(&name),
                args::unattended_install(
                    &name,
                    &Unattended {
                        iso: iso.display().to_string(),
                        user: "lab".into(),
                        password_file: login.password_file.display().to_string(),
                        hostname: format!("{}.lab.internal", h.name),
                        post_install_command: post_install_command(&login.public_key),
                    },
                ),
            ]
        }
        Source::Clone { base: b, snapshot } => vec![
            args::clonevm(b, snapshot.as_deref(), &name, &g, base),
            args::modifyvm(q, &name, &s),
        ],
        Source::Ova(ova) => vec![
            args::import(ova, &name, &g, base),
            args::modifyvm(q, &name, &s),
        ],
        Source::Box {
            ovf,
            base: base_vm,
            import,
        } => {
            let mut calls = Vec::new();
            if *import {
                calls.push(args::import(ovf, base_vm, BOX_GROUP, &box_basefolder()));
                calls.push(args::snapshot_take(base_vm, BOX_SNAPSHOT));
            }
            calls.push(args::clonevm(base_vm, Some(BOX_SNAPSHOT), &name, &g, base));
            calls.push(args::modifyvm(q, &name, &s));
            calls
        }
    })
}

/// Runs calls, or only reports the mutating ones (`--dry-run`).
struct Driver<'a> {
    vbm: &'a VBoxManage<'a>,
    dry_run: bool,
    /// Without VBoxManage a dry run assumes that no VM exists yet.
    absent: bool,
    events: &'a mut dyn FnMut(Event),
}

impl Driver<'_> {
    fn call(&mut self, c: &Call) -> Result<String, Error> {
        if c.mutates() {
            (self.events)(Event::Call(c.to_string()));
            if self.dry_run {
                return Ok(String::new());
            }
        }
        Ok(self.vbm.run(c)?)
    }

    fn show(&self, vm: &str) -> Result<Option<vbox::VmInfo>, Error> {
        if self.absent {
            return Ok(None);
        }
        Ok(self.vbm.show(vm)?)
    }
}

/// A VM after `up`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpVm {
    pub host: String,
    pub name: String,
    pub ssh_port: u16,
    pub created: bool,
    /// Seconds from start to SSH (None in a dry run).
    pub boot_seconds: Option<f64>,
    /// `uname -r` of the guest.
    pub kernel: Option<String>,
}

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dry_run: bool,
    /// How long to wait for SSH: an unattended install takes tens of minutes.
    pub boot_timeout: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            dry_run: false,
            boot_timeout: Duration::from_secs(600),
        }
    }
}

fn version_check(vbm: &VBoxManage<'_>) -> Result<vbox::Quirks, Error> {
    let v = vbm.version()?;
    if !v.supported() && std::env::var_os("LAB_VBOX_ANY_VERSION").is_none() {
        return Err(Error::Unsupported(v));
    }
    Ok(v.quirks())
}

/// The loopback port of a VM's `ssh` forward on NIC 1, as VirtualBox reports it.
fn ssh_forward(info: &vbox::VmInfo) -> Option<u16> {
    info.nics
        .iter()
        .find(|n| n.slot == 1)
        .and_then(|n| n.forwards.iter().find(|f| f.name == "ssh"))
        .map(|f| f.host_port)
}

/// Record a host's VM and SSH port in the state file (not in a dry run).
fn remember(
    dir: &Path,
    lab: &Lab,
    state: &mut LabState,
    h: &Host,
    ssh_port: u16,
    dry_run: bool,
) -> Result<(), Error> {
    state.vms.insert(
        h.name.clone(),
        VmRecord {
            name: vm_name(lab, &h.name),
            ssh_port,
        },
    );
    if dry_run {
        Ok(())
    } else {
        save_state(dir, lab, state)
    }
}

/// Create, adopt and start the lab's VMs, then wait for SSH on each.
pub fn up(
    lab: &Lab,
    dir: &Path,
    vbm: &VBoxManage<'_>,
    opts: &UpOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<UpVm>, Error> {
    let (quirks, absent) = match version_check(vbm) {
        Ok(q) => (q, false),
        Err(Error::VBox(vbox::Error::NotInstalled { .. })) if opts.dry_run => {
            events(Event::Note(
                "VBoxManage is not installed here: showing the commands for VirtualBox 7.x on a machine with no VMs yet".into(),
            ));
            (vbox::Quirks::default(), true)
        }
        Err(e) => return Err(e),
    };
    let base = basefolder(dir);
    // A dry run changes nothing, the lab's key included: it shows where the key goes.
    let state_dir = StateDir::new(dir);
    let public_key = if opts.dry_run && !state_dir.file("id_ed25519").exists() {
        "<the lab's public key, .lab/id_ed25519.pub, made by `lab up`>".to_string()
    } else {
        let key = state_dir.key()?;
        std::fs::read_to_string(key.with_extension("pub")).map_err(|source| Error::File {
            what: "cannot read",
            path: key.with_extension("pub"),
            source,
        })?
    };
    // The VM user's password: random per lab, in .lab/ with mode 600 (a dry run shows the path).
    let password_file = if opts.dry_run {
        state_dir.file("vm-password")
    } else {
        state_dir.password_file()?
    };
    let login = Login {
        public_key,
        password_file,
    };
    let mut state = load_state(dir, lab);
    let mut d = Driver {
        vbm,
        dry_run: opts.dry_run,
        absent,
        events,
    };
    // A running VM cannot take new hardware: refused before anything is changed.
    let mut running_changed = Vec::new();
    for h in hosts_of(lab) {
        if let Some(info) = d.show(&vm_name(lab, &h.name))?
            && info.state.is_on()
        {
            let changes = hardware_changes(&info, &settings(lab, h, 0)?);
            if !changes.is_empty() {
                running_changed.push(format!("{} ({})", h.name, changes.join(", ")));
            }
        }
    }
    if !running_changed.is_empty() {
        return Err(Error::Model {
            host: running_changed.join("; "),
            message: "Lab.toml changed the VM's hardware while it runs, and a running VM cannot take that; nothing was changed. `lab halt` then `lab up` reconfigures it (its disk is kept)".into(),
        });
    }
    // Hosts Lab.toml no longer has (or no longer puts on VirtualBox): their VMs go.
    let gone = provider::vm::dropped_hosts(state.vms.keys(), lab, NAME);
    for g in gone {
        let Some(r) = state.vms.get(&g).cloned() else {
            continue;
        };
        if let Some(info) = d.show(&r.name)? {
            if info.state.is_on() {
                d.call(&args::controlvm(&r.name, args::Control::PowerOff))?;
            }
            d.call(&args::unregistervm_delete(&r.name))?;
        }
        if !opts.dry_run {
            StateDir::new(dir).forget_host_key("127.0.0.1", r.ssh_port)?;
            state.vms.remove(&g);
            save_state(dir, lab, &state)?;
        }
        (d.events)(Event::Note(format!(
            "{g}: no longer a VirtualBox host in Lab.toml: VM {} removed",
            r.name
        )));
    }
    let mut out = Vec::new();
    let mut starting = Vec::new();
    // Boxes this `up` resolved, and the base VMs it imports (once, for any number of hosts).
    let mut boxes_seen: BTreeMap<String, Option<provider::vagrant::BoxImage>> = BTreeMap::new();
    let mut imported: Vec<String> = Vec::new();
    for (index, h) in hosts_of(lab).enumerate() {
        let name = vm_name(lab, &h.name);
        let taken: Vec<u16> = state
            .vms
            .iter()
            .filter(|(k, _)| **k != h.name)
            .map(|(_, v)| v.ssh_port)
            .collect();
        let info = d.show(&name)?;
        let created = info.is_none();
        let recorded = state.vms.get(&h.name).map(|r| r.ssh_port);
        match info {
            None => {
                let image = h.vm.image_or(DEFAULT_IMAGE);
                let resolved = match boxes_seen.get(image) {
                    Some(b) => b.clone(),
                    None => {
                        let boxes = provider::vagrant::BoxCache {
                            dir,
                            cache: &provider::cache_dir("boxes"),
                            host: &guest::Local::new("local"),
                            dry_run: opts.dry_run,
                        };
                        let b = boxes.resolve(
                            image,
                            h.vm.checksum.as_deref(),
                            "virtualbox",
                            d.events,
                        )?;
                        boxes_seen.insert(image.to_string(), b.clone());
                        b
                    }
                };
                let src = match resolved {
                    Some(b) => {
                        let base_vm = format!("lab-box-{}", b.id);
                        let import = !imported.contains(&base_vm) && d.show(&base_vm)?.is_none();
                        imported.push(base_vm.clone());
                        if import {
                            (d.events)(Event::Note(format!(
                                "box {}: imported once as base VM {base_vm} (group {BOX_GROUP}), then a linked clone per host",
                                b.label
                            )));
                        }
                        Source::Box {
                            ovf: b.dir.join("box.ovf"),
                            base: base_vm,
                            import,
                        }
                    }
                    None => source(h, dir)?,
                };
                if let Source::Iso(iso) = &src
                    && !opts.dry_run
                    && !iso.is_file()
                {
                    return Err(Error::NoIso {
                        host: h.name.clone(),
                        path: iso.clone(),
                    });
                }
                let preferred = 42201 + u16::try_from(index).unwrap_or(0);
                let port = match recorded {
                    Some(p) if provider::vm::port_free(p) => p,
                    _ => provider::vm::pick_port(preferred, &taken),
                };
                // Remembered before anything is created: an interrupted `up` is adopted.
                remember(dir, lab, &mut state, h, port, opts.dry_run)?;
                for c in create_calls(quirks, lab, h, &src, &base, port, &login)? {
                    d.call(&c)?;
                }
                if !matches!(src, Source::Iso(_)) {
                    d.call(&args::startvm(&name))?;
                }
                starting.push((h, port, created));
            }
            Some(info) => {
                let forward = ssh_forward(&info);
                let mut port = forward.or(recorded).ok_or_else(|| Error::Model {
                    host: h.name.clone(),
                    message: format!("VM {name} exists but has no `ssh` NAT forward on NIC 1"),
                })?;
                if !info.state.is_on() && !provider::vm::port_free(port) {
                    let new = provider::vm::pick_port(port.saturating_add(1), &taken);
                    (d.events)(Event::Note(format!(
                        "{}: loopback port {port} is taken by another program; SSH moves to {new}",
                        h.name
                    )));
                    if forward.is_some() {
                        d.call(&args::natpf_delete(quirks, &name, 1, "ssh"))?;
                    }
                    d.call(&args::natpf_add(quirks, &name, 1, &Forward::ssh(new)))?;
                    port = new;
                }
                remember(dir, lab, &mut state, h, port, opts.dry_run)?;
                if info.state == VmState::Inaccessible {
                    return Err(Error::Model {
                        host: h.name.clone(),
                        message: format!(
                            "VM {name} is inaccessible (its settings file is gone): `lab destroy` removes it"
                        ),
                    });
                }
                if !info.state.is_on() {
                    let want = settings(lab, h, port)?;
                    let changes = hardware_changes(&info, &want);
                    if !changes.is_empty() {
                        (d.events)(Event::Note(format!(
                            "{}: Lab.toml changed its hardware ({}): reconfiguring {name}",
                            h.name,
                            changes.join(", ")
                        )));
                        d.call(&args::modifyvm(quirks, &name, &reconfigure(&info, want)))?;
                    }
                    d.call(&args::startvm(&name))?;
                }
                starting.push((h, port, false));
            }
        }
    }
    if opts.dry_run {
        return Ok(starting
            .into_iter()
            .map(|(h, port, created)| UpVm {
                host: h.name.clone(),
                name: vm_name(lab, &h.name),
                ssh_port: port,
                created,
                boot_seconds: None,
                kernel: None,
            })
            .collect());
    }
    // Wait for every VM's SSH at once.
    let started = Instant::now();
    let results =
        provider::vm::each_in_parallel(&starting, |(h, port, created)| -> Result<UpVm, Error> {
            let cfg = ssh_config(lab, dir, h)?;
            let ssh = guest::Ssh::new(cfg.clone());
            if boxes::is_box(h.vm.image_or(DEFAULT_IMAGE)) {
                // Vagrant's first boot: the box's insecure key gives way to the lab's.
                provider::vagrant::swap_insecure_key(
                    &cfg,
                    &login.public_key,
                    &StateDir::new(dir).path(),
                    opts.boot_timeout,
                )
                .map_err(|e| match e {
                    provider::Error::Command(source) => Error::Ssh {
                        host: h.name.clone(),
                        source,
                    },
                    other => other.into(),
                })?;
            } else {
                ssh.wait_reachable(opts.boot_timeout)
                    .map_err(|e| Error::Ssh {
                        host: h.name.clone(),
                        source: Box::new(e),
                    })?;
            }
            let kernel = guest::Exec::run(&ssh, &guest::Command::new(["uname", "-r"]))
                .ok()
                .filter(guest::Output::success)
                .map(|o| o.stdout_lossy().trim().to_string());
            Ok(UpVm {
                host: h.name.clone(),
                name: vm_name(lab, &h.name),
                ssh_port: *port,
                created: *created,
                boot_seconds: Some(started.elapsed().as_secs_f64()),
                kernel,
            })
        });
    for r in results {
        out.push(r?);
    }
    Ok(out)
}

/// A VM's state, for `lab status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    pub host: String,
    pub name: String,
    /// `None`: no such VM.
    pub state: Option<String>,
    pub ssh_port: Option<u16>,
}

pub fn status(lab: &Lab, dir: &Path, vbm: &VBoxManage<'_>) -> Result<Vec<VmStatus>, Error> {
    let state = load_state(dir, lab);
    hosts_of(lab)
        .map(|h| {
            let name = vm_name(lab, &h.name);
            let info = vbm.show(&name)?;
            Ok(VmStatus {
                host: h.name.clone(),
                state: info.as_ref().map(|i| i.state.as_str().to_string()),
                ssh_port: info
                    .as_ref()
                    .and_then(ssh_forward)
                    .or_else(|| state.vms.get(&h.name).map(|r| r.ssh_port)),
                name,
            })
        })
        .collect()
}

/// Shut the VMs down: ACPI power button, then power off after `grace`.
pub fn halt(
    lab: &Lab,
    vbm: &VBoxManage<'_>,
    grace: Duration,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<String>, Error> {
    let mut asked = Vec::new();
    for h in hosts_of(lab) {
        let name = vm_name(lab, &h.name);
        match vbm.show(&name)? {
            Some(i) if i.state.is_on() => {
                events(Event::Call(
                    args::controlvm(&name, args::Control::AcpiPowerButton).to_string(),
                ));
                vbm.run(&args::controlvm(&name, args::Control::AcpiPowerButton))?;
                asked.push(name);
            }
            _ => {}
        }
    }
    let deadline = Instant::now() + grace;
    let mut halted = Vec::new();
    for name in asked {
        loop {
            let on = vbm.show(&name)?.is_some_and(|i| i.state.is_on());
            if !on {
                break;
            }
            if Instant::now() >= deadline {
                events(Event::Note(format!(
                    "{name} ignored the ACPI power button for {grace:?}: powering it off"
                )));
                let c = args::controlvm(&name, args::Control::PowerOff);
                events(Event::Call(c.to_string()));
                vbm.run(&c)?;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        halted.push(name);
    }
    Ok(halted)
}

/// Remove the lab's VMs and their disks: those of the state file and every VM in the lab's
/// group (also when the state file is gone), stopping running ones first.
pub fn destroy(
    lab: &Lab,
    dir: &Path,
    vbm: &VBoxManage<'_>,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<String>, Error> {
    let state = load_state(dir, lab);
    let g = group(lab);
    let mut names: Vec<String> = state.vms.values().map(|r| r.name.clone()).collect();
    for listed in vbm.list_vms()? {
        let Some(name) = listed.name else {
            events(Event::Note(format!(
                "VM {{{}}} is inaccessible: its group cannot be read, so it is left alone",
                listed.uuid
            )));
            continue;
        };
        if names.contains(&name) {
            continue;
        }
        if let Some(info) = vbm.show(&listed.uuid)?
            && info.groups.contains(&g)
        {
            names.push(name);
        }
    }
    let mut removed = Vec::new();
    for name in names {
        let Some(info) = vbm.show(&name)? else {
            continue;
        };
        if info.state.is_on() {
            let c = args::controlvm(&name, args::Control::PowerOff);
            events(Event::Call(c.to_string()));
            vbm.run(&c)?;
        }
        let c = args::unregistervm_delete(&name);
        events(Event::Call(c.to_string()));
        vbm.run(&c)?;
        removed.push(name);
    }
    for r in state.vms.values() {
        StateDir::new(dir).forget_host_key("127.0.0.1", r.ssh_port)?;
    }
    let _ = StateDir::new(dir).remove(&state_name(lab));
    Ok(removed)
}

/// `lab snapshot save NAME`: a snapshot of every VM (running ones live).
pub fn snapshot_save(
    lab: &Lab,
    vbm: &VBoxManage<'_>,
    snapshot: &str,
    events: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    for h in hosts_of(lab) {
        let c = args::snapshot_take(&vm_name(lab, &h.name), snapshot);
        events(Event::Call(c.to_string()));
        vbm.run(&c)?;
    }
    Ok(())
}

/// `lab snapshot restore NAME`: power off, restore, start again, wait for SSH.
pub fn snapshot_restore(
    lab: &Lab,
    dir: &Path,
    vbm: &VBoxManage<'_>,
    snapshot: &str,
    boot_timeout: Duration,
    events: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    for h in hosts_of(lab) {
        let name = vm_name(lab, &h.name);
        if vbm.show(&name)?.is_some_and(|i| i.state.is_on()) {
            let c = args::controlvm(&name, args::Control::PowerOff);
            events(Event::Call(c.to_string()));
            vbm.run(&c)?;
        }
        for c in [
            args::snapshot_restore(&name, snapshot),
            args::startvm(&name),
        ] {
            events(Event::Call(c.to_string()));
            vbm.run(&c)?;
        }
    }
    for h in hosts_of(lab) {
        let ssh = guest::Ssh::new(ssh_config(lab, dir, h)?);
        ssh.wait_reachable(boot_timeout).map_err(|e| Error::Ssh {
            host: h.name.clone(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Preset;

    fn builtin() -> Lab {
        Preset::Builtin
            .load()
            .unwrap()
            .with_provider(&model::Provider::new(NAME).unwrap())
    }

    /// The VM as `showvminfo` reads it when it has exactly what `want` asks for.
    fn info_of(want: &Settings) -> vbox::VmInfo {
        vbox::VmInfo {
            name: Some("lab-mptcp-ue1".into()),
            uuid: "u".into(),
            groups: vec!["/lab-mptcp".into()],
            state: VmState::PowerOff,
            memory_mib: Some(want.memory_mib),
            cpus: Some(want.cpus),
            cfg_file: None,
            nics: want
                .nics
                .iter()
                .map(|n| vbox::parse::NicInfo {
                    slot: n.slot,
                    kind: match &n.attachment {
                        Attachment::Nat(_) => "nat".into(),
                        _ => "intnet".into(),
                    },
                    intnet: match &n.attachment {
                        Attachment::IntNet(i) => Some(i.clone()),
                        _ => None,
                    },
                    mac: n.mac.map(args::mac_hex),
                    cable_connected: Some(true),
                    forwards: Vec::new(),
                })
                .collect(),
            media: Vec::new(),
            current_snapshot: None,
        }
    }

    #[test]
    fn hardware_changes_are_named_and_a_removed_nic_is_taken_out() {
        let lab = builtin();
        let h = &lab.hosts[0];
        let want = settings(&lab, h, 42201).unwrap();
        let same = info_of(&want);
        assert_eq!(hardware_changes(&same, &want), Vec::<String>::new());

        // Lab.toml: more memory, one NIC fewer, another MAC on NIC 2.
        let mut h2 = h.clone();
        h2.vm.memory_mib = 4096;
        h2.interfaces.pop();
        let mut smaller = lab.clone();
        smaller.hosts[0] = h2.clone();
        let mut want2 = settings(&smaller, &h2, 42201).unwrap();
        want2.nics[1].mac = Some([8, 0, 0x27, 0, 0, 0x99]);
        let changes = hardware_changes(&same, &want2);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes[0].starts_with("memory 2048 -> 4096"), "{changes:?}");
        assert!(
            changes
                .iter()
                .any(|c| c.contains("MAC") && c.contains("080027000099"))
        );
        let last = same.nics.last().unwrap().slot;
        assert!(
            changes
                .iter()
                .any(|c| c == &format!("NIC {last} intnet ue1-ue2_v1_2 -> none")),
            "{changes:?}"
        );
        // The reconfiguration removes that NIC and leaves the NAT forward alone.
        let r = reconfigure(&same, want2);
        assert!(
            r.nics
                .iter()
                .any(|n| n.slot == last && n.attachment == Attachment::None)
        );
        assert!(
            r.nics
                .iter()
                .all(|n| n.attachment != Attachment::Nat(vec![Forward::ssh(42201)]))
        );
    }

    #[test]
    fn the_guides_vm_settings() {
        let lab = builtin();
        let h = lab.host("ue1").unwrap();
        let s = settings(&lab, h, 42201).unwrap();
        assert_eq!((s.memory_mib, s.cpus), (2048, 2));
        assert_eq!(
            s.nics[0].attachment,
            Attachment::Nat(vec![Forward::ssh(42201)])
        );
        assert_eq!(s.nics.len(), 4);
        for n in &s.nics[1..] {
            assert_eq!(n.attachment, Attachment::IntNet("ue1-ue2_v1_2".into()));
        }
        assert_eq!(vm_name(&lab, "ue1"), "lab-mptcp-ue1");
        assert_eq!(group(&lab), "/lab-mptcp");
    }

    #[test]
    fn a_vm_needs_nat_first_and_at_most_eight_nics() {
        let mut lab = builtin();
        let h = &mut lab.hosts[0];
        h.interfaces.rotate_left(1);
        let e = settings(&lab, &lab.hosts[0], 1).unwrap_err();
        assert!(e.to_string().contains("NAT interface first"), "{e}");

        let mut lab = builtin();
        let extra = lab.hosts[0].interfaces[1].clone();
        for i in 0..6 {
            let mut x = extra.clone();
            x.name = format!("eth{i}");
            lab.hosts[0].interfaces.push(x);
        }
        let e = settings(&lab, &lab.hosts[0], 1).unwrap_err();
        assert!(e.to_string().contains("at most 8"), "{e}");
    }

    #[test]
    fn image_sources() {
        let lab = builtin();
        let mut h = lab.hosts[0].clone();
        let dir = Path::new("/labs/x");
        assert_eq!(
            source(&h, dir).unwrap(),
            Source::Iso(image_cache().join(UBUNTU_22_04_ISO))
        );
        h.vm.image = Some("vbox:base@clean".into());
        assert_eq!(
            source(&h, dir).unwrap(),
            Source::Clone {
                base: "base".into(),
                snapshot: Some("clean".into())
            }
        );
        h.vm.image = Some("images/u.ova".into());
        assert_eq!(
            source(&h, dir).unwrap(),
            Source::Ova("/labs/x/images/u.ova".into())
        );
        h.vm.image = Some("debian-12".into());
        assert!(source(&h, dir).is_err());
    }

    #[test]
    fn the_post_install_command_quotes_the_key() {
        let c = post_install_command("ssh-ed25519 AAAA lab's key\n");
        assert!(
            c.contains(r#"echo 'ssh-ed25519 AAAA lab'"'"'s key' >>"#),
            "{c}"
        );
    }
}
