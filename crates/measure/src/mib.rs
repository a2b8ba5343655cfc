//! The kernel's MPTCP MIB counters (`MPTcpExt` in /proc/net/netstat), as the kernel's
//! mptcp_join.sh reads them to check joins and address announcements.

use std::collections::BTreeMap;

use serde::Serialize;

/// The counters a report shows, in this order.
pub const REPORTED: [&str; 11] = [
    "MPCapableSYNRX",
    "MPCapableSYNACKRX",
    "MPCapableACKRX",
    "MPJoinSynRx",
    "MPJoinSynAckRx",
    "MPJoinAckRx",
    "MPJoinRejected",
    "AddAddr",
    "EchoAdd",
    "MPJoinSynTxCreatSkErr",
    "MPTCPRetrans",
];

/// `MPTcpExt` counters by name (without the `MPTcpExt` prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mib(pub BTreeMap<String, u64>);

impl Mib {
    /// Parse /proc/net/netstat: pairs of lines, names then values, each starting `Prefix:`.
    pub fn parse(netstat: &str) -> Self {
        let mut out = BTreeMap::new();
        let lines: Vec<&str> = netstat.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let (Some(("MPTcpExt", names)), Some(("MPTcpExt", values))) =
                (names.split_once(':'), values.split_once(':'))
            else {
                continue;
            };
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                if let Ok(v) = v.parse() {
                    out.insert(n.to_string(), v);
                }
            }
        }
        Mib(out)
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Counter increments from `before` to `self` (counters only grow; a reset reads as 0).
    pub fn since(&self, before: &Mib) -> Mib {
        Mib(self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k))))
            .collect())
    }

    /// Only the counters in [`REPORTED`], zeros included.
    pub fn reported(&self) -> BTreeMap<&'static str, u64> {
        REPORTED.iter().map(|k| (*k, self.get(k))).collect()
    }
}

/// Read the counters of the namespace the calling thread is in. `/proc/thread-self` matters:
/// `/proc/net` follows the process's main thread, not a thread that entered a namespace.
pub fn read_here() -> std::io::Result<Mib> {
    std::fs::read_to_string("/proc/thread-self/net/netstat").map(|s| Mib::parse(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv
TcpExt: 0 0
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
MPTcpExt: MPCapableSYNRX MPCapableSYNTX MPJoinSynRx MPJoinAckRx AddAddr EchoAdd
MPTcpExt: 1 0 2 2 2 2
";

    #[test]
    fn parses_mptcpext_only_and_diffs() {
        let m = Mib::parse(SAMPLE);
        assert_eq!(m.get("MPJoinAckRx"), 2);
        assert_eq!(m.get("SyncookiesSent"), 0);
        assert!(!m.0.contains_key("InNoRoutes"));
        let before = Mib::parse(&SAMPLE.replace("1 0 2 2 2 2", "1 0 1 0 0 0"));
        let d = m.since(&before);
        assert_eq!(d.get("MPJoinSynRx"), 1);
        assert_eq!(d.get("MPJoinAckRx"), 2);
        assert_eq!(d.get("MPCapableSYNRX"), 0);
        assert_eq!(d.reported()["EchoAdd"], 2);
    }

    #[test]
    fn this_kernel_has_the_counters() {
        let Ok(m) = read_here() else { return };
        if std::path::Path::new("/proc/sys/net/mptcp/enabled").exists() {
            assert!(m.0.contains_key("MPJoinAckRx"), "{m:?}");
        }
    }
}
