//! Reaching a lab's hosts: the command seam for each provider, the lab's own SSH key and
//! known_hosts, and OpenSSH client configuration (`lab ssh-config`, `lab ssh`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use guest::{Auth, Exec, Local, Ssh, SshConfig};

use crate::model::{Host, Lab, Provider};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no host `{0}` in this lab")]
    NoHost(String),
    #[error(
        "host `{host}` uses provider \"{provider}\", which cannot be reached yet (its issue is open)"
    )]
    Unsupported {
        host: String,
        provider: &'static str,
    },
    #[error("host `{0}`: its VM is not known here (run `lab up` with its provider first)")]
    NotUp(String),
    #[error("host `{0}` is a network namespace: it has no SSH server (use `lab exec {0} -- CMD`)")]
    NoSsh(String),
    #[error(transparent)]
    Command(#[from] Box<guest::Error>),
}

/// `.lab/` of a lab directory: state, the lab's key, known_hosts.
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join(".lab")
}

/// The lab-local known_hosts file.
pub fn known_hosts(dir: &Path) -> PathBuf {
    state_dir(dir).join("known_hosts")
}

/// The lab's own ed25519 key (`.lab/id_ed25519`), generated on first use with ssh-keygen.
pub fn lab_key(dir: &Path) -> Result<PathBuf, Error> {
    let key = state_dir(dir).join("id_ed25519");
    if !key.exists() {
        std::fs::create_dir_all(state_dir(dir)).map_err(|e| {
            Box::new(guest::Error::File {
                host: "local".into(),
                op: "create",
                path: state_dir(dir),
                source: e,
            })
        })?;
        Local::new("local")
            .check(&guest::keygen(&key, "lab"))
            .map_err(Box::new)?;
    }
    Ok(key)
}

/// A JSON state file under `.lab/` (missing or unreadable: the default).
pub fn read_state<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Write a JSON state file atomically (a temp file beside it, then rename).
pub fn write_state<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&tmp, path)
}

/// Whether a loopback port can be bound now.
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free loopback port for a VM's SSH forward: from `preferred` on (stable across runs, like
/// Vagrant's 2222), skipping `taken`, else one the kernel picks.
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

/// `f` on every item, each in a thread of its own (the VM providers' waits for SSH); the
/// results in the items' order. A panic in `f` goes on in the caller.
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

/// SSH to a VM lab created: `user` on its loopback forward with `key`, the host key trusted
/// on first use (the machine is the lab's).
fn vm_ssh_config(dir: &Path, h: &Host, port: u16, user: &str, key: PathBuf) -> SshConfig {
    let mut c = SshConfig::new(
        h.name.clone(),
        "127.0.0.1",
        port,
        user,
        Auth::Key(key),
        known_hosts(dir),
    );
    c.trust_on_first_use = true;
    c.connect_timeout = Duration::from_secs(10);
    c
}

/// Forget the host key recorded for `address:port` (a VM lab destroyed).
pub fn forget_host_key(dir: &Path, address: &str, port: u16) -> Result<(), Error> {
    let path = known_hosts(dir);
    guest::known_hosts::forget(&path, &guest::known_hosts::pattern(address, port)).map_err(|e| {
        Error::Command(Box::new(guest::Error::File {
            host: "local".into(),
            op: "rewrite",
            path,
            source: e,
        }))
    })
}

/// How a host is reached. A VM lab created: root on its loopback SSH forward with the lab's
/// key, its host key trusted on first use. An existing machine: its Lab.toml key, else the
/// user's ssh-agent, else the lab's own key, and a host key known beforehand.
pub fn ssh_config(lab: &Lab, dir: &Path, h: &Host) -> Result<SshConfig, Error> {
    if h.provider == Provider::Virtualbox {
        let port = crate::virtualbox::load_state(dir, lab)
            .vms
            .get(&h.name)
            .map(|r| r.ssh_port)
            .ok_or_else(|| Error::NotUp(h.name.clone()))?;
        return Ok(vm_ssh_config(dir, h, port, &h.vm.user, lab_key(dir)?));
    }
    if h.provider == Provider::Qemu {
        let state = crate::qemu::load_state(dir, lab);
        let port = state
            .vms
            .get(&h.name)
            .map(|r| r.ssh_port)
            .ok_or_else(|| Error::NotUp(h.name.clone()))?;
        return Ok(vm_ssh_config(dir, h, port, &h.vm.user, state.key.clone()));
    }
    let t = h.ssh.as_ref().ok_or_else(|| Error::NoSsh(h.name.clone()))?;
    let auth = match &t.key {
        Some(k) if k.is_absolute() => Auth::Key(k.clone()),
        Some(k) => Auth::Key(dir.join(k)),
        None if std::env::var_os("SSH_AUTH_SOCK").is_some() => Auth::Agent,
        None => Auth::Key(lab_key(dir)?),
    };
    let _ = lab;
    let mut c = SshConfig::new(
        h.name.clone(),
        t.address.clone(),
        t.port,
        t.user.clone(),
        auth,
        known_hosts(dir),
    );
    // Existing machines are not the lab's: their keys must be known beforehand.
    c.trust_on_first_use = false;
    c.connect_timeout = Duration::from_secs(10);
    Ok(c)
}

/// The command seam for a host.
pub fn exec_for(lab: &Lab, dir: &Path, name: &str) -> Result<Box<dyn Exec>, Error> {
    let h = lab
        .host(name)
        .ok_or_else(|| Error::NoHost(name.to_string()))?;
    match h.provider {
        Provider::Netns => Ok(Box::new(guest::Netns::new(
            h.name.clone(),
            crate::instant::topology(lab).host_ns(&h.name),
        ))),
        Provider::Ssh | Provider::Virtualbox | Provider::Qemu => {
            Ok(Box::new(Ssh::new(ssh_config(lab, dir, h)?)))
        }
    }
}

/// An OpenSSH client configuration block per host reachable over SSH (like
/// `vagrant ssh-config`), using the lab's known_hosts strictly.
pub fn openssh_config(lab: &Lab, dir: &Path) -> Result<String, Error> {
    let mut out = String::new();
    for h in &lab.hosts {
        match h.provider {
            Provider::Ssh | Provider::Virtualbox | Provider::Qemu => {
                let c = ssh_config(lab, dir, h)?;
                out.push_str(&format!("Host {}\n", h.name));
                out.push_str(&format!("  HostName {}\n", c.address));
                out.push_str(&format!("  Port {}\n", c.port));
                out.push_str(&format!("  User {}\n", c.user));
                if let Auth::Key(k) = &c.auth {
                    out.push_str(&format!(
                        "  IdentityFile {}\n  IdentitiesOnly yes\n",
                        k.display()
                    ));
                }
                out.push_str(&format!(
                    "  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  ServerAliveInterval 15\n\n",
                    c.known_hosts.display()
                ));
            }
            Provider::Netns => out.push_str(&format!(
                "# {}: a network namespace ({}), reached with `lab exec {} -- CMD`\n\n",
                h.name,
                crate::instant::topology(lab).host_ns(&h.name),
                h.name
            )),
        }
    }
    Ok(out)
}

/// The `ssh` argv that opens an interactive session on a host (what `lab ssh` runs).
pub fn interactive_argv(
    lab: &Lab,
    dir: &Path,
    name: &str,
    extra: &[String],
) -> Result<Vec<String>, Error> {
    let h = lab
        .host(name)
        .ok_or_else(|| Error::NoHost(name.to_string()))?;
    if h.provider == Provider::Netns {
        return Err(Error::NoSsh(h.name.clone()));
    }
    let c = ssh_config(lab, dir, h)?;
    let mut v: Vec<String> = vec![
        "ssh".into(),
        "-p".into(),
        c.port.to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", c.known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "ServerAliveInterval=15".into(),
    ];
    if let Auth::Key(k) = &c.auth {
        v.extend([
            "-i".into(),
            k.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    v.push(format!("{}@{}", c.user, c.address));
    if !extra.is_empty() {
        v.push("--".into());
        v.extend(extra.iter().cloned());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_key_is_made_once() {
        if !testkit::require("the lab's key", testkit::tool("ssh-keygen")) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = lab_key(dir.path()).unwrap();
        assert_eq!(key, dir.path().join(".lab/id_ed25519"));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        let first = std::fs::read(&key).unwrap();
        lab_key(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(&key).unwrap(),
            first,
            "an existing key is kept"
        );
    }
}
