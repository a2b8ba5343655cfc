//! Test support. Only `[dev-dependencies]` use this crate.
//!
//! Tests that need root, a tool or a device call [`require`]: when the capability is missing the
//! test prints why and returns early (a skip), except when `LAB_REQUIRE_SYSTEM_TESTS=1` (set by
//! `.ci/run`), where a missing capability fails the test.

use std::path::PathBuf;

pub mod http;
pub mod images;
pub mod kernel;
pub mod pgp;
pub mod tshark;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "LAB_REQUIRE_SYSTEM_TESTS";

/// Whether missing capabilities must fail tests instead of skipping them.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// `Ok(())` when the capability is there; otherwise skip (return `false`) with a printed
/// reason, or panic when system tests are required.
///
/// ```no_run
/// if !testkit::require("netplan generate", testkit::tool("netplan")) {
///     return;
/// }
/// ```
pub fn require(test: &str, capability: Result<(), String>) -> bool {
    match capability {
        Ok(()) => true,
        Err(why) if required() => {
            panic!("{test}: {why} ({REQUIRE_ENV}=1, so a missing capability is a failure)")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why} (set {REQUIRE_ENV}=1 to make this a failure)");
            false
        }
    }
}

/// An executable on PATH (or an absolute path that exists).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A capability check: the tool is installed.
pub fn tool(name: &str) -> Result<(), String> {
    which(name)
        .map(|_| ())
        .ok_or_else(|| format!("`{name}` is not installed"))
}

/// A capability check: running as root (namespaces, netlink changes, mounts).
pub fn root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    if euid == Some("0") {
        Ok(())
    } else {
        Err("needs root (network namespaces)".into())
    }
}

/// A capability check: the kernel has MPTCP enabled.
pub fn mptcp() -> Result<(), String> {
    match std::fs::read_to_string("/proc/sys/net/mptcp/enabled") {
        Ok(v) if v.trim() == "1" => Ok(()),
        Ok(_) => Err("net.mptcp.enabled is 0 on this machine".into()),
        Err(_) => Err("this kernel has no MPTCP (CONFIG_MPTCP)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("no-such-tool-lab-test").is_none());
        assert!(tool("no-such-tool-lab-test").is_err());
    }
}
