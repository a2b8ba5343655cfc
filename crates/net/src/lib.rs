//! Pure renderers for one host's MPTCP network configuration.
//!
//! Input: a validated [`HostNet`] (built by the `lab` crate from a Lab.toml). Output: netplan
//! YAML, rt_tables lines, a readable shell script in the guide's order, and the same plan as typed
//! [`Step`]s with argv lists for the appliers. Nothing in this crate does IO: it never spawns a
//! process, reads a file or opens a socket.

pub mod devices;
pub mod diff;
pub mod netplan;
pub mod observe;
pub mod plan;
pub mod rt_tables;
pub mod script;
pub mod shell;
pub mod spec;

pub use diff::{Change, Observed, diff};
pub use plan::{Phase, Step, TableNaming, plan};
pub use spec::{
    Endpoint, EndpointFlags, HostNet, Interface, Limits, MacAddr, Route, Shaping, Sysctl, Table,
};
