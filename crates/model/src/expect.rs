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

/// Subflows per connection (the initial one included) and the reasoning, for a connection from
/// `client`'s first path address to `server`'s first path address.
pub fn subflows(server: &Host, client: &Host) -> (u64, String) {
    let limits = |h: &Host| h.limits.unwrap_or(KERNEL_DEFAULT_LIMITS);
    let (sl, cl) = (limits(server), limits(client));
    let announced = server.endpoints.iter().filter(|e| e.flags.signal).count() as u64;
    let accepted = announced.min(u64::from(cl.add_addr_accepted));
    let cap = u64::from(cl.subflows.min(sl.subflows));
    let primary = client
        .path_interfaces()
        .next()
        .and_then(|i| i.address)
        .map(|a| a.addr());
    let subflow_eps = |fullmesh: bool| {
        client
            .endpoints
            .iter()
            .filter(|e| e.flags.subflow && e.flags.fullmesh == fullmesh)
            .filter(|e| Some(e.address) != primary)
            .count() as u64
    };
    let laminar = client.endpoints.iter().filter(|e| e.flags.laminar).count() as u64;
    let fullmesh = client
        .endpoints
        .iter()
        .filter(|e| e.flags.subflow && e.flags.fullmesh)
        .count() as u64;
    let (candidates, how) = if fullmesh > 0 {
        let c = fullmesh * (1 + accepted) - 1;
        (
            c,
            format!(
                "fullmesh: {fullmesh} local x {} remote addresses, minus the initial subflow",
                1 + accepted
            ),
        )
    } else if laminar > 0 {
        (
            accepted + subflow_eps(false),
            format!("laminar: one subflow per accepted announcement ({accepted})"),
        )
    } else {
        let s = subflow_eps(false);
        (
            s + accepted,
            format!("{s} client subflow endpoints + {accepted} accepted announcements"),
        )
    };
    let joins = candidates.min(cap);
    let why = format!(
        "1 initial + {joins} joins ({how}; at most {cap} by `limits subflow` {}/{} on client/server; \
         server announces {announced}, client accepts {})",
        cl.subflows, sl.subflows, cl.add_addr_accepted
    );
    (1 + joins, why)
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
        assert!(why.contains("at most 1"), "{why}");
    }
}
