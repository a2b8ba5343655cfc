//! The verdict on a transfer: did the connection use every path the plan expects?

use serde::Serialize;

use crate::traffic::Report;

/// What the plan expects of a transfer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Expect {
    /// Subflows per connection, the initial one included.
    pub subflows: u64,
    /// Why that many (for people).
    pub subflows_why: String,
    /// The plan fixes the number (in-kernel path manager, no daemon adding endpoints): the
    /// transfer must show exactly that many. Otherwise at least that many.
    #[serde(default)]
    pub subflows_exact: bool,
    /// MIB counters the plan fixes for one connection (joins, refused joins, announcements).
    #[serde(default)]
    pub counters: Vec<ExpectCounter>,
    /// Announcements the client takes up per connection, each a join: an ADD_ADDR the
    /// client's path manager drops under load (its `AddAddrDrop`) is one echo and, up to this
    /// many, one join fewer, which the kernel counts and the verdict accounts for.
    #[serde(default)]
    pub accepted: u64,
    /// The MPTCP paths (interfaces) of each host that the plan uses (the first address, an
    /// endpoint): each must carry a share of the bytes.
    pub paths: Vec<(String, Vec<String>)>,
    /// Path interfaces the plan gives no part (no endpoint, limits): not judged, and why.
    #[serde(default)]
    pub not_judged: Vec<(String, String, String)>,
    /// Path interfaces the plan keeps idle (a backup path while the others work): (host,
    /// interface, why). Each may carry at most [`IDLE_MAX`] of its host's bytes.
    #[serde(default)]
    pub idle: Vec<(String, String, String)>,
    /// Each path must carry at least this fraction of its fair share (host bytes / paths).
    pub min_share: f64,
    /// Sum of the shaped rates of the client's paths, if every path is shaped.
    pub rate_sum_bps: Option<u64>,
    /// When set (and the paths are shaped): goodput must reach this fraction of the rate sum.
    pub min_efficiency: Option<f64>,
}

/// The most of its host's bytes an idle path may carry: mptcp_join.sh's tolerance for an
/// unused backup link (`chk_link_usage ... 0`, 5 %).
pub const IDLE_MAX: f64 = 0.05;

/// Which end of the transfer a counter is read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// The host with role `server` (it accepts the connection).
    Server,
    /// The host with role `client` (it opens the connection and sends).
    Client,
}

/// A MIB counter the plan fixes.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExpectCounter {
    /// The host, by name (for people).
    pub host: String,
    /// Which end it is.
    pub end: End,
    /// `MPTcpExt` counter name without the prefix, e.g. `MPJoinAckRx`.
    pub counter: String,
    /// Its increase over the transfer, per connection.
    pub equals: u64,
    /// More is fine (ADD_ADDR retransmissions).
    #[serde(default)]
    pub or_more: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Check {
    pub what: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verdict {
    pub pass: bool,
    /// goodput / rate sum, when the paths are shaped.
    pub efficiency: Option<f64>,
    pub checks: Vec<Check>,
}

pub fn judge(r: &Report, e: &Expect) -> Verdict {
    let mut checks = Vec::new();
    checks.push(Check {
        what: "MPTCP in use".into(),
        pass: !r.fallback,
        detail: if r.fallback {
            "the connection fell back to plain TCP".into()
        } else {
            "MP_CAPABLE handshake completed".into()
        },
    });
    // A transfer that moved nothing proves nothing: every share of nothing is "fair".
    checks.push(Check {
        what: "data".into(),
        pass: r.bytes > 0,
        detail: if r.bytes > 0 {
            format!(
                "{:.1} MB arrived in {:.1} s",
                r.bytes as f64 / 1e6,
                r.seconds
            )
        } else {
            "no data arrived at the server: nothing to judge".into()
        },
    });
    // Counters are per connection: iperf3 opens a control connection beside the data one.
    let connections = r.connections.max(1);
    // ADD_ADDRs the client's path manager dropped under load (the kernel counts them in
    // AddAddrDrop, retransmitted duplicates included): what it received less what it dropped
    // is what it processed; each announcement short of the plan's is an echo and, for one it
    // would have taken up, a join fewer.
    let mib = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let announced = e
        .counters
        .iter()
        .find(|c| c.end == End::Server && c.counter == "EchoAdd")
        .map_or(0, |c| c.equals * connections);
    let processed = mib(&r.client_mib, "AddAddr").saturating_sub(mib(&r.client_mib, "AddAddrDrop"));
    let dropped = announced.saturating_sub(processed);
    let lost = dropped.min(e.accepted * connections);
    let dropped_note = if dropped > 0 {
        format!("; {dropped} ADD_ADDR dropped by the client's path manager (AddAddrDrop)")
    } else {
        String::new()
    };
    let seen = r.subflows_max.map_or(r.subflows_mib, u64::from);
    // Subflows per connection, as the server's MIB averages them over the connections.
    let expected = 1 + ((e.subflows - 1) * connections).saturating_sub(lost) / connections;
    checks.push(Check {
        what: "subflows".into(),
        pass: if e.subflows_exact {
            seen == expected
        } else {
            seen >= expected
        },
        detail: format!(
            "{seen} established (expected {}{expected}: {}{dropped_note}); server MIB: {} connection(s), {} joins acknowledged each",
            if e.subflows_exact { "exactly " } else { "at least " },
            e.subflows_why,
            r.connections,
            r.subflows_mib.saturating_sub(1)
        ),
    });
    for c in &e.counters {
        let mib = match c.end {
            End::Server => &r.server_mib,
            End::Client => &r.client_mib,
        };
        let got = mib.get(&c.counter).copied().unwrap_or(0);
        let less = match (c.end, c.counter.as_str()) {
            (End::Server, "EchoAdd") => dropped,
            (End::Server, "MPJoinSynRx" | "MPJoinAckRx") | (End::Client, "MPJoinSynAckRx") => lost,
            _ => 0,
        };
        let want = (c.equals * connections).saturating_sub(less);
        checks.push(Check {
            what: format!("{} {}", c.host, c.counter),
            pass: got == want || (c.or_more && got > want),
            detail: format!(
                "{got}, expected {}{want}{}{}",
                if c.or_more { "at least " } else { "" },
                if connections > 1 {
                    format!(" ({} per connection x {connections})", c.equals)
                } else {
                    String::new()
                },
                if less > 0 {
                    format!(", {less} fewer for the dropped ADD_ADDR")
                } else {
                    String::new()
                }
            ),
        });
    }
    for (host, ifaces) in &e.paths {
        let of_host: Vec<_> = r
            .interfaces
            .iter()
            .filter(|i| i.host == *host && ifaces.contains(&i.iface))
            .collect();
        let total: u64 = of_host.iter().map(|i| i.bytes()).sum();
        if of_host.is_empty() {
            continue;
        }
        let fair = total as f64 / of_host.len() as f64;
        for i in of_host {
            let share = if fair > 0.0 {
                i.bytes() as f64 / fair
            } else {
                0.0
            };
            checks.push(Check {
                what: format!("{host} {}", i.iface),
                pass: share >= e.min_share,
                detail: format!(
                    "{:.0}% of a fair share ({:.1} MB), at least {:.0}% needed",
                    share * 100.0,
                    i.bytes() as f64 / 1e6,
                    e.min_share * 100.0
                ),
            });
        }
    }
    for (host, iface, why) in &e.idle {
        let total: u64 = r
            .interfaces
            .iter()
            .filter(|i| i.host == *host)
            .map(|i| i.bytes())
            .sum();
        let Some(i) = r
            .interfaces
            .iter()
            .find(|i| i.host == *host && i.iface == *iface)
        else {
            continue;
        };
        let part = if total > 0 {
            i.bytes() as f64 / total as f64
        } else {
            0.0
        };
        checks.push(Check {
            what: format!("{host} {iface}"),
            pass: part <= IDLE_MAX,
            detail: format!(
                "{} ({:.1}% of the host's bytes, {:.1} MB; at most {:.0}% for an idle path; {why})",
                if part <= IDLE_MAX {
                    "idle, as expected"
                } else {
                    "carries data, but the plan keeps it idle"
                },
                part * 100.0,
                i.bytes() as f64 / 1e6,
                IDLE_MAX * 100.0
            ),
        });
    }
    // An event that could not be made to happen leaves the experiment other than declared.
    for e in r.events.iter().filter(|e| e.contains(" failed: ")) {
        checks.push(Check {
            what: "event".into(),
            pass: false,
            detail: e.clone(),
        });
    }
    if !r.events.is_empty() {
        checks.push(Check {
            what: "transfer survived".into(),
            pass: r.survived && r.per_second_bps.last().is_some_and(|b| *b > 0.0),
            detail: r
                .error
                .clone()
                .unwrap_or_else(|| "data kept flowing to the end".into()),
        });
    }
    let efficiency = e
        .rate_sum_bps
        .filter(|s| *s > 0)
        .map(|s| r.goodput_bps / s as f64);
    if let (Some(min), Some(eff), Some(sum)) = (e.min_efficiency, efficiency, e.rate_sum_bps) {
        checks.push(Check {
            what: "goodput".into(),
            pass: eff >= min,
            detail: format!(
                "{:.1} Mbit/s = {eff:.3} of the links' {:.0} Mbit/s, at least {min:.2} needed",
                r.goodput_bps / 1e6,
                sum as f64 / 1e6
            ),
        });
    }
    Verdict {
        pass: checks.iter().all(|c| c.pass),
        efficiency,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Tool;

    fn counter(end: End, host: &str, counter: &str, equals: u64, or_more: bool) -> ExpectCounter {
        ExpectCounter {
            host: host.into(),
            end,
            counter: counter.into(),
            equals,
            or_more,
        }
    }

    /// The plan of lab's Debian 12 VMs: 2 `subflow` endpoints and 2 accepted announcements,
    /// 4 joins a connection; iperf3 opens two connections.
    fn expect() -> Expect {
        Expect {
            subflows: 5,
            subflows_why: "1 initial + 4 joins".into(),
            subflows_exact: true,
            counters: vec![
                counter(End::Server, "ue1", "MPJoinSynRx", 4, false),
                counter(End::Client, "ue2", "MPJoinSynAckRx", 4, false),
                counter(End::Server, "ue1", "MPJoinAckRx", 4, false),
                counter(End::Server, "ue1", "MPJoinRejected", 0, false),
                counter(End::Client, "ue2", "AddAddr", 2, true),
                counter(End::Server, "ue1", "EchoAdd", 2, false),
            ],
            accepted: 2,
            paths: Vec::new(),
            not_judged: Vec::new(),
            idle: Vec::new(),
            min_share: 0.1,
            rate_sum_bps: None,
            min_efficiency: None,
        }
    }

    /// What the QEMU VMs showed once: the client's path manager dropped one of the four
    /// ADD_ADDRs under load, so 3 echoes and 7 joins instead of 4 and 8.
    fn report(dropped: u64) -> Report {
        let m = |kv: &[(&str, u64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Report {
            tool: Tool::Iperf3,
            congestion: None,
            command: None,
            seconds: 8.0,
            bytes: 1,
            goodput_bps: 1.0,
            per_second_bps: vec![1.0],
            goodput_start_ns: 0,
            goodput_start_error_ns: 0,
            subflows_max: None,
            subflows_end: None,
            connections: 2,
            subflows_mib: 1 + 7 / 2,
            fallback: false,
            survived: true,
            error: None,
            server_mib: m(&[
                ("MPCapableSYNRX", 2),
                ("MPJoinSynRx", 7),
                ("MPJoinAckRx", 7),
                ("EchoAdd", 3),
            ]),
            client_mib: m(&[
                ("MPJoinSynAckRx", 7),
                ("AddAddr", 4),
                ("AddAddrDrop", dropped),
            ]),
            interfaces: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A retransmitted ADD_ADDR the client drops as a duplicate costs nothing: 3 received,
    /// 1 dropped, 2 processed, as planned for one connection.
    #[test]
    fn a_dropped_duplicate_costs_nothing() {
        let mut r = report(1);
        r.connections = 1;
        r.subflows_mib = 5;
        for (k, v) in [
            ("MPCapableSYNRX", 1),
            ("MPJoinSynRx", 4),
            ("MPJoinAckRx", 4),
            ("EchoAdd", 2),
        ] {
            r.server_mib.insert(k.into(), v);
        }
        for (k, v) in [("MPJoinSynAckRx", 4), ("AddAddr", 3)] {
            r.client_mib.insert(k.into(), v);
        }
        let v = judge(&r, &expect());
        let failed: Vec<_> = v.checks.iter().filter(|c| !c.pass).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }

    #[test]
    fn a_dropped_add_addr_is_accounted_for_and_nothing_else_is() {
        let v = judge(&report(1), &expect());
        let failed: Vec<_> = v.checks.iter().filter(|c| !c.pass).collect();
        assert!(failed.is_empty(), "{failed:#?}");
        let echo = v.checks.iter().find(|c| c.what == "ue1 EchoAdd").unwrap();
        assert!(
            echo.detail.contains("1 fewer for the dropped ADD_ADDR"),
            "{}",
            echo.detail
        );
        // Without the kernel's word for a drop, one join missing is a failure.
        let v = judge(&report(0), &expect());
        let failed: Vec<&str> = v
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "subflows",
                "ue1 MPJoinSynRx",
                "ue2 MPJoinSynAckRx",
                "ue1 MPJoinAckRx",
                "ue1 EchoAdd"
            ]
        );
    }

    /// An idle path (a backup) passes with a trickle and fails when it carries data, and
    /// says which it was.
    #[test]
    fn idle_paths_are_judged_against_the_hosts_bytes() {
        let iface = |name: &str, bytes: u64| crate::traffic::IfaceBytes {
            host: "ue2".into(),
            iface: name.into(),
            tx_bytes: bytes,
            rx_bytes: 0,
            per_second_bps: Vec::new(),
            start_ns: 0,
            clock: None,
        };
        let mut e = expect();
        e.counters.clear();
        e.subflows_exact = false;
        e.subflows = 1;
        e.idle = vec![("ue2".into(), "eth3".into(), "a backup path".into())];
        let mut r = report(0);
        r.interfaces = vec![iface("eth1", 1_000_000), iface("eth3", 2_000)];
        let v = judge(&r, &e);
        let c = v.checks.iter().find(|c| c.what == "ue2 eth3").unwrap();
        assert!(c.pass, "{}", c.detail);
        assert!(c.detail.starts_with("idle, as expected"), "{}", c.detail);
        r.interfaces[1].tx_bytes = 400_000;
        let v = judge(&r, &e);
        let c = v.checks.iter().find(|c| c.what == "ue2 eth3").unwrap();
        assert!(!c.pass && !v.pass, "{}", c.detail);
        assert!(c.detail.contains("the plan keeps it idle"), "{}", c.detail);
    }

    /// No data is a failure with its reason, whatever else holds.
    #[test]
    fn no_data_never_passes() {
        let mut e = expect();
        e.counters.clear();
        e.subflows = 1;
        e.subflows_exact = false;
        let mut r = report(0);
        r.bytes = 0;
        let v = judge(&r, &e);
        assert!(!v.pass);
        let c = v.checks.iter().find(|c| c.what == "data").unwrap();
        assert!(c.detail.contains("no data arrived"), "{}", c.detail);
        r.bytes = 1_000_000;
        assert!(
            judge(&r, &e)
                .checks
                .iter()
                .find(|c| c.what == "data")
                .unwrap()
                .pass
        );
    }
}
