//! `lab`: one declarative, reproducible, verified MPTCP testbed from a Lab.toml.
//!
//! A thin layer: it parses arguments, picks the lab (`--lab FILE`, `--preset NAME`, the nearest
//! Lab.toml, or the built-in lab), calls the library crates and prints. It spawns no process.

mod diagnostics;
mod guide;
mod instant;
mod ops;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lab::{Lab, Preset, Session};

/// Exit status for findings (`lab doctor`) and failed verdicts.
pub(crate) const EXIT_FINDINGS: u8 = 1;
/// Exit status for an invalid Lab.toml or bad usage (as clap uses for usage errors).
pub(crate) const EXIT_INVALID: u8 = 2;
/// A host of the lab is not up (`lab up` first).
pub(crate) const EXIT_NOT_UP: u8 = 5;
/// A host of the lab does not answer (SSH).
pub(crate) const EXIT_UNREACHABLE: u8 = 6;
/// `lab net apply --dry-run`: the hosts differ from the plan (changes pending).
pub(crate) const EXIT_PENDING: u8 = 4;

#[derive(Parser, Debug)]
#[command(name = "lab", version, about = "Declarative, verified MPTCP v1 testbeds", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the built-in lab (or a preset) to Lab.toml, to edit.
    Init {
        /// Which lab to write.
        #[arg(long, default_value = "builtin", value_parser = parse_preset)]
        preset: Preset,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// The lab's name (`[lab] name`; it names the lab's namespaces and VMs). Default:
        /// the directory's name, with a suffix from its path when another directory's lab
        /// already has that name on this machine.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Where to write it.
        #[arg(default_value = "Lab.toml")]
        path: PathBuf,
    },
    /// Network configuration: render it for people and appliers.
    #[command(subcommand)]
    Net(NetCommand),
    /// Create the lab's hosts (network namespaces, bridges, veth pairs; or VirtualBox VMs) and
    /// apply each host's plan. A lab that is already up is adopted and converged.
    Up {
        #[command(flatten)]
        lab: LabArgs,
        /// Only create the hosts; leave `lab net apply` for later.
        #[arg(long)]
        no_apply: bool,
        /// Every host on this provider, whatever Lab.toml says (`virtualbox`: the guide's VMs;
        /// `lab providers` lists them). Remembered until `lab down`.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Print what each provider would do, in order (VBoxManage and QEMU commands,
        /// namespaces and veths, SSH checks), without doing it.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for a VM's SSH (an unattended install takes tens of minutes; 1 to
        /// 86400).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        boot_timeout: u64,
        /// Check downloaded cloud images against their SHA256SUMS hash only, without Ubuntu's
        /// signature on it (a mirror without SHA256SUMS.gpg, or no key on this machine). Every
        /// report of such a download says so.
        #[arg(long)]
        insecure_skip_signature: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything the lab owns (also after an interrupted `up`), and nothing else:
    /// namespaces, and VMs with their disks (found by their group even without lab's state).
    #[command(alias = "destroy")]
    Down {
        #[command(flatten)]
        lab: LabArgs,
        /// Look for the lab's machines on this provider even when lab has no state of them.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The guide's whole sequence on QEMU VMs: up, provision, kernel build (or reuse), install
    /// through GRUB on every host, network applied, MPTCP test; one summary with every step's
    /// time.
    Guide {
        /// Where the VMs run (a provider that makes VMs lab can install a kernel on).
        #[arg(long, value_name = "NAME", default_value = "qemu")]
        provider: String,
        /// Kernel source: a tarball or tree (Debian's linux-source-6.1 here, no download).
        #[arg(long, default_value = "/usr/src/linux-source-6.1.tar.xz")]
        source: PathBuf,
        /// Kernel configuration profile.
        #[arg(long, default_value = "tiny", value_parser = ["tiny", "lab", "defconfig"])]
        config: String,
        /// Seconds to wait for each VM to answer over SSH (1 to 86400).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        boot_timeout: u64,
        /// Seconds of traffic in the test (1 to 86400).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// The report as JSON: every step with its time and outcome, the kernel, the test.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Install and check the guide's tools (mptcpd, mptcpize, iperf3, ifstat, tshark) on the
    /// lab's SSH-reachable hosts, and warn when mptcpd would fight the lab's endpoints.
    Provision {
        /// One host; every reachable host when left out.
        host: Option<String>,
        /// Only report what is missing.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Shut the lab's VMs down: ACPI power button, then power off after the grace time.
    /// Providers without a power state (namespaces, existing machines) refuse, exit 1.
    Halt {
        #[command(flatten)]
        lab: LabArgs,
        /// Seconds a VM gets to shut down before it is powered off (0 to 3600).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3_600))]
        grace: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Save or restore a snapshot of every VM of the lab (providers with snapshots; the
    /// others refuse, exit 1).
    Snapshot {
        /// `save` or `restore`.
        #[arg(value_enum)]
        action: SnapshotAction,
        /// The snapshot's name.
        name: String,
        #[command(flatten)]
        lab: LabArgs,
        /// Seconds to wait for SSH after a restore (1 to 86400).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        boot_timeout: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Hosts as their providers see them, and the interfaces, addresses, endpoints and
    /// pending changes of those that are up. `--all`: every lab of this machine.
    Status {
        #[command(flatten)]
        lab: LabArgs,
        /// Every lab `lab up` brought up on this machine (like `vagrant global-status`).
        #[arg(long)]
        all: bool,
        /// With --all: forget labs whose directory is gone.
        #[arg(long, requires = "all")]
        prune: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Shell completions for lab's commands, options and values (`source <(lab completions
    /// bash)`; zsh and fish read theirs from a file on their completion path).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// lab's manual pages (roff): `lab.1` on standard output (`lab man | man -l -`), or with
    /// `--out DIR` one page per command and subcommand (`lab-kernel-build.1`, ...).
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// The providers lab knows, with their capabilities.
    Providers {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// MPTCP traffic from the client to the server, measured on every interface and judged:
    /// exit 1 when a subflow is missing or a path carries less than 10% of its fair share.
    Test {
        #[command(flatten)]
        lab: LabArgs,
        #[command(flatten)]
        test: TestArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Capture the lab's traffic into a pcapng that Wireshark opens: AF_PACKET inside each
    /// namespace host, one interface per HOST:IFACE, on one clock, with the kernel's drop
    /// counts. Until Ctrl-C, or for --seconds.
    Capture {
        /// HOST or HOST:IFACE (default: every path interface of every host).
        targets: Vec<String>,
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: Option<u64>,
        /// The file (default: .lab/runs/LAB-TIME/capture.pcapng).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// A report of runs (the directories `lab test --capture` and `lab demo --capture` write):
    /// verdicts, paths, subflows, MPTCP signals and charts, several runs side by side.
    /// Markdown (charts linked) or one self-contained HTML file (charts inline).
    Report {
        /// Run directories (each with its run.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// `md` or `html`.
        #[arg(long, default_value = "md", value_parser = ["md", "html"])]
        format: String,
        /// The file (default: report.md or report.html in the run's directory, or in the
        /// current directory for several runs).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run the lab's declared checks (`[[checks]]` in Lab.toml) against the last `lab test`,
    /// or a new one with `--run`; commands run on the hosts. Exit 0 all passed, 1 an
    /// error-level check failed, 2 no check ran, 3 only warnings failed.
    Check {
        /// Run a test first and judge that one.
        #[arg(long)]
        run: bool,
        /// Output: `text`, `json`, or `tap` (TAP 13, as the kernel's selftests print).
        #[arg(long, default_value = "text", value_parser = ["text", "json", "tap"])]
        format: String,
        #[command(flatten)]
        lab: LabArgs,
        #[command(flatten)]
        test: TestArgs,
    },
    /// Shaping at run time, outside the plan: set a path interface's rate, delay or loss,
    /// show it, or put the plan's back (`lab net apply` puts it back too).
    #[command(subcommand)]
    Tc(TcCommand),
    /// Take a host's interface down, or bring it up and restore its routes.
    Link {
        /// `down` or `up`.
        #[arg(value_enum)]
        action: LinkAction,
        /// The host, by its name in Lab.toml.
        host: String,
        /// The interface, by its name in Lab.toml.
        iface: String,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// The whole job on this machine: the built-in lab up, every link shaped, applied, tested,
    /// and down again. `--preset guide` shows why the guide's settings fail.
    Demo {
        /// `builtin` (default) or `guide`.
        #[arg(long, default_value = "builtin", value_parser = parse_preset)]
        preset: Preset,
        /// Rate of every link (tbf on both ends).
        #[arg(long, default_value = "50mbit")]
        rate: String,
        #[command(flatten)]
        test: TestArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The scenario library: mptcp_join.sh's scenarios (the kernel's MPTCP selftests) as labs
    /// whose checks are the selftest's counters. Without a subcommand, the list.
    Scenarios {
        #[command(subcommand)]
        run: Option<ScenariosCommand>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure lab's claims against baselines run side by side: aggregation efficiency (built-in
    /// lab, guide, plain TCP), bring-up against `ip -batch`, and a second apply.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCommand>,
        /// Seconds per transfer in the efficiency runs (0 skips them; at most 3600).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3_600))]
        seconds: u64,
        /// Repetitions of each bring-up measurement (the median is reported; 1 to 1000).
        #[arg(long, default_value_t = 5, value_parser = count(1, 1_000))]
        runs: usize,
        /// Host pairs in the large bring-up run (0 skips it; at most 1000).
        #[arg(long, default_value_t = 50, value_parser = count(0, 1_000))]
        pairs: usize,
        /// Commands in the SSH comparison: one session against one `ssh` process each (0
        /// skips it; at most 100000).
        #[arg(long, default_value_t = 200, value_parser = count(0, 100_000))]
        ssh_commands: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a command on a host (namespace or SSH) and pass its exit status through.
    Exec {
        /// The host, by its name in Lab.toml.
        host: String,
        /// The command and its arguments, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// An interactive shell on a host reached over SSH (like `vagrant ssh`), or a command.
    Ssh {
        /// The host, by its name in Lab.toml.
        host: String,
        /// A command to run instead of a shell, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// An OpenSSH client configuration block per host (like `vagrant ssh-config`).
    SshConfig {
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Kernels: build one with MPTCP (`make bindeb-pkg`), install it on a host through GRUB, check a host's, and read or set GRUB's menu and default entry.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Check a lab for the MPTCP misconfigurations people hit, each with its fix.
    Doctor {
        #[command(flatten)]
        lab: LabArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// An Ansible inventory of the lab's SSH-reachable hosts (address, port, user, key, the
    /// lab's known_hosts, become where lab uses sudo): `ansible -i <(lab inventory) all -m ping`.
    Inventory {
        #[command(flatten)]
        lab: LabArgs,
        /// The inventory format Ansible reads.
        #[arg(long, default_value = "ini", value_parser = ["ini", "yaml"])]
        format: String,
    },
    /// The JSON Schema of Lab.toml (every key, its type, what is required; no unknown keys),
    /// for editors that check TOML against one (taplo, Even Better TOML). `lab init` writes it
    /// to .lab/lab.schema.json and names it in a `#:schema` line.
    Schema,
    /// The lab as a picture: hosts with their NICs (addresses, MPTCP endpoints, tables,
    /// shaping), the segments and links they are on. dot for Graphviz (`| dot -Tsvg`), mermaid
    /// for Markdown, or an SVG drawn by lab itself.
    Graph {
        #[command(flatten)]
        lab: LabArgs,
        /// The format.
        #[arg(long, default_value = "dot", value_parser = ["dot", "mermaid", "svg"])]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct TestArgs {
    /// Length of the transfer, in seconds (1 to 86400); every --fail and event must come
    /// before its end.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Traffic generator: lab's own MPTCP sockets, or `mptcpize run iperf3` as in the guide
    /// (default: built-in between namespaces, iperf3 when a host is reached over SSH).
    #[arg(long, value_enum)]
    tool: Option<ToolArg>,
    /// Take a client interface down during the transfer: IFACE@SECONDS (repeatable).
    #[arg(long, value_name = "IFACE@SECONDS", value_parser = parse_fail)]
    fail: Vec<(String, f64)>,
    /// An event during the transfer (repeatable), besides the lab's `[test] events`:
    /// "AT HOST link-down|link-up IFACE", "AT HOST rate IFACE RATE",
    /// "AT HOST netem IFACE delay=D loss=P", "AT HOST endpoint-remove|endpoint-add ADDRESS",
    /// "AT HOST backup ADDRESS on|off", "AT HOST limits subflows=N add_addr_accepted=N".
    #[arg(long, value_name = "\"AT HOST ACTION ARGS\"")]
    event: Vec<String>,
    /// TCP congestion control of the sender (cubic, reno, bbr, ...; `host`: the host's
    /// default). Set per socket, so the machine's sysctls stay untouched.
    #[arg(long, value_name = "ALGORITHM", default_value = "cubic")]
    cc: String,
    /// Capture the transfer on both hosts' path interfaces (AF_PACKET in namespaces, tcpdump
    /// over SSH) into the run's capture.pcapng, which Wireshark opens.
    #[arg(long)]
    capture: bool,
    /// The run's directory: run.json (result, hosts' kernels, sysctls, endpoints, limits,
    /// qdiscs), the charts, the capture (default: .lab/runs/LAB-TIME, printed at the end).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ToolArg {
    Builtin,
    Iperf3,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LinkAction {
    Down,
    Up,
}

fn parse_fail(s: &str) -> Result<(String, f64), String> {
    let (iface, at) = s
        .split_once('@')
        .ok_or_else(|| format!("`{s}`: expected IFACE@SECONDS, e.g. enp0s9@3"))?;
    let at: f64 = at
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("`{at}` is not a number of seconds"))?;
    if iface.is_empty() {
        return Err("the interface name is empty".into());
    }
    Ok((iface.to_string(), at))
}

#[derive(Subcommand, Debug)]
enum KernelCommand {
    /// Build Debian packages of a kernel with MPTCP on (`make bindeb-pkg`), non-interactively.
    Build {
        #[command(flatten)]
        source: KernelSourceArgs,
        /// Where the packages go.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Parallel jobs (default: the number of CPUs; 1 to 1024).
        #[arg(long, value_parser = count(1, 1_024))]
        jobs: Option<usize>,
        /// Do not compile through ccache even when it is installed.
        #[arg(long)]
        no_ccache: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Only configure: unpack, start from the profile, force MPTCP on, check, and print where
    /// the .config is (`lab kernel build` with the same options goes on from there).
    Config {
        #[command(flatten)]
        source: KernelSourceArgs,
    },
    /// Whether a host's running kernel has MPTCP (then no build is needed).
    Check {
        /// The host, by its name in Lab.toml.
        host: String,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Install built packages on an SSH host: upload, dpkg -i, GRUB default by release,
    /// update-grub, reboot, wait, and verify `uname -r` and net.mptcp.enabled.
    Install {
        /// The host, by its name in Lab.toml.
        host: String,
        /// The release the packages carry (`lab kernel build` prints it).
        #[arg(long)]
        release: String,
        /// The .deb files (linux-image, and linux-headers/linux-libc-dev if wanted).
        #[arg(required = true)]
        packages: Vec<PathBuf>,
        /// Boot the new kernel once (GRUB_DEFAULT=saved + grub-reboot) and make it the default
        /// (grub-set-default) only after it came up with MPTCP.
        #[arg(long)]
        trial: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// List GRUB's bootable entries with their positional path (`1>2`, what grub-menu.sh
    /// shows), id path, title and kernel release, at any depth.
    GrubMenu {
        /// A grub.cfg file.
        #[arg(long, default_value = "/boot/grub/grub.cfg")]
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make an entry GRUB's default, chosen by kernel release or title (never by position),
    /// written as its id path into ROOT/etc/default/grub (backup kept); run update-grub after.
    GrubDefault {
        /// Root of the system to edit: ROOT/boot/grub/grub.cfg and ROOT/etc/default/grub.
        #[arg(long)]
        root: PathBuf,
        /// The kernel release to boot (`6.4.0-mptcp`).
        #[arg(long, conflicts_with = "title", required_unless_present = "title")]
        release: Option<String>,
        /// The exact title of the entry.
        #[arg(long)]
        title: Option<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SnapshotAction {
    Save,
    Restore,
}

#[derive(Subcommand, Debug)]
enum TcCommand {
    /// Replace the interface's root qdisc: tbf for a rate alone, netem with a delay or loss.
    Set {
        /// The host, by its name in Lab.toml.
        host: String,
        /// The interface, by its name in Lab.toml.
        iface: String,
        /// e.g. 10mbit.
        #[arg(long)]
        rate: Option<String>,
        /// One-way delay, e.g. 20ms (netem).
        #[arg(long)]
        delay: Option<String>,
        /// Loss, e.g. 1% (netem).
        #[arg(long)]
        loss: Option<String>,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// The root qdisc of the host's path interfaces, with what the plan gives them.
    Show {
        /// The host, by its name in Lab.toml.
        host: String,
        /// The interface, by its name in Lab.toml.
        iface: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Put the plan's shaping back (or none, if the plan has none).
    Reset {
        /// The host, by its name in Lab.toml.
        host: String,
        /// The interface, by its name in Lab.toml.
        iface: String,
        #[command(flatten)]
        lab: LabArgs,
    },
}

#[derive(Subcommand, Debug)]
enum ScenariosCommand {
    /// Run scenarios on network namespaces: each up, one connection, its checks, down.
    /// Exit 0 when every scenario passed, 1 otherwise.
    Run {
        /// The scenarios (names from `lab scenarios`).
        names: Vec<String>,
        /// Every scenario.
        #[arg(long)]
        all: bool,
        /// Seconds of traffic per scenario (1 to 86400; a scenario with events runs at least
        /// 2 s past its last one).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// Output: `text`, `json`, or `tap` (TAP 13, one test point per scenario).
        #[arg(long, default_value = "text", value_parser = ["text", "json", "tap"])]
        format: String,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Kernel build times: each profile from scratch, and for the first one a rebuild after
    /// touching net/mptcp/protocol.c and one after `make clean` with a warm ccache. Tens of
    /// minutes for lab and defconfig.
    Kernel(BenchKernelArgs),
    /// The QEMU provider's figures: boot to SSH with lab's kernel against Debian's (cold
    /// boots of one VM), a cached base image and an overlay against building the image.
    /// Minutes under software emulation.
    Vm(BenchVmArgs),
    /// lab's capture decoder and analysis against tshark (single pass, MPTCP analysis on) on
    /// a capture of the built-in lab, unshaped: the ratio, against a target of 20x; then a
    /// capture of 3 shaped paths and the kernel's drops (the target: none).
    Capture {
        /// Seconds of each transfer (1 to 3600).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3_600))]
        seconds: u64,
        /// Runs of each decoder (the best is kept; 1 to 100).
        #[arg(long, default_value_t = 3, value_parser = count(1, 100))]
        runs: usize,
        /// The rate of each path in the shaped capture, Mbit/s (1 to 100000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct BenchVmArgs {
    /// Kernel source for lab's kernel (built or reused in .lab/kernel-build, as `lab guide`).
    #[arg(long, default_value = "/usr/src/linux-source-6.1.tar.xz")]
    source: PathBuf,
    /// Kernel configuration profile.
    #[arg(long, default_value = "tiny", value_parser = ["tiny", "lab", "defconfig"])]
    config: String,
    /// Only Debian's kernel.
    #[arg(long)]
    no_kernel: bool,
    /// Cold boots per kernel (the first also makes the VM's host keys; 1 to 100).
    #[arg(long, default_value_t = 3, value_parser = count(1, 100))]
    boots: usize,
    /// Also build the base image from scratch, in a cache of its own (about 2 minutes).
    #[arg(long)]
    cold_image: bool,
    /// Memory per VM, in MiB (256 to 1048576).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    memory_mib: u32,
    /// vCPUs (the guide's VMs have 2; 1 to 256).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    cpus: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchKernelArgs {
    /// A source tarball or tree (default: download `--version`).
    #[arg(long, conflicts_with = "version")]
    source: Option<PathBuf>,
    /// The kernel version to download from kernel.org when no --source is given (its
    /// sha256sums.asc's signature checked with the key lab ships).
    #[arg(long, default_value = kernel::source::DEFAULT_VERSION)]
    version: String,
    /// Check the download against sha256sums.asc's hash only, without its signature. Every
    /// report of the download says so.
    #[arg(long, conflicts_with = "source")]
    insecure_skip_signature: bool,
    /// The profiles to build, in order.
    #[arg(long, value_delimiter = ',', default_value = "tiny,lab,defconfig", value_parser = ["tiny", "lab", "defconfig"])]
    profiles: Vec<String>,
    /// Where the trees are built (each is deleted after its figures unless --keep).
    #[arg(long, default_value = ".lab/bench-kernel")]
    work: PathBuf,
    /// Keep the built trees (for a look, or a rerun).
    #[arg(long)]
    keep: bool,
    /// Parallel jobs (default: the number of CPUs; 1 to 1024).
    #[arg(long, value_parser = count(1, 1_024))]
    jobs: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Where a kernel's source and configuration come from (`lab kernel build` and `config`).
#[derive(Args, Debug)]
struct KernelSourceArgs {
    /// A source tarball (.tar.xz/.tar.gz/.tar.bz2) or an unpacked tree, e.g. Debian's
    /// /usr/src/linux-source-6.1.tar.xz (no download).
    #[arg(long, conflicts_with = "version")]
    source: Option<PathBuf>,
    /// Download this version from kernel.org (checked against its sha256sums.asc, whose
    /// signature by kernel.org's checksum autosigner is checked with the key lab ships;
    /// cached in ~/.cache/lab/kernel).
    #[arg(long, default_value = kernel::source::DEFAULT_VERSION)]
    version: String,
    /// Check the download against sha256sums.asc's hash only, without its signature. Every
    /// report of the download says so.
    #[arg(long, conflicts_with = "source")]
    insecure_skip_signature: bool,
    /// Starting configuration: defconfig, tiny (tests), lab (testbeds), running (the running
    /// kernel's config, of this machine or of `--from HOST`), localmod (that config with only
    /// the modules `lsmod` lists), or a file (`--config-file`).
    #[arg(long, default_value = "lab", value_parser = ["defconfig", "tiny", "lab", "running", "localmod"], conflicts_with = "config_file")]
    config: String,
    /// Start from this .config.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// The lab host whose running kernel `running` and `localmod` start from (default: this
    /// machine).
    #[arg(long, value_name = "HOST")]
    from: Option<String>,
    /// Open `make menuconfig` after lab's settings, as the guide does by hand; MPTCP is
    /// checked again afterwards.
    #[arg(long)]
    menuconfig: bool,
    /// Where the source is unpacked and built.
    #[arg(long, default_value = ".lab/kernel-build")]
    work: PathBuf,
    /// Appended to the kernel release.
    #[arg(long, default_value = "-mptcp")]
    localversion: String,
    #[command(flatten)]
    lab: LabArgs,
}

#[derive(Subcommand, Debug)]
enum NetCommand {
    /// Print a host's configuration: a script in the guide's order, netplan YAML, rt_tables
    /// lines, or the structured plan (JSON).
    Render {
        #[command(flatten)]
        lab: LabArgs,
        /// The host to render; every host when left out.
        #[arg(long)]
        host: Option<String>,
        /// Output format. netplan is one file per host: with several hosts, give --host or
        /// --out.
        #[arg(long, value_enum, default_value_t = Format::Script)]
        format: Format,
        /// Write one file per host into this directory (HOST.sh, HOST.yaml, HOST.rt_tables,
        /// HOST.json) instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Converge the lab's hosts on their plans: read the live state, change only the
    /// difference. A second run reports 0 changes.
    Apply {
        #[command(flatten)]
        lab: LabArgs,
        /// One host; every host when left out.
        #[arg(long)]
        host: Option<String>,
        /// Print the changes without making them; exit 4 when some are pending, 0 when the
        /// hosts are as planned.
        #[arg(long)]
        dry_run: bool,
        /// On SSH hosts, also persist the configuration: netplan YAML in /etc/netplan (mode
        /// 600, then `netplan apply`) and the routing-table names in /etc/iproute2/rt_tables.
        #[arg(long)]
        persist: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Script,
    Netplan,
    #[value(name = "rt_tables")]
    RtTables,
    Json,
}

/// Which lab a command works on.
#[derive(Args, Debug)]
struct LabArgs {
    /// A Lab.toml file. Default: the nearest Lab.toml here or above, else the built-in lab.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    lab: Option<PathBuf>,
    /// A lab that ships with lab: `builtin` or `guide` (the guide's settings, verbatim).
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    preset: Option<Preset>,
}

/// A count from the command line, within `min..=max`.
fn count(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=max)
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse()
}

/// A failure the CLI reports and turns into an exit status.
pub(crate) enum Failure {
    /// Already printed; exit with this status.
    Exit(u8),
    Report(miette::Report),
    /// A report with its own exit status (a host not up, unreachable).
    Coded(u8, miette::Report),
}

impl From<miette::Report> for Failure {
    fn from(r: miette::Report) -> Self {
        Failure::Report(r)
    }
}

/// The exit status of a command ended by SIGINT or SIGTERM (128 + SIGINT, as shells report).
const EXIT_INTERRUPTED: u8 = 130;

/// SIGINT and SIGTERM raise lab's interrupt flag ([`guest::cancel`]): the traffic tools and
/// waits lab started stop, the clean-up runs (links taken down come back, the plan is put back,
/// a demo's lab goes), and lab exits 130. A second signal ends lab at once, with 130.
fn catch_interrupts() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // The order matters: the exit sees the flag as it was before this signal.
        let _ = signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(EXIT_INTERRUPTED),
            guest::cancel::flag(),
        );
        let _ = signal_hook::flag::register(sig, guest::cancel::flag());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    catch_interrupts();
    let result = run(cli);
    if guest::cancel::requested() {
        if let Err(Failure::Report(r) | Failure::Coded(_, r)) = &result {
            eprintln!("{r:?}");
        }
        eprintln!(
            "lab: interrupted. The traffic tools lab started were stopped and links a test took down are up again; `lab down` removes the lab"
        );
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::Report(r)) => {
            eprintln!("{r:?}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Coded(code, r)) => {
            eprintln!("{r:?}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init {
            preset,
            force,
            name,
            path,
        } => init(preset, force, name, &path),
        Command::Net(NetCommand::Render {
            lab,
            host,
            format,
            out,
        }) => {
            let s = select_lab(&lab)?;
            match out {
                Some(dir) => render_files(s.lab(), host.as_deref(), format, &dir),
                None => render(s.lab(), host.as_deref(), format),
            }
        }
        Command::Net(NetCommand::Apply {
            lab,
            host,
            dry_run,
            persist,
            json,
        }) => {
            let s = select_lab(&lab)?;
            ops::apply(&s, host.as_deref(), dry_run, persist, json)
        }
        Command::Exec { host, command, lab } => {
            let s = select_lab(&lab)?;
            ops::exec(&s, &host, &command)
        }
        Command::Ssh { host, command, lab } => {
            let s = select_lab(&lab)?;
            ops::ssh(&s, &host, &command)
        }
        Command::SshConfig { lab } => {
            let s = select_lab(&lab)?;
            print_out(&s.openssh_config().map_err(ops::fail)?)
        }
        Command::Providers { json } => providers(json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "lab", &mut out);
            print_out(&String::from_utf8_lossy(&out))
        }
        Command::Man { out } => man(out.as_deref()),
        Command::Scenarios { run: None, json } => instant::scenarios_list(json),
        Command::Scenarios {
            run:
                Some(ScenariosCommand::Run {
                    names,
                    all,
                    seconds,
                    format,
                }),
            ..
        } => instant::scenarios_run(&names, all, seconds, &format),
        Command::Kernel(KernelCommand::Build {
            source,
            out,
            jobs,
            no_ccache,
            json,
        }) => {
            let mut spec = kernel_spec(source)?;
            spec.out = out;
            if let Some(j) = jobs {
                spec.jobs = j;
            }
            spec.ccache = !no_ccache;
            kernel_build(&spec, json)
        }
        Command::Kernel(KernelCommand::Config { source }) => {
            let spec = kernel_spec(source)?;
            let c = kernel::build::prepare(&guest::Local::new("local"), &spec, &mut |p| {
                if let kernel::build::Progress::Step(s) = p {
                    eprintln!("kernel: {s}");
                }
            })
            .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
            let mut out = format!(
                "configured linux {} ({}): {}\n",
                c.version,
                spec.profile.describe(),
                c.config.display()
            );
            for o in kernel::config::REQUIRED {
                out.push_str(&format!(
                    "  {o}={}\n",
                    kernel::config::value(&c.text, o).unwrap_or("absent")
                ));
            }
            print_out(&out)
        }
        Command::Kernel(KernelCommand::GrubMenu { file, json }) => grub_menu(&file, json),
        Command::Kernel(KernelCommand::Check { host, lab }) => {
            let s = select_lab(&lab)?;
            let exec = s.exec(&host).map_err(ops::fail)?;
            let c = kernel::install::check(exec.as_ref())
                .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
            print_out(&format!(
                "{host}: kernel {}, MPTCP {}\n",
                c.release,
                match c.mptcp_enabled.as_deref() {
                    Some("1") => "built in and enabled: no kernel build needed",
                    Some(_) => "built in but disabled (net.mptcp.enabled=0; lab net apply sets it)",
                    None => "missing: build one with `lab kernel build`",
                }
            ))
        }
        Command::Kernel(KernelCommand::Install {
            host,
            release,
            packages,
            trial,
            lab,
        }) => {
            let s = select_lab(&lab)?;
            install_kernel(&s, &host, &release, &packages, trial).map(|_| ())
        }
        Command::Kernel(KernelCommand::GrubDefault {
            root,
            release,
            title,
        }) => {
            let sel = match (release, title) {
                (Some(r), _) => kernel::grub::Selector::Release(r),
                (None, Some(t)) => kernel::grub::Selector::Title(t),
                (None, None) => unreachable!("clap requires one"),
            };
            let done = kernel::grub::set_default_on(&guest::Local::new("local"), &root, &sel)
                .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
            let mut out = format!(
                "{}: {} ({})\nGRUB_DEFAULT=\"{}\"{}\n",
                if done.changed {
                    "default set"
                } else {
                    "already the default"
                },
                done.entry.title,
                done.entry.path,
                done.value,
                done.previous
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default()
            );
            if let Some(b) = done.backup {
                out.push_str(&format!("backup: {b}\n"));
            }
            out.push_str("next: update-grub (grub-mkconfig -o /boot/grub/grub.cfg)\n");
            print_out(&out)
        }
        Command::Doctor { lab, json } => {
            let s = select_lab(&lab)?;
            doctor(s.lab(), json)
        }
        Command::Schema => print_out(&schema_text()),
        Command::Inventory { lab, format } => {
            let s = select_lab(&lab)?;
            let inv = s.inventory().map_err(ops::fail)?;
            print_out(&if format == "yaml" {
                inv.yaml()
            } else {
                inv.ini()
            })
        }
        Command::Graph { lab, format, out } => {
            let s = select_lab(&lab)?;
            let text = match format.as_str() {
                "mermaid" => lab::graph::mermaid(s.lab()),
                "svg" => lab::graph::svg(s.lab()),
                _ => lab::graph::dot(s.lab()),
            };
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|e| {
                    Failure::Report(miette::miette!("cannot write {}: {e}", path.display()))
                }),
                None => print_out(&text),
            }
        }
        Command::Up {
            lab,
            no_apply,
            provider,
            dry_run,
            boot_timeout,
            insecure_skip_signature,
            json,
        } => {
            let mut s = select_lab_on(&lab, provider.as_deref())?;
            ops::progress(&mut s, !json);
            ops::up(
                &s,
                &lab::UpOptions {
                    boot_timeout: std::time::Duration::from_secs(boot_timeout),
                    apply: !no_apply,
                    skip_signatures: insecure_skip_signature,
                },
                dry_run,
                json,
            )
        }
        Command::Down {
            lab,
            provider,
            json,
        } => {
            let mut s = select_lab_on(&lab, provider.as_deref())?;
            ops::progress(&mut s, !json);
            ops::down(&s, json)
        }
        Command::Guide {
            provider,
            source,
            config,
            boot_timeout,
            seconds,
            json,
            lab,
        } => {
            let mut s = select_lab_on(&lab, Some(&provider))?;
            ops::progress(&mut s, false);
            guide::run(
                &s,
                &lab::guide::GuideOptions {
                    source,
                    profile: profile_named(&config),
                    boot_timeout: std::time::Duration::from_secs(boot_timeout),
                    seconds,
                },
                json,
            )
        }
        Command::Provision { host, check, lab } => {
            let s = select_lab(&lab)?;
            ops::provision(&s, host.as_deref(), check)
        }
        Command::Halt { lab, grace, json } => {
            let mut s = select_lab(&lab)?;
            ops::progress(&mut s, !json);
            ops::halt(&s, std::time::Duration::from_secs(grace), json)
        }
        Command::Snapshot {
            action,
            name,
            lab,
            boot_timeout,
            json,
        } => {
            let mut s = select_lab(&lab)?;
            ops::progress(&mut s, !json);
            ops::snapshot(
                &s,
                action == SnapshotAction::Restore,
                &name,
                std::time::Duration::from_secs(boot_timeout),
                json,
            )
        }
        Command::Status {
            all: true,
            prune,
            json,
            ..
        } => ops::status_all(prune, json),
        Command::Status { lab, json, .. } => {
            let s = select_lab(&lab)?;
            ops::status(&s, json)
        }
        Command::Capture {
            targets,
            seconds,
            out,
            json,
            lab,
        } => {
            let s = select_lab(&lab)?;
            let targets = targets
                .iter()
                .map(|t| t.parse::<lab::capture::Target>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| Failure::Report(miette::miette!("{why}")))?;
            let file = out.unwrap_or_else(|| run_dir(&s, None).join("capture.pcapng"));
            if seconds.is_none() && !json {
                eprintln!("capturing until Ctrl-C ...");
            }
            let got = s
                .capture(&targets, &file, seconds.map(std::time::Duration::from_secs))
                .map_err(ops::fail)?;
            if json {
                instant::json_out(&got)?;
            } else {
                print_out(&instant::render_capture(&got))?;
            }
            Ok(())
        }
        Command::Report { runs, format, out } => {
            let loaded = runs
                .iter()
                .map(|d| lab::report::load(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ops::fail)?;
            let file = out.unwrap_or_else(|| {
                let dir = if loaded.len() == 1 {
                    runs[0].clone()
                } else {
                    PathBuf::from(".")
                };
                dir.join(format!("report.{format}"))
            });
            let base = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let comparison = if loaded.len() > 1 {
                let chart = lab::report::comparison_chart(&loaded);
                let png = lab::plot_png(&chart).map_err(ops::fail)?;
                let path = base.join("comparison.png");
                if format == "md" {
                    std::fs::write(&path, &png)
                        .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
                }
                Some((path, png))
            } else {
                None
            };
            let cmp = comparison
                .as_ref()
                .map(|(p, b)| (p.as_path(), b.as_slice()));
            let text = if format == "md" {
                lab::report::markdown(&loaded, lab::report::Images::Links(&base), cmp)
            } else {
                lab::report::html(&lab::report::markdown(
                    &loaded,
                    lab::report::Images::Inline,
                    cmp,
                ))
            };
            std::fs::write(&file, text).map_err(|e| miette::miette!("{}: {e}", file.display()))?;
            print_out(&format!("{}\n", file.display()))
        }
        Command::Test { lab, test, json } => {
            let s = select_lab(&lab)?;
            let opts = test.options_for(&s)?;
            instant::test(&s, &opts, json)
        }
        Command::Tc(TcCommand::Set {
            host,
            iface,
            rate,
            delay,
            loss,
            lab,
        }) => {
            let s = select_lab(&lab)?;
            let bad =
                |what: &str, v: &str| Failure::Report(miette::miette!("`{v}` is not a {what}"));
            let shaping = net::Shaping {
                rate_bps: rate
                    .as_deref()
                    .map(|r| lab::units::rate_bps(r).ok_or_else(|| bad("rate (e.g. 10mbit)", r)))
                    .transpose()?,
                delay_us: delay
                    .as_deref()
                    .map(|d| {
                        lab::units::time_us(d)
                            .and_then(|u| u32::try_from(u).ok())
                            .ok_or_else(|| bad("delay (e.g. 20ms)", d))
                    })
                    .transpose()?,
                loss_ppm: loss
                    .as_deref()
                    .map(|l| {
                        lab::units::loss_ppm(l)
                            .and_then(|u| u32::try_from(u).ok())
                            .ok_or_else(|| bad("loss (e.g. 1%)", l))
                    })
                    .transpose()?,
                burst_bytes: None,
            };
            if shaping.rate_bps.is_none() && !shaping.needs_netem() {
                return Err(Failure::Report(miette::miette!(
                    help = "e.g. `lab tc set ue2 enp0s9 --rate 10mbit`",
                    "nothing to set: give --rate, --delay or --loss"
                )));
            }
            let argv = s.tc_set(&host, &iface, &shaping).map_err(ops::fail)?;
            print_out(&format!("{host}: {}\n", argv.join(" ")))
        }
        Command::Tc(TcCommand::Show {
            host,
            iface,
            json,
            lab,
        }) => {
            let s = select_lab(&lab)?;
            let shown = s.tc_show(&host, iface.as_deref()).map_err(ops::fail)?;
            if json {
                return instant::json_out(&shown);
            }
            let mut out = String::new();
            for q in &shown {
                let now = match (&q.kind, q.rate_bps) {
                    (Some(k), Some(r)) => format!("{k} {}", net::plan::format_rate(r)),
                    (Some(k), None) => k.clone(),
                    (None, _) => "-".into(),
                };
                out.push_str(&format!(
                    "{} {:<10} {:<20} plan: {}\n",
                    q.host,
                    q.iface,
                    now,
                    q.planned.as_deref().unwrap_or("none")
                ));
            }
            print_out(&out)
        }
        Command::Tc(TcCommand::Reset { host, iface, lab }) => {
            let s = select_lab(&lab)?;
            let argv = s.tc_reset(&host, &iface).map_err(ops::fail)?;
            if argv.is_empty() {
                print_out(&format!(
                    "{host}: {iface} already as planned (no shaping)\n"
                ))
            } else {
                print_out(&format!("{host}: {}\n", argv.join(" ")))
            }
        }
        Command::Check {
            run,
            format,
            lab,
            test,
        } => {
            let s = select_lab(&lab)?;
            let opts = test.options_for(&s)?;
            instant::check(&s, run.then_some(&opts), &format)
        }
        Command::Link {
            action,
            host,
            iface,
            lab,
        } => {
            let s = select_lab(&lab)?;
            ops::link(&s, &host, &iface, matches!(action, LinkAction::Up))
        }
        Command::Demo {
            preset,
            rate,
            test,
            json,
        } => {
            let mut opts = test.options();
            let dir = match &test.out {
                Some(d) => d.clone(),
                None => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    lab::StateDir::new(std::env::current_dir().unwrap_or_default())
                        .file("runs")
                        // The process in the name, as in the demo's lab name: two demos
                        // started in the same second keep their runs apart.
                        .join(lab::capture::run_name(
                            &format!("demo-{}", std::process::id()),
                            now,
                        ))
                }
            };
            if test.capture {
                opts.capture = Some(dir.join("capture.pcapng"));
            }
            opts.run_dir = Some(dir);
            instant::demo(preset, &rate, &opts, json)
        }
        Command::Bench {
            what: Some(BenchCommand::Kernel(k)),
            ..
        } => bench_kernel(k),
        Command::Bench {
            what: Some(BenchCommand::Vm(v)),
            ..
        } => bench_vm(v),
        Command::Bench {
            what:
                Some(BenchCommand::Capture {
                    seconds,
                    runs,
                    rate,
                    json,
                }),
            ..
        } => {
            ops::need_root("bench capture")?;
            let scratch =
                std::env::temp_dir().join(format!("lab-bench-capture-{}", std::process::id()));
            let b = lab::bench::capture(seconds, runs, rate, &scratch, &mut |s| {
                eprintln!("bench: {s}")
            })
            .map_err(ops::fail);
            let _ = std::fs::remove_dir_all(&scratch);
            let b = b?;
            if json {
                instant::json_out(&b)?;
            } else {
                print_out(&lab::bench::render_capture(&b))?;
            }
            Ok(())
        }
        Command::Bench {
            what: None,
            seconds,
            runs,
            pairs,
            ssh_commands,
            json,
        } => instant::bench(
            &lab::bench::Options {
                seconds,
                runs,
                pairs,
                ssh_commands,
                ..Default::default()
            },
            json,
        ),
    }
}

impl TestArgs {
    fn options(&self) -> lab::traffic::TestOptions {
        lab::traffic::TestOptions {
            seconds: self.seconds,
            tool: match self.tool {
                Some(ToolArg::Iperf3) => measure::Tool::Iperf3,
                Some(ToolArg::Builtin) | None => measure::Tool::Builtin,
            },
            tool_auto: self.tool.is_none(),
            fail: self.fail.clone(),
            congestion: (self.cc != "host").then(|| self.cc.clone()),
            ..Default::default()
        }
    }

    /// [`TestArgs::options`] with the `--event`s, read against the lab's hosts, and the
    /// capture's file in the run's directory.
    fn options_for(&self, s: &Session) -> Result<lab::traffic::TestOptions, Failure> {
        let lab = s.lab();
        let mut o = self.options();
        let dir = run_dir(s, self.out.as_deref());
        if self.capture {
            o.capture = Some(dir.join("capture.pcapng"));
        }
        o.run_dir = Some(dir);
        for e in &self.event {
            o.events.push(
                lab::events::parse(lab, e)
                    .map_err(|why| Failure::Report(miette::miette!("--event {e:?}: {why}")))?,
            );
        }
        Ok(o)
    }
}

/// `out`, or a new run directory `.lab/runs/LAB-TIME` of the lab.
fn run_dir(s: &Session, out: Option<&Path>) -> PathBuf {
    match out {
        Some(d) => d.to_path_buf(),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let runs = s.state().file("runs");
            let name = lab::capture::run_name(&s.lab().name, now);
            // A second test of the lab in the same second gets `NAME-2`, and so on: each
            // directory is taken by creating it, so two processes never share one.
            let _ = std::fs::create_dir_all(&runs);
            (1..1000)
                .map(|k| {
                    runs.join(if k == 1 {
                        name.clone()
                    } else {
                        format!("{name}-{k}")
                    })
                })
                .find(|d| std::fs::create_dir(d).is_ok())
                .unwrap_or_else(|| runs.join(&name))
        }
    }
}

/// [`select_lab`], its hosts on `provider` when one is given (remembered until `lab down`).
fn select_lab_on(args: &LabArgs, provider: Option<&str>) -> Result<Session, Failure> {
    let mut s = select_lab(args)?;
    if let Some(p) = provider {
        s.set_provider(p).map_err(ops::fail)?;
    }
    Ok(s)
}

/// `--lab FILE`, `--preset NAME`, the nearest Lab.toml, or the built-in lab, opened as a
/// session whose state lives in the lab's directory: the Lab.toml's, or the current directory.
fn select_lab(args: &LabArgs) -> Result<Session, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| miette::miette!("cannot read the current directory: {e}"))?;
    let dir_of = |p: &Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| cwd.clone(), Path::to_path_buf)
    };
    let (loaded, dir) = if let Some(path) = &args.lab {
        (lab::load_file(path), dir_of(path))
    } else if let Some(preset) = args.preset {
        (preset.load(), cwd.clone())
    } else {
        match lab::find_lab_file(&cwd) {
            Some(path) => (lab::load_file(&path), dir_of(&path)),
            None => (Preset::Builtin.load(), cwd.clone()),
        }
    };
    let lab = loaded.map_err(load_failure)?;
    Session::new(lab, dir).map_err(ops::fail)
}

/// A Lab.toml that did not load: its diagnostics printed, exit 2.
fn load_failure(e: lab::LoadError) -> Failure {
    match e {
        lab::LoadError::Invalid(invalid) => {
            diagnostics::print(&invalid);
            Failure::Exit(EXIT_INVALID)
        }
        other => Failure::Report(miette::Report::msg(other.to_string())),
    }
}

/// `lab providers`.
fn providers(json: bool) -> Result<(), Failure> {
    let r = lab::default_registry();
    let rows: Vec<serde_json::Value> = r
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name(),
                "describe": p.describe(),
                "capabilities": p.capabilities(),
            })
        })
        .collect();
    if json {
        return instant::json_out(&rows);
    }
    let mut out = String::new();
    for p in r.iter() {
        let caps: Vec<String> = p
            .capabilities()
            .iter()
            .map(|c| {
                serde_json::to_value(c).map_or_else(
                    |_| String::new(),
                    |v| v.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.push_str(&format!(
            "{:<11} {}\n            capabilities: {}\n",
            p.name(),
            p.describe(),
            if caps.is_empty() {
                "-".to_string()
            } else {
                caps.join(", ")
            }
        ));
    }
    print_out(&out)
}

fn init(preset: Preset, force: bool, name: Option<String>, path: &Path) -> Result<(), Failure> {
    if path.exists() && !force {
        return Err(miette::miette!(
            help = "pass --force to overwrite it",
            "{} already exists",
            path.display()
        )
        .into());
    }
    // The schema beside it, in `.lab/`, named by a `#:schema` line that taplo (Even Better
    // TOML) reads: the editor then completes and checks the file.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = match name {
        Some(n) => n,
        None => init_name(dir),
    };
    let text = format!(
        "#:schema .lab/{SCHEMA_FILE}\n{}",
        preset.source_named(&name)
    );
    // A bad --name is refused before anything is written, at its place in the text.
    lab::load::parse(&path.display().to_string(), &text).map_err(load_failure)?;
    let schema = dir.join(".lab").join(SCHEMA_FILE);
    std::fs::create_dir_all(dir.join(".lab"))
        .and_then(|()| std::fs::write(&schema, schema_text()))
        .map_err(|e| miette::miette!("cannot write {}: {e}", schema.display()))?;
    std::fs::write(path, text)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {} (the {} lab, named `{name}`) and its schema .lab/{SCHEMA_FILE}; next: `lab doctor`, `lab net render --host ue1`",
        path.display(),
        preset.name()
    );
    Ok(())
}

/// The name `lab init` gives the lab in `dir`: the directory's name, made valid; when another
/// directory's lab has that name on this machine, with a suffix from `dir`'s path, so that
/// labs made by `lab init` in different directories never share a name.
fn init_name(dir: &Path) -> String {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let base = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = lab::presets::lab_name_for(&base);
    if lab::provider::index::elsewhere(&abs, &name).is_none() {
        return name;
    }
    let tag = format!(
        "{:06x}",
        lab::provider::vm::stable_hash(&[&abs.display().to_string()]) & 0xff_ffff
    );
    let keep = 32 - tag.len() - 1;
    format!("{}-{tag}", name.chars().take(keep).collect::<String>())
}

/// Where `lab init` puts Lab.toml's JSON Schema, in `.lab/`.
const SCHEMA_FILE: &str = "lab.schema.json";

/// Lab.toml's JSON Schema, pretty.
fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&lab::load::schema()).unwrap_or_default();
    s.push('\n');
    s
}

fn hosts<'a>(lab: &'a Lab, host: Option<&str>) -> Result<Vec<&'a lab::Host>, Failure> {
    match host {
        None => Ok(lab.hosts.iter().collect()),
        Some(name) => match lab.host(name) {
            Some(h) => Ok(vec![h]),
            None => {
                let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
                Err(miette::miette!(
                    help = format!("hosts of lab `{}`: {}", lab.name, names.join(", ")),
                    "lab `{}` has no host `{name}`",
                    lab.name
                )
                .into())
            }
        },
    }
}

/// `net render --out DIR`: one file per host, named for the host and the format.
fn render_files(
    lab: &Lab,
    host: Option<&str>,
    format: Format,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| miette::miette!("cannot create {}: {e}", dir.display()))?;
    let mut written = String::new();
    for h in hosts(lab, host)? {
        let net = h.net();
        let title = format!("lab `{}`, host {} ({})", lab.name, h.name, h.role.as_str());
        let (ext, text) = match format {
            Format::Script => ("sh", net::script::render(&net, &title)),
            Format::Netplan => (
                "yaml",
                net::netplan::render(&net, &title).map_err(|e| miette::miette!("{e}"))?,
            ),
            Format::RtTables => ("rt_tables", net::rt_tables::render(&net)),
            Format::Json => {
                let mut t = serde_json::to_string_pretty(&host_json(lab, h))
                    .map_err(|e| miette::miette!("{e}"))?;
                t.push('\n');
                ("json", t)
            }
        };
        let path = dir.join(format!("{}.{ext}", h.name));
        std::fs::write(&path, text)
            .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
        written.push_str(&format!("wrote {}\n", path.display()));
    }
    print_out(&written)
}

/// `net render --format json` of one host: its configuration, rt_tables lines and plan.
fn host_json(lab: &Lab, h: &lab::Host) -> serde_json::Value {
    let net = h.net();
    let steps = net::plan(&net);
    serde_json::json!({
        "lab": lab.name,
        "host": h.name,
        "role": h.role,
        "config": net,
        "rt_tables": net::rt_tables::lines(&net),
        "plan": net::plan::rendered(&steps),
    })
}

fn render(lab: &Lab, host: Option<&str>, format: Format) -> Result<(), Failure> {
    let hosts = hosts(lab, host)?;
    // Two netplan documents in one stream would be read as the last one only.
    if matches!(format, Format::Netplan) && hosts.len() > 1 {
        return Err(Failure::Report(miette::miette!(
            help = format!(
                "add --host NAME (hosts: {}), or --out DIR for one file per host",
                hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "netplan is one file per host, and this lab has {}",
            hosts.len()
        )));
    }
    let mut out = String::new();
    match format {
        Format::Json => {
            let docs: Vec<serde_json::Value> = hosts.iter().map(|h| host_json(lab, h)).collect();
            let value = if host.is_some() {
                docs.into_iter().next().unwrap_or_default()
            } else {
                serde_json::Value::Array(docs)
            };
            out = serde_json::to_string_pretty(&value).map_err(|e| miette::miette!("{e}"))?;
            out.push('\n');
        }
        _ => {
            for (n, h) in hosts.iter().enumerate() {
                let net = h.net();
                let title = format!("lab `{}`, host {} ({})", lab.name, h.name, h.role.as_str());
                if hosts.len() > 1 {
                    if n > 0 {
                        out.push('\n');
                    }
                    out.push_str(&format!("# ==> {} <==\n", h.name));
                }
                match format {
                    Format::Script => out.push_str(&net::script::render(&net, &title)),
                    Format::Netplan => out.push_str(
                        &net::netplan::render(&net, &title).map_err(|e| miette::miette!("{e}"))?,
                    ),
                    Format::RtTables => out.push_str(&net::rt_tables::render(&net)),
                    Format::Json => unreachable!("handled above"),
                }
            }
        }
    }
    print_out(&out)
}

pub(crate) fn print_out(s: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`lab ... | head`) is not an error worth a report.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(miette::miette!("cannot write to stdout: {e}").into()),
    }
}

/// lab's cache directory for kernels: ~/.cache/lab/kernel (or under $XDG_CACHE_HOME).
fn kernel_cache() -> PathBuf {
    lab::provider::cache_dir("kernel")
}

/// The build spec of `lab kernel build|config`: the source (downloaded when no `--source`)
/// and the profile, reading a running kernel's config from `--from HOST` when asked.
fn kernel_spec(a: KernelSourceArgs) -> Result<kernel::build::BuildSpec, Failure> {
    use kernel::config::Profile;
    let report = |e: &dyn std::fmt::Display| Failure::Report(miette::miette!("{e}"));
    let from = |name: &Option<String>| -> Result<Box<dyn guest::Exec>, Failure> {
        match name {
            None => Ok(Box::new(guest::Local::new("local"))),
            Some(h) => select_lab(&a.lab)?.exec(h).map_err(|e| report(&e)),
        }
    };
    if a.from.is_some() && !matches!(a.config.as_str(), "running" | "localmod") {
        return Err(report(
            &"--from HOST only goes with --config running or localmod",
        ));
    }
    let profile = match (&a.config_file, a.config.as_str()) {
        (Some(f), _) => Profile::Given {
            origin: f.display().to_string(),
            text: std::fs::read_to_string(f)
                .map_err(|e| report(&format!("cannot read {}: {e}", f.display())))?,
        },
        (None, "tiny") => Profile::Tiny,
        (None, "defconfig") => Profile::Defconfig,
        (None, "running") => {
            let r = kernel::config::running(from(&a.from)?.as_ref()).map_err(|e| report(&e))?;
            Profile::Given {
                origin: r.origin,
                text: r.text,
            }
        }
        (None, "localmod") => {
            let host = from(&a.from)?;
            let r = kernel::config::running(host.as_ref()).map_err(|e| report(&e))?;
            let lsmod = kernel::config::lsmod(host.as_ref()).map_err(|e| report(&e))?;
            Profile::LocalMod {
                origin: r.origin,
                base: r.text,
                lsmod,
            }
        }
        (None, _) => Profile::Lab,
    };
    let source = match a.source {
        Some(s) => s,
        None => download(&a.version, a.insecure_skip_signature)?,
    };
    let mut spec = kernel::build::BuildSpec::new(source, profile, a.work, PathBuf::from("."));
    spec.localversion = a.localversion;
    spec.menuconfig = a.menuconfig;
    spec.history = Some(kernel_cache().join("objects.json"));
    Ok(spec)
}

fn bench_kernel(a: BenchKernelArgs) -> Result<(), Failure> {
    let source = match a.source {
        Some(s) => s,
        None => download(&a.version, a.insecure_skip_signature)?,
    };
    let opts = kernel::bench::Options {
        source,
        profiles: a.profiles.iter().map(|p| profile_named(p)).collect(),
        work: a.work,
        jobs: a
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        keep: a.keep,
    };
    let mut last = String::new();
    let report = kernel::bench::run(&guest::Local::new("local"), &opts, &mut |label, p| {
        if label != last {
            eprintln!("bench: {label}");
            last = label.to_string();
        }
        if let kernel::build::Progress::Step(s) = p {
            eprintln!("  {s}");
        }
    })
    .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
    if a.json {
        return instant::json_out(&report);
    }
    print_out(&kernel::bench::render(&report))
}

/// A built-in profile by the name clap accepted (`tiny`, `lab`, `defconfig`).
fn profile_named(name: &str) -> kernel::config::Profile {
    match name {
        "tiny" => kernel::config::Profile::Tiny,
        "defconfig" => kernel::config::Profile::Defconfig,
        _ => kernel::config::Profile::Lab,
    }
}

fn bench_vm(a: BenchVmArgs) -> Result<(), Failure> {
    let here = PathBuf::from(".");
    let kernel = if a.no_kernel {
        None
    } else {
        let profile = profile_named(&a.config);
        let k = lab::guide::build_kernel(&here, &a.source, &profile, &mut |p| {
            if let kernel::build::Progress::Step(s) = p {
                eprintln!("kernel: {s}");
            }
        })
        .map_err(ops::fail)?;
        eprintln!(
            "kernel: {} ({} objects) in {:.0} s",
            k.manifest.release, k.manifest.objects, k.manifest.seconds
        );
        Some(lab::vmbench::KernelUnderTest {
            release: k.manifest.release,
            packages: k.images,
        })
    };
    let scratch = lab::StateDir::new(&here).file(&format!("bench-vm-{}", std::process::id()));
    let opts = lab::vmbench::Options {
        cache: lab::provider::cache_dir("images"),
        scratch,
        boots: a.boots,
        cold_image: a.cold_image,
        kernel,
        memory_mib: a.memory_mib,
        cpus: a.cpus,
        boot_timeout: std::time::Duration::from_secs(600),
    };
    let report = lab::vmbench::run(&opts, &mut |s| eprintln!("bench: {s}"))
        .map_err(|e| Failure::Report(miette::miette!("{e}")))?;
    if a.json {
        return instant::json_out(&report);
    }
    print_out(&lab::vmbench::render(&report))
}

/// `lab man`: the main page on stdout, or every page (one per command and subcommand) in `dir`.
fn man(dir: Option<&Path>) -> Result<(), Failure> {
    let report = |e: &dyn std::fmt::Display| Failure::Report(miette::miette!("{e}"));
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| report(&e))?;
        return print_out(&String::from_utf8_lossy(&page));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| report(&format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    fn pages(
        cmd: &clap::Command,
        name: &str,
        dir: &Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        let cmd = cmd
            .clone()
            .name(name.to_string())
            .bin_name(name.replace('-', " "));
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(&path, page)?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
        }
        Ok(())
    }
    pages(&cmd, "lab", dir, &mut written)
        .map_err(|e| report(&format!("writing pages into {}: {e}", dir.display())))?;
    print_out(&format!("{} pages in {}\n", written.len(), dir.display()))
}

/// The kernel.org tarball of `version`, from the cache or downloaded with a progress bar.
fn download(version: &str, skip_signature: bool) -> Result<PathBuf, Failure> {
    let cache = kernel_cache();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("linux-{version}.tar.xz"));
    let fetched = kernel::source::fetch(
        kernel::source::KERNEL_ORG,
        version,
        &kernel::source::kernel_org(skip_signature),
        &cache,
        &mut |done, total| {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let f = fetched.map_err(|e| Failure::Report(miette::miette!("{e}")))?;
    eprintln!(
        "kernel: {} ({}sha256 {} verified, {})",
        f.path.display(),
        if f.cached { "cached, " } else { "" },
        &f.sha256[..16],
        match &f.signed_by {
            Some(signer) => format!("sums signed by {signer}"),
            None => "WARNING: the signature on sha256sums.asc was NOT checked (--insecure-skip-signature)".into(),
        }
    );
    Ok(f.path)
}

/// `lab kernel install` on one host: upload, dpkg, GRUB, reboot, wait, verify; prints a line.
fn install_kernel(
    s: &Session,
    host: &str,
    release: &str,
    packages: &[PathBuf],
    trial: bool,
) -> Result<kernel::install::Installed, Failure> {
    let done = s
        .install_kernel(host, packages, release, trial)
        .map_err(ops::fail)?;
    print_out(&format!(
        "{host}: running {} with MPTCP on; GRUB_DEFAULT=\"{}\"; back after {:.0} s\n",
        done.release, done.grub_default, done.boot_seconds
    ))?;
    Ok(done)
}

/// `lab kernel build`: a spinner (or step lines when stderr is not a terminal), then the
/// manifest as text or JSON.
fn kernel_build(spec: &kernel::build::BuildSpec, json: bool) -> Result<(), Failure> {
    use kernel::build::Progress;
    use std::io::IsTerminal as _;
    let tty = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new_spinner();
    if !tty {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let host = guest::Local::new("local");
    let result = kernel::build::build(&host, spec, &mut |p| match p {
        Progress::Step(s) => {
            if tty {
                bar.set_message(s);
            } else {
                eprintln!("kernel: {s}");
            }
        }
        Progress::Compiled { done, expected } => {
            if let Some(total) = expected {
                bar.set_length(total);
                bar.set_position(done.min(total));
                bar.set_message(format!("compiled {done} of ~{total} objects"));
            } else {
                bar.set_message(format!("compiled {done} objects"));
            }
            bar.tick();
        }
    });
    bar.finish_and_clear();
    let m = result.map_err(|e| Failure::Report(miette::miette!("{e}")))?;
    if json {
        return instant::json_out(&m);
    }
    let mut out = format!(
        "built {} ({}, {} objects{}) in {:.0} s (log: {})\n",
        m.release,
        m.profile,
        m.objects,
        if m.ccache { ", ccache" } else { "" },
        m.seconds,
        m.log.display()
    );
    for p in &m.packages {
        out.push_str(&format!(
            "  {} ({:.1} MB)\n",
            p.file.display(),
            p.size as f64 / 1e6
        ));
    }
    print_out(&out)
}

fn grub_menu(file: &Path, json: bool) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| miette::miette!("cannot read {}: {e}", file.display()))?;
    let items =
        kernel::grub::parse(&text).map_err(|e| miette::miette!("{}: {e}", file.display()))?;
    let entries = kernel::grub::list(&items);
    // No entry is no menu: a wrong file, not an empty answer.
    if entries.is_empty() {
        return Err(Failure::Report(miette::miette!(
            help = "GRUB's menu is /boot/grub/grub.cfg (update-grub writes it)",
            "{} has no GRUB menu entry",
            file.display()
        )));
    }
    if json {
        return instant::json_out(&entries);
    }
    let mut out = String::new();
    for e in &entries {
        out.push_str(&format!(
            "{:<7} {}{}\n        release {}  id {}\n",
            e.path,
            "  ".repeat(e.depth),
            e.title,
            e.release.as_deref().unwrap_or("-"),
            e.id_path.as_deref().unwrap_or("-"),
        ));
    }
    print_out(&out)
}

fn doctor(lab: &Lab, json: bool) -> Result<(), Failure> {
    let findings = lab::doctor::check(lab);
    let out = if json {
        let mut s = serde_json::to_string_pretty(&serde_json::json!({
            "lab": lab.name,
            "clean": findings.is_empty(),
            "findings": findings,
        }))
        .map_err(|e| miette::miette!("{e}"))?;
        s.push('\n');
        s
    } else if findings.is_empty() {
        format!(
            "lab `{}`: no problems found ({} hosts checked)\n",
            lab.name,
            lab.hosts.len()
        )
    } else {
        let mut s = format!("lab `{}`: {} problem(s) found\n", lab.name, findings.len());
        for f in &findings {
            s.push_str(&format!(
                "\n{} [{}]\n  {}\n  fix: {}\n",
                f.host, f.code, f.message, f.fix
            ));
        }
        s
    };
    print_out(&out)?;
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory as _;

    /// Every command, flag and argument says what it is for, and no help text speaks of work
    /// still to come.
    #[test]
    fn every_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() && !path.is_empty() {
                missing.push(format!("{here}: the command"));
            }
            let about = format!(
                "{} {}",
                cmd.get_about().map(|a| a.to_string()).unwrap_or_default(),
                cmd.get_long_about()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            );
            for stale in ["come with their issue", "not yet", "for now", "coming"] {
                if about.contains(stale) {
                    missing.push(format!("{here}: speaks of work to come (`{stale}`)"));
                }
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{here}: {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{} without help:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }
}

#[cfg(test)]
mod number_tests {
    use clap::{CommandFactory as _, Parser as _};
    use proptest::prelude::*;
    use std::any::TypeId;

    /// Every flag of the CLI that takes a number, with the subcommands before it.
    fn number_flags() -> Vec<(Vec<String>, String)> {
        fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, String)>) {
            let numbers = [
                TypeId::of::<u8>(),
                TypeId::of::<u16>(),
                TypeId::of::<u32>(),
                TypeId::of::<u64>(),
                TypeId::of::<usize>(),
                TypeId::of::<i32>(),
                TypeId::of::<i64>(),
                TypeId::of::<f64>(),
            ];
            for a in cmd.get_arguments() {
                let id = a.get_value_parser().type_id();
                if numbers.iter().any(|t| id == *t) {
                    let flag = a.get_long().map(|l| format!("--{l}")).unwrap_or_default();
                    out.push((path.to_vec(), flag));
                }
            }
            for sub in cmd.get_subcommands() {
                let mut p = path.to_vec();
                p.push(sub.get_name().to_string());
                walk(sub, &p, out);
            }
        }
        let mut out = Vec::new();
        walk(&super::Cli::command(), &["lab".to_string()], &mut out);
        out
    }

    /// Every number flag is bounded: the largest u64 and a negative number are refused by
    /// clap (exit 2) with the flag named.
    #[test]
    fn every_number_flag_is_bounded() {
        let flags = number_flags();
        assert!(flags.len() >= 15, "{flags:?}");
        for (path, flag) in &flags {
            assert!(!flag.is_empty(), "{path:?}: a positional number");
            for bad in ["18446744073709551615", "-1"] {
                let mut argv = path.clone();
                argv.push(format!("{flag}={bad}"));
                match super::Cli::try_parse_from(&argv) {
                    Ok(_) => panic!("{argv:?} was accepted"),
                    Err(e) => {
                        assert_eq!(e.exit_code(), 2, "{argv:?}");
                        assert!(e.to_string().contains(flag.as_str()), "{argv:?}: {e}");
                    }
                }
            }
        }
    }

    proptest! {
        /// Any text given to any number flag is parsed or refused, never a panic; what is
        /// accepted is a number.
        #[test]
        fn number_flags_never_panic(i in any::<prop::sample::Index>(), text in ".{0,24}") {
            let flags = number_flags();
            let (path, flag) = &flags[i.index(flags.len())];
            let mut argv = path.clone();
            argv.push(format!("{flag}={text}"));
            if super::Cli::try_parse_from(&argv).is_ok() {
                prop_assert!(text.trim().parse::<f64>().is_ok(), "{:?}", argv);
            }
        }
        /// `--fail IFACE@SECONDS` never panics, and what it accepts is a named interface at a
        /// finite, non-negative second.
        #[test]
        fn fail_parsing_is_total(s in ".{0,40}") {
            if let Ok((iface, at)) = super::parse_fail(&s) {
                prop_assert!(!iface.is_empty());
                prop_assert!(at.is_finite() && at >= 0.0);
            }
        }

        /// `lab test --seconds N` is accepted exactly for 1..=86400, whatever N is.
        #[test]
        fn seconds_are_range_checked(n in any::<u64>(), text in "[0-9a-z.-]{0,25}") {
            let ok = super::Cli::try_parse_from(["lab", "test", "--seconds", &n.to_string()]).is_ok();
            prop_assert_eq!(ok, (1..=86_400).contains(&n));
            let parsed = super::Cli::try_parse_from(["lab", "test", "--seconds", &text]);
            if parsed.is_ok() {
                let n: u64 = text.parse().unwrap();
                prop_assert!((1..=86_400).contains(&n));
            }
        }
    }
}
