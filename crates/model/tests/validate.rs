//! Validation at the model boundary: every rule, with the line and column it points at.

use model::{LoadError, Preset};

/// The built-in lab with one edit applied (the edit must match exactly once).
fn builtin_with(from: &str, to: &str) -> String {
    let src = Preset::Builtin.source();
    assert_eq!(
        src.matches(from).count(),
        1,
        "edit {from:?} must match once"
    );
    src.replacen(from, to, 1)
}

/// (line, col, message) of every diagnostic.
fn errors(src: &str) -> Vec<(usize, usize, String)> {
    match model::parse("Lab.toml", src) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid(inv)) => inv
            .diagnostics
            .iter()
            .map(|d| {
                let (l, c) = inv.line_col(d.span.start);
                (l, c, d.message.clone())
            })
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The 1-based line and column where `needle` starts in `src`.
fn pos(src: &str, needle: &str) -> (usize, usize) {
    let off = src
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in source"));
    model::diag::line_col(src, off)
}

fn one_error(src: &str, at: &str, message_part: &str) {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let (l, c, m) = &errs[0];
    assert!(
        m.contains(message_part),
        "message {m:?} lacks {message_part:?}"
    );
    assert_eq!((*l, *c), pos(src, at), "for {m:?}");
}

#[test]
fn presets_are_valid() {
    for p in Preset::ALL {
        p.load().unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
}

#[test]
fn misspelled_key() {
    let src = builtin_with("address = \"10.1.1.5/24\"", "adresses = \"10.1.1.5/24\"");
    // The misspelled key at its place, and what it leaves: an interface without an address.
    let errs = errors(&src);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let (l, c, m) = &errs[1];
    assert!(m.starts_with("unknown field `adresses`"), "{m}");
    assert_eq!((*l, *c), pos(&src, "adresses"));
    assert!(
        errs[0].2.contains("`enp0s9` of `ue2` has no address"),
        "{errs:?}"
    );
}

#[test]
fn bad_cidr() {
    let src = builtin_with("\"10.1.1.5/24\"", "\"10.1.1.500/24\"");
    one_error(&src, "\"10.1.1.500/24\"", "not an address/prefix");
    let src = builtin_with("\"10.1.1.5/24\"", "\"10.1.1.5/33\"");
    one_error(&src, "\"10.1.1.5/33\"", "not an address/prefix");
    let src = builtin_with("\"10.1.1.5/24\"", "\"10.1.1.5\"");
    one_error(&src, "\"10.1.1.5\"", "not an address/prefix");
    let src = builtin_with("\"10.1.1.5/24\"", "\"10.1.1.255/24\"");
    one_error(&src, "\"10.1.1.255/24\"", "broadcast");
}

#[test]
fn duplicate_address() {
    let src = builtin_with("\"10.1.1.5/24\"", "\"10.1.1.2/24\"");
    one_error(
        &src,
        "\"10.1.1.2/24\"\ngateway = \"10.1.1.1\"",
        "already used by ue1:enp0s9",
    );
}

#[test]
fn gateway_outside_the_prefix() {
    let src = builtin_with(
        "address = \"10.1.1.5/24\"\ngateway = \"10.1.1.1\"",
        "address = \"10.1.1.5/24\"\ngateway = \"10.9.9.9\"",
    );
    one_error(
        &src,
        "\"10.9.9.9\"",
        "outside enp0s9's prefixes (10.1.1.0/24)",
    );
}

#[test]
fn address_outside_the_network_subnet() {
    let src = builtin_with(
        "\"10.1.1.5/24\"\ngateway = \"10.1.1.1\"",
        "\"10.1.2.5/24\"\n",
    );
    one_error(
        &src,
        "\"10.1.2.5/24\"",
        "not inside network `ue1-ue2_v1_2`'s subnet",
    );
}

#[test]
fn interface_names() {
    let src = builtin_with(
        "name = \"enp0s9\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
        "name = \"enp0s9-much-too-long\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
    );
    one_error(&src, "\"enp0s9-much-too-long\"", "Linux allows 1 to 15");
    let src = builtin_with(
        "name = \"enp0s9\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
        "name = \"en p;0\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
    );
    one_error(&src, "\"en p;0\"", "outside [A-Za-z0-9_.-]");
    let src = builtin_with(
        "name = \"enp0s9\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
        "name = \"enp0s8\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
    );
    one_error(
        &src,
        "\"enp0s8\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
        "two interfaces named `enp0s8`",
    );
}

#[test]
fn undefined_network() {
    let src = builtin_with(
        "network = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.5",
        "network = \"intnet2\"\naddress = \"10.1.1.5",
    );
    one_error(&src, "\"intnet2\"", "network `intnet2` is not defined");
}

#[test]
fn table_collisions() {
    let src = builtin_with(
        "id = 200, name = \"table2\" }\n\n[[hosts.ue2",
        "id = 100, name = \"table2\" }\n\n[[hosts.ue2",
    );
    one_error(
        &src,
        "100, name = \"table2\" }\n\n[[hosts.ue2",
        "table id 100 is used twice",
    );
    let src = builtin_with(
        "id = 200, name = \"table2\" }\n\n[[hosts.ue2",
        "id = 200, name = \"table1\" }\n\n[[hosts.ue2",
    );
    one_error(
        &src,
        "\"table1\" }\n\n[[hosts.ue2.interfaces]]\nname = \"enp0s10\"",
        "table name `table1` is used twice",
    );
    let src = builtin_with(
        "id = 200, name = \"table2\" }\n\n[[hosts.ue2",
        "id = 254, name = \"table2\" }\n\n[[hosts.ue2",
    );
    one_error(&src, "254", "reserved");
    let src = builtin_with(
        "id = 200, name = \"table2\" }\n\n[[hosts.ue2",
        "id = 200, name = \"main\" }\n\n[[hosts.ue2",
    );
    one_error(&src, "\"main\"", "reserved by iproute2");
}

fn with_endpoint(endpoint: &str) -> String {
    format!(
        "{}\n\n[[hosts.ue2.mptcp.endpoints]]\n{endpoint}\n",
        Preset::Builtin.source()
    )
}

/// An endpoint whose address no interface carries is allowed (mptcp_join.sh's "invalid
/// address" tests announce such addresses on purpose); `lab doctor` warns about it.
#[test]
fn endpoint_address_not_on_the_host() {
    let src = with_endpoint("address = \"10.1.1.9\"\nflags = [\"subflow\"]");
    let lab = model::parse("Lab.toml", &src).unwrap();
    let findings = model::doctor::check(&lab);
    let f = findings
        .iter()
        .find(|f| f.code == "endpoint-address-not-here")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(f.host, "ue2");
    assert!(f.message.contains("10.1.1.9"), "{}", f.message);
}

#[test]
fn endpoint_dev_mismatch_and_unknown_dev_and_flag() {
    let src = with_endpoint("address = \"10.1.1.5\"\ndev = \"enp0s8\"\nflags = [\"subflow\"]");
    one_error(
        &src,
        "\"enp0s8\"\nflags",
        "10.1.1.5 is on `enp0s9`, not on `enp0s8`",
    );
    let src = with_endpoint("address = \"10.1.1.5\"\ndev = \"wlan0\"\nflags = [\"subflow\"]");
    one_error(&src, "\"wlan0\"", "no interface `wlan0`");
    let src = with_endpoint("address = \"10.1.1.5\"\ndev = \"enp0s9\"\nflags = [\"subflw\"]");
    one_error(&src, "\"subflw\"", "unknown variant `subflw`");
}

#[test]
fn limits_above_the_kernel_maximum() {
    let src = format!(
        "{}\n\n[hosts.ue2.mptcp.limits]\nsubflows = 9\nadd_addr_accepted = 3\n",
        Preset::Builtin.source()
    );
    one_error(&src, "9\nadd", "above the kernel's maximum");
}

const LINKS: &str = r#"
[lab]
name = "p2p"

[[links]]
endpoints = ["a:eth1", "b:eth1"]

[hosts.a]
role = "server"
[[hosts.a.interfaces]]
name = "eth1"
address = "10.0.0.1/30"

[hosts.b]
role = "client"
[[hosts.b.interfaces]]
name = "eth1"
address = "10.0.0.2/30"
"#;

#[test]
fn links_are_valid_and_named() {
    let lab = model::parse("p2p", LINKS).unwrap();
    assert_eq!(lab.links.len(), 1);
    assert_eq!(lab.links[0].name, "a-eth1--b-eth1");
    assert_eq!(
        lab.host("b").unwrap().interfaces[0].attach,
        model::Attach::Link("a-eth1--b-eth1".into())
    );
}

#[test]
fn link_to_a_missing_host() {
    let src = LINKS.replace("\"b:eth1\"]", "\"c:eth1\"]");
    let errs = errors(&src);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0]
            .2
            .contains("link names host `c`, which is not defined")
    );
    assert_eq!((errs[0].0, errs[0].1), pos(&src, "\"c:eth1\""));
    // The broken link attaches neither end, and both say so.
    assert!(
        errs[1]
            .2
            .contains("interface `eth1` of `a` is on no network")
    );
    assert!(
        errs[2]
            .2
            .contains("interface `eth1` of `b` is on no network")
    );
}

#[test]
fn link_to_a_missing_interface_or_bad_form() {
    let src = LINKS.replace("\"b:eth1\"]", "\"b:eth9\"]");
    let errs = errors(&src);
    assert!(
        errs[0].2.contains("host `b` has no interface `eth9`"),
        "{errs:#?}"
    );
    let src = LINKS.replace("\"b:eth1\"]", "\"b\"]");
    assert!(errors(&src)[0].2.contains("is not HOST:INTERFACE"));
    let src = LINKS.replace("[\"a:eth1\", \"b:eth1\"]", "[\"a:eth1\"]");
    assert!(errors(&src)[0].2.contains("exactly 2 interfaces"));
}

#[test]
fn every_error_is_reported_at_once() {
    let src = Preset::Builtin
        .source()
        .replacen("\"10.1.1.5/24\"", "\"10.1.1.500/24\"", 1)
        .replacen("name = \"enp0s10\"", "name = \"enp0s10-is-too-long\"", 1)
        // ue2's third table (ue1's enp0s10 is already broken, so its table is not checked).
        .rsplitn(2, "id = 300,")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("id = 255,");
    let errs = errors(&src);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    // Sorted by position in the file.
    assert!(
        errs.windows(2)
            .all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1))
    );
}

#[test]
fn plain_rendering_points_with_a_caret() {
    let src = builtin_with("address = \"10.1.1.5/24\"", "adresses = \"10.1.1.5/24\"");
    let Err(LoadError::Invalid(inv)) = model::parse("Lab.toml", &src) else {
        panic!("must fail")
    };
    let (line, col) = pos(&src, "adresses");
    let text = inv.render_plain();
    assert!(
        text.contains(&format!("--> Lab.toml:{line}:{col}")),
        "{text}"
    );
    assert!(text.contains("^^^^^^^^"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn ssh_provider_needs_a_target() {
    // Both hosts on ssh (a network shared across providers is an error of its own).
    let src = builtin_with(
        "[hosts.ue2]\nrole = \"client\"",
        "[hosts.ue2]\nrole = \"client\"\nprovider = \"ssh\"",
    )
    .replacen(
        "[hosts.ue1]\nrole = \"server\"",
        "[hosts.ue1]\nrole = \"server\"\nprovider = \"ssh\"\nssh = { address = \"192.0.2.6\" }",
        1,
    );
    one_error(&src, "ue2]\nrole", "has no [hosts.ue2.ssh] table");
    let src = builtin_with(
        "[hosts.ue2]\nrole = \"client\"",
        "[hosts.ue2]\nrole = \"client\"\nprovider = \"ssh\"\nssh = { address = \"192.0.2.7\", user = \"lab\", port = 2222 }",
    )
    .replacen("[hosts.ue1]\nrole = \"server\"", "[hosts.ue1]\nrole = \"server\"\nprovider = \"ssh\"\nssh = { address = \"192.0.2.6\" }", 1);
    let lab = model::parse("Lab.toml", &src).unwrap();
    let ssh = lab.host("ue2").unwrap().ssh.clone().unwrap();
    assert_eq!(
        (ssh.address.as_str(), ssh.port, ssh.user.as_str()),
        ("192.0.2.7", 2222, "lab")
    );
}

#[test]
fn nat_interfaces_take_no_address() {
    let src = builtin_with(
        "name = \"enp0s3\"\nnat = true\n\n[[hosts.ue2",
        "name = \"enp0s3\"\nnat = true\naddress = \"10.0.2.15/24\"\n\n[[hosts.ue2",
    );
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].2.contains("cannot have `address`"));
}

#[test]
fn shaping_units() {
    let src = builtin_with(
        "table = { id = 100, name = \"table1\" }\n\n[[hosts.ue2",
        "table = { id = 100, name = \"table1\" }\nshaping = { rate = \"50 parsecs\" }\n\n[[hosts.ue2",
    );
    one_error(&src, "\"50 parsecs\"", "not a valid rate");
}

#[test]
fn sysctl_keys_and_values() {
    let src = format!(
        "{}\n[hosts.ue2.sysctls]\n\"net ipv4\" = 1\n",
        Preset::Builtin.source()
    );
    one_error(&src, "\"net ipv4\"", "not a sysctl key");
    let src = format!(
        "{}\n[hosts.ue2.sysctls]\n\"net.ipv4.ip_forward\" = [1]\n",
        Preset::Builtin.source()
    );
    one_error(&src, "[1]", "must be an integer or a plain string");
}

#[test]
fn checks_are_validated_where_they_are_written() {
    let base = Preset::Builtin.source();
    let src = format!(
        "{base}\n[[checks]]\nname = \"joins\"\nhost = \"ue9\"\ncounter = \"MPJoinAckRx\"\nequals = 2\n"
    );
    one_error(
        &src,
        "\"ue9\"",
        "check `joins` names host `ue9`, which the lab does not have",
    );
    let src = format!(
        "{base}\n[[checks]]\nname = \"joins\"\nhost = \"ue1\"\ncounter = \"MPJoinAckRx\"\n"
    );
    one_error(
        &src,
        "\"joins\"",
        "needs one of `equals`, `at_least`, `at_most`",
    );
    let src = format!(
        "{base}\n[[checks]]\nname = \"two things\"\nmetric = \"subflows\"\nsurvived = true\n"
    );
    one_error(&src, "\"two things\"", "must name one of");
    let src = format!("{base}\n[[checks]]\nname = \"p\"\nhost = \"ue1\"\npath = \"eth7\"\n");
    one_error(&src, "\"eth7\"", "host `ue1` has no path interface `eth7`");
    let src = format!(
        "{base}\n[[checks]]\nname = \"re\"\nhost = \"ue1\"\ncommand = [\"true\"]\nstdout = \"(\"\n"
    );
    one_error(&src, "\"(\"", "not a regular expression");
    let ok = format!(
        "{base}\n[[checks]]\nname = \"fine\"\nlevel = \"warning\"\nmetric = \"efficiency\"\nat_least = 0.9\n"
    );
    let lab = model::parse("Lab.toml", &ok).unwrap();
    assert_eq!(lab.checks[0].level, model::checks::Level::Warning);
}

/// IPv6 and dual stack at the model boundary: what is accepted, and each mistake at its place.
#[test]
fn ipv6_and_dual_stack_addresses() {
    // Dual stack: both families, a gateway of each, main-table routes with metrics.
    let ok = builtin_with(
        "address = \"10.1.1.5/24\"\ngateway = \"10.1.1.1\"",
        "addresses = [\"10.1.1.5/24\", \"dead:beef:5::1/64\"]\ngateways = [\"10.1.1.1\", \"dead:beef:5::2\"]\nroutes = [{ to = \"10.9.0.0/16\", via = \"10.1.1.1\", metric = 100 }, { to = \"default\", via = \"dead:beef:5::2\", metric = 2048 }]",
    );
    let lab = model::parse("Lab.toml", &ok).unwrap();
    let i = lab.host("ue2").unwrap().interface("enp0s9").unwrap();
    assert_eq!(i.addresses.len(), 2);
    assert_eq!(i.gateways.len(), 2);
    assert_eq!(i.routes[1].metric, Some(2048));
    assert!(i.routes[1].is_ipv6());
    let t = lab
        .host("ue2")
        .unwrap()
        .tables
        .iter()
        .find(|t| t.dev == "enp0s9")
        .unwrap();
    assert_eq!(t.addresses, i.addresses, "one table, both families");

    let with = |to: &str| {
        builtin_with(
            "address = \"10.1.1.5/24\"\ngateway = \"10.1.1.1\"",
            &format!("addresses = [\"10.1.1.5/24\", \"dead:beef:5::1/64\"]\n{to}"),
        )
    };
    one_error(
        &with("gateway = \"dead:beef:6::1\""),
        "\"dead:beef:6::1\"",
        "outside enp0s9's prefixes",
    );
    one_error(
        &with("gateways = [\"10.1.1.1\", \"10.1.1.9\"]"),
        "\"10.1.1.9\"",
        "two IPv4 gateways",
    );
    one_error(
        &with("routes = [{ to = \"10.9.0.0/16\", via = \"dead:beef:5::2\" }]"),
        "\"dead:beef:5::2\"",
        "is IPv4, its gateway",
    );
    one_error(
        &with("routes = [{ to = \"10.9.0.1/16\", via = \"10.1.1.1\" }]"),
        "\"10.9.0.1/16\"",
        "host bits",
    );
    one_error(
        &with("routes = [{ to = \"default\" }]"),
        "\"default\"",
        "needs `via`",
    );
    one_error(
        &with("routes = [{ to = \"10.9.0.0/16\", via = \"10.7.7.7\" }]"),
        "\"10.7.7.7\"",
        "not on-link",
    );
    one_error(&with("mtu = 1000"), "1000", "below IPv6's minimum");
    let src = builtin_with("\"10.1.1.5/24\"", "\"fe80::5/64\"");
    one_error(&src, "\"fe80::5/64\"", "link-local");
    let src = builtin_with("\"10.1.1.5/24\"", "\"dead:beef::1\"");
    one_error(&src, "\"dead:beef::1\"", "not an address/prefix");
    // A second subnet of one family on a network.
    let src = Preset::Builtin.source().replace(
        "subnet = \"10.1.1.0/24\"",
        "subnets = [\"10.1.1.0/24\", \"10.2.0.0/16\"]",
    );
    one_error(&src, "\"10.2.0.0/16\"", "two IPv4 subnets");
    // An IPv6 address outside the network's IPv6 subnet.
    let src = Preset::Builtin
        .source()
        .replace(
            "subnet = \"10.1.1.0/24\"",
            "subnets = [\"10.1.1.0/24\", \"dead:beef:1::/64\"]",
        )
        .replacen(
            "address = \"10.1.1.5/24\"",
            "addresses = [\"10.1.1.5/24\", \"dead:beef:2::5/64\"]",
            1,
        );
    one_error(
        &src,
        "\"10.1.1.5/24\"",
        "not inside network `ue1-ue2_v1_2`'s subnet dead:beef:1::/64",
    );
}

/// Every problem in one run: two misspelled keys in different tables, and the semantic
/// errors behind them (an address outside its network), each at its place.
#[test]
fn every_problem_is_reported_in_one_run() {
    let src = builtin_with("address = \"10.1.1.5/24\"", "adress = \"10.1.1.5/24\"")
        .replacen("cpus = 2", "cpu = 2", 1)
        .replacen("address = \"10.1.1.6/24\"", "address = \"10.9.9.6/24\"", 1);
    let errs = errors(&src);
    let messages: Vec<&str> = errs.iter().map(|(_, _, m)| m.as_str()).collect();
    // The fifth: the gateway that no longer fits the changed address.
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        messages[0].starts_with("unknown field `cpu`"),
        "{messages:?}"
    );
    assert_eq!(errs[0].0, pos(&src, "cpu = 2").0);
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("unknown field `adress`")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("has no address")),
        "the interface whose address was misspelled: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("10.9.9.6/24 is not inside network")),
        "{messages:?}"
    );
    // A key serde needs, misspelled: reported with the missing field, together.
    let src = Preset::Builtin
        .source()
        .replacen("role = \"server\"", "rol = \"server\"", 1)
        .replacen("cpus = 2", "cpu = 2", 1);
    let errs = errors(&src);
    let messages: Vec<&str> = errs.iter().map(|(_, _, m)| m.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("unknown field `rol`"))
            && messages
                .iter()
                .any(|m| m.starts_with("unknown field `cpu`"))
            && messages.iter().any(|m| m.contains("missing field `role`")),
        "{messages:?}"
    );
}

#[test]
fn vagrant_boxes_log_in_as_vagrant_and_box_urls_need_their_checksum() {
    let with_image = |extra: &str| {
        builtin_with(
            "[hosts.ue1.vm]\nmemory_mib = 2048\n",
            &format!("[hosts.ue1.vm]\n{extra}memory_mib = 2048\n"),
        )
    };
    // A named box or a .box file: `vagrant` unless Lab.toml says otherwise.
    for image in [
        "bento/ubuntu-22.04",
        "bento/ubuntu-22.04@202401.31.0",
        "boxes/deb.box",
    ] {
        let lab = model::parse("Lab.toml", &with_image(&format!("image = \"{image}\"\n"))).unwrap();
        assert_eq!(lab.hosts[0].vm.user, "vagrant", "{image}");
        assert_eq!(lab.hosts[1].vm.user, "root", "ue2 has no box");
    }
    let lab = model::parse(
        "Lab.toml",
        &with_image("image = \"bento/ubuntu-22.04\"\nuser = \"admin\"\n"),
    )
    .unwrap();
    assert_eq!(lab.hosts[0].vm.user, "admin");

    // A box URL: with its checksum (normalized to lowercase hex) ...
    let hex = "AB".repeat(32);
    let lab = model::parse(
        "Lab.toml",
        &with_image(&format!(
            "image = \"https://example.org/deb.box\"\nchecksum = \"sha256:{hex}\"\n"
        )),
    )
    .unwrap();
    assert_eq!(
        lab.hosts[0].vm.checksum.as_deref(),
        Some(&*hex.to_lowercase())
    );
    assert_eq!(lab.hosts[0].vm.user, "vagrant");
    // ... not without, where the image is.
    let src = with_image("image = \"https://example.org/deb.box\"\n");
    one_error(
        &src,
        "\"https://example.org/deb.box\"",
        "a box URL needs its checksum",
    );
    // A checksum that is not sha256:HEX, or one for an image that is not a box URL.
    let src = with_image("image = \"https://example.org/deb.box\"\nchecksum = \"md5:00\"\n");
    one_error(&src, "\"md5:00\"", "is not a SHA-256 checksum");
    let src = with_image(&format!(
        "image = \"debian-12\"\nchecksum = \"sha256:{hex}\"\n"
    ));
    one_error(
        &src,
        "\"sha256:",
        "checksum is for a box downloaded from a URL",
    );
}

#[test]
fn hypervisor_uri_per_lab_and_per_host() {
    let src = builtin_with(
        "name = \"mptcp\"",
        "name = \"mptcp\"\nuri = \"qemu+ssh://lab@10.0.0.5/system\"",
    )
    .replacen(
        "[hosts.ue2.vm]\nmemory_mib = 2048\n",
        "[hosts.ue2.vm]\nuri = \"qemu:///system\"\nmemory_mib = 2048\n",
        1,
    );
    let lab = model::parse("Lab.toml", &src).unwrap();
    let uri = |i: usize| lab.hosts[i].vm.uri.as_ref().map(ToString::to_string);
    assert_eq!(
        uri(0).as_deref(),
        Some("qemu+ssh://lab@10.0.0.5/system"),
        "from [lab]"
    );
    assert_eq!(uri(1).as_deref(), Some("qemu:///system"), "the host's own");
    assert_eq!(model::Preset::Builtin.load().unwrap().hosts[0].vm.uri, None);
    // Refused where it is written: another transport, parameters, a bad port.
    for (bad, why) in [
        ("qemu+tcp://h/system", "lab reaches hypervisors as"),
        ("qemu+ssh://h/system?keyfile=/k", "has parameters"),
        ("qemu+ssh://h:99999/system", "is not a port"),
    ] {
        let src = builtin_with(
            "name = \"mptcp\"",
            &format!("name = \"mptcp\"\nuri = \"{bad}\""),
        );
        one_error(&src, &format!("\"{bad}\""), why);
    }
}

#[test]
fn machines_place_hosts_by_name_and_by_balance() {
    let machines = "[machines.m1]\naddress = \"h1.example\"\nunderlay = \"192.0.2.1\"\nunderlay_rate = \"1gbit\"\n\n[machines.m2]\naddress = \"h2.example\"\nuser = \"lab\"\nport = 2222\nunderlay = \"192.0.2.2\"\nunderlay_mtu = 9000\n\n";
    let src = builtin_with("[hosts.ue1]\n", &format!("{machines}[hosts.ue1]\n")).replacen(
        "role = \"server\"\n",
        "role = \"server\"\nmachine = \"m2\"\n",
        1,
    );
    let lab = model::parse("Lab.toml", &src).unwrap();
    assert_eq!(lab.machines.len(), 2);
    assert_eq!(lab.machines[1].ssh.port, 2222);
    assert_eq!(lab.machines[1].tunnel_mtu(), 8950);
    assert_eq!(lab.machines[0].underlay_rate_bps, Some(1_000_000_000));
    // ue1 by name on m2; ue2 (no machine) stays unplaced until balanced, then goes where
    // fewest hosts are, m1, if its provider can be placed.
    assert_eq!(lab.hosts[0].machine.as_deref(), Some("m2"));
    assert_eq!(lab.hosts[1].machine, None);
    let spread = lab.balance(|p| p.as_str() == "netns");
    assert_eq!(spread.hosts[0].machine.as_deref(), Some("m2"));
    assert_eq!(spread.hosts[1].machine.as_deref(), Some("m1"));
    assert!(spread.hosts[1].balanced && !spread.hosts[0].balanced);
    // Their network now spans m1 and m2: every path interface takes the inside of the tunnel,
    // the smaller machine's (1500-byte underlay, less 50), unless Lab.toml sets an MTU.
    assert_eq!(lab.hosts[0].interfaces[1].tunnel_mtu, None);
    for h in &spread.hosts {
        for i in h.path_interfaces() {
            assert_eq!((i.tunnel_mtu, i.effective_mtu()), (Some(1450), Some(1450)));
        }
        assert!(h.net().interfaces.iter().all(|i| i.mtu == Some(1450)));
        let nat = h.interfaces.iter().find(|i| i.is_nat()).unwrap();
        assert_eq!(nat.tunnel_mtu, None, "a NAT NIC crosses nothing");
    }
    let mut set = lab.clone();
    set.hosts[1].interfaces[1].mtu = Some(1400);
    let set = set.balance(|p| p.as_str() == "netns");
    assert_eq!(set.hosts[1].interfaces[1].effective_mtu(), Some(1400));
    // Balanced again for another provider that cannot be placed: back on this machine.
    let qemu = model::Provider::new("qemu").unwrap();
    let moved = spread
        .with_provider(&qemu)
        .balance(|p| p.as_str() == "netns");
    assert_eq!(moved.hosts[1].machine, None);
    assert_eq!(moved.hosts[0].machine.as_deref(), Some("m2"));
    assert!(
        moved
            .hosts
            .iter()
            .flat_map(|h| &h.interfaces)
            .all(|i| i.tunnel_mtu.is_none()),
        "one machine's hosts only: no tunnel, no derived MTU"
    );
    // No machines: every host stays here.
    assert!(
        model::Preset::Builtin
            .load()
            .unwrap()
            .hosts
            .iter()
            .all(|h| h.machine.is_none())
    );

    // A machine that is not declared, and an underlay that is not an address.
    let src = builtin_with("[hosts.ue1]\n", &format!("{machines}[hosts.ue1]\n")).replacen(
        "role = \"server\"\n",
        "role = \"server\"\nmachine = \"m3\"\n",
        1,
    );
    one_error(&src, "\"m3\"", "no machine `m3`");
    let src = builtin_with(
        "[hosts.ue1]\n",
        &format!(
            "{}[hosts.ue1]\n",
            machines.replace("\"192.0.2.2\"", "\"h2\"")
        ),
    );
    one_error(&src, "\"h2\"", "is not a unicast IP address");
}

/// A hypervisor URI says where a host runs, as a machine does: both on one host is refused
/// where the URI is written; `[lab] uri` does not reach a host on a machine; a host with a
/// URI is not balanced onto a machine.
#[test]
fn a_machine_and_a_uri_do_not_mix() {
    let machines = "[machines.m1]\naddress = \"h1.example\"\nunderlay = \"192.0.2.1\"\n\n[machines.m2]\naddress = \"h2.example\"\nunderlay = \"192.0.2.2\"\n\n";
    let on_m1 = builtin_with("[hosts.ue1]\n", &format!("{machines}[hosts.ue1]\n")).replacen(
        "role = \"server\"\n",
        "role = \"server\"\nmachine = \"m1\"\n",
        1,
    );
    let both = on_m1.replacen(
        "[hosts.ue1.vm]\n",
        "[hosts.ue1.vm]\nuri = \"qemu+ssh://h9/system\"\n",
        1,
    );
    one_error(
        &both,
        "\"qemu+ssh://h9/system\"",
        "names machine `m1` and a hypervisor URI",
    );
    let lab_wide = on_m1.replacen(
        "name = \"mptcp\"",
        "name = \"mptcp\"\nuri = \"qemu+ssh://h9/system\"",
        1,
    );
    let lab = model::parse("Lab.toml", &lab_wide).unwrap();
    assert_eq!(lab.hosts[0].vm.uri, None, "on m1, not under [lab] uri");
    assert!(lab.hosts[1].vm.uri.is_some());
    let spread = lab.balance(|_| true);
    assert_eq!(spread.hosts[1].machine, None, "its URI says where it runs");
    let spread = model::parse("Lab.toml", &on_m1).unwrap().balance(|_| true);
    assert_eq!(spread.hosts[1].machine.as_deref(), Some("m2"));
}
