//! The path managers' events during a run, as `ip mptcp monitor` prints them (connections
//! created and established, addresses announced and removed, subflows established and
//! closed), each stamped with the time it arrived: on a namespace host, `ip -n NS mptcp
//! monitor` as a child of lab's, read line by line; on a host reached over SSH, the same
//! command in the background over the session, each line stamped by the host's `date`, put
//! on this machine's clock with the host's measured offset. Each is ended by the PID (or
//! process group) lab started.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest::{Command, Exec};
use serde::{Deserialize, Serialize};

use crate::{Clock, Error};

/// One event of a path manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The host that printed it.
    pub host: String,
    /// When (ns since the epoch, this machine's clock).
    pub ts_ns: u64,
    /// The event's kind: `CREATED`, `ESTABLISHED`, `ANNOUNCED`, `REMOVED`, `SF_ESTABLISHED`,
    /// `SF_PRIORITY`, `SF_CLOSED`, `CLOSED`, ...
    pub kind: String,
    /// The line as printed, after the kind.
    pub text: String,
}

/// The kind and the rest of a monitor line (`[       CREATED] token=...`).
///
/// ```
/// let (k, rest) = capture::monitor::parse("[  SF_ESTABLISHED] token=1 remid=2").unwrap();
/// assert_eq!((k, rest), ("SF_ESTABLISHED", "token=1 remid=2"));
/// ```
///
/// iproute2 6.1 prints the listener events of newer kernels as `UNKNOWN 15` and `UNKNOWN 16`:
/// they get their names from the kernel's `enum mptcp_event_type` (include/uapi/linux/
/// mptcp_pm.h: `MPTCP_EVENT_LISTENER_CREATED = 15`, `MPTCP_EVENT_LISTENER_CLOSED = 16`).
///
/// ```
/// assert_eq!(capture::monitor::parse("[UNKNOWN 15] family=2").unwrap().0, "LISTENER_CREATED");
/// ```
pub fn parse(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim().strip_prefix('[')?;
    let (kind, text) = rest.split_once(']')?;
    let kind = match kind.trim() {
        "UNKNOWN 15" => "LISTENER_CREATED",
        "UNKNOWN 16" => "LISTENER_CLOSED",
        k => k,
    };
    Some((kind, text.trim()))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

/// A monitor running on one host.
pub enum Monitor {
    Local {
        host: String,
        child: Child,
        reader: std::thread::JoinHandle<Vec<(u64, String)>>,
    },
    Remote {
        host: String,
        exec: Box<dyn Exec>,
        pid: u32,
        file: String,
        clock: Clock,
    },
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Monitor::Local { host, child, .. } => f
                .debug_struct("Local")
                .field("host", host)
                .field("pid", &child.id())
                .finish(),
            Monitor::Remote { host, pid, .. } => f
                .debug_struct("Remote")
                .field("host", host)
                .field("pid", pid)
                .finish(),
        }
    }
}

fn failed(host: &str, what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Socket {
        host: host.to_string(),
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

/// `ip -n NS mptcp monitor` on namespace `ns` (host `host`).
pub fn start_local(ns: &str, host: &str) -> Result<Monitor, Error> {
    let mut child = std::process::Command::new("ip")
        .args(["-n", ns, "mptcp", "monitor"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(host, "starting ip mptcp monitor", e))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| failed(host, "starting ip mptcp monitor", "no stdout"))?;
    let reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .map(|l| (now_ns(), l))
            .collect()
    });
    // The netlink group is joined a moment after the process starts.
    std::thread::sleep(Duration::from_millis(100));
    Ok(Monitor::Local {
        host: host.to_string(),
        child,
        reader,
    })
}

/// `ip mptcp monitor` on the host behind `exec`, in the background in a session of its own,
/// each line stamped by the host's `date`.
pub fn start_remote(exec: Box<dyn Exec>, host: &str) -> Result<Monitor, Error> {
    let out = exec
        .check(&Command::new(["mktemp", "/tmp/lab-monitor.XXXXXX"]))
        .map_err(|e| failed(host, "making a file for ip mptcp monitor", e))?;
    let file = out.stdout_lossy().trim().to_string();
    let out = exec
        .check(&Command::new([
            "sh",
            "-c",
            "nohup setsid sh -c 'ip mptcp monitor | while IFS= read -r l; do echo \"$(date +%s%N) $l\"; done' >\"$1\" 2>&1 </dev/null & echo $!",
            "sh",
            &file,
        ]))
        .map_err(|e| failed(host, "starting ip mptcp monitor", e))?;
    let pid: u32 = out
        .stdout_lossy()
        .trim()
        .parse()
        .map_err(|e| failed(host, "starting ip mptcp monitor", e))?;
    let clock = crate::remote::clock(exec.as_ref(), host)?;
    Ok(Monitor::Remote {
        host: host.to_string(),
        exec,
        pid,
        file,
        clock,
    })
}

impl Monitor {
    /// End the monitor and return its events.
    pub fn stop(self) -> Result<Vec<Event>, Error> {
        let (host, lines) = match self {
            Monitor::Local {
                host,
                mut child,
                reader,
            } => {
                // Ours, by PID.
                let _ = child.kill();
                let _ = child.wait();
                let lines = reader.join().unwrap_or_default();
                (host, lines)
            }
            Monitor::Remote {
                host,
                exec,
                pid,
                file,
                clock,
            } => {
                // The process group this monitor started (setsid made it its leader).
                let _ = exec.run(&Command::new(["kill", "-TERM", "--", &format!("-{pid}")]));
                let until = Instant::now() + Duration::from_secs(5);
                while exec
                    .run(&Command::new(["kill", "-0", &pid.to_string()]))
                    .is_ok_and(|o| o.success())
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let text = exec
                    .get_file(Path::new(&file))
                    .map_err(|e| failed(&host, "reading ip mptcp monitor's output", e))?;
                let _ = exec.run(&Command::new(["rm", "-f", &file]));
                let lines = String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|l| {
                        let (ts, rest) = l.split_once(' ')?;
                        let ts: i128 = ts.parse().ok()?;
                        let local = ts - i128::from(clock.offset_ns);
                        Some((u64::try_from(local.max(0)).unwrap_or(0), rest.to_string()))
                    })
                    .collect();
                (host, lines)
            }
        };
        Ok(lines
            .into_iter()
            .filter_map(|(ts, l)| {
                let (kind, text) = parse(&l)?;
                Some(Event {
                    host: host.clone(),
                    ts_ns: ts,
                    kind: kind.to_string(),
                    text: text.to_string(),
                })
            })
            .collect())
    }
}
