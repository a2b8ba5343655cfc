//! A typed wrapper over VBoxManage: argv builders for every operation lab uses, parsers for its
//! machine-readable output and errors. The only crate that knows VBoxManage syntax.
//!
//! Status: not built yet (issue "VirtualBox provider"). VirtualBox cannot run on the machines
//! this project is developed and tested on; see README.md for what is and is not tested.
