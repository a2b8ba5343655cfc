//! libvirt for lab: the only crate that spells libvirt's XML and virsh's command lines.
//!
//! Everything here is pure: [`domain::Domain`] and [`network::Network`] render the XML lab
//! defines, [`virsh::Virsh`] gives the argv of each virsh command lab runs (through the caller's
//! command seam, locally or on a hypervisor reached over SSH), and [`virsh`]'s parsers read what
//! those commands print. Tests check every rendered document against libvirt's own schemas with
//! `virt-xml-validate`.
//!
//! ```
//! let net = libvirt::network::Network {
//!     name: "lab-demo-path1".into(),
//!     bridge: "lbr0123456789".into(),
//! };
//! assert!(net.xml().contains("<forward mode='bridge'/>"));
//! let v = libvirt::virsh::Virsh::new("qemu:///system");
//! assert_eq!(
//!     v.net_start("lab-demo-path1"),
//!     ["virsh", "--connect", "qemu:///system", "net-start", "lab-demo-path1"]
//! );
//! ```

pub mod domain;
pub mod network;
pub mod virsh;
pub mod volume;
pub mod xml;

/// The XML namespace of lab's metadata element in a domain (`<lab:host .../>`).
pub const LAB_XMLNS: &str = "https://lab.invalid/xmlns/lab/1";
