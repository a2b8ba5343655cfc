//! Instant labs for real: namespaces, bridges, veth pairs and the kernel's MPTCP path manager,
//! checked with iproute2 as an independent observer. Root only; every lab has a unique name and
//! is removed by a guard even when the test fails.

mod common;

use std::process::Command;

use common::Up;
use lab::{Lab, Preset};

fn root() -> bool {
    testkit::require(
        "instant labs",
        testkit::root().and_then(|()| testkit::mptcp()),
    )
}

fn unique(lab: Lab) -> Up {
    common::unique(lab, "i")
}

fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ns(up: &Up, host: &str) -> String {
    up.ns(host)
}

/// A TCP connection from namespace `from` to `dst` served in namespace `to`.
fn reach(from: &str, to: &str, dst: &str) {
    let server = netns::Namespace::open(to).unwrap();
    let listener = server
        .run(|| std::net::TcpListener::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = netns::Namespace::open(from).unwrap();
    let addr: std::net::SocketAddr = format!("{dst}:{port}").parse().unwrap();
    client
        .run(|| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)))
        .unwrap()
        .unwrap_or_else(|e| panic!("{from} -> {dst}: {e}"));
    listener.accept().unwrap();
}

fn snapshot(up: &Up, host: &str) -> String {
    let n = ns(up, host);
    [
        ip(&n, &["-4", "rule"]),
        ip(&n, &["-4", "route", "show", "table", "all"]),
        ip(&n, &["mptcp", "endpoint", "show"]),
        ip(&n, &["mptcp", "limits", "show"]),
        ip(&n, &["-4", "-br", "addr"]),
    ]
    .join("\n")
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn builtin_lab_up_apply_twice_down() {
    if !root() {
        return;
    }
    let up = unique(Preset::Builtin.load().unwrap());
    let report = up.up();
    let (_, netns) = &report.providers[0];
    assert_eq!(netns.hosts.len(), 2);
    assert!(netns.hosts.iter().all(|h| h.created), "{report:?}");
    assert!(report.applied.is_empty(), "not applied yet: {report:?}");

    let first = up.apply(None).unwrap();
    assert!(first.iter().all(|h| !h.changes.is_empty()));
    let after_first: Vec<String> = ["ue1", "ue2"].iter().map(|h| snapshot(&up, h)).collect();

    let second = up.apply(None).unwrap();
    for h in &second {
        assert!(
            h.changes.is_empty(),
            "{}: second apply changed {:?}",
            h.host,
            h.changes
        );
    }
    let after_second: Vec<String> = ["ue1", "ue2"].iter().map(|h| snapshot(&up, h)).collect();
    assert_eq!(after_first, after_second);

    // What iproute2 sees is the plan: per-source rules and tables, laminar endpoints, limits.
    let ue2 = &after_first[1];
    for want in [
        "from 10.1.1.4 lookup 100",
        "from 10.1.1.6 lookup 300",
        "10.1.1.0/24 dev enp0s9 table 200 proto static scope link",
        "default via 10.1.1.1 dev enp0s10 table 300 proto static",
        "10.1.1.5 id 2 rawflags 20 dev enp0s9",
        "add_addr_accepted 3 subflows 5",
    ] {
        assert!(ue2.contains(want), "ue2 lacks `{want}`:\n{ue2}");
    }
    assert!(
        ue2.lines()
            .any(|l| l.starts_with("enp0s8@") && l.contains(" UP ") && l.contains("10.1.1.4/24")),
        "{ue2}"
    );
    let ue1 = &after_first[0];
    for want in [
        "10.1.1.2 id 2 signal dev enp0s9",
        "10.1.1.3 id 3 signal dev enp0s10",
    ] {
        assert!(ue1.contains(want), "ue1 lacks `{want}`:\n{ue1}");
    }
    // Both hosts share one segment: every client address reaches every server address.
    let n2 = ns(&up, "ue2");
    for dst in ["10.1.1.1", "10.1.1.2", "10.1.1.3"] {
        reach(&n2, &ns(&up, "ue1"), dst);
    }

    let status = up.s.status().unwrap();
    assert_eq!(status.state, "up");
    assert!(status.hosts.iter().all(|h| h.pending_changes == Some(0)));
    // Every path interface of the lab's, up, with a MAC (the one Lab.toml gives, if any).
    let ue1 = &status.hosts[0];
    for i in up.lab.hosts[0].path_interfaces() {
        let seen = ue1.interfaces.iter().find(|s| s.name == i.name);
        let seen = seen.unwrap_or_else(|| panic!("{} not in {:?}", i.name, ue1.interfaces));
        assert!(seen.up, "{seen:?}");
        match i.mac {
            Some(m) => assert_eq!(seen.mac, Some(m.to_string()), "{seen:?}"),
            None => assert!(seen.mac.is_some(), "{seen:?}"),
        }
    }
    assert!(!ue1.interfaces.iter().any(|s| s.name == "lo"));

    let removed = up.s.destroy().unwrap();
    assert_eq!(removed.removed[0].1.len(), 3, "two hosts and one segment");
    assert!(netns::topology::existing(&up.lab.name).unwrap().is_empty());
    let state = up.s.state().file(&provider_netns::state_name(&up.lab));
    assert!(!state.exists());
    assert_eq!(up.s.status().unwrap().state, "down");
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn stale_configuration_is_corrected_and_foreign_state_kept() {
    if !root() {
        return;
    }
    let up = common::applied(Preset::Builtin.load().unwrap(), "i");
    let n = ns(&up, "ue2");
    // Someone edits the host by hand: a wrong endpoint, a stray route in a lab table, a route
    // deleted, and a table lab does not own.
    ip(&n, &["mptcp", "endpoint", "flush"]);
    ip(
        &n,
        &["mptcp", "endpoint", "add", "10.1.1.5", "id", "7", "subflow"],
    );
    ip(
        &n,
        &[
            "route",
            "add",
            "10.9.0.0/16",
            "dev",
            "enp0s8",
            "table",
            "100",
        ],
    );
    ip(&n, &["route", "del", "default", "table", "200"]);
    ip(
        &n,
        &[
            "route",
            "add",
            "10.8.0.0/16",
            "dev",
            "enp0s8",
            "table",
            "555",
        ],
    );
    let fixed = up.apply(Some("ue2")).unwrap();
    let argv: Vec<String> = fixed[0]
        .changes
        .iter()
        .map(|c| c.argv().unwrap().join(" "))
        .collect();
    assert_eq!(
        argv,
        [
            "ip mptcp endpoint delete id 7",
            "ip route del 10.9.0.0/16 dev enp0s8 table 100",
            "ip route add default via 10.1.1.1 dev enp0s9 table 200",
            "ip mptcp endpoint add 10.1.1.4 dev enp0s8 id 1 laminar",
            "ip mptcp endpoint add 10.1.1.5 dev enp0s9 id 2 laminar",
            "ip mptcp endpoint add 10.1.1.6 dev enp0s10 id 3 laminar",
        ]
    );
    assert!(ip(&n, &["route", "show", "table", "555"]).contains("10.8.0.0/16"));
    assert!(up.apply(None).unwrap().iter().all(|h| h.changes.is_empty()));
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn link_up_restores_the_routes_the_kernel_dropped() {
    if !root() {
        return;
    }
    let up = common::applied(Preset::Builtin.load().unwrap(), "i");
    let n = ns(&up, "ue2");
    up.s.set_link("ue2", "enp0s9", false).unwrap();
    assert_eq!(
        ip(&n, &["route", "show", "table", "200"]).trim(),
        "",
        "the kernel drops them"
    );
    let restored = up.s.set_link("ue2", "enp0s9", true).unwrap();
    assert_eq!(restored.len(), 2, "{restored:?}");
    assert!(ip(&n, &["route", "show", "table", "200"]).contains("default via 10.1.1.1"));
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn point_to_point_links_with_macs_mtu_and_two_labs_side_by_side() {
    if !root() {
        return;
    }
    let mut p2p = common::p2p_fixture();
    // No netem on every kernel: keep rate shaping only for this test.
    for h in &mut p2p.hosts {
        for i in &mut h.interfaces {
            if let Some(s) = &mut i.shaping {
                s.delay_us = None;
                s.loss_ppm = None;
            }
        }
    }
    let a = unique(p2p.clone());
    let b = unique(Preset::Builtin.load().unwrap());
    a.up();
    b.up();
    // The fixture asks for cubic; a namespace may only pick an algorithm the machine allows.
    let allowed =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control").unwrap();
    if !allowed.split_whitespace().any(|a| a == "cubic") {
        let err = a.apply(None).unwrap_err().to_string();
        assert!(err.contains("tcp_allowed_congestion_control"), "{err}");
    }
    let mut a_lab = a.lab.clone();
    for h in &mut a_lab.hosts {
        h.sysctls
            .retain(|s| s.key != "net.ipv4.tcp_congestion_control");
    }
    let a_session = lab::Session::new(a_lab, a.dir.path()).unwrap();
    let apply = lab::ApplyOptions::default();
    a_session.apply(None, &apply).unwrap();
    b.apply(None).unwrap();
    // Shaped interfaces are idempotent too: the second apply reads tbf's rate back.
    let again = a_session.apply(None, &apply).unwrap();
    for h in &again {
        assert!(h.changes.is_empty(), "{}: {:?}", h.host, h.changes);
    }
    let srv = ns(&a, "srv");
    let link = ip(&srv, &["-br", "link", "show", "eth1"]);
    assert!(link.contains("02:00:00:00:01:01"), "{link}");
    let q = Command::new("tc")
        .args(["-n", &srv, "qdisc", "show", "dev", "eth2"])
        .output()
        .unwrap();
    let q = String::from_utf8_lossy(&q.stdout);
    assert!(q.contains("tbf") && q.contains("rate 50Mbit"), "{q}");
    for dst in ["10.0.1.1", "10.0.2.1", "10.0.3.1"] {
        reach(&ns(&a, "cli"), &srv, dst);
    }
    // Down one lab: the other is untouched.
    a.s.destroy().unwrap();
    assert_eq!(netns::topology::existing(&b.lab.name).unwrap().len(), 3);
    assert!(netns::topology::existing(&a.lab.name).unwrap().is_empty());
}

/// Delay and loss need the netem qdisc; where the kernel lacks it (this machine), apply fails
/// with an error that names what is missing, instead of tc's "Unknown qdisc".
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn netem_shaping_works_or_names_what_is_missing() {
    if !root() {
        return;
    }
    let mut p2p = common::p2p_fixture();
    for h in &mut p2p.hosts {
        h.sysctls
            .retain(|s| s.key != "net.ipv4.tcp_congestion_control");
    }
    let up = unique(p2p);
    up.up();
    match up.apply(None) {
        Ok(_) => {
            let q = Command::new("tc")
                .args(["-n", &ns(&up, "srv"), "qdisc", "show", "dev", "eth3"])
                .output()
                .unwrap();
            let q = String::from_utf8_lossy(&q.stdout);
            assert!(q.contains("netem") && q.contains("delay 10ms"), "{q}");
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains("CONFIG_NET_SCH_NETEM") && e.contains("tbf"),
                "{e}"
            );
        }
    }
}
