//! `lab bench vm`: the QEMU provider's figures, each against a baseline measured in the same
//! run: boot to SSH with lab's kernel against Debian's kernel (same VM, same disk, same
//! accelerator), a cached base image and an overlay against building the image from scratch.
//!
//! Boot to SSH is measured from QEMU's start (a cold boot: through the BIOS, GRUB, the kernel
//! and systemd) to the first successful SSH login, as `lab up` reports it. The first boot of a
//! new overlay also makes the VM's SSH host keys; it is reported apart from the others.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Command, Exec, Local};
use serde::Serialize;

use model::Lab;
use provider_qemu::vms::{self as qemu, UpOptions};

/// The target for lab's kernel, seconds.
pub const TARGET_LAB_BOOT_S: f64 = 15.0;
/// The target for a second `up` to reuse the base image and make an overlay, seconds.
pub const TARGET_REUSE_S: f64 = 1.0;

/// Errors of `lab bench vm`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A VM could not be made or run.
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
    /// The image could not be built or cached.
    #[error(transparent)]
    Image(#[from] ::qemu::image::Error),
    /// The kernel could not be installed.
    #[error(transparent)]
    Install(#[from] kernel::install::InstallError),
    /// A command failed (argv, status and stderr inside).
    #[error(transparent)]
    Command(#[from] Box<guest::Error>),
    /// The state directory or a provider helper failed.
    #[error(transparent)]
    Provider(#[from] provider::Error),
    /// Something else, in words.
    #[error("bench lab is invalid: {0}")]
    Lab(String),
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Command(Box::new(e))
    }
}

/// A kernel to measure against Debian's: its packages, as `lab kernel build` made them.
#[derive(Debug, Clone)]
pub struct KernelUnderTest {
    /// `uname -r` it reports once booted.
    pub release: String,
    /// Its `linux-image-*` package(s).
    pub packages: Vec<PathBuf>,
}

/// What `lab bench vm` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// lab's image cache.
    pub cache: PathBuf,
    /// Where the bench's VM lives (its `.lab`): made, and deleted afterwards.
    pub scratch: PathBuf,
    /// Boots per kernel (the first, with host key generation, included).
    pub boots: usize,
    /// Also build the image from scratch in a cache of its own (minutes).
    pub cold_image: bool,
    /// A kernel to boot against Debian's (none: Debian's only).
    pub kernel: Option<KernelUnderTest>,
    /// The VM's memory.
    pub memory_mib: u32,
    /// The VM's vCPUs.
    pub cpus: u32,
    /// How long a boot may take to reach SSH.
    pub boot_timeout: Duration,
}

/// Boots of one kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Boots {
    /// Its release.
    pub kernel: String,
    /// Every boot, seconds, in order; the first made the host keys.
    pub seconds: Vec<f64>,
    /// The median of the boots after the first (the first when there is one).
    pub median: f64,
}

/// What `lab bench vm` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// QEMU's accelerator (`kvm` or `tcg`).
    pub accel: String,
    /// Building the base image in an empty cache, seconds (with `cold_image`).
    pub image_cold_s: Option<f64>,
    /// Getting the base image from lab's cache, seconds.
    pub image_cached_s: f64,
    /// Creating a VM's overlay on the base image, median of 5, seconds.
    pub overlay_s: f64,
    /// Debian's kernel.
    pub debian: Boots,
    /// lab's kernel, when one was given.
    pub lab: Option<Boots>,
    /// lab's kernel's median against Debian's (< 1: faster).
    pub lab_vs_debian: Option<f64>,
    /// Cached image + overlay against the cold build.
    pub reuse_vs_cold: Option<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn bench_lab(name: &str, memory_mib: u32, cpus: u32) -> Result<Lab, Error> {
    let src = format!(
        "[lab]\nname = \"{name}\"\n\n[networks.seg]\nsubnet = \"10.1.1.0/24\"\n\n\
         [hosts.b1]\nrole = \"server\"\n\n[hosts.b1.vm]\nmemory_mib = {memory_mib}\ncpus = {cpus}\n\n\
         [[hosts.b1.interfaces]]\nname = \"enp0s3\"\nnat = true\n\n\
         [[hosts.b1.interfaces]]\nname = \"enp0s8\"\nnetwork = \"seg\"\naddress = \"10.1.1.1/24\"\n"
    );
    crate::parse("bench.toml", &src)
        .map(|l| l.with_provider(&crate::Provider::new(provider_qemu::NAME).expect("a valid name")))
        .map_err(|e| Error::Lab(e.to_string()))
}

/// Ends the bench's VM and removes its scratch directory whatever happens.
struct Destroy<'a>(&'a Lab, &'a Path);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let _ = qemu::destroy(self.0, self.1);
        let _ = std::fs::remove_dir_all(self.1);
    }
}

fn boot(
    lab: &Lab,
    dir: &Path,
    opts: &UpOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(f64, String), Error> {
    let host = Local::new("local");
    let vms = qemu::up(lab, dir, &host, opts, &mut |e| {
        // The accelerator is in the report's heading, not repeated per boot.
        if let qemu::Event::Note(n) = e
            && !n.starts_with("software emulation")
        {
            progress(&n);
        }
    })?;
    let v = vms
        .into_iter()
        .next()
        .ok_or_else(|| Error::Lab("no VM".into()))?;
    // Halted again for the next cold boot (ACPI, as `lab halt`).
    qemu::halt(lab, dir, Duration::from_secs(120), &mut |_| {});
    Ok((v.boot_seconds, v.kernel))
}

fn boots(
    lab: &Lab,
    dir: &Path,
    opts: &UpOptions,
    n: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Boots, Error> {
    let mut seconds = Vec::new();
    let mut kernel = String::new();
    for i in 0..n.max(1) {
        let (s, k) = boot(lab, dir, opts, progress)?;
        progress(&format!(
            "boot {} of {}: {k}, {s:.1} s to SSH",
            i + 1,
            n.max(1)
        ));
        seconds.push(s);
        kernel = k;
    }
    let rest = if seconds.len() > 1 {
        &seconds[1..]
    } else {
        &seconds[..]
    };
    Ok(Boots {
        kernel,
        median: median(rest),
        seconds,
    })
}

/// Run the measurements. `progress` gets a line per step.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report, Error> {
    let host = Local::new("local");
    let lab = bench_lab(
        &format!("bvm{}", std::process::id()),
        opts.memory_mib,
        opts.cpus,
    )?;
    let dir = opts.scratch.as_path();
    host.check(&Command::new(["mkdir", "-p", &dir.display().to_string()]))?;
    let _destroy = Destroy(&lab, dir);
    let accel = ::qemu::accel::probe(Path::new("/"));
    let spec = ::qemu::image::ImageSpec::bookworm(Path::new("/"))?;

    let image_cold_s = if opts.cold_image {
        progress("image: building from scratch in a cache of its own");
        let cold = opts.scratch.join("cold-cache");
        let built = ::qemu::image::build(&host, &spec, &cold, &accel, &mut |s| {
            progress(&format!("  {s}"));
        })?;
        host.check(&Command::new(["rm", "-rf", &cold.display().to_string()]))?;
        Some(built.seconds)
    } else {
        None
    };
    // The real cache: built now when it is not there (then it is not a cached figure).
    let first = ::qemu::image::build(&host, &spec, &opts.cache, &accel, &mut |s| {
        progress(&format!("  {s}"));
    })?;
    let t = Instant::now();
    let cached = ::qemu::image::build(&host, &spec, &opts.cache, &accel, &mut |_| {})?;
    let image_cached_s = t.elapsed().as_secs_f64();
    debug_assert!(cached.cached);
    let image_cold_s = image_cold_s.or((!first.cached).then_some(first.seconds));

    let mut overlay = Vec::new();
    let ov = opts.scratch.join("overlay.qcow2");
    for _ in 0..5 {
        let _ = std::fs::remove_file(&ov);
        let t = Instant::now();
        host.check(&Command::new(::qemu::vm::overlay_argv(
            &cached.qcow2,
            "qcow2",
            &ov,
            None,
        )))?;
        overlay.push(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(&ov);
    let overlay_s = median(&overlay);

    let up = UpOptions {
        boot_timeout: opts.boot_timeout,
        images: qemu::ImageOptions {
            cache: opts.cache.clone(),
            ubuntu_mirror: ::qemu::cloud::UBUNTU_CLOUD_IMAGES.into(),
            // The bench boots lab's own Debian image: nothing is downloaded.
            skip_signature: false,
        },
    };
    progress("Debian's kernel: cold boots to SSH");
    let debian = boots(&lab, dir, &up, opts.boots, progress)?;

    let lab_boots = match &opts.kernel {
        None => None,
        Some(k) => {
            progress(&format!("installing {} (dpkg, GRUB, reboot)", k.release));
            let host_spec = &lab.hosts[0];
            // Up again to install (the VM was halted after the last boot).
            boot_up(&lab, dir, &up)?;
            let ssh = guest::Ssh::new(qemu::ssh_config(&lab, dir, host_spec)?);
            kernel::install::install(&ssh, &k.packages, &k.release, false, &mut || {
                ssh.wait_reachable(opts.boot_timeout)
            })?;
            qemu::halt(&lab, dir, Duration::from_secs(120), &mut |_| {});
            progress(&format!("{}: cold boots to SSH", k.release));
            Some(boots(&lab, dir, &up, opts.boots, progress)?)
        }
    };
    let lab_vs_debian = lab_boots.as_ref().map(|l| l.median / debian.median);
    let reuse_vs_cold = image_cold_s.map(|c| (image_cached_s + overlay_s) / c);
    Ok(Report {
        accel: accel.name().to_string(),
        image_cold_s,
        image_cached_s,
        overlay_s,
        debian,
        lab: lab_boots,
        lab_vs_debian,
        reuse_vs_cold,
    })
}

fn boot_up(lab: &Lab, dir: &Path, opts: &UpOptions) -> Result<(), Error> {
    qemu::up(lab, dir, &Local::new("local"), opts, &mut |_| {})?;
    Ok(())
}

/// The report as text, each target met or missed.
pub fn render(r: &Report) -> String {
    let mut o = format!("lab bench vm ({}):\n", r.accel);
    let secs = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match r.image_cold_s {
        Some(c) => writeln!(o, "  base image, built from scratch      {c:>8.1} s").ok(),
        None => writeln!(
            o,
            "  base image, built from scratch      (not run: --cold-image)"
        )
        .ok(),
    };
    writeln!(
        o,
        "  base image, cached                  {:>8.3} s",
        r.image_cached_s
    )
    .ok();
    writeln!(
        o,
        "  overlay on it (qemu-img create)     {:>8.3} s",
        r.overlay_s
    )
    .ok();
    let reuse = r.image_cached_s + r.overlay_s;
    writeln!(
        o,
        "  reuse (cached + overlay)            {reuse:>8.3} s  target <= {TARGET_REUSE_S} s: {}{}",
        if reuse <= TARGET_REUSE_S {
            "met"
        } else {
            "MISSED"
        },
        r.reuse_vs_cold
            .map_or(String::new(), |x| format!("; {:.4}x the cold build", x))
    )
    .ok();
    writeln!(
        o,
        "  boot to SSH, Debian {:<16}{:>8.1} s  (median after the first; all: {})",
        r.debian.kernel,
        r.debian.median,
        secs(&r.debian.seconds)
    )
    .ok();
    if let Some(l) = &r.lab {
        writeln!(
            o,
            "  boot to SSH, lab {:<19}{:>8.1} s  (all: {}); {:.2}x Debian's; target <= {TARGET_LAB_BOOT_S} s: {}",
            l.kernel,
            l.median,
            secs(&l.seconds),
            r.lab_vs_debian.unwrap_or(0.0),
            if l.median <= TARGET_LAB_BOOT_S { "met" } else { "MISSED" }
        )
        .ok();
    } else {
        writeln!(
            o,
            "  boot to SSH, lab's kernel           (not run: no kernel given)"
        )
        .ok();
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_lab_is_valid() {
        let l = bench_lab("bvm1", 1024, 1).unwrap();
        assert_eq!(l.hosts.len(), 1);
        assert_eq!(l.hosts[0].provider, provider_qemu::NAME);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 4.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn render_says_met_or_missed() {
        let r = Report {
            accel: "tcg".into(),
            image_cold_s: Some(130.0),
            image_cached_s: 0.002,
            overlay_s: 0.03,
            debian: Boots {
                kernel: "6.1.0-50-amd64".into(),
                seconds: vec![44.0, 41.0, 40.0],
                median: 41.0,
            },
            lab: Some(Boots {
                kernel: "6.1.192-mptcp".into(),
                seconds: vec![20.0, 16.0, 17.0],
                median: 17.0,
            }),
            lab_vs_debian: Some(17.0 / 41.0),
            reuse_vs_cold: Some(0.032 / 130.0),
        };
        let s = render(&r);
        assert!(s.contains("target <= 1 s: met"), "{s}");
        assert!(s.contains("0.41x Debian's; target <= 15 s: MISSED"), "{s}");
    }
}
