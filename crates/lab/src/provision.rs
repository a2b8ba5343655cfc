//! `lab provision`: the guide's tools on a host over the command seam (mptcpd and mptcpize,
//! iperf3, ifstat, tshark), installed with apt when missing, and a warning when mptcpd's
//! address-advertising plugin would fight the lab's endpoints.

use std::time::Duration;

use guest::{Command, Exec};

/// (Debian package, the command it provides).
pub const TOOLS: &[(&str, &str)] = &[
    ("mptcpd", "mptcpd"),
    ("mptcpize", "mptcpize"),
    ("iperf3", "iperf3"),
    ("ifstat", "ifstat"),
    ("tshark", "tshark"),
];

/// What provisioning found and did on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Provisioned {
    /// The host's name.
    pub host: String,
    /// Packages that were there already.
    pub present: Vec<String>,
    /// Packages this run installed.
    pub installed: Vec<String>,
    /// Missing and not installed (`--check`).
    pub missing: Vec<String>,
    /// Worth telling, e.g. mptcpd's address announcements would fight the lab's endpoints.
    pub warnings: Vec<String>,
}

/// Whether the Debian package is installed (mptcpd's binary is not on PATH: /usr/libexec).
fn has(exec: &dyn Exec, package: &str) -> Result<bool, guest::Error> {
    let out = exec
        .run(&Command::new(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package]).retry_safe())?;
    Ok(out.success() && out.stdout_lossy().starts_with("ii"))
}

/// Whether mptcpd runs, under either unit name (`is-active` succeeds when any is active).
const MPTCPD_ACTIVE: [&str; 5] = [
    "systemctl",
    "is-active",
    "--quiet",
    "mptcp.service",
    "mptcpd.service",
];

/// Check the tools, install the missing ones unless `check_only`, and look at mptcpd.
pub fn provision(exec: &dyn Exec, check_only: bool) -> Result<Provisioned, guest::Error> {
    let mut p = Provisioned {
        host: exec.host().to_string(),
        ..Provisioned::default()
    };
    let mut missing = Vec::new();
    for (package, _) in TOOLS {
        if has(exec, package)? {
            p.present.push((*package).to_string());
        } else {
            missing.push((*package).to_string());
        }
    }
    if !missing.is_empty() {
        if check_only {
            p.missing = missing;
        } else {
            let install = |exec: &dyn Exec| {
                let mut argv: Vec<String> = [
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                ]
                .iter()
                .map(|s| (*s).to_string())
                .collect();
                argv.extend(missing.iter().cloned());
                exec.run(&Command::new(argv).timeout(Duration::from_secs(1800)))
            };
            let mut out = install(exec)?;
            if !out.success() {
                // Stale package lists (a fresh image): update once, then try again.
                exec.check(
                    &Command::new(["apt-get", "update", "-q"]).timeout(Duration::from_secs(600)),
                )?;
                out = install(exec)?;
            }
            if !out.success() {
                return Err(guest::Error::Failed {
                    host: exec.host().to_string(),
                    argv: vec!["apt-get".into(), "install".into()],
                    status: out.status,
                    stderr: out.stderr_lossy(),
                });
            }
            p.installed = missing;
        }
    }
    // mptcpd's default plugin (addr_adv) adds an endpoint for every address that appears.
    // Debian's and Ubuntu's package calls the unit mptcp.service; upstream's is mptcpd.service.
    let active = exec
        .run(&Command::new(MPTCPD_ACTIVE).retry_safe())?
        .success();
    if active {
        let conf = exec
            .run(&Command::new(["cat", "/etc/mptcpd/mptcpd.conf"]).retry_safe())?
            .stdout_lossy();
        let plugins = conf.lines().find_map(|l| {
            l.trim()
                .strip_prefix("load-plugins")
                .map(|r| r.trim_start_matches(['=', ' ']).to_string())
        });
        let addr_adv = plugins.as_deref().is_none_or(|p| p.contains("addr_adv"));
        if addr_adv {
            p.warnings.push(
                "mptcpd runs with its addr_adv plugin, which adds an MPTCP endpoint for every address that appears and fights the lab's endpoints: `systemctl disable --now mptcp` (mptcpize works without it)".into(),
            );
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest::{Fake, Output};

    fn probe(fake: Fake, package: &str, present: bool) -> Fake {
        fake.expect(
            &["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package],
            if present {
                Output::ok("ii ")
            } else {
                Output::failed(
                    1,
                    format!("dpkg-query: no packages found matching {package}"),
                )
            },
        )
    }

    #[test]
    fn installs_what_is_missing_and_warns_about_addr_adv() {
        let mut f = Fake::new("ue1");
        for (p, _) in TOOLS {
            f = probe(f, p, *p != "tshark" && *p != "ifstat");
        }
        let install = [
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "ifstat",
            "tshark",
        ];
        let f = f
            .expect(
                &install,
                Output::failed(100, "E: Unable to locate package tshark"),
            )
            .expect(&["apt-get", "update", "-q"], Output::ok(""))
            .expect(&install, Output::ok(""))
            .expect(&MPTCPD_ACTIVE, Output::ok(""))
            .expect(
                &["cat", "/etc/mptcpd/mptcpd.conf"],
                Output::ok("[core]\nlog=journal\n"),
            );
        let p = provision(&f, false).unwrap();
        assert_eq!(p.installed, ["ifstat", "tshark"]);
        assert_eq!(p.present, ["mptcpd", "mptcpize", "iperf3"]);
        assert_eq!(p.warnings.len(), 1, "the default plugin is addr_adv");
        f.finish().unwrap();
    }

    #[test]
    fn check_only_installs_nothing() {
        let mut f = Fake::new("ue1");
        for (p, _) in TOOLS {
            f = probe(f, p, *p != "iperf3");
        }
        let f = f.expect(&MPTCPD_ACTIVE, Output::failed(3, ""));
        let p = provision(&f, true).unwrap();
        assert_eq!(p.missing, ["iperf3"]);
        assert!(p.installed.is_empty() && p.warnings.is_empty());
        f.finish().unwrap();
    }
}
