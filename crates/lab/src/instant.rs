//! Namespace labs driven directly (what `lab bench` and the tests use; programs use
//! [`Session`](crate::Session)), and the traffic test every provider's hosts share.
//!
//! `up` wires the namespaces ([`netns::Topology`], through the `provider-netns` plugin's
//! topology), `apply` converges each host on its plan (read the live state, apply only the
//! difference), `down` removes everything the lab owns. [`test_with`] runs one transfer
//! between two places (namespaces or hosts behind the command seam) and judges it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netns::Host as NsHost;
use netns::topology::UpReport;
use serde::Serialize;

use model::Lab;

/// Errors of instant-lab operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    /// A namespace operation failed.
    Netns(#[from] netns::Error),
    #[error("no host `{0}` in this lab")]
    /// No host of this name in the lab.
    NoHost(String),
    /// The host has no such interface.
    #[error("host `{host}` has no interface `{iface}`")]
    NoInterface {
        /// The host.
        host: String,
        /// The interface asked for.
        iface: String,
    },
    #[error("lab `{0}` is not up (run `lab up`)")]
    /// The lab's namespaces do not exist.
    NotUp(String),
}

pub use provider_netns::topology;

/// Where a lab's namespace state is kept: `<dir>/.lab/<lab>.netns.json`.
pub fn state_file(dir: &Path, lab: &Lab) -> PathBuf {
    provider::StateDir::new(dir).file(&provider_netns::state_name(lab))
}

/// Create the lab's namespaces and wiring (adopting a lab that is fully up).
pub fn up(lab: &Lab, dir: &Path) -> Result<UpReport, Error> {
    Ok(topology(lab).up(&state_file(dir, lab))?)
}

/// `up` and `apply` overlapped: each host is configured on its own thread as soon as its
/// interfaces exist, while the next host is being wired.
pub fn up_and_apply(lab: &Lab, dir: &Path) -> Result<(UpReport, Vec<HostApplied>), Error> {
    let topo = topology(lab);
    let state = state_file(dir, lab);
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        let report = topo.up_with(&state, &mut |mut host, fresh| {
            workers.push(s.spawn(move || -> Result<HostApplied, Error> {
                let start = Instant::now();
                let plan = lab
                    .host(host.name())
                    .ok_or_else(|| Error::NoHost(host.name().to_string()))?
                    .net();
                // A namespace created by this very `up` holds nothing yet (its interfaces are
                // down, nothing is configured): its diff is the whole plan, without reading the
                // state first. An adopted lab is read and converged as `apply` does.
                let changes = if fresh {
                    let changes = net::diff(&plan, &net::Observed::default());
                    host.apply(&changes)?;
                    changes
                } else {
                    host.converge(&plan)?.changes
                };
                Ok(HostApplied {
                    host: host.name().to_string(),
                    changes,
                    elapsed: start.elapsed(),
                })
            }));
        });
        let applied: Vec<Result<HostApplied, Error>> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or(Err(Error::Netns(netns::Error::Panicked)))
            })
            .collect();
        let report = report?;
        Ok((report, applied.into_iter().collect::<Result<_, _>>()?))
    })
}

fn converge_host(lab: &Lab, h: &crate::Host, dry_run: bool) -> Result<HostApplied, Error> {
    let start = Instant::now();
    let mut host = open_host(lab, &h.name)?;
    let plan = h.net();
    let changes = if dry_run {
        net::diff(&plan, &host.observe(&plan)?)
    } else {
        host.converge(&plan)?.changes
    };
    Ok(HostApplied {
        host: h.name.clone(),
        changes,
        elapsed: start.elapsed(),
    })
}

/// Remove every namespace of the lab. Returns the names removed.
pub fn down(lab: &Lab, dir: &Path) -> Result<Vec<String>, Error> {
    Ok(netns::topology::down(&lab.name, &state_file(dir, lab))?)
}

/// Open a host of a lab that is up.
pub fn open_host(lab: &Lab, host: &str) -> Result<NsHost, Error> {
    if lab.host(host).is_none() {
        return Err(Error::NoHost(host.to_string()));
    }
    let ns = topology(lab).host_ns(host);
    NsHost::open(host, &ns).map_err(|e| match e {
        netns::Error::NoNamespace(_) => Error::NotUp(lab.name.clone()),
        e => Error::Netns(e),
    })
}

/// What `apply` did on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostApplied {
    /// The host's name.
    pub host: String,
    /// The changes made, in order.
    pub changes: Vec<net::Change>,
    #[serde(serialize_with = "micros")]
    /// How long it took.
    pub elapsed: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_micros())
}

/// Converge the hosts (all, or one) on their plans. With `dry_run`, only report the changes.
pub fn apply(lab: &Lab, only: Option<&str>, dry_run: bool) -> Result<Vec<HostApplied>, Error> {
    if let Some(h) = only
        && lab.host(h).is_none()
    {
        return Err(Error::NoHost(h.to_string()));
    }
    // Hosts are independent: converge them in parallel.
    let results: Vec<Result<HostApplied, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .hosts
            .iter()
            .filter(|h| only.is_none_or(|o| o == h.name))
            .filter(|h| h.provider == provider_netns::NAME)
            .map(|h| s.spawn(move || converge_host(lab, h, dry_run)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(Error::Netns(netns::Error::Panicked)))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Take an interface down, or bring it up again and restore what the kernel dropped with it
/// (the routes of its table), by converging the host on its plan.
pub fn set_link(lab: &Lab, host: &str, iface: &str, up: bool) -> Result<Vec<net::Change>, Error> {
    let h = lab
        .host(host)
        .ok_or_else(|| Error::NoHost(host.to_string()))?;
    if h.interface(iface).is_none_or(|i| i.is_nat()) {
        return Err(Error::NoInterface {
            host: host.to_string(),
            iface: iface.to_string(),
        });
    }
    let mut ns = open_host(lab, host)?;
    if up {
        ns.set_link(iface, true)?;
        Ok(ns.converge(&h.net())?.changes)
    } else {
        ns.set_link(iface, false)?;
        Ok(Vec::new())
    }
}

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
#[derive(Debug, Clone, Serialize)]
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
    #[error(transparent)]
    /// A namespace operation failed.
    Lab(#[from] Error),
    #[error(transparent)]
    /// The transfer or its observation failed.
    Measure(#[from] measure::Error),
    #[error("the lab needs a host with role \"server\" and one with role \"client\"")]
    /// The lab lacks a client and a server.
    NoPair,
    #[error("host `{0}` has no statically addressed interface to connect to")]
    /// The server has no address to connect to.
    NoAddress(String),
    #[error(transparent)]
    /// A host could not be reached.
    Provider(#[from] provider::Error),
    #[error(transparent)]
    /// A command on a host reached over SSH failed.
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
            return Err(Error::NoInterface {
                host: client.name.clone(),
                iface: iface.clone(),
            }
            .into());
        }
    }
    let names =
        |h: &crate::Host| -> Vec<String> { h.path_interfaces().map(|i| i.name.clone()).collect() };
    let (subflows, subflows_why) = crate::expect::subflows(server, client);
    let rates: Vec<Option<u64>> = client
        .path_interfaces()
        .map(|i| i.shaping.and_then(|s| s.rate_bps))
        .collect();
    let expect = measure::Expect {
        subflows,
        subflows_why,
        paths: vec![
            (server.name.clone(), names(server)),
            (client.name.clone(), names(client)),
        ],
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
                let mut h = NsHost::open(&client.name, ns.name()).map_err(Error::from)?;
                h.set_link(iface, true).map_err(Error::from)?;
                h.converge(&client.net()).map_err(Error::from)?;
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

/// [`Session::test`](crate::Session::test) on `lab` with its state in `dir`.
pub fn test(lab: &Lab, dir: &Path, opts: &TestOptions) -> Result<TestResult, crate::Error> {
    crate::Session::new(lab.clone(), dir)?.test(opts)
}
