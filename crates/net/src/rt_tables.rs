//! Lines for /etc/iproute2/rt_tables.

use crate::spec::HostNet;

/// One `ID NAME` line per routing table, in the file's format (`100 table1`).
pub fn lines(host: &HostNet) -> Vec<String> {
    host.tables
        .iter()
        .map(|t| format!("{} {}", t.id, t.name))
        .collect()
}

/// The whole fragment, one line each, newline-terminated.
pub fn render(host: &HostNet) -> String {
    lines(host).iter().map(|l| format!("{l}\n")).collect()
}
