//! The machines a lab places hosts on (`[machines.NAME]`), as every provider that can place
//! hosts reaches them: over lab's SSH, with a host key that must be known already.

use std::time::Duration;

use guest::{Auth, SshConfig};
use model::{Lab, Machine};

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
