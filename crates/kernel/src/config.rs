//! Kernel configuration: a profile to start from, the options lab always forces (MPTCP on,
//! no signing keys, no debug info), and the check that the final .config really has MPTCP.

/// Where the configuration starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// `make defconfig`.
    Defconfig,
    /// `make tinyconfig` plus what a QEMU guest needs to boot with networking ([`TINY`]): the
    /// fastest build, for tests.
    Tiny,
    /// `make defconfig` plus a testbed's needs ([`LAB`]): virtio, netem, veth, ACPI poweroff;
    /// no sound, USB, DRM or wireless.
    Lab,
    /// A given .config: a file (`--config-file`), or a running kernel's own ([`running`]).
    Given { origin: String, text: String },
    /// `make localmodconfig`: a running kernel's config ([`running`]) with every module that
    /// its `lsmod` does not list turned off.
    LocalMod {
        origin: String,
        base: String,
        lsmod: String,
    },
}

impl Profile {
    /// The make target that creates the starting .config (`None`: it is given as text).
    pub fn make_target(&self) -> Option<&'static str> {
        match self {
            Profile::Defconfig | Profile::Lab => Some("defconfig"),
            Profile::Tiny => Some("tinyconfig"),
            Profile::Given { .. } | Profile::LocalMod { .. } => None,
        }
    }

    /// The profile's own fragment, merged before [`ALWAYS`].
    pub fn fragment(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Tiny => TINY,
            Profile::Lab => LAB,
            _ => &[],
        }
    }

    /// A short name for messages and manifests: `tiny`, `running (host1: /proc/config.gz)`.
    pub fn describe(&self) -> String {
        match self {
            Profile::Defconfig => "defconfig".into(),
            Profile::Tiny => "tiny".into(),
            Profile::Lab => "lab".into(),
            Profile::Given { origin, .. } => format!("given ({origin})"),
            Profile::LocalMod { origin, .. } => format!("localmod ({origin})"),
        }
    }
}

/// A running kernel's configuration, read from a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// `uname -r` on the host.
    pub release: String,
    /// Where the text came from, e.g. `host1: /boot/config-5.15.0-91-generic`.
    pub origin: String,
    pub text: String,
}

/// Read the running kernel's configuration from a host: /boot/config-$(uname -r), as Debian
/// and Ubuntu install it, else /proc/config.gz (kernels built with IKCONFIG_PROC).
pub fn running(host: &dyn guest::Exec) -> Result<Running, guest::Error> {
    use guest::Command;
    let release = host
        .check(&Command::new(["uname", "-r"]))?
        .stdout_lossy()
        .trim()
        .to_string();
    let boot = format!("/boot/config-{release}");
    let found = host.run(&Command::new(["cat", boot.as_str()]))?;
    if found.success() && !found.stdout.is_empty() {
        return Ok(Running {
            origin: format!("{}: {boot}", host.host()),
            release,
            text: found.stdout_lossy(),
        });
    }
    let proc = host.check(&Command::new(["gzip", "-dc", "/proc/config.gz"]))?;
    Ok(Running {
        origin: format!("{}: /proc/config.gz", host.host()),
        release,
        text: proc.stdout_lossy(),
    })
}

/// A host's `lsmod`, for [`Profile::LocalMod`].
pub fn lsmod(host: &dyn guest::Exec) -> Result<String, guest::Error> {
    Ok(host.check(&guest::Command::new(["lsmod"]))?.stdout_lossy())
}

/// Options lab sets on every kernel, after the profile.
pub const ALWAYS: &[(&str, &str)] = &[
    ("CONFIG_NET", "y"),
    ("CONFIG_INET", "y"),
    ("CONFIG_IPV6", "y"),
    ("CONFIG_MPTCP", "y"),
    ("CONFIG_MPTCP_IPV6", "y"),
    ("CONFIG_INET_DIAG", "y"),
    ("CONFIG_INET_MPTCP_DIAG", "y"),
    // The release is the version plus `--localversion`, whatever suffix the base config had.
    ("CONFIG_LOCALVERSION", "\"\""),
    ("CONFIG_LOCALVERSION_AUTO", "n"),
    // Debian's and Ubuntu's configs name key files that only their build machines have.
    ("CONFIG_SYSTEM_TRUSTED_KEYS", "\"\""),
    ("CONFIG_SYSTEM_REVOCATION_KEYS", "\"\""),
    // No debug info: no dbg package (the guide deletes it anyway), a fraction of the build time.
    ("CONFIG_DEBUG_INFO_NONE", "y"),
    ("CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT", "n"),
    ("CONFIG_DEBUG_INFO_DWARF4", "n"),
    ("CONFIG_DEBUG_INFO_DWARF5", "n"),
    ("CONFIG_DEBUG_INFO_BTF", "n"),
];

/// The options whose absence from the final .config fails the configuration step.
pub const REQUIRED: &[&str] = &[
    "CONFIG_MPTCP",
    "CONFIG_MPTCP_IPV6",
    "CONFIG_INET_MPTCP_DIAG",
];

/// tinyconfig is not enough to boot a QEMU guest with a disk and a network: these are.
pub const TINY: &[(&str, &str)] = &[
    ("CONFIG_64BIT", "y"),
    // A VM's vCPUs (the guide's VMs have two): systemd starts its services in parallel.
    ("CONFIG_SMP", "y"),
    ("CONFIG_PRINTK", "y"),
    ("CONFIG_TTY", "y"),
    ("CONFIG_SERIAL_8250", "y"),
    ("CONFIG_SERIAL_8250_CONSOLE", "y"),
    ("CONFIG_BINFMT_ELF", "y"),
    ("CONFIG_BINFMT_SCRIPT", "y"),
    ("CONFIG_PROC_FS", "y"),
    ("CONFIG_SYSFS", "y"),
    ("CONFIG_DEVTMPFS", "y"),
    ("CONFIG_DEVTMPFS_MOUNT", "y"),
    ("CONFIG_TMPFS", "y"),
    ("CONFIG_MULTIUSER", "y"),
    ("CONFIG_FUTEX", "y"),
    ("CONFIG_EPOLL", "y"),
    ("CONFIG_SIGNALFD", "y"),
    ("CONFIG_TIMERFD", "y"),
    ("CONFIG_EVENTFD", "y"),
    ("CONFIG_SHMEM", "y"),
    ("CONFIG_INOTIFY_USER", "y"),
    ("CONFIG_FHANDLE", "y"),
    ("CONFIG_CGROUPS", "y"),
    ("CONFIG_UNIX", "y"),
    ("CONFIG_PACKET", "y"),
    ("CONFIG_PCI", "y"),
    ("CONFIG_ACPI", "y"),
    ("CONFIG_BLOCK", "y"),
    ("CONFIG_BLK_DEV", "y"),
    ("CONFIG_EXT4_FS", "y"),
    ("CONFIG_VIRTIO_MENU", "y"),
    ("CONFIG_VIRTIO", "y"),
    ("CONFIG_VIRTIO_PCI", "y"),
    ("CONFIG_VIRTIO_BLK", "y"),
    ("CONFIG_NETDEVICES", "y"),
    ("CONFIG_NET_CORE", "y"),
    ("CONFIG_VIRTIO_NET", "y"),
    // lab's VMs have a virtio RNG: the kernel's random pool is ready at once, so the first
    // sshd (and anything calling getrandom early) does not wait for entropy.
    ("CONFIG_HW_RANDOM", "y"),
    ("CONFIG_HW_RANDOM_VIRTIO", "y"),
    ("CONFIG_ETHERNET", "y"),
    ("CONFIG_E1000", "y"),
    ("CONFIG_NET_SCHED", "y"),
    ("CONFIG_NET_SCH_TBF", "y"),
    ("CONFIG_NET_SCH_NETEM", "y"),
    ("CONFIG_VETH", "y"),
    // What Debian's systemd, sshd and dpkg need from the kernel (tinyconfig turns them off).
    ("CONFIG_POSIX_TIMERS", "y"),
    ("CONFIG_FILE_LOCKING", "y"),
    ("CONFIG_PROC_SYSCTL", "y"),
    ("CONFIG_UNIX98_PTYS", "y"),
    ("CONFIG_NAMESPACES", "y"),
    ("CONFIG_SECCOMP", "y"),
    ("CONFIG_SECCOMP_FILTER", "y"),
    ("CONFIG_ADVISE_SYSCALLS", "y"),
    ("CONFIG_MEMBARRIER", "y"),
    ("CONFIG_RTC_CLASS", "y"),
    // ACPI's power button reaches systemd-logind as an input event: without evdev, `lab halt`
    // (ACPI shutdown) goes unheard and ends in a kill.
    ("CONFIG_INPUT", "y"),
    ("CONFIG_INPUT_EVDEV", "y"),
    ("CONFIG_ACPI_BUTTON", "y"),
    // The guide's per-source routing tables (`ip rule`).
    ("CONFIG_IP_ADVANCED_ROUTER", "y"),
    ("CONFIG_IP_MULTIPLE_TABLES", "y"),
    ("CONFIG_IPV6_MULTIPLE_TABLES", "y"),
    ("CONFIG_BLK_DEV_INITRD", "n"),
    ("CONFIG_MODULES", "n"),
];

/// A testbed kernel on top of defconfig, like virtme-ng's and the MPTCP CI's.
pub const LAB: &[(&str, &str)] = &[
    ("CONFIG_VIRTIO_PCI", "y"),
    ("CONFIG_VIRTIO_NET", "y"),
    ("CONFIG_VIRTIO_BLK", "y"),
    ("CONFIG_HW_RANDOM", "y"),
    ("CONFIG_HW_RANDOM_VIRTIO", "y"),
    ("CONFIG_NET_SCHED", "y"),
    ("CONFIG_NET_SCH_TBF", "y"),
    ("CONFIG_NET_SCH_NETEM", "y"),
    ("CONFIG_NET_SCH_FQ", "y"),
    ("CONFIG_VETH", "y"),
    ("CONFIG_ACPI", "y"),
    ("CONFIG_SOUND", "n"),
    ("CONFIG_USB_SUPPORT", "n"),
    ("CONFIG_DRM", "n"),
    ("CONFIG_WLAN", "n"),
    ("CONFIG_WIRELESS", "n"),
];

/// A kconfig fragment (`CONFIG_X=y`, `# CONFIG_X is not set`) for `merge_config.sh`.
pub fn fragment(profile: &Profile) -> String {
    let mut out = String::from("# lab: MPTCP kernel configuration fragment\n");
    for (k, v) in profile.fragment().iter().chain(ALWAYS) {
        if *v == "n" {
            out.push_str(&format!("# {k} is not set\n"));
        } else {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// The value of an option in a .config: `Some("y")`, `Some("\"\"")`, `Some("n")` for
/// `# CONFIG_X is not set`, `None` when absent.
pub fn value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    for line in config.lines() {
        if let Some(rest) = line.strip_prefix(option)
            && let Some(v) = rest.strip_prefix('=')
        {
            return Some(v);
        }
        if line == format!("# {option} is not set") {
            return Some("n");
        }
    }
    None
}

/// Check a final .config: every [`REQUIRED`] option must be `y`. Returns each one that is not,
/// with what the file has (kconfig drops an option whose dependencies are missing).
pub fn check(config: &str) -> Result<(), Vec<(String, String)>> {
    let bad: Vec<(String, String)> = REQUIRED
        .iter()
        .filter_map(|o| {
            let v = value(config, o);
            (v != Some("y")).then(|| ((*o).to_string(), v.unwrap_or("absent").to_string()))
        })
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(bad) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_forces_mptcp_and_drops_debug_info() {
        let f = fragment(&Profile::Tiny);
        assert!(f.contains("\nCONFIG_MPTCP=y\n") && f.contains("\nCONFIG_VIRTIO_NET=y\n"));
        assert!(f.contains("\n# CONFIG_DEBUG_INFO_BTF is not set\n"));
        assert!(f.contains("\nCONFIG_SYSTEM_TRUSTED_KEYS=\"\"\n"));
        // ALWAYS comes last, so it wins over a profile's value in merge_config.sh.
        assert!(f.rfind("CONFIG_MPTCP=y").unwrap() > f.find("CONFIG_VETH").unwrap());
        assert!(!fragment(&Profile::Defconfig).contains("VIRTIO"));
    }

    #[test]
    fn check_names_the_option_that_dropped() {
        let good = "CONFIG_MPTCP=y\nCONFIG_MPTCP_IPV6=y\nCONFIG_INET_MPTCP_DIAG=y\n";
        assert_eq!(check(good), Ok(()));
        let bad = "# CONFIG_MPTCP is not set\nCONFIG_INET_MPTCP_DIAG=m\n";
        assert_eq!(
            check(bad).unwrap_err(),
            vec![
                ("CONFIG_MPTCP".to_string(), "n".to_string()),
                ("CONFIG_MPTCP_IPV6".to_string(), "absent".to_string()),
                ("CONFIG_INET_MPTCP_DIAG".to_string(), "m".to_string()),
            ]
        );
        assert_eq!(
            value("CONFIG_MPTCPX=y\nCONFIG_MPTCP=y\n", "CONFIG_MPTCP"),
            Some("y")
        );
    }
}
