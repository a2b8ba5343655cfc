//! Kernels for MPTCP labs: source fetch and verification, configuration with MPTCP forced on,
//! `make bindeb-pkg`, GRUB menu parsing and GRUB_DEFAULT selection by release, install plans.
//!
//! Built so far: [`grub`] (the menu tree from grub.cfg, entries with positional and id paths,
//! selection by release or title, the GRUB_DEFAULT edit). The rest is open (issue "Kernels").

pub mod build;
pub mod config;
pub mod grub;
pub mod install;
pub mod source;
