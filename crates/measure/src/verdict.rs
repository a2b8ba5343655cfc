//! The verdict on a transfer: did the connection use every path the plan expects?

use serde::Serialize;

use crate::traffic::Report;

/// What the plan expects of a transfer.
#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    /// Subflows per connection, the initial one included.
    pub subflows: u64,
    /// Why that many (for people).
    pub subflows_why: String,
    /// The MPTCP paths (interfaces) of each host: each must carry a share of the bytes.
    pub paths: Vec<(String, Vec<String>)>,
    /// Each path must carry at least this fraction of its fair share (host bytes / paths).
    pub min_share: f64,
    /// Sum of the shaped rates of the client's paths, if every path is shaped.
    pub rate_sum_bps: Option<u64>,
    /// When set (and the paths are shaped): goodput must reach this fraction of the rate sum.
    pub min_efficiency: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
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
        pass: seen >= e.subflows,
        detail: format!(
            "{seen} established (expected {}: {}); server MIB: {} connection(s), {} joins acknowledged each",
            e.subflows,
            e.subflows_why,
            r.connections,
            r.subflows_mib.saturating_sub(1)
        ),
    });
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
