//! `lab up|halt|destroy|status|snapshot` for VirtualBox VMs: output around
//! `lab::virtualbox`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use lab::Lab;
use lab::virtualbox::{self as vb, Event, UpOptions};

use crate::{Failure, print_out};

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Report(miette::miette!("{e}"))
}

/// Print each VBoxManage call as it is made (stderr), or as the plan (stdout) in a dry run.
fn printer(dry_run: bool) -> impl FnMut(Event) {
    move |e| match e {
        Event::Call(c) if dry_run => println!("{c}"),
        Event::Call(c) => eprintln!("  {c}"),
        Event::Note(n) => eprintln!("note: {n}"),
    }
}

pub fn has_vms(lab: &Lab) -> bool {
    lab.hosts
        .iter()
        .any(|h| h.provider == lab::Provider::Virtualbox)
}

pub fn up(lab: &Lab, dir: &Path, opts: &UpOptions, provision: bool) -> Result<(), Failure> {
    let local = guest::Local::new("local");
    let vbm = vb::VBoxManage::from_env(&local);
    if opts.dry_run {
        println!(
            "# lab `{}` on VirtualBox: the VBoxManage commands `lab up` would run, in order",
            lab.name
        );
    }
    let vms = vb::up(lab, dir, &vbm, opts, &mut printer(opts.dry_run)).map_err(fail)?;
    if opts.dry_run {
        return Ok(());
    }
    let mut out = String::new();
    for v in &vms {
        writeln!(
            out,
            "{}: VM {} {} , SSH on 127.0.0.1:{}{}{}",
            v.host,
            v.name,
            if v.created { "created" } else { "adopted" },
            v.ssh_port,
            v.boot_seconds
                .map_or(String::new(), |s| format!(", reachable after {s:.1} s")),
            v.kernel
                .as_deref()
                .map_or(String::new(), |k| format!(", kernel {k}")),
        )
        .ok();
    }
    print_out(&out)?;
    if provision {
        crate::instant::apply(lab, dir, None, false, false, false)?;
    }
    Ok(())
}

pub fn halt(lab: &Lab, grace: Duration) -> Result<(), Failure> {
    let local = guest::Local::new("local");
    let vbm = vb::VBoxManage::from_env(&local);
    let halted = vb::halt(lab, &vbm, grace, &mut printer(false)).map_err(fail)?;
    if halted.is_empty() {
        print_out(&format!("lab `{}`: no VM was running\n", lab.name))
    } else {
        print_out(&format!("halted {}\n", halted.join(", ")))
    }
}

pub fn destroy(lab: &Lab, dir: &Path) -> Result<Vec<String>, Failure> {
    let local = guest::Local::new("local");
    let vbm = vb::VBoxManage::from_env(&local);
    vb::destroy(lab, dir, &vbm, &mut printer(false)).map_err(fail)
}

pub fn status(lab: &Lab, dir: &Path) -> Result<String, Failure> {
    let local = guest::Local::new("local");
    let vbm = vb::VBoxManage::from_env(&local);
    let rows = vb::status(lab, dir, &vbm).map_err(fail)?;
    let mut out = format!(
        "lab `{}` on VirtualBox (group {}):\n",
        lab.name,
        vb::group(lab)
    );
    for r in rows {
        writeln!(
            out,
            "  {:<8} {:<24} {:<12} {}",
            r.host,
            r.name,
            r.state.as_deref().unwrap_or("not created"),
            r.ssh_port
                .map_or(String::new(), |p| format!("ssh 127.0.0.1:{p}"))
        )
        .ok();
    }
    Ok(out)
}

pub fn snapshot(
    lab: &Lab,
    dir: &Path,
    restore: bool,
    name: &str,
    boot_timeout: Duration,
) -> Result<(), Failure> {
    let local = guest::Local::new("local");
    let vbm = vb::VBoxManage::from_env(&local);
    if restore {
        vb::snapshot_restore(lab, dir, &vbm, name, boot_timeout, &mut printer(false))
            .map_err(fail)?;
        print_out(&format!(
            "restored snapshot `{name}`; every VM is reachable again\n"
        ))
    } else {
        vb::snapshot_save(lab, &vbm, name, &mut printer(false)).map_err(fail)?;
        print_out(&format!("saved snapshot `{name}` of every VM\n"))
    }
}
