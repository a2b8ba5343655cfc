//! lab's provider for existing machines: hosts that lab did not create, reached over SSH
//! (`[hosts.NAME.ssh]` in Lab.toml). `up` checks that every host answers with a host key
//! already known (lab never trusts an existing machine's key on first use) and fails naming
//! each host that does not; `status` reports reachability and the running kernel; `halt`,
//! `destroy` and `snapshot` refuse, since these machines are not the lab's.

use std::time::{Duration, Instant};

use guest::{Auth, Command, Exec, Ssh, SshConfig};
use model::Host;
use provider::{
    Access, Action, Capability, Ctx, Error, Events, HostState, HostUp, SnapshotOp, StateDir,
    UpOptions, UpReport,
};

/// The provider's name in Lab.toml.
pub const NAME: &str = "ssh";

/// Existing machines over SSH.
#[derive(Debug, Default, Clone, Copy)]
pub struct Existing;

/// How an existing host is reached: its Lab.toml key, else the user's ssh-agent, else the
/// lab's own key; its host key must be in the lab's known_hosts beforehand.
pub fn ssh_config(state: &StateDir, h: &Host) -> Result<SshConfig, Error> {
    let t = h.ssh.as_ref().ok_or_else(|| {
        Error::unsupported(
            NAME,
            "reach hosts",
            &format!("host `{}` has no [hosts.{}.ssh] table", h.name, h.name),
        )
    })?;
    let auth = match &t.key {
        Some(k) if k.is_absolute() => Auth::Key(k.clone()),
        Some(k) => Auth::Key(state.lab_dir().join(k)),
        None if std::env::var_os("SSH_AUTH_SOCK").is_some() => Auth::Agent,
        None => Auth::Key(state.key()?),
    };
    let mut c = SshConfig::new(
        h.name.clone(),
        t.address.clone(),
        t.port,
        t.user.clone(),
        auth,
        state.known_hosts(),
    );
    // Existing machines are not the lab's: their keys must be known beforehand.
    c.trust_on_first_use = false;
    c.connect_timeout = Duration::from_secs(10);
    Ok(c)
}

/// `uname -r` on each host, or why it cannot be reached (the SSH settings are made one after
/// the other, since they may generate the lab's key; the hosts are probed in parallel).
fn probe_all(state: &StateDir, hosts: &[&Host]) -> Vec<Result<String, String>> {
    let cfgs: Vec<Result<SshConfig, String>> = hosts
        .iter()
        .map(|h| ssh_config(state, h).map_err(|e| e.to_string()))
        .collect();
    provider::vm::each_in_parallel(&cfgs, |c| match c {
        Ok(c) => probe(c.clone()),
        Err(e) => Err(e.clone()),
    })
}

/// `uname -r` on a host, or why it cannot be reached.
fn probe(cfg: SshConfig) -> Result<String, String> {
    let ssh = Ssh::new(cfg);
    ssh.check(&Command::new(["uname", "-r"]).timeout(Duration::from_secs(20)))
        .map(|o| o.stdout_lossy().trim().to_string())
        .map_err(|e| e.to_string())
}

fn where_(h: &Host) -> Option<String> {
    h.ssh
        .as_ref()
        .map(|t| format!("{}@{}:{}", t.user, t.address, t.port))
}

fn refuse(operation: &str) -> Error {
    Error::unsupported(
        NAME,
        operation,
        "lab did not create these machines (provider \"ssh\" only reaches existing hosts)",
    )
}

impl provider::Provider for Existing {
    fn name(&self) -> &str {
        NAME
    }

    fn describe(&self) -> &str {
        "existing machines reached over SSH (lab does not create or stop them)"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::DryRun]
    }

    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        Ok(ctx
            .hosts
            .iter()
            .map(|h| {
                Action::note(
                    Some(&h.name),
                    format!(
                        "check that {} answers with a known host key (nothing is created)",
                        where_(h).unwrap_or_default()
                    ),
                )
            })
            .collect())
    }

    fn up(&self, ctx: &Ctx<'_>, _opts: &UpOptions, events: Events<'_>) -> Result<UpReport, Error> {
        let start = Instant::now();
        events(provider::Event::Step(format!(
            "ssh: checking {} existing hosts",
            ctx.hosts.len()
        )));
        let probes = probe_all(ctx.state, &ctx.hosts);
        let mut hosts = Vec::new();
        let mut unreachable = Vec::new();
        for (h, p) in ctx.hosts.iter().zip(probes) {
            match p {
                Ok(kernel) => hosts.push(HostUp {
                    host: h.name.clone(),
                    machine: where_(h).unwrap_or_default(),
                    created: false,
                    ssh: h.ssh.as_ref().map(|t| format!("{}:{}", t.address, t.port)),
                    boot_seconds: None,
                    kernel: Some(kernel),
                }),
                Err(e) => unreachable.push((h.name.clone(), e)),
            }
        }
        if !unreachable.is_empty() {
            return Err(Error::Unreachable {
                provider: NAME.into(),
                unreachable,
            });
        }
        Ok(UpReport {
            hosts,
            applied: Vec::new(),
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
        let probes = probe_all(ctx.state, &ctx.hosts);
        Ok(ctx
            .hosts
            .iter()
            .zip(probes)
            .map(|(h, p)| {
                let mut s = HostState::new(
                    &h.name,
                    NAME,
                    if p.is_ok() {
                        "reachable"
                    } else {
                        "unreachable"
                    },
                );
                s.machine = where_(h);
                s.ssh = h.ssh.as_ref().map(|t| format!("{}:{}", t.address, t.port));
                match p {
                    Ok(k) => s.kernel = Some(k),
                    Err(e) => s.detail = Some(e),
                }
                s
            })
            .collect())
    }

    fn halt(&self, _: &Ctx<'_>, _: Duration, _: Events<'_>) -> Result<Vec<String>, Error> {
        Err(refuse("halt"))
    }

    fn destroy(&self, _: &Ctx<'_>, _: Events<'_>) -> Result<Vec<String>, Error> {
        Err(refuse("destroy"))
    }

    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        Ok(Access::Ssh(ssh_config(ctx.state, host)?))
    }

    fn snapshot(
        &self,
        _: &Ctx<'_>,
        _: &SnapshotOp,
        _: Duration,
        _: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        Err(refuse("snapshot"))
    }
}
