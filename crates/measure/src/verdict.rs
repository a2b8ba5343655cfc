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
    /// The MPTCP paths (interfaces) of each host that the plan uses (the first address, an
    /// endpoint): each must carry a share of the bytes.
    pub paths: Vec<(String, Vec<String>)>,
    /// Path interfaces the plan gives no part (no endpoint, only backup): not judged, and why.
    #[serde(default)]
    pub not_judged: Vec<(String, String, String)>,
    /// Each path must carry at least this fraction of its fair share (host bytes / paths).
    pub min_share: f64,
    /// Sum of the shaped rates of the client's paths, if every path is shaped.
    pub rate_sum_bps: Option<u64>,
    /// When set (and the paths are shaped): goodput must reach this fraction of the rate sum.
    pub min_efficiency: Option<f64>,
}

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
    let seen = r.subflows_max.map_or(r.subflows_mib, u64::from);
    checks.push(Check {
        what: "subflows".into(),
        pass: if e.subflows_exact {
            seen == e.subflows
        } else {
            seen >= e.subflows
        },
        detail: format!(
            "{seen} established (expected {}{}: {}); server MIB: {} connection(s), {} joins acknowledged each",
            if e.subflows_exact { "exactly " } else { "at least " },
            e.subflows,
            e.subflows_why,
            r.connections,
            r.subflows_mib.saturating_sub(1)
        ),
    });
    // Counters are per connection: iperf3 opens a control connection beside the data one.
    let connections = r.connections.max(1);
    for c in &e.counters {
        let mib = match c.end {
            End::Server => &r.server_mib,
            End::Client => &r.client_mib,
        };
        let got = mib.get(&c.counter).copied().unwrap_or(0);
        let want = c.equals * connections;
        checks.push(Check {
            what: format!("{} {}", c.host, c.counter),
            pass: got == want || (c.or_more && got > want),
            detail: format!(
                "{got}, expected {}{want}{}",
                if c.or_more { "at least " } else { "" },
                if connections > 1 {
                    format!(" ({} per connection x {connections})", c.equals)
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
