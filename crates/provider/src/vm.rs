//! What every VM provider needs: a loopback port for each VM's SSH forward, SSH settings for a
//! machine the lab made, and parallel waits.

use std::time::Duration;

use guest::{Auth, SshConfig};

use crate::{Error, StateDir};

/// Whether `tool` is an executable file on PATH (no process is started).
///
/// ```
/// assert!(provider::vm::on_path("sh"));
/// assert!(!provider::vm::on_path("no-such-tool-lab"));
/// ```
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Stable names for what a provider makes from stable inputs: the model's FNV-1a, the same
/// across runs, machines and Rust versions.
pub use model::stable_hash;

/// Whether a loopback port can be bound now.
///
/// ```
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// assert!(!provider::vm::port_free(l.local_addr().unwrap().port()));
/// ```
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free loopback port for a VM's SSH forward: from `preferred` on (stable across runs, like
/// Vagrant's 2222), skipping `taken`, else one the kernel picks.
///
/// ```
/// let p = provider::vm::pick_port(2222, &[2222]);
/// assert_ne!(p, 2222);
/// ```
pub fn pick_port(preferred: u16, taken: &[u16]) -> u16 {
    (preferred..preferred.saturating_add(200))
        .find(|p| !taken.contains(p) && port_free(*p))
        .or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .ok()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port())
        })
        .unwrap_or(preferred)
}

/// The recorded hosts that `lab` no longer puts on `provider` (dropped from Lab.toml, or moved
/// to another provider): their VMs are the provider's to remove on the next `up`.
///
/// ```
/// let lab = model::Preset::Builtin.load().unwrap();
/// let recorded = ["ue1".to_string(), "old".to_string()];
/// assert_eq!(provider::vm::dropped_hosts(recorded.iter(), &lab, "netns"), ["old"]);
/// ```
pub fn dropped_hosts<'a>(
    recorded: impl Iterator<Item = &'a String>,
    lab: &model::Lab,
    provider: &str,
) -> Vec<String> {
    recorded
        .filter(|k| {
            !lab.hosts
                .iter()
                .any(|h| h.name == **k && h.provider.as_str() == provider)
        })
        .cloned()
        .collect()
}

/// `f` on every item, each in a thread of its own (the VM providers' waits for SSH); the
/// results in the items' order. A panic in `f` goes on in the caller.
///
/// ```
/// let squares = provider::vm::each_in_parallel(&[1, 2, 3], |n| n * n);
/// assert_eq!(squares, [1, 4, 9]);
/// ```
pub fn each_in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let f = &f;
        let workers: Vec<_> = items.iter().map(|i| s.spawn(move || f(i))).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// SSH to a VM the lab created, on the loopback port forwarded to its SSH server: `user`
/// with the key `key()` gives, the host key trusted on first use (the machine is the lab's).
/// No port (the provider has no record of the VM): [`Error::NotUp`].
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let state = provider::StateDir::new(dir.path());
/// let key = || Ok("/lab/.lab/id_ed25519".into());
/// let c = provider::vm::ssh_config(&state, "qemu", "ue1", Some(2222), "root", key).unwrap();
/// assert_eq!((c.address.as_str(), c.port), ("127.0.0.1", 2222));
/// let down = provider::vm::ssh_config(&state, "qemu", "ue1", None, "root", key);
/// assert!(matches!(down, Err(provider::Error::NotUp { .. })));
/// ```
pub fn ssh_config(
    state: &StateDir,
    provider: &str,
    host: &str,
    port: Option<u16>,
    user: &str,
    key: impl FnOnce() -> Result<std::path::PathBuf, Error>,
) -> Result<SshConfig, Error> {
    let port = port.ok_or_else(|| Error::NotUp {
        provider: provider.to_string(),
        host: host.to_string(),
    })?;
    let mut c = SshConfig::new(
        host,
        "127.0.0.1",
        port,
        user,
        Auth::Key(key()?),
        state.known_hosts(),
    );
    c.trust_on_first_use = true;
    c.connect_timeout = Duration::from_secs(10);
    Ok(c)
}

/// Guest NIC names depend on the kernel and the machine (`ens8` or `enp0s8`): find each lab
/// NIC by its MAC (`aa:bb:..`, lowercase) and give it the Lab.toml name now, and in a systemd
/// `.link` file for every later boot (whatever kernel). `nics`: (MAC, wanted name).
pub fn name_nics(
    ssh: &dyn guest::Exec,
    host: &str,
    nics: &[(String, String)],
) -> Result<(), Error> {
    use guest::Command;
    let links = ssh.check(&Command::new(["ip", "-json", "link", "show"]))?;
    let parsed: serde_json::Value = serde_json::from_str(&links.stdout_lossy()).unwrap_or_default();
    for (mac, want) in nics {
        let link = parsed.as_array().and_then(|a| {
            a.iter()
                .find(|l| l["address"].as_str() == Some(mac.as_str()))
        });
        let Some(link) = link else {
            return Err(Error::Login {
                host: host.to_string(),
                message: format!("no NIC with MAC {mac} (for {want}) in the guest"),
            });
        };
        let current = link["ifname"].as_str().unwrap_or_default().to_string();
        if current != *want {
            // udev may already hold the wanted name as an alternative name of this NIC.
            let altnames: Vec<&str> = link["altnames"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let mut steps: Vec<Vec<&str>> = Vec::new();
            if altnames.contains(&want.as_str()) {
                steps.push(vec![
                    "ip", "link", "property", "del", "dev", &current, "altname", want,
                ]);
            }
            steps.push(vec!["ip", "link", "set", "dev", &current, "down"]);
            steps.push(vec!["ip", "link", "set", "dev", &current, "name", want]);
            for argv in steps {
                ssh.check(&Command::new(argv))?;
            }
        }
        ssh.put_file(
            std::path::Path::new(&format!("/etc/systemd/network/10-lab-{want}.link")),
            format!("[Match]\nMACAddress={mac}\n\n[Link]\nName={want}\n").as_bytes(),
            guest::FileMode::mode(0o644),
        )?;
    }
    Ok(())
}

/// Hosts whose Lab.toml `image` is no longer the one their disk was made from, as
/// `(host, was, now)`: the hosts (comma-separated) and the refusal that names both images and
/// the fix; `None` when there are none. `on` names the hypervisor, when there are several.
///
/// ```
/// let changed = [("ue1".to_string(), "debian-12".to_string(), "ubuntu-22.04".to_string())];
/// let (hosts, why) = provider::vm::changed_images(&changed, None).unwrap();
/// assert_eq!(hosts, "ue1");
/// assert!(why.starts_with("ue1's disk was made from `debian-12` and Lab.toml now gives `ubuntu-22.04`;"));
/// assert!(why.contains("lab destroy"));
/// assert!(provider::vm::changed_images(&[], None).is_none());
/// ```
pub fn changed_images(
    changed: &[(String, String, String)],
    on: Option<&str>,
) -> Option<(String, String)> {
    if changed.is_empty() {
        return None;
    }
    let hosts: Vec<&str> = changed.iter().map(|(h, _, _)| h.as_str()).collect();
    let what: Vec<String> = changed
        .iter()
        .map(|(h, was, now)| {
            format!("{h}'s disk was made from `{was}` and Lab.toml now gives `{now}`")
        })
        .collect();
    Some((
        hosts.join(", "),
        format!(
            "{}{}; a disk cannot move to another image (it holds what was done on the VM), so nothing was changed. `lab destroy` then `lab up` makes the VM anew from the new image, or set `image` back",
            what.join("; "),
            on.map(|u| format!(" (on {u})")).unwrap_or_default()
        ),
    ))
}

/// The network of a VM's NAT NIC: QEMU's user-mode NAT and VirtualBox's NAT both give the
/// guest 10.0.2.15 and reach it from 10.0.2.2.
pub const NAT_NETWORK: &str = "10.0.2.0/24";

/// A VM host's NICs as lab needs them: the first is NAT (lab reaches the VM over SSH through
/// it), and no other NIC's subnet overlaps the NAT's network, where the VM would send lab's
/// SSH replies down the path NIC and lab would lose it. `vm` names the kind ("a QEMU VM").
///
/// ```
/// let lab = model::Preset::Builtin.load().unwrap();
/// assert_eq!(provider::vm::nat_first(&lab.hosts[0], "a QEMU VM"), Ok(()));
/// let text = model::Preset::Builtin.source().replace("10.1.1.", "10.0.2.");
/// let lab = model::parse("Lab.toml", &text).unwrap();
/// let e = provider::vm::nat_first(&lab.hosts[0], "a QEMU VM").unwrap_err();
/// assert!(e.contains("enp0s8") && e.contains("10.0.2.0/24"), "{e}");
/// ```
pub fn nat_first(h: &model::Host, vm: &str) -> Result<(), String> {
    if h.interfaces.first().is_none_or(|i| !i.is_nat()) {
        return Err(format!(
            "{vm} needs a NAT interface first (`nat = true`): lab reaches it over SSH through it"
        ));
    }
    let nat: ipnet::IpNet = NAT_NETWORK.parse().unwrap_or_default();
    for i in &h.interfaces[1..] {
        if let Some(a) = i
            .addresses
            .iter()
            .find(|a| a.contains(&nat.network()) || nat.contains(&a.network()))
        {
            return Err(format!(
                "{}: {a} overlaps {NAT_NETWORK}, the network of the VM's NAT NIC (QEMU's and VirtualBox's NAT): the VM would answer lab's SSH through {} and lab would lose it; give the path another subnet",
                i.name, i.name
            ));
        }
    }
    Ok(())
}
