//! `lab guide`: the guide's whole sequence on one command, with every step's time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::Session;

use crate::{Failure, ops, print_out};

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

/// Build (or reuse, in `.lab/kernel-build`) a kernel with MPTCP; its manifest and image
/// package(s).
pub fn build_kernel(
    dir: &Path,
    source: &Path,
    profile: &kernel::config::Profile,
    to: crate::ManifestTo,
) -> Result<(kernel::build::Manifest, Vec<PathBuf>), Failure> {
    let mut spec = kernel::build::BuildSpec::new(
        source.to_path_buf(),
        profile.clone(),
        lab::StateDir::new(dir).file("kernel-build"),
        lab::StateDir::new(dir).file("kernel"),
    );
    spec.history = Some(lab::provider::cache_dir("kernel").join("objects.json"));
    let m = crate::kernel_build_manifest(&spec, to)?;
    let image = m
        .packages
        .iter()
        .filter(|p| {
            p.file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
        })
        .map(|p| p.file.clone())
        .collect();
    Ok((m, image))
}

/// Up (no network yet), the tools, the kernel (built, or reused from the work directory),
/// installed on every host through GRUB, up again with the network applied, and the test.
pub fn run(s: &Session, opts: &GuideOptions) -> Result<(), Failure> {
    let lab = s.lab();
    let dir = s.state().lab_dir();
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
            ops::up(
                s,
                &lab::UpOptions {
                    boot_timeout: opts.boot_timeout,
                    apply: false,
                },
                false,
                false,
            )?;
            Ok(format!("{} VMs", lab.hosts.len()))
        })?;
        timed("provision: the guide's tools", &mut || {
            ops::provision(s, None, false)?;
            Ok("mptcpd, mptcpize, iperf3, ifstat, tshark".into())
        })?;
        let mut built = None;
        timed("kernel: build (or reuse) with MPTCP", &mut || {
            let (m, image) =
                build_kernel(dir, &opts.source, &opts.profile, crate::ManifestTo::Stdout)?;
            let r = format!("{} ({} objects)", m.release, m.objects);
            built = Some((m, image));
            Ok(r)
        })?;
        let (m, image) = built.ok_or_else(|| Failure::Report(miette::miette!("no kernel")))?;
        for h in &lab.hosts {
            timed(
                &format!("install on {}: dpkg, GRUB, reboot", h.name),
                &mut || {
                    let done = crate::install_kernel(s, &h.name, &m.release, &image, false)?;
                    Ok(format!("{} after {:.0} s", done.release, done.boot_seconds))
                },
            )?;
        }
        timed("up: network applied over SSH", &mut || {
            ops::up(
                s,
                &lab::UpOptions {
                    boot_timeout: opts.boot_timeout,
                    apply: true,
                },
                false,
                false,
            )?;
            Ok("converged".into())
        })?;
        let mut passed = false;
        timed("test: MPTCP across the VMs", &mut || {
            let topts = lab::instant::TestOptions {
                seconds: opts.seconds,
                tool: measure::Tool::Iperf3,
                tool_auto: false,
                ..lab::instant::TestOptions::default()
            };
            let r = s.test(&topts).map_err(ops::fail)?;
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
    let mut out = format!(
        "\nlab guide on `{}` ({}):\n",
        lab.name,
        s.providers().join(", ")
    );
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
