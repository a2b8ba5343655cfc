//! lab's libvirt provider: a domain per host under a hypervisor on this machine
//! (`qemu:///system`) or another one (`qemu+ssh://user@host/system`), from lab's Debian image
//! (an overlay volume each), NIC 1 on user-mode NAT with SSH forwarded, the lab's segments as
//! bridges lab makes (no address, no firewall rule) with libvirt networks over them. The
//! `libvirt` crate spells the XML and virsh; this crate decides what to run.

pub mod vms;

use std::time::{Duration, Instant};

use model::Host;
use provider::{
    Access, Action, Capability, Ctx, Error, Events, HostState, HostUp, Missing, SnapshotOp,
    UpOptions, UpReport,
};

/// The provider's name in Lab.toml.
pub const NAME: &str = "libvirt";

/// libvirt domains.
///
/// ```
/// use provider::Provider as _;
/// let p = provider_libvirt::Libvirt::default();
/// assert_eq!(p.name(), "libvirt");
/// assert!(p.capabilities().contains(&provider::Capability::Snapshots));
/// ```
#[derive(Debug, Clone)]
pub struct Libvirt {
    /// Where base images, boxes and lab's key are cached (shared with the QEMU provider).
    pub cache: std::path::PathBuf,
    /// Where `ubuntu-XX.YY` cloud images come from (Ubuntu's server, or a mirror of its layout:
    /// `LAB_UBUNTU_CLOUD_IMAGES`).
    pub ubuntu_mirror: String,
}

impl Default for Libvirt {
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

impl provider::Provider for Libvirt {
    fn name(&self) -> &str {
        NAME
    }

    fn describe(&self) -> &str {
        "libvirt domains (qemu:///system or qemu+ssh://), segments as bridges"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Lifecycle,
            Capability::Halt,
            Capability::Snapshots,
            Capability::DryRun,
            Capability::Machines,
        ]
    }

    fn preflight(&self, ctx: &Ctx<'_>) -> Vec<Missing> {
        let mut missing = Vec::new();
        if ctx.hosts.is_empty() {
            return missing;
        }
        let local = ctx
            .hosts
            .iter()
            .any(|h| h.machine.is_none() && !vms::uri_of(h).is_remote());
        let mut tools = vec![
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("qemu-img", "qemu-utils"),
        ];
        if local {
            tools.push(("virsh", "libvirt-clients"));
        }
        for (tool, package) in tools {
            if !provider::vm::on_path(tool) {
                missing.push(Missing {
                    what: format!("{tool} (not on PATH)"),
                    fix: format!("apt-get install {package}"),
                });
            }
        }
        missing
    }

    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        vms::plan(
            ctx.lab,
            ctx.state.lab_dir(),
            &self.cache,
            &self.ubuntu_mirror,
        )
        .map_err(err)
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
            ctx.state,
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
                    machine: format!("{} on {}", v.domain, v.uri),
                    created: v.started,
                    ssh: Some(v.ssh),
                    boot_seconds: v.started.then_some(v.boot_seconds),
                    kernel: Some(v.kernel),
                })
                .collect(),
            applied: Vec::new(),
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
        Ok(vms::status(ctx.lab, ctx.state))
    }

    fn halt(
        &self,
        ctx: &Ctx<'_>,
        grace: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        vms::halt(ctx.lab, ctx.state, grace, events).map_err(err)
    }

    fn destroy(&self, ctx: &Ctx<'_>, events: Events<'_>) -> Result<Vec<String>, Error> {
        vms::destroy(ctx.lab, ctx.state, events).map_err(err)
    }

    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        Ok(Access::Ssh(vms::ssh_config(
            ctx.lab,
            ctx.state,
            host,
            &self.cache,
        )?))
    }

    fn snapshot(
        &self,
        ctx: &Ctx<'_>,
        op: &SnapshotOp,
        boot_timeout: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        let done = vms::snapshot(ctx.lab, ctx.state, op).map_err(err)?;
        if let SnapshotOp::Restore(name) = op {
            // A restored domain runs from the saved memory: its SSH answers at once, or after
            // the guest's clock catches up; wait for it so the next command finds it.
            for h in &ctx.hosts {
                let cfg = vms::ssh_config(ctx.lab, ctx.state, h, &self.cache)?;
                guest::Ssh::new(cfg).wait_reachable(boot_timeout)?;
            }
            events(provider::Event::Note(format!("restored snapshot `{name}`")));
        }
        Ok(done)
    }
}
