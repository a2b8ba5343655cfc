//! `lab report`: runs (`run.json` and the charts a captured `lab test` or `lab demo` writes) as
//! one Markdown file or one self-contained HTML file (no CDN, images inline): each run's
//! verdict, its paths by the interface counters, its subflows by the capture, the MPTCP
//! signals on its time line and its charts; several runs side by side, with a chart of their
//! goodput over time together (the guide's settings against the built-in lab, cubic against
//! bbr).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::{Error, TestResult};

/// One run directory, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its directory.
    pub dir: PathBuf,
    /// The test's result.
    pub test: TestResult,
    /// The capture's analysis (`run.json`'s `analysis`), as written.
    pub analysis: Value,
    /// Whose interfaces the analysis counts.
    pub vantage: String,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Report(format!("{}: {e}", path.display()))
}

/// Read a run directory's `run.json` (format `lab-run`, version 1).
///
/// ```no_run
/// let run = lab::report::load("runs/builtin".as_ref()).unwrap();
/// println!("{}: {}", run.test.lab, if run.test.verdict.pass { "PASS" } else { "FAIL" });
/// ```
pub fn load(dir: &Path) -> Result<Run, Error> {
    let path = dir.join("run.json");
    let text = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| file_err(&path, e))?;
    if v["format"] != "lab-run" {
        return Err(file_err(&path, "not a lab run (format is not `lab-run`)"));
    }
    let version = v["version"].as_u64().unwrap_or(0);
    if version != u64::from(crate::capture::RUN_FORMAT_VERSION) {
        return Err(file_err(
            &path,
            format!(
                "run format version {version}; this lab reads version {}",
                crate::capture::RUN_FORMAT_VERSION
            ),
        ));
    }
    let test: TestResult =
        serde_json::from_value(v["test"].clone()).map_err(|e| file_err(&path, e))?;
    Ok(Run {
        dir: dir.to_path_buf(),
        test,
        analysis: v["analysis"].clone(),
        vantage: v["vantage"].as_str().unwrap_or("").to_string(),
    })
}

/// How charts appear in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images<'a> {
    /// Markdown: links relative to the directory the report is written to.
    Links(&'a Path),
    /// HTML: the PNG bytes inline (`data:` URIs), so the file stands alone.
    Inline,
}

fn mbit(bps: f64) -> String {
    format!("{:.1}", bps / 1e6)
}

/// A path relative to `base` where one is a prefix, else absolute.
fn relative(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    p.strip_prefix(&b)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// The report of `runs` as Markdown (images per `images`), with `comparison` (a chart of
/// every run's goodput over time, PNG bytes and where it was written) when there are several.
pub fn markdown(runs: &[Run], images: Images<'_>, comparison: Option<(&Path, &[u8])>) -> String {
    let mut md = String::new();
    let img = |alt: &str, path: &Path, bytes: Option<&[u8]>| -> String {
        match images {
            Images::Links(base) => format!("![{alt}]({})\n", relative(path, base)),
            Images::Inline => {
                let data = bytes
                    .map(<[u8]>::to_vec)
                    .or_else(|| std::fs::read(path).ok())
                    .unwrap_or_default();
                format!(
                    "<img alt=\"{alt}\" src=\"data:image/png;base64,{}\">\n",
                    base64::engine::general_purpose::STANDARD.encode(data)
                )
            }
        }
    };
    writeln!(md, "# lab report\n").ok();
    if runs.len() > 1 {
        writeln!(md, "## Runs side by side\n").ok();
        writeln!(
            md,
            "| run | lab | verdict | goodput Mbit/s | efficiency | subflows (seen / expected) | share of each path (server's counters) |"
        )
        .ok();
        writeln!(md, "|---|---|---|---|---|---|---|").ok();
        for (i, r) in runs.iter().enumerate() {
            let t = &r.test;
            let host_total: u64 = t
                .report
                .interfaces
                .iter()
                .filter(|n| n.host == t.server)
                .map(measure::traffic::IfaceBytes::bytes)
                .sum();
            let shares: Vec<String> = t
                .report
                .interfaces
                .iter()
                .filter(|n| n.host == t.server)
                .map(|n| {
                    let share = if host_total == 0 {
                        0.0
                    } else {
                        n.bytes() as f64 / host_total as f64 * 100.0
                    };
                    format!("{} {share:.0}%", n.iface)
                })
                .collect();
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} / {} | {} |",
                i + 1,
                t.lab,
                if t.verdict.pass { "PASS" } else { "FAIL" },
                mbit(t.report.goodput_bps),
                t.verdict
                    .efficiency
                    .map_or_else(|| "-".to_string(), |e| format!("{e:.3}")),
                t.report
                    .subflows_max
                    .map_or(t.report.subflows_mib, u64::from),
                t.expect.subflows,
                shares.join(", ")
            )
            .ok();
        }
        if let Some((path, bytes)) = comparison {
            md.push('\n');
            md.push_str(&img("goodput of every run", path, Some(bytes)));
        }
        md.push('\n');
    }
    for (i, r) in runs.iter().enumerate() {
        let t = &r.test;
        writeln!(
            md,
            "## Run {}: lab `{}`, {}\n\n{} ({})\n",
            i + 1,
            t.lab,
            if t.verdict.pass { "PASS" } else { "FAIL" },
            r.dir.display(),
            if r.vantage.is_empty() {
                "no capture".to_string()
            } else {
                format!("capture analysed from {}", r.vantage)
            }
        )
        .ok();
        writeln!(
            md,
            "MPTCP from {} to {} ({}), {:.1} s, goodput {} Mbit/s{}.\n",
            t.client,
            t.server,
            t.dst,
            t.report.seconds,
            mbit(t.report.goodput_bps),
            t.verdict
                .efficiency
                .map_or(String::new(), |e| format!(", {e:.3} of the shaped rate"))
        )
        .ok();
        writeln!(md, "### Verdict\n").ok();
        for c in &t.verdict.checks {
            writeln!(
                md,
                "- {} {}: {}",
                if c.pass { "[ok]" } else { "[FAIL]" },
                c.what,
                c.detail
            )
            .ok();
        }
        writeln!(md, "\n### Paths (interface counters)\n").ok();
        writeln!(md, "| host | interface | MB (tx+rx) | Mbit/s per second |").ok();
        writeln!(md, "|---|---|---|---|").ok();
        for n in &t.report.interfaces {
            let per: Vec<String> = n
                .per_second_bps
                .iter()
                .map(|b| format!("{:.0}", b / 1e6))
                .collect();
            writeln!(
                md,
                "| {} | {} | {:.1} | {} |",
                n.host,
                n.iface,
                n.bytes() as f64 / 1e6,
                per.join(" ")
            )
            .ok();
        }
        clocks(&mut md, &t.report);
        if let Some(conns) = r.analysis.as_array()
            && !conns.is_empty()
        {
            writeln!(md, "\n### Subflows (capture)\n").ok();
            writeln!(
                md,
                "| subflow | joined at s | MB client to server | share | TCP retransmissions | reinjected MB | median RTT ms |"
            )
            .ok();
            writeln!(md, "|---|---|---|---|---|---|---|").ok();
            for c in conns {
                for s in c["subflows"].as_array().into_iter().flatten() {
                    let up = &s["up"];
                    let mut rtt: Vec<f64> = up["rtt"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p[1].as_f64())
                        .collect();
                    rtt.sort_by(f64::total_cmp);
                    let median = rtt
                        .get(rtt.len() / 2)
                        .map_or_else(|| "-".to_string(), |m| format!("{:.2}", m * 1e3));
                    writeln!(
                        md,
                        "| {} -> {}{}{} | {:.3} | {:.1} | {:.0}% | {} | {:.2} | {} |",
                        s["client"].as_str().unwrap_or("?"),
                        s["server"].as_str().unwrap_or("?"),
                        if s["join"] == true { "" } else { " (initial)" },
                        if s["backup"] == true { " (backup)" } else { "" },
                        s["syn_at"].as_f64().unwrap_or(0.0),
                        up["bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
                        s["up_share"].as_f64().unwrap_or(0.0) * 100.0,
                        up["retransmissions"].as_u64().unwrap_or(0),
                        up["reinjected_bytes"].as_u64().unwrap_or(0) as f64 / 1e6,
                        median
                    )
                    .ok();
                }
                let ro = &c["reordering_up"];
                let mut delays: Vec<f64> = ro["delays"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect();
                delays.sort_by(f64::total_cmp);
                writeln!(
                    md,
                    "\nData-level reordering at the server: {} of {} mappings arrived ahead of a gap{}.",
                    ro["delayed"].as_u64().unwrap_or(0),
                    ro["mappings"].as_u64().unwrap_or(0),
                    if delays.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; they waited {:.3} ms at the median, {:.3} ms at most",
                            delays[delays.len() / 2] * 1e3,
                            delays[delays.len() - 1] * 1e3
                        )
                    }
                )
                .ok();
                // The capture's signals and the path managers' events, on one time line.
                let start = c["start_ns"].as_u64().unwrap_or(0);
                let mut line: Vec<(f64, String)> = c["signals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|sig| {
                        (
                            sig["at"].as_f64().unwrap_or(0.0),
                            format!(
                                "capture, frame {}: {} from {}",
                                sig["frame"].as_u64().unwrap_or(0),
                                sig["what"].as_str().unwrap_or("?"),
                                sig["from"].as_str().unwrap_or("?")
                            ),
                        )
                    })
                    .collect();
                for e in &t.monitor {
                    line.push((
                        (e.ts_ns as f64 - start as f64) / 1e9,
                        format!("{} path manager: {} {}", e.host, e.kind, e.text),
                    ));
                }
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !line.is_empty() {
                    writeln!(
                        md,
                        "\nTime line (capture signals and `ip mptcp monitor` events, seconds from the first SYN):\n"
                    )
                    .ok();
                    for (at, what) in line.iter().take(60) {
                        writeln!(md, "- {at:.3} s: {what}").ok();
                    }
                    if line.len() > 60 {
                        writeln!(md, "- ... {} more", line.len() - 60).ok();
                    }
                }
            }
        }
        md.push('\n');
        for (stem, alt) in [
            ("throughput", "throughput per subflow, stacked"),
            ("cumulative", "bytes per subflow, cumulative"),
            ("interfaces", "throughput per interface"),
            ("dsn", "data sequence numbers per subflow"),
            ("rtt", "RTT per subflow"),
            ("delays-cdf", "CDF of reordering and join delays"),
            ("events", "events strip"),
        ] {
            let png = r.dir.join(format!("{stem}.png"));
            if png.is_file() {
                md.push_str(&img(alt, &png, None));
            }
        }
        md.push('\n');
    }
    md
}

/// The chart of every run's goodput per second, one line each.
pub fn comparison_chart(runs: &[Run]) -> plot::Chart {
    plot::Chart {
        title: "goodput per second, every run".into(),
        x_label: "seconds".into(),
        y_label: "Mbit/s".into(),
        kind: plot::Kind::Lines,
        series: runs
            .iter()
            .enumerate()
            .map(|(i, r)| plot::Series {
                name: format!("{}: {}", i + 1, r.test.lab),
                points: crate::capture::per_second_points(&r.test.report.per_second_bps, 0.0),
            })
            .collect(),
    }
}

/// Markdown to a small, self-contained HTML page: headings, lists, tables, paragraphs, inline
/// code and the `<img>` lines [`markdown`] wrote inline. Everything else is escaped.
pub fn html(md: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let inline = |s: &str| {
        let mut out = String::new();
        for (i, part) in esc(s).split('`').enumerate() {
            if i % 2 == 1 {
                write!(out, "<code>{part}</code>").ok();
            } else {
                out.push_str(part);
            }
        }
        out
    };
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lab report</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}th{background:#eee}img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3}</style>\n</head><body>\n",
    );
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let close = |out: &mut String, in_table: &mut bool, in_list: &mut bool| {
            if *in_table {
                out.push_str("</table>\n");
                *in_table = false;
            }
            if *in_list {
                out.push_str("</ul>\n");
                *in_list = false;
            }
        };
        if line.starts_with("<img ") {
            close(&mut out, &mut in_table, &mut in_list);
            out.push_str(line);
            out.push('\n');
        } else if let Some(h) = line.strip_prefix("### ") {
            close(&mut out, &mut in_table, &mut in_list);
            writeln!(out, "<h3>{}</h3>", inline(h)).ok();
        } else if let Some(h) = line.strip_prefix("## ") {
            close(&mut out, &mut in_table, &mut in_list);
            writeln!(out, "<h2>{}</h2>", inline(h)).ok();
        } else if let Some(h) = line.strip_prefix("# ") {
            close(&mut out, &mut in_table, &mut in_list);
            writeln!(out, "<h1>{}</h1>", inline(h)).ok();
        } else if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                close(&mut out, &mut in_table, &mut in_list);
                out.push_str("<table>\n");
                in_table = true;
            }
            out.push_str("<tr>");
            for c in cells {
                write!(out, "<{tag}>{}</{tag}>", inline(c)).ok();
            }
            out.push_str("</tr>\n");
        } else if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                close(&mut out, &mut in_table, &mut in_list);
                out.push_str("<ul>\n");
                in_list = true;
            }
            writeln!(out, "<li>{}</li>", inline(item)).ok();
        } else if line.trim().is_empty() {
            close(&mut out, &mut in_table, &mut in_list);
        } else {
            close(&mut out, &mut in_table, &mut in_list);
            writeln!(out, "<p>{}</p>", inline(line)).ok();
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    if in_list {
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// A chart as PNG bytes (the report's comparison chart).
///
/// ```
/// let c = plot::Chart { title: "t".into(), x_label: "x".into(), y_label: "y".into(), kind: plot::Kind::Lines, series: vec![] };
/// assert_eq!(&lab::plot_png(&c).unwrap()[1..4], b"PNG");
/// ```
pub fn plot_png(chart: &plot::Chart) -> Result<Vec<u8>, Error> {
    plot::png(chart, 1000, 500).map_err(|e| Error::Plot(e.to_string()))
}

/// Where each series of a run starts on this machine's clock, and how sure that is: each host
/// with a clock of its own (its offset and the offset's uncertainty), the goodput's start, and
/// the remaining alignment error between the series (the largest of those uncertainties).
fn clocks(md: &mut String, rep: &measure::Report) {
    let starts: Vec<u64> = rep
        .interfaces
        .iter()
        .map(|i| i.start_ns)
        .chain(Some(rep.goodput_start_ns))
        .filter(|s| *s > 0)
        .collect();
    let Some(origin) = starts.iter().min().copied() else {
        return;
    };
    writeln!(md, "\n### One clock\n").ok();
    writeln!(md, "| series | starts at s | uncertainty ms | how |").ok();
    writeln!(md, "|---|---|---|---|").ok();
    let mut worst: u64 = 0;
    let mut seen: Vec<&str> = Vec::new();
    for i in &rep.interfaces {
        if seen.contains(&i.host.as_str()) || i.start_ns == 0 {
            continue;
        }
        seen.push(&i.host);
        let (err, how) = match i.clock {
            Some(c) => (
                c.error_ns,
                format!(
                    "its own clock, {:+.3} ms from this machine's (best of five round trips)",
                    c.offset_ns as f64 / 1e6
                ),
            ),
            None => (0, "this machine's clock".to_string()),
        };
        worst = worst.max(err);
        writeln!(
            md,
            "| {} counters | {:.3} | {:.3} | {how} |",
            i.host,
            i.start_ns.saturating_sub(origin) as f64 / 1e9,
            err as f64 / 1e6
        )
        .ok();
    }
    if rep.goodput_start_ns > 0 {
        worst = worst.max(rep.goodput_start_error_ns);
        writeln!(
            md,
            "| goodput | {:.3} | {:.3} | {} |",
            rep.goodput_start_ns.saturating_sub(origin) as f64 / 1e9,
            rep.goodput_start_error_ns as f64 / 1e6,
            if rep.goodput_start_error_ns == 0 {
                "the receiver's first byte, on this machine's clock"
            } else {
                "when lab launched the client (iperf3 starts at most a command's round trip later)"
            }
        )
        .ok();
    }
    writeln!(
        md,
        "\nRemaining alignment error between these series: {:.3} ms.",
        worst as f64 / 1e6
    )
    .ok();
}
