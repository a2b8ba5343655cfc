//! Shaping at run time (`lab tc set|show|reset`, like netlab's `tc` and containerlab's
//! `tools netem`): a path interface's root qdisc replaced outside the plan, read back, and
//! put back as the plan has it. A following `lab test` measures what is set; `lab net apply`
//! also puts the plan back.

use serde::Serialize;

use crate::session::{Error, Session};

/// A path interface's root qdisc as the host has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shaped {
    /// The host.
    pub host: String,
    /// The interface.
    pub iface: String,
    /// The qdisc's kind (`tbf`, `netem`, `noqueue`, ...), none when the interface has none.
    pub kind: Option<String>,
    /// tbf's rate in bit/s.
    pub rate_bps: Option<u64>,
    /// What the plan gives it (`rate 50mbit`), if anything.
    pub planned: Option<String>,
}

fn describe(s: &net::Shaping) -> String {
    let mut parts = Vec::new();
    if let Some(r) = s.rate_bps {
        parts.push(format!("rate {}", net::plan::format_rate(r)));
    }
    if let Some(d) = s.delay_us {
        parts.push(format!("delay {}", net::plan::format_time_us(d)));
    }
    if let Some(l) = s.loss_ppm {
        parts.push(format!("loss {}", net::plan::format_loss_ppm(l)));
    }
    parts.join(" ")
}

/// tc's answer when the kernel has no netem (`Error: Specified qdisc kind is unknown.`).
pub(crate) fn netem_missing(e: &guest::Error) -> bool {
    e.to_string().contains("qdisc kind is unknown")
}

impl Session {
    fn run_tc(&self, host: &str, argv: Vec<String>, netem: bool) -> Result<Vec<String>, Error> {
        let exec = self.exec(host)?;
        match exec.check(&guest::Command::new(argv.clone())) {
            Ok(_) => Ok(argv),
            Err(e) if netem && netem_missing(&e) => Err(Error::Missing {
                host: host.to_string(),
                what: "the netem qdisc (CONFIG_NET_SCH_NETEM), which delay and loss need".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Replace `iface`'s root qdisc on `host` with `shaping` (tbf for a rate alone, netem for
    /// delay or loss); returns the command run.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), lab::Error> {
    /// let s = lab::Session::open("Lab.toml".as_ref())?;
    /// let slow = net::Shaping { rate_bps: Some(5_000_000), ..Default::default() };
    /// s.tc_set("ue2", "enp0s9", &slow)?;
    /// let r = s.test(&lab::TestOptions::default())?; // measures the 5 Mbit/s path
    /// s.tc_reset("ue2", "enp0s9")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tc_set(
        &self,
        host: &str,
        iface: &str,
        shaping: &net::Shaping,
    ) -> Result<Vec<String>, Error> {
        self.path_iface(host, iface)?;
        if shaping.rate_bps.is_none() && !shaping.needs_netem() {
            return Err(Error::Rate("a rate, a delay or a loss".into()));
        }
        let _lock = self.lock("lab tc set")?;
        let argv = net::Step::Qdisc {
            dev: iface.to_string(),
            shaping: *shaping,
        }
        .argv(net::plan::TableNaming::Id)
        .unwrap_or_default();
        self.run_tc(host, argv, shaping.needs_netem())
    }

    /// Put `iface`'s root qdisc back as the plan has it (its shaping, or none); returns the
    /// command run.
    pub fn tc_reset(&self, host: &str, iface: &str) -> Result<Vec<String>, Error> {
        let planned = self.path_iface(host, iface)?.shaping;
        let _lock = self.lock("lab tc reset")?;
        match planned {
            Some(s) => {
                let argv = net::Step::Qdisc {
                    dev: iface.to_string(),
                    shaping: s,
                }
                .argv(net::plan::TableNaming::Id)
                .unwrap_or_default();
                self.run_tc(host, argv, s.needs_netem())
            }
            None => {
                let h = self.host(host)?;
                let observed = self.observe(h)?;
                let shaped = observed.qdiscs.iter().any(|q| {
                    q.dev == iface
                        && !matches!(
                            q.kind.as_str(),
                            "noqueue" | "pfifo_fast" | "fq_codel" | "mq"
                        )
                });
                if !shaped {
                    return Ok(Vec::new());
                }
                let argv = net::Change::DelQdisc {
                    dev: iface.to_string(),
                }
                .argv()
                .unwrap_or_default();
                self.run_tc(host, argv, false)
            }
        }
    }

    /// The root qdisc of `host`'s path interfaces (all, or one), with what the plan gives.
    pub fn tc_show(&self, host: &str, iface: Option<&str>) -> Result<Vec<Shaped>, Error> {
        if let Some(i) = iface {
            self.path_iface(host, i)?;
        }
        let h = self.host(host)?;
        let observed = self.observe(h)?;
        Ok(h.path_interfaces()
            .filter(|i| iface.is_none_or(|x| x == i.name))
            .map(|i| {
                let q = observed.qdiscs.iter().find(|q| q.dev == i.name);
                Shaped {
                    host: host.to_string(),
                    iface: i.name.clone(),
                    kind: q.map(|q| q.kind.clone()),
                    rate_bps: q.and_then(|q| q.rate_bps),
                    planned: i.shaping.as_ref().map(describe),
                }
            })
            .collect())
    }
}
