//! Shared by the tests that build real labs: unique names, a guard that takes a lab down (also
//! on panic), and the point-to-point fixture made fit for namespaces.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use lab::{ApplyOptions, Lab, Session, UpOptions, provider::Applied};

static N: AtomicU32 = AtomicU32::new(0);

/// A lab with a unique name (`labtest-<tag><pid>-<n>`, which `.ci/run` checks is gone after the
/// tests) and its session, destroyed when dropped.
pub struct Up {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub s: Session,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.s.destroy();
    }
}

impl Up {
    /// `lab up` without the network.
    pub fn up(&self) -> lab::Up {
        self.s
            .up(&UpOptions {
                apply: false,
                ..UpOptions::default()
            })
            .unwrap()
    }

    /// `lab net apply` (all hosts, or one).
    pub fn apply(&self, host: Option<&str>) -> Result<Vec<Applied>, lab::Error> {
        self.s.apply(host, &ApplyOptions::default())
    }

    /// `lab net apply --dry-run`.
    pub fn dry_run(&self, host: Option<&str>) -> Vec<Applied> {
        let dry = ApplyOptions {
            dry_run: true,
            ..ApplyOptions::default()
        };
        self.s.apply(host, &dry).unwrap()
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        provider_netns::topology(&self.lab).host_ns(host)
    }
}

/// `lab` renamed uniquely, not yet up.
pub fn unique(mut lab: Lab, tag: &str) -> Up {
    lab.name = format!(
        "labtest-{tag}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Session::new(lab.clone(), dir.path()).unwrap();
    Up { lab, dir, s }
}

/// `lab`, uniquely named and up (not applied).
pub fn up(lab: Lab, tag: &str) -> Up {
    let u = unique(lab, tag);
    u.up();
    u
}

/// `lab`, uniquely named, up and applied.
pub fn applied(lab: Lab, tag: &str) -> Up {
    let u = up(lab, tag);
    u.apply(None).unwrap();
    u
}

/// fixtures/labs/p2p-shaped.toml as written.
pub fn p2p_fixture() -> Lab {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/labs/p2p-shaped.toml"),
    )
    .unwrap();
    lab::parse("p2p-shaped.toml", &src).unwrap()
}

/// The fixture without what a namespace on this machine cannot take: netem (delay, loss; no
/// sch_netem here) and the congestion-control sysctl (restricted inside namespaces).
pub fn p2p() -> Lab {
    let mut lab = p2p_fixture();
    for h in &mut lab.hosts {
        h.sysctls
            .retain(|s| s.key != "net.ipv4.tcp_congestion_control");
        for i in &mut h.interfaces {
            if let Some(s) = &mut i.shaping {
                s.delay_us = None;
                s.loss_ppm = None;
            }
        }
    }
    lab
}
