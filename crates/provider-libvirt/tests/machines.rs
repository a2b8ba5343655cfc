//! libvirt hosts on the lab's machines, as `lab up --dry-run` plans them (pure: nothing runs):
//! each machine makes its own bridge per segment and one VXLAN per segment that crosses
//! machines, from its underlay address to the other machine's, with the lab's numbering; a
//! host with a URI and a host on a machine cannot share a segment.

use std::path::Path;

fn lab(extra_host: &str) -> model::Lab {
    let mut t = String::from(
        "[lab]\nname = \"lvp\"\n\n\
         [machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
         [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n",
    );
    for p in 1..=2 {
        t += &format!(
            "[[links]]\nname = \"path{p}\"\nendpoints = [\"a:enp0s{n}\", \"b:enp0s{n}\"]\n\n",
            n = p + 7
        );
    }
    for (h, role, m, end) in [("a", "server", "m1", 1), ("b", "client", "m2", 2)] {
        t += &format!(
            "[hosts.{h}]\nrole = \"{role}\"\nprovider = \"libvirt\"\nmachine = \"{m}\"\n\n\
             [[hosts.{h}.interfaces]]\nname = \"enp0s3\"\nnat = true\n\n"
        );
        for p in 1..=2 {
            t += &format!(
                "[[hosts.{h}.interfaces]]\nname = \"enp0s{}\"\naddress = \"10.10.{p}.{end}/24\"\n\n",
                p + 7
            );
        }
    }
    t += extra_host;
    model::parse("Lab.toml", &t).unwrap()
}

#[test]
fn each_machine_gets_a_tunnel_per_crossing_path() {
    let lab = lab("");
    let dir = Path::new("/labs/lvp");
    let plan =
        provider_libvirt::vms::plan(&lab, dir, Path::new("/cache"), "http://mirror").unwrap();
    let tunnels = lab.tunnels();
    assert_eq!(tunnels.len(), 2);
    for (m, local, peer) in [
        ("m1", "192.0.2.1", "192.0.2.2"),
        ("m2", "192.0.2.2", "192.0.2.1"),
    ] {
        for t in &tunnels {
            let dev = provider_libvirt::vms::vxlan_name(&lab, dir, &t.wire);
            let on: Vec<String> = plan
                .iter()
                .filter(|a| a.what.contains(&format!("on machine {m},")))
                .filter_map(|a| a.argv.as_ref().map(|v| v.join(" ")))
                .filter(|l| l.contains(&dev))
                .collect();
            assert!(
                on.iter().any(|l| l.contains(&format!(
                    "type vxlan id {} local {local} dstport {}",
                    t.vni, t.port
                ))),
                "{m} {}: {on:#?}",
                t.wire
            );
            assert!(
                on.iter().any(|l| l.ends_with(&format!("dst {peer}"))),
                "{on:#?}"
            );
            let bridge = provider_libvirt::vms::bridge_name(&lab, dir, &t.wire);
            assert!(
                on.iter().any(|l| l.ends_with(&format!("master {bridge}"))),
                "{on:#?}"
            );
        }
    }
    // Both ends of a path make the same bridge and network on their machine.
    let networks = plan
        .iter()
        .filter(|a| a.what.starts_with("network "))
        .count();
    assert_eq!(networks, 4, "2 paths x 2 machines");
    assert!(
        plan.iter()
            .any(|a| a.what.contains("on the machine's loopback")),
        "VMs' SSH forwards stay on their machine"
    );
}

#[test]
fn a_host_under_a_uri_cannot_share_a_machines_segment() {
    // a on machine m1, c under this machine's hypervisor, both on one network: refused by
    // `up` before any hypervisor is asked anything.
    let mut t = String::from(
        "[lab]\nname = \"lvq\"\n\n[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
         [networks.shared]\nsubnet = \"10.20.0.0/24\"\n\n",
    );
    for (h, role, place, end) in [
        ("a", "server", "machine = \"m1\"\n", 1),
        (
            "c",
            "client",
            "\n[hosts.c.vm]\nuri = \"qemu:///system\"\n",
            3,
        ),
    ] {
        t += &format!(
            "[hosts.{h}]\nrole = \"{role}\"\nprovider = \"libvirt\"\n{place}\n\
             [[hosts.{h}.interfaces]]\nname = \"enp0s3\"\nnat = true\n\n\
             [[hosts.{h}.interfaces]]\nname = \"enp0s8\"\nnetwork = \"shared\"\naddress = \"10.20.0.{end}/24\"\n\n"
        );
    }
    let lab = model::parse("Lab.toml", &t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = provider::StateDir::new(dir.path());
    let opts = provider_libvirt::vms::UpOptions {
        boot_timeout: std::time::Duration::from_secs(1),
        images: images::Options {
            cache: dir.path().join("cache"),
            ubuntu_mirror: "http://mirror.invalid".into(),
            skip_signature: false,
        },
    };
    let e = provider_libvirt::vms::up(&lab, dir.path(), &state, &opts, &mut |_| {}).unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("segment net-shared joins") && e.contains("all on the lab's machines"),
        "{e}"
    );
    assert!(!dir.path().join("cache").exists(), "nothing was made");
}
