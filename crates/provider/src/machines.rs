//! The machines a lab places hosts on (`[machines.NAME]`), as every provider that can place
//! hosts reaches them: over lab's SSH, with a host key that must be known already.

use std::time::Duration;

use guest::{Auth, SshConfig};
use model::{Lab, Machine, Tunnel};

use crate::{Error, StateDir};

/// The machine `name` of `lab`; `provider` names who asked, for the error.
///
/// ```
/// let text = model::Preset::Builtin.source().replacen(
///     "[hosts.ue1]\n",
///     "[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n[hosts.ue1]\n",
///     1,
/// );
/// let lab = model::parse("Lab.toml", &text).unwrap();
/// assert_eq!(provider::machine(&lab, "netns", "m1").unwrap().ssh.address, "h1");
/// assert!(provider::machine(&lab, "netns", "m9").is_err());
/// ```
pub fn machine<'a>(lab: &'a Lab, provider: &str, name: &str) -> Result<&'a Machine, Error> {
    lab.machines.iter().find(|m| m.name == name).ok_or_else(|| {
        Error::unsupported(provider, "place a host", &format!("no machine `{name}`"))
    })
}

/// lab's SSH to a machine: its Lab.toml key or the lab's, the lab's known_hosts, a host key
/// that must be known already (lab did not make that machine), and sudo when the user is not
/// root.
///
/// ```
/// let text = model::Preset::Builtin.source().replacen(
///     "[hosts.ue1]\n",
///     "[machines.m1]\naddress = \"h1\"\nuser = \"lab\"\nport = 2222\nkey = \"/k\"\nunderlay = \"192.0.2.1\"\n\n[hosts.ue1]\n",
///     1,
/// );
/// let lab = model::parse("Lab.toml", &text).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let state = provider::StateDir::new(dir.path());
/// let c = provider::machine_ssh(&lab.machines[0], &state).unwrap();
/// assert_eq!((c.address.as_str(), c.port, c.user.as_str()), ("h1", 2222, "lab"));
/// assert!(c.sudo && !c.trust_on_first_use);
/// ```
pub fn machine_ssh(m: &Machine, state: &StateDir) -> Result<SshConfig, Error> {
    let key = match &m.ssh.key {
        Some(k) => k.clone(),
        None => state.key()?,
    };
    let mut c = SshConfig::new(
        format!("machine {}", m.name),
        m.ssh.address.clone(),
        m.ssh.port,
        m.ssh.user.clone(),
        Auth::Key(key),
        state.known_hosts(),
    );
    c.trust_on_first_use = false;
    c.connect_timeout = Duration::from_secs(15);
    c.sudo = m.ssh.user != "root";
    Ok(c)
}

/// The argv that make `machine`'s end of `tunnel` as the device `dev`: a VXLAN from the
/// machine's underlay address (the tunnel's VNI, UDP port and inner MTU), flooding to every
/// other machine of the tunnel. Where the device then goes (a namespace, a bridge) is the
/// provider's.
///
/// ```
/// let mut text = String::from(
///     "[lab]\nname = \"t\"\n\n[machines.m1]\naddress = \"h1\"\nunderlay = \"192.0.2.1\"\n\n\
///      [machines.m2]\naddress = \"h2\"\nunderlay = \"192.0.2.2\"\n\n\
///      [hosts.a]\nrole = \"server\"\nmachine = \"m1\"\n\n[hosts.b]\nrole = \"client\"\nmachine = \"m2\"\n\n\
///      [[links]]\nname = \"p\"\nendpoints = [\"a:eth1\", \"b:eth1\"]\n\n\
///      [[hosts.a.interfaces]]\nname = \"eth1\"\naddress = \"10.0.1.1/24\"\n\n\
///      [[hosts.b.interfaces]]\nname = \"eth1\"\naddress = \"10.0.1.2/24\"\n",
/// );
/// let lab = model::parse("Lab.toml", &text).unwrap();
/// let t = &lab.tunnels()[0];
/// let argv = provider::tunnel_end(&lab, "netns", "m2", t, "vx1").unwrap();
/// assert_eq!(argv[0].join(" "), format!("ip link add vx1 mtu 1450 type vxlan id {} local 192.0.2.2 dstport 4790", t.vni));
/// assert_eq!(argv[1].join(" "), "bridge fdb append 00:00:00:00:00:00 dev vx1 dst 192.0.2.1");
/// assert_eq!(argv.len(), 2);
/// ```
pub fn tunnel_end(
    lab: &Lab,
    provider: &str,
    machine: &str,
    tunnel: &Tunnel,
    dev: &str,
) -> Result<Vec<Vec<String>>, Error> {
    let local = self::machine(lab, provider, machine)?;
    let mut out = vec![net::devices::vxlan(
        dev,
        tunnel.vni,
        &local.underlay.to_string(),
        tunnel.port,
        tunnel.mtu.unwrap_or_else(|| local.tunnel_mtu()),
    )];
    for peer in tunnel.machines.iter().filter(|m| *m != machine) {
        let peer = self::machine(lab, provider, peer)?;
        out.push(net::devices::flood_to(dev, &peer.underlay.to_string()));
    }
    Ok(out)
}
