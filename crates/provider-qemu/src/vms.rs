//! The QEMU provider: one VM per host from lab's Debian base image (a qcow2 overlay each),
//! booting through GRUB from its own disk, NIC 1 on user-mode NAT with SSH forwarded from a free
//! loopback port, the lab's segments and links as `vde_switch`es (never the host's network).
//!
//! Every process lab starts (QEMU, switches) writes a PID file under `.lab/qemu/` and is
//! recorded in `.lab/<lab>.qemu.json` before lab waits for anything, so `destroy` ends them
//! even after lab itself was killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Command, Exec};
use qemu::accel::Accel;
use qemu::vm::{self, SegmentNic, VmSpec};
use serde::{Deserialize, Serialize};

pub use images::{DEFAULT_IMAGE, Options as ImageOptions, UBUNTU_CLOUD_IMAGES};

use model::{Attach, Host, Lab};
pub use provider::Event;
use provider::StateDir;

use crate::NAME;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] qemu::image::Error),
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error(transparent)]
    State(#[from] provider::Error),
    #[error("host `{host}`: {message}")]
    Model { host: String, message: String },
    #[error("host `{host}`: SSH did not come up (serial console: {}): {source}", console.display())]
    Ssh {
        host: String,
        console: PathBuf,
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
            images::Error::Fetch(e) => Error::Fetch(e),
            images::Error::Host(e) => Error::Host(e),
            images::Error::State(e) => Error::State(e),
            images::Error::Model { host, message } => Error::Model { host, message },
        }
    }
}

/// The PCI slots of NICs 2-8, as VirtualBox numbers them (enp0s8, enp0s9, enp0s10, enp0s16...).
pub const SEGMENT_SLOTS: [u8; 7] = [8, 9, 10, 16, 17, 18, 19];

pub fn vm_name(lab: &Lab, host: &str) -> String {
    format!("lab-{}-{host}", lab.name)
}

/// `<dir>/.lab/qemu` (absolute).
pub fn workdir(dir: &Path) -> PathBuf {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    StateDir::new(dir).file("qemu")
}

pub fn state_file(dir: &Path, lab: &Lab) -> PathBuf {
    StateDir::new(dir).file(&state_name(lab))
}

/// What lab remembers of a lab's VMs and switches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The base image of the last VM started (each VM's own is in its record).
    pub image: PathBuf,
    /// The key the image's root accepts.
    pub key: PathBuf,
    pub vms: BTreeMap<String, VmRecord>,
    /// Segment or link name -> the switch's PID file.
    pub switches: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub ssh_port: u16,
    pub disk: PathBuf,
    pub pidfile: PathBuf,
    pub monitor: PathBuf,
    pub console: PathBuf,
    /// The image its overlay is on.
    #[serde(default)]
    pub base: PathBuf,
    /// Lab.toml's `image` the disk was made from (empty in a state file older than this).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The NoCloud seed (cloud images).
    #[serde(default)]
    pub seed: Option<PathBuf>,
    /// The QEMU command line it was started with: a running VM is adopted only while Lab.toml
    /// still gives the same one (its NICs, memory, CPUs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
}

/// The state file's name in `.lab/`.
pub fn state_name(lab: &Lab) -> String {
    format!("{}.qemu.json", lab.name)
}

pub fn load_state(dir: &Path, lab: &Lab) -> LabState {
    StateDir::new(dir).read(&state_name(lab))
}

fn save_state(dir: &Path, lab: &Lab, s: &LabState) -> Result<(), Error> {
    Ok(StateDir::new(dir).write(&state_name(lab), s)?)
}

/// How lab reaches a QEMU host that is up: root (or `user`) on its loopback SSH forward with
/// the key of lab's images.
pub fn ssh_config(lab: &Lab, dir: &Path, h: &Host) -> Result<guest::SshConfig, provider::Error> {
    let state = load_state(dir, lab);
    let port = state.vms.get(&h.name).map(|r| r.ssh_port);
    provider::vm::ssh_config(&StateDir::new(dir), NAME, &h.name, port, &h.vm.user, || {
        Ok(state.key.clone())
    })
}

fn hosts_of(lab: &Lab) -> impl Iterator<Item = &Host> {
    lab.hosts.iter().filter(|h| h.provider == NAME)
}

/// The PID in a PID file, if that process still runs and is `expect` (`qemu-system`,
/// `vde_switch`): a PID the system reused for something else is not ours.
pub fn running_pid(pidfile: &Path, expect: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(expect)
        .then_some(pid)
}

fn kill(pidfile: &Path, expect: &str) -> bool {
    match running_pid(pidfile, expect) {
        Some(pid) => {
            // SIGKILL by PID, only to a process lab started (checked above).
            let _ =
                guest::Local::new("local").run(&Command::new(["kill", "-KILL", &pid.to_string()]));
            let until = Instant::now() + Duration::from_secs(5);
            while running_pid(pidfile, expect).is_some() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        }
        None => false,
    }
}

/// The segment (or link) each non-NAT interface is on, with its slot and MAC.
fn segment_nics(
    lab: &Lab,
    h: &Host,
    work: &Path,
) -> Result<Vec<(String, SegmentNic, String)>, Error> {
    let mut out = Vec::new();
    let mut slots = SEGMENT_SLOTS.iter();
    for (i, iface) in h.interfaces.iter().enumerate() {
        let seg = match &iface.attach {
            Attach::Nat if i == 0 => continue,
            Attach::Nat => {
                return Err(Error::Model {
                    host: h.name.clone(),
                    message: format!("{}: only the first interface can be NAT", iface.name),
                });
            }
            Attach::Network(n) => format!("{}-net-{n}", lab.name),
            Attach::Link(l) => format!("{}-link-{l}", lab.name),
        };
        let slot = *slots.next().ok_or_else(|| Error::Model {
            host: h.name.clone(),
            message: "a QEMU VM of lab has at most 8 NICs".into(),
        })?;
        let mac = iface
            .mac
            .map(|m| m.0)
            .unwrap_or_else(|| vm::stable_mac(&lab.name, &h.name, slot));
        out.push((
            seg.clone(),
            SegmentNic {
                pci_slot: slot,
                mac,
                switch: work.join("switch").join(&seg),
            },
            iface.name.clone(),
        ));
    }
    Ok(out)
}

/// A VM's QEMU spec.
pub fn vm_spec(
    lab: &Lab,
    h: &Host,
    rec: &VmRecord,
    accel: &Accel,
    work: &Path,
) -> Result<VmSpec, Error> {
    provider::vm::nat_first(h, "a QEMU VM").map_err(|message| Error::Model {
        host: h.name.clone(),
        message,
    })?;
    Ok(VmSpec {
        name: rec.name.clone(),
        memory_mib: h.vm.memory_mib,
        cpus: h.vm.cpus,
        accel: accel.clone(),
        disk: rec.disk.clone(),
        disk_format: "qcow2",
        ssh_port: Some(rec.ssh_port),
        nat_mac: Some(
            h.interfaces[0]
                .mac
                .map(|m| m.0)
                .unwrap_or_else(|| vm::stable_mac(&lab.name, &h.name, 3)),
        ),
        nics: segment_nics(lab, h, work)?
            .into_iter()
            .map(|(_, n, _)| n)
            .collect(),
        serial_log: rec.console.clone(),
        monitor: Some(rec.monitor.clone()),
        pidfile: Some(rec.pidfile.clone()),
        direct_boot: None,
        seed: rec.seed.clone(),
    })
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub boot_timeout: Duration,
    /// Where images come from and go (the cache also holds lab's key).
    pub images: images::Options,
}

/// Write a VM's NoCloud seed (its files beside it, for people to read) and make the ISO.
fn write_seed(
    host: &dyn Exec,
    lab: &Lab,
    h: &Host,
    vmdir: &Path,
    public_key: &str,
) -> Result<PathBuf, Error> {
    let nat = &h.interfaces[0];
    let seed = images::Seed {
        instance_id: vm_name(lab, &h.name),
        hostname: h.name.clone(),
        user: h.vm.user.clone(),
        public_key: public_key.to_string(),
        nat_mac: vm::mac(
            nat.mac
                .map(|m| m.0)
                .unwrap_or_else(|| vm::stable_mac(&lab.name, &h.name, 3)),
        ),
        nat_name: nat.name.clone(),
    };
    Ok(images::write_seed(host, &seed, vmdir)?)
}

/// A VM after `up`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpVm {
    pub host: String,
    pub name: String,
    pub ssh_port: u16,
    pub started: bool,
    pub boot_seconds: f64,
    pub kernel: String,
    /// A box's VM whose Vagrant insecure key (`ed25519`, `rsa`) lab replaced with its own.
    pub key_swapped: Option<&'static str>,
}

/// The actions `up` takes, as values: a base image per distinct image, a switch per segment,
/// an overlay and a QEMU process per VM. Ports are the recorded or preferred ones (`up` moves a
/// forward whose port another program took).
pub fn plan(lab: &Lab, dir: &Path, cache: &Path) -> Result<Vec<provider::Action>, Error> {
    use provider::Action;
    let accel = qemu::accel::probe(Path::new("/"));
    let work = workdir(dir);
    let state = load_state(dir, lab);
    refuse_changed_image(lab, &state)?;
    let mut out = Vec::new();
    let mut images: Vec<&str> = Vec::new();
    for h in hosts_of(lab) {
        let image = h.vm.image_or(DEFAULT_IMAGE);
        if !images.contains(&image) {
            images.push(image);
            out.push(Action::note(
                None,
                if boxes::is_box(image) {
                    format!(
                        "base image: Vagrant box `{image}` (a libvirt box: Vagrant's copy, or the .box unpacked into {}); its VMs log in as {} with Vagrant's insecure key, replaced by the lab's key on the first boot",
                        cache.join("boxes").display(),
                        h.vm.user
                    )
                } else {
                    format!(
                        "base image `{image}`: from lab's cache in {} (built or downloaded and verified when missing)",
                        cache.display()
                    )
                },
            ));
        }
    }
    let mut segments: Vec<String> = Vec::new();
    for h in hosts_of(lab) {
        for (seg, n, _) in segment_nics(lab, h, &work)? {
            if !segments.contains(&seg) {
                let pidfile = work.join(format!("switch-{seg}.pid"));
                out.push(Action {
                    host: None,
                    what: format!("switch {seg}"),
                    argv: Some(vm::switch_argv(&n.switch, &pidfile)),
                });
                segments.push(seg);
            }
        }
    }
    for (index, h) in hosts_of(lab).enumerate() {
        let name = vm_name(lab, &h.name);
        let vmdir = work.join(&name);
        let base = state.vms.get(&h.name).map_or_else(
            || cache.join(h.vm.image_or(DEFAULT_IMAGE)),
            |r| r.base.clone(),
        );
        let rec = VmRecord {
            name: name.clone(),
            ssh_port: state
                .vms
                .get(&h.name)
                .map_or(42301 + u16::try_from(index).unwrap_or(0), |r| r.ssh_port),
            disk: vmdir.join("disk.qcow2"),
            pidfile: vmdir.join("qemu.pid"),
            monitor: vmdir.join("monitor.sock"),
            console: vmdir.join("console.log"),
            base: base.clone(),
            seed: None,
            image: h.vm.image_or(DEFAULT_IMAGE).to_string(),
            argv: Vec::new(),
        };
        out.push(Action {
            host: Some(h.name.clone()),
            what: format!("overlay disk of {name}"),
            argv: Some(vm::overlay_argv(&base, "qcow2", &rec.disk, None)),
        });
        out.push(Action {
            host: Some(h.name.clone()),
            what: format!(
                "VM {name}: {} vCPUs, {} MiB, SSH on 127.0.0.1:{}",
                h.vm.cpus, h.vm.memory_mib, rec.ssh_port
            ),
            argv: Some(vm::argv(&vm_spec(lab, h, &rec, &accel, &work)?)),
        });
        out.push(Action::note(
            Some(&h.name),
            "wait for SSH, name the NICs by MAC as in Lab.toml",
        ));
    }
    Ok(out)
}

/// A running VM whose Lab.toml now asks for other hardware (a NIC added or removed, another
/// network, MAC, memory or CPU count) cannot take it while it runs: refused before anything is
/// changed, naming the hosts and the fix (halt, then up: the disk is kept).
fn refuse_changed_hardware(
    lab: &Lab,
    state: &LabState,
    accel: &Accel,
    work: &Path,
) -> Result<(), Error> {
    let mut changed = Vec::new();
    for h in hosts_of(lab) {
        let Some(rec) = state.vms.get(&h.name) else {
            continue;
        };
        if rec.argv.is_empty() || running_pid(&rec.pidfile, "qemu-system").is_none() {
            continue;
        }
        if vm::argv(&vm_spec(lab, h, rec, accel, work)?) != rec.argv {
            changed.push(h.name.clone());
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Model {
        host: changed.join(", "),
        message: "Lab.toml changed the VM's hardware (NICs, networks, MACs, memory or CPUs) while it runs, and a running VM cannot take that; nothing was changed. `lab halt` then `lab up` starts it again with the new hardware (its disk is kept)".into(),
    })
}

/// A VM whose disk was made from another image than Lab.toml now gives it: the disk holds
/// what was done on the VM (a kernel installed, files) and cannot move to another image, so
/// `up` refuses before anything is fetched or changed, naming the hosts, both images and the
/// fix.
fn refuse_changed_image(lab: &Lab, state: &LabState) -> Result<(), Error> {
    let changed: Vec<(String, String, String)> = hosts_of(lab)
        .filter_map(|h| {
            let rec = state.vms.get(&h.name)?;
            let now = h.vm.image_or(DEFAULT_IMAGE);
            (!rec.image.is_empty() && rec.image != now && rec.disk.is_file())
                .then(|| (h.name.clone(), rec.image.clone(), now.to_string()))
        })
        .collect();
    match provider::vm::changed_images(&changed, None) {
        None => Ok(()),
        Some((host, message)) => Err(Error::Model { host, message }),
    }
}

/// Build or reuse the base image, start the switches and VMs (adopting running ones), wait for
/// SSH, and give the guests' NICs the Lab.toml names by MAC.
pub fn up(
    lab: &Lab,
    dir: &Path,
    host: &dyn Exec,
    opts: &UpOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<UpVm>, Error> {
    let accel = qemu::accel::probe(Path::new("/"));
    if let Accel::Tcg { why } = &accel {
        events(Event::Note(format!("software emulation (TCG): {why}")));
    }
    let mut state = load_state(dir, lab);
    refuse_changed_image(lab, &state)?;
    let public_key = qemu::image::ensure_key(host, &opts.images.cache)?;
    let mut bases: BTreeMap<String, images::Base> = BTreeMap::new();
    for h in hosts_of(lab) {
        let image = h.vm.image_or(DEFAULT_IMAGE).to_string();
        if let std::collections::btree_map::Entry::Vacant(e) = bases.entry(image) {
            e.insert(images::resolve(h, dir, host, &opts.images, &accel, events)?);
        }
    }
    let work = workdir(dir);
    host.check(&Command::new([
        "mkdir",
        "-p",
        &work.join("switch").display().to_string(),
    ]))?;
    state.key = opts.images.cache.join("id_ed25519");
    refuse_changed_hardware(lab, &state, &accel, &work)?;
    // Hosts Lab.toml no longer has (or no longer puts on QEMU): their VMs go.
    let gone = provider::vm::dropped_hosts(state.vms.keys(), lab, NAME);
    for g in gone {
        if let Some(r) = state.vms.remove(&g) {
            kill(&r.pidfile, "qemu-system");
            StateDir::new(dir).forget_host_key("127.0.0.1", r.ssh_port)?;
            let _ = std::fs::remove_dir_all(work.join(&r.name));
            save_state(dir, lab, &state)?;
            events(Event::Note(format!(
                "{g}: no longer a QEMU host in Lab.toml: its VM {} and disk removed",
                r.name
            )));
        }
    }

    // Switches for every segment and link a QEMU host is on.
    let mut segments = Vec::new();
    for h in hosts_of(lab) {
        for (seg, n, _) in segment_nics(lab, h, &work)? {
            if !segments.iter().any(|(s, _)| *s == seg) {
                segments.push((seg, n.switch));
            }
        }
    }
    for (seg, sock) in &segments {
        let pidfile = work.join(format!("switch-{seg}.pid"));
        state.switches.insert(seg.clone(), pidfile.clone());
        save_state(dir, lab, &state)?;
        if running_pid(&pidfile, "vde_switch").is_none() {
            host.check(&Command::new(vm::switch_argv(sock, &pidfile)))?;
        }
    }

    let mut started = Vec::new();
    for (index, h) in hosts_of(lab).enumerate() {
        let name = vm_name(lab, &h.name);
        let vmdir = work.join(&name);
        host.check(&Command::new(["mkdir", "-p", &vmdir.display().to_string()]))?;
        let taken: Vec<u16> = state
            .vms
            .iter()
            .filter(|(k, _)| **k != h.name)
            .map(|(_, v)| v.ssh_port)
            .collect();
        let pidfile = vmdir.join("qemu.pid");
        let running = running_pid(&pidfile, "qemu-system").is_some();
        let port = match state.vms.get(&h.name) {
            Some(r) if running || provider::vm::port_free(r.ssh_port) => r.ssh_port,
            _ => provider::vm::pick_port(42301 + u16::try_from(index).unwrap_or(0), &taken),
        };
        let base = &bases[h.vm.image_or(DEFAULT_IMAGE)];
        let mut rec = VmRecord {
            name: name.clone(),
            ssh_port: port,
            disk: vmdir.join("disk.qcow2"),
            pidfile,
            monitor: vmdir.join("monitor.sock"),
            console: vmdir.join("console.log"),
            base: base.path.clone(),
            seed: base.seeded.then(|| vmdir.join("seed.iso")),
            image: h.vm.image_or(DEFAULT_IMAGE).to_string(),
            argv: Vec::new(),
        };
        rec.argv = if running {
            state
                .vms
                .get(&h.name)
                .map(|r| r.argv.clone())
                .unwrap_or_default()
        } else {
            vm::argv(&vm_spec(lab, h, &rec, &accel, &work)?)
        };
        state.image = base.path.clone();
        state.vms.insert(h.name.clone(), rec.clone());
        save_state(dir, lab, &state)?;
        if running {
            started.push((h, rec, false, Instant::now()));
            continue;
        }
        if !host
            .run(&Command::new([
                "test",
                "-f",
                &rec.disk.display().to_string(),
            ]))?
            .success()
        {
            // A cloud image grows its root filesystem into the room the overlay gives it.
            let want = u64::from(h.vm.disk_gib) << 30;
            let size = (base.seeded && want > base.virtual_size).then_some(h.vm.disk_gib);
            host.check(&Command::new(vm::overlay_argv(
                &base.path,
                &base.format,
                &rec.disk,
                size,
            )))?;
        }
        if base.seeded {
            write_seed(host, lab, h, &vmdir, &public_key)?;
        }
        let _ = std::fs::remove_file(&rec.monitor);
        events(Event::Step(format!("{}: starting {name}", h.name)));
        let t = Instant::now();
        host.check(&Command::new(rec.argv.clone()))?;
        started.push((h, rec, true, t));
    }

    let work = &work;
    let (bases, public_key) = (&bases, &public_key);
    let results =
        provider::vm::each_in_parallel(&started, |(h, rec, fresh, t)| -> Result<UpVm, Error> {
            let cfg = ssh_config(lab, dir, h)?;
            let ssh = guest::Ssh::new(cfg.clone());
            let mut key_swapped = None;
            if bases[h.vm.image_or(DEFAULT_IMAGE)].boxed {
                // Vagrant's first boot: the box's insecure key gives way to the lab's.
                let how = provider::vagrant::swap_insecure_key(
                    &cfg,
                    public_key,
                    &StateDir::new(dir).path(),
                    opts.boot_timeout,
                )
                .map_err(|e| match e {
                    provider::Error::Command(source) => Error::Ssh {
                        host: h.name.clone(),
                        console: rec.console.clone(),
                        source,
                    },
                    other => other.into(),
                })?;
                if let provider::vagrant::KeyLogin::Replaced(kind) = how {
                    key_swapped = Some(kind);
                }
            } else {
                ssh.wait_reachable(opts.boot_timeout)
                    .map_err(|e| Error::Ssh {
                        host: h.name.clone(),
                        console: rec.console.clone(),
                        source: Box::new(e),
                    })?;
            }
            if rec.seed.is_some() {
                images::wait_cloud_init(&ssh, &h.name, opts.boot_timeout)?;
            }
            let boot = t.elapsed().as_secs_f64();
            name_nics(&ssh, lab, h, work)?;
            let kernel = ssh
                .check(&Command::new(["uname", "-r"]))?
                .stdout_lossy()
                .trim()
                .to_string();
            Ok(UpVm {
                host: h.name.clone(),
                name: rec.name.clone(),
                ssh_port: rec.ssh_port,
                started: *fresh,
                boot_seconds: boot,
                kernel,
                key_swapped,
            })
        });
    if guest::cancel::requested() {
        // Interrupted while VMs were booting: the ones this `up` started are stopped (their
        // disks and the state stay, so `lab up` starts them again and `lab down` removes them).
        for (h, rec, fresh, _) in &started {
            if *fresh && kill(&rec.pidfile, "qemu-system") {
                events(Event::Note(format!(
                    "{}: interrupted while it booted: {} stopped",
                    h.name, rec.name
                )));
            }
        }
    }
    results.into_iter().collect()
}

/// Give the guest's lab NICs their Lab.toml names (by MAC).
fn name_nics(ssh: &dyn Exec, lab: &Lab, h: &Host, work: &Path) -> Result<(), Error> {
    let nics: Vec<(String, String)> = segment_nics(lab, h, work)?
        .into_iter()
        .map(|(_, nic, want)| (vm::mac(nic.mac), want))
        .collect();
    Ok(provider::vm::name_nics(ssh, &h.name, &nics)?)
}

/// A VM's state for `lab status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    pub host: String,
    pub name: String,
    pub running: bool,
    pub ssh_port: Option<u16>,
}

pub fn status(lab: &Lab, dir: &Path) -> Vec<VmStatus> {
    let state = load_state(dir, lab);
    hosts_of(lab)
        .map(|h| {
            let rec = state.vms.get(&h.name);
            VmStatus {
                host: h.name.clone(),
                name: vm_name(lab, &h.name),
                running: rec.is_some_and(|r| running_pid(&r.pidfile, "qemu-system").is_some()),
                ssh_port: rec.map(|r| r.ssh_port),
            }
        })
        .collect()
}

/// ACPI shutdown through the monitor; killed after `grace`.
pub fn halt(lab: &Lab, dir: &Path, grace: Duration, events: &mut dyn FnMut(Event)) -> Vec<String> {
    let state = load_state(dir, lab);
    let mut halted = Vec::new();
    for (host, r) in &state.vms {
        if running_pid(&r.pidfile, "qemu-system").is_none() {
            continue;
        }
        let _ = qemu::monitor::command(&r.monitor, "system_powerdown");
        let until = Instant::now() + grace;
        while running_pid(&r.pidfile, "qemu-system").is_some() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
        if kill(&r.pidfile, "qemu-system") {
            events(Event::Note(format!(
                "{host}: no ACPI shutdown within {grace:?}; killed"
            )));
        }
        halted.push(r.name.clone());
    }
    halted
}

/// End every process of the lab (from the state file and from the PID files under
/// `.lab/qemu`, so also after a crash before the state was complete) and remove the overlays.
pub fn destroy(lab: &Lab, dir: &Path) -> Result<Vec<String>, Error> {
    let state = load_state(dir, lab);
    let work = workdir(dir);
    let mut ended = Vec::new();
    let prefix = format!("lab-{}-", lab.name);
    let mut pidfiles: Vec<(PathBuf, &str, String)> = Vec::new();
    for r in state.vms.values() {
        pidfiles.push((r.pidfile.clone(), "qemu-system", r.name.clone()));
    }
    for (seg, p) in &state.switches {
        pidfiles.push((p.clone(), "vde_switch", format!("switch {seg}")));
    }
    if let Ok(entries) = std::fs::read_dir(&work) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                pidfiles.push((e.path().join("qemu.pid"), "qemu-system", name));
            } else if name.starts_with(&format!("switch-{}-", lab.name)) && name.ends_with(".pid") {
                pidfiles.push((e.path(), "vde_switch", name));
            }
        }
    }
    for (p, what, name) in pidfiles {
        if kill(&p, what) && !ended.contains(&name) {
            ended.push(name);
        }
    }
    for r in state.vms.values() {
        StateDir::new(dir).forget_host_key("127.0.0.1", r.ssh_port)?;
    }
    // Only this lab's VMs' files (also of hosts Lab.toml dropped): another lab may share
    // `.lab/qemu`.
    for h in &lab.hosts {
        let _ = std::fs::remove_dir_all(work.join(vm_name(lab, &h.name)));
    }
    for r in state.vms.values() {
        let _ = std::fs::remove_dir_all(work.join(&r.name));
    }
    for p in state.switches.values() {
        let _ = std::fs::remove_file(p);
    }
    let _ = StateDir::new(dir).remove(&state_name(lab));
    Ok(ended)
}
