//! The Lab.toml model and the API other tools embed.
//!
//! [`parse`]/[`load_file`] turn a Lab.toml into a validated [`Lab`], with every problem reported
//! at once as [`Diagnostic`]s that carry byte spans (the CLI shows file:line:col and a caret).
//! What the file leaves out is derived correctly (see [`derive`](crate::derive)); [`Preset`]
//! holds the built-in lab and the guide's settings; [`doctor::check`] explains MPTCP
//! misconfigurations. [`Host::net`] hands a host to the pure renderers of the `net` crate.

pub mod bench;
mod derive;
pub mod diag;
pub mod doctor;
pub mod expect;
pub mod hosts;
pub mod instant;
pub mod load;
pub mod model;
pub mod presets;
pub mod provision;
pub mod qemu;
pub mod remote;
pub mod units;
pub mod virtualbox;
pub mod vmbench;

pub use diag::{Diagnostic, InvalidLab};
pub use load::{LoadError, find_lab_file, load_file, parse};
pub use model::{Attach, Host, Interface, JoinMode, Lab, Provider, Role};
pub use presets::Preset;
