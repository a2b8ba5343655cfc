//! The host's plan as a readable POSIX shell script, in the guide's order.

use std::fmt::Write as _;

use crate::plan::{Phase, Step, TableNaming, plan};
use crate::shell;
use crate::spec::HostNet;

/// Where the routing-table names go.
pub const RT_TABLES: &str = "/etc/iproute2/rt_tables";

/// Printed above endpoints that use the laminar flag, which older systems reject.
fn laminar_note(host: &str) -> String {
    format!(
        "# `laminar` needs a kernel and an iproute2 that know the flag (Linux 6.18); with older\n\
         # ones set `join = \"subflow\"` under [hosts.{host}.mptcp] in Lab.toml and render again."
    )
}

/// Render `host` as a script. `title` is the first comment line (e.g. the lab and host).
pub fn render(host: &HostNet, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(out, "# {title}");
    let _ = writeln!(
        out,
        "# Run as root on {}. Rendered by lab: edit Lab.toml, not this file.",
        host.host
    );
    let _ = writeln!(out, "set -e");
    let mut phase: Option<Phase> = None;
    for step in plan(host) {
        if phase != Some(step.phase()) {
            phase = Some(step.phase());
            let _ = writeln!(out, "\n# {}", step.phase().title());
            if step.phase() == Phase::Endpoints && host.endpoints.iter().any(|e| e.flags.laminar) {
                let _ = writeln!(out, "{}", laminar_note(&host.host));
            }
        }
        let line = match &step {
            Step::RtTable { id, name } => {
                let entry = shell::quote(&format!("{id} {name}"));
                format!("grep -qxF {entry} {RT_TABLES} || echo {entry} >> {RT_TABLES}")
            }
            other => match other.argv(TableNaming::Name) {
                Some(argv) => shell::join(&argv),
                None => continue,
            },
        };
        let _ = writeln!(out, "{line}");
    }
    out
}
