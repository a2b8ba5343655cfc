//! Checks declared in Lab.toml (`[[checks]]`), as netlab's `validate` declares tests in the
//! topology: each names what must hold after a transfer (a MIB counter, the subflow count, a
//! path's use, goodput, survival of an event) or on a host (a command's exit status and
//! output), with a level. `lab check` and `lab test` run them.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::Diagnostic;
use crate::model::Host;

/// How much a failed check matters.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The lab is wrong (`lab check` exits 1).
    #[default]
    Error,
    /// Worth telling (`lab check` exits 3 when only warnings fail).
    Warning,
}

/// A comparison with a number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    /// Exactly.
    Equals(f64),
    /// At least.
    AtLeast(f64),
    /// At most.
    AtMost(f64),
}

impl Cmp {
    /// Whether `value` satisfies it.
    ///
    /// ```
    /// use model::checks::Cmp;
    /// assert!(Cmp::Equals(2.0).holds(2.0) && !Cmp::AtMost(1.0).holds(2.0));
    /// ```
    pub fn holds(&self, value: f64) -> bool {
        match *self {
            Cmp::Equals(v) => (value - v).abs() < 1e-9,
            Cmp::AtLeast(v) => value >= v,
            Cmp::AtMost(v) => value <= v,
        }
    }
}

impl std::fmt::Display for Cmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmp::Equals(v) => write!(f, "= {v}"),
            Cmp::AtLeast(v) => write!(f, ">= {v}"),
            Cmp::AtMost(v) => write!(f, "<= {v}"),
        }
    }
}

/// A value a transfer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Subflows of the connection, the initial one included.
    Subflows,
    /// Goodput in Mbit/s.
    GoodputMbit,
    /// Goodput over the shaped links' rate.
    Efficiency,
}

/// What a check looks at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// A `MPTcpExt` MIB counter's increase over the transfer on a host (the server or the
    /// client of the test), e.g. `MPJoinAckRx`.
    Counter {
        /// The host.
        host: String,
        /// The counter, without the `MPTcpExt` prefix.
        counter: String,
        /// What it must be.
        cmp: Cmp,
    },
    /// A measured value of the transfer.
    Metric {
        /// Which.
        metric: Metric,
        /// What it must be.
        cmp: Cmp,
    },
    /// A path interface carries data (`idle = false`) or stays idle (`idle = true`: under 5%
    /// of a fair share).
    Path {
        /// The host.
        host: String,
        /// The interface.
        iface: String,
        /// Whether it must stay idle.
        idle: bool,
    },
    /// The transfer ran to the end through its events.
    Survived,
    /// A command on a host: its exit status, and its standard output matched by a regular
    /// expression; tried again every second until `wait` seconds have passed.
    Command {
        /// The host.
        host: String,
        /// The argv.
        run: Vec<String>,
        /// The exit status it must have.
        status: i32,
        /// A regular expression its stdout must match.
        stdout: Option<String>,
        /// Seconds to keep trying.
        wait: u64,
    },
}

/// One declared check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What it is called in reports.
    pub name: String,
    /// How much its failure matters.
    pub level: Level,
    /// What it looks at.
    pub what: What,
}

/// A `[[checks]]` entry as written.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[schemars(with = "String")]
    name: Spanned<String>,
    #[serde(default)]
    level: Level,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    host: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    counter: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<Metric>")]
    metric: Option<Spanned<Metric>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    path: Option<Spanned<String>>,
    #[serde(default)]
    idle: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    survived: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    status: Option<i32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    stdout: Option<Spanned<String>>,
    #[serde(default)]
    wait: Option<u64>,
    #[serde(default)]
    equals: Option<f64>,
    #[serde(default)]
    at_least: Option<f64>,
    #[serde(default)]
    at_most: Option<f64>,
}

/// Validate the raw checks against the lab's hosts; problems go to `diags`.
pub(crate) fn validate(
    raw: Vec<RawCheck>,
    hosts: &[Host],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Check> {
    let mut out = Vec::new();
    for r in raw {
        let name_span = r.name.span();
        let mut err = |span: Range<usize>, msg: String, help: &str| {
            diags.push(Diagnostic::new(span, msg).help(help));
        };
        let kinds = [
            r.counter.is_some(),
            r.metric.is_some(),
            r.path.is_some(),
            r.survived.is_some(),
            r.command.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds != 1 {
            err(
                name_span,
                format!(
                    "check `{}` must name one of `counter`, `metric`, `path`, `survived`, `command`",
                    r.name.get_ref()
                ),
                "e.g. counter = \"MPJoinAckRx\" with host = \"ue1\" and equals = 2",
            );
            continue;
        }
        let cmps = [
            r.equals.map(Cmp::Equals),
            r.at_least.map(Cmp::AtLeast),
            r.at_most.map(Cmp::AtMost),
        ];
        let cmp: Vec<Cmp> = cmps.into_iter().flatten().collect();
        let needs_cmp = r.counter.is_some() || r.metric.is_some();
        if needs_cmp && cmp.len() != 1 {
            err(
                name_span.clone(),
                format!(
                    "check `{}` needs one of `equals`, `at_least`, `at_most`",
                    r.name.get_ref()
                ),
                "e.g. equals = 2",
            );
            continue;
        }
        if !needs_cmp && !cmp.is_empty() {
            err(
                name_span.clone(),
                format!(
                    "check `{}` compares nothing: `equals`, `at_least` and `at_most` go with `counter` or `metric`",
                    r.name.get_ref()
                ),
                "remove the comparison",
            );
            continue;
        }
        let host = |err: &mut dyn FnMut(Range<usize>, String, &str)| -> Option<&Host> {
            match &r.host {
                None => {
                    err(
                        name_span.clone(),
                        format!("check `{}` needs `host`", r.name.get_ref()),
                        "the host whose counter, interface or command it is",
                    );
                    None
                }
                Some(h) => {
                    let found = hosts.iter().find(|x| x.name == *h.get_ref());
                    if found.is_none() {
                        let known: Vec<&str> = hosts.iter().map(|x| x.name.as_str()).collect();
                        err(
                            h.span(),
                            format!(
                                "check `{}` names host `{}`, which the lab does not have",
                                r.name.get_ref(),
                                h.get_ref()
                            ),
                            &format!("hosts: {}", known.join(", ")),
                        );
                    }
                    found
                }
            }
        };
        let what = if let Some(c) = &r.counter {
            let Some(h) = host(&mut err) else { continue };
            let counter = c.get_ref().trim_start_matches("MPTcpExt").to_string();
            if counter.is_empty() || !counter.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                err(
                    c.span(),
                    format!("`{}` is not a MIB counter name", c.get_ref()),
                    "e.g. MPJoinAckRx, AddAddr, EchoAdd",
                );
                continue;
            }
            What::Counter {
                host: h.name.clone(),
                counter,
                cmp: cmp[0],
            }
        } else if let Some(m) = &r.metric {
            What::Metric {
                metric: *m.get_ref(),
                cmp: cmp[0],
            }
        } else if let Some(p) = &r.path {
            let Some(h) = host(&mut err) else { continue };
            if h.path_interfaces().all(|i| i.name != *p.get_ref()) {
                let known: Vec<&str> = h.path_interfaces().map(|i| i.name.as_str()).collect();
                err(
                    p.span(),
                    format!("host `{}` has no path interface `{}`", h.name, p.get_ref()),
                    &format!("its path interfaces: {}", known.join(", ")),
                );
                continue;
            }
            What::Path {
                host: h.name.clone(),
                iface: p.get_ref().clone(),
                idle: r.idle.unwrap_or(false),
            }
        } else if let Some(s) = &r.survived {
            if !*s.get_ref() {
                err(
                    s.span(),
                    "`survived = false` checks nothing".into(),
                    "write `survived = true`",
                );
                continue;
            }
            What::Survived
        } else {
            let c = r.command.as_ref().expect("counted above");
            let Some(h) = host(&mut err) else { continue };
            if c.get_ref().is_empty() {
                err(
                    c.span(),
                    "the command is empty".into(),
                    "an argv, e.g. [\"ip\", \"mptcp\", \"endpoint\", \"show\"]",
                );
                continue;
            }
            if let Some(re) = &r.stdout
                && let Err(e) = regex::Regex::new(re.get_ref())
            {
                err(
                    re.span(),
                    format!("not a regular expression: {e}"),
                    "Rust regex syntax",
                );
                continue;
            }
            What::Command {
                host: h.name.clone(),
                run: c.get_ref().clone(),
                status: r.status.unwrap_or(0),
                stdout: r.stdout.as_ref().map(|s| s.get_ref().clone()),
                wait: r.wait.unwrap_or(0),
            }
        };
        out.push(Check {
            name: r.name.get_ref().clone(),
            level: r.level,
            what,
        });
    }
    out
}
