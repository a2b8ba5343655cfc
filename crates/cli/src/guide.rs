//! `lab guide`: the guide's whole sequence on one command, with every step's time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::Lab;

use crate::{Failure, print_out, vms};

/// What `lab guide` was asked.
pub struct GuideOptions {
    pub source: PathBuf,
    pub profile: kernel::config::Profile,
    pub boot_timeout: Duration,
    pub seconds: u64,
}

struct Step {
    name: String,
    seconds: f64,
    result: String,
}

/// Up (no network yet), the tools, the kernel (built, or reused from the work directory),
/// installed on every host through GRUB, up again with the network applied, and the test.
pub fn run(lab: &Lab, dir: &Path, opts: &GuideOptions) -> Result<(), Failure> {
    let lab = lab.with_provider(lab::Provider::Qemu);
    let mut steps: Vec<Step> = Vec::new();
    let mut timed = |name: &str, f: &mut dyn FnMut() -> Result<String, Failure>| {
        eprintln!("== {name}");
        let t = Instant::now();
        let r = f();
        let step = Step {
            name: name.to_string(),
            seconds: t.elapsed().as_secs_f64(),
            result: match &r {
                Ok(s) => s.clone(),
                Err(_) => "FAILED".into(),
            },
        };
        steps.push(step);
        r
    };
    let outcome = (|| -> Result<bool, Failure> {
        timed("up: VMs from lab's image, SSH", &mut || {
            vms::qemu_up(&lab, dir, opts.boot_timeout, false)?;
            Ok(format!("{} VMs", lab.hosts.len()))
        })?;
        timed("provision: the guide's tools", &mut || {
            vms::provision(&lab, dir, None, false)?;
            Ok("mptcpd, mptcpize, iperf3, ifstat, tshark".into())
        })?;
        let mut manifest = None;
        timed("kernel: build (or reuse) with MPTCP", &mut || {
            let mut spec = kernel::build::BuildSpec::new(
                opts.source.clone(),
                opts.profile.clone(),
                lab::hosts::state_dir(dir).join("kernel-build"),
                lab::hosts::state_dir(dir).join("kernel"),
            );
            spec.history = Some(lab::virtualbox::image_cache().join("../kernel/objects.json"));
            let m = crate::kernel_build_manifest(&spec, false)?;
            let r = format!("{} ({} objects)", m.release, m.objects);
            manifest = Some(m);
            Ok(r)
        })?;
        let m = manifest.ok_or_else(|| Failure::Report(miette::miette!("no kernel")))?;
        let image: Vec<PathBuf> = m
            .packages
            .iter()
            .filter(|p| {
                p.file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
            })
            .map(|p| p.file.clone())
            .collect();
        for h in &lab.hosts {
            timed(
                &format!("install on {}: dpkg, GRUB, reboot", h.name),
                &mut || {
                    let done =
                        crate::install_kernel(&lab, dir, &h.name, &m.release, &image, false)?;
                    Ok(format!("{} after {:.0} s", done.release, done.boot_seconds))
                },
            )?;
        }
        timed("up: network applied over SSH", &mut || {
            vms::qemu_up(&lab, dir, opts.boot_timeout, true)?;
            Ok("converged".into())
        })?;
        let mut passed = false;
        timed("test: MPTCP across the VMs", &mut || {
            let topts = lab::instant::TestOptions {
                seconds: opts.seconds,
                tool: measure::Tool::Iperf3,
                ..lab::instant::TestOptions::default()
            };
            let r = lab::instant::test(&lab, dir, &topts)
                .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
            print_out(&crate::instant::render_test(&r))?;
            passed = r.verdict.pass;
            Ok(if passed {
                "verdict PASS"
            } else {
                "verdict FAIL"
            }
            .into())
        })?;
        Ok(passed)
    })();
    let mut out = format!("\nlab guide on `{}` (QEMU):\n", lab.name);
    for s in &steps {
        writeln!(out, "  {:<44} {:>7.1} s  {}", s.name, s.seconds, s.result).ok();
    }
    writeln!(
        out,
        "  {:<44} {:>7.1} s",
        "total",
        steps.iter().map(|s| s.seconds).sum::<f64>()
    )
    .ok();
    print_out(&out)?;
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::Exit(1)),
        Err(e) => Err(e),
    }
}
