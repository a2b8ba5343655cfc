//! The guide's whole sequence as one operation ([`Session::guide`]): up without the network,
//! the guide's tools, a kernel with MPTCP (built, or reused from `.lab/kernel-build`),
//! installed on every host through GRUB, up again with the network applied, and the test
//! with its verdict. Every step is timed and kept in the report, also when one fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use provider::Event;
use serde::Serialize;

use crate::session::{Error, Session};
use crate::{StateDir, TestOptions, TestResult, UpOptions};

/// What [`Session::guide`] is asked.
#[derive(Debug, Clone)]
pub struct GuideOptions {
    /// Kernel source: a tarball (`/usr/src/linux-source-6.1.tar.xz`) or an unpacked tree.
    pub source: PathBuf,
    /// The kernel configuration to start from (`lab`: defconfig plus MPTCP and the VMs'
    /// drivers).
    pub profile: kernel::config::Profile,
    /// How long a VM may take to answer on SSH, at each boot.
    pub boot_timeout: Duration,
    /// Seconds of traffic in the test.
    pub seconds: u64,
}

/// One step of the guide: what it did, how long it took, and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GuideStep {
    /// What the step does, e.g. `install on client: dpkg, GRUB, reboot`.
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Its outcome in a few words (`2 VMs`, `6.1.158-mptcp after 23 s`), or the error.
    pub result: String,
    /// Whether it did its job.
    pub ok: bool,
}

/// What [`Session::guide`] did, step by step, with the kernel it built and the test's result.
#[derive(Debug, Clone, Serialize)]
pub struct GuideReport {
    /// The lab's name.
    pub lab: String,
    /// The providers its hosts use.
    pub providers: Vec<String>,
    /// The steps, in order, up to the first that failed.
    pub steps: Vec<GuideStep>,
    /// The kernel installed, once built.
    pub kernel: Option<kernel::build::Manifest>,
    /// The test, once run.
    pub test: Option<TestResult>,
}

impl GuideReport {
    /// Every step did its job and the test's verdict is a pass.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// # let s = lab::Session::open("Lab.toml".as_ref())?;
    /// # let opts = lab::guide::GuideOptions { source: "/usr/src/linux-source-6.1.tar.xz".into(),
    /// #     profile: kernel::config::Profile::Lab, boot_timeout: std::time::Duration::from_secs(600),
    /// #     seconds: 10 };
    /// let r = s.guide(&opts)?;
    /// std::process::exit(if r.pass() { 0 } else { 1 });
    /// # }
    /// ```
    pub fn pass(&self) -> bool {
        self.steps.iter().all(|s| s.ok) && self.test.as_ref().is_some_and(|t| t.verdict.pass)
    }

    /// The seconds of all steps.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// # let s = lab::Session::open("Lab.toml".as_ref())?;
    /// # let opts = lab::guide::GuideOptions { source: "/usr/src/linux-source-6.1.tar.xz".into(),
    /// #     profile: kernel::config::Profile::Lab, boot_timeout: std::time::Duration::from_secs(600),
    /// #     seconds: 10 };
    /// let r = s.guide(&opts)?;
    /// for step in &r.steps {
    ///     println!("{:<44} {:>7.1} s", step.name, step.seconds);
    /// }
    /// println!("{:<44} {:>7.1} s", "total", r.total_seconds());
    /// # Ok(())
    /// # }
    /// ```
    pub fn total_seconds(&self) -> f64 {
        self.steps.iter().map(|s| s.seconds).sum()
    }
}

/// A kernel built (or reused) for a lab: its manifest and the `linux-image-*` package(s) to
/// install.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltKernel {
    /// What was built, where, and in how long.
    pub manifest: kernel::build::Manifest,
    /// The image packages (not headers, not libc-dev) to install on the hosts.
    pub images: Vec<PathBuf>,
}

/// Build (or reuse) a kernel with MPTCP in the lab directory `dir`: the tree in
/// `.lab/kernel-build`, the packages in `.lab/kernel`, the object-count history in the user's
/// kernel cache (so the next build's progress has a total).
///
/// ```no_run
/// # fn main() -> Result<(), kernel::build::BuildError> {
/// let k = lab::guide::build_kernel(
///     ".".as_ref(),
///     "/usr/src/linux-source-6.1.tar.xz".as_ref(),
///     &kernel::config::Profile::Lab,
///     &mut |p| eprintln!("{p:?}"),
/// )?;
/// println!("{} -> {:?}", k.manifest.release, k.images);
/// # Ok(())
/// # }
/// ```
pub fn build_kernel(
    dir: &Path,
    source: &Path,
    profile: &kernel::config::Profile,
    progress: &mut dyn FnMut(kernel::build::Progress),
) -> Result<BuiltKernel, kernel::build::BuildError> {
    let state = StateDir::new(dir);
    let mut spec = kernel::build::BuildSpec::new(
        source.to_path_buf(),
        profile.clone(),
        state.file("kernel-build"),
        state.file("kernel"),
    );
    spec.history = Some(provider::cache_dir("kernel").join("objects.json"));
    let manifest = kernel::build::build(&guest::Local::new("local"), &spec, progress)?;
    let images = manifest
        .packages
        .iter()
        .filter(|p| {
            p.file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
        })
        .map(|p| p.file.clone())
        .collect();
    Ok(BuiltKernel { manifest, images })
}

/// A step's outcome, or why it stopped the guide.
type StepResult<T> = Result<(T, String), Error>;

impl Session {
    /// Build (or reuse) the lab's kernel with MPTCP ([`build_kernel`] in this lab's
    /// directory), reporting steps and compiled objects as progress ([`Event::Step`],
    /// [`Event::Count`]).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let k = s.build_kernel("/usr/src/linux-source-6.1.tar.xz".as_ref(), &kernel::config::Profile::Lab)?;
    /// println!("{}: {:?}", k.manifest.release, k.images);
    /// # Ok(())
    /// # }
    /// ```
    pub fn build_kernel(
        &self,
        source: &Path,
        profile: &kernel::config::Profile,
    ) -> Result<BuiltKernel, Error> {
        let k = build_kernel(self.state().lab_dir(), source, profile, &mut |p| match p {
            kernel::build::Progress::Step(s) => self.emit("kernel", Event::Step(s)),
            kernel::build::Progress::Compiled { done, expected } => self.emit(
                "kernel",
                Event::Count {
                    what: "objects compiled".into(),
                    done,
                    total: expected,
                },
            ),
        })?;
        Ok(k)
    }

    /// The guide end to end on this lab's VMs: up (no network yet), the guide's tools,
    /// the kernel (built or reused), installed on every host through GRUB, up again with the
    /// network applied, and `mptcpize run iperf3` with a verdict. Each step is timed.
    ///
    /// A step that fails ends the guide with [`Error::Guide`], which carries the report so
    /// far (which steps ran, and how long each took) and the step's own error. A test that
    /// ran but failed its verdict is a report whose [`GuideReport::pass`] is false.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let mut s = lab::Session::open("Lab.toml".as_ref())?;
    /// s.set_provider("qemu")?;
    /// let r = s.guide(&lab::guide::GuideOptions {
    ///     source: "/usr/src/linux-source-6.1.tar.xz".into(),
    ///     profile: kernel::config::Profile::Lab,
    ///     boot_timeout: std::time::Duration::from_secs(300),
    ///     seconds: 10,
    /// })?;
    /// println!("{}: {:.0} s", if r.pass() { "PASS" } else { "FAIL" }, r.total_seconds());
    /// # Ok(())
    /// # }
    /// ```
    pub fn guide(&self, opts: &GuideOptions) -> Result<GuideReport, Error> {
        let mut report = GuideReport {
            lab: self.lab().name.clone(),
            providers: self.providers().iter().map(|p| p.to_string()).collect(),
            steps: Vec::new(),
            kernel: None,
            test: None,
        };
        match self.guide_steps(opts, &mut report) {
            Ok(()) => Ok(report),
            Err(e) => Err(Error::Guide {
                report: Box::new(report),
                source: Box::new(e),
            }),
        }
    }

    fn guide_steps(&self, opts: &GuideOptions, report: &mut GuideReport) -> Result<(), Error> {
        let up = |apply| UpOptions {
            boot_timeout: opts.boot_timeout,
            apply,
            ..UpOptions::default()
        };
        let hosts = self.lab().hosts.len();
        self.step(report, "up: the hosts, reachable over SSH", || {
            self.up(&up(false))?;
            Ok(((), format!("{hosts} VMs")))
        })?;
        self.step(report, "provision: the guide's tools", || {
            let done = self.provision(None, false)?;
            let installed: usize = done.iter().map(|p| p.installed.len()).sum();
            let said = format!(
                "{} of {hosts} hosts have mptcpd, mptcpize, iperf3, ifstat, tshark ({installed} installed)",
                done.len()
            );
            Ok(((), said))
        })?;
        let k = self.step(report, "kernel: build (or reuse) with MPTCP", || {
            let k = self.build_kernel(&opts.source, &opts.profile)?;
            let said = format!("{} ({} objects)", k.manifest.release, k.manifest.objects);
            Ok((k, said))
        })?;
        report.kernel = Some(k.manifest.clone());
        for h in &self.lab().hosts {
            let name = format!("install on {}: dpkg, GRUB, reboot", h.name);
            self.step(report, &name, || {
                let done = self.install_kernel(&h.name, &k.images, &k.manifest.release, false)?;
                let said = format!("{} after {:.0} s", done.release, done.boot_seconds);
                Ok(((), said))
            })?;
        }
        self.step(report, "up: network applied over SSH", || {
            self.up(&up(true))?;
            Ok(((), "converged".into()))
        })?;
        let test = self.step(report, "test: MPTCP across the VMs", || {
            let r = self.test(&TestOptions {
                seconds: opts.seconds,
                tool: measure::Tool::Iperf3,
                tool_auto: false,
                ..TestOptions::default()
            })?;
            let said = if r.verdict.pass {
                "verdict PASS"
            } else {
                "verdict FAIL"
            };
            Ok((r, said.to_string()))
        })?;
        report.test = Some(test);
        Ok(())
    }

    /// Run one step of the guide, timed, announced as progress and kept in the report.
    fn step<T>(
        &self,
        report: &mut GuideReport,
        name: &str,
        f: impl FnOnce() -> StepResult<T>,
    ) -> Result<T, Error> {
        self.emit("guide", Event::Step(format!("== {name}")));
        let t = Instant::now();
        let r = f();
        let (result, ok) = match &r {
            Ok((_, said)) => (said.clone(), true),
            Err(e) => (format!("FAILED: {e}"), false),
        };
        report.steps.push(GuideStep {
            name: name.to_string(),
            seconds: t.elapsed().as_secs_f64(),
            result,
            ok,
        });
        r.map(|(v, _)| v)
    }
}
