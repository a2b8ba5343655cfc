//! A lab segment as a libvirt network: a bridge lab made (no address on the host side, no
//! firewall rules), which libvirt lists and names.
//!
//! lab does not let libvirt make an *isolated* network: libvirt 9 adds iptables rules to the
//! host for it and gives its VMs' tap devices IPv6 link-local addresses in the host's
//! namespace, which then solicit routers on the lab's segment. A `forward mode='bridge'`
//! network over a bridge lab created with address generation off does neither.

use crate::xml::escape;

/// A libvirt network over an existing bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The network's name in libvirt (`lab-<lab>-<segment>`).
    pub name: String,
    /// The host's bridge (at most 15 bytes).
    pub bridge: String,
}

impl Network {
    /// The network's XML, for `virsh net-define`.
    ///
    /// ```
    /// let n = libvirt::network::Network { name: "lab-x-a".into(), bridge: "lbr0".into() };
    /// assert!(n.xml().contains("<bridge name='lbr0'/>"));
    /// ```
    pub fn xml(&self) -> String {
        format!(
            "<network>\n  <name>{}</name>\n  <forward mode='bridge'/>\n  <bridge name='{}'/>\n</network>\n",
            escape(&self.name),
            escape(&self.bridge)
        )
    }
}

/// The bridge a network's XML (`virsh net-dumpxml`) names.
///
/// ```
/// let xml = "<network>\n  <name>n</name>\n  <forward mode='bridge'/>\n  <bridge name='lbr9'/>\n</network>";
/// assert_eq!(libvirt::network::bridge_of(xml).as_deref(), Some("lbr9"));
/// ```
pub fn bridge_of(xml: &str) -> Option<String> {
    crate::xml::elements(xml, "bridge")
        .first()
        .and_then(|a| crate::xml::attr(a, "name").map(str::to_string))
}
