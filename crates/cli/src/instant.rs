//! `lab up|down|status|net apply|test|link|demo` on namespace hosts: argument handling and
//! printing only; the work is `lab::instant`'s.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use lab::instant::{self as inst, TestOptions, TestResult};
use lab::{Lab, Preset};

use crate::{EXIT_FINDINGS, Failure, print_out};

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Report(miette::miette!("{e}"))
}

pub(crate) fn json_out(v: &impl serde::Serialize) -> Result<(), Failure> {
    let mut s = serde_json::to_string_pretty(v).map_err(fail)?;
    s.push('\n');
    print_out(&s)
}

/// Namespace labs need root; say so before anything fails halfway.
fn need_root(what: &str) -> Result<(), Failure> {
    if nix_euid_is_root() {
        Ok(())
    } else {
        Err(Failure::Report(miette::miette!(
            help = "run it as root, e.g. `sudo lab ...`",
            "`lab {what}` creates network namespaces, which needs root"
        )))
    }
}

fn nix_euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn up(lab: &Lab, dir: &Path, apply_plan: bool) -> Result<(), Failure> {
    need_root("up")?;
    let (r, applied) = if apply_plan {
        inst::up_and_apply(lab, dir).map_err(fail)?
    } else {
        (inst::up(lab, dir).map_err(fail)?, Vec::new())
    };
    let mut out = if r.adopted {
        format!(
            "lab `{}` is already up ({} namespaces)\n",
            lab.name, r.namespaces
        )
    } else {
        format!(
            "lab `{}` up: {} namespaces, {} interfaces in {}\n",
            lab.name,
            r.namespaces,
            r.interfaces,
            ms(r.elapsed)
        )
    };
    for h in applied {
        writeln!(
            out,
            "  {}: {} changes in {}",
            h.host,
            h.changes.len(),
            ms(h.elapsed)
        )
        .ok();
    }
    let first = lab.hosts.first().map_or("HOST", |h| h.name.as_str());
    writeln!(
        out,
        "next: `lab status`, `lab test`, `ip netns exec {} ip -br addr`, `lab down`",
        inst::topology(lab).host_ns(first)
    )
    .ok();
    print_out(&out)
}

pub fn down(lab: &Lab, dir: &Path) -> Result<(), Failure> {
    need_root("down")?;
    let removed = inst::down(lab, dir).map_err(fail)?;
    if removed.is_empty() {
        print_out(&format!("lab `{}`: nothing to remove\n", lab.name))
    } else {
        print_out(&format!(
            "lab `{}` down: removed {}\n",
            lab.name,
            removed.join(", ")
        ))
    }
}

pub fn status(lab: &Lab, json: bool) -> Result<(), Failure> {
    let s = inst::status(lab).map_err(fail)?;
    if json {
        return json_out(&s);
    }
    let mut out = format!("lab `{}`: {}\n", s.lab, s.state);
    for h in &s.hosts {
        if !h.present {
            writeln!(out, "\n{} (namespace {}): not present", h.name, h.namespace).ok();
            continue;
        }
        let pending = h.pending_changes.unwrap_or(0);
        writeln!(
            out,
            "\n{} (namespace {}): {}",
            h.name,
            h.namespace,
            if pending == 0 {
                "applied".to_string()
            } else {
                format!("{pending} changes pending (`lab net apply`)")
            }
        )
        .ok();
        for i in &h.interfaces {
            writeln!(
                out,
                "  {:<10} {:<4} {:<17} mtu {:<5} {:<18} {}",
                i.name,
                if i.up { "UP" } else { "DOWN" },
                i.mac.as_deref().unwrap_or("-"),
                i.mtu,
                i.addresses.join(" "),
                i.qdisc.as_deref().unwrap_or("")
            )
            .ok();
        }
        for e in &h.endpoints {
            writeln!(
                out,
                "  endpoint id {} {} {} {}",
                e.id,
                e.address,
                e.dev
                    .as_deref()
                    .map_or(String::new(), |d| format!("dev {d}")),
                e.flags.words().join(" ")
            )
            .ok();
        }
        if let Some(l) = h.limits {
            writeln!(
                out,
                "  limits subflow {} add_addr_accepted {}",
                l.subflows, l.add_addr_accepted
            )
            .ok();
        }
    }
    for seg in &s.segments {
        writeln!(
            out,
            "\nsegment {} (namespace {}): {}",
            seg.name,
            seg.namespace,
            if seg.present {
                "present"
            } else {
                "not present"
            }
        )
        .ok();
    }
    if !s.stray.is_empty() {
        writeln!(
            out,
            "\nstray namespaces of this lab (removed by `lab down`): {}",
            s.stray.join(", ")
        )
        .ok();
    }
    print_out(&out)
}

pub fn apply(
    lab: &Lab,
    dir: &Path,
    host: Option<&str>,
    dry_run: bool,
    persist: bool,
    json: bool,
) -> Result<(), Failure> {
    if let Some(h) = host
        && lab.host(h).is_none()
    {
        return Err(fail(format!("no host `{h}` in lab `{}`", lab.name)));
    }
    let chosen = |h: &&lab::Host| host.is_none_or(|n| n == h.name);
    let has_netns = lab
        .hosts
        .iter()
        .filter(chosen)
        .any(|h| h.provider == lab::Provider::Netns);
    // (host, changes, elapsed, files, warnings), in Lab.toml order.
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut lines = String::new();
    let mut total = 0;
    let mut report = |name: &str,
                      changes: &[net::Change],
                      elapsed: Option<std::time::Duration>,
                      files: &[String],
                      warnings: &[String]| {
        total += changes.len();
        let took = elapsed.map_or(String::new(), |e| format!(" in {}", ms(e)));
        writeln!(
            lines,
            "{name}: {} {}{took}",
            changes.len(),
            if dry_run { "changes needed" } else { "changes" },
        )
        .ok();
        for c in changes {
            writeln!(
                lines,
                "  {}",
                net::shell::join(&c.argv().unwrap_or_default())
            )
            .ok();
        }
        for f in files {
            writeln!(
                lines,
                "  {} {f}",
                if dry_run { "would write" } else { "wrote" }
            )
            .ok();
        }
        for w in warnings {
            writeln!(lines, "  warning: {w}").ok();
        }
        rows.push(serde_json::json!({
            "host": name, "changes": changes, "files": files, "warnings": warnings,
            "elapsed_us": elapsed.map(|e| e.as_micros()),
        }));
    };
    let mut ns_applied = if has_netns {
        need_root("net apply")?;
        inst::apply(lab, host, dry_run).map_err(fail)?
    } else {
        Vec::new()
    };
    for h in lab.hosts.iter().filter(chosen) {
        match h.provider {
            lab::Provider::Netns => {
                if let Some(k) = ns_applied.iter().position(|a| a.host == h.name) {
                    let a = ns_applied.remove(k);
                    report(&a.host, &a.changes, Some(a.elapsed), &[], &[]);
                }
            }
            lab::Provider::Ssh | lab::Provider::Virtualbox | lab::Provider::Qemu => {
                let exec = lab::hosts::exec_for(lab, dir, &h.name).map_err(fail)?;
                let persist = persist.then(|| lab::remote::Persist {
                    root: "/".into(),
                    netplan_apply: true,
                });
                let start = std::time::Instant::now();
                let a = lab::remote::apply(exec.as_ref(), &h.net(), dry_run, persist.as_ref())
                    .map_err(|e| ssh_failure(e.to_string(), h, dir))?;
                report(
                    &a.host,
                    &a.changes,
                    Some(start.elapsed()),
                    &a.files,
                    &a.warnings,
                );
            }
        }
    }
    if json {
        return json_out(&rows);
    }
    writeln!(
        lines,
        "{total} changes{}",
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    )
    .ok();
    print_out(&lines)
}

/// An SSH failure with the fix where there is one (an existing host's key is not known yet).
fn ssh_failure(message: String, h: &lab::Host, dir: &Path) -> Failure {
    if message.contains("not in")
        && message.contains("known_hosts")
        && let Some(t) = &h.ssh
    {
        return Failure::Report(miette::miette!(
            help = format!(
                "check the key with the machine's owner, then: ssh-keyscan -p {} {} >> {}",
                t.port,
                t.address,
                lab::hosts::known_hosts(dir).display()
            ),
            "{message}"
        ));
    }
    fail(message)
}

/// `lab exec HOST -- CMD`: output as it comes, the remote exit status as ours.
pub fn exec(lab: &Lab, dir: &Path, host: &str, command: &[String]) -> Result<(), Failure> {
    let h = lab
        .host(host)
        .ok_or_else(|| fail(format!("no host `{host}` in lab `{}`", lab.name)))?;
    if h.provider == lab::Provider::Netns {
        need_root("exec")?;
    }
    let target = lab::hosts::exec_for(lab, dir, host).map_err(fail)?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let status = target
        .run_streaming(&guest::Command::new(command.to_vec()), &mut |s, line| {
            let _ = match s {
                guest::Stream::Stdout => writeln!(out, "{line}"),
                guest::Stream::Stderr => writeln!(err, "{line}"),
            };
        })
        .map_err(|e| ssh_failure(e.to_string(), h, dir))?;
    let _ = out.flush();
    match status {
        guest::Status::Code(0) => Ok(()),
        guest::Status::Code(c) => Err(Failure::Exit(u8::try_from(c).unwrap_or(1))),
        guest::Status::Signal(s) => Err(Failure::Exit(u8::try_from(128 + s).unwrap_or(1))),
    }
}

/// `lab ssh HOST [-- CMD]`: replaces this process with OpenSSH's client, set up from the lab.
pub fn ssh(lab: &Lab, dir: &Path, host: &str, command: &[String]) -> Result<(), Failure> {
    let argv = lab::hosts::interactive_argv(lab, dir, host, command).map_err(fail)?;
    let e = guest::replace_process(&argv);
    Err(fail(format!(
        "cannot run `{}`: {e}",
        net::shell::join(&argv)
    )))
}

pub fn link(lab: &Lab, host: &str, iface: &str, up: bool) -> Result<(), Failure> {
    need_root("link")?;
    let restored = inst::set_link(lab, host, iface, up).map_err(fail)?;
    let mut out = format!("{host} {iface} {}\n", if up { "up" } else { "down" });
    for c in &restored {
        writeln!(
            out,
            "  restored: {}",
            net::shell::join(&c.argv().unwrap_or_default())
        )
        .ok();
    }
    print_out(&out)
}

/// Run `f` (a transfer of `seconds`) with a progress bar on an interactive stderr.
fn with_progress<T: Send>(seconds: u64, f: impl FnOnce() -> T + Send) -> T {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() || seconds == 0 {
        return f();
    }
    let bar = indicatif::ProgressBar::new(seconds * 10);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} MPTCP traffic {bar:30} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = start.elapsed();
                bar.set_position((t.as_millis() / 100) as u64);
                bar.set_message(format!(
                    "{:.0}/{seconds} s",
                    t.as_secs_f64().min(seconds as f64)
                ));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

pub fn test(lab: &Lab, dir: &Path, opts: &TestOptions, json: bool) -> Result<(), Failure> {
    if lab.hosts.iter().any(|h| h.provider == lab::Provider::Netns) {
        need_root("test")?;
    }
    let r = with_progress(opts.seconds, || inst::test(lab, dir, opts)).map_err(fail)?;
    if json {
        json_out(&r)?;
    } else {
        print_out(&render_test(&r))?;
    }
    if r.verdict.pass {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

fn mbit(bps: f64) -> String {
    format!("{:.1}", bps / 1e6)
}

/// The human report of a test.
pub fn render_test(r: &TestResult) -> String {
    let rep = &r.report;
    let mut out = format!(
        "MPTCP from {} to {} ({}), {:.1} s, {}, {}\n",
        r.client,
        r.server,
        r.dst,
        rep.seconds,
        rep.congestion
            .as_deref()
            .unwrap_or("host's congestion control"),
        match rep.tool {
            measure::Tool::Builtin => "built-in sender (IPPROTO_MPTCP)",
            measure::Tool::Iperf3 => "iperf3",
            measure::Tool::Tcp => "plain TCP (baseline)",
        }
    );
    if let Some(cmd) = &rep.command {
        writeln!(out, "  command     {}", net::shell::join(cmd)).ok();
    }
    let eff = match (r.verdict.efficiency, r.expect.rate_sum_bps) {
        (Some(e), Some(sum)) => format!(" = {e:.3} of {} Mbit/s shaped", mbit(sum as f64)),
        _ => String::new(),
    };
    writeln!(out, "  goodput     {} Mbit/s{eff}", mbit(rep.goodput_bps)).ok();
    writeln!(
        out,
        "  per second  {}",
        rep.per_second_bps
            .iter()
            .map(|b| format!("{:.0}", b / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    )
    .ok();
    let seen = rep.subflows_max.map_or_else(
        || format!("{} (server MIB)", rep.subflows_mib),
        |s| s.to_string(),
    );
    writeln!(
        out,
        "  subflows    {seen} established, {} expected",
        r.expect.subflows
    )
    .ok();
    writeln!(out, "              {}", r.expect.subflows_why).ok();
    let mib = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "  MIB         {}: {}", r.server, mib(&rep.server_mib)).ok();
    writeln!(out, "              {}: {}", r.client, mib(&rep.client_mib)).ok();
    writeln!(out, "  interfaces  (tx+rx, Mbit/s per second, like ifstat)").ok();
    for i in &rep.interfaces {
        writeln!(
            out,
            "    {:<4} {:<8} {:>7.1} MB  {}",
            i.host,
            i.iface,
            i.bytes() as f64 / 1e6,
            i.per_second_bps
                .iter()
                .map(|b| format!("{:>3.0}", b / 1e6))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .ok();
    }
    for e in &rep.events {
        writeln!(out, "  event       {e}").ok();
    }
    if let Some(err) = &rep.error {
        writeln!(out, "  error       {err}").ok();
    }
    writeln!(
        out,
        "verdict: {}",
        if r.verdict.pass { "PASS" } else { "FAIL" }
    )
    .ok();
    for c in &r.verdict.checks {
        writeln!(
            out,
            "  [{}] {}: {}",
            if c.pass { "ok" } else { "FAIL" },
            c.what,
            c.detail
        )
        .ok();
    }
    out
}

pub fn demo(preset: Preset, rate: &str, opts: &TestOptions, json: bool) -> Result<(), Failure> {
    need_root("demo")?;
    // The demo's promise is stricter than `lab test`'s: every NIC at least a quarter of its
    // fair share, and goodput at least 0.90 of the links' rate.
    let opts = &TestOptions {
        min_share: 0.25,
        min_efficiency: Some(0.90),
        ..opts.clone()
    };
    let rate_bps = lab::units::rate_bps(rate)
        .ok_or_else(|| fail(format!("`{rate}` is not a rate (e.g. 50mbit)")))?;
    let mut lab = preset.load().map_err(fail)?;
    // A fixed name: a demo interrupted by Ctrl-C is cleaned up by the next one.
    lab.name = match preset {
        Preset::Builtin => "demo".into(),
        Preset::Guide => "demo-guide".into(),
    };
    lab.shape_paths(rate_bps);
    let dir = std::env::temp_dir().join("lab-demo");
    let say = |s: String| {
        if !json {
            eprintln!("{s}");
        }
    };
    let result = (|| -> Result<TestResult, Failure> {
        let (r, applied) = inst::up_and_apply(&lab, &dir).map_err(fail)?;
        say(format!(
            "up: {} namespaces, {} interfaces in {} (lab `{}`, {} preset, every link {rate})",
            r.namespaces,
            r.interfaces,
            ms(r.elapsed),
            lab.name,
            preset.name()
        ));
        for h in applied {
            say(format!(
                "apply: {} {} changes in {}",
                h.host,
                h.changes.len(),
                ms(h.elapsed)
            ));
        }
        say(format!("test: {} s of MPTCP traffic...", opts.seconds));
        with_progress(opts.seconds, || inst::test(&lab, &dir, opts)).map_err(fail)
    })();
    let removed = inst::down(&lab, &dir).map_err(fail);
    let r = result?;
    let removed = removed?;
    if json {
        json_out(&r)?;
    } else {
        let mut out = render_test(&r);
        if !r.verdict.pass {
            let findings = lab::doctor::check(&lab);
            if !findings.is_empty() {
                writeln!(out, "why (lab doctor):").ok();
                for f in findings {
                    writeln!(
                        out,
                        "  {} [{}] {}\n    fix: {}",
                        f.host, f.code, f.message, f.fix
                    )
                    .ok();
                }
            }
        }
        print_out(&out)?;
        say(format!("down: removed {} namespaces", removed.len()));
    }
    if r.verdict.pass {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

pub fn bench(opts: &lab::bench::Options, json: bool) -> Result<(), Failure> {
    need_root("bench")?;
    let scratch = std::env::temp_dir().join(format!("lab-bench-{}", std::process::id()));
    let report = lab::bench::run(opts, &scratch, &mut |s| eprintln!("bench: {s}")).map_err(fail);
    let _ = std::fs::remove_dir_all(&scratch);
    let report = report?;
    if json {
        json_out(&report)
    } else {
        print_out(&lab::bench::render(&report))
    }
}
