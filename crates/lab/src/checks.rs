//! Running a lab's declared checks (`[[checks]]` in Lab.toml, [`model::checks`]) against a
//! test's result and on its hosts: [`Session::check`]. `lab check` prints the outcome as text,
//! JSON or TAP 13 (as the kernel's selftests print) and exits 0 (all passed), 1 (an error-level
//! check failed), 2 (no check ran) or 3 (only warnings failed).

use std::time::{Duration, Instant};

pub use model::checks::{Check, Cmp, Level, Metric, What};
use serde::{Deserialize, Serialize};

use crate::session::{Error, Session};
use crate::traffic::TestResult;

/// A check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The check's name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// It held (false when it failed or could not run).
    pub pass: bool,
    /// It could not run, and why (it counts as not passed).
    pub skipped: Option<String>,
    /// What was seen.
    pub detail: String,
}

/// What [`Session::check`] found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// The lab's name.
    pub lab: String,
    /// Every check, in Lab.toml's order.
    pub outcomes: Vec<Outcome>,
}

impl CheckReport {
    /// `lab check`'s exit status: 0 all passed, 1 an error-level check failed, 2 no check
    /// ran, 3 only warnings failed.
    ///
    /// ```
    /// let r = lab::checks::CheckReport { lab: "x".into(), outcomes: Vec::new() };
    /// assert_eq!(r.exit_code(), 2);
    /// ```
    pub fn exit_code(&self) -> i32 {
        let ran = self.outcomes.iter().any(|o| o.skipped.is_none());
        let failed = |l: Level| self.outcomes.iter().any(|o| !o.pass && o.level == l);
        if !ran {
            2
        } else if failed(Level::Error) {
            1
        } else if failed(Level::Warning) {
            3
        } else {
            0
        }
    }

    /// The outcome as TAP 13 (`ok 1 - name`, `not ok 2 - name # SKIP why`), with each
    /// detail as a diagnostic line.
    ///
    /// ```
    /// let r = lab::checks::CheckReport {
    ///     lab: "x".into(),
    ///     outcomes: vec![lab::checks::Outcome {
    ///         name: "joins".into(),
    ///         level: lab::checks::Level::Error,
    ///         pass: true,
    ///         skipped: None,
    ///         detail: "2".into(),
    ///     }],
    /// };
    /// assert_eq!(r.tap(), "TAP version 13\n1..1\nok 1 - joins\n# 2\n");
    /// ```
    pub fn tap(&self) -> String {
        let mut out = format!("TAP version 13\n1..{}\n", self.outcomes.len());
        for (n, o) in self.outcomes.iter().enumerate() {
            let status = if o.pass { "ok" } else { "not ok" };
            let directive = match (&o.skipped, o.level) {
                (Some(why), _) => format!(" # SKIP {why}"),
                (None, Level::Warning) if !o.pass => " # TODO warning".to_string(),
                _ => String::new(),
            };
            out.push_str(&format!("{status} {} - {}{directive}\n", n + 1, o.name));
            for line in o.detail.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
        out
    }
}

/// Where the last test's result is kept, for `lab check` without `--run`.
pub(crate) fn last_test_name(lab: &model::Lab) -> String {
    format!("{}.last-test.json", lab.name)
}

fn counter(r: &TestResult, host: &str, counter: &str) -> Result<u64, String> {
    let mib = if host == r.server {
        &r.report.server_mib
    } else if host == r.client {
        &r.report.client_mib
    } else {
        return Err(format!(
            "host `{host}` was not in the test (server {}, client {})",
            r.server, r.client
        ));
    };
    mib.get(counter)
        .copied()
        .ok_or_else(|| format!("the kernel of `{host}` has no MPTcpExt counter `{counter}`"))
}

/// A path interface's bytes and its host's fair share (the host's path bytes over its path
/// interfaces).
fn path_share(r: &TestResult, host: &str, iface: &str) -> Result<(u64, f64), String> {
    let of_host: Vec<_> = r
        .report
        .interfaces
        .iter()
        .filter(|i| i.host == host)
        .collect();
    let mine = of_host
        .iter()
        .find(|i| i.iface == iface)
        .ok_or_else(|| format!("{host} {iface} was not measured in the test"))?;
    let total: u64 = of_host.iter().map(|i| i.bytes()).sum();
    Ok((mine.bytes(), total as f64 / of_host.len().max(1) as f64))
}

fn judge_result(check: &Check, r: &TestResult) -> Result<(bool, String), String> {
    Ok(match &check.what {
        What::Counter {
            host,
            counter: c,
            cmp,
        } => {
            let v = counter(r, host, c)?;
            (
                cmp.holds(v as f64),
                format!("{host} {c} {v}, expected {cmp}"),
            )
        }
        What::Metric { metric, cmp } => {
            let v = match metric {
                Metric::Subflows => {
                    r.report
                        .subflows_max
                        .map_or(r.report.subflows_mib, u64::from) as f64
                }
                Metric::GoodputMbit => r.report.goodput_bps / 1e6,
                Metric::Efficiency => r
                    .verdict
                    .efficiency
                    .ok_or("the links are not all shaped: no efficiency")?,
            };
            let name = match metric {
                Metric::Subflows => "subflows",
                Metric::GoodputMbit => "goodput (Mbit/s)",
                Metric::Efficiency => "efficiency",
            };
            (cmp.holds(v), format!("{name} {v:.3}, expected {cmp}"))
        }
        What::Path { host, iface, idle } => {
            let (bytes, fair) = path_share(r, host, iface)?;
            let share = if fair > 0.0 { bytes as f64 / fair } else { 0.0 };
            let pass = if *idle { share < 0.05 } else { share >= 0.10 };
            let want = if *idle {
                "idle (under 5%)"
            } else {
                "busy (at least 10%)"
            };
            (
                pass,
                format!(
                    "{host} {iface}: {:.0}% of a fair share ({:.1} MB), expected {want}",
                    share * 100.0,
                    bytes as f64 / 1e6
                ),
            )
        }
        What::Survived => (
            r.report.survived,
            r.report
                .error
                .clone()
                .unwrap_or_else(|| "data kept flowing to the end".into()),
        ),
        What::Command { .. } => unreachable!("commands run on hosts"),
    })
}

impl Session {
    /// Run the lab's checks: those about a transfer against `result` (the test just run,
    /// or, when `None`, the last one `lab test` saved), commands on the hosts themselves.
    /// A check that cannot run is an outcome with `skipped` set, never a pass.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let r = s.test(&lab::TestOptions::default())?;
    /// let checks = s.check(Some(&r))?;
    /// print!("{}", checks.tap());
    /// std::process::exit(checks.exit_code());
    /// # }
    /// ```
    pub fn check(&self, result: Option<&TestResult>) -> Result<CheckReport, Error> {
        let saved: Option<TestResult> = match result {
            Some(_) => None,
            None => self.state().read(&last_test_name(self.lab())),
        };
        let result = result.or(saved.as_ref());
        let mut outcomes = Vec::new();
        for c in &self.lab().checks {
            let (pass, skipped, detail) = match (&c.what, result) {
                (
                    What::Command {
                        host,
                        run,
                        status,
                        stdout,
                        wait,
                    },
                    _,
                ) => match self.command_check(host, run, *status, stdout.as_deref(), *wait) {
                    Ok((pass, detail)) => (pass, None, detail),
                    Err(why) => (false, Some(why.clone()), why),
                },
                (_, None) => {
                    let why = "no test result: run `lab test` or `lab check --run`".to_string();
                    (false, Some(why.clone()), why)
                }
                (_, Some(r)) => match judge_result(c, r) {
                    Ok((pass, detail)) => (pass, None, detail),
                    Err(why) => (false, Some(why.clone()), why),
                },
            };
            outcomes.push(Outcome {
                name: c.name.clone(),
                level: c.level,
                pass,
                skipped,
                detail,
            });
        }
        Ok(CheckReport {
            lab: self.lab().name.clone(),
            outcomes,
        })
    }

    fn command_check(
        &self,
        host: &str,
        run: &[String],
        status: i32,
        stdout: Option<&str>,
        wait: u64,
    ) -> Result<(bool, String), String> {
        let exec = self.exec(host).map_err(|e| e.to_string())?;
        let re = stdout
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let out = exec
                .run(&guest::Command::new(run.to_vec()))
                .map_err(|e| e.to_string())?;
            let text = out.stdout_lossy();
            let code = match out.status {
                guest::Status::Code(c) => c,
                guest::Status::Signal(s) => 128 + s,
            };
            let matched = re.as_ref().is_none_or(|re| re.is_match(&text));
            let pass = code == status && matched;
            if pass || Instant::now() >= deadline {
                let mut detail = format!("`{}` on {host}: exit {code}", run.join(" "));
                if code != status {
                    detail.push_str(&format!(", expected {status}"));
                }
                if let Some(re) = &re {
                    detail.push_str(&format!(
                        "; stdout {} /{}/",
                        if matched { "matches" } else { "does not match" },
                        re.as_str()
                    ));
                }
                return Ok((pass, detail));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
