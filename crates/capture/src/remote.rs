//! Capture on hosts lab reaches through a command seam (SSH to a VM or an existing machine):
//! `tcpdump -U -w -` per interface, its pcap stream read as it arrives over a session of its
//! own (nothing is written on the host), ended by its PID (SIGINT, as Ctrl-C) from a control
//! session, which then reads tcpdump's closing counts from the stream's stderr. The host's clock
//! is compared with this machine's around `date` calls (the one with the shortest round trip
//! of five); frames are put on this machine's clock, and the offset and its uncertainty (half
//! that round trip) are kept.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest::{Command, Exec};

use crate::{Captured, Clock, Error, pcapng};

/// A capture running on a remote host.
pub struct Running {
    control: Box<dyn Exec>,
    host: String,
    dir: String,
    streams: Vec<Stream>,
    snaplen: u32,
    clock: Clock,
}

/// One tcpdump's stream: its PID, the pcap bytes and its stderr as they arrive.
struct Stream {
    iface: String,
    pid: u32,
    stderr: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<Result<Vec<u8>, guest::Error>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("host", &self.host)
            .field("dir", &self.dir)
            .field(
                "ifaces",
                &self
                    .streams
                    .iter()
                    .map(|s| (&s.iface, s.pid))
                    .collect::<Vec<_>>(),
            )
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

/// Start `tcpdump` on each of `ifaces` of the host (as root: the seam runs commands through
/// sudo where the login is not root), each streaming over a session of its own that `open`
/// makes; `open` also makes the control session. Returns once every tcpdump listens.
pub fn start(
    open: &dyn Fn() -> Result<Box<dyn Exec>, Box<dyn std::error::Error + Send + Sync>>,
    host: &str,
    ifaces: &[String],
    snaplen: u32,
) -> Result<Running, Error> {
    let control = open().map_err(|e| failed(host, "opening a session", e))?;
    let out = control
        .check(&Command::new(["mktemp", "-d", "/tmp/lab-capture.XXXXXX"]))
        .map_err(|e| failed(host, "making a directory for tcpdump's PIDs", e))?;
    let dir = out.stdout_lossy().trim().to_string();
    let mut running = Running {
        control,
        host: host.to_string(),
        dir,
        streams: Vec::new(),
        snaplen,
        clock: Clock::default(),
    };
    for (n, iface) in ifaces.iter().enumerate() {
        let exec = match open() {
            Ok(e) => e,
            Err(e) => {
                let _ = running.cleanup();
                return Err(failed(host, "opening a session", e));
            }
        };
        let pidfile = format!("{}/{n}.pid", running.dir);
        // The shell writes its PID, then becomes tcpdump. --immediate-mode: libpcap's
        // TPACKET_V3 ring otherwise hands packets over a block (or a second) at a time, and
        // what is still in the ring at SIGINT is lost. -U: each packet is flushed to the stream.
        // -p: the NIC stays out of promiscuous mode, so the host captures what it sends and
        // receives (as the namespace capture does), not frames a switch floods to every port
        // while it learns, which would count one segment on several of the host's NICs.
        let cmd = Command::new([
            "sh".to_string(),
            "-c".into(),
            "echo $$ > \"$3\" && exec tcpdump --immediate-mode -p -i \"$1\" -s \"$2\" -U -Z root -w - tcp </dev/null".into(),
            "sh".into(),
            iface.clone(),
            snaplen.to_string(),
            pidfile.clone(),
        ]);
        let stderr = Arc::new(Mutex::new(String::new()));
        let text = stderr.clone();
        let reader = std::thread::spawn(move || -> Result<Vec<u8>, guest::Error> {
            let mut data = Vec::new();
            exec.run_bytes(&cmd, &mut |s, b| match s {
                guest::Stream::Stdout => data.extend_from_slice(b),
                guest::Stream::Stderr => text
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(b)),
            })?;
            Ok(data)
        });
        // tcpdump says so on stderr once its socket is open and filtered.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let said = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if said.contains("listening on") {
                break;
            }
            if reader.is_finished() || Instant::now() > until {
                let why = match (said.trim().is_empty(), reader.is_finished()) {
                    (true, true) => match reader.join() {
                        Ok(Err(e)) => e.to_string(),
                        _ => "tcpdump did not start (is it installed? Debian: tcpdump)".into(),
                    },
                    (true, false) => "tcpdump said nothing within 10 s".into(),
                    (false, _) => said.trim().to_string(),
                };
                let _ = running.control.run(&Command::new([
                    "sh",
                    "-c",
                    "[ -s \"$1\" ] && kill -INT \"$(cat \"$1\")\"",
                    "sh",
                    &pidfile,
                ]));
                let _ = running.cleanup();
                return Err(failed(host, "starting tcpdump", format!("{iface}: {why}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid: u32 = running
            .control
            .get_file(Path::new(&pidfile))
            .ok()
            .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
            .ok_or_else(|| failed(host, "starting tcpdump", "no PID written"))?;
        running.streams.push(Stream {
            iface: iface.clone(),
            pid,
            stderr,
            reader,
        });
    }
    running.clock = clock(running.control.as_ref(), host)?;
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
    /// End each tcpdump (by the PID this capture started), take the rest of its stream, and
    /// return the frames on this machine's clock.
    pub fn stop(mut self) -> Result<Captured, Error> {
        let mut interfaces = Vec::new();
        let mut all = Vec::new();
        let streams = std::mem::take(&mut self.streams);
        for s in &streams {
            let _ = self
                .control
                .run(&Command::new(["kill", "-INT", &s.pid.to_string()]));
        }
        for (n, s) in streams.into_iter().enumerate() {
            // tcpdump writes its last packets and its counts, then exits, which ends its
            // stream.
            let until = Instant::now() + Duration::from_secs(10);
            while !s.reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !s.reader.is_finished() {
                let _ = self
                    .control
                    .run(&Command::new(["kill", "-KILL", &s.pid.to_string()]));
            }
            let bytes = s
                .reader
                .join()
                .map_err(|_| {
                    failed(
                        &self.host,
                        "reading tcpdump's stream",
                        "the reader panicked",
                    )
                })?
                .map_err(|e| failed(&self.host, "reading tcpdump's stream", e))?;
            let err = s.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let i = u32::try_from(n).unwrap_or(0);
            let (linktype, got) = frames(&bytes, i, self.clock.offset_ns);
            interfaces.push(pcapng::Interface {
                name: format!("{}:{}", self.host, s.iface),
                linktype,
                snaplen: self.snaplen,
                drops: dropped(&err).unwrap_or(0),
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
        for s in &self.streams {
            let _ = self
                .control
                .run(&Command::new(["kill", "-INT", &s.pid.to_string()]));
        }
        self.control
            .check(&Command::new(["rm", "-rf", &self.dir]))
            .map_err(|e| failed(&self.host, "removing tcpdump's PID files", e))?;
        Ok(())
    }
}
