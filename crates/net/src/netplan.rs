//! netplan YAML (networkd renderer) for a host: addresses, per-table routes and routing policy,
//! so that the per-source routing survives a reboot. (netplan's NetworkManager renderer drops
//! `routing-policy` and `scope`, so the networkd renderer is always named.)

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::spec::HostNet;

/// Where the file goes on a host.
pub const PATH: &str = "/etc/netplan/60-lab.yaml";

#[derive(Debug, thiserror::Error)]
#[error("could not serialize netplan YAML: {0}")]
pub struct NetplanError(String);

#[derive(Serialize)]
struct Doc<'a> {
    network: Network<'a>,
}

#[derive(Serialize)]
struct Network<'a> {
    version: u8,
    renderer: &'static str,
    ethernets: Ordered<'a>,
}

/// A YAML mapping that keeps the interfaces in Lab.toml order.
struct Ordered<'a>(Vec<(&'a str, Ethernet)>);

impl Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize, Default)]
struct Ethernet {
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    matches: Option<Match>,
    #[serde(rename = "set-name", skip_serializing_if = "Option::is_none")]
    set_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp4: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(rename = "routing-policy", skip_serializing_if = "Vec::is_empty")]
    routing_policy: Vec<Policy>,
}

#[derive(Serialize)]
struct Match {
    macaddress: String,
}

#[derive(Serialize)]
struct Route {
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
}

#[derive(Serialize)]
struct Policy {
    from: String,
    table: u32,
}

/// Render the host's netplan file. `title` becomes the leading comment.
pub fn render(host: &HostNet, title: &str) -> Result<String, NetplanError> {
    let mut ethernets: Vec<(&str, Ethernet)> = Vec::new();
    for name in &host.dhcp_interfaces {
        ethernets.push((
            name,
            Ethernet {
                dhcp4: Some(true),
                ..Ethernet::default()
            },
        ));
    }
    for i in &host.interfaces {
        let mut e = Ethernet {
            addresses: i.addresses.iter().map(ToString::to_string).collect(),
            mtu: i.mtu,
            ..Ethernet::default()
        };
        if let Some(mac) = i.mac {
            e.matches = Some(Match {
                macaddress: mac.to_string(),
            });
            e.set_name = Some(i.name.clone());
        }
        for t in host.tables.iter().filter(|t| t.dev == i.name) {
            for a in &t.addresses {
                e.routes.push(Route {
                    to: a.trunc().to_string(),
                    via: None,
                    // IPv6 routes have no scope.
                    scope: a.addr().is_ipv4().then_some("link"),
                    metric: None,
                    table: Some(t.id),
                });
            }
            for gw in &t.gateways {
                e.routes.push(Route {
                    to: "default".into(),
                    via: Some(gw.to_string()),
                    scope: None,
                    metric: None,
                    table: Some(t.id),
                });
            }
            for a in &t.addresses {
                e.routing_policy.push(Policy {
                    from: a.addr().to_string(),
                    table: t.id,
                });
            }
        }
        for r in host.routes.iter().filter(|r| r.dev == i.name) {
            e.routes.push(Route {
                to: r.to.map_or_else(|| "default".into(), |n| n.to_string()),
                via: r.via.map(|v| v.to_string()),
                scope: None,
                metric: r.metric,
                table: None,
            });
        }
        ethernets.push((&i.name, e));
    }
    let doc = Doc {
        network: Network {
            version: 2,
            renderer: "networkd",
            ethernets: Ordered(ethernets),
        },
    };
    let body = serde_saphyr::to_string(&doc).map_err(|e| NetplanError(e.to_string()))?;
    Ok(format!(
        "# {title}\n# Rendered by lab: edit Lab.toml, not this file. Install as {PATH} (mode 600).\n{body}"
    ))
}
