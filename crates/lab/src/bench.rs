//! `lab bench`: lab's speed and aggregation claims, each measured against a baseline run in the
//! same process, on the same machine, at the same time. Nothing here is timed against a constant.
//!
//! - aggregation efficiency (goodput / sum of the shaped link rates) of the built-in lab, the
//!   guide's settings and plain TCP, on 3x50 and 3x100 Mbit/s tbf links;
//! - bring-up (up + apply of the built-in lab, and of 50 host pairs) against the same
//!   configuration written as `ip -batch` scripts, one per namespace;
//! - a second `apply` on an applied lab (0 changes).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use guest::{Command, Exec, Local};
use serde::Serialize;

use crate::{Preset, parse};
use crate::{Session, TestOptions, UpOptions};
use model::{Attach, Lab};

/// Targets from the instant-labs issue.
pub const TARGET_EFFICIENCY: f64 = 0.93;
/// lab's bring-up may take at most this many times `ip -batch`'s.
pub const TARGET_BRINGUP_RATIO: f64 = 4.0;
/// A second apply of a converged lab, milliseconds at most.
pub const TARGET_REAPPLY_MS: f64 = 5.0;
/// One SSH session must be at least this many times faster than a process per command.
pub const TARGET_SSH_RATIO: f64 = 10.0;

/// Errors of `lab bench`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A transfer failed to run.
    #[error(transparent)]
    Test(#[from] crate::TestError),
    /// A session operation failed.
    #[error(transparent)]
    Session(#[from] Box<crate::Error>),
    /// A command failed (argv, status and stderr inside).
    #[error(transparent)]
    Command(#[from] Box<guest::Error>),
    /// A lab the bench generated does not validate (a bug).
    #[error("generated lab is invalid: {0}")]
    Lab(String),
}

/// Goodput against the shaped rate, for one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Efficiency {
    /// The configuration measured (`lab`, `guide`, `plain TCP`).
    pub config: String,
    /// The rate each path is shaped to, Mbit/s.
    pub rate_mbit: u64,
    /// What the receiver got, Mbit/s.
    pub goodput_mbit: f64,
    /// Goodput over the sum of the paths' rates.
    pub efficiency: f64,
    /// Subflows the connection had.
    pub subflows: u64,
}

/// lab's bring-up against `ip -batch` doing the same, for one lab size.
#[derive(Debug, Clone, Serialize)]
pub struct Bringup {
    /// The lab brought up, e.g. `guide (2 hosts)`.
    pub what: String,
    /// Namespaces it has.
    pub namespaces: usize,
    /// Median of the runs, milliseconds.
    pub lab_ms: f64,
    /// The same with iproute2's batch mode, milliseconds.
    pub ip_batch_ms: f64,
    /// lab over `ip -batch` (< 1: lab is faster).
    pub ratio: f64,
}

/// Commands over one SSH session against one `ssh` process each.
#[derive(Debug, Clone, Serialize)]
pub struct SshBench {
    /// Commands run each way.
    pub commands: usize,
    /// All commands over one ssh2 session (connect included), milliseconds.
    pub session_ms: f64,
    /// The same commands as one `ssh` process each, milliseconds.
    pub processes_ms: f64,
    /// Processes over session (> 1: the session is faster).
    pub ratio: f64,
}

/// What `lab bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// SSH, when an sshd could be started.
    pub ssh: Option<SshBench>,
    /// Goodput per configuration.
    pub efficiency: Vec<Efficiency>,
    /// Bring-up per lab size.
    pub bringup: Vec<Bringup>,
    /// Median time of a second `lab net apply` (both hosts), milliseconds.
    pub reapply_ms: f64,
    /// Changes the second apply made (0 on a converged lab).
    pub reapply_changes: usize,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per transfer in the efficiency runs (0: skip them).
    pub seconds: u64,
    /// Rates of the efficiency runs, Mbit/s.
    pub rates_mbit: Vec<u64>,
    /// Repetitions of each bring-up measurement (the median is reported).
    pub runs: usize,
    /// Host pairs in the large bring-up run (0: skip it).
    pub pairs: usize,
    /// Commands in the SSH comparison (0: skip it; needs sshd and ssh installed).
    pub ssh_commands: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seconds: 10,
            rates_mbit: vec![50, 100],
            runs: 5,
            pairs: 50,
            ssh_commands: 200,
        }
    }
}

/// Run every measurement. `progress` gets a line before each step.
pub fn run(
    opts: &Options,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, Error> {
    let tag = std::process::id();
    let mut efficiency = Vec::new();
    if opts.seconds > 0 {
        for &rate in &opts.rates_mbit {
            for (config, preset, tool) in [
                ("built-in lab", Preset::Builtin, measure::Tool::Builtin),
                ("guide's settings", Preset::Guide, measure::Tool::Builtin),
                ("plain TCP", Preset::Builtin, measure::Tool::Tcp),
            ] {
                progress(&format!(
                    "efficiency: {config}, 3x{rate} Mbit/s, {} s",
                    opts.seconds
                ));
                let mut lab = preset.load().map_err(|e| Error::Lab(e.to_string()))?;
                lab.name = format!("bench-{tag}-eff");
                lab.shape_paths(rate * 1_000_000);
                let lab = Down::up(&lab, scratch)?;
                let r = lab
                    .0
                    .test(&TestOptions {
                        seconds: opts.seconds,
                        tool,
                        tool_auto: false,
                        ..Default::default()
                    })
                    .map_err(Box::new)?;
                efficiency.push(Efficiency {
                    config: config.into(),
                    rate_mbit: rate,
                    goodput_mbit: r.report.goodput_bps / 1e6,
                    efficiency: r.verdict.efficiency.unwrap_or(0.0),
                    subflows: r
                        .report
                        .subflows_max
                        .map_or(r.report.subflows_mib, u64::from),
                });
            }
        }
    }

    let mut bringup = Vec::new();
    progress(&format!("bring-up: built-in lab, {} runs each", opts.runs));
    let mut builtin = Preset::Builtin
        .load()
        .map_err(|e| Error::Lab(e.to_string()))?;
    builtin.name = format!("bench-{tag}-up");
    bringup.push(compare_bringup(
        "built-in lab (2 hosts, 1 bridge, 3 NICs each)",
        std::slice::from_ref(&builtin),
        opts.runs,
        scratch,
    )?);
    if opts.pairs > 0 {
        progress(&format!("bring-up: {} host pairs", opts.pairs));
        let labs: Vec<Lab> = (0..opts.pairs)
            .map(|i| pair_lab(&format!("bench-{tag}-p{i}")))
            .collect::<Result<_, _>>()?;
        bringup.push(compare_bringup(
            &format!(
                "{} host pairs ({} namespaces, 3 veth links each)",
                opts.pairs,
                opts.pairs * 2
            ),
            &labs,
            opts.runs.min(3),
            scratch,
        )?);
    }

    progress("re-apply on an applied lab");
    let up = Down::up(&builtin, scratch)?;
    let mut times = Vec::new();
    let mut changes = 0;
    for _ in 0..opts.runs.max(3) * 4 {
        let t = Instant::now();
        let applied =
            up.0.apply(None, &crate::ApplyOptions::default())
                .map_err(Box::new)?;
        times.push(ms(t.elapsed()));
        changes += applied.iter().map(|h| h.changes.len()).sum::<usize>();
    }
    let ssh = if opts.ssh_commands > 0 {
        progress(&format!(
            "ssh: {} commands, one session against one process each",
            opts.ssh_commands
        ));
        Some(ssh_bench(opts.ssh_commands)?)
    } else {
        None
    };
    Ok(Report {
        ssh,
        efficiency,
        bringup,
        reapply_ms: median(&mut times),
        reapply_changes: changes,
    })
}

/// `n` small commands over one ssh2 session against `n` OpenSSH client processes, to the same
/// private sshd on loopback.
fn ssh_bench(n: usize) -> Result<SshBench, Error> {
    use guest::sshd::{self, Sshd};
    sshd::available().map_err(Error::Lab)?;
    let server = Sshd::start().map_err(Error::Lab)?;
    let known = server.dir.path().join("bench_known_hosts");
    let mut cfg = guest::SshConfig::new(
        "bench",
        "127.0.0.1",
        server.port,
        "root",
        guest::Auth::Key(server.client_key.clone()),
        &known,
    );
    cfg.trust_on_first_use = true;
    let t = Instant::now();
    let session = guest::Ssh::new(cfg);
    for _ in 0..n {
        session.check(&Command::new(["true"])).map_err(Box::new)?;
    }
    let session_ms = ms(t.elapsed());
    drop(session);
    let argv: Vec<String> = [
        "ssh",
        "-q",
        "-p",
        &server.port.to_string(),
        "-i",
        &server.client_key.display().to_string(),
        "-o",
        &format!("UserKnownHostsFile={}", known.display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "root@127.0.0.1",
        "true",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let local = Local::new("bench");
    let t = Instant::now();
    for _ in 0..n {
        local.check(&Command::new(argv.clone())).map_err(Box::new)?;
    }
    let processes_ms = ms(t.elapsed());
    Ok(SshBench {
        commands: n,
        session_ms,
        processes_ms,
        ratio: if session_ms > 0.0 {
            processes_ms / session_ms
        } else {
            0.0
        },
    })
}

/// A lab up through a [`Session`] (as `lab up` brings it up), destroyed when dropped, so a
/// failed measurement leaves nothing behind.
struct Down(Session);

impl Down {
    /// A session on `lab` with its state in `dir`, not up yet.
    fn new(lab: &Lab, dir: &Path) -> Result<Self, Error> {
        Ok(Self(Session::new(lab.clone(), dir).map_err(Box::new)?))
    }

    /// `lab up` with the network applied.
    fn up(lab: &Lab, dir: &Path) -> Result<Self, Error> {
        let d = Self::new(lab, dir)?;
        d.0.up(&UpOptions::default()).map_err(Box::new)?;
        Ok(d)
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// The guide's topology as a pair of hosts on three point-to-point links (as MEASURED.md's
/// baselines were taken), with lab's derived configuration.
fn pair_lab(name: &str) -> Result<Lab, Error> {
    let mut src = format!("[lab]\nname = \"{name}\"\n");
    for k in 1..=3 {
        writeln!(src, "[[links]]\nendpoints = [\"s:e{k}\", \"c:e{k}\"]").ok();
    }
    src.push_str("[hosts.s]\nrole = \"server\"\n");
    for k in 1..=3 {
        writeln!(
            src,
            "[[hosts.s.interfaces]]\nname = \"e{k}\"\naddress = \"10.0.{k}.1/24\""
        )
        .ok();
    }
    src.push_str("[hosts.c]\nrole = \"client\"\n");
    for k in 1..=3 {
        writeln!(
            src,
            "[[hosts.c.interfaces]]\nname = \"e{k}\"\naddress = \"10.0.{k}.2/24\"\ngateway = \"10.0.{k}.1\""
        )
        .ok();
    }
    parse("bench.toml", &src).map_err(|e| Error::Lab(e.to_string()))
}

/// Median bring-up of `labs` with lab (up + apply) and with `ip -batch`, alternating.
fn compare_bringup(
    what: &str,
    labs: &[Lab],
    runs: usize,
    scratch: &Path,
) -> Result<Bringup, Error> {
    let mut lab_times = Vec::new();
    let mut ip_times = Vec::new();
    let namespaces: usize = labs.iter().map(|l| l.hosts.len() + l.networks.len()).sum();
    for _ in 0..runs.max(1) {
        let sessions = labs
            .iter()
            .map(|l| Down::new(l, scratch))
            .collect::<Result<Vec<_>, _>>()?;
        let t = Instant::now();
        for s in &sessions {
            s.0.up(&UpOptions::default()).map_err(Box::new)?;
        }
        lab_times.push(ms(t.elapsed()));
        drop(sessions);
        settle();

        let scripts: Vec<IpBatch> = labs.iter().map(ip_batch).collect();
        let guards = labs
            .iter()
            .map(|l| Down::new(l, scratch))
            .collect::<Result<Vec<_>, _>>()?;
        let t = Instant::now();
        for s in &scripts {
            s.run()?;
        }
        ip_times.push(ms(t.elapsed()));
        drop(guards);
        settle();
    }
    let lab_ms = median(&mut lab_times);
    let ip_batch_ms = median(&mut ip_times);
    Ok(Bringup {
        what: what.into(),
        namespaces,
        lab_ms,
        ip_batch_ms,
        ratio: if lab_ms > 0.0 {
            ip_batch_ms / lab_ms
        } else {
            0.0
        },
    })
}

/// The kernel frees deleted namespaces asynchronously (cleanup_net, under the rtnl lock): let it
/// finish before the next run so neither side pays for the other's teardown.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// The same configuration as iproute2 batch scripts: one `ip -batch` to add the namespaces, one
/// per namespace for links, addresses, rules, routes, endpoints and limits, and one `sysctl`
/// per host. The namespaces carry the lab's own names, so the lab's `down` removes them.
#[derive(Debug)]
pub struct IpBatch {
    /// Each batch: the command's argv and its stdin.
    pub steps: Vec<(Vec<String>, String)>,
}

impl IpBatch {
    fn run(&self) -> Result<(), Error> {
        let local = Local::new("bench");
        for (argv, stdin) in &self.steps {
            let mut cmd = Command::new(argv.clone());
            if !stdin.is_empty() {
                cmd = cmd.stdin(stdin.as_bytes().to_vec());
            }
            local.check(&cmd).map_err(Box::new)?;
        }
        Ok(())
    }
}

/// Write `lab`'s bring-up as `ip -batch` scripts. iproute2 6.1 cannot set the `laminar` flag;
/// the baseline adds those endpoints as `subflow` (the same netlink request otherwise).
pub fn ip_batch(lab: &Lab) -> IpBatch {
    let topo = provider_netns::topology(lab);
    let argv = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let mut steps = Vec::new();
    let mut add = String::new();
    for h in &lab.hosts {
        writeln!(add, "netns add {}", topo.host_ns(&h.name)).ok();
    }
    for n in &lab.networks {
        writeln!(add, "netns add {}", topo.segment_ns(&n.name)).ok();
    }
    steps.push((argv(&["ip", "-batch", "-"]), add));
    let mut per_ns: Vec<(String, String)> = lab
        .hosts
        .iter()
        .map(|h| (topo.host_ns(&h.name), "link set lo up\n".to_string()))
        .collect();
    for n in &lab.networks {
        let ns = topo.segment_ns(&n.name);
        let mut s = "link add br0 type bridge\nlink set br0 up\n".to_string();
        for (hi, h) in lab.hosts.iter().enumerate() {
            for (ii, i) in h.interfaces.iter().enumerate() {
                if i.attach == Attach::Network(n.name.clone()) {
                    writeln!(
                        s,
                        "link add p{hi}x{ii} type veth peer name {} netns {}",
                        i.name,
                        topo.host_ns(&h.name)
                    )
                    .ok();
                    writeln!(s, "link set p{hi}x{ii} master br0 up").ok();
                }
            }
        }
        per_ns.push((ns, s));
    }
    let mut creators = Vec::new();
    for l in &lab.links {
        let ns_a = topo.host_ns(&l.a.host);
        let line = format!(
            "link add {} type veth peer name {} netns {}\n",
            l.a.interface,
            l.b.interface,
            topo.host_ns(&l.b.host)
        );
        if let Some(entry) = per_ns.iter_mut().find(|(n, _)| *n == ns_a) {
            entry.1.push_str(&line);
        }
        creators.push(ns_a);
    }
    let mut sysctls = Vec::new();
    for h in &lab.hosts {
        let ns = topo.host_ns(&h.name);
        let entry = per_ns
            .iter_mut()
            .find(|(n, _)| *n == ns)
            .expect("every host has a batch");
        let mut ctl = argv(&["ip", "netns", "exec", &ns, "sysctl", "-q"]);
        for step in net::plan(&h.net()) {
            match &step {
                net::Step::Sysctl(s) => {
                    ctl.push("-w".into());
                    ctl.push(format!("{}={}", s.key, s.value));
                }
                net::Step::RtTable { .. } | net::Step::Qdisc { .. } => {}
                _ => {
                    let words = step.argv(net::TableNaming::Id).unwrap_or_default();
                    let line: Vec<String> = words
                        .into_iter()
                        .skip(1) // "ip"
                        .map(|w| if w == "laminar" { "subflow".into() } else { w })
                        .collect();
                    entry.1.push_str(&line.join(" "));
                    entry.1.push('\n');
                }
            }
        }
        if ctl.len() > 6 {
            sysctls.push((ctl, String::new()));
        }
    }
    // Namespaces that create interfaces (segments, the first end of each link) run first.
    per_ns.sort_by_key(|(n, _)| (!n.contains(".sw."), !creators.contains(n)));
    for (ns, script) in per_ns {
        steps.push((argv(&["ip", "-n", &ns, "-batch", "-"]), script));
    }
    // Sysctls need the interfaces (per-NIC keys); they go last.
    steps.extend(sysctls);
    IpBatch { steps }
}

/// The human report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let holds = |b: bool| if b { "holds" } else { "MISSED" };
    if !r.efficiency.is_empty() {
        writeln!(
            out,
            "aggregation efficiency = goodput / sum of link rates (tbf, both ends)"
        )
        .ok();
        writeln!(
            out,
            "  {:<18} {:>6} {:>10} {:>10} {:>9}",
            "config", "links", "goodput", "efficiency", "subflows"
        )
        .ok();
        for e in &r.efficiency {
            writeln!(
                out,
                "  {:<18} {:>6} {:>7.1} Mb {:>10.3} {:>9}",
                e.config,
                format!("3x{}", e.rate_mbit),
                e.goodput_mbit,
                e.efficiency,
                e.subflows
            )
            .ok();
        }
        for rate in r
            .efficiency
            .iter()
            .map(|e| e.rate_mbit)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let of = |c: &str| {
                r.efficiency
                    .iter()
                    .find(|e| e.rate_mbit == rate && e.config == c)
                    .map_or(0.0, |e| e.efficiency)
            };
            let b = of("built-in lab");
            writeln!(
                out,
                "  3x{rate}: built-in {b:.3} = {:.2}x plain TCP, {:.2}x the guide; target >= {TARGET_EFFICIENCY}: {}",
                b / of("plain TCP").max(1e-9),
                b / of("guide's settings").max(1e-9),
                holds(b >= TARGET_EFFICIENCY)
            )
            .ok();
        }
    }
    writeln!(
        out,
        "bring-up (up + apply) against the same configuration as `ip -batch` scripts"
    )
    .ok();
    for b in &r.bringup {
        writeln!(
            out,
            "  {}: lab {:.1} ms, ip -batch {:.1} ms: {:.1}x faster; target >= {TARGET_BRINGUP_RATIO}x: {}",
            b.what,
            b.lab_ms,
            b.ip_batch_ms,
            b.ratio,
            holds(b.ratio >= TARGET_BRINGUP_RATIO)
        )
        .ok();
    }
    if let Some(s) = &r.ssh {
        writeln!(
            out,
            "ssh: {} commands over one session {:.0} ms, as {} ssh processes {:.0} ms: {:.1}x faster; target >= {TARGET_SSH_RATIO}x: {}",
            s.commands,
            s.session_ms,
            s.commands,
            s.processes_ms,
            s.ratio,
            holds(s.ratio >= TARGET_SSH_RATIO)
        )
        .ok();
    }
    writeln!(
        out,
        "re-apply on an applied lab: {:.2} ms (median), {} changes; target < {TARGET_REAPPLY_MS} ms and 0 changes: {}",
        r.reapply_ms,
        r.reapply_changes,
        holds(r.reapply_ms < TARGET_REAPPLY_MS && r.reapply_changes == 0)
    )
    .ok();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_batch_script_of_the_builtin_lab() {
        let mut lab = Preset::Builtin.load().unwrap();
        lab.name = "x".into();
        let b = ip_batch(&lab);
        let argv: Vec<String> = b.steps.iter().map(|(a, _)| a.join(" ")).collect();
        assert_eq!(
            argv[..4],
            [
                "ip -batch -",
                "ip -n lab.x.sw.ue1-ue2_v1_2 -batch -",
                "ip -n lab.x.ue1 -batch -",
                "ip -n lab.x.ue2 -batch -",
            ]
        );
        assert!(
            b.steps[1]
                .1
                .contains("link add p0x1 type veth peer name enp0s8 netns lab.x.ue1")
        );
        let ue2 = &b.steps[3].1;
        assert!(ue2.contains("rule add from 10.1.1.5 table 200\n"), "{ue2}");
        assert!(
            ue2.contains("mptcp endpoint add 10.1.1.6 dev enp0s10 id 3 subflow\n"),
            "{ue2}"
        );
        assert!(
            b.steps[5]
                .0
                .contains(&"net.ipv4.conf.enp0s9.arp_ignore=1".to_string())
        );
    }

    #[test]
    fn pair_lab_is_valid_and_derived() {
        let l = pair_lab("p0").unwrap();
        assert_eq!(l.links.len(), 3);
        assert_eq!(l.host("c").unwrap().endpoints.len(), 3);
    }
}

/// `lab bench capture`: lab's decoder and analysis against tshark on one real capture, and
/// whether a capture keeps up with shaped paths.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureBench {
    /// Frames of the capture measured (the built-in lab unshaped, both hosts' path
    /// interfaces).
    pub frames: u64,
    /// lab: read, decode every MPTCP option, group, analyse (best of `runs`), seconds.
    pub lab_seconds: f64,
    /// tshark single pass with its default MPTCP analysis, printing the MPTCP fields (best
    /// of `runs`), seconds.
    pub tshark_seconds: f64,
    /// tshark's time over lab's.
    pub ratio: f64,
    /// The target: at least 20 times faster.
    pub target: f64,
    /// The rate of each of the 3 paths in the second capture, Mbit/s.
    pub shaped_mbit: u64,
    /// Frames of that capture.
    pub shaped_frames: u64,
    /// Frames the kernel dropped in it (the target: none).
    pub shaped_dropped: u64,
}

/// Capture the built-in lab unshaped for `seconds` (both hosts), time lab's decoder and
/// analysis against tshark on that file (`runs` times each, the best kept), then capture a
/// transfer over 3 paths shaped at `shaped_mbit` and count the kernel's drops.
pub fn capture(
    seconds: u64,
    runs: usize,
    shaped_mbit: u64,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<CaptureBench, Error> {
    let tag = std::process::id();
    let mut lab = Preset::Builtin
        .load()
        .map_err(|e| Error::Lab(e.to_string()))?;
    lab.name = format!("bench-{tag}-cap");
    let file = scratch.join("bench-capture.pcapng");
    progress(&format!("capture: built-in lab, unshaped, {seconds} s"));
    let up = Down::up(&lab, scratch)?;
    up.0.test(&TestOptions {
        seconds,
        capture: Some(file.clone()),
        ..Default::default()
    })
    .map_err(Box::new)?;
    drop(up);
    let bytes = std::fs::read(&file).map_err(|e| Error::Lab(format!("{}: {e}", file.display())))?;
    let runs = runs.max(1);
    progress(&format!("lab's decoder and analysis, {runs} runs"));
    let mut frames = 0;
    let mut best_lab = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let cap = decode::read(&bytes).map_err(|e| Error::Lab(e.to_string()))?;
        let conns = cap.connections();
        let reports = decode::analysis::analyze(
            &cap.packets,
            &conns,
            decode::analysis::Options::default(),
            |_| true,
        );
        best_lab = best_lab.min(t.elapsed().as_secs_f64());
        frames = cap.frames;
        std::hint::black_box(reports);
    }
    progress(&format!(
        "tshark (single pass, MPTCP analysis on), {runs} runs"
    ));
    let mut best_tshark = f64::MAX;
    let local = guest::Local::new("local");
    for _ in 0..runs {
        let t = Instant::now();
        let out = local
            .check(
                &guest::Command::new([
                    "tshark",
                    "-n",
                    "-r",
                    &file.display().to_string(),
                    "-o",
                    "mptcp.analyze_mptcp:TRUE",
                    "-T",
                    "fields",
                    "-e",
                    "mptcp.stream",
                    "-e",
                    "tcp.options.mptcp.subtype",
                    "-e",
                    "tcp.options.mptcp.rawdataseqno",
                    "-e",
                    "tcp.options.mptcp.rawdataack",
                    "-e",
                    "tcp.len",
                ])
                .timeout(Duration::from_secs(3600)),
            )
            .map_err(Box::new)?;
        best_tshark = best_tshark.min(t.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    progress(&format!("capture: 3x{shaped_mbit} Mbit/s, {seconds} s"));
    let mut shaped = lab.clone();
    shaped.name = format!("bench-{tag}-caps");
    shaped.shape_paths(shaped_mbit * 1_000_000);
    let shaped_file = scratch.join("bench-capture-shaped.pcapng");
    let up = Down::up(&shaped, scratch)?;
    let r =
        up.0.test(&TestOptions {
            seconds,
            capture: Some(shaped_file.clone()),
            ..Default::default()
        })
        .map_err(Box::new)?;
    drop(up);
    let summary = r
        .capture
        .ok_or_else(|| Error::Lab("the shaped test returned no capture".into()))?;
    let _ = std::fs::remove_file(&shaped_file);
    Ok(CaptureBench {
        frames,
        lab_seconds: best_lab,
        tshark_seconds: best_tshark,
        ratio: best_tshark / best_lab.max(1e-9),
        target: 20.0,
        shaped_mbit,
        shaped_frames: summary.frames,
        shaped_dropped: summary.dropped(),
    })
}

/// `lab bench capture`'s report.
pub fn render_capture(b: &CaptureBench) -> String {
    format!(
        "capture of the built-in lab, unshaped: {} frames\n  lab (read, decode, group, analyse)  {:>8.3} s\n  tshark (single pass, MPTCP analysis) {:>8.3} s\n  ratio {:.1}x: the target of {:.0}x {}\ncapture at 3x{} Mbit/s: {} frames, {} dropped by the kernel\n",
        b.frames,
        b.lab_seconds,
        b.tshark_seconds,
        b.ratio,
        b.target,
        if b.ratio >= b.target {
            "holds"
        } else {
            "does NOT hold"
        },
        b.shaped_mbit,
        b.shaped_frames,
        b.shaped_dropped
    )
}
