//! `lab doctor`: every check fires on the mistake it names, and stays quiet on the built-in lab.

use model::{Preset, doctor};

fn codes(lab: &model::Lab) -> Vec<(String, &'static str)> {
    doctor::check(lab)
        .into_iter()
        .map(|f| (f.host, f.code))
        .collect()
}

fn builtin_plus(extra: &str) -> model::Lab {
    let src = format!("{}\n{extra}\n", Preset::Builtin.source());
    model::parse("Lab.toml", &src).unwrap_or_else(|e| panic!("{e}"))
}

fn has(lab: &model::Lab, host: &str, code: &str) -> bool {
    codes(lab).iter().any(|(h, c)| h == host && *c == code)
}

#[test]
fn builtin_lab_is_clean() {
    let lab = Preset::Builtin.load().unwrap();
    assert_eq!(doctor::check(&lab), vec![]);
}

#[test]
fn guide_preset_reports_limits_and_roles() {
    let lab = Preset::Guide.load().unwrap();
    let found = codes(&lab);
    for (host, code) in [
        ("ue1", "limits-too-low"),
        ("ue2", "limits-too-low"),
        ("ue1", "no-signal-endpoint"),
        ("ue1", "subflow-endpoint-on-server"),
        ("ue1", "arp-flux"),
        ("ue2", "arp-flux"),
        ("ue1", "mptcpd-addr-adv"),
        ("ue2", "mptcpd-addr-adv"),
    ] {
        assert!(
            found.contains(&(host.to_string(), code)),
            "{host} {code} missing from {found:?}"
        );
    }
    assert_eq!(found.len(), 8, "{found:?}");
}

#[test]
fn limits_below_the_paths_and_announcements() {
    let lab = builtin_plus("[hosts.ue2.mptcp.limits]\nsubflows = 2\nadd_addr_accepted = 1\n");
    let f: Vec<_> = doctor::check(&lab)
        .into_iter()
        .filter(|f| f.host == "ue2")
        .collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.contains("accept 1 announced address"),
        "{}",
        f[0].message
    );
    // Two extra subflows are enough for three paths: only add_addr_accepted is reported.
    assert!(
        f[0].message.contains("add_addr_accepted"),
        "{}",
        f[0].message
    );
}

#[test]
fn kernel_default_limits_are_too_low_for_the_client() {
    let src = Preset::Builtin.source().to_string() + "\n[hosts.ue2.mptcp]\njoin = \"subflow\"\n";
    let mut lab = model::parse("Lab.toml", &src).unwrap();
    lab.hosts[1].limits = None;
    assert!(doctor::check(&lab).iter().any(|f| f.host == "ue2"
        && f.code == "limits-too-low"
        && f.message.contains("the kernel's default limits accept 0")));
}

#[test]
fn reversed_roles() {
    let lab = builtin_plus(
        "[[hosts.ue2.mptcp.endpoints]]\naddress = \"10.1.1.5\"\ndev = \"enp0s9\"\nflags = [\"signal\"]\n\n\
         [[hosts.ue1.mptcp.endpoints]]\naddress = \"10.1.1.2\"\ndev = \"enp0s9\"\nflags = [\"subflow\"]\n",
    );
    assert!(has(&lab, "ue2", "signal-endpoint-on-client"));
    assert!(has(&lab, "ue1", "subflow-endpoint-on-server"));
    assert!(has(&lab, "ue1", "no-signal-endpoint"));
}

#[test]
fn endpoint_without_dev_on_nat_and_fullmesh_with_signal() {
    let lab = builtin_plus(
        "[[hosts.ue1.mptcp.endpoints]]\naddress = \"10.1.1.2\"\nflags = [\"signal\", \"fullmesh\"]\n\n\
         [[hosts.ue1.mptcp.endpoints]]\naddress = \"10.0.2.15\"\ndev = \"enp0s3\"\nflags = [\"signal\"]\n",
    );
    assert!(has(&lab, "ue1", "endpoint-without-dev"));
    assert!(has(&lab, "ue1", "fullmesh-with-signal"));
    assert!(has(&lab, "ue1", "endpoint-on-nat"));
}

#[test]
fn endpoint_without_per_source_routing() {
    let src = Preset::Guide
        .source()
        .replace("table = { id = 300, name = \"table3\" }\n", "");
    let lab = model::parse("Lab.toml", &src).unwrap();
    let f: Vec<_> = doctor::check(&lab)
        .into_iter()
        .filter(|f| f.code == "endpoint-without-routing")
        .collect();
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f.iter()
            .all(|f| f.message.contains("10.1.1.3") || f.message.contains("10.1.1.6"))
    );
}

#[test]
fn strict_rp_filter() {
    let lab = builtin_plus(
        "[hosts.ue1.sysctls]\n\"net.ipv4.conf.enp0s9.rp_filter\" = 1\n\"net.ipv4.conf.all.rp_filter\" = 0\n",
    );
    let f: Vec<_> = doctor::check(&lab)
        .into_iter()
        .filter(|f| f.code == "rp-filter-strict")
        .collect();
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("enp0s9") && !f[0].message.contains("enp0s8"));
    // `all` = 2 wins over a per-device 1: the kernel takes the larger value.
    let lab = builtin_plus("[hosts.ue1.sysctls]\n\"net.ipv4.conf.enp0s9.rp_filter\" = 1\n");
    assert!(!has(&lab, "ue1", "rp-filter-strict"));
}

#[test]
fn arp_flux_is_fixed_by_all_or_per_device_settings() {
    let base = Preset::Guide.source();
    let fixed_all = format!(
        "{base}\n[hosts.ue1.sysctls]\n\"net.ipv4.conf.all.arp_ignore\" = 1\n\"net.ipv4.conf.all.arp_announce\" = 2\n"
    );
    let lab = model::parse("Lab.toml", &fixed_all).unwrap();
    assert!(!has(&lab, "ue1", "arp-flux"));
    assert!(has(&lab, "ue2", "arp-flux"));
    let half = format!("{base}\n[hosts.ue1.sysctls]\n\"net.ipv4.conf.all.arp_ignore\" = 1\n");
    let lab = model::parse("Lab.toml", &half).unwrap();
    assert!(has(&lab, "ue1", "arp-flux"));
}

#[test]
fn point_to_point_links_need_no_arp_settings() {
    let lab = model::parse(
        "p2p",
        include_str!("../../../fixtures/labs/p2p-shaped.toml"),
    )
    .unwrap();
    assert_eq!(doctor::check(&lab), vec![]);
    assert!(
        lab.hosts
            .iter()
            .all(|h| h.sysctls.iter().all(|s| !s.key.contains("arp_")))
    );
}

const IPV6: &str = include_str!("../../../fixtures/labs/ipv6.toml");
const DUAL: &str = include_str!("../../../fixtures/labs/dual-stack.toml");

/// `lab doctor` understands IPv6: the IPv6 and dual-stack fixtures are clean; IPv4-only
/// advice (rp_filter) stays quiet on an IPv6-only host; an IPv6 endpoint on an IPv4
/// connection and IPv6 turned off under IPv6 addresses are reported.
#[test]
fn ipv6_labs_and_their_mistakes() {
    for (name, src) in [("ipv6", IPV6), ("dual", DUAL)] {
        let lab = model::parse("Lab.toml", src).unwrap();
        assert_eq!(doctor::check(&lab), vec![], "{name}");
    }
    // rp_filter strict means nothing to IPv6.
    let strict = format!("{IPV6}\n[hosts.cli.sysctls]\n\"net.ipv4.conf.all.rp_filter\" = 1\n");
    let lab = model::parse("Lab.toml", &strict).unwrap();
    assert!(!has(&lab, "cli", "rp-filter-strict"), "{:?}", codes(&lab));
    // The dual-stack lab's connection is IPv4: an IPv6 signal endpoint is never used.
    let v6_signal = DUAL.replace(
        "[hosts.cli]",
        "[[hosts.srv.mptcp.endpoints]]\naddress = \"10.0.2.1\"\ndev = \"eth2\"\nflags = [\"signal\"]\n\n[[hosts.srv.mptcp.endpoints]]\naddress = \"dead:beef:2::1\"\ndev = \"eth2\"\nflags = [\"signal\"]\n\n[hosts.cli]",
    );
    let lab = model::parse("Lab.toml", &v6_signal).unwrap();
    assert!(
        has(&lab, "srv", "endpoint-family-unused"),
        "{:?}",
        codes(&lab)
    );
    // The same endpoint on the IPv6 lab is fine.
    let lab = model::parse("Lab.toml", IPV6).unwrap();
    assert!(!has(&lab, "srv", "endpoint-family-unused"));
    let off = format!("{IPV6}\n[hosts.srv.sysctls]\n\"net.ipv6.conf.eth2.disable_ipv6\" = 1\n");
    let lab = model::parse("Lab.toml", &off).unwrap();
    let f = doctor::check(&lab);
    let hit = f
        .iter()
        .find(|f| f.code == "ipv6-disabled")
        .expect("ipv6-disabled");
    assert!(hit.message.contains("eth2"), "{}", hit.message);
}
