#![warn(missing_docs)]
//! lab as a library: one declarative, reproducible, verified MPTCP testbed from a Lab.toml.
//!
//! A [`Session`] opens a lab (a Lab.toml path, or a model and a directory for its state) and
//! runs every operation on it: [`up`](Session::up) (each provider's hosts, then each host's
//! network plan), [`apply`](Session::apply), [`test`](Session::test) (traffic with a verdict),
//! [`status`](Session::status), [`halt`](Session::halt), [`destroy`](Session::destroy),
//! [`exec`](Session::exec), [`snapshot`](Session::snapshot), [`provision`](Session::provision),
//! [`install_kernel`](Session::install_kernel), and [`demo`]. Each returns a value that
//! serializes to JSON; progress goes to a callback ([`Session::on_progress`]) and `tracing`.
//!
//! Hosts come from providers ([`provider::Provider`]) found in a registry: lab's own
//! (namespaces, QEMU, VirtualBox, existing machines over SSH; [`default_registry`]) and any a
//! program registers. The session never names a provider: it asks each how its hosts are
//! reached ([`provider::Access`]) and applies and measures through that.
//!
//! ```no_run
//! # fn main() -> Result<(), lab::Error> {
//! let session = lab::Session::open("Lab.toml".as_ref())?;
//! session.up(&lab::UpOptions::default())?;
//! let result = session.test(&lab::TestOptions::default())?;
//! println!("verdict: {}", if result.verdict.pass { "PASS" } else { "FAIL" });
//! session.destroy()?;
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod capture;
pub mod checks;
pub mod guide;
pub mod inventory;
pub mod provision;
pub mod remote;
pub mod report;
pub mod scenarios;
mod session;
mod tc;
pub mod traffic;
pub mod vmbench;

pub use model::events;
pub use model::{
    Attach, Diagnostic, Host, Interface, InvalidLab, JoinMode, Lab, LoadError, Preset, Provider,
    Role, diag, doctor, expect, find_lab_file, graph, load, load_file, parse, presets, units,
};
pub use plot;
pub use provider;
pub use provider::{Access, Capability, Registry, StateDir, UpOptions};
pub use report::plot_png;
pub use session::Session;
pub use session::{
    ApplyOptions, Demo, Destroyed, Error, Halted, HostStatus, IfaceStatus, Progress, Snapshot,
    Status, Up, default_registry, demo,
};
pub use tc::Shaped;
pub use traffic::{TestError, TestOptions, TestResult};
