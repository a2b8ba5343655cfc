//! lab's QEMU provider: one VM per host from lab's Debian base image or a cloud image (a qcow2
//! overlay each), NIC 1 on user-mode NAT with SSH forwarded from a free loopback port, the
//! lab's segments and links as `vde_switch`es (never the host's network). The `qemu` crate
//! spells QEMU's options; this crate decides what to run.

pub mod vms;

use std::time::{Duration, Instant};

use model::Host;
use provider::{
    Access, Action, Capability, Ctx, Error, Events, HostState, HostUp, Missing, UpOptions, UpReport,
};

/// The provider's name in Lab.toml.
pub const NAME: &str = "qemu";

/// QEMU VMs on this machine (KVM when usable, else TCG).
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Where base images are cached.
    pub cache: std::path::PathBuf,
    /// Where `ubuntu-XX.YY` cloud images come from (Ubuntu's server, or a mirror of its layout:
    /// `LAB_UBUNTU_CLOUD_IMAGES`).
    pub ubuntu_mirror: String,
}

impl Default for Qemu {
    fn default() -> Self {
        Self {
            cache: provider::cache_dir("images"),
            ubuntu_mirror: images::ubuntu_mirror(),
        }
    }
}

fn err(e: vms::Error) -> Error {
    match e {
        vms::Error::State(e) => e,
        e => Error::provider(NAME, e),
    }
}

impl provider::Provider for Qemu {
    fn name(&self) -> &str {
        NAME
    }

    fn describe(&self) -> &str {
        "QEMU VMs (KVM or TCG), segments as vde switches"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::Lifecycle, Capability::Halt, Capability::DryRun]
    }

    fn preflight(&self, ctx: &Ctx<'_>) -> Vec<Missing> {
        if ctx.hosts.is_empty() {
            return Vec::new();
        }
        [
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("qemu-img", "qemu-utils"),
            ("vde_switch", "vde2"),
        ]
        .into_iter()
        .filter(|(tool, _)| !provider::vm::on_path(tool))
        .map(|(tool, package)| Missing {
            what: format!("{tool} (not on PATH)"),
            fix: format!("apt-get install {package}"),
        })
        .collect()
    }

    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        vms::plan(ctx.lab, ctx.state.lab_dir(), &self.cache).map_err(err)
    }

    fn up(&self, ctx: &Ctx<'_>, opts: &UpOptions, events: Events<'_>) -> Result<UpReport, Error> {
        let missing = self.preflight(ctx);
        if !missing.is_empty() {
            return Err(Error::Missing {
                provider: NAME.into(),
                missing,
            });
        }
        let start = Instant::now();
        let up = vms::up(
            ctx.lab,
            ctx.state.lab_dir(),
            &guest::Local::new("local"),
            &vms::UpOptions {
                boot_timeout: opts.boot_timeout,
                images: images::Options {
                    cache: self.cache.clone(),
                    ubuntu_mirror: self.ubuntu_mirror.clone(),
                    skip_signature: opts.skip_signatures,
                },
            },
            events,
        )
        .map_err(err)?;
        for v in &up {
            if let Some(kind) = v.key_swapped {
                events(provider::Event::Note(format!(
                    "{}: logged in with Vagrant's public insecure {kind} key and replaced it with the lab's key",
                    v.host
                )));
            }
        }
        Ok(UpReport {
            hosts: up
                .into_iter()
                .map(|v| HostUp {
                    host: v.host,
                    machine: v.name,
                    created: v.started,
                    ssh: Some(format!("127.0.0.1:{}", v.ssh_port)),
                    boot_seconds: v.started.then_some(v.boot_seconds),
                    kernel: Some(v.kernel),
                })
                .collect(),
            applied: Vec::new(),
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
        Ok(vms::status(ctx.lab, ctx.state.lab_dir())
            .into_iter()
            .map(|v| {
                let state = match (v.running, v.ssh_port) {
                    (true, _) => "running",
                    (false, Some(_)) => "stopped",
                    (false, None) => "not created",
                };
                HostState::vm(&v.host, NAME, state, v.name, v.ssh_port)
            })
            .collect())
    }

    fn halt(
        &self,
        ctx: &Ctx<'_>,
        grace: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        Ok(vms::halt(ctx.lab, ctx.state.lab_dir(), grace, events))
    }

    fn destroy(&self, ctx: &Ctx<'_>, _events: Events<'_>) -> Result<Vec<String>, Error> {
        vms::destroy(ctx.lab, ctx.state.lab_dir()).map_err(err)
    }

    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        Ok(Access::Ssh(vms::ssh_config(
            ctx.lab,
            ctx.state.lab_dir(),
            host,
        )?))
    }
}
