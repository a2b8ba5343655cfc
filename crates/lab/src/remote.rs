//! Applying a host's plan through the command seam (SSH to an existing host, or any
//! `guest::Exec`): read the live state with iproute2's JSON output, diff it against the plan
//! (`net::diff`, the same as for namespace hosts), and run only the changes' argv. Optionally
//! persist the configuration: netplan YAML (mode 600) and rt_tables lines, under a root
//! directory (`/` on a real host, a temp dir in tests).

use std::path::{Path, PathBuf};

use guest::{Command, Exec, FileMode};

/// Errors of the remote applier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command on the host failed (argv, status and stderr inside).
    #[error(transparent)]
    Command(#[from] Box<guest::Error>),
    /// What the host printed could not be read.
    #[error("host {host}: {message}")]
    Parse {
        /// The host.
        host: String,
        /// What was wrong.
        message: String,
    },
    /// The host's netplan YAML could not be rendered.
    #[error("host {host}: cannot render netplan: {message}")]
    Netplan {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Command(Box::new(e))
    }
}

/// Persisting the configuration across reboots.
#[derive(Debug, Clone)]
pub struct Persist {
    /// Root of the host's filesystem: `/`, or a directory standing in for it.
    pub root: PathBuf,
    /// Run `netplan apply` after writing the YAML (reconfigures the host's interfaces).
    pub netplan_apply: bool,
}

pub use provider::Applied;

/// The host's live state, as far as `plan` manages it.
pub fn observe(exec: &dyn Exec, plan: &net::HostNet) -> Result<net::Observed, Error> {
    let run = |argv: Vec<String>| -> Result<String, Error> {
        Ok(exec.check(&Command::new(argv).retry_safe())?.stdout_lossy())
    };
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    // A host booted with IPv6 off (ipv6.disable=1) refuses `ip -6`: nothing of IPv6 to read
    // then, unless the plan has IPv6 addresses, which is the error it is.
    let plan_v6 = plan
        .interfaces
        .iter()
        .flat_map(|i| &i.addresses)
        .any(|a| a.addr().is_ipv6());
    let run6 = |argv: Vec<String>| -> Result<String, Error> {
        if plan_v6 {
            return run(argv);
        }
        let out = exec.run(&Command::new(argv).retry_safe())?;
        Ok(if out.success() {
            out.stdout_lossy()
        } else {
            String::new()
        })
    };
    let c = net::observe::COMMANDS;
    let outputs = net::observe::Outputs {
        link: run(words(c[0]))?,
        address: run(words(c[1]))?,
        rule: run(words(c[2]))?,
        rule6: run6(words(c[3]))?,
        route: run(words(c[4]))?,
        route6: run6(words(c[5]))?,
        endpoint: run(words(c[6]))?,
        limits: run(words(c[7]))?,
        qdisc: run(words(c[8]))?,
        sysctl: exec
            .run(&Command::new(net::observe::sysctl_argv(plan)).retry_safe())?
            .stdout_lossy(),
    };
    net::observe::parse(plan, &outputs).map_err(|message| Error::Parse {
        host: exec.host().to_string(),
        message,
    })
}

/// Converge the host on `plan` (or, with `dry_run`, only say what would change).
pub fn apply(
    exec: &dyn Exec,
    plan: &net::HostNet,
    dry_run: bool,
    persist: Option<&Persist>,
) -> Result<Applied, Error> {
    let start = std::time::Instant::now();
    let mut out = converge(exec, plan, dry_run, persist)?;
    out.elapsed_us = start.elapsed().as_micros();
    Ok(out)
}

fn converge(
    exec: &dyn Exec,
    plan: &net::HostNet,
    dry_run: bool,
    persist: Option<&Persist>,
) -> Result<Applied, Error> {
    let mut out = Applied {
        host: exec.host().to_string(),
        changes: Vec::new(),
        files: Vec::new(),
        warnings: Vec::new(),
        elapsed_us: 0,
        replaced_sysctls: Vec::new(),
    };
    let (settable, warnings) = settable(exec, plan)?;
    out.warnings = warnings;
    let plan = &settable;
    let observed = observe(exec, plan)?;
    let changes = net::diff(plan, &observed);
    if dry_run {
        out.changes = changes;
        if let Some(p) = persist {
            out.files = persisted_paths(&p.root);
        }
        return Ok(out);
    }
    for change in changes {
        let Some(argv) = change.argv() else { continue };
        let result = exec.check(&Command::new(argv.clone()));
        if result.is_ok()
            && let net::Change::Apply(net::Step::Sysctl(s)) = &change
            && let Some((_, old)) = observed.sysctls.iter().find(|(k, _)| *k == s.key)
            && old.trim() != s.value.trim()
        {
            out.replaced_sysctls
                .push((s.key.clone(), old.trim().to_string()));
        }
        match result {
            Ok(_) => out.changes.push(change),
            Err(e) if is_laminar_unsupported(&change, &e) => {
                // iproute2 before 6.18 has no `laminar` word: the endpoint goes in as `subflow`
                // (what the kernel does without laminar), and the report says so.
                let fallback: Vec<String> = argv
                    .iter()
                    .map(|w| {
                        if w == "laminar" {
                            "subflow".into()
                        } else {
                            w.clone()
                        }
                    })
                    .collect();
                exec.check(&Command::new(fallback))?;
                out.warnings.push(format!(
                    "{}: this iproute2 cannot set the laminar flag; added as `subflow`",
                    net::shell::join(&argv)
                ));
                out.changes.push(change);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(p) = persist {
        out.files = persist_files(exec, plan, p)?;
    }
    Ok(out)
}

/// Whether the host's iproute2 knows the `laminar` endpoint flag (its usage text names it).
/// `plan` as this host's iproute2 can set it, with what that changed (as warnings): without
/// the laminar flag (iproute2 before 6.18 cannot set it) a laminar endpoint goes in as
/// `subflow`, which is what the kernel does without laminar; planning it that way keeps a
/// second apply, and `lab status`, at 0 changes.
///
/// ```
/// use guest::{Fake, Output};
/// let lab = model::Preset::Builtin.load().unwrap();
/// let plan = lab.hosts[1].net(); // ue2: laminar endpoints
/// let help = ["ip", "mptcp", "endpoint", "help"];
/// // Debian 12's iproute2: no laminar.
/// let old = Fake::new("ue2").expect(&help, Output::failed(255, "FLAG := [ signal | subflow | backup | fullmesh ]"));
/// let (p, warnings) = lab::remote::settable(&old, &plan).unwrap();
/// assert!(p.endpoints.iter().all(|e| e.flags.subflow && !e.flags.laminar));
/// assert_eq!(warnings.len(), 3);
/// // iproute2 6.18: the plan as it is.
/// let new = Fake::new("ue2").expect(&help, Output::failed(255, "FLAG := [ signal | subflow | laminar | backup ]"));
/// assert_eq!(lab::remote::settable(&new, &plan).unwrap(), (plan.clone(), Vec::new()));
/// ```
pub fn settable(
    exec: &dyn Exec,
    plan: &net::HostNet,
) -> Result<(net::HostNet, Vec<String>), Error> {
    let mut p = plan.clone();
    let mut warnings = Vec::new();
    if plan.endpoints.iter().any(|e| e.flags.laminar) && !laminar_supported(exec)? {
        for e in &mut p.endpoints {
            if e.flags.laminar {
                e.flags.laminar = false;
                e.flags.subflow = true;
                warnings.push(format!(
                    "{}: this iproute2 cannot set the laminar flag; `subflow` instead",
                    e.address
                ));
            }
        }
    }
    Ok((p, warnings))
}

fn laminar_supported(exec: &dyn Exec) -> Result<bool, Error> {
    let help = exec.run(&Command::new(["ip", "mptcp", "endpoint", "help"]).retry_safe())?;
    Ok(help.stdout_lossy().contains("laminar") || help.stderr_lossy().contains("laminar"))
}

fn is_laminar_unsupported(change: &net::Change, e: &guest::Error) -> bool {
    matches!(change, net::Change::Apply(net::Step::Endpoint(ep)) if ep.flags.laminar)
        && matches!(e, guest::Error::Failed { stderr, .. } if stderr.contains("laminar"))
}

fn persisted_paths(root: &Path) -> Vec<String> {
    [net::netplan::PATH, "/etc/iproute2/rt_tables"]
        .iter()
        .map(|p| under(root, p).display().to_string())
        .collect()
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Write the netplan YAML (mode 600, as netplan requires) and add the plan's rt_tables lines
/// that are missing (once), then optionally `netplan apply`.
fn persist_files(exec: &dyn Exec, plan: &net::HostNet, p: &Persist) -> Result<Vec<String>, Error> {
    let host = exec.host().to_string();
    let yaml = net::netplan::render(plan, &format!("lab: host {}", plan.host)).map_err(|e| {
        Error::Netplan {
            host: host.clone(),
            message: e.to_string(),
        }
    })?;
    let netplan_path = under(&p.root, net::netplan::PATH);
    exec.check(&Command::new([
        "mkdir",
        "-p",
        "--",
        &netplan_path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    ]))?;
    exec.put_file(&netplan_path, yaml.as_bytes(), FileMode::mode(0o600))?;

    let rt_path = under(&p.root, "/etc/iproute2/rt_tables");
    let current = match exec.get_file(&rt_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(guest::Error::File { .. }) => String::new(),
        Err(e) => return Err(e.into()),
    };
    let merged = net::rt_tables::merge(&current, plan);
    let mut files = vec![netplan_path.display().to_string()];
    if merged != current {
        exec.check(&Command::new([
            "mkdir",
            "-p",
            "--",
            &rt_path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        ]))?;
        exec.put_file(&rt_path, merged.as_bytes(), FileMode::mode(0o644))?;
        files.push(rt_path.display().to_string());
    }
    if p.netplan_apply {
        exec.check(&Command::new(["netplan", "apply"]))?;
    }
    Ok(files)
}
