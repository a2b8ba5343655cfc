//! `lab guide`: the session's guide ([`lab::Session::guide`]) rendered: the kernel, the test,
//! and every step's time.

use std::fmt::Write as _;

use lab::Session;
use lab::guide::{GuideOptions, GuideReport};

use crate::{Failure, instant, ops, print_out};

/// Run the guide; print what it did (also when a step failed), exit 1 unless it passed.
pub fn run(s: &Session, opts: &GuideOptions, json: bool) -> Result<(), Failure> {
    let (report, error) = match s.guide(opts) {
        Ok(r) => (r, None),
        Err(lab::Error::Guide { report, source }) => (*report, Some(source)),
        Err(e) => return Err(ops::fail(e)),
    };
    if json {
        instant::json_out(&serde_json::json!({
            "report": report,
            "pass": report.pass(),
            "error": error.as_ref().map(ToString::to_string),
        }))?;
    } else {
        print_out(&render(&report))?;
    }
    match error {
        Some(e) => Err(ops::fail(e)),
        None if report.pass() => Ok(()),
        None => Err(Failure::Exit(1)),
    }
}

/// The kernel built, the test's report, then a table of the steps and their times.
pub fn render(r: &GuideReport) -> String {
    let mut out = String::new();
    if let Some(m) = &r.kernel {
        writeln!(
            out,
            "kernel {} ({}, {} objects{}) in {:.0} s",
            m.release,
            m.profile,
            m.objects,
            if m.ccache { ", ccache" } else { "" },
            m.seconds
        )
        .ok();
    }
    if let Some(t) = &r.test {
        out.push_str(&instant::render_test(t));
    }
    writeln!(
        out,
        "\nlab guide on `{}` ({}):",
        r.lab,
        r.providers.join(", ")
    )
    .ok();
    for s in &r.steps {
        writeln!(out, "  {:<44} {:>7.1} s  {}", s.name, s.seconds, s.result).ok();
    }
    writeln!(out, "  {:<44} {:>7.1} s", "total", r.total_seconds()).ok();
    out
}
