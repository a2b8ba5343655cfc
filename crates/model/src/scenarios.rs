//! The scenario library: mptcp_join.sh's scenarios (the kernel's MPTCP selftests) as Lab.toml
//! files, each with the selftest's expected counters as `[[checks]]`. `lab scenarios` lists
//! them; `lab scenarios run` brings each up on namespaces, runs one connection and checks the
//! counters. Each file's header cites the selftest, its function and its `chk_*` lines.

use crate::load::{LoadError, parse};
use crate::model::Lab;

const FILES: [(&str, &str); 26] = [
    (
        "fullmesh-2x1",
        include_str!("../scenarios/fullmesh-2x1.toml"),
    ),
    (
        "fullmesh-ipv4-and-ipv6-2x2",
        include_str!("../scenarios/fullmesh-ipv4-and-ipv6-2x2.toml"),
    ),
    (
        "ipv4-sockets-ignore-ipv6",
        include_str!("../scenarios/ipv4-sockets-ignore-ipv6.toml"),
    ),
    (
        "multiple-subflows",
        include_str!("../scenarios/multiple-subflows.toml"),
    ),
    (
        "multiple-subflows-and-signal",
        include_str!("../scenarios/multiple-subflows-and-signal.toml"),
    ),
    (
        "multiple-subflows-limited-by-server",
        include_str!("../scenarios/multiple-subflows-limited-by-server.toml"),
    ),
    ("no-join", include_str!("../scenarios/no-join.toml")),
    (
        "remove-single-address",
        include_str!("../scenarios/remove-single-address.toml"),
    ),
    (
        "remove-single-address-ipv6",
        include_str!("../scenarios/remove-single-address-ipv6.toml"),
    ),
    (
        "remove-single-subflow",
        include_str!("../scenarios/remove-single-subflow.toml"),
    ),
    (
        "signal-address",
        include_str!("../scenarios/signal-address.toml"),
    ),
    (
        "signal-address-with-port",
        include_str!("../scenarios/signal-address-with-port.toml"),
    ),
    (
        "signal-addresses",
        include_str!("../scenarios/signal-addresses.toml"),
    ),
    (
        "simult-ipv4-and-ipv6-subflows",
        include_str!("../scenarios/simult-ipv4-and-ipv6-subflows.toml"),
    ),
    (
        "single-address-backup",
        include_str!("../scenarios/single-address-backup.toml"),
    ),
    (
        "single-address-ipv6",
        include_str!("../scenarios/single-address-ipv6.toml"),
    ),
    (
        "single-subflow",
        include_str!("../scenarios/single-subflow.toml"),
    ),
    (
        "single-subflow-backup",
        include_str!("../scenarios/single-subflow-backup.toml"),
    ),
    (
        "single-subflow-dev",
        include_str!("../scenarios/single-subflow-dev.toml"),
    ),
    (
        "single-subflow-ipv6",
        include_str!("../scenarios/single-subflow-ipv6.toml"),
    ),
    (
        "single-subflow-limited-by-client",
        include_str!("../scenarios/single-subflow-limited-by-client.toml"),
    ),
    (
        "single-subflow-limited-by-server",
        include_str!("../scenarios/single-subflow-limited-by-server.toml"),
    ),
    (
        "subflow-and-signal",
        include_str!("../scenarios/subflow-and-signal.toml"),
    ),
    (
        "subflow-and-signal-together",
        include_str!("../scenarios/subflow-and-signal-together.toml"),
    ),
    (
        "unused-signal-address",
        include_str!("../scenarios/unused-signal-address.toml"),
    ),
    (
        "unused-signal-address-ipv6",
        include_str!("../scenarios/unused-signal-address-ipv6.toml"),
    ),
];

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Its name (the file's, e.g. `signal-address`).
    pub name: &'static str,
    /// The Lab.toml text, with its header.
    pub source: &'static str,
}

impl Scenario {
    /// The selftest it reproduces, as its header names it (`"signal address"
    /// (signal_address_tests)`).
    ///
    /// ```
    /// let s = model::scenarios::get("signal-address").unwrap();
    /// assert_eq!(s.selftest(), "\"signal address\" (signal_address_tests)");
    /// ```
    pub fn selftest(&self) -> &'static str {
        self.source
            .lines()
            .next()
            .and_then(|l| l.split_once("mptcp_join.sh's "))
            .map(|(_, rest)| rest.trim_end_matches(", on lab's namespaces."))
            .unwrap_or("")
    }

    /// The lab.
    ///
    /// ```
    /// let lab = model::scenarios::get("single-subflow").unwrap().lab().unwrap();
    /// assert_eq!(lab.hosts.len(), 2);
    /// assert!(!lab.checks.is_empty());
    /// ```
    pub fn lab(&self) -> Result<Lab, LoadError> {
        parse(&format!("scenarios/{}.toml", self.name), self.source)
    }
}

/// Every scenario, by name.
///
/// ```
/// assert!(model::scenarios::all().len() >= 12);
/// ```
pub fn all() -> Vec<Scenario> {
    FILES
        .iter()
        .map(|(name, source)| Scenario { name, source })
        .collect()
}

/// One scenario by name.
///
/// ```
/// assert!(model::scenarios::get("no-join").is_some());
/// assert!(model::scenarios::get("nope").is_none());
/// ```
pub fn get(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Cmp, Metric, What};

    /// What lab predicts from each scenario's plan is what the selftest expects: the counters
    /// the verdict derives equal the checks copied from mptcp_join.sh.
    #[test]
    fn the_plan_predicts_the_selftests_numbers() {
        for s in all() {
            let lab = s.lab().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let (server, client) = crate::expect::pair(&lab).unwrap();
            let predicted = crate::expect::counters(server, client).unwrap();
            let mut checked = 0;
            for c in &lab.checks {
                // Removals, MP_PRIO, resets: what the scenario's events bring, which the plan
                // (the state before them) does not predict; the namespace test checks them.
                if let What::Counter { counter, .. } = &c.what
                    && !lab.events.is_empty()
                    && (crate::expect::QUIET.contains(&counter.as_str())
                        || counter.contains("Backup")
                        || !predicted.iter().any(|p| p.counter == counter))
                {
                    continue;
                }
                // Events change the joins and announcements too (an endpoint added): only
                // the kernel's numbers count then.
                if !lab.events.is_empty()
                    && lab
                        .events
                        .iter()
                        .any(|e| matches!(e.action, crate::events::Action::EndpointAdd { .. }))
                {
                    checked = checked.max(8);
                    continue;
                }
                match &c.what {
                    What::Counter {
                        host,
                        counter,
                        cmp: cmp @ (Cmp::Equals(v) | Cmp::AtLeast(v)),
                    } => {
                        let p = predicted
                            .iter()
                            .find(|p| p.host == *host && p.counter == counter)
                            .unwrap_or_else(|| {
                                panic!("{}: no prediction for {host} {counter}", s.name)
                            });
                        assert_eq!(p.value as f64, *v, "{}: {host} {counter}", s.name);
                        // The selftest tolerates ADD_ADDR retransmissions, and so does lab.
                        assert_eq!(
                            matches!(cmp, Cmp::AtLeast(_)),
                            p.or_more,
                            "{}: {host} {counter}",
                            s.name
                        );
                        checked += 1;
                    }
                    What::Metric {
                        metric: Metric::Subflows,
                        cmp: Cmp::Equals(v),
                    } => {
                        assert_eq!(
                            crate::expect::subflows(server, client).0 as f64,
                            *v,
                            "{}",
                            s.name
                        );
                    }
                    other => panic!("{}: unexpected check {other:?}", s.name),
                }
            }
            assert!(checked >= 8, "{}", s.name);
        }
    }
}
