//! A hypervisor's address, as libvirt writes it: `qemu:///system` on this machine, or
//! `qemu+ssh://[user@]host[:port]/system` on another one reached over SSH.
//!
//! lab validates it here, once, at the model boundary; a provider that runs VMs under a
//! hypervisor (libvirt) reads the parts.

use std::fmt;

/// A validated hypervisor URI.
///
/// ```
/// use model::uri::HypervisorUri;
/// let u = HypervisorUri::parse("qemu+ssh://lab@10.0.0.5:2222/system").unwrap();
/// assert_eq!((u.user.as_deref(), u.host.as_deref(), u.port), (Some("lab"), Some("10.0.0.5"), Some(2222)));
/// assert_eq!(u.local_form(), "qemu:///system");
/// assert!(HypervisorUri::parse("qemu+tcp://h/system").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HypervisorUri {
    /// `None`: this machine. `Some`: the machine reached over SSH.
    pub host: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `system` or `session`.
    pub instance: String,
}

/// The hypervisor of hosts that set none.
pub const DEFAULT: &str = "qemu:///system";

impl HypervisorUri {
    /// Parse and validate; the error says what is wrong.
    pub fn parse(s: &str) -> Result<HypervisorUri, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("`{s}` is not a URI (qemu:///system, qemu+ssh://user@host/system)")
        })?;
        if rest.contains('?') || rest.contains('#') {
            return Err(format!(
                "`{s}` has parameters: lab connects with its own key and known_hosts, so leave them out"
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let instance = match path {
            "/system" => "system",
            "/session" => "session",
            _ => return Err(format!("`{s}`: the path must be /system or /session")),
        }
        .to_string();
        match scheme {
            "qemu" if authority.is_empty() => Ok(HypervisorUri {
                host: None,
                user: None,
                port: None,
                instance,
            }),
            "qemu" => Err(format!(
                "`{s}` names a machine without a transport: write qemu+ssh://{authority}{path}"
            )),
            "qemu+ssh" => {
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h),
                    None => (None, authority),
                };
                if let Some(u) = user
                    && (u.is_empty()
                        || !u
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
                {
                    return Err(format!("`{s}`: `{u}` is not a user name"));
                }
                let (host, port) = match hostport.strip_prefix('[') {
                    Some(v6) => {
                        let (h, after) = v6
                            .split_once(']')
                            .ok_or_else(|| format!("`{s}`: unclosed `[`"))?;
                        (h, after.strip_prefix(':'))
                    }
                    None => match hostport.split_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (hostport, None),
                    },
                };
                if host.is_empty()
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
                {
                    return Err(format!("`{s}`: `{host}` is not a host name or address"));
                }
                let port = port
                    .map(|p| {
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| format!("`{s}`: `{p}` is not a port"))
                    })
                    .transpose()?;
                Ok(HypervisorUri {
                    host: Some(host.to_string()),
                    user: user.map(str::to_string),
                    port,
                    instance,
                })
            }
            other => Err(format!(
                "`{other}://`: lab reaches hypervisors as qemu:///system (this machine) or qemu+ssh://user@host/system"
            )),
        }
    }

    /// Whether the hypervisor is on another machine.
    pub fn is_remote(&self) -> bool {
        self.host.is_some()
    }

    /// The URI as seen from the hypervisor's own machine (`qemu:///system`): lab runs virsh
    /// there, over its own SSH connection.
    pub fn local_form(&self) -> String {
        format!("qemu:///{}", self.instance)
    }
}

impl fmt::Display for HypervisorUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => write!(f, "qemu:///{}", self.instance),
            Some(h) => {
                write!(f, "qemu+ssh://")?;
                if let Some(u) = &self.user {
                    write!(f, "{u}@")?;
                }
                if h.contains(':') {
                    write!(f, "[{h}]")?;
                } else {
                    write!(f, "{h}")?;
                }
                if let Some(p) = self.port {
                    write!(f, ":{p}")?;
                }
                write!(f, "/{}", self.instance)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        for s in [
            "qemu:///system",
            "qemu:///session",
            "qemu+ssh://h/system",
            "qemu+ssh://root@127.0.0.1:2222/system",
            "qemu+ssh://u@[::1]:22/system",
        ] {
            assert_eq!(HypervisorUri::parse(s).unwrap().to_string(), s);
        }
        for s in [
            "qemu+ssh://h/system?keyfile=/k",
            "qemu://h/system",
            "xen:///system",
            "qemu:///",
            "qemu+ssh:///system",
            "qemu+ssh://h:0/system",
            "qemu+ssh://a b/system",
            "qemu+ssh://@h/system",
            "system",
        ] {
            assert!(HypervisorUri::parse(s).is_err(), "{s}");
        }
    }
}
