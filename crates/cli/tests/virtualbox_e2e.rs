//! The VirtualBox provider against a real VirtualBox: opt-in, because VirtualBox cannot be
//! installed on the machines this project is developed and tested on (so this test has never
//! run there, and CI does not run it; LAB_REQUIRE_SYSTEM_TESTS does not turn this skip into a
//! failure).
//!
//! On a machine with VirtualBox 6.1 to 7.1:
//!
//! ```sh
//! LAB_E2E_VIRTUALBOX=1 LAB_E2E_VIRTUALBOX_IMAGE=vbox:ubuntu-base@clean \
//!     cargo test -p cli --test virtualbox_e2e -- --nocapture
//! ```
//!
//! `LAB_E2E_VIRTUALBOX_IMAGE` is what Lab.toml's `image` would say: `vbox:BASE[@SNAPSHOT]` (a
//! VM with openssh-server whose root accepts `.lab/id_ed25519.pub`, e.g. after a first
//! `lab up` from the ISO), an `.ova`, or `ubuntu-22.04` (the installer ISO in
//! ~/.cache/lab/images; the unattended install takes 15-30 minutes). It builds the built-in
//! lab's two VMs, applies the network over SSH, checks both kernels for MPTCP, halts, starts
//! again, and destroys everything.

mod common;

use common::run_in;

#[test]
fn built_in_lab_on_real_virtualbox() {
    if std::env::var_os("LAB_E2E_VIRTUALBOX").is_none() {
        eprintln!(
            "skipped: set LAB_E2E_VIRTUALBOX=1 on a machine with VirtualBox to run the provider for real"
        );
        return;
    }
    let image = std::env::var("LAB_E2E_VIRTUALBOX_IMAGE").unwrap_or_else(|_| "ubuntu-22.04".into());
    let dir = tempfile::tempdir().unwrap();
    let toml = lab::Preset::Builtin
        .source()
        .replace("image = \"ubuntu-22.04\"", &format!("image = \"{image}\""));
    std::fs::write(dir.path().join("Lab.toml"), toml).unwrap();
    let step = |args: &[&str]| {
        eprintln!("$ lab {}", args.join(" "));
        let (code, out, err) = run_in(dir.path(), args);
        eprintln!("{out}{err}");
        assert_eq!(code, 0, "lab {args:?} failed");
        out
    };
    let guard = Destroy(dir.path().to_path_buf());
    step(&["up", "--provider", "virtualbox", "--boot-timeout", "3600"]);
    let status = step(&["status"]);
    assert_eq!(status.matches("running").count(), 2, "{status}");
    for host in ["ue1", "ue2"] {
        let out = step(&["kernel", "check", host]);
        assert!(out.contains("MPTCP built in"), "{out}");
        let out = step(&["net", "apply", "--host", host]);
        assert!(
            out.contains(&format!("{host}: 0 changes")),
            "second apply changes nothing: {out}"
        );
    }
    step(&["halt"]);
    step(&["up", "--no-apply"]);
    drop(guard);
}

/// `lab destroy` even when an assertion failed.
struct Destroy(std::path::PathBuf);

impl Drop for Destroy {
    fn drop(&mut self) {
        let (_, out, err) = run_in(&self.0, &["destroy"]);
        eprintln!("{out}{err}");
    }
}
