//! Devices lab makes on a machine for VMs to join a segment: a bridge per segment and a tap
//! per VM NIC, each without any address (IPv6 address generation off before it goes up, so it
//! never sends a router solicitation or DAD probe onto the lab's segment), tagged with an alias
//! so lab finds its own devices again without a state file. Pure argv for `ip`.

/// The argv that make a bridge named `name` tagged `alias`, up, with no address.
///
/// ```
/// let steps = net::devices::bridge("lb0123", "lab:x:seg");
/// assert_eq!(steps[0], ["ip", "link", "add", "name", "lb0123", "type", "bridge"]);
/// ```
pub fn bridge(name: &str, alias: &str) -> Vec<Vec<String>> {
    let mut v = vec![argv(&["ip", "link", "add", "name", name, "type", "bridge"])];
    v.extend(quiet_up(name, alias, None));
    v
}

/// The argv that make a persistent tap (with virtio's header, as QEMU opens it) tagged
/// `alias`, a port of `bridge`, up, with no address.
pub fn tap(name: &str, bridge: &str, alias: &str) -> Vec<Vec<String>> {
    let mut v = vec![argv(&[
        "ip", "tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr",
    ])];
    v.extend(quiet_up(name, alias, Some(bridge)));
    v
}

fn quiet_up(name: &str, alias: &str, master: Option<&str>) -> Vec<Vec<String>> {
    let mut v = vec![
        argv(&["ip", "link", "set", "dev", name, "addrgenmode", "none"]),
        argv(&["ip", "link", "set", "dev", name, "alias", alias]),
    ];
    if let Some(m) = master {
        v.push(argv(&["ip", "link", "set", "dev", name, "master", m]));
    }
    v.push(argv(&["ip", "link", "set", "dev", name, "up"]));
    v
}

/// Remove a device.
pub fn delete(name: &str) -> Vec<String> {
    argv(&["ip", "link", "del", "dev", name])
}

/// List every device with its alias (see [`aliased`]).
pub fn list() -> Vec<String> {
    argv(&["ip", "-json", "link", "show"])
}

/// The devices of [`list`]'s output whose alias starts with `prefix`: (name, alias).
///
/// ```
/// let out = r#"[{"ifname":"lo"},{"ifname":"lb1","ifalias":"lab:x:a"},{"ifname":"lt2","ifalias":"lab:y:b"}]"#;
/// assert_eq!(net::devices::aliased(out, "lab:x:"), [("lb1".to_string(), "lab:x:a".to_string())]);
/// ```
pub fn aliased(list_json: &str, prefix: &str) -> Vec<(String, String)> {
    let links: Vec<serde_json::Value> = serde_json::from_str(list_json).unwrap_or_default();
    links
        .iter()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?;
            let alias = l["ifalias"].as_str()?;
            alias
                .starts_with(prefix)
                .then(|| (name.to_string(), alias.to_string()))
        })
        .collect()
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}
