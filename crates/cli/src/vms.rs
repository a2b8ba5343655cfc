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

pub fn has_qemu(lab: &Lab) -> bool {
    lab.hosts.iter().any(|h| h.provider == lab::Provider::Qemu)
}

pub fn qemu_up(
    lab: &Lab,
    dir: &Path,
    boot_timeout: Duration,
    provision: bool,
) -> Result<(), Failure> {
    use lab::qemu::Event as Q;
    let opts = lab::qemu::UpOptions {
        boot_timeout,
        cache: lab::virtualbox::image_cache(),
        ubuntu_mirror: std::env::var("LAB_UBUNTU_CLOUD_IMAGES")
            .unwrap_or_else(|_| lab::qemu::UBUNTU_CLOUD_IMAGES.to_string()),
    };
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let vms = lab::qemu::up(
        lab,
        dir,
        &guest::Local::new("local"),
        &opts,
        &mut |e| match e {
            Q::Step(s) => bar.suspend(|| eprintln!("{s}")),
            Q::Note(n) => bar.suspend(|| eprintln!("note: {n}")),
            Q::Download { done, total } => {
                if bar.is_hidden() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            }
        },
    );
    bar.finish_and_clear();
    let vms = vms.map_err(fail)?;
    let mut out = String::new();
    for v in &vms {
        writeln!(
            out,
            "{}: VM {} {}, SSH on 127.0.0.1:{}, kernel {}{}",
            v.host,
            v.name,
            if v.started { "started" } else { "adopted" },
            v.ssh_port,
            v.kernel,
            if v.started {
                format!(", boot to SSH {:.1} s", v.boot_seconds)
            } else {
                String::new()
            }
        )
        .ok();
    }
    print_out(&out)?;
    if provision {
        crate::instant::apply(lab, dir, None, false, false, false)?;
    }
    Ok(())
}

pub fn qemu_status(lab: &Lab, dir: &Path) -> String {
    let mut out = format!("lab `{}` on QEMU:\n", lab.name);
    for r in lab::qemu::status(lab, dir) {
        writeln!(
            out,
            "  {:<8} {:<24} {:<12} {}",
            r.host,
            r.name,
            if r.running { "running" } else { "stopped" },
            r.ssh_port
                .map_or(String::new(), |p| format!("ssh 127.0.0.1:{p}"))
        )
        .ok();
    }
    out
}

pub fn qemu_halt(lab: &Lab, dir: &Path, grace: Duration) -> Result<(), Failure> {
    let halted = lab::qemu::halt(lab, dir, grace, &mut |e| {
        if let lab::qemu::Event::Note(n) = e {
            eprintln!("note: {n}");
        }
    });
    print_out(&if halted.is_empty() {
        format!("lab `{}`: no VM was running\n", lab.name)
    } else {
        format!("halted {}\n", halted.join(", "))
    })
}

pub fn qemu_destroy(lab: &Lab, dir: &Path) -> Result<(), Failure> {
    let ended = lab::qemu::destroy(lab, dir).map_err(fail)?;
    print_out(&if ended.is_empty() {
        format!("lab `{}`: no QEMU process to end\n", lab.name)
    } else {
        format!("ended {} and removed their disks\n", ended.join(", "))
    })
}

pub fn provision(lab: &Lab, dir: &Path, host: Option<&str>, check: bool) -> Result<(), Failure> {
    let mut out = String::new();
    let mut missing = false;
    for h in lab
        .hosts
        .iter()
        .filter(|h| host.is_none_or(|n| n == h.name))
        .filter(|h| h.provider != lab::Provider::Netns)
    {
        let exec = lab::hosts::exec_for(lab, dir, &h.name).map_err(fail)?;
        let p = lab::provision::provision(exec.as_ref(), check).map_err(fail)?;
        writeln!(
            out,
            "{}: present {}{}{}",
            p.host,
            if p.present.is_empty() {
                "-".into()
            } else {
                p.present.join(", ")
            },
            if p.installed.is_empty() {
                String::new()
            } else {
                format!("; installed {}", p.installed.join(", "))
            },
            if p.missing.is_empty() {
                String::new()
            } else {
                format!("; MISSING {}", p.missing.join(", "))
            }
        )
        .ok();
        for w in &p.warnings {
            writeln!(out, "  warning: {w}").ok();
        }
        missing |= !p.missing.is_empty();
    }
    if out.is_empty() {
        out = format!(
            "lab `{}`: no host reached over SSH (namespace hosts use this machine's tools)\n",
            lab.name
        );
    }
    print_out(&out)?;
    if missing {
        return Err(Failure::Exit(1));
    }
    Ok(())
}
