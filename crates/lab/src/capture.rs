//! Captures of a lab's traffic: which interfaces (`HOST[:IFACE]`, by default every path
//! interface of every host), captured inside each namespace host with AF_PACKET (the `capture`
//! crate), merged on this machine's clock and written as one pcapng that Wireshark opens, with
//! an interface per `host:iface` and each one's counts.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::session::Session;
use provider::Access;

/// What to capture: a host, and one of its interfaces or (`None`) all its path interfaces.
///
/// ```
/// let t: lab::capture::Target = "ue2:enp0s8".parse().unwrap();
/// assert_eq!((t.host.as_str(), t.iface.as_deref()), ("ue2", Some("enp0s8")));
/// let all: lab::capture::Target = "ue1".parse().unwrap();
/// assert_eq!(all.iface, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host, by its name in Lab.toml.
    pub host: String,
    /// The interface, by its name in Lab.toml.
    pub iface: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, iface) = match s.split_once(':') {
            Some((h, i)) => (h, Some(i.to_string())),
            None => (s, None),
        };
        if host.is_empty() || iface.as_deref().is_some_and(str::is_empty) {
            return Err(format!("`{s}`: expected HOST or HOST:IFACE"));
        }
        Ok(Target {
            host: host.to_string(),
            iface,
        })
    }
}

/// One captured interface, with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedInterface {
    /// `host:iface`.
    pub name: String,
    /// Frames lab read.
    pub frames: u64,
    /// Frames the kernel dropped before lab read them (counted per host's socket).
    pub dropped: u64,
}

/// What a capture wrote.
///
/// ```
/// let s = lab::capture::Summary {
///     file: "capture.pcapng".into(),
///     frames: 10,
///     interfaces: vec![lab::capture::CapturedInterface { name: "ue2:enp0s8".into(), frames: 10, dropped: 0 }],
/// };
/// assert_eq!(s.dropped(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The pcapng file.
    pub file: PathBuf,
    /// Frames in it.
    pub frames: u64,
    /// Each interface.
    pub interfaces: Vec<CapturedInterface>,
}

impl Summary {
    /// Frames the kernel dropped, all interfaces.
    pub fn dropped(&self) -> u64 {
        self.interfaces.iter().map(|i| i.dropped).sum()
    }
}

/// A capture in progress ([`Session::start_capture`]).
#[derive(Debug)]
pub struct Running {
    parts: Vec<capture::Running>,
    file: PathBuf,
    comment: String,
}

impl Running {
    /// Stop every host's capture and write the file.
    pub fn finish(self) -> Result<Summary, Error> {
        let mut parts = Vec::new();
        let mut first_error = None;
        for p in self.parts {
            match p.stop() {
                Ok(c) => parts.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        let all = capture::merge(parts);
        if let Some(dir) = self.file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| {
                Error::Provider(provider::Error::File {
                    what: "cannot create",
                    path: dir.to_path_buf(),
                    source,
                })
            })?;
        }
        let bytes = capture::pcapng::file(&self.comment, &all.interfaces, &all.frames);
        std::fs::write(&self.file, bytes).map_err(|source| {
            Error::Provider(provider::Error::File {
                what: "cannot write",
                path: self.file.clone(),
                source,
            })
        })?;
        Ok(Summary {
            file: self.file,
            frames: all.frames.len() as u64,
            interfaces: all
                .interfaces
                .iter()
                .map(|i| CapturedInterface {
                    name: i.name.clone(),
                    frames: i.received,
                    dropped: i.drops,
                })
                .collect(),
        })
    }
}

impl Session {
    /// The hosts and interfaces `targets` name (none: every host's path interfaces), checked
    /// against Lab.toml.
    fn capture_plan(&self, targets: &[Target]) -> Result<Vec<(String, Vec<String>)>, Error> {
        let all: Vec<Target> = if targets.is_empty() {
            self.lab()
                .hosts
                .iter()
                .map(|h| Target {
                    host: h.name.clone(),
                    iface: None,
                })
                .collect()
        } else {
            targets.to_vec()
        };
        let mut plan: Vec<(String, Vec<String>)> = Vec::new();
        for t in &all {
            let h = self.host(&t.host)?;
            let paths: Vec<String> = h
                .interfaces
                .iter()
                .filter(|i| !i.is_nat())
                .map(|i| i.name.clone())
                .collect();
            let ifaces = match &t.iface {
                Some(i) if paths.contains(i) => vec![i.clone()],
                Some(i) => {
                    return Err(Error::NoInterface {
                        host: h.name.clone(),
                        iface: i.clone(),
                        known: paths.join(", "),
                    });
                }
                None => paths,
            };
            match plan.iter_mut().find(|(host, _)| *host == h.name) {
                Some((_, have)) => {
                    for i in ifaces {
                        if !have.contains(&i) {
                            have.push(i);
                        }
                    }
                }
                None => plan.push((h.name.clone(), ifaces)),
            }
        }
        Ok(plan)
    }

    /// Start capturing on `targets` (none: every path interface of every host) into `file`
    /// (pcapng, written by [`Running::finish`]). Each host's socket is open and filtered when
    /// this returns. Hosts that are not namespaces are refused before anything starts.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let running = s.start_capture(&["ue2".parse().unwrap()], "ue2.pcapng".as_ref())?;
    /// s.test(&lab::TestOptions::default())?;
    /// let summary = running.finish()?;
    /// println!("{} frames, {} dropped", summary.frames, summary.dropped());
    /// # Ok(()) }
    /// ```
    pub fn start_capture(&self, targets: &[Target], file: &Path) -> Result<Running, Error> {
        let plan = self.capture_plan(targets)?;
        let mut namespaces = Vec::new();
        for (host, ifaces) in &plan {
            match self.access(host)? {
                Access::Namespace(ns) => namespaces.push((host, ifaces, ns)),
                _ => {
                    return Err(Error::CaptureUnsupported {
                        host: host.clone(),
                        provider: self.host(host)?.provider.as_str().to_string(),
                    });
                }
            }
        }
        let mut parts = Vec::new();
        for (host, ifaces, ns) in namespaces {
            let ns = netns::Namespace::open(&ns)?;
            parts.push(capture::start(&ns, host, ifaces, capture::DEFAULT_SNAPLEN)?);
        }
        Ok(Running {
            parts,
            file: file.to_path_buf(),
            comment: format!(
                "lab {}: lab `{}`; every interface on this machine's clock (namespaces share it)",
                env!("CARGO_PKG_VERSION"),
                self.lab().name
            ),
        })
    }

    /// Capture on `targets` for `duration`, or until an interrupt ([`guest::cancel`]) without
    /// one, and write `file`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let got = s.capture(&[], "all.pcapng".as_ref(), Some(std::time::Duration::from_secs(5)))?;
    /// println!("{} frames in {}", got.frames, got.file.display());
    /// # Ok(()) }
    /// ```
    pub fn capture(
        &self,
        targets: &[Target],
        file: &Path,
        duration: Option<Duration>,
    ) -> Result<Summary, Error> {
        let running = self.start_capture(targets, file)?;
        let start = Instant::now();
        while duration.is_none_or(|d| start.elapsed() < d) && !guest::cancel::requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        running.finish()
    }
}

/// A run directory's name under `.lab/runs/`: the lab and the UTC time,
/// `mptcp-20261201T013000Z`.
///
/// ```
/// assert_eq!(lab::capture::run_name("mptcp", 0), "mptcp-19700101T000000Z");
/// assert_eq!(lab::capture::run_name("x", 1_764_552_600), "x-20251201T013000Z");
/// ```
pub fn run_name(lab: &str, unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let rem = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{lab}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
