//! A private OpenSSH sshd, for tests and `lab bench`: temp host key, config and
//! authorized_keys, listening on loopback (of this machine, or of a network namespace the caller
//! created), stopped by PID with everything it forked.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running sshd. Dropping it kills it (by PID) and removes its directory.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The client key whose public half is in authorized_keys.
    pub client_key: PathBuf,
    netns: Option<String>,
    /// Shell lines run in the namespace before sshd (which then runs in their mount namespace).
    prelude: Option<String>,
}

const SSHD: &str = "/usr/sbin/sshd";

/// Whether sshd and ssh-keygen are installed.
pub fn available() -> Result<(), String> {
    if !Path::new(SSHD).is_file() {
        return Err(format!(
            "`{SSHD}` is not installed (Debian: openssh-server)"
        ));
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("ssh-keygen").is_file()));
    if found {
        Ok(())
    } else {
        Err("`ssh-keygen` is not installed (Debian: openssh-client)".into())
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lab-test", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Sshd {
    /// sshd on 127.0.0.1 of this machine, on a free port.
    pub fn start() -> Result<Self, String> {
        Self::start_in(None, None)
    }

    /// sshd on 127.0.0.1:22 inside the network namespace `ns`.
    pub fn start_in_netns(ns: &str) -> Result<Self, String> {
        Self::start_in(Some(ns.to_string()), None)
    }

    /// [`Sshd::start_in_netns`], sshd started by a shell in the namespace after `prelude`
    /// (POSIX shell lines, `set -e`): a simulated machine's own mounts and daemons (started in
    /// the background: sshd then reaps them, and [`Sshd::kill`] ends them with it), which every
    /// command over this sshd sees. The prelude has 120 s until sshd listens.
    pub fn start_in_netns_after(ns: &str, prelude: &str) -> Result<Self, String> {
        Self::start_in(Some(ns.to_string()), Some(prelude.to_string()))
    }

    fn start_in(netns: Option<String>, prelude: Option<String>) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        keygen(&dir.path().join("host_key"))?;
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key)?;
        std::fs::copy(
            dir.path().join("id_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .map_err(|e| e.to_string())?;
        // sshd's privilege-separation directory (the openssh-server package makes it at boot).
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let port = match netns {
            Some(_) => 22,
            None => {
                let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                l.local_addr().map_err(|e| e.to_string())?.port()
            }
        };
        let mut sshd = Self {
            child: None,
            port,
            dir,
            client_key,
            netns,
            prelude,
        };
        sshd.spawn()?;
        Ok(sshd)
    }

    /// `SetEnv SHLVL=1`: bash sources ~/.bashrc for commands run by sshd only at shell level 1;
    /// starting at 1 skips it, so a command costs what it costs, not what the machine's root
    /// .bashrc costs (pyenv init here: ~80 ms). Both the session and the `ssh` processes of
    /// `lab bench` talk to this same sshd.
    fn config(&self) -> String {
        let d = self.dir.path().display();
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nLogLevel INFO\nMaxSessions 1000\nMaxStartups 1000\n\
             SetEnv SHLVL=1\n",
            port = self.port
        )
    }

    /// Start (or restart) sshd with the current keys and wait until it listens.
    pub fn spawn(&mut self) -> Result<(), String> {
        let cfg = self.dir.path().join("sshd_config");
        std::fs::write(&cfg, self.config()).map_err(|e| e.to_string())?;
        let mut cmd = match (&self.netns, &self.prelude) {
            (Some(ns), Some(prelude)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sh", "-c"])
                    .arg(format!("set -e\n{prelude}\nexec {SSHD} \"$@\""))
                    .arg("sh");
                c
            }
            (Some(ns), None) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SSHD]);
                c
            }
            (None, _) => Command::new(SSHD),
        };
        let mut child = cmd
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting sshd: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut last: Vec<String> = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server listening on") {
                    let _ = tx.send(Ok(()));
                } else if line.contains("fatal") || line.contains("Bind to port") {
                    let _ = tx.send(Err(line.clone()));
                }
                last.push(line);
                if last.len() > 20 {
                    last.remove(0);
                }
            }
            // Ended before it listened (a failed prelude): what it said last.
            let _ = tx.send(Err(format!("exited: {}", last.join(" | "))));
        });
        self.child = Some(child);
        let within = if self.prelude.is_some() { 120 } else { 10 };
        match rx.recv_timeout(Duration::from_secs(within)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(line)) => {
                self.kill();
                Err(format!("sshd failed: {line}"))
            }
            Err(_) => {
                self.kill();
                Err(format!("sshd did not start listening within {within} s"))
            }
        }
    }

    /// Kill sshd and every process it forked (per-connection sshd processes and the commands
    /// they run), by PID, with SIGKILL: connections through it break mid-command.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pids = descendants(c.id());
            let _ = c.kill();
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let _ = c.wait();
        }
    }

    /// A new host key (a rebuilt machine, or someone in between); takes effect on restart.
    pub fn new_host_key(&mut self) -> Result<(), String> {
        let key = self.dir.path().join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key)
    }

    /// An authorized key that is not the client's (the client's key is then refused).
    pub fn authorize_other_key(&self) -> Result<(), String> {
        let other = self.dir.path().join("other");
        keygen(&other)?;
        std::fs::copy(
            other.with_extension("pub"),
            self.dir.path().join("authorized_keys"),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `root` in the process tree (from /proc/*/stat).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may contain spaces; read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid) in &parent_of {
            if *ppid == p && !out.contains(pid) {
                out.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    out
}
