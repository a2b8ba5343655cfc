//! Typed VBoxManage invocations: pure functions from what lab wants to the argv after
//! `VBoxManage`. Golden tests pin every one of them.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::version::Quirks;

/// One VBoxManage invocation: the arguments after the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub args: Vec<String>,
}

impl Call {
    fn new<I, S>(args: I) -> Call
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Call {
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    fn push(&mut self, a: impl Into<String>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    /// The subcommand (`createvm`, `modifyvm`, ...).
    pub fn subcommand(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }

    /// Whether the call changes anything (a `--dry-run` prints these).
    pub fn mutates(&self) -> bool {
        let second = self.args.get(1).map(String::as_str);
        let third = self.args.get(2).map(String::as_str);
        match self.subcommand() {
            "list" | "showvminfo" | "--version" => false,
            "guestproperty" => !matches!(second, Some("get" | "wait" | "enumerate")),
            "snapshot" => matches!(
                third,
                Some("take" | "restore" | "delete" | "restorecurrent")
            ),
            _ => true,
        }
    }
}

impl fmt::Display for Call {
    /// `VBoxManage ARGS`, quoted for a POSIX shell where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VBoxManage {}", net::shell::join(&self.args))
    }
}

/// TCP or UDP, for NAT port forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A NAT port-forwarding rule: `name,tcp,hostip,hostport,guestip,guestport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub name: String,
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub guest_ip: Option<Ipv4Addr>,
    pub guest_port: u16,
}

impl Forward {
    /// SSH to the guest from a loopback port of the host.
    pub fn ssh(host_port: u16) -> Forward {
        Forward {
            name: "ssh".into(),
            proto: Proto::Tcp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port,
            guest_ip: None,
            guest_port: 22,
        }
    }

    /// Parse the rule format that `--natpf` takes and `showvminfo` prints.
    pub fn parse(s: &str) -> Option<Forward> {
        let f: Vec<&str> = s.split(',').collect();
        let [name, proto, host_ip, host_port, guest_ip, guest_port] = f.as_slice() else {
            return None;
        };
        let ip = |s: &str| -> Option<Option<Ipv4Addr>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(Forward {
            name: (*name).to_string(),
            proto: match *proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            },
            host_ip: ip(host_ip)?,
            host_port: host_port.parse().ok()?,
            guest_ip: ip(guest_ip)?,
            guest_port: guest_port.parse().ok()?,
        })
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = |a: Option<Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
        write!(
            f,
            "{},{},{},{},{},{}",
            self.name,
            match self.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            ip(self.host_ip),
            self.host_port,
            ip(self.guest_ip),
            self.guest_port
        )
    }
}

/// What a network adapter is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// NAT with port forwards (the guide's NIC 1).
    Nat(Vec<Forward>),
    /// An internal network (`ue1-ue2_v1_2`).
    IntNet(String),
    /// Not present.
    None,
}

/// One network adapter, 1-based as VirtualBox numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub slot: u8,
    pub attachment: Attachment,
    /// `None`: VirtualBox picks one.
    pub mac: Option<[u8; 6]>,
}

/// Hardware and network settings applied with one `modifyvm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub memory_mib: u32,
    pub cpus: u32,
    pub nics: Vec<Nic>,
}

/// The VM's disk, DVD and NICs are Intel PRO/1000 MT Desktop (82540EM) on the PCI slots that
/// Ubuntu names enp0s3, enp0s8, enp0s9, enp0s10: the guide's interface names.
pub const NIC_TYPE: &str = "82540EM";

/// The storage controller lab creates.
pub const SATA: &str = "SATA";

/// Hex MAC as VirtualBox writes it: `080027A1B2C3`.
pub fn mac_hex(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect()
}

/// `createvm --name N --groups /lab-x --ostype T --basefolder DIR --register`.
pub fn createvm(name: &str, group: &str, ostype: &str, basefolder: &Path) -> Call {
    Call::new([
        "createvm",
        "--name",
        name,
        "--groups",
        group,
        "--ostype",
        ostype,
        "--basefolder",
        &basefolder.display().to_string(),
        "--register",
    ])
}

/// `modifyvm VM --memory .. --cpus .. --ioapic on --boot1 dvd --boot2 disk ...` and every NIC:
/// attachment, type, MAC, promiscuous mode allow-all (the lab's segments carry other
/// hosts' MACs), cable connected, and NAT forwards. Spelled for the release (`q`).
pub fn modifyvm(q: Quirks, vm: &str, s: &Settings) -> Call {
    let mut c = Call::new(["modifyvm", vm]);
    c.push("--memory")
        .push(s.memory_mib.to_string())
        .push("--cpus")
        .push(s.cpus.to_string())
        .push("--ioapic")
        .push("on")
        .push("--boot1")
        .push("disk")
        .push("--boot2")
        .push("dvd")
        .push("--boot3")
        .push("none")
        .push("--boot4")
        .push("none");
    for n in &s.nics {
        let i = n.slot;
        match &n.attachment {
            Attachment::None => {
                c.push(format!("--nic{i}")).push("none");
                continue;
            }
            Attachment::Nat(_) => {
                c.push(format!("--nic{i}")).push("nat");
            }
            Attachment::IntNet(net) => {
                c.push(format!("--nic{i}"))
                    .push("intnet")
                    .push(format!("--intnet{i}"))
                    .push(net.clone())
                    .push(format!("--{}{i}", q.option("nic-promisc", "nicpromisc")))
                    .push("allow-all");
            }
        }
        c.push(format!("--{}{i}", q.option("nic-type", "nictype")))
            .push(NIC_TYPE)
            .push(format!(
                "--{}{i}",
                q.option("cable-connected", "cableconnected")
            ))
            .push("on");
        if let Some(mac) = n.mac {
            c.push(format!("--{}{i}", q.option("mac-address", "macaddress")))
                .push(mac_hex(mac));
        }
        if let Attachment::Nat(forwards) = &n.attachment {
            for f in forwards {
                c.push(format!("--{}{i}", q.option("nat-pf", "natpf")))
                    .push(f.to_string());
            }
        }
    }
    c
}

/// `modifyvm VM --natpfN delete RULE` (powered-off VMs).
pub fn natpf_delete(q: Quirks, vm: &str, slot: u8, rule: &str) -> Call {
    Call::new([
        "modifyvm".to_string(),
        vm.to_string(),
        format!("--{}{slot}", q.option("nat-pf", "natpf")),
        "delete".into(),
        rule.to_string(),
    ])
}

/// `modifyvm VM --natpfN RULE` (powered-off VMs).
pub fn natpf_add(q: Quirks, vm: &str, slot: u8, f: &Forward) -> Call {
    Call::new([
        "modifyvm".to_string(),
        vm.to_string(),
        format!("--{}{slot}", q.option("nat-pf", "natpf")),
        f.to_string(),
    ])
}

/// `createmedium disk --filename F --size MiB --format VDI` (dynamically allocated).
pub fn createmedium_disk(path: &Path, size_mib: u64) -> Call {
    Call::new([
        "createmedium",
        "disk",
        "--filename",
        &path.display().to_string(),
        "--size",
        &size_mib.to_string(),
        "--format",
        "VDI",
    ])
}

/// `storagectl VM --name SATA --add sata --controller IntelAhci --portcount 2 --bootable on`.
pub fn storagectl_sata(vm: &str) -> Call {
    Call::new([
        "storagectl",
        vm,
        "--name",
        SATA,
        "--add",
        "sata",
        "--controller",
        "IntelAhci",
        "--portcount",
        "2",
        "--bootable",
        "on",
    ])
}

/// Attach a disk image on SATA port 0.
pub fn attach_disk(vm: &str, disk: &Path) -> Call {
    Call::new([
        "storageattach",
        vm,
        "--storagectl",
        SATA,
        "--port",
        "0",
        "--device",
        "0",
        "--type",
        "hdd",
        "--medium",
        &disk.display().to_string(),
    ])
}

/// An empty DVD drive on SATA port 1 (where `unattended install` puts the ISO).
pub fn attach_empty_dvd(vm: &str) -> Call {
    Call::new([
        "storageattach",
        vm,
        "--storagectl",
        SATA,
        "--port",
        "1",
        "--device",
        "0",
        "--type",
        "dvddrive",
        "--medium",
        "emptydrive",
    ])
}

/// `clonevm BASE [--snapshot S --options link] --name N --groups G --basefolder B --register`:
/// a linked clone of a snapshot is the fast path (seconds, little disk).
pub fn clonevm(
    base: &str,
    snapshot: Option<&str>,
    name: &str,
    group: &str,
    basefolder: &Path,
) -> Call {
    let mut c = Call::new(["clonevm", base]);
    if let Some(s) = snapshot {
        c.push("--snapshot").push(s).push("--options").push("link");
    }
    c.push("--name")
        .push(name)
        .push("--groups")
        .push(group)
        .push("--basefolder")
        .push(basefolder.display().to_string())
        .push("--register");
    c
}

/// `import APPLIANCE.ova --vsys 0 --vmname N --group G --basefolder B`.
pub fn import(ova: &Path, name: &str, group: &str, basefolder: &Path) -> Call {
    Call::new([
        "import",
        &ova.display().to_string(),
        "--vsys",
        "0",
        "--vmname",
        name,
        "--group",
        group,
        "--basefolder",
        &basefolder.display().to_string(),
    ])
}

/// What `unattended install` is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unattended {
    pub iso: String,
    pub user: String,
    /// A file holding the user's password (`--password-file`): a password never goes on a
    /// command line, where `ps` shows it.
    pub password_file: String,
    /// A fully qualified name (VirtualBox requires a dot): `ue1.lab.internal`.
    pub hostname: String,
    /// Run as root at the end of the installation (openssh-server, the lab's key, sudo).
    pub post_install_command: String,
}

/// `unattended install VM --iso=.. --user=.. ... --start-vm=headless`.
pub fn unattended_install(vm: &str, u: &Unattended) -> Call {
    Call::new([
        "unattended".to_string(),
        "install".into(),
        vm.to_string(),
        format!("--iso={}", u.iso),
        format!("--user={}", u.user),
        format!("--password-file={}", u.password_file),
        format!("--full-user-name={}", u.user),
        format!("--hostname={}", u.hostname),
        "--install-additions".into(),
        format!("--post-install-command={}", u.post_install_command),
        "--start-vm=headless".into(),
    ])
}

/// `startvm VM --type headless`.
pub fn startvm(vm: &str) -> Call {
    Call::new(["startvm", vm, "--type", "headless"])
}

/// The `controlvm` actions lab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    AcpiPowerButton,
    PowerOff,
}

pub fn controlvm(vm: &str, what: Control) -> Call {
    Call::new([
        "controlvm",
        vm,
        match what {
            Control::AcpiPowerButton => "acpipowerbutton",
            Control::PowerOff => "poweroff",
        },
    ])
}

pub fn snapshot_take(vm: &str, name: &str) -> Call {
    Call::new(["snapshot", vm, "take", name])
}

pub fn snapshot_restore(vm: &str, name: &str) -> Call {
    Call::new(["snapshot", vm, "restore", name])
}

pub fn snapshot_list(vm: &str) -> Call {
    Call::new(["snapshot", vm, "list", "--machinereadable"])
}

/// `unregistervm VM --delete`: the VM and every disk it owns.
pub fn unregistervm_delete(vm: &str) -> Call {
    Call::new(["unregistervm", vm, "--delete"])
}

pub fn guestproperty_get(vm: &str, property: &str) -> Call {
    Call::new(["guestproperty", "get", vm, property])
}

/// Block until a guest property matching `pattern` changes, at most `timeout_ms`.
pub fn guestproperty_wait(vm: &str, pattern: &str, timeout_ms: u64) -> Call {
    Call::new([
        "guestproperty",
        "wait",
        vm,
        pattern,
        "--timeout",
        &timeout_ms.to_string(),
        "--fail-on-timeout",
    ])
}

/// The guest's first IPv4 address, as the Guest Additions publish it.
pub const GUEST_IP: &str = "/VirtualBox/GuestInfo/Net/0/V4/IP";

pub fn showvminfo(vm: &str) -> Call {
    Call::new(["showvminfo", vm, "--machinereadable"])
}

pub fn list_vms() -> Call {
    Call::new(["list", "vms"])
}

pub fn list_runningvms() -> Call {
    Call::new(["list", "runningvms"])
}

pub fn version() -> Call {
    Call::new(["--version"])
}
