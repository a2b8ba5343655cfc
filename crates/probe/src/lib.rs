//! Build-time probes for the workspace's system tests.
//!
//! A test that needs root, the kernel's MPTCP or a tool this machine lacks must not report as
//! passed. The crates with such tests call [`emit`] from their `build.rs`; it sets one cfg per
//! capability that is present (`lab_has_root`, `lab_has_iperf3`, ... and the composites
//! `lab_netns`, `lab_qemu`, `lab_libvirt`, `lab_sshd`, `lab_gpg`), and the tests carry
//! `#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]`, so that
//! `cargo test --workspace` lists them as ignored, with the reason, where they cannot run.
//!
//! With `LAB_REQUIRE_SYSTEM_TESTS=1` (set by `.ci/run`) every cfg is set: every test runs, and
//! one whose capability is missing fails (its runtime check, `testkit::require`, says what is
//! missing). The build script runs again when that variable changes or when a program is
//! installed or removed (the directories of programs are watched).

use std::path::Path;

/// The environment variable that turns every system test on.
pub const REQUIRE_ENV: &str = "LAB_REQUIRE_SYSTEM_TESTS";

/// Programs looked up on PATH, each giving `lab_has_<name>` (`-` and `.` as `_`); the
/// [`QEMU_TOOLS`] too.
pub const TOOLS: &[&str] = &[
    "ip",
    "iperf3",
    "mptcpize",
    "ssh",
    "ssh-keygen",
    "netplan",
    "genisoimage",
    "isoinfo",
    "gpg",
    "gpgv",
    "gpgconf",
    "dot",
    "man",
    "tshark",
    "tcpdump",
    "bash",
    "python3",
    "virsh",
    "virt-xml-validate",
    "libvirtd",
];

/// The programs the QEMU tests need besides root and [`LINUX_SOURCE`] (`lab_qemu`); the tests'
/// own runtime check reads the same list.
pub const QEMU_TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "qemu-img",
    "vde_switch",
    "debootstrap",
    "sfdisk",
    "mkfs.ext4",
    "debugfs",
];

/// Debian's kernel source, which the kernel-build and QEMU tests build from.
pub const LINUX_SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

/// The cfg name of a tool.
///
/// ```
/// assert_eq!(probe::cfg_name("mkfs.ext4"), "lab_has_mkfs_ext4");
/// ```
pub fn cfg_name(tool: &str) -> String {
    format!("lab_has_{}", tool.replace(['-', '.'], "_"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        || Path::new("/usr/sbin").join(tool).is_file()
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Every capability: its cfg name and whether this machine has it.
pub fn capabilities() -> Vec<(String, bool)> {
    let mut caps: Vec<(String, bool)> = vec![
        ("lab_has_root".into(), root()),
        (
            "lab_has_mptcp".into(),
            Path::new("/proc/sys/net/mptcp/enabled").is_file(),
        ),
        ("lab_has_sshd".into(), Path::new("/usr/sbin/sshd").is_file()),
        (
            "lab_has_linux_source".into(),
            Path::new(LINUX_SOURCE).is_file(),
        ),
    ];
    caps.extend(
        TOOLS
            .iter()
            .chain(QEMU_TOOLS)
            .map(|t| (cfg_name(t), on_path(t))),
    );
    let has = |caps: &[(String, bool)], names: &[&str]| {
        names
            .iter()
            .all(|n| caps.iter().any(|(c, ok)| *ok && *c == cfg_name(n)))
    };
    let composites: Vec<(String, bool)> = vec![
        ("lab_netns".into(), has(&caps, &["root", "mptcp", "ip"])),
        (
            "lab_qemu".into(),
            has(&caps, &["root", "linux_source"]) && has(&caps, QEMU_TOOLS),
        ),
        (
            "lab_sshd".into(),
            has(&caps, &["sshd", "ssh-keygen", "ssh"]),
        ),
        ("lab_gpg".into(), has(&caps, &["gpg", "gpgv", "gpgconf"])),
        (
            "lab_libvirt".into(),
            has(&caps, &["root", "linux_source", "virsh", "libvirtd"]) && has(&caps, QEMU_TOOLS),
        ),
    ];
    caps.extend(composites);
    caps
}

/// For a `build.rs`: declare every cfg, set those this machine has (all of them with
/// `LAB_REQUIRE_SYSTEM_TESTS=1`), and say when to probe again.
pub fn emit() {
    let all = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    println!("cargo::rerun-if-env-changed={REQUIRE_ENV}");
    println!("cargo::rerun-if-env-changed=PATH");
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/src"] {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
    for (cfg, present) in capabilities() {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if present || all {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_and_composite_has_a_cfg() {
        let caps = capabilities();
        for t in TOOLS.iter().chain(QEMU_TOOLS) {
            assert!(caps.iter().any(|(c, _)| *c == cfg_name(t)), "{t}");
        }
        for c in [
            "lab_netns",
            "lab_qemu",
            "lab_sshd",
            "lab_gpg",
            "lab_has_root",
        ] {
            assert!(caps.iter().any(|(n, _)| n == c), "{c}");
        }
        // A composite holds only when its parts do.
        let get = |n: &str| caps.iter().find(|(c, _)| c == n).unwrap().1;
        assert!(!get("lab_netns") || (get("lab_has_root") && get("lab_has_mptcp")));
        assert!(!get("lab_gpg") || get("lab_has_gpgv"));
    }
}
