//! What every VM provider needs: a loopback port for each VM's SSH forward, SSH settings for a
//! machine the lab made, and parallel waits.

use std::time::Duration;

use guest::{Auth, SshConfig};

use crate::{Error, StateDir};

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
