//! A storage volume as lab creates it: a qcow2 overlay whose backing file is a path (a volume
//! of the pool, or lab's cached image on the hypervisor's machine, which need not be in any
//! pool: `vol-create-as --backing-vol` would insist on one).

use crate::xml::escape;

/// A qcow2 volume, optionally over a backing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub capacity_bytes: u64,
    /// The backing file's path on the hypervisor's machine and its format.
    pub backing: Option<(String, String)>,
}

impl Volume {
    /// The volume's XML, for `virsh vol-create`.
    ///
    /// ```
    /// let v = libvirt::volume::Volume {
    ///     name: "a.qcow2".into(),
    ///     capacity_bytes: 1 << 30,
    ///     backing: Some(("/cache/base.qcow2".into(), "qcow2".into())),
    /// };
    /// assert!(v.xml().contains("<path>/cache/base.qcow2</path>"));
    /// ```
    pub fn xml(&self) -> String {
        let mut x = format!(
            "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{}</capacity>\n  <target>\n    <format type='qcow2'/>\n  </target>\n",
            escape(&self.name),
            self.capacity_bytes
        );
        if let Some((path, format)) = &self.backing {
            x.push_str(&format!(
                "  <backingStore>\n    <path>{}</path>\n    <format type='{}'/>\n  </backingStore>\n",
                escape(path),
                escape(format)
            ));
        }
        x.push_str("</volume>\n");
        x
    }
}
