//! The Lab.toml model: what a testbed is, validated once at the boundary.
//!
//! [`parse`]/[`load_file`] turn a Lab.toml into a validated [`Lab`], with every problem reported
//! at once as [`Diagnostic`]s that carry byte spans (the CLI shows file:line:col and a caret).
//! What the file leaves out is derived correctly for MPTCP (see the `derive` module); [`Preset`]
//! holds the built-in lab and the guide's settings; [`doctor::check`] explains MPTCP
//! misconfigurations; [`expect`] says what a plan promises. [`Host::net`] hands a host to the
//! pure renderers of the `net` crate.
//!
//! This crate does no IO beyond reading a Lab.toml: a program that only parses labs pulls in
//! no SSH, netlink or HTTP.
//!
//! ```
//! let lab = model::Preset::Builtin.load().unwrap();
//! assert_eq!(lab.hosts.len(), 2);
//! assert!(model::doctor::check(&lab).is_empty());
//! ```

pub mod checks;
mod derive;
pub mod diag;
pub mod doctor;
pub mod events;
pub mod expect;
pub mod graph;
pub mod load;
pub mod model;
pub mod presets;
pub mod scenarios;
pub mod units;
pub mod uri;

pub use diag::{Diagnostic, InvalidLab};
pub use load::{LoadError, find_lab_file, load_file, parse};
pub use model::{
    Attach, Host, Interface, JoinMode, Lab, Machine, Provider, Role, SshTarget, Tunnel, stable_hash,
};
pub use presets::Preset;
