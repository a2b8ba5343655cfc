//! Shared by the tests that build real labs: unique names, a guard that takes a lab down (also
//! on panic), and the point-to-point fixture made fit for namespaces.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use lab::{Lab, instant};

static N: AtomicU32 = AtomicU32::new(0);

/// A lab with a unique name (`labtest-<tag><pid>-<n>`, which `.ci/run` checks is gone after the
/// tests), taken down when dropped.
pub struct Up {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = instant::down(&self.lab, self.dir.path());
    }
}

/// `lab` renamed uniquely, not yet up.
pub fn unique(mut lab: Lab, tag: &str) -> Up {
    lab.name = format!(
        "labtest-{tag}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Up {
        lab,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// `lab`, uniquely named and up (not applied).
pub fn up(lab: Lab, tag: &str) -> Up {
    let u = unique(lab, tag);
    instant::up(&u.lab, u.dir.path()).unwrap();
    u
}

/// `lab`, uniquely named, up and applied.
pub fn applied(lab: Lab, tag: &str) -> Up {
    let u = up(lab, tag);
    instant::apply(&u.lab, None, false).unwrap();
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
