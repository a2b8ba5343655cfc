//! The lab lifecycle commands (`up`, `down`, `halt`, `snapshot`, `status`, `net apply`, `exec`,
//! `ssh`, `link`, `provision`) on a [`lab::Session`]: arguments in, the session's reports out
//! as text or JSON. No provider is named here: the session asks the providers.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use lab::provider::{Event, SnapshotOp};
use lab::{ApplyOptions, Session};

use crate::instant::json_out;
use crate::{EXIT_FINDINGS, Failure, print_out};

/// A library error as a report.
pub fn fail<E: std::fmt::Display + 'static>(e: E) -> Failure {
    let code = status_of(&e);
    let report = miette::miette!("{e}");
    if code == crate::EXIT_INVALID {
        Failure::Report(report)
    } else {
        Failure::Coded(code, report)
    }
}

/// The exit status of an error: a host that is not up, and one that does not answer, have
/// their own (README's table); everything else that cannot be done as asked is 2.
fn status_of(e: &dyn std::any::Any) -> u8 {
    use lab::provider::Error as P;
    let p = e
        .downcast_ref::<lab::Error>()
        .and_then(|l| match l {
            lab::Error::Provider(p) => Some(p),
            lab::Error::Test(lab::TestError::Provider(p)) => Some(p),
            _ => None,
        })
        .or_else(|| e.downcast_ref::<P>());
    match p {
        Some(P::NotUp { .. }) => crate::EXIT_NOT_UP,
        Some(P::Unreachable { .. }) => crate::EXIT_UNREACHABLE,
        _ => crate::EXIT_INVALID,
    }
}

/// An error on `host`: an existing machine's unknown key gets its fix.
fn fail_on<E: std::fmt::Display + 'static>(s: &Session, host: &str, e: E) -> Failure {
    let message = e.to_string();
    if message.contains("not in")
        && message.contains("known_hosts")
        && let Some(t) = s.lab().host(host).and_then(|h| h.ssh.as_ref())
    {
        return Failure::Report(miette::miette!(
            help = format!(
                "check the key with the machine's owner, then: ssh-keyscan -p {} {} >> {}",
                t.port,
                t.address,
                s.state().known_hosts().display()
            ),
            "{message}"
        ));
    }
    fail(e)
}

/// An operation some providers could not do: what was done, then each provider's reason;
/// exit 1.
fn incomplete(e: lab::Error, json: bool) -> Failure {
    match e {
        lab::Error::Incomplete { done, errors } => {
            if json {
                let _ = json_out(
                    &serde_json::json!({ "done": done, "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>() }),
                );
            } else {
                for e in &errors {
                    eprintln!("error: {e}");
                }
            }
            Failure::Exit(EXIT_FINDINGS)
        }
        e => fail(e),
    }
}

/// Namespace labs need root; say so before anything fails halfway.
pub fn need_root(what: &str) -> Result<(), Failure> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if root {
        Ok(())
    } else {
        Err(Failure::Report(miette::miette!(
            help = "run it as root, e.g. `sudo lab ...`",
            "`lab {what}` works on network namespaces, which needs root"
        )))
    }
}

/// Progress on stderr: steps and notes, and each external call when `calls`.
pub fn progress(s: &mut Session, calls: bool) {
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    s.on_progress(move |p| match &p.event {
        Event::Step(m) => bar.suspend(|| eprintln!("{m}")),
        Event::Note(n) => bar.suspend(|| eprintln!("note: {n}")),
        Event::Call(c) if calls => bar.suspend(|| eprintln!("  {c}")),
        Event::Call(_) => {}
        Event::Count { what, done, total } => {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_style(
                indicatif::ProgressStyle::with_template("  {bar:30} {pos}/~{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(what.clone());
            bar.set_length(total.unwrap_or(0).max(*done));
            bar.set_position(*done);
        }
        Event::Download { done, total } => {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            if let Some(t) = total {
                bar.set_length(*t);
            }
            bar.set_position(*done);
            if total.is_some_and(|t| *done >= t) {
                bar.finish_and_clear();
            }
        }
        _ => {}
    });
}

/// Root first where namespaces are involved, with the fix.
fn preflight(s: &Session) -> Result<(), Failure> {
    let missing = s.preflight();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    let mut help = Vec::new();
    for (p, m) in &missing {
        for x in m {
            writeln!(
                text,
                "provider \"{p}\" cannot run here: {} is missing",
                x.what
            )
            .ok();
            help.push(x.fix.clone());
        }
    }
    Err(Failure::Report(miette::miette!(
        help = help.join("; "),
        "{}",
        text.trim_end()
    )))
}

pub fn up(s: &Session, opts: &lab::UpOptions, dry_run: bool, json: bool) -> Result<(), Failure> {
    if dry_run {
        let plan = s.plan_up().map_err(fail)?;
        if json {
            return json_out(&plan);
        }
        let mut out = String::new();
        for (p, actions) in &plan {
            writeln!(
                out,
                "# lab `{}` on provider \"{p}\": what `lab up` would do, in order",
                s.lab().name
            )
            .ok();
            for a in actions {
                match &a.argv {
                    Some(argv) => writeln!(out, "{}", net::shell::join(argv)).ok(),
                    None => writeln!(out, "{}", a.what).ok(),
                };
            }
        }
        return print_out(&out);
    }
    preflight(s)?;
    let r = s.up(opts).map_err(fail)?;
    if json {
        return json_out(&r);
    }
    let mut out = String::new();
    for (p, u) in &r.providers {
        let created = u.hosts.iter().filter(|h| h.created).count();
        writeln!(
            out,
            "lab `{}` on {p}: {} hosts up in {:.1} ms ({created} created)",
            r.lab,
            u.hosts.len(),
            u.elapsed_ms
        )
        .ok();
        for h in &u.hosts {
            let vm = h.ssh.is_some() && !h.machine.contains('@');
            writeln!(
                out,
                "{}: {}{} {}{}{}{}",
                h.host,
                if vm { "VM " } else { "" },
                h.machine,
                if h.created { "created" } else { "adopted" },
                h.ssh
                    .as_deref()
                    .map_or(String::new(), |a| format!(", SSH on {a}")),
                h.boot_seconds
                    .map_or(String::new(), |b| format!(", reachable after {b:.1} s")),
                h.kernel
                    .as_deref()
                    .map_or(String::new(), |k| format!(", kernel {k}")),
            )
            .ok();
        }
    }
    for a in &r.applied {
        writeln!(
            out,
            "  {}: {} changes in {:.1} ms",
            a.host,
            a.changes.len(),
            a.elapsed_us as f64 / 1e3
        )
        .ok();
    }
    writeln!(
        out,
        "next: `lab status`, `lab test`, `lab exec HOST -- CMD`, `lab down`"
    )
    .ok();
    print_out(&out)
}

pub fn down(s: &Session, json: bool) -> Result<(), Failure> {
    let r = s.destroy().map_err(|e| incomplete(e, json))?;
    if json {
        return json_out(&r);
    }
    let mut out = String::new();
    for (p, removed) in &r.removed {
        if removed.is_empty() {
            writeln!(out, "lab `{}` on {p}: nothing to remove", r.lab).ok();
        } else {
            writeln!(
                out,
                "lab `{}` down on {p}: removed {}",
                r.lab,
                removed.join(", ")
            )
            .ok();
        }
    }
    print_out(&out)
}

pub fn halt(s: &Session, grace: Duration, json: bool) -> Result<(), Failure> {
    let r = s.halt(grace).map_err(|e| incomplete(e, json))?;
    if json {
        return json_out(&r);
    }
    let mut out = String::new();
    for (p, halted) in &r.halted {
        if halted.is_empty() {
            writeln!(out, "lab `{}` on {p}: no machine was running", r.lab).ok();
        } else {
            writeln!(out, "halted {}", halted.join(", ")).ok();
        }
    }
    print_out(&out)
}

pub fn snapshot(
    s: &Session,
    restore: bool,
    name: &str,
    boot_timeout: Duration,
    json: bool,
) -> Result<(), Failure> {
    let op = if restore {
        SnapshotOp::Restore(name.to_string())
    } else {
        SnapshotOp::Save(name.to_string())
    };
    let r = s
        .snapshot(&op, boot_timeout)
        .map_err(|e| incomplete(e, json))?;
    if json {
        return json_out(&r);
    }
    let machines: Vec<String> = r.machines.iter().flat_map(|(_, m)| m.clone()).collect();
    print_out(&if restore {
        format!(
            "restored snapshot `{name}` of {}; every VM is reachable again\n",
            machines.join(", ")
        )
    } else {
        format!("saved snapshot `{name}` of {}\n", machines.join(", "))
    })
}

pub fn status(s: &Session, json: bool) -> Result<(), Failure> {
    let st = s.status().map_err(fail)?;
    if json {
        return json_out(&st);
    }
    let mut out = format!("lab `{}`: {}\n", st.lab, st.state);
    for h in &st.hosts {
        let m = &h.machine;
        let mut line = format!(
            "\n{} ({} {}): {}",
            h.name,
            m.provider,
            m.machine.as_deref().unwrap_or("-"),
            m.state
        );
        if let Some(a) = &m.ssh {
            write!(line, ", ssh {a}").ok();
        }
        if let Some(k) = &m.kernel {
            write!(line, ", kernel {k}").ok();
        }
        if let Some(d) = &m.detail {
            write!(line, " ({d})").ok();
        }
        match h.pending_changes {
            Some(0) => line.push_str(", applied"),
            Some(n) => write!(line, ", {n} changes pending (`lab net apply`)")
                .ok()
                .unwrap_or(()),
            None => {}
        }
        writeln!(out, "{line}").ok();
        if let Some(e) = &h.network_error {
            writeln!(out, "  network not read: {e}").ok();
        }
        for i in &h.interfaces {
            writeln!(
                out,
                "  {:<10} {:<4} mtu {:<5} {:<17} {:<18} {}",
                i.name,
                if i.up { "UP" } else { "DOWN" },
                i.mtu,
                i.mac.as_deref().unwrap_or("-"),
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
    print_out(&out)
}

/// `lab status --all [--prune]`: every lab of this machine.
pub fn status_all(prune: bool, json: bool) -> Result<(), Failure> {
    let pruned = if prune {
        lab::provider::index::prune().map_err(fail)?
    } else {
        Vec::new()
    };
    let labs = lab::provider::index::list();
    if json {
        return json_out(&serde_json::json!({ "labs": labs, "pruned": pruned }));
    }
    let mut out = String::new();
    if labs.is_empty() {
        out.push_str("no lab on this machine (`lab up` records each)\n");
    }
    for l in &labs {
        writeln!(
            out,
            "{:<16} {:<20} {:<18} {}{}",
            l.name,
            l.providers.join(","),
            l.state,
            l.dir.display(),
            if l.dir_exists {
                ""
            } else {
                "  (directory gone: `lab status --all --prune`)"
            }
        )
        .ok();
    }
    for l in &pruned {
        writeln!(
            out,
            "pruned {} ({}): its directory is gone",
            l.name,
            l.dir.display()
        )
        .ok();
    }
    print_out(&out)
}

pub fn apply(
    s: &Session,
    host: Option<&str>,
    dry_run: bool,
    persist: bool,
    json: bool,
) -> Result<(), Failure> {
    let applied = s
        .apply(
            host,
            &ApplyOptions {
                dry_run,
                persist: persist.then(|| "/".into()),
            },
        )
        .map_err(fail)?;
    // A dry run with changes pending exits EXIT_PENDING, as `terraform plan
    // -detailed-exitcode` does, so that scripts can ask "is the lab as planned?".
    let pending = dry_run && applied.iter().any(|a| !a.changes.is_empty());
    let done = |r: Result<(), Failure>| match r {
        Ok(()) if pending => Err(Failure::Exit(crate::EXIT_PENDING)),
        other => other,
    };
    if json {
        return done(json_out(&applied));
    }
    let mut lines = String::new();
    let mut total = 0;
    for a in &applied {
        total += a.changes.len();
        writeln!(
            lines,
            "{}: {} {} in {:.1} ms",
            a.host,
            a.changes.len(),
            if dry_run { "changes needed" } else { "changes" },
            a.elapsed_us as f64 / 1e3
        )
        .ok();
        for c in &a.changes {
            writeln!(
                lines,
                "  {}",
                net::shell::join(&c.argv().unwrap_or_default())
            )
            .ok();
        }
        for f in &a.files {
            writeln!(
                lines,
                "  {} {f}",
                if dry_run { "would write" } else { "wrote" }
            )
            .ok();
        }
        for w in &a.warnings {
            writeln!(lines, "  warning: {w}").ok();
        }
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
    done(print_out(&lines))
}

/// `lab exec HOST -- CMD`: output as it comes, the remote exit status as ours.
pub fn exec(s: &Session, host: &str, command: &[String]) -> Result<(), Failure> {
    let target = s.exec(host).map_err(|e| fail_on(s, host, e))?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let status = target
        .run_streaming(&guest::Command::new(command.to_vec()), &mut |st, line| {
            let _ = match st {
                guest::Stream::Stdout => writeln!(out, "{line}"),
                guest::Stream::Stderr => writeln!(err, "{line}"),
            };
        })
        .map_err(|e| fail_on(s, host, e))?;
    let _ = out.flush();
    match status {
        guest::Status::Code(0) => Ok(()),
        guest::Status::Code(c) => Err(Failure::Exit(u8::try_from(c).unwrap_or(1))),
        guest::Status::Signal(sig) => Err(Failure::Exit(u8::try_from(128 + sig).unwrap_or(1))),
    }
}

/// `lab ssh HOST [-- CMD]`: replaces this process with OpenSSH's client, set up from the lab.
pub fn ssh(s: &Session, host: &str, command: &[String]) -> Result<(), Failure> {
    let argv = s.interactive_argv(host, command).map_err(fail)?;
    let e = guest::replace_process(&argv);
    Err(fail(format!(
        "cannot run `{}`: {e}",
        net::shell::join(&argv)
    )))
}

pub fn link(s: &Session, host: &str, iface: &str, up: bool) -> Result<(), Failure> {
    let restored = s.set_link(host, iface, up).map_err(fail)?;
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

pub fn provision(s: &Session, host: Option<&str>, check: bool) -> Result<(), Failure> {
    let done = s.provision(host, check).map_err(fail)?;
    let mut out = String::new();
    let mut missing = false;
    for p in &done {
        writeln!(
            out,
            "{}: present {}{}{}",
            p.host,
            if p.present.is_empty() {
                "-".into()
            } else {
                p.present.join(", ")
            },
            if p.installed.is_empty() {
                String::new()
            } else {
                format!("; installed {}", p.installed.join(", "))
            },
            if p.missing.is_empty() {
                String::new()
            } else {
                format!("; MISSING {}", p.missing.join(", "))
            }
        )
        .ok();
        for w in &p.warnings {
            writeln!(out, "  warning: {w}").ok();
        }
        missing |= !p.missing.is_empty();
    }
    if done.is_empty() {
        return Err(fail(format!(
            "lab `{}`: no host is reached over SSH (namespace hosts use this machine's tools)",
            s.lab().name
        )));
    }
    print_out(&out)?;
    if missing {
        return Err(Failure::Exit(EXIT_FINDINGS));
    }
    Ok(())
}
