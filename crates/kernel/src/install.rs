//! Installing a built kernel on a guest, as the guide does by hand but verified: upload the
//! packages, `dpkg -i`, make the new kernel GRUB's default by release (its id path), update-grub,
//! reboot, wait for SSH, and check that the running kernel is the one built and has MPTCP on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use guest::{Command, Exec, FileMode};
use serde::Serialize;

use crate::grub::{self, Selector};

/// Where packages are uploaded on the guest.
pub const REMOTE_DIR: &str = "/var/cache/lab/kernel";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error(transparent)]
    Grub(#[from] grub::EditError),
    #[error("reading {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} booted {running}, not {expected}: GRUB did not pick the new kernel")]
    WrongKernel {
        host: String,
        running: String,
        expected: String,
    },
    #[error(
        "{host} answered with the same boot id for 5 minutes after `systemctl reboot`: it did not reboot"
    )]
    NoReboot { host: String },
    #[error("{host} runs {release}, but net.mptcp.enabled is {value}")]
    MptcpOff {
        host: String,
        release: String,
        value: String,
    },
}

impl From<guest::Error> for InstallError {
    fn from(e: guest::Error) -> Self {
        InstallError::Host(Box::new(e))
    }
}

/// What the running kernel offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub release: String,
    /// `net.mptcp.enabled` (absent: the kernel has no MPTCP).
    pub mptcp_enabled: Option<String>,
}

impl Check {
    pub fn has_mptcp(&self) -> bool {
        self.mptcp_enabled.is_some()
    }
}

/// `lab kernel check`: the running release and whether MPTCP is there (then no build is
/// needed: Ubuntu 22.04's stock 5.15 has it).
pub fn check(host: &dyn Exec) -> Result<Check, InstallError> {
    let release = host
        .check(&Command::new(["uname", "-r"]).retry_safe())?
        .stdout_lossy()
        .trim()
        .to_string();
    let out = host.run(&Command::new(["cat", "/proc/sys/net/mptcp/enabled"]).retry_safe())?;
    Ok(Check {
        release,
        mptcp_enabled: out.success().then(|| out.stdout_lossy().trim().to_string()),
    })
}

/// Changes on every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub release: String,
    pub grub_default: String,
    /// Time from the reboot command to SSH answering again.
    pub boot_seconds: f64,
    pub check: Check,
}

/// Install `packages` (local .deb files) built for `release` on `host`, reboot into it and
/// verify. With `trial`, the new kernel boots once and becomes the default only after the
/// checks pass. `wait_back` waits until the host answers again after the reboot (for SSH:
/// `Ssh::wait_reachable`) and returns how long it took.
pub fn install(
    host: &dyn Exec,
    packages: &[PathBuf],
    release: &str,
    trial: bool,
    wait_back: &mut dyn FnMut() -> Result<Duration, guest::Error>,
) -> Result<Installed, InstallError> {
    host.check(&Command::new(["mkdir", "-p", REMOTE_DIR]))?;
    // Image first, then headers and libc-dev, as dpkg would order them anyway.
    let mut remote = Vec::new();
    let mut sorted: Vec<&PathBuf> = packages.iter().collect();
    sorted.sort_by_key(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (!n.starts_with("linux-image-"), n)
    });
    for p in sorted {
        let bytes = std::fs::read(p).map_err(|source| InstallError::Local {
            path: p.clone(),
            source,
        })?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = Path::new(REMOTE_DIR).join(&name);
        host.put_file(&dest, &bytes, FileMode::mode(0o644))?;
        remote.push(dest.display().to_string());
    }
    let mut dpkg = vec![
        "env".to_string(),
        "DEBIAN_FRONTEND=noninteractive".into(),
        "dpkg".into(),
        "-i".into(),
    ];
    dpkg.extend(remote);
    host.check(&Command::new(dpkg).timeout(Duration::from_secs(900)))?;
    // dpkg's postinst hooks regenerated grub.cfg with the new kernel in it: select it there.
    let entry = grub::find_on(
        host,
        Path::new("/"),
        &Selector::Release(release.to_string()),
    )?;
    let id = grub::default_value(&entry).to_string();
    // A trial boots the new kernel once (grub-reboot) with GRUB_DEFAULT=saved, so a kernel that
    // does not come up falls back to the old default on the next reset; it becomes the default
    // (grub-set-default) only after it booted and passed the checks.
    let written = if trial { "saved" } else { id.as_str() };
    grub::write_default_on(host, Path::new("/"), entry, written)?;
    host.check(&Command::new(["update-grub"]).timeout(Duration::from_secs(300)))?;
    if trial {
        host.check(&Command::new(["grub-reboot", id.as_str()]))?;
    }
    // The boot id tells the new boot from the old one: right after `reboot` the old system may
    // still answer for a moment.
    let boot_id = |host: &dyn Exec| -> Result<String, guest::Error> {
        Ok(host
            // A session opened just before the old system went down can hang until TCP
            // gives up (NAT keeps the host side open): a short limit, then reconnect.
            .check(
                &Command::new(["cat", BOOT_ID])
                    .retry_safe()
                    .timeout(Duration::from_secs(10)),
            )?
            .stdout_lossy()
            .trim()
            .to_string())
    };
    let before = boot_id(host)?;
    let started = std::time::Instant::now();
    // The reboot ends the session; what it returns does not matter.
    let _ = host.run(&Command::new(["systemctl", "reboot"]).timeout(Duration::from_secs(10)));
    let mut attempts = 0;
    let boot = loop {
        wait_back()?;
        match boot_id(host) {
            Ok(now) if now != before => break started.elapsed(),
            // Still the old boot, or the session broke as it went down: wait again.
            Ok(_) | Err(_) if attempts < 300 => {
                attempts += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(_) => {
                return Err(InstallError::NoReboot {
                    host: host.host().to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    };
    let c = check(host)?;
    if c.release != release {
        return Err(InstallError::WrongKernel {
            host: host.host().to_string(),
            running: c.release,
            expected: release.to_string(),
        });
    }
    if c.mptcp_enabled.as_deref() != Some("1") {
        return Err(InstallError::MptcpOff {
            host: host.host().to_string(),
            release: c.release,
            value: c.mptcp_enabled.unwrap_or_else(|| "absent".into()),
        });
    }
    if trial {
        host.check(&Command::new(["grub-set-default", id.as_str()]))?;
    }
    Ok(Installed {
        release: release.to_string(),
        grub_default: id,
        boot_seconds: boot.as_secs_f64(),
        check: c,
    })
}
