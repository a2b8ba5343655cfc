//! What a lab's plan promises for one MPTCP connection from its client to its server: how many
//! subflows the kernel's in-kernel path manager will establish, and why.

use crate::model::{Host, Lab, Role};

/// The kernel's limits when a lab sets none (`ip mptcp limits show` in a new namespace).
pub const KERNEL_DEFAULT_LIMITS: net::Limits = net::Limits {
    subflows: 2,
    add_addr_accepted: 0,
};

/// The server and client of a lab: the first host of each role.
pub fn pair(lab: &Lab) -> Option<(&Host, &Host)> {
    Some((
        lab.hosts_with_role(Role::Server).next()?,
        lab.hosts_with_role(Role::Client).next()?,
    ))
}

/// A host's primary address: the first address of its first path interface. The server's is
/// where the test connects (so the connection's family is its family); the client's is
/// where the connection starts.
///
/// ```
/// let lab = model::Preset::Builtin.load().unwrap();
/// let (server, _) = model::expect::pair(&lab).unwrap();
/// assert_eq!(model::expect::primary_address(server).unwrap().to_string(), "10.1.1.1");
/// ```
pub fn primary_address(h: &Host) -> Option<std::net::IpAddr> {
    h.path_interfaces()
        .find_map(|i| i.address())
        .map(|a| a.addr())
}

/// What the in-kernel path manager does with one connection from `client` to `server`, as the
/// plan determines it: announcements, joins tried, joins established, joins the server
/// refused. mptcp_join.sh checks the same numbers (chk_join_nr, chk_add_nr).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Joins {
    /// ADD_ADDRs the server sends (its `signal` endpoints, but not the address the connection
    /// went to): the client's `AddAddr`, the server's `EchoAdd`.
    pub announced_by_server: u64,
    /// ADD_ADDRs the client sends: the server's `AddAddr`, the client's `EchoAdd`.
    pub announced_by_client: u64,
    /// Announcements the client takes up (`add_addr_accepted`).
    pub accepted: u64,
    /// Joins the endpoints and accepted announcements ask for, before the limits.
    pub candidates: u64,
    /// MP_JOINs the client sends (capped by its `subflows` limit): the server's `MPJoinSynRx`,
    /// the client's `MPJoinSynAckRx`.
    pub attempted: u64,
    /// MP_JOINs the server completes (capped by its own limit): its `MPJoinAckRx`.
    pub established: u64,
    /// MP_JOINs the server refuses at the third ACK: its `MPJoinRejected`.
    pub rejected: u64,
    /// Announcements with a port (`signal` endpoints with `port`): the client's `PortAdd`.
    pub announced_with_port: u64,
    /// Joins to an announced port, when the plan fixes them (every announcement taken up,
    /// no limit binding): the server's `MPJoinPortSynRx` and `MPJoinPortAckRx`, the client's
    /// `MPJoinPortSynAckRx`.
    pub port_joins: Option<u64>,
    /// Joins that ask for a backup path, when the plan fixes them (every candidate join
    /// opens): from the client's `backup` subflow endpoints (the server's
    /// `MPJoinSynBackupRx`), and to the server's `backup` announcements (the client's
    /// `MPJoinSynAckBackupRx`).
    pub backup_joins: Option<(u64, u64)>,
    /// The reasoning, for people.
    pub why: String,
}

/// [`Joins`] for a connection from `client`'s first path address to `server`'s first path
/// address.
pub fn joins(server: &Host, client: &Host) -> Joins {
    let limits = |h: &Host| h.limits.unwrap_or(KERNEL_DEFAULT_LIMITS);
    let (sl, cl) = (limits(server), limits(client));
    let (dst, primary) = (primary_address(server), primary_address(client));
    // The connection's family is its destination's. An IPv4 socket uses IPv4 addresses only;
    // an IPv6 socket takes announced addresses of both families (IPv4 ones v4-mapped), but a
    // `subflow` endpoint joins the destination only from an address of its family
    // (mptcp_join.sh: "IPv4 sockets do not use IPv6 addresses", "simult IPv4 and IPv6
    // subflows", "no JOIN with diff families v6-v4").
    let conn_v6 = dst.is_some_and(|d| d.is_ipv6());
    let same_family = |a: std::net::IpAddr| a.is_ipv6() == conn_v6;
    // ADD_ADDRs go out whatever their family (an IPv4 connection announces IPv6 addresses
    // too, measured), but only those the socket can use bring joins.
    let signals = |h: &Host, own: Option<std::net::IpAddr>, usable_only: bool| {
        h.endpoints
            .iter()
            .filter(|e| e.flags.signal && Some(e.address) != own)
            .filter(|e| !usable_only || conn_v6 || e.address.is_ipv4())
            .count() as u64
    };
    let announced = signals(server, dst, false);
    let accepted = announced.min(u64::from(cl.add_addr_accepted));
    // Announcements taken up that the connection's family can use.
    let usable = signals(server, dst, true).min(accepted);
    let subflow_eps = |fullmesh: bool| {
        client
            .endpoints
            .iter()
            .filter(|e| e.flags.subflow && e.flags.fullmesh == fullmesh)
            .filter(|e| Some(e.address) != primary && same_family(e.address))
            .count() as u64
    };
    let laminar = client.endpoints.iter().filter(|e| e.flags.laminar).count() as u64;
    let fullmesh_eps: Vec<&net::Endpoint> = client
        .endpoints
        .iter()
        .filter(|e| e.flags.subflow && e.flags.fullmesh && same_family(e.address))
        .collect();
    let fullmesh = fullmesh_eps.len() as u64;
    let (candidates, how) = if fullmesh > 0 {
        // Every fullmesh address to every remote one; the initial subflow is one of those
        // pairs when the client's own address has a fullmesh endpoint.
        let initial = u64::from(fullmesh_eps.iter().any(|e| Some(e.address) == primary));
        let c = (fullmesh * (1 + usable)).saturating_sub(initial);
        (
            c,
            format!(
                "fullmesh: {fullmesh} local x {} remote addresses{}",
                1 + usable,
                if initial == 1 {
                    ", minus the initial subflow"
                } else {
                    ""
                }
            ),
        )
    } else if laminar > 0 {
        (
            usable + subflow_eps(false),
            format!("laminar: one subflow per accepted announcement ({usable})"),
        )
    } else {
        let s = subflow_eps(false);
        (
            s + usable,
            format!("{s} client subflow endpoints + {usable} accepted announcements"),
        )
    };
    let attempted = candidates.min(u64::from(cl.subflows));
    let established = attempted.min(u64::from(sl.subflows));
    let rejected = attempted - established;
    let refused = if rejected > 0 {
        format!(", {rejected} refused by the server's limit")
    } else {
        String::new()
    };
    let why = format!(
        "1 initial + {established} joins ({how}; the client tries at most {} by its `subflows` \
         limit, the server takes at most {}{refused}; server announces {announced}, client \
         accepts {})",
        cl.subflows, sl.subflows, cl.add_addr_accepted
    );
    let announced_with_port = server
        .endpoints
        .iter()
        .filter(|e| e.flags.signal && e.port.is_some() && Some(e.address) != dst)
        .count() as u64;
    let port_joins = (announced_with_port > 0
        && accepted == announced
        && attempted == candidates
        && rejected == 0)
        .then_some(announced_with_port);
    let all_open = accepted == announced && attempted == candidates && rejected == 0;
    let backup_joins = (all_open && fullmesh == 0).then(|| {
        let from_client = client
            .endpoints
            .iter()
            .filter(|e| e.flags.subflow && e.flags.backup && !e.flags.fullmesh)
            .filter(|e| Some(e.address) != primary && same_family(e.address))
            .count() as u64;
        let to_server = server
            .endpoints
            .iter()
            .filter(|e| e.flags.signal && e.flags.backup && Some(e.address) != dst)
            .filter(|e| conn_v6 || e.address.is_ipv4())
            .count() as u64;
        (from_client, to_server)
    });
    Joins {
        backup_joins,
        announced_with_port,
        port_joins,
        announced_by_server: announced,
        announced_by_client: signals(client, primary, false),
        accepted,
        candidates,
        attempted,
        established,
        rejected,
        why,
    }
}

/// Subflows per connection (the initial one included) and the reasoning, for a connection from
/// `client`'s first path address to `server`'s first path address.
pub fn subflows(server: &Host, client: &Host) -> (u64, String) {
    let j = joins(server, client);
    (1 + j.established, j.why)
}

/// A host's path interfaces as the plan uses them ([`paths`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host.
    pub host: String,
    /// Interfaces that must carry data.
    pub used: Vec<String>,
    /// Interfaces not judged, each with why.
    pub not_judged: Vec<(String, String)>,
    /// Interfaces that must stay idle, each with why: a backup path whose subflow the plan
    /// surely opens, while the other paths work.
    pub idle: Vec<(String, String)>,
}

/// Which path interfaces of `server` and `client` the plan puts to work for one connection,
/// per host. An
/// interface carries data when it has the connection's own address, or an endpoint that is not
/// only a backup and that the limits let open (or accept) a subflow. When the limits let only
/// some endpoints open one, which ones is up to the kernel's order: those are not judged.
/// Interfaces without an endpoint carry nothing the plan promises (routing may still send a
/// subflow through one): not judged. A backup path carries data only when the other paths
/// fail: idle, when the plan surely opens its subflow (no limit binds), else not judged.
pub fn paths(server: &Host, client: &Host) -> Vec<HostPaths> {
    let j = joins(server, client);
    let conn_v6 = primary_address(server).is_some_and(|a| a.is_ipv6());
    // A server's endpoint opens nothing itself: only its announcements (`signal`) bring joins.
    let capped = |h: &Host, signals: bool| -> Option<String> {
        if h.name == client.name && j.attempted < j.candidates {
            Some(format!(
                "limits let {} of {} possible joins open",
                j.attempted, j.candidates
            ))
        } else if h.name == client.name && j.established < j.attempted {
            Some(format!(
                "the server takes {} of {} joins",
                j.established, j.attempted
            ))
        } else if h.name == server.name && j.accepted < j.announced_by_server && signals {
            Some(format!(
                "the client accepts {} of {} announcements",
                j.accepted, j.announced_by_server
            ))
        } else if h.name == server.name && j.established < j.candidates && signals {
            Some(format!(
                "limits let {} of {} possible joins open",
                j.established, j.candidates
            ))
        } else {
            None
        }
    };
    // Every join the endpoints and announcements ask for opens.
    let all_open =
        j.accepted == j.announced_by_server && j.attempted == j.candidates && j.rejected == 0;
    let mut out = Vec::new();
    for h in [server, client] {
        let mut used = Vec::new();
        let mut not_judged = Vec::new();
        let mut idle = Vec::new();
        for (n, i) in h.path_interfaces().enumerate() {
            let eps: Vec<&net::Endpoint> = h
                .endpoints
                .iter()
                .filter(|e| i.has_address(e.address) || e.dev.as_deref() == Some(i.name.as_str()))
                .collect();
            let why = if n == 0 {
                None
            } else if eps.is_empty() {
                Some("no endpoint".to_string())
            } else if eps.iter().all(|e| e.address.is_ipv6() && !conn_v6) {
                Some("an IPv6 endpoint, and the connection is IPv4".to_string())
            } else if eps.iter().all(|e| e.flags.backup) {
                let plain = eps.iter().all(|e| !e.flags.fullmesh && !e.flags.laminar);
                if all_open && plain {
                    idle.push((
                        i.name.clone(),
                        "a backup path: used only when the others fail".to_string(),
                    ));
                    continue;
                }
                Some("backup endpoint".to_string())
            } else {
                capped(h, eps.iter().any(|e| e.flags.signal))
            };
            match why {
                None => used.push(i.name.clone()),
                Some(w) => not_judged.push((i.name.clone(), w)),
            }
        }
        out.push(HostPaths {
            host: h.name.clone(),
            used,
            not_judged,
            idle,
        });
    }
    out
}

/// Counters that stay 0 when nothing happens to a connection but its plan.
pub const QUIET: [&str; 16] = [
    "RmAddr",
    "RmAddrTx",
    "RmSubflow",
    "MPPrioTx",
    "MPPrioRx",
    "MPRstTx",
    "MPRstRx",
    "MPCapableFallbackACK",
    "MPCapableFallbackSYNACK",
    "MPCapableDataFallback",
    "MPFallbackTokenInit",
    "DSSCorruptionFallback",
    "SimultConnectFallback",
    "InfiniteMapTx",
    "MD5SigFallback",
    "DssFallback",
];

/// One MIB counter's value after one connection, as the plan determines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counter {
    /// The host whose counter it is.
    pub host: String,
    /// The `MPTcpExt` counter, without the prefix (`MPJoinAckRx`).
    pub counter: &'static str,
    /// Its increase over the connection.
    pub value: u64,
    /// More is fine: an ADD_ADDR the peer did not echo in time is sent again (mptcp_join.sh's
    /// `chk_add_nr` tolerates it too), but none expected means none.
    pub or_more: bool,
}

/// The counters the plan determines for one connection, as mptcp_join.sh's `chk_join_nr`,
/// `chk_add_nr`, `chk_rm_nr`, `chk_prio_nr`, `chk_rst_nr` and `chk_fallback_nr` read them:
/// joins on both sides, refused joins, announcements and their echoes, backup joins where the
/// plan fixes them, and no removal, MP_PRIO, reset or fallback ([`QUIET`]) but the client's
/// resets of refused joins.
/// `None` when the plan does not determine them: mptcpd runs on a host (it adds endpoints as
/// addresses appear).
pub fn counters(server: &Host, client: &Host) -> Result<Vec<Counter>, String> {
    if let Some(h) = [server, client].into_iter().find(|h| h.mptcpd.enabled) {
        return Err(format!(
            "mptcpd runs on {}: its path manager adds endpoints as addresses appear",
            h.name
        ));
    }
    let j = joins(server, client);
    let c = |h: &Host, counter: &'static str, value: u64| Counter {
        host: h.name.clone(),
        counter,
        value,
        or_more: counter == "AddAddr" && value > 0,
    };
    Ok([
        c(server, "MPJoinSynRx", j.attempted),
        c(client, "MPJoinSynAckRx", j.attempted),
        c(server, "MPJoinAckRx", j.established),
        c(server, "MPJoinRejected", j.rejected),
        c(client, "AddAddr", j.announced_by_server),
        c(server, "EchoAdd", j.announced_by_server),
        c(server, "AddAddr", j.announced_by_client),
        c(client, "EchoAdd", j.announced_by_client),
    ]
    .into_iter()
    .chain(
        j.backup_joins
            .into_iter()
            .flat_map(|(from_client, to_server)| {
                [
                    c(server, "MPJoinSynBackupRx", from_client),
                    c(client, "MPJoinSynAckBackupRx", to_server),
                ]
            }),
    )
    // Nothing the plan asks for removes an address or a subflow, changes a path's priority,
    // resets or falls back: each of these counters stays 0 on both hosts (mptcp_join.sh's
    // chk_rm_nr, chk_prio_nr, chk_rst_nr and chk_fallback_nr with their defaults).
    // The one exception: a join the server refuses at the third ACK is reset by the client
    // (MP_RST, measured on 6.18).
    .chain([server, client].into_iter().flat_map(|h| {
        QUIET.iter().map(move |counter| {
            let n = if h.name == client.name && *counter == "MPRstTx" {
                j.rejected
            } else {
                0
            };
            c(h, counter, n)
        })
    }))
    .chain(j.port_joins.into_iter().flat_map(|n| {
        [
            c(client, "PortAdd", j.announced_with_port),
            c(server, "MPJoinPortSynRx", n),
            c(client, "MPJoinPortSynAckRx", n),
            c(server, "MPJoinPortAckRx", n),
            c(server, "MismatchPortSynRx", 0),
            c(server, "MismatchPortAckRx", 0),
        ]
    }))
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Preset;

    #[test]
    fn builtin_expects_three_and_the_guide_two() {
        let lab = Preset::Builtin.load().unwrap();
        let (s, c) = pair(&lab).unwrap();
        assert_eq!(subflows(s, c).0, 3, "{}", subflows(s, c).1);
        let guide = Preset::Guide.load().unwrap();
        let (s, c) = pair(&guide).unwrap();
        let (n, why) = subflows(s, c);
        assert_eq!(n, 2, "{why}");
        assert!(why.contains("tries at most 1"), "{why}");
    }
}
