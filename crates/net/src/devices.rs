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

/// The argv that tag an existing device (a VXLAN) `alias`, make it a port of `bridge`, and
/// bring it up, with no address.
///
/// ```
/// let v = net::devices::port("lx1", "lb1", "lab:x:a");
/// assert_eq!(v.last().unwrap().join(" "), "ip link set dev lx1 up");
/// assert!(v.iter().any(|a| a.join(" ") == "ip link set dev lx1 master lb1"));
/// ```
pub fn port(name: &str, bridge: &str, alias: &str) -> Vec<Vec<String>> {
    quiet_up(name, alias, Some(bridge))
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

/// A new, empty network namespace (on the machine the command runs on).
pub fn netns_add(name: &str) -> Vec<String> {
    argv(&["ip", "netns", "add", name])
}

/// Remove a namespace (and every device in it).
pub fn netns_del(name: &str) -> Vec<String> {
    argv(&["ip", "netns", "del", name])
}

/// The machine's namespaces (see [`netns_names`]).
pub fn netns_list() -> Vec<String> {
    argv(&["ip", "-json", "netns", "list"])
}

/// The names in [`netns_list`]'s output (`ip -json netns list` prints nothing at all when
/// there is none).
///
/// ```
/// assert_eq!(net::devices::netns_names(r#"[{"name":"a","id":0},{"name":"b"}]"#), ["a", "b"]);
/// assert!(net::devices::netns_names("").is_empty());
/// ```
pub fn netns_names(out: &str) -> Vec<String> {
    let v: Vec<serde_json::Value> = serde_json::from_str(out).unwrap_or_default();
    v.iter()
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .collect()
}

/// A veth pair from `a` in namespace `a_ns` to `b` in `b_ns`, both ends with `mtu`; `a` with
/// `mac`.
pub fn veth(
    (a, a_ns): (&str, &str),
    (b, b_ns): (&str, &str),
    mac: Option<&str>,
    mtu: Option<u32>,
) -> Vec<String> {
    let mtu = mtu.map(|m| m.to_string());
    let mut v = vec!["ip", "link", "add", "name", a];
    if let Some(m) = mac {
        v.extend(["address", m]);
    }
    if let Some(m) = &mtu {
        v.extend(["mtu", m]);
    }
    v.extend([
        "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]);
    if let Some(m) = &mtu {
        v.extend(["mtu", m]);
    }
    argv(&v)
}

/// `ip -n NS ARGS...`: an `ip` command in a namespace.
pub fn in_netns(ns: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["ip", "-n", ns];
    v.extend(args);
    argv(&v)
}

/// A VXLAN device (learning, flooding to the peers [`flood_to`] adds) with its VNI, the local
/// underlay address, its own UDP port and the MTU inside.
pub fn vxlan(name: &str, vni: u32, local: &str, port: u16, mtu: u32) -> Vec<String> {
    let (vni, port, mtu) = (vni.to_string(), port.to_string(), mtu.to_string());
    argv(&[
        "ip", "link", "add", name, "mtu", &mtu, "type", "vxlan", "id", &vni, "local", local,
        "dstport", &port,
    ])
}

/// Send a VXLAN device's broadcast, unknown and multicast frames to `peer` too.
pub fn flood_to(dev: &str, peer: &str) -> Vec<String> {
    argv(&[
        "bridge",
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        dev,
        "dst",
        peer,
    ])
}

/// Move a device into a namespace.
pub fn move_to(dev: &str, ns: &str) -> Vec<String> {
    argv(&["ip", "link", "set", "dev", dev, "netns", ns])
}
