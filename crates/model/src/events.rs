//! Events during a transfer: what happens to a path at a given second (a link fails or comes
//! back, its rate or delay changes, an endpoint goes or comes, a path becomes a backup, the
//! limits change), declared in Lab.toml (`[[events]]`) or on the command line
//! (`lab test --event "2s ue2 link-down enp0s9"`), in one grammar:
//!
//! ```text
//! AT HOST link-down IFACE | link-up IFACE
//! AT HOST rate IFACE RATE                      (tbf, e.g. 10mbit)
//! AT HOST netem IFACE [delay=D] [loss=P] [rate=R]
//! AT HOST endpoint-remove ADDRESS | endpoint-add ADDRESS [dev=IFACE] [flags=F,F]
//! AT HOST backup ADDRESS on|off                 (MP_PRIO)
//! AT HOST limits subflows=N add_addr_accepted=N
//! ```

use std::net::IpAddr;

use serde::Serialize;

use crate::model::Lab;
use crate::units;

/// What happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// The interface goes down (its routes with it).
    LinkDown {
        /// The interface.
        iface: String,
    },
    /// The interface comes back up.
    LinkUp {
        /// The interface.
        iface: String,
    },
    /// The interface's root qdisc is replaced (tbf for a rate alone, netem for delay or loss).
    Shape {
        /// The interface.
        iface: String,
        /// The new shaping.
        shaping: net::Shaping,
    },
    /// The endpoint with this address is removed (RM_ADDR, subflows closed).
    EndpointRemove {
        /// Its address.
        address: IpAddr,
    },
    /// An endpoint is added.
    EndpointAdd {
        /// The endpoint.
        endpoint: net::Endpoint,
    },
    /// The endpoint's backup flag is set or cleared (MP_PRIO).
    Backup {
        /// Its address.
        address: IpAddr,
        /// Set (true) or cleared.
        on: bool,
    },
    /// The path manager's limits change.
    Limits {
        /// The new limits.
        limits: net::Limits,
    },
}

/// One event of a transfer's time line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Milliseconds after the transfer starts.
    pub at_ms: u64,
    /// The host it happens on.
    pub host: String,
    /// What happens.
    #[serde(flatten)]
    pub action: Action,
}

impl Event {
    /// A line for reports: `ue2 enp0s9 down`.
    pub fn label(&self) -> String {
        let h = &self.host;
        match &self.action {
            Action::LinkDown { iface } => format!("{h} {iface} down"),
            Action::LinkUp { iface } => format!("{h} {iface} up"),
            Action::Shape { iface, shaping } => {
                let mut parts = Vec::new();
                if let Some(r) = shaping.rate_bps {
                    parts.push(format!("rate {}", net::plan::format_rate(r)));
                }
                if let Some(d) = shaping.delay_us {
                    parts.push(format!("delay {}", net::plan::format_time_us(d)));
                }
                if let Some(l) = shaping.loss_ppm {
                    parts.push(format!("loss {}", net::plan::format_loss_ppm(l)));
                }
                format!("{h} {iface} {}", parts.join(" "))
            }
            Action::EndpointRemove { address } => format!("{h} endpoint {address} removed"),
            Action::EndpointAdd { endpoint } => format!("{h} endpoint {} added", endpoint.address),
            Action::Backup { address, on } => {
                format!(
                    "{h} endpoint {address} backup {}",
                    if *on { "on" } else { "off" }
                )
            }
            Action::Limits { limits } => format!(
                "{h} limits subflows {} add_addr_accepted {}",
                limits.subflows, limits.add_addr_accepted
            ),
        }
    }
}

/// Parse one event in the grammar above, checking hosts and interfaces against `lab`.
///
/// ```
/// let lab = model::Preset::Builtin.load().unwrap();
/// let e = model::events::parse(&lab, "2s ue2 link-down enp0s9").unwrap();
/// assert_eq!((e.at_ms, e.label()), (2000, "ue2 enp0s9 down".to_string()));
/// let e = model::events::parse(&lab, "1.5s ue2 rate enp0s8 10mbit").unwrap();
/// assert_eq!(e.label(), "ue2 enp0s8 rate 10mbit");
/// assert!(model::events::parse(&lab, "2s ue9 link-down enp0s9").is_err());
/// ```
pub fn parse(lab: &Lab, text: &str) -> Result<Event, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [at, host, action, args @ ..] = words.as_slice() else {
        return Err(format!(
            "`{text}`: expected `AT HOST ACTION ...`, e.g. `2s ue2 link-down enp0s9`"
        ));
    };
    let at_ms = units::time_us(at)
        .map(|us| us / 1000)
        .ok_or_else(|| format!("`{at}` is not a time (e.g. 2s, 1500ms)"))?;
    let h = lab.host(host).ok_or_else(|| {
        let known: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
        format!("no host `{host}` (hosts: {})", known.join(", "))
    })?;
    let iface = |i: Option<&&str>| -> Result<String, String> {
        let i = i.ok_or("the interface is missing")?;
        if h.path_interfaces().any(|x| x.name == *i) {
            Ok((*i).to_string())
        } else {
            let known: Vec<&str> = h.path_interfaces().map(|x| x.name.as_str()).collect();
            Err(format!(
                "host `{host}` has no path interface `{i}` (it has {})",
                known.join(", ")
            ))
        }
    };
    let address = |a: Option<&&str>| -> Result<IpAddr, String> {
        let a = a.ok_or("the address is missing")?;
        a.parse().map_err(|_| format!("`{a}` is not an IP address"))
    };
    let kv = |rest: &[&str]| -> Result<Vec<(String, String)>, String> {
        rest.iter()
            .map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("`{w}`: expected key=value"))
            })
            .collect()
    };
    let action = match *action {
        "link-down" => Action::LinkDown {
            iface: iface(args.first())?,
        },
        "link-up" => Action::LinkUp {
            iface: iface(args.first())?,
        },
        "rate" => {
            let r = args.get(1).ok_or("the rate is missing (e.g. 10mbit)")?;
            Action::Shape {
                iface: iface(args.first())?,
                shaping: net::Shaping {
                    rate_bps: Some(
                        units::rate_bps(r).ok_or_else(|| format!("`{r}` is not a rate"))?,
                    ),
                    ..net::Shaping::default()
                },
            }
        }
        "netem" => {
            let mut shaping = net::Shaping::default();
            for (k, v) in kv(args.get(1..).unwrap_or_default())? {
                match k.as_str() {
                    "delay" => {
                        shaping.delay_us = Some(
                            units::time_us(&v)
                                .and_then(|d| u32::try_from(d).ok())
                                .ok_or_else(|| format!("`{v}` is not a delay"))?,
                        )
                    }
                    "loss" => {
                        shaping.loss_ppm = Some(
                            units::loss_ppm(&v)
                                .and_then(|l| u32::try_from(l).ok())
                                .ok_or_else(|| format!("`{v}` is not a loss"))?,
                        )
                    }
                    "rate" => {
                        shaping.rate_bps = Some(
                            units::rate_bps(&v).ok_or_else(|| format!("`{v}` is not a rate"))?,
                        )
                    }
                    _ => return Err(format!("netem takes delay=, loss= and rate=, not `{k}`")),
                }
            }
            if !shaping.needs_netem() {
                return Err("netem needs delay= or loss= (for a rate alone, use `rate`)".into());
            }
            Action::Shape {
                iface: iface(args.first())?,
                shaping,
            }
        }
        "endpoint-remove" => Action::EndpointRemove {
            address: address(args.first())?,
        },
        "endpoint-add" => {
            let mut endpoint = net::Endpoint {
                address: address(args.first())?,
                id: None,
                dev: None,
                port: None,
                flags: net::EndpointFlags::default(),
            };
            for (k, v) in kv(args.get(1..).unwrap_or_default())? {
                match k.as_str() {
                    "dev" => endpoint.dev = Some(iface(Some(&v.as_str()))?),
                    "flags" => {
                        for f in v.split(',') {
                            match f {
                                "signal" => endpoint.flags.signal = true,
                                "subflow" => endpoint.flags.subflow = true,
                                "backup" => endpoint.flags.backup = true,
                                "fullmesh" => endpoint.flags.fullmesh = true,
                                "laminar" => endpoint.flags.laminar = true,
                                _ => return Err(format!("`{f}` is not an endpoint flag")),
                            }
                        }
                    }
                    _ => return Err(format!("endpoint-add takes dev= and flags=, not `{k}`")),
                }
            }
            Action::EndpointAdd { endpoint }
        }
        "backup" => Action::Backup {
            address: address(args.first())?,
            on: match args.get(1).copied() {
                Some("on") => true,
                Some("off") => false,
                _ => return Err("backup takes ADDRESS on|off".into()),
            },
        },
        "limits" => {
            let mut limits = h.limits.unwrap_or(crate::expect::KERNEL_DEFAULT_LIMITS);
            for (k, v) in kv(args)? {
                let n: u32 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
                match k.as_str() {
                    "subflows" => limits.subflows = n,
                    "add_addr_accepted" => limits.add_addr_accepted = n,
                    _ => {
                        return Err(format!(
                            "limits takes subflows= and add_addr_accepted=, not `{k}`"
                        ));
                    }
                }
            }
            Action::Limits { limits }
        }
        other => {
            return Err(format!(
                "`{other}` is not an event (link-down, link-up, rate, netem, endpoint-remove, endpoint-add, backup, limits)"
            ));
        }
    };
    Ok(Event {
        at_ms,
        host: h.name.clone(),
        action,
    })
}
