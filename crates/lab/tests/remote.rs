//! `lab net apply` over SSH to a namespace host running its own sshd: the same end state as the
//! namespace (netlink) applier, checked with iproute2's JSON output, and idempotent.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use guest::sshd::Sshd;
use guest::{Auth, Ssh, SshConfig};
use lab::{Lab, remote};

fn p2p() -> Lab {
    common::p2p()
}

fn up(lab: Lab) -> common::Up {
    common::up(lab, "r")
}

/// iproute2's and tc's view of a namespace, without what differs between two equal hosts
/// (interface indexes, the route protocol netlink and `ip route add` record differently).
fn state(ns: &str) -> serde_json::Value {
    let run = |cmd: &str, args: &[&str]| -> serde_json::Value {
        let out = Command::new(cmd)
            .arg("-n")
            .arg(ns)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd} {args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    // IPv6 routes of the local table name the kernel's link-local addresses, which differ
    // with the MACs: left out, as the link-local addresses are.
    let mut route6 = run("ip", &["-json", "-6", "route", "show", "table", "all"]);
    // The kernel adds each interface's fe80::/64 route when the interface comes up, in an
    // order that depends on timing: compared as a set.
    if let serde_json::Value::Array(a) = &mut route6 {
        a.retain(|r| r.get("table").and_then(|t| t.as_str()) != Some("local"));
        a.sort_by_key(|r| r.to_string());
    }
    let mut v = serde_json::json!({
        "addr": run("ip", &["-json", "-4", "addr", "show"]),
        "addr6": run("ip", &["-json", "-6", "addr", "show", "scope", "global"]),
        "rule": run("ip", &["-json", "-4", "rule", "show"]),
        "rule6": run("ip", &["-json", "-6", "rule", "show"]),
        "route": run("ip", &["-json", "-4", "route", "show", "table", "all"]),
        "route6": route6,
        "endpoints": run("ip", &["-json", "mptcp", "endpoint", "show"]),
        "limits": run("ip", &["mptcp", "limits", "show"]),
        "qdisc": run("tc", &["-json", "qdisc", "show"]),
    });
    strip(&mut v);
    v
}

/// An SSH session to `host`'s own sshd, its TCP connection started inside the host's
/// namespace (sshd listens on its loopback); the key is trusted on first use.
fn ssh_in(ns: &str, host: &str, sshd: &Sshd, known_hosts: std::path::PathBuf) -> Ssh {
    let mut cfg = SshConfig::new(
        host,
        "127.0.0.1",
        sshd.port,
        "root",
        Auth::Key(sshd.client_key.clone()),
        known_hosts,
    );
    cfg.trust_on_first_use = true;
    Ssh::with_connector(cfg, netns::ns::connector(ns.to_string()))
}

fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for k in [
                "ifindex",
                "protocol",
                "handle",
                "refcnt",
                "link_index",
                "link_netnsid",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(strip);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn dual_stack() -> Lab {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/labs/dual-stack.toml"),
    )
    .unwrap();
    lab::parse("dual-stack.toml", &src).unwrap()
}

/// The same for a dual-stack lab: IPv6 addresses, rules and routes, and main-table routes
/// with metrics, reach the same state over SSH (`ip -6`) as over netlink.
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_sshd)),
    ignore = "needs root and the kernel's MPTCP and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn dual_stack_apply_over_ssh_matches_the_namespace_applier() {
    if !testkit::require(
        "lab net apply over SSH, dual stack",
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| guest::sshd::available()),
    ) {
        return;
    }
    let a = up(dual_stack());
    let b = up(dual_stack());
    a.apply(None).unwrap();
    b.apply(Some("cli")).unwrap();
    let srv_ns = b.ns("srv");
    let sshd = Sshd::start_in_netns(&srv_ns).unwrap();
    let ssh = ssh_in(&srv_ns, "srv", &sshd, b.dir.path().join("known_hosts"));
    let plan = b.lab.host("srv").unwrap().net();
    let first = remote::apply(&ssh, &plan, false, None).unwrap();
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let (got, want) = (state(&srv_ns), state(&a.ns("srv")));
    assert_eq!(got, want, "SSH and netlink appliers reach the same state");
    assert!(
        got["route6"].to_string().contains("dead:beef:99::/48")
            && got["route"].to_string().contains("\"metric\":200"),
        "{got}"
    );
    assert!(
        remote::apply(&ssh, &plan, false, None)
            .unwrap()
            .changes
            .is_empty()
    );
    assert!(b.dry_run(Some("srv"))[0].changes.is_empty());
    drop(ssh);
    drop(sshd);
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
#[cfg_attr(
    not(all(lab_netns, lab_sshd)),
    ignore = "needs root and the kernel's MPTCP and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn apply_over_ssh_matches_the_namespace_applier() {
    if !testkit::require(
        "lab net apply over SSH",
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| guest::sshd::available()),
    ) {
        return;
    }
    // Lab A: applied over netlink. Lab B: the same, its server applied over SSH.
    let a = up(p2p());
    let b = up(p2p());
    a.apply(None).unwrap();
    b.apply(Some("cli")).unwrap();

    let srv_ns = b.ns("srv");
    let sshd = Sshd::start_in_netns(&srv_ns).unwrap();
    let ssh = ssh_in(&srv_ns, "srv", &sshd, b.dir.path().join("known_hosts"));
    let plan = b.lab.host("srv").unwrap().net();

    let dry = remote::apply(&ssh, &plan, true, None).unwrap();
    assert!(!dry.changes.is_empty());
    assert_ne!(state(&srv_ns), state(&a.ns("srv")));

    let first = remote::apply(&ssh, &plan, false, None).unwrap();
    assert_eq!(
        first.changes, dry.changes,
        "the dry run said what would be done"
    );
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    assert_eq!(
        state(&srv_ns),
        state(&a.ns("srv")),
        "SSH and netlink appliers reach the same state"
    );
    // Idempotent over SSH, and the netlink applier agrees that nothing is left to do.
    assert!(
        remote::apply(&ssh, &plan, false, None)
            .unwrap()
            .changes
            .is_empty()
    );
    assert!(b.dry_run(Some("srv"))[0].changes.is_empty());

    // Persisting, under a stand-in root: netplan YAML with mode 600, rt_tables lines once.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/iproute2")).unwrap();
    std::fs::write(
        root.path().join("etc/iproute2/rt_tables"),
        "255\tlocal\n254\tmain\n",
    )
    .unwrap();
    let persist = remote::Persist {
        root: root.path().to_path_buf(),
        netplan_apply: false,
    };
    let p = remote::apply(&ssh, &plan, false, Some(&persist)).unwrap();
    assert_eq!(p.files.len(), 2, "{:?}", p.files);
    let yaml = root.path().join("etc/netplan/60-lab.yaml");
    assert_eq!(
        std::fs::metadata(&yaml).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&yaml)
            .unwrap()
            .contains("10.0.1.1/24")
    );
    let rt = std::fs::read_to_string(root.path().join("etc/iproute2/rt_tables")).unwrap();
    assert!(
        rt.starts_with("255\tlocal\n254\tmain\n") && rt.contains("100 table1\n"),
        "{rt}"
    );
    let again = remote::apply(&ssh, &plan, false, Some(&persist)).unwrap();
    assert_eq!(
        again.files.len(),
        1,
        "rt_tables is not rewritten: {:?}",
        again.files
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/iproute2/rt_tables")).unwrap(),
        rt
    );

    drop(ssh);
    drop(sshd);
    std::thread::sleep(Duration::from_millis(50));
}

/// `lab test` between hosts reached only over SSH (each namespace host runs its own sshd):
/// iperf3 through the remote sessions, counters read on second sessions meanwhile.
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_sshd, lab_has_iperf3, lab_has_mptcpize)),
    ignore = "needs root and the kernel's MPTCP, OpenSSH (sshd, ssh, ssh-keygen), iperf3 and mptcpize"
)]
fn traffic_between_hosts_over_ssh() {
    if !testkit::require(
        "lab test over SSH",
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| guest::sshd::available())
            .and_then(|()| testkit::tool("iperf3"))
            .and_then(|()| testkit::tool("mptcpize")),
    ) {
        return;
    }
    let mut lab = p2p();
    // Every link 50 Mbit/s on both ends.
    lab.shape_paths(50_000_000);
    let l = up(lab);
    l.apply(None).unwrap();
    let topo = provider_netns::topology(&l.lab);
    // Both hosts are 127.0.0.1:22 inside their namespaces: one known_hosts each.
    let connect = |host: &str, sshd: &Sshd| {
        let known = l.dir.path().join(format!("known_hosts.{host}"));
        ssh_in(&topo.host_ns(host), host, sshd, known)
    };
    let srv_sshd = Sshd::start_in_netns(&topo.host_ns("srv")).unwrap();
    let cli_sshd = Sshd::start_in_netns(&topo.host_ns("cli")).unwrap();
    let (s1, s2) = (connect("srv", &srv_sshd), connect("srv", &srv_sshd));
    let (c1, c2) = (connect("cli", &cli_sshd), connect("cli", &cli_sshd));
    let r = lab::traffic::test_with(
        &l.lab,
        &lab::TestOptions {
            seconds: 3,
            tool: measure::Tool::Iperf3,
            fail: vec![("eth2".into(), 1.5)],
            ..Default::default()
        },
        measure::Place::Remote {
            run: &s1,
            sample: &s2,
        },
        measure::Place::Remote {
            run: &c1,
            sample: &c2,
        },
    )
    .unwrap();
    let json = serde_json::to_string_pretty(&r).unwrap();
    assert!(r.report.connections >= 1, "{json}");
    assert!(r.report.subflows_mib >= 2, "{json}");
    assert!(r.report.goodput_bps > 40e6, "{json}");
    assert_eq!(r.report.interfaces.len(), 6);
    assert!(
        r.report
            .interfaces
            .iter()
            .filter(|i| i.host == "cli")
            .all(|i| i.tx_bytes > 0),
        "{json}"
    );
    assert!(
        r.report.events.iter().any(|e| e.contains("cli eth2 down")),
        "{json}"
    );
    // iperf3's goodput on the counters' clock: from when lab launched the client, with a
    // command's measured round trip as its uncertainty, within a second of the counters.
    let (g, err) = (r.report.goodput_start_ns, r.report.goodput_start_error_ns);
    assert!(err > 0 && err < 2_000_000_000, "{json}");
    assert!(
        r.report
            .interfaces
            .iter()
            .all(|i| i.start_ns.abs_diff(g) < 1_000_000_000),
        "{json}"
    );
    // The downed link is back, with its routes (the remote applier converged the client).
    let n = topo.host_ns("cli");
    let routes = Command::new("ip")
        .args(["-n", &n, "route", "show", "table", "200"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("default via 10.0.2.1"),
        "{json}"
    );
}
