//! Captures of a lab's traffic: which interfaces (`HOST[:IFACE]`, by default every path
//! interface of every host), captured inside each namespace host with AF_PACKET and on hosts
//! reached over SSH with tcpdump (the `capture` crate), merged on this machine's clock (each
//! remote host's offset measured and stated) and written as one pcapng that Wireshark opens,
//! with an interface per `host:iface` and each one's counts.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::session::Session;
use provider::Access;

/// What to capture: a host, and one of its interfaces or (`None`) all its path interfaces.
///
/// ```
/// let t: lab::capture::Target = "ue2:enp0s8".parse().unwrap();
/// assert_eq!((t.host.as_str(), t.iface.as_deref()), ("ue2", Some("enp0s8")));
/// let all: lab::capture::Target = "ue1".parse().unwrap();
/// assert_eq!(all.iface, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host, by its name in Lab.toml.
    pub host: String,
    /// The interface, by its name in Lab.toml.
    pub iface: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, iface) = match s.split_once(':') {
            Some((h, i)) => (h, Some(i.to_string())),
            None => (s, None),
        };
        if host.is_empty() || iface.as_deref().is_some_and(str::is_empty) {
            return Err(format!("`{s}`: expected HOST or HOST:IFACE"));
        }
        Ok(Target {
            host: host.to_string(),
            iface,
        })
    }
}

/// One captured interface, with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedInterface {
    /// `host:iface`.
    pub name: String,
    /// Frames lab read.
    pub frames: u64,
    /// Frames the kernel dropped before lab read them (counted per host's socket).
    pub dropped: u64,
}

/// What a capture wrote.
///
/// ```
/// let s = lab::capture::Summary {
///     file: "capture.pcapng".into(),
///     frames: 10,
///     interfaces: vec![lab::capture::CapturedInterface { name: "ue2:enp0s8".into(), frames: 10, dropped: 0 }],
///     clocks: vec![],
///     paths: vec![],
///     counters: vec![],
/// };
/// assert_eq!(s.dropped(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The pcapng file.
    pub file: PathBuf,
    /// Frames in it.
    pub frames: u64,
    /// Each interface.
    pub interfaces: Vec<CapturedInterface>,
    /// Hosts with a clock of their own (reached over SSH): how their timestamps were moved
    /// onto this machine's clock, and the remaining uncertainty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clocks: Vec<HostClock>,
    /// With `lab test --capture`: each captured interface's MPTCP payload against the
    /// transfer's interface counters ([`cross_check`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathCheck>,
    /// With `lab test --capture`: the MPTCP signalling in the capture against the MIB
    /// counters ([`counter_checks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<CounterCheck>,
}

/// A run's directory and what was written there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFiles {
    /// The directory.
    pub dir: PathBuf,
    /// run.json and the charts (the capture, when there is one, is beside them).
    pub files: Vec<PathBuf>,
}

/// A capture read back, with its MPTCP connections grouped once for every check and chart
/// that reads them.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The capture's packets and interfaces.
    pub cap: decode::Capture,
    /// Its packets grouped into MPTCP connections and their subflows.
    pub conns: Vec<decode::conn::Connection>,
}

impl Decoded {
    /// Group `cap`'s packets into connections ([`decode::Capture::connections`]).
    ///
    /// ```
    /// let d = lab::capture::Decoded::new(decode::Capture::default());
    /// assert!(d.conns.is_empty());
    /// ```
    pub fn new(cap: decode::Capture) -> Self {
        let conns = cap.connections();
        Self { cap, conns }
    }
}

/// The version of run.json's layout.
pub const RUN_FORMAT_VERSION: u32 = 1;

/// Write a test's run into `dir`: `run.json` (format version, `metadata`, the test's result
/// with its verdict and, with a capture, its analysis from the server's interfaces) and the
/// charts, each as SVG and PNG: each interface's throughput by its counters (the picture
/// ifstat hints at) and, with a capture, throughput per subflow stacked, cumulative bytes,
/// DSNs with reinjections, RTT, and CDFs of the reordering and join delays. Returns the
/// files written.
pub fn write_run(
    dir: &Path,
    result: &crate::TestResult,
    decoded: Option<&Decoded>,
    metadata: &serde_json::Value,
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| {
        Error::Provider(provider::Error::File {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })
    })?;
    let empty = Decoded::default();
    let captured = decoded.is_some();
    let Decoded { cap, conns } = decoded.unwrap_or(&empty);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| {
            Error::Provider(provider::Error::File {
                what: "cannot write",
                path,
                source,
            })
        }
    };
    let server_ifaces = host_interfaces(cap, &result.server);
    let opts = decode::analysis::Options {
        interval: 0.5,
        origin_ns: None,
    };
    let analysis = decode::analysis::analyze(&cap.packets, conns, opts, |p| {
        server_ifaces.is_empty() || server_ifaces.contains(&p.iface)
    });
    let mut files = Vec::new();
    let json = serde_json::json!({
        "format": "lab-run",
        "version": RUN_FORMAT_VERSION,
        "lab": result.lab,
        "metadata": metadata,
        "vantage": if !captured { String::new() } else if server_ifaces.is_empty() { "every captured interface".to_string() } else { format!("{}'s interfaces", result.server) },
        "test": result,
        "analysis": analysis,
    });
    let path = dir.join("run.json");
    let text = serde_json::to_vec_pretty(&json).unwrap_or_default();
    std::fs::write(&path, text).map_err(io(&path))?;
    files.push(path);
    let mut charts = Vec::new();
    // The connection that carried the most.
    let main = analysis.iter().max_by_key(|c| {
        c.subflows
            .iter()
            .map(|s| s.up.bytes + s.down.bytes)
            .sum::<u64>()
    });
    if let Some(main) = main {
        let n = main
            .subflows
            .iter()
            .map(|s| s.up.per_interval.len().max(s.down.per_interval.len()))
            .max()
            .unwrap_or(0);
        let name = |s: &decode::analysis::SubflowReport| {
            format!(
                "{} -> {}{}",
                s.client,
                s.server,
                if s.join { "" } else { " (initial)" }
            )
        };
        let bytes_at = |s: &decode::analysis::SubflowReport, i: usize| {
            s.up.per_interval.get(i).copied().unwrap_or(0)
                + s.down.per_interval.get(i).copied().unwrap_or(0)
        };
        charts.push((
            "throughput",
            plot::Chart {
                title: "throughput per subflow, stacked (capture)".into(),
                x_label: "seconds".into(),
                y_label: "Mbit/s".into(),
                kind: plot::Kind::Stacked,
                series: main
                    .subflows
                    .iter()
                    .map(|s| plot::Series {
                        name: name(s),
                        points: (0..n)
                            .map(|i| {
                                (
                                    i as f64 * main.interval,
                                    bytes_at(s, i) as f64 * 8.0 / main.interval / 1e6,
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            },
        ));
        charts.push((
            "cumulative",
            plot::Chart {
                title: "bytes per subflow, cumulative (capture)".into(),
                x_label: "seconds".into(),
                y_label: "MB".into(),
                kind: plot::Kind::Lines,
                series: main
                    .subflows
                    .iter()
                    .map(|s| {
                        let mut total = 0u64;
                        plot::Series {
                            name: name(s),
                            points: (0..n)
                                .map(|i| {
                                    total += bytes_at(s, i);
                                    ((i + 1) as f64 * main.interval, total as f64 / 1e6)
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            },
        ));
    }
    if let Some(main) = main {
        let label = |s: &decode::analysis::SubflowReport| format!("{} -> {}", s.client, s.server);
        let base = main
            .subflows
            .iter()
            .flat_map(|s| s.up.dsn.iter().map(|p| p.1))
            .min()
            .unwrap_or(0);
        let mut dsn: Vec<plot::Series> = main
            .subflows
            .iter()
            .map(|s| plot::Series {
                name: label(s),
                points: s
                    .up
                    .dsn
                    .iter()
                    .map(|(t, d)| (*t, d.wrapping_sub(base) as f64 / 1e6))
                    .collect(),
            })
            .collect();
        let reinjected: Vec<(f64, f64)> = main
            .subflows
            .iter()
            .flat_map(|s| s.up.reinjections.iter())
            .map(|(t, d)| (*t, d.wrapping_sub(base) as f64 / 1e6))
            .collect();
        if !reinjected.is_empty() {
            dsn.push(plot::Series {
                name: "reinjections".into(),
                points: reinjected,
            });
        }
        // The data ACKs the server sent back (on every subflow): the receiver's progress.
        let mut acks: Vec<(f64, f64)> = main
            .subflows
            .iter()
            .flat_map(|s| s.up.data_acks.iter())
            .map(|(t, a)| (*t, a.wrapping_sub(base) as f64 / 1e6))
            .filter(|(_, mb)| *mb < 1e9)
            .collect();
        acks.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !acks.is_empty() {
            dsn.push(plot::Series {
                name: "data ACK".into(),
                points: acks,
            });
        }
        charts.push((
            "dsn",
            plot::Chart {
                title: "data sequence number per subflow, client to server (capture)".into(),
                x_label: "seconds".into(),
                y_label: "MB from the first DSN".into(),
                kind: plot::Kind::Points,
                series: dsn,
            },
        ));
        charts.push((
            "rtt",
            plot::Chart {
                title: "RTT per subflow, client to server (capture)".into(),
                x_label: "seconds".into(),
                y_label: "ms".into(),
                kind: plot::Kind::Points,
                series: main
                    .subflows
                    .iter()
                    .map(|s| plot::Series {
                        name: label(s),
                        points: s.up.rtt.iter().map(|(t, r)| (*t, r * 1e3)).collect(),
                    })
                    .collect(),
            },
        ));
        let cdf = |mut v: Vec<f64>| -> Vec<(f64, f64)> {
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            v.iter()
                .enumerate()
                .map(|(i, x)| (x * 1e3, (i + 1) as f64 / n))
                .collect()
        };
        charts.push((
            "delays-cdf",
            plot::Chart {
                title: format!(
                    "CDF: data-level reordering delay at the server ({} of {} mappings waited), and join delay",
                    main.reordering_up.delayed, main.reordering_up.mappings
                ),
                x_label: "ms".into(),
                y_label: "fraction".into(),
                kind: plot::Kind::Lines,
                series: vec![
                    plot::Series {
                        name: "reordering delay".into(),
                        points: cdf(main.reordering_up.delays.clone()),
                    },
                    plot::Series {
                        name: "join delay (SYN after the first SYN)".into(),
                        points: cdf(
                            main.subflows
                                .iter()
                                .filter(|s| s.join)
                                .map(|s| s.syn_at)
                                .collect(),
                        ),
                    },
                ],
            },
        ));
    }
    // The events strip: each path manager event (ip mptcp monitor) and each MPTCP signal of
    // the capture at its time, one row per kind.
    let origin = main
        .map(|m| m.start_ns)
        .or_else(|| result.monitor.first().map(|e| e.ts_ns));
    if let Some(origin) = origin {
        let at = |ts: u64| (ts as f64 - origin as f64) / 1e9;
        let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
        let mut put = |kind: String, t: f64| match rows.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, v)) => v.push(t),
            None => rows.push((kind, vec![t])),
        };
        for e in &result.monitor {
            put(format!("{} {}", e.host, e.kind), at(e.ts_ns));
        }
        if let Some(m) = main {
            for sig in &m.signals {
                let kind = sig.what.split(" (").next().unwrap_or(&sig.what);
                let kind = kind.split(" id ").next().unwrap_or(kind);
                put(format!("capture {kind}"), sig.at);
            }
        }
        if !rows.is_empty() {
            charts.push((
                "events",
                plot::Chart {
                    title: "events: path managers (ip mptcp monitor) and MPTCP signals (capture)"
                        .into(),
                    x_label: "seconds".into(),
                    y_label: "row".into(),
                    kind: plot::Kind::Points,
                    series: rows
                        .into_iter()
                        .enumerate()
                        .map(|(i, (kind, ts))| plot::Series {
                            name: kind,
                            points: ts.into_iter().map(|t| (t, (i + 1) as f64)).collect(),
                        })
                        .collect(),
                },
            ));
        }
    }
    // Every series on this machine's clock, from the earliest start among them.
    let goodput_start = Some(result.report.goodput_start_ns).filter(|s| *s > 0);
    let first_sample = result
        .report
        .interfaces
        .iter()
        .map(|i| i.start_ns)
        .filter(|s| *s > 0)
        .chain(goodput_start)
        .min();
    let at = |start: u64| first_sample.map_or(0.0, |f| start.saturating_sub(f) as f64 / 1e9);
    let mut series: Vec<plot::Series> = result
        .report
        .interfaces
        .iter()
        .map(|i| plot::Series {
            name: format!("{}:{}", i.host, i.iface),
            // Each host's samples where they started, on this machine's clock.
            points: per_second_points(&i.per_second_bps, at(i.start_ns)),
        })
        .collect();
    if let Some(g) = goodput_start {
        series.push(plot::Series {
            name: "goodput (receiver)".into(),
            points: per_second_points(&result.report.per_second_bps, at(g)),
        });
    }
    charts.push((
        "interfaces",
        plot::Chart {
            title: "throughput per interface, tx+rx (interface counters), and goodput".into(),
            x_label: "seconds".into(),
            y_label: "Mbit/s".into(),
            kind: plot::Kind::Lines,
            series,
        },
    ));
    for (stem, chart) in charts {
        let svg = plot::svg(&chart, 1000, 500).map_err(|e| Error::Plot(e.to_string()))?;
        let path = dir.join(format!("{stem}.svg"));
        std::fs::write(&path, svg).map_err(io(&path))?;
        files.push(path);
        let png = plot::png(&chart, 1000, 500).map_err(|e| Error::Plot(e.to_string()))?;
        let path = dir.join(format!("{stem}.png"));
        std::fs::write(&path, png).map_err(io(&path))?;
        files.push(path);
    }
    Ok(files)
}

/// The packet-level view of a transfer against its counters: per captured interface, the
/// MPTCP payload the capture holds (data segments of the transfer's MPTCP connections, each
/// counted where it was captured) and its share of its host's, against the share of the
/// host's bytes the interface counters measured. A path both call used (at least 1%), or both
/// call idle, agrees.
///
/// ```
/// // Nothing captured, nothing counted: nothing to check.
/// let s = lab::capture::Summary { file: "x".into(), frames: 0, interfaces: vec![], clocks: vec![], paths: vec![], counters: vec![] };
/// assert!(lab::capture::cross_check(&s, &Default::default(), &[]).is_empty());
/// ```
pub fn cross_check(
    summary: &Summary,
    decoded: &Decoded,
    counters: &[measure::traffic::IfaceBytes],
) -> Vec<PathCheck> {
    let Decoded { cap, conns } = decoded;
    let mut payload = vec![0u64; summary.interfaces.len()];
    for c in conns {
        for s in &c.subflows {
            for &i in &s.packets {
                let p = &cap.packets[i];
                if let Some(slot) = payload.get_mut(p.iface as usize) {
                    *slot += u64::from(p.payload_len);
                }
            }
        }
    }
    let host_of = |name: &str| name.split_once(':').map_or(name, |(h, _)| h).to_string();
    let mut out = Vec::new();
    for (i, iface) in summary.interfaces.iter().enumerate() {
        let host = host_of(&iface.name);
        let host_payload: u64 = summary
            .interfaces
            .iter()
            .enumerate()
            .filter(|(_, j)| host_of(&j.name) == host)
            .map(|(k, _)| payload[k])
            .sum();
        let host_counted: u64 = counters
            .iter()
            .filter(|c| c.host == host)
            .map(measure::traffic::IfaceBytes::bytes)
            .sum();
        let counted = counters
            .iter()
            .find(|c| format!("{}:{}", c.host, c.iface) == iface.name)
            .map_or(0, measure::traffic::IfaceBytes::bytes);
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let capture_share = share(payload[i], host_payload);
        let counter_share = share(counted, host_counted);
        out.push(PathCheck {
            name: iface.name.clone(),
            mptcp_payload: payload[i],
            capture_share,
            counter_share,
            agree: (capture_share >= 0.01) == (counter_share >= 0.01),
        });
    }
    out
}

impl Summary {
    /// Frames the kernel dropped, all interfaces.
    pub fn dropped(&self) -> u64 {
        self.interfaces.iter().map(|i| i.dropped).sum()
    }
}

/// One captured interface, seen in the capture and by the transfer's interface counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathCheck {
    /// `host:iface`.
    pub name: String,
    /// MPTCP payload bytes (data of the transfer's subflows) captured on it.
    pub mptcp_payload: u64,
    /// Its share of the host's captured MPTCP payload (0 to 1).
    pub capture_share: f64,
    /// Its share of the host's bytes by the interface counters (0 to 1).
    pub counter_share: f64,
    /// Both say it carried data (at least 1% of its host's), or both say it did not.
    pub agree: bool,
}

/// The capture's interfaces of `host` (named `host:iface`), by index.
fn host_interfaces(cap: &decode::Capture, host: &str) -> Vec<u32> {
    let prefix = format!("{host}:");
    cap.interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.name.as_deref().is_some_and(|n| n.starts_with(&prefix)))
        .map(|(k, _)| u32::try_from(k).unwrap_or(u32::MAX))
        .collect()
}

/// Per-second rates (bit/s) as chart points: (second, Mbit/s), the first second ending at
/// `shift + 1` (`shift`: where the series starts on the chart's clock, seconds).
pub(crate) fn per_second_points(bps: &[f64], shift: f64) -> Vec<(f64, f64)> {
    bps.iter()
        .enumerate()
        .map(|(k, b)| (shift + k as f64 + 1.0, b / 1e6))
        .collect()
}

/// An MPTCP counter of the kernel (a MIB counter, or MPTCP_INFO's subflows) against the same
/// count in the capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterCheck {
    /// The host whose counter it is.
    pub host: String,
    /// The counter (`MPJoinSynRx`, ..., `subflows (MPTCP_INFO)`).
    pub counter: String,
    /// What the capture holds of it (where it was received, see [`signalling`]).
    pub capture: u64,
    /// The kernel's count over the transfer.
    pub mib: u64,
    /// Equal.
    pub agree: bool,
}

/// MPTCP signalling in a capture, counted as the kernel's MIB counts it on the receiving side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signalling {
    /// Join subflows whose MP_JOIN SYN reached the server (`MPJoinSynRx`): one per subflow,
    /// however often the client sent it (a retransmitted SYN meets the pending request, which
    /// the kernel counted once).
    pub join_syn: u64,
    /// Join subflows whose MP_JOIN third ACK reached the server (`MPJoinAckRx`): one per
    /// subflow (the client repeats the option on its ACKs until the server acknowledges; the
    /// kernel counts the one that makes the subflow).
    pub join_ack: u64,
    /// ADD_ADDRs the server side sent that reached the client (the client's `AddAddr`).
    pub add_addr: u64,
    /// Their echoes from the client that reached the server (the server's `EchoAdd`).
    pub echo: u64,
}

/// The MPTCP signalling of `decoded`'s connections, each count taken where it was received:
/// MP_JOINs and echoes on `server`'s interfaces (capture interface indices), ADD_ADDRs on
/// `client`'s. Where the receiver was not captured, its count is taken where it was sent.
///
/// ```
/// let d = lab::capture::Decoded::default();
/// assert_eq!(lab::capture::signalling(&d, &[0], &[1]), Default::default());
/// ```
pub fn signalling(decoded: &Decoded, server: &[u32], client: &[u32]) -> Signalling {
    use decode::mptcp::{MpJoin, Mptcp};
    let Decoded { cap, conns } = decoded;
    let at_server = if server.is_empty() { client } else { server };
    let at_client = if client.is_empty() { server } else { client };
    let mut n = Signalling::default();
    for s in conns.iter().flat_map(|c| c.subflows.iter()) {
        let (mut syn, mut ack) = (false, false);
        for p in s.packets.iter().map(|&i| &cap.packets[i]) {
            let up = p.src == s.client;
            for o in &p.mptcp {
                match o {
                    Mptcp::MpJoin(MpJoin::Syn { .. }) if up && at_server.contains(&p.iface) => {
                        syn = true;
                    }
                    Mptcp::MpJoin(MpJoin::Ack { .. }) if up && at_server.contains(&p.iface) => {
                        ack = true;
                    }
                    Mptcp::AddAddr(a) if a.echo && up && at_server.contains(&p.iface) => {
                        n.echo += 1;
                    }
                    Mptcp::AddAddr(a) if !a.echo && !up && at_client.contains(&p.iface) => {
                        n.add_addr += 1;
                    }
                    _ => {}
                }
            }
        }
        n.join_syn += u64::from(syn);
        n.join_ack += u64::from(ack);
    }
    n
}

/// The MPTCP signalling in the capture against the kernel's MIB counters of the transfer
/// ([`signalling`]): MP_JOIN SYNs and third ACKs the server received, ADD_ADDRs the client
/// received (`AddAddr`) and their echoes back at the server (`EchoAdd`).
///
/// ```no_run
/// # fn main() -> Result<(), lab::Error> {
/// let s = lab::Session::open("Lab.toml".as_ref())?;
/// let opts = lab::TestOptions { capture: Some("run/capture.pcapng".into()), ..Default::default() };
/// let r = s.test(&opts)?;
/// for c in &r.capture.unwrap().counters {
///     println!("{} {}: capture {}, MIB {}", c.host, c.counter, c.capture, c.mib);
/// }
/// # Ok(()) }
/// ```
pub fn counter_checks(decoded: &Decoded, result: &crate::TestResult) -> Vec<CounterCheck> {
    let Decoded { cap, conns } = decoded;
    let on_server = host_interfaces(cap, &result.server);
    if on_server.is_empty() {
        return Vec::new();
    }
    let on_client = host_interfaces(cap, &result.client);
    let Signalling {
        join_syn: syn,
        join_ack: ack,
        add_addr: add,
        echo,
    } = signalling(decoded, &on_server, &on_client);
    let mib = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let rep = &result.report;
    // Subflows of the transfer's connection (the one that carried the most) against
    // MPTCP_INFO's count on the client's socket, when the sender read it.
    let subflows = conns
        .iter()
        .map(|c| {
            let bytes: u64 = c
                .subflows
                .iter()
                .flat_map(|s| s.packets.iter())
                .map(|&i| u64::from(cap.packets[i].payload_len))
                .sum();
            (bytes, c.subflows.len() as u64)
        })
        .max()
        .map_or(0, |(_, n)| n);
    let info = rep.subflows_max.map(|n| {
        (
            &result.client,
            "subflows (MPTCP_INFO)",
            subflows,
            u64::from(n),
        )
    });
    info.into_iter()
        .chain([
            (
                &result.server,
                "MPJoinSynRx",
                syn,
                mib(&rep.server_mib, "MPJoinSynRx"),
            ),
            (
                &result.server,
                "MPJoinAckRx",
                ack,
                mib(&rep.server_mib, "MPJoinAckRx"),
            ),
            (
                &result.client,
                "AddAddr",
                add,
                mib(&rep.client_mib, "AddAddr"),
            ),
            (
                &result.server,
                "EchoAdd",
                echo,
                mib(&rep.server_mib, "EchoAdd"),
            ),
        ])
        .map(|(host, counter, capture, mib)| CounterCheck {
            host: host.clone(),
            counter: counter.to_string(),
            capture,
            mib,
            agree: capture == mib,
        })
        .collect()
}

/// A host's part of a capture: in its namespace, or tcpdump over its session.
#[derive(Debug)]
enum Part {
    Namespace(capture::Running),
    Remote(capture::remote::Running),
}

/// A host with a clock of its own, against this machine's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClock {
    /// The host.
    pub host: String,
    /// Its time minus this machine's, in nanoseconds (its frames were moved by that much).
    pub offset_ns: i64,
    /// How far off the offset may be: half the round trip of its measurement.
    pub error_ns: u64,
}

/// A capture in progress ([`Session::start_capture`]).
#[derive(Debug)]
pub struct Running {
    parts: Vec<Part>,
    file: PathBuf,
    lab: String,
}

impl Running {
    /// Stop every host's capture without writing anything.
    fn finish_discard(self) -> Result<(), Error> {
        for p in self.parts {
            match p {
                Part::Namespace(r) => {
                    r.stop()?;
                }
                Part::Remote(r) => {
                    r.stop()?;
                }
            }
        }
        Ok(())
    }

    /// Stop every host's capture and write the file.
    pub fn finish(self) -> Result<Summary, Error> {
        let mut parts = Vec::new();
        let mut first_error = None;
        for p in self.parts {
            let stopped = match p {
                Part::Namespace(r) => r.stop(),
                Part::Remote(r) => r.stop(),
            };
            match stopped {
                Ok(c) => parts.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        let all = capture::merge(parts);
        if let Some(dir) = self.file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| {
                Error::Provider(provider::Error::File {
                    what: "cannot create",
                    path: dir.to_path_buf(),
                    source,
                })
            })?;
        }
        let clocks: Vec<HostClock> = all
            .clocks
            .iter()
            .map(|(host, c)| HostClock {
                host: host.clone(),
                offset_ns: c.offset_ns,
                error_ns: c.error_ns,
            })
            .collect();
        let mut comment = format!(
            "lab {}: lab `{}`; timestamps on the clock of the machine lab ran on",
            env!("CARGO_PKG_VERSION"),
            self.lab
        );
        for c in &clocks {
            comment.push_str(&format!(
                "; {}: its clock {:+.3} ms from it, moved by that (within {:.3} ms)",
                c.host,
                c.offset_ns as f64 / 1e6,
                c.error_ns as f64 / 1e6
            ));
        }
        let bytes = capture::pcapng::file(&comment, &all.interfaces, &all.frames);
        std::fs::write(&self.file, bytes).map_err(|source| {
            Error::Provider(provider::Error::File {
                what: "cannot write",
                path: self.file.clone(),
                source,
            })
        })?;
        Ok(Summary {
            file: self.file,
            clocks,
            paths: Vec::new(),
            counters: Vec::new(),
            frames: all.frames.len() as u64,
            interfaces: all
                .interfaces
                .iter()
                .map(|i| CapturedInterface {
                    name: i.name.clone(),
                    frames: i.received,
                    dropped: i.drops,
                })
                .collect(),
        })
    }
}

impl Session {
    /// The hosts and interfaces `targets` name (none: every host's path interfaces), checked
    /// against Lab.toml.
    fn capture_plan(&self, targets: &[Target]) -> Result<Vec<(String, Vec<String>)>, Error> {
        let all: Vec<Target> = if targets.is_empty() {
            self.lab()
                .hosts
                .iter()
                .map(|h| Target {
                    host: h.name.clone(),
                    iface: None,
                })
                .collect()
        } else {
            targets.to_vec()
        };
        let mut plan: Vec<(String, Vec<String>)> = Vec::new();
        for t in &all {
            let h = self.host(&t.host)?;
            let paths: Vec<String> = h
                .interfaces
                .iter()
                .filter(|i| !i.is_nat())
                .map(|i| i.name.clone())
                .collect();
            let ifaces = match &t.iface {
                Some(i) if paths.contains(i) => vec![i.clone()],
                Some(i) => {
                    return Err(Error::NoInterface {
                        host: h.name.clone(),
                        iface: i.clone(),
                        known: paths.join(", "),
                    });
                }
                None => paths,
            };
            match plan.iter_mut().find(|(host, _)| *host == h.name) {
                Some((_, have)) => {
                    for i in ifaces {
                        if !have.contains(&i) {
                            have.push(i);
                        }
                    }
                }
                None => plan.push((h.name.clone(), ifaces)),
            }
        }
        Ok(plan)
    }

    /// Start capturing on `targets` (none: every path interface of every host) into `file`
    /// (pcapng, written by [`Running::finish`]): in each namespace host with AF_PACKET, on
    /// hosts reached over SSH with tcpdump over the session (its clock measured against this
    /// machine's). Every host's capture is listening when this returns.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let running = s.start_capture(&["ue2".parse().unwrap()], "ue2.pcapng".as_ref())?;
    /// s.test(&lab::TestOptions::default())?;
    /// let summary = running.finish()?;
    /// println!("{} frames, {} dropped", summary.frames, summary.dropped());
    /// # Ok(()) }
    /// ```
    pub fn start_capture(&self, targets: &[Target], file: &Path) -> Result<Running, Error> {
        let plan = self.capture_plan(targets)?;
        let mut running = Running {
            parts: Vec::new(),
            file: file.to_path_buf(),
            lab: self.lab().name.clone(),
        };
        for (host, ifaces) in &plan {
            let part = match self.access(host)? {
                Access::Namespace(ns) => {
                    let ns = netns::Namespace::open(&ns)?;
                    capture::start(&ns, host, ifaces, capture::DEFAULT_SNAPLEN).map(Part::Namespace)
                }
                // Over sessions to the host: tcpdump, as root (through sudo where the login is
                // not root), each streaming its pcap over a session of its own.
                Access::Ssh(_) | Access::Exec(_) => {
                    let open = || self.exec(host).map_err(Into::into);
                    capture::remote::start(&open, host, ifaces, capture::DEFAULT_SNAPLEN)
                        .map(Part::Remote)
                }
            };
            match part {
                Ok(p) => running.parts.push(p),
                Err(e) => {
                    // What started already is ended, by its PIDs.
                    let _ = running.finish_discard();
                    return Err(e.into());
                }
            }
        }
        Ok(running)
    }

    /// Capture on `targets` for `duration`, or until an interrupt ([`guest::cancel`]) without
    /// one, and write `file`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let got = s.capture(&[], "all.pcapng".as_ref(), Some(std::time::Duration::from_secs(5)))?;
    /// println!("{} frames in {}", got.frames, got.file.display());
    /// # Ok(()) }
    /// ```
    pub fn capture(
        &self,
        targets: &[Target],
        file: &Path,
        duration: Option<Duration>,
    ) -> Result<Summary, Error> {
        let running = self.start_capture(targets, file)?;
        let start = Instant::now();
        while duration.is_none_or(|d| start.elapsed() < d) && !guest::cancel::requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        running.finish()
    }
}

/// A run directory's name under `.lab/runs/`: the lab and the UTC time,
/// `mptcp-20261201T013000Z`.
///
/// ```
/// assert_eq!(lab::capture::run_name("mptcp", 0), "mptcp-19700101T000000Z");
/// assert_eq!(lab::capture::run_name("x", 1_764_552_600), "x-20251201T013000Z");
/// ```
pub fn run_name(lab: &str, unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let rem = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{lab}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use decode::mptcp::{AddAddr, MpJoin, Mptcp};
    use decode::{Packet, conn};

    fn pkt(iface: u32, src: &str, dst: &str, ts: u64, flags: u8, mptcp: Vec<Mptcp>) -> Packet {
        Packet {
            frame: ts,
            ts_ns: ts,
            iface,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: 1,
            ack: 1,
            flags,
            window: 100,
            payload_len: 0,
            mptcp,
        }
    }

    fn add(echo: bool) -> Mptcp {
        Mptcp::AddAddr(AddAddr {
            echo,
            id: 1,
            addr: "10.1.2.1".parse().unwrap(),
            port: None,
            hmac: (!echo).then_some(7),
        })
    }

    /// Interfaces 0 and 1 are the server's, 2 and 3 the client's. One join subflow whose SYN
    /// the client sent twice and whose third-ACK option it repeated, each copy captured leaving
    /// the client and reaching the server; one ADD_ADDR and its echo on the initial subflow.
    fn capture() -> Decoded {
        let (c0, s0) = ("10.1.1.2:40000", "10.1.1.1:5201");
        let (c1, s1) = ("10.1.2.2:40001", "10.1.1.1:5201");
        let syn = || {
            vec![Mptcp::MpJoin(MpJoin::Syn {
                backup: false,
                addr_id: 2,
                token: 9,
                nonce: 3,
            })]
        };
        let ack = || vec![Mptcp::MpJoin(MpJoin::Ack { hmac: [0; 20] })];
        let mut packets = Vec::new();
        let mut both = |client_if, server_if, src, dst, ts, flags, o: Vec<Mptcp>| {
            packets.push(pkt(client_if, src, dst, ts, flags, o.clone()));
            packets.push(pkt(server_if, src, dst, ts + 1, flags, o));
        };
        // Initial subflow: the server's ADD_ADDR, the client's echo.
        both(2, 0, s0, c0, 10, 0x10, vec![add(false)]);
        both(2, 0, c0, s0, 20, 0x10, vec![add(true)]);
        // The join: SYN, its retransmission, the third ACK and a repeat of its option.
        both(3, 1, c1, s1, 30, 0x02, syn());
        both(3, 1, c1, s1, 40, 0x02, syn());
        both(3, 1, c1, s1, 50, 0x10, ack());
        both(3, 1, c1, s1, 60, 0x10, ack());
        let sub = |c: &str, s: &str, join, idx: Vec<usize>| conn::Subflow {
            client: c.parse().unwrap(),
            server: s.parse().unwrap(),
            join,
            addr_id: None,
            backup: false,
            packets: idx,
        };
        let conns = vec![conn::Connection {
            client_key: Some(1),
            server_key: Some(2),
            subflows: vec![
                sub(c0, s0, false, (0..4).collect()),
                sub(c1, s1, true, (4..12).collect()),
            ],
        }];
        Decoded {
            cap: decode::Capture {
                packets,
                ..Default::default()
            },
            conns,
        }
    }

    #[test]
    fn signalling_counts_as_the_kernel_counts_at_the_receiver() {
        let d = capture();
        let want = Signalling {
            join_syn: 1,
            join_ack: 1,
            add_addr: 1,
            echo: 1,
        };
        assert_eq!(signalling(&d, &[0, 1], &[2, 3]), want);
        // Only one host captured: each count where it was sent or received there, once.
        assert_eq!(signalling(&d, &[0, 1], &[]), want);
        assert_eq!(signalling(&d, &[], &[2, 3]), want);
        // An ADD_ADDR lost on its way: the client's MIB never counts it, nor does the capture
        // at the client; only where the client was not captured is the sent one counted.
        let mut lost = capture();
        lost.cap.packets[0].mptcp.clear();
        assert_eq!(signalling(&lost, &[0, 1], &[2, 3]).add_addr, 0);
        assert_eq!(signalling(&lost, &[0, 1], &[]).add_addr, 1);
    }
}
