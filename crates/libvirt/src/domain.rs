//! A lab host as a libvirt domain: memory, CPUs, a disk volume (an overlay on lab's base image),
//! NIC 1 on QEMU's user-mode NAT with SSH forwarded, NICs 2..n on tap devices lab put on the
//! segments' bridges, a serial console to a file, virtio RNG, ACPI, and lab's metadata (which
//! lab, host and directory it belongs to, and where its SSH is), so `lab destroy` and `lab
//! status` find it without a state file.
//!
//! Every PCI device has the slot the QEMU provider gives it (NAT NIC 3, disk 5, RNG 7, segment
//! NICs 8, 9, 10, 16...), so a guest names its NICs the same under both providers. The NAT NIC
//! is given to QEMU as `qemu:commandline` arguments (the caller's, from the `qemu` crate):
//! libvirt 9's own user-mode interface cannot forward a port without passt.

use crate::xml::{attr, elements, escape};

/// How the hypervisor runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtType {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's software emulation (TCG).
    Qemu,
}

impl VirtType {
    /// libvirt's name (`<domain type=...>`).
    pub fn as_str(self) -> &'static str {
        match self {
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        }
    }
}

/// A NIC on a tap device that exists already (`managed='no'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNic {
    pub tap: String,
    /// `52:54:00:..` as Lab.toml gives it or lab derives it.
    pub mac: String,
    pub pci_slot: u8,
}

/// What lab records in a domain's `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabMeta {
    pub lab: String,
    pub host: String,
    /// The directory of the lab's Lab.toml (two labs of one name in two directories are two
    /// labs).
    pub dir: String,
    /// Where the SSH forward listens, as lab reaches it.
    pub ssh_address: String,
    pub ssh_port: u16,
    pub user: String,
    /// The fingerprint of the hardware the domain was defined with ([`Domain::fingerprint`]),
    /// read from a domain's XML; [`Domain::xml`] writes the domain's own, whatever this holds.
    pub hardware: Option<String>,
    /// Lab.toml's `image` the domain's disk was made from (a disk cannot move to another).
    pub image: Option<String>,
}

impl LabMeta {
    /// lab's metadata of a domain (`virsh dumpxml`), if lab made it.
    ///
    /// ```
    /// use libvirt::domain::LabMeta;
    /// let xml = "<domain><metadata><lab:host xmlns:lab=\"https://lab.invalid/xmlns/lab/1\" lab=\"x\" host=\"a\" dir=\"/d\" ssh-address=\"127.0.0.1\" ssh-port=\"42301\" user=\"root\"/></metadata></domain>";
    /// let m = LabMeta::from_domain_xml(xml).unwrap();
    /// assert_eq!((m.host.as_str(), m.ssh_port), ("a", 42301));
    /// ```
    pub fn from_domain_xml(xml: &str) -> Option<LabMeta> {
        elements(xml, "lab:host")
            .into_iter()
            .find(|a| attr(a, "xmlns:lab") == Some(crate::LAB_XMLNS))
            .and_then(|a| {
                Some(LabMeta {
                    lab: attr(&a, "lab")?.to_string(),
                    host: attr(&a, "host")?.to_string(),
                    dir: attr(&a, "dir")?.to_string(),
                    ssh_address: attr(&a, "ssh-address")?.to_string(),
                    ssh_port: attr(&a, "ssh-port")?.parse().ok()?,
                    user: attr(&a, "user")?.to_string(),
                    hardware: attr(&a, "hardware").map(str::to_string),
                    image: attr(&a, "image").map(str::to_string),
                })
            })
    }
}

/// The UUID in a domain's XML (`virsh dumpxml`).
///
/// ```
/// let xml = "<domain type='qemu'>\n  <name>a</name>\n  <uuid>8b4d3133-2581-43ca-863e-6f578a5cb6ec</uuid>";
/// assert_eq!(libvirt::domain::uuid_of(xml).as_deref(), Some("8b4d3133-2581-43ca-863e-6f578a5cb6ec"));
/// ```
pub fn uuid_of(xml: &str) -> Option<String> {
    let start = xml.find("<uuid>")? + "<uuid>".len();
    let end = start + xml[start..].find("</uuid>")?;
    Some(xml[start..end].trim().to_string())
}

/// A domain, rendered by [`Domain::xml`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// `lab-<lab>-<host>`.
    pub name: String,
    /// The UUID of the domain this definition replaces (`None`: a new domain).
    pub uuid: Option<String>,
    pub virt_type: VirtType,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The disk: a volume of a storage pool.
    pub pool: String,
    pub volume: String,
    /// A cloud image's NoCloud seed: an ISO volume of the same pool, as a read-only CD-ROM
    /// (IDE, where cloud-init looks for the `cidata` label).
    pub seed: Option<String>,
    /// The serial console's log on the hypervisor.
    pub console: String,
    pub nics: Vec<TapNic>,
    /// Arguments handed to QEMU as they are (the NAT NIC).
    pub qemu_args: Vec<String>,
    pub meta: LabMeta,
}

fn pci(slot: u8) -> String {
    format!("<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/>")
}

impl Domain {
    /// The domain's XML, for `virsh define`. Its metadata carries [`Domain::fingerprint`].
    pub fn xml(&self) -> String {
        self.render(Some(&self.fingerprint()))
    }

    /// A fingerprint of everything the domain is defined with but its UUID and lab's
    /// metadata (FNV-1a of that XML, 16 hex digits): a running domain whose fingerprint
    /// differs from its Lab.toml's was defined with other hardware (NICs, MACs, memory,
    /// CPUs, disk and seed volumes, NAT forward). The base image is not in the XML: an image
    /// changed under an existing overlay is not seen.
    pub fn fingerprint(&self) -> String {
        let body = self.render(None);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in body.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The XML; with `hardware`, with its UUID and lab's metadata (carrying `hardware`).
    fn render(&self, hardware: Option<&str>) -> String {
        let m = &self.meta;
        let mut x = String::new();
        x.push_str(&format!(
            "<domain type='{}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n",
            self.virt_type.as_str()
        ));
        x.push_str(&format!("  <name>{}</name>\n", escape(&self.name)));
        if let (Some(u), Some(_)) = (&self.uuid, hardware) {
            x.push_str(&format!("  <uuid>{}</uuid>\n", escape(u)));
        }
        x.push_str(&format!(
            "  <title>lab {}: host {}</title>\n",
            escape(&m.lab),
            escape(&m.host)
        ));
        x.push_str(&format!(
            "  <description>Made by lab for the lab in {}; `lab destroy` there removes it.</description>\n",
            escape(&m.dir)
        ));
        if let Some(hardware) = hardware {
            x.push_str(&format!(
                "  <metadata>\n    <lab:host xmlns:lab='{}' lab='{}' host='{}' dir='{}' ssh-address='{}' ssh-port='{}' user='{}' hardware='{}'{}/>\n  </metadata>\n",
                crate::LAB_XMLNS,
                escape(&m.lab),
                escape(&m.host),
                escape(&m.dir),
                escape(&m.ssh_address),
                m.ssh_port,
                escape(&m.user),
                escape(hardware),
                m.image
                    .as_ref()
                    .map(|i| format!(" image='{}'", escape(i)))
                    .unwrap_or_default()
            ));
        }
        x.push_str(&format!(
            "  <memory unit='MiB'>{}</memory>\n",
            self.memory_mib
        ));
        x.push_str(&format!("  <vcpu>{}</vcpu>\n", self.cpus));
        x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <boot dev='hd'/>\n  </os>\n");
        x.push_str("  <features>\n    <acpi/>\n  </features>\n");
        x.push_str(match self.virt_type {
            VirtType::Kvm => "  <cpu mode='host-passthrough'/>\n",
            VirtType::Qemu => "  <cpu mode='maximum'/>\n",
        });
        x.push_str("  <clock offset='utc'/>\n");
        x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
        x.push_str("  <devices>\n");
        x.push_str(&format!(
            "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='qcow2' cache='unsafe'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='vda' bus='virtio'/>\n      {}\n    </disk>\n",
            escape(&self.pool),
            escape(&self.volume),
            pci(5)
        ));
        if let Some(seed) = &self.seed {
            x.push_str(&format!(
                "    <disk type='volume' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n",
                escape(&self.pool),
                escape(seed)
            ));
        }
        for n in &self.nics {
            x.push_str(&format!(
                "    <interface type='ethernet'>\n      <mac address='{}'/>\n      <target dev='{}' managed='no'/>\n      <model type='virtio'/>\n      {}\n    </interface>\n",
                escape(&n.mac),
                escape(&n.tap),
                pci(n.pci_slot)
            ));
        }
        x.push_str(&format!(
            "    <serial type='file'>\n      <source path='{}'/>\n      <target port='0'/>\n    </serial>\n",
            escape(&self.console)
        ));
        x.push_str(&format!(
            "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n      {}\n    </rng>\n",
            pci(7)
        ));
        x.push_str("    <controller type='usb' model='none'/>\n");
        x.push_str("    <memballoon model='none'/>\n");
        x.push_str("  </devices>\n");
        if !self.qemu_args.is_empty() {
            x.push_str("  <qemu:commandline>\n");
            for a in &self.qemu_args {
                x.push_str(&format!("    <qemu:arg value='{}'/>\n", escape(a)));
            }
            x.push_str("  </qemu:commandline>\n");
        }
        x.push_str("</domain>\n");
        x
    }
}
