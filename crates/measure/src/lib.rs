//! Measurement: is MPTCP really using every path?
//!
//! [`traffic::run`] drives one transfer between two namespace hosts with the built-in
//! sender/receiver (IPPROTO_MPTCP sockets, MPTCP_INFO) or `mptcpize run iperf3`, and collects
//! goodput per second, subflows, the kernel's MIB counters ([`mib`]) and bytes per interface per
//! second. [`verdict::judge`] compares that with what the plan expects.

pub mod iperf3;
pub mod mib;
pub mod mptcp_info;
pub mod traffic;
pub mod verdict;

pub use traffic::{Event, Place, Report, Side, Spec, Tool};
pub use verdict::{End, Expect, ExpectCounter, Verdict, judge};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this kernel has no MPTCP sockets (CONFIG_MPTCP, net.mptcp.enabled=1)")]
    NoMptcp,
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error(transparent)]
    Command(Box<guest::Error>),
    #[error("iperf3: {0}")]
    Iperf3(String),
    #[error("nothing listens on port {port} in the server's namespace")]
    NotListening { port: u16 },
    #[error(
        "host {0} is not a namespace on this machine: the built-in sender needs one (use --tool iperf3)"
    )]
    NeedsNamespace(String),
    #[error("a measurement thread panicked")]
    Panicked,
    #[error(
        "interrupted: the transfer was stopped and the processes it started were ended; no verdict"
    )]
    Interrupted,
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
