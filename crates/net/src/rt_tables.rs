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

/// `current` (the file's text) with the plan's tables added where the file does not already
/// map that id or that name; existing lines are kept as they are. Running it twice adds nothing.
pub fn merge(current: &str, host: &HostNet) -> String {
    let taken: Vec<(String, String)> = current
        .lines()
        .filter_map(|l| {
            let l = l.split('#').next()?.trim();
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    let mut out = current.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for t in &host.tables {
        let id = t.id.to_string();
        if !taken.iter().any(|(i, n)| *i == id || *n == t.name) {
            out.push_str(&format!("{id} {}\n", t.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Table;

    #[test]
    fn merge_adds_missing_lines_once() {
        let host = HostNet {
            host: "h".into(),
            interfaces: vec![],
            dhcp_interfaces: vec![],
            tables: ["table1", "table2"]
                .iter()
                .enumerate()
                .map(|(i, n)| Table {
                    id: 100 * (i as u32 + 1),
                    name: (*n).into(),
                    dev: "e".into(),
                    addresses: vec!["10.0.0.1/24".parse().unwrap()],
                    gateways: vec![],
                })
                .collect(),
            routes: vec![],
            endpoints: vec![],
            limits: None,
            sysctls: vec![],
        };
        let debian = "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n";
        let once = merge(debian, &host);
        assert!(once.ends_with("100 table1\n200 table2\n"), "{once}");
        assert_eq!(merge(&once, &host), once);
        // An id or a name already there is left alone (the guide's hand-added lines).
        let mine = "200\ttable2\n";
        assert_eq!(merge(mine, &host), "200\ttable2\n100 table1\n");
        assert_eq!(merge("", &host), "100 table1\n200 table2\n");
    }
}
