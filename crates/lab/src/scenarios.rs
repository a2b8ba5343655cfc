//! Running the scenario library ([`model::scenarios`]): each scenario brought up on network
//! namespaces, one connection measured and judged, its checks (the selftest's numbers) run,
//! and the lab destroyed again, also when a step fails.

use std::path::Path;

use serde::Serialize;

pub use model::scenarios::{Scenario, all, get};

use crate::checks::CheckReport;
use crate::session::{Error, Progress, Session};
use crate::{TestOptions, TestResult, UpOptions};

/// What running one scenario found.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRun {
    /// The scenario's name.
    pub scenario: String,
    /// The selftest it reproduces.
    pub selftest: String,
    /// The transfer, with the plan's expectations and the verdict.
    pub test: TestResult,
    /// The scenario's checks (the selftest's numbers).
    pub checks: CheckReport,
}

impl ScenarioRun {
    /// The verdict passed and every check held.
    pub fn pass(&self) -> bool {
        self.test.verdict.pass && self.checks.exit_code() == 0
    }
}

/// Run `scenario` on namespaces in `dir` as lab `name` (the scenario's own name when `None`):
/// up, one transfer of `opts.seconds` (at least 2 s past the scenario's last event) with the
/// built-in sender, the checks, destroy.
///
/// ```no_run
/// let dir = tempfile::tempdir().unwrap();
/// let s = lab::scenarios::get("signal-address").unwrap();
/// let opts = lab::TestOptions { seconds: 2, ..Default::default() };
/// let run = lab::scenarios::run(s, None, dir.path(), &opts, |_| {}).unwrap();
/// assert!(run.pass(), "{}", run.checks.tap());
/// ```
pub fn run(
    scenario: Scenario,
    name: Option<&str>,
    dir: &Path,
    opts: &TestOptions,
    progress: impl FnMut(&Progress) + Send + 'static,
) -> Result<ScenarioRun, Error> {
    let mut lab = scenario.lab()?;
    if let Some(n) = name {
        lab.name = n.to_string();
    }
    // A scenario whose events come at set seconds runs at least 2 s past the last one, so
    // that what they bring (removals, MP_PRIO, new joins) happens inside the transfer.
    let last_event_s = lab
        .events
        .iter()
        .map(|e| e.at_ms.div_ceil(1000))
        .max()
        .map_or(0, |s| s + 2);
    let mut s = Session::new(lab, dir)?;
    s.on_progress(progress);
    let opts = TestOptions {
        tool: measure::Tool::Builtin,
        tool_auto: false,
        seconds: opts.seconds.max(last_event_s),
        ..opts.clone()
    };
    let result = (|| -> Result<(TestResult, CheckReport), Error> {
        s.up(&UpOptions::default())?;
        let t = s.test(&opts)?;
        let c = s.check(Some(&t))?;
        Ok((t, c))
    })();
    let destroyed = s.destroy();
    let (test, checks) = result?;
    destroyed?;
    Ok(ScenarioRun {
        scenario: scenario.name.to_string(),
        selftest: scenario.selftest().to_string(),
        test,
        checks,
    })
}
