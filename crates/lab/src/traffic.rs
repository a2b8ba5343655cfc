//! The traffic test every provider's hosts share: [`test_with`] runs one transfer between two
//! places (namespaces on this machine, or hosts behind the command seam), takes client links
//! down on schedule and restores them, and judges the result against what the plan expects.
//! [`Session::test`](crate::Session::test) opens the places; this module does not know which
//! provider made them.

use std::time::Duration;

use guest::Exec as _;

use netns::Host as NsHost;
use serde::Serialize;

use model::Lab;
use model::events::{Action, Event};

/// Options of `lab test`.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Seconds of traffic.
    pub seconds: u64,
    /// The traffic generator (see `tool_auto`).
    pub tool: measure::Tool,
    /// Let the session pick the tool: the built-in sender where both ends are namespaces on
    /// this machine, iperf3 otherwise. False when the tool was asked for.
    pub tool_auto: bool,
    /// Client interfaces to take down during the transfer: (interface, seconds after the start).
    pub fail: Vec<(String, f64)>,
    /// More events during the transfer (besides the lab's own `[test] events`, which the
    /// session adds).
    pub events: Vec<Event>,
    /// Each path must carry at least this fraction of its fair share (0.10 for `lab test`).
    pub min_share: f64,
    /// Goodput must reach this fraction of the shaped links' rate (`lab demo`: 0.90).
    pub min_efficiency: Option<f64>,
    /// TCP congestion control of the sender (`None`: the namespace's default). Default: cubic,
    /// Linux's default and the guide's VMs'; BBR, this machine's default, leaves tbf-shaped
    /// links partly idle (0.87-0.89 of the rate against 0.94 with cubic, `lab bench`).
    pub congestion: Option<String>,
    /// Capture the transfer on both hosts' path interfaces into this pcapng file
    /// ([`crate::capture`]).
    pub capture: Option<std::path::PathBuf>,
    /// Write the run (run.json with the hosts' metadata, the charts) into this directory
    /// (the capture's directory when there is a capture and no other is given).
    pub run_dir: Option<std::path::PathBuf>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            tool: measure::Tool::Builtin,
            tool_auto: true,
            fail: Vec::new(),
            events: Vec::new(),
            min_share: 0.10,
            min_efficiency: None,
            congestion: Some("cubic".into()),
            capture: None,
            run_dir: None,
        }
    }
}

/// A transfer's report with the plan's expectations and the verdict.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TestResult {
    /// The lab's name.
    pub lab: String,
    /// The host with role `server`.
    pub server: String,
    /// The host with role `client`.
    pub client: String,
    /// The server's address the client connected to.
    pub dst: std::net::IpAddr,
    /// What the plan says a healthy transfer shows.
    pub expect: measure::Expect,
    /// What the transfer showed.
    pub report: measure::Report,
    /// Each expectation checked, and whether all held.
    pub verdict: measure::Verdict,
    /// The capture of the transfer, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::Summary>,
    /// The run's directory and the files written there, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<crate::capture::RunFiles>,
    /// The path managers' events on both hosts during the transfer (`ip mptcp monitor`), on
    /// this machine's clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitor: Vec<capture::monitor::Event>,
}

/// Errors of `lab test`.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// A link to take down is not one of the client's path interfaces.
    #[error("host `{host}` has no interface `{iface}` that carries MPTCP paths")]
    NoInterface {
        /// The client.
        host: String,
        /// The interface asked for.
        iface: String,
    },
    /// The transfer or its observation failed.
    #[error(transparent)]
    Measure(#[from] measure::Error),
    /// The lab lacks a client and a server.
    #[error("the lab needs a host with role \"server\" and one with role \"client\"")]
    NoPair,
    /// The server has no address to connect to.
    #[error("host `{0}` has no statically addressed interface to connect to")]
    NoAddress(String),
    /// A host could not be reached.
    #[error(transparent)]
    Provider(#[from] provider::Error),
    /// A command on a host reached over SSH failed.
    #[error(transparent)]
    Remote(crate::remote::Error),
    /// An event names a host that is neither the test's server nor its client.
    #[error("event on host `{0}`: events happen on the test's server or client")]
    EventHost(String),
    /// The test as asked cannot be judged: a length out of range, a failure or an event
    /// after the transfer ends, a congestion control the sender's kernel does not have.
    #[error("{0}")]
    Invalid(String),
    /// An event names an endpoint the host does not have.
    #[error("host `{host}` has no MPTCP endpoint {address}")]
    NoEndpoint {
        /// The host.
        host: String,
        /// The address.
        address: std::net::IpAddr,
    },
}

/// The longest transfer lab runs: a day.
pub const MAX_SECONDS: u64 = 86_400;

/// The transfer's length in range, and every failure and event inside it (one at or after
/// the end would happen after the measurement, and the verdict would judge a plan that never
/// met it).
fn check_timing(lab: &Lab, opts: &TestOptions) -> Result<(), TestError> {
    if !(1..=MAX_SECONDS).contains(&opts.seconds) {
        return Err(TestError::Invalid(format!(
            "a transfer of {} s: lab measures 1 to {MAX_SECONDS} s",
            opts.seconds
        )));
    }
    let end_ms = opts.seconds * 1000;
    for (iface, at) in &opts.fail {
        if !at.is_finite() || *at < 0.0 || *at * 1000.0 >= end_ms as f64 {
            return Err(TestError::Invalid(format!(
                "--fail {iface}@{at}: the transfer ends at {} s; fail a link before that",
                opts.seconds
            )));
        }
    }
    for e in lab.events.iter().chain(&opts.events) {
        if e.at_ms >= end_ms {
            return Err(TestError::Invalid(format!(
                "event `{}` at {:.1} s: the transfer ends at {} s (make it longer with --seconds)",
                e.label(),
                e.at_ms as f64 / 1000.0,
                opts.seconds
            )));
        }
    }
    Ok(())
}

/// The sender's congestion control must be one its kernel has (loaded, or a module it can
/// load); MPTCP sockets otherwise take the name and keep the default.
fn check_congestion(cc: &str, ns: &netns::ns::Namespace) -> Result<(), TestError> {
    let wanted = cc.to_string();
    let found = ns
        .run(move || {
            let cc = wanted;
            let avail =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                    .unwrap_or_default();
            let mut names: Vec<String> = avail.split_whitespace().map(String::from).collect();
            let loaded = names.contains(&cc);
            // A module the kernel loads on first use (tcp_bbr.ko, ...).
            let module = std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .and_then(|r| {
                    std::fs::read_to_string(format!("/lib/modules/{}/modules.dep", r.trim())).ok()
                })
                .is_some_and(|dep| {
                    let (plain, packed) = (format!("/tcp_{cc}.ko"), format!("/tcp_{cc}.ko."));
                    dep.lines()
                        .filter_map(|l| l.split(':').next())
                        .any(|m| m.ends_with(&plain) || m.contains(&packed))
                });
            names.sort();
            (loaded || module, names)
        })
        .map_err(|e| TestError::Invalid(format!("reading the congestion controls: {e}")))?;
    match found {
        (true, _) => Ok(()),
        (false, names) => Err(TestError::Invalid(format!(
            "congestion control `{}` is not in this kernel (available: {}; `host` keeps the default)",
            cc,
            names.join(", ")
        ))),
    }
}

/// A transfer between two places the caller opened (namespaces, or hosts behind the command
/// seam); the lab says which hosts are server and client and what the plan expects.
pub fn test_with(
    lab: &Lab,
    opts: &TestOptions,
    server_place: measure::Place<'_>,
    client_place: measure::Place<'_>,
) -> Result<TestResult, TestError> {
    let (server, client) = crate::expect::pair(lab).ok_or(TestError::NoPair)?;
    check_timing(lab, opts)?;
    if let (Some(cc), measure::Place::Netns(ns)) = (&opts.congestion, client_place) {
        check_congestion(cc, ns)?;
    }
    let dst = crate::expect::primary_address(server)
        .ok_or_else(|| TestError::NoAddress(server.name.clone()))?;
    for (iface, _) in &opts.fail {
        if client.interface(iface).is_none_or(|i| i.is_nat()) {
            return Err(TestError::NoInterface {
                host: client.name.clone(),
                iface: iface.clone(),
            });
        }
    }
    let names =
        |h: &crate::Host| -> Vec<String> { h.path_interfaces().map(|i| i.name.clone()).collect() };
    // What the kernel will do follows the plan as the applier could apply it: an iproute2
    // without the laminar flag gets `subflow` endpoints.
    let (es, ec) = (
        effective(server, server_place)?,
        effective(client, client_place)?,
    );
    let (subflows, mut subflows_why) = crate::expect::subflows(&es, &ec);
    for (planned, had) in [(server, &es), (client, &ec)] {
        if planned.endpoints != had.endpoints {
            subflows_why.push_str(&format!(
                "; {} holds its laminar endpoints as `subflow` (no laminar in its iproute2)",
                planned.name
            ));
        }
    }
    // The numbers the plan fixes, compared equal, unless a daemon adds endpoints as it goes.
    let fixed = crate::expect::counters(&es, &ec);
    // iperf3 ends its control connection with unread data, which MPTCP closes with
    // MP_FASTCLOSE and MP_RST (measured: MPRstTx on the server, one per subflow): with iperf3
    // those two are the tool's, not the plan's.
    let tool_resets = opts.tool == measure::Tool::Iperf3;
    let counters = fixed
        .as_ref()
        .map(|cs| {
            cs.iter()
                .filter(|c| !(tool_resets && matches!(c.counter, "MPRstTx" | "MPRstRx")))
                .map(|c| measure::ExpectCounter {
                    end: if c.host == server.name {
                        measure::End::Server
                    } else {
                        measure::End::Client
                    },
                    host: c.host.clone(),
                    counter: c.counter.to_string(),
                    equals: c.value,
                    or_more: c.or_more,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut paths = Vec::new();
    let mut not_judged = Vec::new();
    let mut idle = Vec::new();
    // A failure or an event may put a backup path to work: idle paths are judged only when
    // nothing happens to the connection but its plan.
    let undisturbed = opts.fail.is_empty() && opts.events.is_empty();
    for p in crate::expect::paths(&es, &ec) {
        let host = p.host;
        not_judged.extend(
            p.not_judged
                .into_iter()
                .map(|(i, why)| (host.clone(), i, why)),
        );
        for (i, why) in p.idle {
            if undisturbed {
                idle.push((host.clone(), i, why));
            } else {
                not_judged.push((host.clone(), i, format!("{why}; an event may use it")));
            }
        }
        paths.push((host, p.used));
    }
    let rates: Vec<Option<u64>> = client
        .path_interfaces()
        .map(|i| i.shaping.and_then(|s| s.rate_bps))
        .collect();
    let expect = measure::Expect {
        subflows,
        subflows_why,
        subflows_exact: fixed.is_ok() && opts.fail.is_empty() && opts.events.is_empty(),
        accepted: crate::expect::joins(&es, &ec).accepted,
        counters: if opts.fail.is_empty() && opts.events.is_empty() {
            counters
        } else {
            Vec::new()
        },
        paths,
        not_judged,
        idle,
        min_share: opts.min_share,
        rate_sum_bps: rates.iter().copied().sum::<Option<u64>>(),
        min_efficiency: opts.min_efficiency,
    };
    // The time line: `--fail` (a client link down) and the declared events.
    let mut timeline: Vec<Event> = opts
        .fail
        .iter()
        .map(|(iface, at)| Event {
            at_ms: (at * 1000.0) as u64,
            host: client.name.clone(),
            action: Action::LinkDown {
                iface: iface.clone(),
            },
        })
        .collect();
    timeline.extend(opts.events.iter().cloned());
    timeline.sort_by_key(|e| e.at_ms);
    let place_of = |host: &str| -> Result<(&crate::Host, measure::Place<'_>), TestError> {
        if host == server.name {
            Ok((server, server_place))
        } else if host == client.name {
            Ok((client, client_place))
        } else {
            Err(TestError::EventHost(host.to_string()))
        }
    };
    let mut events = Vec::new();
    for e in &timeline {
        let (h, place) = place_of(&e.host)?;
        let argv = event_argv(e, h, place)?;
        let host = h.name.clone();
        let netem = matches!(&e.action, Action::Shape { shaping, .. } if shaping.needs_netem());
        // What is missing, named: this machine's kernel, for one, has no netem.
        let explain = move |err: guest::Error| {
            if netem && crate::tc::netem_missing(&err) {
                "the netem qdisc (CONFIG_NET_SCH_NETEM) is missing in this kernel: delay and loss need it".to_string()
            } else {
                err.to_string()
            }
        };
        let action: Box<dyn FnOnce() -> Result<(), String> + Send + '_> = match place {
            measure::Place::Netns(ns) => {
                let ns = ns.name().to_string();
                Box::new(move || {
                    guest::Netns::new(host, ns)
                        .check(&guest::Command::new(argv))
                        .map(|_| ())
                        .map_err(explain)
                })
            }
            measure::Place::Remote { sample, .. } => Box::new(move || {
                sample
                    .check(&guest::Command::new(argv))
                    .map(|_| ())
                    .map_err(explain)
            }),
        };
        events.push(measure::Event {
            at: Duration::from_millis(e.at_ms),
            label: e.label(),
            action,
        });
    }
    let spec = measure::Spec {
        dst,
        duration: Duration::from_secs(opts.seconds),
        tool: opts.tool,
        congestion: opts.congestion.clone(),
    };
    let measured = measure::traffic::run(
        &spec,
        &measure::Side {
            host: &server.name,
            place: server_place,
            interfaces: names(server),
        },
        &measure::Side {
            host: &client.name,
            place: client_place,
            interfaces: names(client),
        },
        events,
    );
    // Whatever happened, every host an event touched is brought back to its plan: links up
    // (with the routes the kernel dropped), endpoints, limits and shaping as planned.
    let mut touched: Vec<&str> = timeline.iter().map(|e| e.host.as_str()).collect();
    touched.dedup();
    touched.sort_unstable();
    touched.dedup();
    for host in touched {
        let (h, place) = place_of(host)?;
        let downed: Vec<&str> = timeline
            .iter()
            .filter(|e| e.host == host)
            .filter_map(|e| match &e.action {
                Action::LinkDown { iface } => Some(iface.as_str()),
                _ => None,
            })
            .collect();
        match place {
            measure::Place::Netns(ns) => {
                let mut nh = NsHost::open(&h.name, ns.name())?;
                for iface in &downed {
                    nh.set_link(iface, true)?;
                }
                nh.converge(&h.net())?;
            }
            measure::Place::Remote { run, .. } => {
                for iface in &downed {
                    run.check(&guest::Command::new(net::plan::link_state_argv(
                        iface, true,
                    )))
                    .map_err(|e| TestError::Remote(crate::remote::Error::from(e)))?;
                }
                crate::remote::apply(run, &h.net(), false, None).map_err(TestError::Remote)?;
            }
        }
    }
    let mut report = measured?;
    if !timeline.is_empty() {
        report
            .events
            .push("after the test: every host an event touched is back to its plan".to_string());
    }
    let verdict = measure::judge(&report, &expect);
    Ok(TestResult {
        lab: lab.name.clone(),
        server: server.name.clone(),
        client: client.name.clone(),
        dst,
        expect,
        report,
        verdict,
        capture: None,
        run: None,
        monitor: Vec::new(),
    })
}

/// The command that makes `e` happen on `h` (endpoint ids read from the host first).
fn event_argv(
    e: &Event,
    h: &crate::Host,
    place: measure::Place<'_>,
) -> Result<Vec<String>, TestError> {
    let endpoint_id = |address: std::net::IpAddr| -> Result<u8, TestError> {
        let observed = match place {
            measure::Place::Netns(ns) => NsHost::open(&h.name, ns.name())?.observe(&h.net())?,
            measure::Place::Remote { sample, .. } => {
                crate::remote::observe(sample, &h.net()).map_err(TestError::Remote)?
            }
        };
        observed
            .endpoints
            .iter()
            .find(|x| x.address == address)
            .map(|x| x.id)
            .ok_or_else(|| TestError::NoEndpoint {
                host: h.name.clone(),
                address,
            })
    };
    Ok(match &e.action {
        Action::LinkDown { iface } => net::plan::link_state_argv(iface, false),
        Action::LinkUp { iface } => net::plan::link_state_argv(iface, true),
        Action::Shape { iface, shaping } => net::Step::Qdisc {
            dev: iface.clone(),
            shaping: *shaping,
        }
        .argv(net::plan::TableNaming::Id)
        .unwrap_or_default(),
        Action::EndpointRemove { address } => net::Change::DelEndpoint {
            id: endpoint_id(*address)?,
            address: *address,
        }
        .argv()
        .unwrap_or_default(),
        Action::EndpointAdd { endpoint } => net::Step::Endpoint(endpoint.clone())
            .argv(net::plan::TableNaming::Id)
            .unwrap_or_default(),
        Action::Backup { address, on } => {
            net::plan::endpoint_backup_argv(endpoint_id(*address)?, *on)
        }
        Action::Limits { limits } => net::Step::Limits(*limits)
            .argv(net::plan::TableNaming::Id)
            .unwrap_or_default(),
    })
}

/// `h` as the applier could apply it: the plan, except that a `laminar` endpoint the host
/// holds as `subflow` (an iproute2 before 6.18 cannot set laminar; the applier falls back
/// and says so) counts as `subflow`. Any other difference from the plan is drift, which the
/// verdict is there to catch, so the plan stands.
fn effective(h: &crate::Host, place: measure::Place<'_>) -> Result<crate::Host, TestError> {
    if !h.endpoints.iter().any(|e| e.flags.laminar) {
        return Ok(h.clone());
    }
    let plan = h.net();
    let observed = match place {
        measure::Place::Netns(ns) => NsHost::open(&h.name, ns.name())?.observe(&plan)?,
        measure::Place::Remote { sample, .. } => {
            crate::remote::observe(sample, &plan).map_err(TestError::Remote)?
        }
    };
    let mut e = h.clone();
    for ep in e.endpoints.iter_mut().filter(|ep| ep.flags.laminar) {
        if observed
            .endpoints
            .iter()
            .any(|x| x.address == ep.address && !x.flags.laminar && x.flags.subflow)
        {
            ep.flags.laminar = false;
            ep.flags.subflow = true;
        }
    }
    Ok(e)
}

#[cfg(test)]
mod timing_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The timing check never panics, and lets a transfer run exactly when its length is
        /// 1 s to a day and every failure falls inside it.
        #[test]
        fn timing_is_checked_for_any_numbers(
            seconds in any::<u64>(),
            at in any::<f64>(),
        ) {
            let lab = model::Preset::Builtin.load().unwrap();
            let opts = TestOptions {
                seconds,
                fail: vec![("enp0s9".into(), at)],
                ..Default::default()
            };
            let ok = check_timing(&lab, &opts).is_ok();
            let inside = at.is_finite() && at >= 0.0 && at * 1000.0 < (seconds as f64) * 1000.0;
            prop_assert_eq!(ok, (1..=MAX_SECONDS).contains(&seconds) && inside);
        }
    }
}
