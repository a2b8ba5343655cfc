//! The traffic test every provider's hosts share: [`test_with`] runs one transfer between two
//! places (namespaces on this machine, or hosts behind the command seam), takes client links
//! down on schedule and restores them, and judges the result against what the plan expects.
//! [`Session::test`](crate::Session::test) opens the places; this module does not know which
//! provider made them.

use std::time::Duration;

use netns::Host as NsHost;
use serde::Serialize;

use model::Lab;

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
    /// Each path must carry at least this fraction of its fair share (0.10 for `lab test`).
    pub min_share: f64,
    /// Goodput must reach this fraction of the shaped links' rate (`lab demo`: 0.90).
    pub min_efficiency: Option<f64>,
    /// TCP congestion control of the sender (`None`: the namespace's default). Default: cubic,
    /// Linux's default and the guide's VMs'; BBR, this machine's default, leaves tbf-shaped
    /// links partly idle (0.87-0.89 of the rate against 0.94 with cubic, `lab bench`).
    pub congestion: Option<String>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            seconds: 10,
            tool: measure::Tool::Builtin,
            tool_auto: true,
            fail: Vec::new(),
            min_share: 0.10,
            min_efficiency: None,
            congestion: Some("cubic".into()),
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
    pub dst: std::net::Ipv4Addr,
    /// What the plan says a healthy transfer shows.
    pub expect: measure::Expect,
    /// What the transfer showed.
    pub report: measure::Report,
    /// Each expectation checked, and whether all held.
    pub verdict: measure::Verdict,
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
    let dst = server
        .path_interfaces()
        .find_map(|i| i.address)
        .ok_or_else(|| TestError::NoAddress(server.name.clone()))?
        .addr();
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
    let (subflows, subflows_why) = crate::expect::subflows(server, client);
    // The numbers the plan fixes, compared equal, unless a daemon adds endpoints as it goes.
    let fixed = crate::expect::counters(server, client);
    let counters = fixed
        .as_ref()
        .map(|cs| {
            cs.iter()
                .map(|c| measure::ExpectCounter {
                    end: if c.host == server.name {
                        measure::End::Server
                    } else {
                        measure::End::Client
                    },
                    host: c.host.clone(),
                    counter: c.counter.to_string(),
                    equals: c.value,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut paths = Vec::new();
    let mut not_judged = Vec::new();
    for p in crate::expect::paths(server, client) {
        let host = p.host;
        not_judged.extend(
            p.not_judged
                .into_iter()
                .map(|(i, why)| (host.clone(), i, why)),
        );
        paths.push((host, p.used));
    }
    let rates: Vec<Option<u64>> = client
        .path_interfaces()
        .map(|i| i.shaping.and_then(|s| s.rate_bps))
        .collect();
    let expect = measure::Expect {
        subflows,
        subflows_why,
        subflows_exact: fixed.is_ok() && opts.fail.is_empty(),
        counters: if opts.fail.is_empty() {
            counters
        } else {
            Vec::new()
        },
        paths,
        not_judged,
        min_share: opts.min_share,
        rate_sum_bps: rates.iter().copied().sum::<Option<u64>>(),
        min_efficiency: opts.min_efficiency,
    };
    let events = opts
        .fail
        .iter()
        .map(|(iface, at)| {
            let (host, iface2) = (client.name.clone(), iface.clone());
            let action: Box<dyn FnOnce() -> Result<(), String> + Send + '_> = match client_place {
                measure::Place::Netns(ns) => {
                    let ns = ns.name().to_string();
                    Box::new(move || {
                        NsHost::open(&host, &ns)
                            .and_then(|mut h| h.set_link(&iface2, false))
                            .map_err(|e| e.to_string())
                    })
                }
                measure::Place::Remote { sample, .. } => Box::new(move || {
                    sample
                        .check(&guest::Command::new(net::plan::link_state_argv(
                            &iface2, false,
                        )))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            };
            measure::Event {
                at: Duration::from_secs_f64(*at),
                label: format!("{} {iface} down", client.name),
                action,
            }
        })
        .collect();
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
    // Links taken down come back up, with the routes the kernel dropped, whatever happened.
    for (iface, _) in &opts.fail {
        match client_place {
            measure::Place::Netns(ns) => {
                let mut h = NsHost::open(&client.name, ns.name())?;
                h.set_link(iface, true)?;
                h.converge(&client.net())?;
            }
            measure::Place::Remote { run, .. } => {
                run.check(&guest::Command::new(net::plan::link_state_argv(
                    iface, true,
                )))
                .map_err(|e| TestError::Remote(crate::remote::Error::from(e)))?;
                crate::remote::apply(run, &client.net(), false, None).map_err(TestError::Remote)?;
            }
        }
    }
    let mut report = measured?;
    for (iface, _) in &opts.fail {
        report.events.push(format!(
            "after the test: {} {iface} up, its routes restored",
            client.name
        ));
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
    })
}
