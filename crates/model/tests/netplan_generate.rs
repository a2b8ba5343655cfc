//! Rendered netplan passes the real `netplan generate --root-dir` (Debian's netplan.io), and the
//! networkd files it writes carry the per-source tables and rules.

use std::process::Command;

use model::Preset;

fn netplan_generate(root: &std::path::Path) -> std::process::Output {
    Command::new("netplan")
        .arg("generate")
        .arg("--root-dir")
        .arg(root)
        .output()
        .unwrap()
}

fn generate(lab: &model::Lab, host: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc/netplan");
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = net::netplan::render(&lab.host(host).unwrap().net(), "test").unwrap();
    let file = dir.join("60-lab.yaml");
    std::fs::write(&file, yaml).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = netplan_generate(root.path());
    assert!(
        out.status.success(),
        "netplan generate failed for {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

fn network_file(root: &tempfile::TempDir, iface: &str) -> String {
    let p = root
        .path()
        .join(format!("run/systemd/network/10-netplan-{iface}.network"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
#[cfg_attr(not(lab_has_netplan), ignore = "needs netplan")]
fn rendered_netplan_passes_netplan_generate() {
    if !testkit::require("netplan generate", testkit::tool("netplan")) {
        return;
    }
    for preset in Preset::ALL {
        let lab = preset.load().unwrap();
        for (host, first, gw) in [("ue1", 1, "10.1.1.4"), ("ue2", 4, "10.1.1.1")] {
            let root = generate(&lab, host);
            for (n, iface) in ["enp0s8", "enp0s9", "enp0s10"].iter().enumerate() {
                let f = network_file(&root, iface);
                let table = 100 * (n + 1);
                let addr = format!("10.1.1.{}", first + n);
                assert!(
                    f.contains(&format!("Address={addr}/24")),
                    "{preset:?} {host} {iface}:\n{f}"
                );
                assert!(f.contains(&format!("Table={table}")), "{f}");
                assert!(f.contains("Scope=link"), "{f}");
                assert!(f.contains(&format!("Gateway={gw}")), "{f}");
                assert!(f.contains(&format!("From={addr}")), "{f}");
            }
            let nat = network_file(&root, "enp0s3");
            assert!(nat.contains("DHCP=ipv4"), "{nat}");
        }
    }
}

#[test]
#[cfg_attr(not(lab_has_netplan), ignore = "needs netplan")]
fn netplan_generate_rejects_a_broken_file() {
    // The check above can fail: netplan really validates what it is given.
    if !testkit::require("netplan generate", testkit::tool("netplan")) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc/netplan");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("60-lab.yaml"),
        "network:\n  version: 2\n  ethernets:\n    enp0s8:\n      adresses: [10.1.1.1/24]\n",
    )
    .unwrap();
    let out = netplan_generate(root.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("adresses"));
}

#[test]
#[cfg_attr(not(lab_has_netplan), ignore = "needs netplan")]
fn shaped_p2p_lab_passes_netplan_generate() {
    if !testkit::require("netplan generate", testkit::tool("netplan")) {
        return;
    }
    let lab = model::parse(
        "p2p",
        include_str!("../../../fixtures/labs/p2p-shaped.toml"),
    )
    .unwrap();
    let root = generate(&lab, "srv");
    let f = network_file(&root, "eth1");
    assert!(f.contains("Address=10.0.1.1/24"), "{f}");
    assert!(f.contains("Table=100"), "{f}");
    // With a MAC in Lab.toml, netplan matches the NIC by MAC and names it.
    let link =
        std::fs::read_to_string(root.path().join("run/systemd/network/10-netplan-eth1.link"))
            .unwrap();
    assert!(link.contains("MACAddress=02:00:00:00:01:01"), "{link}");
    assert!(link.contains("Name=eth1"), "{link}");
}

#[test]
#[cfg_attr(not(lab_has_netplan), ignore = "needs netplan")]
fn ipv6_and_dual_stack_netplan_passes_netplan_generate() {
    if !testkit::require("netplan generate", testkit::tool("netplan")) {
        return;
    }
    let v6 = model::parse(
        "ipv6.toml",
        include_str!("../../../fixtures/labs/ipv6.toml"),
    )
    .unwrap();
    let root = generate(&v6, "cli");
    for n in 1..=3 {
        let f = network_file(&root, &format!("eth{n}"));
        for want in [
            format!("Address=dead:beef:{n}::2/64"),
            format!("Destination=dead:beef:{n}::/64"),
            format!("Gateway=dead:beef:{n}::1"),
            format!("From=dead:beef:{n}::2"),
            format!("Table={}", 100 * n),
        ] {
            assert!(f.contains(&want), "ipv6 cli eth{n}: no {want}:\n{f}");
        }
    }
    let dual = model::parse(
        "dual-stack.toml",
        include_str!("../../../fixtures/labs/dual-stack.toml"),
    )
    .unwrap();
    let root = generate(&dual, "cli");
    let f = network_file(&root, "eth2");
    for want in [
        "Address=10.0.2.2/24",
        "Address=dead:beef:2::2/64",
        "Gateway=10.0.2.1",
        "Gateway=dead:beef:2::1",
        "From=10.0.2.2",
        "From=dead:beef:2::2",
    ] {
        assert!(f.contains(want), "dual cli eth2: no {want}:\n{f}");
    }
    // The server's main-table routes keep their metrics.
    let root = generate(&dual, "srv");
    let f = network_file(&root, "eth1");
    for want in [
        "Destination=10.99.0.0/16",
        "Destination=dead:beef:99::/48",
        "Metric=100",
    ] {
        assert!(f.contains(want), "dual srv eth1: no {want}:\n{f}");
    }
    let f = network_file(&root, "eth2");
    assert!(f.contains("Metric=200"), "dual srv eth2:\n{f}");
}
