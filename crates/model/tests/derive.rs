//! What lab derives when the Lab.toml leaves it out.

use model::Preset;

#[test]
fn builtin_server_signals_its_extra_addresses() {
    let lab = Preset::Builtin.load().unwrap();
    let ue1 = lab.host("ue1").unwrap();
    let eps: Vec<(String, Option<u8>, Option<String>, u32)> = ue1
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.id, e.dev.clone(), e.flags.bits()))
        .collect();
    assert_eq!(
        eps,
        vec![
            (
                "10.1.1.2".into(),
                Some(2),
                Some("enp0s9".into()),
                net::EndpointFlags::SIGNAL
            ),
            (
                "10.1.1.3".into(),
                Some(3),
                Some("enp0s10".into()),
                net::EndpointFlags::SIGNAL
            ),
        ]
    );
}

#[test]
fn builtin_client_gets_laminar_endpoints_on_every_address() {
    let lab = Preset::Builtin.load().unwrap();
    let ue2 = lab.host("ue2").unwrap();
    let eps: Vec<(String, Option<u8>, u32)> = ue2
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.id, e.flags.bits()))
        .collect();
    assert_eq!(
        eps,
        vec![
            ("10.1.1.4".into(), Some(1), 0x20),
            ("10.1.1.5".into(), Some(2), 0x20),
            ("10.1.1.6".into(), Some(3), 0x20),
        ]
    );
}

/// add_addr_accepted N, subflows 2N-1: laminar uses N, a kernel without laminar needs the
/// rest for its `subflow` joins to the server's first address (measured on 6.1 VMs).
#[test]
fn limits_cover_every_extra_path() {
    let lab = Preset::Builtin.load().unwrap();
    for h in &lab.hosts {
        let l = h.limits.unwrap();
        assert_eq!((l.subflows, l.add_addr_accepted), (5, 3), "{}", h.name);
    }
    // A fullmesh client: every local address to every server address, capped at 8.
    let text = Preset::Builtin.source().replace(
        "[hosts.ue2.vm]",
        "[hosts.ue2.mptcp]\njoin = \"fullmesh\"\n\n[hosts.ue2.vm]",
    );
    let lab = model::parse("fullmesh.toml", &text).unwrap();
    for h in &lab.hosts {
        let l = h.limits.unwrap();
        assert_eq!((l.subflows, l.add_addr_accepted), (8, 3), "{}", h.name);
    }
}

#[test]
fn arp_and_rp_filter_sysctls_on_a_shared_segment() {
    let lab = Preset::Builtin.load().unwrap();
    for h in &lab.hosts {
        assert_eq!(h.sysctl("net.mptcp.enabled"), Some("1"));
        assert_eq!(h.sysctl("net.ipv4.conf.all.rp_filter"), Some("2"));
        for i in ["enp0s8", "enp0s9", "enp0s10"] {
            assert_eq!(
                h.sysctl(&format!("net.ipv4.conf.{i}.arp_ignore")),
                Some("1")
            );
            assert_eq!(
                h.sysctl(&format!("net.ipv4.conf.{i}.arp_announce")),
                Some("2")
            );
        }
    }
}

#[test]
fn tables_are_derived_when_left_out_and_skip_explicit_ids() {
    // Drop ue1's tables except table2: the derived ones must not collide with it.
    let src = Preset::Builtin
        .source()
        .replacen("table = { id = 100, name = \"table1\" }\n", "", 1)
        .replacen("table = { id = 300, name = \"table3\" }\n", "", 1);
    let lab = model::parse("Lab.toml", &src).unwrap();
    let t: Vec<(u32, String, String, String)> = lab
        .host("ue1")
        .unwrap()
        .tables
        .iter()
        .map(|t| {
            (
                t.id,
                t.name.clone(),
                t.dev.clone(),
                t.addresses[0].addr().to_string(),
            )
        })
        .collect();
    assert_eq!(
        t,
        vec![
            (100, "table1".into(), "enp0s8".into(), "10.1.1.1".into()),
            (200, "table2".into(), "enp0s9".into(), "10.1.1.2".into()),
            (300, "table3".into(), "enp0s10".into(), "10.1.1.3".into()),
        ]
    );
}

#[test]
fn join_modes() {
    for (mode, flags, count) in [
        ("subflow", net::EndpointFlags::SUBFLOW, 2),
        (
            "fullmesh",
            net::EndpointFlags::SUBFLOW | net::EndpointFlags::FULLMESH,
            3,
        ),
        ("laminar", net::EndpointFlags::LAMINAR, 3),
    ] {
        let src = format!(
            "{}\n[hosts.ue2.mptcp]\njoin = \"{mode}\"\n",
            Preset::Builtin.source()
        );
        let lab = model::parse("Lab.toml", &src).unwrap();
        let eps = &lab.host("ue2").unwrap().endpoints;
        assert_eq!(eps.len(), count, "{mode}");
        assert!(
            eps.iter()
                .all(|e| e.flags.bits() == flags && e.dev.is_some()),
            "{mode}"
        );
    }
}

#[test]
fn derive_false_takes_the_file_verbatim() {
    let lab = Preset::Guide.load().unwrap();
    for h in &lab.hosts {
        assert!(h.sysctls.is_empty(), "the guide sets no sysctls");
        assert_eq!(h.endpoints.len(), 3);
        assert!(
            h.endpoints
                .iter()
                .all(|e| e.flags.bits() == net::EndpointFlags::SUBFLOW && e.id.is_none())
        );
    }
}

#[test]
fn single_path_hosts_get_no_tables_or_endpoints() {
    let src = r#"
[lab]
name = "one"
[networks.lan]
[hosts.a]
role = "server"
[[hosts.a.interfaces]]
name = "eth0"
network = "lan"
address = "192.168.7.1/24"
[hosts.b]
role = "client"
[[hosts.b.interfaces]]
name = "eth0"
network = "lan"
address = "192.168.7.2/24"
"#;
    let lab = model::parse("one", src).unwrap();
    for h in &lab.hosts {
        assert!(h.tables.is_empty() && h.endpoints.is_empty() && h.limits.is_none());
        assert_eq!(h.sysctls.len(), 1);
    }
    assert_eq!(model::doctor::check(&lab), vec![]);
}
