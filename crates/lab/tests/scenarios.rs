//! Every scenario of the library (mptcp_join.sh's, see crates/model/scenarios) on namespaces:
//! the counters equal the selftest's numbers and the verdict passes. Root and MPTCP only.

use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn every_scenario_gives_the_selftests_numbers() {
    if !testkit::require(
        "the scenario library",
        testkit::root().and_then(|()| testkit::mptcp()),
    ) {
        return;
    }
    let scenarios = lab::scenarios::all();
    assert!(scenarios.len() >= 12);
    let dir = tempfile::tempdir().unwrap();
    let opts = lab::TestOptions {
        seconds: 1,
        ..Default::default()
    };
    let mut failed = Vec::new();
    for s in scenarios {
        // Unique names (`labtest-...`), which .ci/run checks are gone afterwards.
        let name = format!(
            "labtest-s{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let run = lab::scenarios::run(s, Some(&name), dir.path(), &opts, |_| {})
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(
            netns::topology::existing(&name).unwrap().is_empty(),
            "{}: namespaces left",
            s.name
        );
        if !run.pass() {
            let verdict: Vec<String> = run
                .test
                .verdict
                .checks
                .iter()
                .filter(|c| !c.pass)
                .map(|c| format!("{}: {}", c.what, c.detail))
                .collect();
            failed.push(format!(
                "{} ({}):\n  verdict: {verdict:?}\n{}",
                s.name,
                run.selftest,
                run.checks.tap()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
