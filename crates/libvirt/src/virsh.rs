//! virsh's command lines (argv, never a shell string) and parsers for what they print.
//!
//! Each method of [`Virsh`] returns one command's argv; the caller runs it through its command
//! seam (`guest::Exec`) on the machine whose libvirtd it talks to. Documents go in on stdin
//! (`define /dev/stdin`), so no file is written on the hypervisor for them.

/// virsh with one connection URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virsh {
    pub uri: String,
}

/// The file argument that makes virsh read a document from its standard input.
pub const STDIN: &str = "/dev/stdin";

impl Virsh {
    /// virsh connected to `uri` (`qemu:///system`).
    pub fn new(uri: impl Into<String>) -> Self {
        Self { uri: uri.into() }
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["virsh".into(), "--connect".into(), self.uri.clone()];
        v.extend(args.iter().map(|a| (*a).to_string()));
        v
    }

    /// `virsh version`: is libvirtd there and does it answer.
    pub fn version(&self) -> Vec<String> {
        self.argv(&["version"])
    }
    /// The hypervisor's capabilities XML (see [`has_kvm`]).
    pub fn capabilities(&self) -> Vec<String> {
        self.argv(&["capabilities"])
    }
    /// Every domain's name, running or not (see [`names`]).
    pub fn list_all(&self) -> Vec<String> {
        self.argv(&["list", "--all", "--name"])
    }
    pub fn domstate(&self, domain: &str) -> Vec<String> {
        self.argv(&["domstate", "--domain", domain])
    }
    /// The domain's XML as defined (the next boot's), with lab's metadata.
    pub fn dumpxml(&self, domain: &str) -> Vec<String> {
        self.argv(&["dumpxml", "--domain", domain, "--inactive"])
    }
    /// Define a domain from an XML file ([`STDIN`]: from standard input).
    pub fn define(&self, file: &str) -> Vec<String> {
        self.argv(&["define", "--file", file])
    }
    pub fn start(&self, domain: &str) -> Vec<String> {
        self.argv(&["start", "--domain", domain])
    }
    /// ACPI power button.
    pub fn shutdown(&self, domain: &str) -> Vec<String> {
        self.argv(&["shutdown", "--domain", domain, "--mode", "acpi"])
    }
    /// Power off at once.
    pub fn destroy(&self, domain: &str) -> Vec<String> {
        self.argv(&["destroy", "--domain", domain])
    }
    /// Forget the domain, its snapshots, and delete the volumes its disks are.
    pub fn undefine(&self, domain: &str) -> Vec<String> {
        self.argv(&[
            "undefine",
            "--domain",
            domain,
            "--remove-all-storage",
            "--snapshots-metadata",
        ])
    }
    /// An internal snapshot of a running or stopped domain.
    pub fn snapshot_create_as(&self, domain: &str, name: &str) -> Vec<String> {
        self.argv(&[
            "snapshot-create-as",
            "--domain",
            domain,
            "--name",
            name,
            "--atomic",
        ])
    }
    pub fn snapshot_list(&self, domain: &str) -> Vec<String> {
        self.argv(&["snapshot-list", "--domain", domain, "--name"])
    }
    pub fn snapshot_delete(&self, domain: &str, name: &str) -> Vec<String> {
        self.argv(&[
            "snapshot-delete",
            "--domain",
            domain,
            "--snapshotname",
            name,
        ])
    }
    /// Back to a snapshot, running afterwards.
    pub fn snapshot_revert(&self, domain: &str, name: &str) -> Vec<String> {
        self.argv(&[
            "snapshot-revert",
            "--domain",
            domain,
            "--snapshotname",
            name,
            "--running",
        ])
    }
    /// Every network's name (see [`names`]).
    pub fn net_list_all(&self) -> Vec<String> {
        self.argv(&["net-list", "--all", "--name"])
    }
    pub fn net_dumpxml(&self, network: &str) -> Vec<String> {
        self.argv(&["net-dumpxml", "--network", network])
    }
    pub fn net_define(&self, file: &str) -> Vec<String> {
        self.argv(&["net-define", "--file", file])
    }
    pub fn net_start(&self, network: &str) -> Vec<String> {
        self.argv(&["net-start", network])
    }
    pub fn net_info(&self, network: &str) -> Vec<String> {
        self.argv(&["net-info", "--network", network])
    }
    pub fn net_destroy(&self, network: &str) -> Vec<String> {
        self.argv(&["net-destroy", "--network", network])
    }
    pub fn net_undefine(&self, network: &str) -> Vec<String> {
        self.argv(&["net-undefine", "--network", network])
    }
    pub fn pool_info(&self, pool: &str) -> Vec<String> {
        self.argv(&["pool-info", "--pool", pool])
    }
    /// A directory pool.
    pub fn pool_define_as(&self, pool: &str, target: &str) -> Vec<String> {
        self.argv(&[
            "pool-define-as",
            "--name",
            pool,
            "--type",
            "dir",
            "--target",
            target,
        ])
    }
    pub fn pool_build(&self, pool: &str) -> Vec<String> {
        self.argv(&["pool-build", "--pool", pool])
    }
    pub fn pool_start(&self, pool: &str) -> Vec<String> {
        self.argv(&["pool-start", "--pool", pool])
    }
    pub fn pool_autostart(&self, pool: &str) -> Vec<String> {
        self.argv(&["pool-autostart", "--pool", pool])
    }
    pub fn pool_refresh(&self, pool: &str) -> Vec<String> {
        self.argv(&["pool-refresh", "--pool", pool])
    }
    /// The pool's volumes (see [`volumes`]).
    pub fn vol_list(&self, pool: &str) -> Vec<String> {
        self.argv(&["vol-list", "--pool", pool])
    }
    /// A new volume, optionally a qcow2 overlay on another volume of the pool.
    pub fn vol_create_as(
        &self,
        pool: &str,
        name: &str,
        capacity_bytes: u64,
        format: &str,
        backing: Option<(&str, &str)>,
    ) -> Vec<String> {
        let cap = capacity_bytes.to_string();
        let mut a = vec![
            "vol-create-as",
            "--pool",
            pool,
            "--name",
            name,
            "--capacity",
            &cap,
            "--format",
            format,
        ];
        if let Some((vol, fmt)) = backing {
            a.extend(["--backing-vol", vol, "--backing-vol-format", fmt]);
        }
        self.argv(&a)
    }
    /// A volume from an XML file ([`STDIN`]: from standard input).
    pub fn vol_create(&self, pool: &str, file: &str) -> Vec<String> {
        self.argv(&["vol-create", "--pool", pool, "--file", file])
    }
    /// The path of a volume of the pool.
    pub fn vol_path(&self, pool: &str, name: &str) -> Vec<String> {
        self.argv(&["vol-path", "--pool", pool, "--vol", name])
    }
    /// Copy a file of the hypervisor's machine into a volume.
    pub fn vol_upload(&self, pool: &str, name: &str, file: &str) -> Vec<String> {
        self.argv(&["vol-upload", "--pool", pool, "--vol", name, "--file", file])
    }
    pub fn vol_delete(&self, pool: &str, name: &str) -> Vec<String> {
        self.argv(&["vol-delete", "--pool", pool, "--vol", name])
    }
}

/// Names one per line (`list --name`, `net-list --name`, `snapshot-list --name`).
///
/// ```
/// assert_eq!(libvirt::virsh::names("a\nb\n\n"), ["a", "b"]);
/// ```
pub fn names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names in `vol-list`'s table (its `Name` column, which may hold spaces).
pub fn volumes(stdout: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    let Some(header) = lines.by_ref().find(|l| l.trim_start().starts_with("Name")) else {
        return Vec::new();
    };
    let path_col = header.find("Path");
    lines
        .filter(|l| !l.trim().is_empty() && !l.trim().chars().all(|c| c == '-'))
        .map(|l| {
            let name = match path_col {
                Some(c) if l.len() > c && l.is_char_boundary(c) => &l[..c],
                _ => l.split_whitespace().next().unwrap_or(""),
            };
            name.trim().to_string()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// A domain's state (`domstate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomState {
    Running,
    ShutOff,
    Paused,
    /// Any other state, as virsh prints it (`in shutdown`, `crashed`, `pmsuspended`...).
    Other(String),
}

impl DomState {
    /// ```
    /// use libvirt::virsh::DomState;
    /// assert_eq!(DomState::parse("shut off\n\n"), DomState::ShutOff);
    /// ```
    pub fn parse(stdout: &str) -> DomState {
        match stdout.trim() {
            "running" => DomState::Running,
            "shut off" => DomState::ShutOff,
            "paused" => DomState::Paused,
            other => DomState::Other(other.to_string()),
        }
    }
}

/// Whether the hypervisor offers KVM for x86_64 guests (`virsh capabilities`).
pub fn has_kvm(capabilities: &str) -> bool {
    let Some(i) = capabilities
        .find("<arch name='x86_64'>")
        .or_else(|| capabilities.find("<arch name=\"x86_64\">"))
    else {
        return false;
    };
    let arch = &capabilities[i..];
    let arch = &arch[..arch.find("</arch>").unwrap_or(arch.len())];
    crate::xml::elements(arch, "domain")
        .iter()
        .any(|a| crate::xml::attr(a, "type") == Some("kvm"))
}

/// Whether a failed virsh command's stderr says the object does not exist (domain, network,
/// pool, volume or snapshot): such a failure means "nothing to do" for removals.
pub fn not_found(stderr: &str) -> bool {
    [
        "failed to get domain",
        "Domain not found",
        "failed to get network",
        "Network not found",
        "failed to get pool",
        "Storage pool not found",
        "failed to get vol",
        "Storage volume not found",
        "Domain snapshot not found",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}
