//! `lab test|demo|bench`: the traffic report, the demo and the benchmarks, printed.

use std::fmt::Write as _;

use lab::Preset;
use lab::traffic::{TestOptions, TestResult};

use crate::{EXIT_FINDINGS, Failure, print_out};

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Report(miette::miette!("{e}"))
}

pub(crate) fn json_out(v: &impl serde::Serialize) -> Result<(), Failure> {
    let mut s = serde_json::to_string_pretty(v).map_err(fail)?;
    s.push('\n');
    print_out(&s)
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

pub fn test(s: &lab::Session, opts: &TestOptions, json: bool) -> Result<(), Failure> {
    let r = with_progress(opts.seconds, || s.test(opts)).map_err(crate::ops::fail)?;
    // The lab's declared checks, judged against this transfer.
    let checks = if s.lab().checks.is_empty() {
        None
    } else {
        Some(s.check(Some(&r)).map_err(crate::ops::fail)?)
    };
    if json {
        // The test's own fields, and `checks` beside them when the lab declares any.
        let mut v = serde_json::to_value(&r).map_err(crate::ops::fail)?;
        if let (Some(c), Some(map)) = (&checks, v.as_object_mut()) {
            map.insert(
                "checks".into(),
                serde_json::to_value(c).map_err(crate::ops::fail)?,
            );
        }
        json_out(&v)?;
    } else {
        let mut out = render_test(&r);
        if let Some(c) = &checks {
            out.push_str(&render_checks(c));
        }
        print_out(&out)?;
    }
    let checks_failed = checks.as_ref().is_some_and(|c| c.exit_code() == 1);
    if r.verdict.pass && !checks_failed {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

/// `lab check`: the lab's checks against the last test (or a new one, with `run`), as text,
/// JSON or TAP; exit 0 all passed, 1 an error-level check failed, 2 no check ran, 3 only
/// warnings failed.
pub fn check(s: &lab::Session, run: Option<&TestOptions>, format: &str) -> Result<(), Failure> {
    let r = match run {
        Some(opts) => Some(with_progress(opts.seconds, || s.test(opts)).map_err(crate::ops::fail)?),
        None => None,
    };
    let report = s.check(r.as_ref()).map_err(crate::ops::fail)?;
    match format {
        "json" => json_out(&serde_json::json!({
            "lab": report.lab,
            "outcomes": report.outcomes,
            "exit": report.exit_code(),
        }))?,
        "tap" => print_out(&report.tap())?,
        _ => print_out(&render_checks(&report))?,
    }
    match report.exit_code() {
        0 => Ok(()),
        code => Err(Failure::Exit(u8::try_from(code).unwrap_or(1))),
    }
}

/// The checks as text: `[ok]`, `[FAIL]`, `[warn]` or `[skip]`, name and what was seen.
pub fn render_checks(c: &lab::checks::CheckReport) -> String {
    let mut out = format!("checks of `{}`:\n", c.lab);
    for o in &c.outcomes {
        let mark = match (o.pass, &o.skipped, o.level) {
            (true, _, _) => "ok",
            (false, Some(_), _) => "skip",
            (false, None, lab::checks::Level::Warning) => "warn",
            (false, None, lab::checks::Level::Error) => "FAIL",
        };
        out.push_str(&format!("  [{mark}] {}: {}\n", o.name, o.detail));
    }
    if c.outcomes.is_empty() {
        out.push_str("  none declared ([[checks]] in Lab.toml)\n");
    }
    out
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
    let mib = |m: &std::collections::BTreeMap<String, u64>| {
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
    out.push_str(&chart(&rep.interfaces));
    // Where each host's counter samples start on one clock, and how sure that is.
    let earliest = rep
        .interfaces
        .iter()
        .map(|i| i.start_ns)
        .filter(|s| *s > 0)
        .min();
    let mut seen_hosts: Vec<&str> = Vec::new();
    for i in &rep.interfaces {
        if seen_hosts.contains(&i.host.as_str()) {
            continue;
        }
        seen_hosts.push(&i.host);
        if let (Some(c), Some(e)) = (i.clock, earliest) {
            writeln!(
                out,
                "  clock       {}: {:+.3} ms from this machine's; its counters' seconds start {:.3} s after the first host's (within {:.3} ms)",
                i.host,
                c.offset_ns as f64 / 1e6,
                i.start_ns.saturating_sub(e) as f64 / 1e9,
                c.error_ns as f64 / 1e6
            )
            .ok();
        }
    }
    // Where the goodput's seconds start on the same clock.
    if rep.goodput_start_ns > 0
        && let Some(e) = earliest
    {
        let (sign, d) = if rep.goodput_start_ns >= e {
            ("after", rep.goodput_start_ns - e)
        } else {
            ("before", e - rep.goodput_start_ns)
        };
        writeln!(
            out,
            "  clock       goodput: its seconds start {:.3} s {sign} the first host's counters ({})",
            d as f64 / 1e9,
            if rep.goodput_start_error_ns == 0 {
                "the receiver's first byte, on this machine's clock".to_string()
            } else {
                format!(
                    "when lab launched the client; iperf3 starts within {:.3} ms of it, a command's round trip there",
                    rep.goodput_start_error_ns as f64 / 1e6
                )
            }
        )
        .ok();
    }
    // The path managers' events, counted per host and kind.
    let mut hosts: Vec<&str> = r.monitor.iter().map(|e| e.host.as_str()).collect();
    hosts.dedup();
    hosts.sort_unstable();
    hosts.dedup();
    for h in hosts {
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for e in r.monitor.iter().filter(|e| e.host == h) {
            match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((&e.kind, 1)),
            }
        }
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        writeln!(
            out,
            "  pm events   {h} (ip mptcp monitor): {}",
            list.join(", ")
        )
        .ok();
    }
    for e in &rep.events {
        writeln!(out, "  event       {e}").ok();
    }
    if !rep.events.is_empty() {
        // Goodput per second with the events on the same time line.
        writeln!(out, "  time line   second  Mbit/s  events").ok();
        let at = |e: &str| -> Option<usize> {
            e.split_once("s: ")
                .and_then(|(t, _)| t.parse::<f64>().ok())
                .map(|t| t as usize)
        };
        for (sec, bps) in rep.per_second_bps.iter().enumerate() {
            let here: Vec<&str> = rep
                .events
                .iter()
                .filter(|e| at(e) == Some(sec))
                .map(|e| e.split_once("s: ").map_or(e.as_str(), |(_, l)| l))
                .collect();
            writeln!(
                out,
                "              {sec:>6}  {:>6.1}  {}",
                bps / 1e6,
                here.join("; ")
            )
            .ok();
        }
    }
    if let Some(err) = &rep.error {
        writeln!(out, "  error       {err}").ok();
    }
    if let Some(c) = &r.capture {
        out.push_str(&render_capture(c));
    }
    if let Some(run) = &r.run {
        let names: Vec<String> = run
            .files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        writeln!(out, "run: {} ({})", run.dir.display(), names.join(", ")).ok();
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
    for (host, iface, why) in &r.expect.not_judged {
        writeln!(out, "  [--] {host} {iface}: not judged ({why})").ok();
    }
    out
}

pub fn demo(preset: Preset, rate: &str, opts: &TestOptions, json: bool) -> Result<(), Failure> {
    crate::ops::need_root("demo")?;
    let dir = std::env::temp_dir().join(format!("lab-demo-{}", std::process::id()));
    let quiet = json;
    let demo = lab::demo(preset, rate, opts, &dir, move |p| {
        if quiet {
            return;
        }
        match &p.event {
            lab::provider::Event::Step(s) => eprintln!("{s}"),
            lab::provider::Event::Note(n) => eprintln!("note: {n}"),
            _ => {}
        }
    });
    // The demo's state directory goes with it (its lab is down by now, also on failure).
    let _ = std::fs::remove_dir_all(&dir);
    let d = demo.map_err(crate::ops::fail)?;
    let r = &d.test;
    if json {
        json_out(&d.test)?;
    } else {
        let mut lines = String::new();
        for (_, u) in &d.up.providers {
            writeln!(
                lines,
                "up: {} hosts in {:.1} ms (lab `{}`, {} preset, every link {rate})",
                u.hosts.len(),
                u.elapsed_ms,
                d.up.lab,
                preset.name()
            )
            .ok();
        }
        for a in &d.up.applied {
            writeln!(
                lines,
                "apply: {} {} changes in {:.1} ms",
                a.host,
                a.changes.len(),
                a.elapsed_us as f64 / 1e3
            )
            .ok();
        }
        eprint!("{lines}");
        let mut out = render_test(r);
        if !r.verdict.pass {
            let findings = lab::doctor::check(&preset.load().map_err(crate::ops::fail)?);
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
        let removed: usize = d.destroyed.removed.iter().map(|(_, r)| r.len()).sum();
        eprintln!("down: removed {removed} namespaces");
    }
    if r.verdict.pass {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

pub fn bench(opts: &lab::bench::Options, json: bool) -> Result<(), Failure> {
    crate::ops::need_root("bench")?;
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

/// `lab scenarios`: the library, one line each.
pub fn scenarios_list(json: bool) -> Result<(), Failure> {
    let all = lab::scenarios::all();
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "selftest": s.selftest() }))
            .collect();
        return json_out(&rows);
    }
    let mut out = String::new();
    for s in &all {
        out.push_str(&format!("{:<36} {}\n", s.name, s.selftest()));
    }
    out.push_str(&format!(
        "{} scenarios of tools/testing/selftests/net/mptcp/mptcp_join.sh; `lab scenarios run NAME` or `--all`\n",
        all.len()
    ));
    print_out(&out)
}

/// `lab scenarios run`: each scenario up, tested, checked and down; exit 1 unless all passed.
pub fn scenarios_run(
    names: &[String],
    all: bool,
    seconds: u64,
    format: &str,
) -> Result<(), Failure> {
    crate::ops::need_root("scenarios run")?;
    let chosen: Vec<lab::scenarios::Scenario> = if all {
        lab::scenarios::all()
    } else {
        if names.is_empty() {
            return Err(Failure::Report(miette::miette!(
                help = "`lab scenarios` lists them",
                "name the scenarios to run, or give --all"
            )));
        }
        names
            .iter()
            .map(|n| {
                lab::scenarios::get(n).ok_or_else(|| {
                    let known: Vec<&str> = lab::scenarios::all().iter().map(|s| s.name).collect();
                    Failure::Report(miette::miette!(
                        help = format!("known: {}", known.join(", ")),
                        "no scenario `{n}`"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let dir = std::env::temp_dir().join("lab-scenarios");
    let opts = TestOptions {
        seconds,
        ..TestOptions::default()
    };
    let mut runs = Vec::new();
    let mut tap = format!("TAP version 13\n1..{}\n", chosen.len());
    for (n, s) in chosen.iter().enumerate() {
        if format == "text" {
            eprintln!("scenario {}: {}", s.name, s.selftest());
        }
        let run = lab::scenarios::run(*s, None, &dir, &opts, |_| {}).map_err(crate::ops::fail)?;
        let status = if run.pass() { "ok" } else { "not ok" };
        tap.push_str(&format!(
            "{status} {} - {} {}\n",
            n + 1,
            s.name,
            s.selftest()
        ));
        for o in run.checks.outcomes.iter().filter(|o| !o.pass) {
            tap.push_str(&format!("# {}: {}\n", o.name, o.detail));
        }
        for c in run.test.verdict.checks.iter().filter(|c| !c.pass) {
            tap.push_str(&format!("# verdict {}: {}\n", c.what, c.detail));
        }
        if format == "text" {
            let mut out = format!("{}: {}\n", s.name, if run.pass() { "PASS" } else { "FAIL" });
            out.push_str(&render_checks(&run.checks));
            for c in run.test.verdict.checks.iter().filter(|c| !c.pass) {
                out.push_str(&format!("  [FAIL] verdict {}: {}\n", c.what, c.detail));
            }
            print_out(&out)?;
        }
        runs.push(run);
    }
    match format {
        "json" => json_out(&runs)?,
        "tap" => print_out(&tap)?,
        _ => {}
    }
    if runs.iter().all(|r| r.pass()) {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}

/// A capture's file and counts.
pub fn render_capture(c: &lab::capture::Summary) -> String {
    let mut out = format!(
        "capture: {} ({} frames on {} interfaces, {} dropped by the kernel)\n",
        c.file.display(),
        c.frames,
        c.interfaces.len(),
        c.dropped()
    );
    for i in &c.interfaces {
        out.push_str(&format!(
            "  {:<16} {:>9} frames {:>6} dropped\n",
            i.name, i.frames, i.dropped
        ));
    }
    if !c.paths.is_empty() {
        out.push_str(
            "  packet level (MPTCP payload in the capture against the interface counters):\n",
        );
        for p in &c.paths {
            out.push_str(&format!(
                "  [{}] {:<16} {:>12} B of MPTCP payload, {:>5.1}% of its host's; counters {:>5.1}%\n",
                if p.agree { "ok" } else { "DISAGREE" },
                p.name,
                p.mptcp_payload,
                p.capture_share * 100.0,
                p.counter_share * 100.0
            ));
        }
    }
    if !c.counters.is_empty() {
        out.push_str(
            "  signalling (MPTCP options in the capture against the kernel's MIB counters):\n",
        );
        for k in &c.counters {
            out.push_str(&format!(
                "  [{}] {} {:<21} capture {:>4}, kernel {:>4}\n",
                if k.agree { "ok" } else { "DISAGREE" },
                k.host,
                k.counter,
                k.capture,
                k.mib
            ));
        }
    }
    for k in &c.clocks {
        out.push_str(&format!(
            "  {}: clock {:+.3} ms from this machine's; its frames moved by that (within {:.3} ms)\n",
            k.host,
            k.offset_ns as f64 / 1e6,
            k.error_ns as f64 / 1e6
        ));
    }
    out
}

/// A compact chart of each path's throughput, one column per second, every path on one scale
/// (the busiest path-second is the full block): what `ifstat` shows as numbers, at a glance.
pub fn chart(interfaces: &[measure::traffic::IfaceBytes]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = interfaces
        .iter()
        .flat_map(|i| i.per_second_bps.iter().copied())
        .fold(0.0f64, f64::max);
    if max <= 0.0 {
        return String::new();
    }
    let mut out = format!(
        "  chart       one column per second; █ = {:.1} Mbit/s, the busiest path-second\n",
        max / 1e6
    );
    for i in interfaces {
        let line: String = i
            .per_second_bps
            .iter()
            .map(|b| {
                if *b <= 0.0 {
                    ' '
                } else {
                    let k = ((b / max) * BLOCKS.len() as f64).ceil() as usize;
                    BLOCKS[k.clamp(1, BLOCKS.len()) - 1]
                }
            })
            .collect();
        out.push_str(&format!("    {:<4} {:<8} {line}\n", i.host, i.iface));
    }
    out
}

#[cfg(test)]
mod chart_tests {
    #[test]
    fn one_scale_for_every_path() {
        let i = |iface: &str, bps: &[f64]| measure::traffic::IfaceBytes {
            host: "ue1".into(),
            iface: iface.into(),
            tx_bytes: 0,
            rx_bytes: 0,
            per_second_bps: bps.to_vec(),
            start_ns: 0,
            clock: None,
        };
        let c = super::chart(&[
            i("enp0s8", &[100e6, 50e6, 0.0]),
            i("enp0s9", &[1e6, 100e6, 12.5e6]),
        ]);
        assert_eq!(
            c,
            "  chart       one column per second; █ = 100.0 Mbit/s, the busiest path-second\n    ue1  enp0s8   █▄ \n    ue1  enp0s9   ▁█▁\n"
        );
        assert_eq!(super::chart(&[i("enp0s8", &[0.0])]), "");
    }
}
