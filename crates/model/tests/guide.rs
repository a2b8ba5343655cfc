//! Golden test against the guide itself: `--preset guide` must render the guide's commands
//! verbatim (same addresses, devices, table names, flags and order). The expected lines are read
//! from fixtures/guide/GUIDE.md, not typed into this test.

use model::Preset;

const GUIDE: &str = include_str!("../../../fixtures/guide/GUIDE.md");

/// The body of the first ``` block after `heading`.
fn code_block_after(heading: &str) -> Vec<String> {
    let start = GUIDE.find(heading).expect("heading in GUIDE.md");
    let rest = &GUIDE[start..];
    let open = rest.find("```").expect("code block") + 3;
    let body = &rest[open..];
    let close = body.find("```").expect("closing fence");
    body[..close]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Every `...` span on the line of GUIDE.md that contains `marker`.
fn backticked_on_line(marker: &str) -> Vec<String> {
    let line = GUIDE
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in GUIDE.md"));
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The guide's per-source routing and path-manager commands for one host, in order.
fn guide_commands(host: &str) -> Vec<String> {
    let ue1_routing = code_block_after("## 6. Per-source routing");
    assert_eq!(
        ue1_routing.len(),
        9,
        "the guide lists 3 rules and 6 routes for Ue1"
    );
    // Step 7 gives one endpoint command and says "same for .2/enp0s9 and .3/enp0s10".
    let step7 = backticked_on_line("ip mptcp endpoint add 10.1.1.1");
    assert!(GUIDE.contains("same for .2/enp0s9 and .3/enp0s10"));
    let first = &step7[0];
    let endpoints = [
        first.clone(),
        first
            .replace("10.1.1.1", "10.1.1.2")
            .replace("enp0s8", "enp0s9"),
        first
            .replace("10.1.1.1", "10.1.1.3")
            .replace("enp0s8", "enp0s10"),
    ];
    let limits = backticked_on_line("ip mptcp limits set")[0].clone();
    assert!(limits.starts_with("ip mptcp limits set"));

    let mut cmds: Vec<String> = ue1_routing;
    cmds.extend(endpoints);
    cmds.push(limits);
    match host {
        "ue1" => cmds,
        "ue2" => {
            // "Ue2: the same with 10.1.1.4/5/6 as sources and `via 10.1.1.1`." (step 6), and
            // "Ue2: the same with 10.1.1.4/5/6." (step 7).
            assert!(
                GUIDE.contains("Ue2: the same with 10.1.1.4/5/6 as sources and `via 10.1.1.1`")
            );
            assert!(GUIDE.contains("Ue2: the same with 10.1.1.4/5/6."));
            cmds.iter()
                .map(|c| {
                    let words: Vec<&str> = c.split(' ').collect();
                    let mut out = Vec::new();
                    for (i, w) in words.iter().enumerate() {
                        let after_via = i > 0 && words[i - 1] == "via";
                        out.push(match (*w, after_via) {
                            ("10.1.1.4", true) => "10.1.1.1",
                            ("10.1.1.1", false) => "10.1.1.4",
                            ("10.1.1.2", false) => "10.1.1.5",
                            ("10.1.1.3", false) => "10.1.1.6",
                            (w, _) => w,
                        });
                    }
                    out.join(" ")
                })
                .collect()
        }
        _ => unreachable!(),
    }
}

fn rendered_ip_commands(host: &str) -> Vec<String> {
    let lab = Preset::Guide.load().unwrap();
    let net = lab.host(host).unwrap().net();
    net::script::render(&net, "guide")
        .lines()
        // Links and addresses come from netplan in the guide (step 5), not from `ip` commands.
        .filter(|l| {
            l.starts_with("ip ") && !l.starts_with("ip link ") && !l.starts_with("ip address ")
        })
        .map(String::from)
        .collect()
}

#[test]
fn guide_preset_renders_the_guides_commands_verbatim_for_ue1() {
    assert_eq!(rendered_ip_commands("ue1"), guide_commands("ue1"));
}

#[test]
fn guide_preset_renders_the_guides_commands_verbatim_for_ue2() {
    let expected = guide_commands("ue2");
    assert!(expected.contains(&"ip rule add from 10.1.1.4 table table1".to_string()));
    assert!(
        expected
            .contains(&"ip route add default via 10.1.1.1 dev enp0s10 table table3".to_string())
    );
    assert!(expected.contains(&"ip mptcp endpoint add 10.1.1.6 dev enp0s10 subflow".to_string()));
    assert_eq!(rendered_ip_commands("ue2"), expected);
}

#[test]
fn guide_preset_rt_tables_lines_are_the_guides() {
    // "`/etc/iproute2/rt_tables`: add `100 table1`, `200 table2`, `300 table3`."
    let expected: Vec<String> = backticked_on_line("/etc/iproute2/rt_tables`: add")
        .into_iter()
        .skip(1)
        .collect();
    assert_eq!(expected, ["100 table1", "200 table2", "300 table3"]);
    let lab = Preset::Guide.load().unwrap();
    for host in ["ue1", "ue2"] {
        let net = lab.host(host).unwrap().net();
        assert_eq!(net::rt_tables::lines(&net), expected);
    }
}

#[test]
fn guide_preset_has_the_guides_machines_and_addresses() {
    // Step 1 and step 5 of the guide.
    let lab = Preset::Guide.load().unwrap();
    for (host, addrs) in [
        ("ue1", ["10.1.1.1", "10.1.1.2", "10.1.1.3"]),
        ("ue2", ["10.1.1.4", "10.1.1.5", "10.1.1.6"]),
    ] {
        let h = lab.host(host).unwrap();
        assert_eq!((h.vm.memory_mib, h.vm.cpus, h.vm.disk_gib), (2048, 2, 20));
        assert_eq!(h.vm.image.as_deref(), Some("ubuntu-22.04"));
        assert!(h.interfaces[0].is_nat(), "NIC 1 is NAT");
        let got: Vec<String> = h
            .path_interfaces()
            .map(|i| i.address().unwrap().to_string())
            .collect();
        let want: Vec<String> = addrs.iter().map(|a| format!("{a}/24")).collect();
        assert_eq!(got, want);
        for (i, line) in GUIDE
            .lines()
            .filter(|l| l.contains("enp0s8 10.1.1."))
            .enumerate()
        {
            assert!(
                line.contains("enp0s9 10.1.1.") && line.contains("enp0s10 10.1.1."),
                "step 5 line {i}"
            );
        }
        assert!(
            h.path_interfaces()
                .all(|i| i.attach == model::Attach::Network("ue1-ue2_v1_2".into()))
        );
    }
}
