//! Two machines simulated on this box for a lab across machines: two network namespaces with
//! an underlay veth between them (10.99.0.1 and 10.99.0.2), each with its own sshd, reached by
//! lab at a loopback port this test forwards into the namespace's port 22. With libvirt, each
//! also runs its own libvirtd (and virtlogd) in a mount namespace of its own: its own /run,
//! /etc/libvirt (a copy of this machine's, without networks or pools), /var/lib/libvirt,
//! /var/cache/libvirt and /var/log/libvirt, in a temporary directory; whatever runs over its
//! sshd sees that machine.
//!
//! On drop, whatever happened: `lab destroy` (while the machines still run), then the sshds
//! with every process they forked, then any process left in a machine's mount namespace (a
//! QEMU its libvirtd started), then any namespace of the lab left in /run/netns (one made
//! inside a machine's sshd is mounted in that sshd's mount namespace only, so its file would
//! outlive a failed destroy), then the machines.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::run_in;

/// Connections to a loopback port, carried into a namespace's port 22.
pub struct Forward {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn pump(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

fn forward(ns: &str) -> Forward {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let (ns, flag) = (ns.to_string(), stop.clone());
    std::thread::spawn(move || {
        let connect = netns::ns::connector(ns);
        let target = guest::SshConfig::new(
            "forward",
            "127.0.0.1",
            22,
            "root",
            guest::Auth::Agent,
            PathBuf::from("/dev/null"),
        );
        while !flag.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    if let Ok(s) = connect(&target) {
                        pump(c, s);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break,
            }
        }
    });
    Forward { port, stop }
}

pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A machine's own libvirtd: the prelude of its sshd, in `dir`.
fn libvirt_prelude(dir: &Path) -> String {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let out = std::process::Command::new("cp")
        .args(["-a", "/etc/libvirt/.", etc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Its own libvirtd starts with no network and no pool of this machine's.
    for sub in ["qemu/networks", "storage"] {
        let d = etc.join(sub);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
    }
    for sub in ["run", "lib", "cache", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    format!(
        "mount --bind {d}/run /run\nmkdir -p /run/libvirt /run/sshd\n\
         mount --bind {d}/etc /etc/libvirt\n\
         mount --bind {d}/lib /var/lib/libvirt\nmkdir -p /var/lib/libvirt/qemu\n\
         mkdir -p /var/cache/libvirt\nmount --bind {d}/cache /var/cache/libvirt\n\
         mount --bind {d}/log /var/log/libvirt\nmkdir -p /var/log/libvirt/qemu\n\
         virtlogd >/var/log/libvirt/virtlogd.out 2>&1 &\n\
         LIBVIRT_LOG_OUTPUTS='3:file:/var/log/libvirt/libvirtd.log' libvirtd >/var/log/libvirt/libvirtd.out 2>&1 &\n\
         for _ in $(seq 120); do virsh --connect qemu:///system version >/dev/null 2>&1 && break; sleep 0.5; done\n\
         virsh --connect qemu:///system version >/dev/null || {{ tail -n 30 /var/log/libvirt/libvirtd.log >&2; exit 1; }}\n"
    )
}

/// The mount namespace of a process, by its link.
fn mount_ns(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// Kill every process in mount namespace `ns`, by PID.
fn kill_in(ns: &Path) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if u32::try_from(pid).ok().and_then(mount_ns).as_deref() == Some(ns) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The two machines, up.
pub struct Machines {
    pub names: [String; 2],
    lab: String,
    lab_dir: PathBuf,
    pub sshd: Vec<guest::sshd::Sshd>,
    pub fwd: Vec<Forward>,
    /// Each machine's mount namespace, when it is not this machine's.
    mounts: Vec<PathBuf>,
    /// The machines' own directories (libvirt's files).
    _dirs: Vec<tempfile::TempDir>,
}

impl Machines {
    /// Machines `labtest-<tag>{1,2}-<pid>` for lab `lab` in `lab_dir`; with `libvirt`, each
    /// runs its own libvirtd.
    pub fn start(tag: &str, lab: &str, lab_dir: &Path, libvirt: bool) -> Machines {
        let id = std::process::id();
        let mut m = Machines {
            names: [
                format!("labtest-{tag}1-{id}"),
                format!("labtest-{tag}2-{id}"),
            ],
            lab: lab.into(),
            lab_dir: lab_dir.to_path_buf(),
            sshd: Vec::new(),
            fwd: Vec::new(),
            mounts: Vec::new(),
            _dirs: Vec::new(),
        };
        let [m1, m2] = m.names.clone();
        for n in [&m1, &m2] {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "dev", "lo", "up"]);
        }
        ip(&[
            "link", "add", "name", "u0", "netns", &m1, "type", "veth", "peer", "name", "u0",
            "netns", &m2,
        ]);
        for (n, a) in [(&m1, "10.99.0.1/24"), (&m2, "10.99.0.2/24")] {
            ip(&["-n", n, "addr", "add", a, "dev", "u0"]);
            ip(&["-n", n, "link", "set", "dev", "u0", "up"]);
        }
        for n in [&m1, &m2] {
            let sshd = if libvirt {
                let dir = tempfile::tempdir().unwrap();
                let prelude = libvirt_prelude(dir.path());
                m._dirs.push(dir);
                guest::sshd::Sshd::start_in_netns_after(n, &prelude).unwrap()
            } else {
                guest::sshd::Sshd::start_in_netns(n).unwrap()
            };
            if let Some(ns) = sshd.pid().and_then(mount_ns)
                && mount_ns(std::process::id()).as_ref() != Some(&ns)
            {
                m.mounts.push(ns);
            }
            m.sshd.push(sshd);
            m.fwd.push(forward(n));
        }
        m
    }

    /// Lab.toml's `[machines.m1]` and `[machines.m2]`: lab's SSH to each, its underlay address
    /// and a 1 Gbit/s underlay.
    pub fn toml(&self) -> String {
        toml(
            self.fwd
                .iter()
                .map(|f| f.port)
                .collect::<Vec<_>>()
                .as_slice(),
            &self
                .sshd
                .iter()
                .map(|s| s.client_key.clone())
                .collect::<Vec<_>>(),
        )
    }

    /// The machines are not lab's: their host keys go into the lab's known_hosts first.
    pub fn trust(&self) {
        std::fs::create_dir_all(self.lab_dir.join(".lab")).unwrap();
        let mut known = String::new();
        for (s, f) in self.sshd.iter().zip(self.fwd.iter()) {
            let pubkey = std::fs::read_to_string(s.dir.path().join("host_key.pub")).unwrap();
            let mut w = pubkey.split_whitespace();
            known.push_str(&format!(
                "[127.0.0.1]:{} {} {}\n",
                f.port,
                w.next().unwrap(),
                w.next().unwrap()
            ));
        }
        std::fs::write(self.lab_dir.join(".lab/known_hosts"), known).unwrap();
    }

    /// This test's own SSH to machine `i` (0 or 1), through its sshd in its namespace.
    pub fn ssh(&self, i: usize) -> guest::Ssh {
        let mut cfg = guest::SshConfig::new(
            format!("m{}", i + 1),
            "127.0.0.1",
            22,
            "root",
            guest::Auth::Key(self.sshd[i].client_key.clone()),
            self.lab_dir.join(format!(".lab/m{}_known_hosts", i + 1)),
        );
        cfg.trust_on_first_use = true;
        guest::Ssh::with_connector(cfg, netns::ns::connector(self.names[i].clone()))
    }
}

/// `[machines.m1]` and `[machines.m2]` at loopback `ports` with `keys`.
pub fn toml(ports: &[u16], keys: &[PathBuf]) -> String {
    ports
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (port, key))| {
            format!(
                "[machines.m{n}]\naddress = \"127.0.0.1\"\nport = {port}\nkey = \"{}\"\nunderlay = \"10.99.0.{n}\"\nunderlay_rate = \"1gbit\"\n\n",
                key.display(),
                n = i + 1
            )
        })
        .collect()
}

impl Drop for Machines {
    fn drop(&mut self) {
        let (_, out, err) = run_in(&self.lab_dir, &["destroy"]);
        eprintln!("{out}{err}");
        self.fwd.clear();
        self.sshd.clear();
        for ns in &self.mounts {
            kill_in(ns);
        }
        let prefix = format!("lab.{}.", self.lab);
        let left: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        for n in left.iter().chain(&self.names) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}
