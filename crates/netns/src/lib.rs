//! Network-namespace hosts for instant labs.
//!
//! - [`ns`]: named namespaces (`/run/netns`, compatible with `ip netns`), created and entered on
//!   short-lived threads so the caller never leaves its own namespace;
//! - [`nl`], [`rtnl`], [`mptcp_pm`]: blocking netlink (links, addresses, routes, rules, qdiscs,
//!   and the MPTCP path manager's endpoints and limits, including the `laminar` flag);
//! - [`host`]: read a host's live state as a [`net::Observed`] and apply [`net::Change`]s, so
//!   `lab net apply` changes only the difference;
//! - [`topology`]: wire a lab (bridges for shared segments, veth pairs for links) and tear it down,
//!   with a state file written before anything is created, so a killed `up` leaves nothing behind
//!   that `down` cannot find.
//!
//! This crate is the only one that speaks netlink. It never touches the root namespace: every
//! interface it creates is created inside a namespace it created.

pub mod host;
pub mod mptcp_pm;
pub mod nl;
pub mod ns;
pub mod rtnl;
pub mod topology;

pub use host::{Applied, Host};
pub use ns::Namespace;
pub use topology::{Topology, TopologyState};

/// Errors of namespace and netlink operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode a netlink message: {0}")]
    Decode(String),
    #[error("no network namespace named `{0}`")]
    NoNamespace(String),
    #[error("`{0}` cannot name a network namespace (letters, digits, `._-`)")]
    BadName(String),
    #[error("no interface named `{0}`")]
    NoInterface(String),
    #[error("this kernel lacks {0}")]
    Missing(String),
    #[error("{0}")]
    Setup(String),
    #[error("a namespace thread panicked")]
    Panicked,
    #[error("host {host}: {source}")]
    Command {
        host: String,
        #[source]
        source: Box<guest::Error>,
    },
    #[error("state file {path}: {message}")]
    State { path: String, message: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: nix::errno::Errno) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
}
