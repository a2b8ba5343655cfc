//! Kernels for MPTCP labs: source fetch and verification, configuration with MPTCP forced on,
//! `make bindeb-pkg`, GRUB menu parsing and GRUB_DEFAULT selection by release, install plans.
//!
//! [`source`] downloads and verifies kernel.org tarballs; [`config`] has the profiles and the
//! options lab forces; [`build`] configures and runs `make bindeb-pkg` through the command
//! seam; [`grub`] parses grub.cfg and edits GRUB_DEFAULT; [`install`] installs packages on a
//! host and reboots into them; [`bench`](mod@bench) times builds.

pub mod bench;
pub mod build;
pub mod config;
pub mod grub;
pub mod install;
pub mod source;
