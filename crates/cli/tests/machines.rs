//! One lab across two machines, simulated on this box: two "machine" network namespaces, each
//! with its own sshd and an underlay veth between them (10.99.0.1 and 10.99.0.2). lab reaches
//! each machine over SSH (a loopback port this test forwards into the machine's namespace),
//! places the server on m1 by name and the client on m2 by balancing, makes their namespaces
//! there with iproute2, and joins each of the three paths with its own VXLAN tunnel over the
//! underlay. `lab test` passes with every path used, each tunnel carries its path, and
//! `lab destroy` leaves nothing on either machine. `lab doctor` flags an underlay too slow for
//! the shaped paths, and one whose MTU is too small.

mod common;

use std::path::PathBuf;

use common::machines::Machines;
use common::run_in;
use guest::Exec as _;

/// The lab: srv on m1 by name, cli placed by balance, three paths as links; with `shaped`,
/// the client's path interfaces (the sending end) shaped to that rate, so each path carries
/// its share whatever else the box is doing.
fn lab_toml(name: &str, machines: &str, shaped: Option<&str>) -> String {
    let mut t = format!("[lab]\nname = \"{name}\"\n\n{machines}");
    for p in 1..=3 {
        t.push_str(&format!(
            "[[links]]\nname = \"path{p}\"\nendpoints = [\"srv:eth{p}\", \"cli:eth{p}\"]\n\n"
        ));
    }
    t.push_str("[hosts.srv]\nrole = \"server\"\nmachine = \"m1\"\n\n");
    for p in 1..=3 {
        t.push_str(&format!(
            "[[hosts.srv.interfaces]]\nname = \"eth{p}\"\naddress = \"10.0.{p}.1/24\"\n\n"
        ));
    }
    t.push_str("[hosts.cli]\nrole = \"client\"\n\n[hosts.cli.mptcp]\njoin = \"subflow\"\n\n");
    let shaping = shaped
        .map(|r| format!("shaping = {{ rate = \"{r}\" }}\n"))
        .unwrap_or_default();
    for p in 1..=3 {
        t.push_str(&format!(
            "[[hosts.cli.interfaces]]\nname = \"eth{p}\"\naddress = \"10.0.{p}.2/24\"\ngateway = \"10.0.{p}.1\"\n{shaping}\n"
        ));
    }
    t
}

#[test]
#[cfg_attr(
    not(all(lab_netns, lab_sshd, lab_has_iperf3, lab_has_mptcpize)),
    ignore = "needs root, the kernel's MPTCP, OpenSSH (sshd), iperf3 and mptcpize"
)]
fn a_lab_across_two_machines_uses_a_tunnel_per_path() {
    if !testkit::require(
        "two machines",
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| guest::sshd::available())
            .and_then(|()| testkit::tool("iperf3"))
            .and_then(|()| testkit::tool("mptcpize")),
    ) {
        return;
    }
    let name = format!("labtest-mm{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let machines = Machines::start("m", &name, dir, false);
    std::fs::write(
        dir.join("Lab.toml"),
        // 3 x 200 Mbit/s through the 1 Gbit/s underlay: doctor stays clean.
        lab_toml(&name, &machines.toml(), Some("200mbit")),
    )
    .unwrap();
    machines.trust();

    let (code, out, err) = run_in(dir, &["up"]);
    eprintln!("$ lab up\n{out}{err}");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_in(dir, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("lab.{name}.srv on machine m1"))
            && out.contains(&format!("lab.{name}.cli on machine m2")),
        "placed by name and by balance: {out}"
    );
    let (code, out, err) = run_in(dir, &["test", "--seconds", "5"]);
    eprintln!("$ lab test\n{out}{err}");
    assert_eq!(code, 0, "{out}\n{err}");
    for host in ["srv", "cli"] {
        for nic in ["eth1", "eth2", "eth3"] {
            assert!(
                out.contains(&format!("[ok] {host} {nic}")),
                "{host} {nic}: {out}"
            );
        }
    }
    // A capture on both machines: tcpdump in each host's namespace there, its pcap streamed
    // over a session of its own, every path interface in one pcapng on this machine's clock.
    let run = dir.join("run");
    let (code, out, err) = run_in(
        dir,
        &[
            "test",
            "--seconds",
            "2",
            "--capture",
            "--out",
            run.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let cap = decode::read(&std::fs::read(run.join("capture.pcapng")).unwrap()).unwrap();
    assert_eq!(cap.interfaces.len(), 6, "{:?}", cap.interfaces);
    for (k, i) in cap.interfaces.iter().enumerate() {
        let n = cap.packets.iter().filter(|p| p.iface as usize == k).count();
        assert!(n > 100, "{:?}: {n} frames", i.name);
        assert_eq!(i.drops, Some(0), "{:?}", i.name);
    }
    assert!(
        out.contains("  clock       srv: ") && out.contains("  clock       cli: "),
        "{out}"
    );
    // Each path crossed the underlay in its own tunnel (own VNI and UDP port), which carried
    // its share: read on m1, through its own sshd.
    let m1_ssh = machines.ssh(0);
    let mut tunnels = Vec::new();
    for p in 1..=3 {
        let sw = format!("lab.{name}.m1.sw.link-path{p}");
        let out = m1_ssh
            .check(&guest::Command::new([
                "ip", "-n", &sw, "-d", "-s", "-json", "link", "show",
            ]))
            .unwrap();
        let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let vx = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["linkinfo"]["info_kind"] == "vxlan")
            .unwrap_or_else(|| panic!("no VXLAN in {sw}: {links}"));
        let data = &vx["linkinfo"]["info_data"];
        let bytes = vx["stats64"]["tx"]["bytes"].as_u64().unwrap()
            + vx["stats64"]["rx"]["bytes"].as_u64().unwrap();
        assert!(bytes > 1_000_000, "path{p}'s tunnel carried {bytes} bytes");
        assert_eq!(
            vx["mtu"], 1450,
            "the inside of a tunnel over a 1500-byte underlay"
        );
        tunnels.push((data["id"].as_u64().unwrap(), data["port"].as_u64().unwrap()));
    }
    tunnels.sort_unstable();
    tunnels.dedup();
    assert_eq!(tunnels.len(), 3, "one VNI and port per path: {tunnels:?}");
    // The hosts' interfaces took the inside of the tunnel (Lab.toml sets no MTU), and kept it
    // through the network lab applied: a full-size segment fits the tunnel whole, so m1 never
    // fragments an outer packet on the underlay.
    let out = m1_ssh
        .check(&guest::Command::new([
            "ip",
            "-n",
            &format!("lab.{name}.srv"),
            "-json",
            "link",
            "show",
        ]))
        .unwrap();
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for nic in ["eth1", "eth2", "eth3"] {
        let l = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ifname"] == nic)
            .unwrap_or_else(|| panic!("no {nic}: {links}"));
        assert_eq!(l["mtu"], 1450, "srv {nic}");
    }
    let snmp = m1_ssh
        .check(&guest::Command::new(["cat", "/proc/net/snmp"]))
        .unwrap()
        .stdout_lossy();
    let ip: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Ip:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let at = ip[0].iter().position(|k| *k == "FragCreates").unwrap();
    assert_eq!(ip[1][at], "0", "m1 fragmented outer packets:\n{snmp}");

    let (code, out, err) = run_in(dir, &["destroy"]);
    assert_eq!(code, 0, "{out}{err}");
    // /run/netns is one directory on this box: m1 sees the names of both machines' namespaces.
    let left = m1_ssh
        .check(&guest::Command::new(["ip", "netns", "list"]))
        .unwrap()
        .stdout_lossy();
    assert!(!left.contains(&format!("lab.{name}.")), "left: {left}");
    drop(m1_ssh);
    drop(machines);
}

#[test]
fn doctor_flags_an_underlay_too_small_for_the_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = PathBuf::from("/nonexistent/key");
    let m = common::machines::toml(&[2222, 2222], &[key.clone(), key]);
    let good = lab_toml("labtest-doc", &m, None);
    std::fs::write(dir.join("Lab.toml"), &good).unwrap();
    let (code, out, err) = run_in(dir, &["doctor"]);
    assert_eq!(code, 0, "a clean lab across machines: {out}{err}");
    // The end-to-end test's lab: 3 x 200 Mbit/s through 1 Gbit/s is clean too.
    let shaped = lab_toml("labtest-doc", &m, Some("200mbit"));
    std::fs::write(dir.join("Lab.toml"), &shaped).unwrap();
    let (code, out, err) = run_in(dir, &["doctor"]);
    assert_eq!(code, 0, "3 x 200 Mbit/s over 1 Gbit/s: {out}{err}");
    std::fs::write(dir.join("Lab.toml"), &good).unwrap();

    // Three paths shaped to 50 Mbit/s through a 100 Mbit/s underlay; one interface with a
    // 1500-byte MTU through a 1450-byte tunnel.
    let bad = good
        .replace("underlay_rate = \"1gbit\"", "underlay_rate = \"100mbit\"")
        .replace(
            "address = \"10.0.1.1/24\"\n",
            "address = \"10.0.1.1/24\"\nmtu = 1500\nshaping = { rate = \"50mbit\" }\n",
        )
        .replace(
            "address = \"10.0.2.1/24\"\n",
            "address = \"10.0.2.1/24\"\nshaping = { rate = \"50mbit\" }\n",
        )
        .replace(
            "address = \"10.0.3.1/24\"\n",
            "address = \"10.0.3.1/24\"\nshaping = { rate = \"50mbit\" }\n",
        );
    std::fs::write(dir.join("Lab.toml"), &bad).unwrap();
    let (code, out, err) = run_in(dir, &["doctor"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        out.contains("underlay-too-slow") && out.contains("150 Mbit/s"),
        "{out}"
    );
    assert!(
        out.contains("underlay-mtu-too-small") && out.contains("eth1"),
        "{out}"
    );
}
