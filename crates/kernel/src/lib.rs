//! Kernels for MPTCP labs: source fetch and verification, configuration with MPTCP forced on,
//! `make bindeb-pkg`, GRUB menu parsing and GRUB_DEFAULT selection by release, install plans.
//!
//! Status: not built yet (issue "Kernels").
