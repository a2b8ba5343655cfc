//! lab's VirtualBox provider: the guide's VMs from a Lab.toml, through the `vbox` crate (the
//! only one that knows VBoxManage's syntax).
//!
//! `up` creates what is missing (a linked clone of a base VM, an imported appliance, or an
//! unattended install from an ISO), adopts what exists, moves an SSH forward whose loopback
//! port another program took, starts the VMs headless and waits for SSH with the lab's key.
//! The lab's VMs carry the group `/lab-<lab>` and live in `.lab/vbox/`; `destroy` finds them by
//! their group even without lab's state file. Snapshots are a capability.

pub mod vms;

use std::time::{Duration, Instant};

use model::Host;
use provider::{
    Access, Action, Capability, Ctx, Error, Event, Events, HostState, HostUp, SnapshotOp,
    UpOptions, UpReport,
};

/// The provider's name in Lab.toml.
pub const NAME: &str = "virtualbox";

/// VirtualBox VMs, driven by `VBoxManage` from PATH (`LAB_VBOXMANAGE` names another).
#[derive(Debug, Default, Clone, Copy)]
pub struct VirtualBox;

fn err(e: vms::Error) -> Error {
    match e {
        vms::Error::State(e) => e,
        e => Error::provider(NAME, e),
    }
}

fn with_vbm<R>(f: impl FnOnce(&vms::VBoxManage<'_>) -> R) -> R {
    let local = guest::Local::new("local");
    let vbm = vms::VBoxManage::from_env(&local);
    f(&vbm)
}

impl provider::Provider for VirtualBox {
    fn name(&self) -> &str {
        NAME
    }

    fn describe(&self) -> &str {
        "VirtualBox VMs through VBoxManage, as in the guide"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Lifecycle,
            Capability::Halt,
            Capability::DryRun,
            Capability::Snapshots,
        ]
    }

    fn plan_up(&self, ctx: &Ctx<'_>) -> Result<Vec<Action>, Error> {
        let mut plan = Vec::new();
        with_vbm(|vbm| {
            vms::up(
                ctx.lab,
                ctx.state.lab_dir(),
                vbm,
                &vms::UpOptions {
                    dry_run: true,
                    boot_timeout: Duration::ZERO,
                },
                &mut |e| match e {
                    Event::Call(c) => plan.push(Action::note(None, c)),
                    Event::Note(n) => plan.push(Action::note(None, format!("# {n}"))),
                    _ => {}
                },
            )
        })
        .map_err(err)?;
        Ok(plan)
    }

    fn up(&self, ctx: &Ctx<'_>, opts: &UpOptions, events: Events<'_>) -> Result<UpReport, Error> {
        let start = Instant::now();
        let up = with_vbm(|vbm| {
            vms::up(
                ctx.lab,
                ctx.state.lab_dir(),
                vbm,
                &vms::UpOptions {
                    dry_run: false,
                    boot_timeout: opts.boot_timeout,
                },
                events,
            )
        })
        .map_err(err)?;
        Ok(UpReport {
            hosts: up
                .into_iter()
                .map(|v| HostUp {
                    host: v.host,
                    machine: v.name,
                    created: v.created,
                    ssh: Some(format!("127.0.0.1:{}", v.ssh_port)),
                    boot_seconds: v.boot_seconds,
                    kernel: v.kernel,
                })
                .collect(),
            applied: Vec::new(),
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn status(&self, ctx: &Ctx<'_>) -> Result<Vec<HostState>, Error> {
        let rows = with_vbm(|vbm| vms::status(ctx.lab, ctx.state.lab_dir(), vbm)).map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let state = match r.state.as_deref() {
                    None => "not created",
                    Some("running") => "running",
                    Some("poweroff" | "aborted" | "saved") => "stopped",
                    Some(other) => other,
                };
                HostState {
                    detail: r.state.as_ref().map(|st| format!("VirtualBox state {st}")),
                    ..HostState::vm(&r.host, NAME, state, r.name, r.ssh_port)
                }
            })
            .collect())
    }

    fn halt(
        &self,
        ctx: &Ctx<'_>,
        grace: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        with_vbm(|vbm| vms::halt(ctx.lab, vbm, grace, events)).map_err(err)
    }

    fn destroy(&self, ctx: &Ctx<'_>, events: Events<'_>) -> Result<Vec<String>, Error> {
        with_vbm(|vbm| vms::destroy(ctx.lab, ctx.state.lab_dir(), vbm, events)).map_err(err)
    }

    fn access(&self, ctx: &Ctx<'_>, host: &Host) -> Result<Access, Error> {
        Ok(Access::Ssh(vms::ssh_config(
            ctx.lab,
            ctx.state.lab_dir(),
            host,
        )?))
    }

    fn snapshot(
        &self,
        ctx: &Ctx<'_>,
        op: &SnapshotOp,
        boot_timeout: Duration,
        events: Events<'_>,
    ) -> Result<Vec<String>, Error> {
        let names: Vec<String> = ctx
            .hosts
            .iter()
            .map(|h| vms::vm_name(ctx.lab, &h.name))
            .collect();
        with_vbm(|vbm| match op {
            SnapshotOp::Save(name) => vms::snapshot_save(ctx.lab, vbm, name, events),
            SnapshotOp::Restore(name) => vms::snapshot_restore(
                ctx.lab,
                ctx.state.lab_dir(),
                vbm,
                name,
                boot_timeout,
                events,
            ),
        })
        .map_err(err)?;
        Ok(names)
    }
}
