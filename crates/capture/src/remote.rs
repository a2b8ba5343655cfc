//! Capture on hosts lab reaches through a command seam (SSH to a VM or an existing machine):
//! `tcpdump -U -w FILE` per interface, started in the background with its PID recorded, ended
//! by that PID (SIGINT, as Ctrl-C), its file read back over the same session. The host's clock
//! is compared with this machine's around `date` calls (the one with the shortest round trip
//! of five); frames are put on this machine's clock, and the offset and its uncertainty (half
//! that round trip) are kept.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest::{Command, Exec};

use crate::{Captured, Clock, Error, pcapng};

/// A capture running on a remote host.
pub struct Running {
    exec: Box<dyn Exec>,
    host: String,
    dir: String,
    ifaces: Vec<(String, u32)>,
    snaplen: u32,
    clock: Clock,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("host", &self.host)
            .field("dir", &self.dir)
            .field("ifaces", &self.ifaces)
            .finish_non_exhaustive()
    }
}

fn failed(host: &str, what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Socket {
        host: host.to_string(),
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0))
}

/// The host's clock against this machine's: `remote - local` at the middle of one `date` call,
/// and half its round trip as the uncertainty (the best of five).
pub fn clock(exec: &dyn Exec, host: &str) -> Result<Clock, Error> {
    let mut best: Option<Clock> = None;
    for _ in 0..5 {
        let t0 = now_ns();
        let out = exec
            .check(&Command::new(["date", "+%s%N"]))
            .map_err(|e| failed(host, "reading the host's clock", e))?;
        let t1 = now_ns();
        let remote: i128 = out
            .stdout_lossy()
            .trim()
            .parse()
            .map_err(|e| failed(host, "reading the host's clock", e))?;
        let c = Clock {
            offset_ns: i64::try_from(remote - (t0 + t1) / 2).unwrap_or(0),
            error_ns: u64::try_from((t1 - t0) / 2).unwrap_or(u64::MAX),
        };
        if best.is_none_or(|b| c.error_ns < b.error_ns) {
            best = Some(c);
        }
    }
    Ok(best.unwrap_or_default())
}

/// Start `tcpdump` on each of `ifaces` of the host behind `exec` (as root: the seam runs
/// commands through sudo where the login is not root). Returns once every tcpdump listens.
pub fn start(
    exec: Box<dyn Exec>,
    host: &str,
    ifaces: &[String],
    snaplen: u32,
) -> Result<Running, Error> {
    let out = exec
        .check(&Command::new(["mktemp", "-d", "/tmp/lab-capture.XXXXXX"]))
        .map_err(|e| failed(host, "making a directory for tcpdump", e))?;
    let dir = out.stdout_lossy().trim().to_string();
    let mut running = Running {
        exec,
        host: host.to_string(),
        dir,
        ifaces: Vec::new(),
        snaplen,
        clock: Clock::default(),
    };
    for (n, iface) in ifaces.iter().enumerate() {
        let file = format!("{}/{n}.pcap", running.dir);
        // In the background (nohup: the session's channel closing must not end it), its PID
        // printed. --immediate-mode: libpcap's TPACKET_V3 ring otherwise hands packets over
        // a block (or a second) at a time, and what is still in the ring at SIGINT is lost.
        let out = running
            .exec
            .check(&Command::new([
                "sh".to_string(),
                "-c".into(),
                "nohup tcpdump --immediate-mode -i \"$1\" -s \"$2\" -U -Z root -w \"$3\" tcp </dev/null >/dev/null 2>\"$3.err\" & echo $!".into(),
                "sh".into(),
                iface.clone(),
                snaplen.to_string(),
                file.clone(),
            ]))
            .map_err(|e| failed(host, "starting tcpdump", e))?;
        let pid: u32 = out
            .stdout_lossy()
            .trim()
            .parse()
            .map_err(|e| failed(host, "starting tcpdump", e))?;
        running.ifaces.push((iface.clone(), pid));
        // tcpdump says so on stderr once its socket is open and filtered.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let err = running
                .exec
                .get_file(Path::new(&format!("{file}.err")))
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&err);
            if text.contains("listening on") {
                break;
            }
            let alive = running
                .exec
                .run(&Command::new(["kill", "-0", &pid.to_string()]))
                .is_ok_and(|o| o.success());
            if !alive || Instant::now() > until {
                let why = if text.trim().is_empty() {
                    "tcpdump did not start (is it installed? Debian: tcpdump)".to_string()
                } else {
                    text.trim().to_string()
                };
                let _ = running.cleanup();
                return Err(failed(host, "starting tcpdump", format!("{iface}: {why}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    running.clock = clock(running.exec.as_ref(), host)?;
    Ok(running)
}

/// The drop count in tcpdump's closing words ("N packets dropped by kernel").
///
/// ```
/// let err = "tcpdump: listening on eth0\n10 packets captured\n12 packets received by filter\n2 packets dropped by kernel\n";
/// assert_eq!(capture::remote::dropped(err), Some(2));
/// ```
pub fn dropped(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        l.strip_suffix(" packets dropped by kernel")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// The link type and frames of a pcap file (as tcpdump writes it), on this machine's clock
/// (`- offset`).
fn frames(bytes: &[u8], iface: u32, offset_ns: i64) -> (u16, Vec<pcapng::Frame>) {
    let Ok((mut rest, header)) = pcap_parser::parse_pcap_header(bytes) else {
        return (1, Vec::new());
    };
    let linktype = u16::try_from(header.network.0).unwrap_or(1);
    let nanos = header.is_nanosecond_precision();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let parsed = if header.is_bigendian() {
            pcap_parser::pcap::parse_pcap_frame_be(rest)
        } else {
            pcap_parser::pcap::parse_pcap_frame(rest)
        };
        let Ok((next, b)) = parsed else { break };
        rest = next;
        let frac = i128::from(b.ts_usec) * if nanos { 1 } else { 1000 };
        let ts = i128::from(b.ts_sec) * 1_000_000_000 + frac - i128::from(offset_ns);
        out.push(pcapng::Frame {
            iface,
            ts_ns: u64::try_from(ts.max(0)).unwrap_or(0),
            orig_len: b.origlen,
            data: b.data.to_vec(),
        });
    }
    (linktype, out)
}

impl Running {
    /// End each tcpdump (by the PID this capture started), read its file back, remove the
    /// files, and return the frames on this machine's clock.
    pub fn stop(self) -> Result<Captured, Error> {
        let mut interfaces = Vec::new();
        let mut all = Vec::new();
        for (n, (iface, pid)) in self.ifaces.iter().enumerate() {
            let pid = pid.to_string();
            let _ = self.exec.run(&Command::new(["kill", "-INT", &pid]));
            // tcpdump writes its last packets and its counts, then exits.
            let until = Instant::now() + Duration::from_secs(10);
            while self
                .exec
                .run(&Command::new(["kill", "-0", &pid]))
                .is_ok_and(|o| o.success())
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let file = format!("{}/{n}.pcap", self.dir);
            let bytes = self
                .exec
                .get_file(Path::new(&file))
                .map_err(|e| failed(&self.host, "reading tcpdump's file", e))?;
            let err = self
                .exec
                .get_file(Path::new(&format!("{file}.err")))
                .unwrap_or_default();
            let i = u32::try_from(n).unwrap_or(0);
            let (linktype, got) = frames(&bytes, i, self.clock.offset_ns);
            interfaces.push(pcapng::Interface {
                name: format!("{}:{iface}", self.host),
                linktype,
                snaplen: self.snaplen,
                drops: dropped(&String::from_utf8_lossy(&err)).unwrap_or(0),
                received: got.len() as u64,
            });
            all.extend(got);
        }
        self.cleanup()?;
        all.sort_by_key(|f| f.ts_ns);
        Ok(Captured {
            interfaces,
            frames: all,
            clocks: vec![(self.host.clone(), self.clock)],
        })
    }

    fn cleanup(&self) -> Result<(), Error> {
        for (_, pid) in &self.ifaces {
            let _ = self
                .exec
                .run(&Command::new(["kill", "-INT", &pid.to_string()]));
        }
        self.exec
            .check(&Command::new(["rm", "-rf", &self.dir]))
            .map_err(|e| failed(&self.host, "removing tcpdump's files", e))?;
        Ok(())
    }
}
