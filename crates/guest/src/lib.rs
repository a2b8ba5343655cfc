//! The command seam every effectful crate acts through: run an argv (captured or streamed), put
//! and get files, on this machine, in a network namespace, or over SSH, plus a scripted fake for
//! unit tests.
//!
//! Status: not built yet (issue "Guests over SSH"). The crate exists so that the layering in
//! ARCHITECTURE.md holds from the start: `net`, `kernel` and `vbox` plans are applied through
//! this crate, never by spawning processes themselves.
