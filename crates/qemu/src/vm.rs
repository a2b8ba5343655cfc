//! The argv of a lab host's VM, a segment's switch, and disk overlays: pure functions.

use std::path::{Path, PathBuf};

use crate::accel::Accel;

/// A NIC on one of the lab's segments (a `vde_switch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentNic {
    /// The PCI slot: 8 gives the guest `enp0s8`, as VirtualBox's second NIC does.
    pub pci_slot: u8,
    pub mac: [u8; 6],
    /// The switch's control directory.
    pub switch: PathBuf,
}

/// Booting a kernel directly instead of through the disk's GRUB (the base image's first boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
}

/// Everything QEMU needs for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    pub disk: PathBuf,
    /// `qcow2` for overlays, `raw` while the base image is made.
    pub disk_format: &'static str,
    /// Loopback port forwarded to the guest's port 22 (NIC 1, user-mode NAT on slot 3).
    /// `None`: no NAT NIC.
    pub ssh_port: Option<u16>,
    pub nat_mac: Option<[u8; 6]>,
    pub nics: Vec<SegmentNic>,
    pub serial_log: PathBuf,
    /// The human monitor's unix socket (`system_powerdown`).
    pub monitor: Option<PathBuf>,
    /// Run in the background, writing this PID file.
    pub pidfile: Option<PathBuf>,
    pub direct_boot: Option<DirectBoot>,
    /// A NoCloud seed ISO (cloud images), read-only as a second virtio disk on slot 6.
    pub seed: Option<PathBuf>,
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// `qemu-system-x86_64 ...`: an i440fx PC without default devices, the disk as virtio-blk on
/// slot 5 (a seed on 6), a virtio RNG on slot 7 fed from the host's /dev/urandom (a guest's
/// sshd does not wait for entropy), virtio-net NICs on slots 3 (NAT) and 8, 9, 10, ...
/// (segments), the serial console to a file, no display.
pub fn argv(s: &VmSpec) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "qemu-system-x86_64".into(),
        "-name".into(),
        s.name.clone(),
        "-machine".into(),
        "pc".into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-vga".into(),
        "none".into(),
    ];
    a.extend(s.accel.argv());
    a.extend([
        "-m".into(),
        s.memory_mib.to_string(),
        "-smp".into(),
        s.cpus.to_string(),
        "-drive".into(),
        format!(
            "id=disk0,if=none,file={},format={},cache=unsafe",
            p(&s.disk),
            s.disk_format
        ),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,addr=0x5".into(),
    ]);
    if let Some(seed) = &s.seed {
        a.extend([
            "-drive".into(),
            format!("id=seed,if=none,file={},format=raw,readonly=on", p(seed)),
            "-device".into(),
            "virtio-blk-pci,drive=seed,addr=0x6".into(),
        ]);
    }
    a.extend([
        "-object".into(),
        "rng-random,id=rng0,filename=/dev/urandom".into(),
        "-device".into(),
        "virtio-rng-pci,rng=rng0,addr=0x7".into(),
    ]);
    match s.ssh_port {
        Some(port) => a.extend(user_nat("127.0.0.1", port, s.nat_mac)),
        None => a.extend(["-nic".into(), "none".into()]),
    }
    for (i, n) in s.nics.iter().enumerate() {
        let id = format!("seg{i}");
        a.extend([
            "-netdev".into(),
            format!("vde,id={id},sock={}", p(&n.switch)),
            "-device".into(),
            format!(
                "virtio-net-pci,netdev={id},mac={},addr={:#x}",
                mac(n.mac),
                n.pci_slot
            ),
        ]);
    }
    a.extend(["-serial".into(), format!("file:{}", p(&s.serial_log))]);
    if let Some(m) = &s.monitor {
        a.extend(["-monitor".into(), format!("unix:{},server,nowait", p(m))]);
    }
    if let Some(b) = &s.direct_boot {
        a.extend(["-kernel".into(), p(&b.kernel)]);
        if let Some(i) = &b.initrd {
            a.extend(["-initrd".into(), p(i)]);
        }
        a.extend(["-append".into(), b.append.clone()]);
        // The first boot ends with a poweroff: QEMU must exit, not reboot.
        a.push("-no-reboot".into());
    }
    if let Some(pid) = &s.pidfile {
        a.extend(["-pidfile".into(), p(pid), "-daemonize".into()]);
    }
    a
}

/// `vde_switch` for a segment: control directory, daemon, PID file.
/// NIC 1: QEMU's user-mode NAT at PCI slot 3, with the guest's SSH (22) forwarded from
/// `bind:port` on the machine QEMU runs on. Also what a libvirt domain hands QEMU.
///
/// ```
/// let a = qemu::vm::user_nat("127.0.0.1", 42301, None);
/// assert_eq!(a[1], "user,id=nat,hostfwd=tcp:127.0.0.1:42301-:22");
/// ```
pub fn user_nat(bind: &str, port: u16, nat_mac: Option<[u8; 6]>) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=nat,hostfwd=tcp:{bind}:{port}-:22"),
        "-device".into(),
        format!(
            "virtio-net-pci,netdev=nat,addr=0x3{}",
            nat_mac.map_or(String::new(), |m| format!(",mac={}", mac(m)))
        ),
    ]
}

pub fn switch_argv(dir: &Path, pidfile: &Path) -> Vec<String> {
    vec![
        "vde_switch".into(),
        "--sock".into(),
        p(dir),
        "--daemon".into(),
        "--pidfile".into(),
        p(pidfile),
        "--mod".into(),
        "700".into(),
    ]
}

/// `qemu-img create -f qcow2 -b BASE -F FORMAT OVERLAY [SIZE]`: a VM's disk, copy-on-write
/// over the base image (milliseconds, a few hundred kB). A size larger than the base's makes
/// room that a cloud image's first boot grows its root filesystem into.
pub fn overlay_argv(
    base: &Path,
    base_format: &str,
    overlay: &Path,
    size_gib: Option<u32>,
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "qemu-img".into(),
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-b".into(),
        p(base),
        "-F".into(),
        base_format.into(),
        p(overlay),
    ];
    if let Some(g) = size_gib {
        a.push(format!("{g}G"));
    }
    a
}

/// The MAC lab gives a NIC that Lab.toml leaves without one: QEMU's prefix 52:54:00, then
/// bytes from the lab, host and NIC names, so a VM keeps its MACs across `up`s.
pub fn stable_mac(lab: &str, host: &str, nic: u8) -> [u8; 6] {
    // FNV-1a over the names: stable across runs and Rust versions.
    let mut h: u32 = 0x811c_9dc5;
    for b in lab.bytes().chain([0]).chain(host.bytes()).chain([0, nic]) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [a, b, _, _] = h.to_be_bytes();
    [0x52, 0x54, 0x00, a, b, nic]
}
