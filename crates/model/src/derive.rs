//! What lab fills in when a Lab.toml leaves it out (`[lab] derive = true`, the default).
//!
//! The rules follow ../shared/MEASURED.md and the kernel's own selftests:
//! - a per-source routing table for every path interface of a host with several paths,
//!   numbered like the guide's: table1..N = 100, 200, ..., with a rule for each of the
//!   interface's addresses (IPv4 and IPv6);
//! - endpoints on each path interface's primary (first) address: the server announces its
//!   extra addresses as `signal` endpoints; the client gets `laminar` endpoints (or
//!   `subflow`/`fullmesh`, by `mptcp.join`). A dual-stack lab's connections and joins use the
//!   family its primary addresses are written in;
//! - limits add_addr_accepted = N, the largest number of paths of any host, and subflows =
//!   2N - 1 (room for a kernel without laminar, whose `subflow` endpoints join the server's
//!   first address before the announced ones), or N x N - 1 with a `fullmesh` client (every
//!   local address to every server address); both capped at 8;
//! - net.mptcp.enabled=1; rp_filter loose (2) on multi-path hosts; arp_ignore=1 and
//!   arp_announce=2 on every NIC that shares a segment with another NIC of the same host.
//!
//! Explicit values in the file always win: a derived sysctl never overrides one that is set.

use std::collections::HashMap;

use net::{Endpoint, EndpointFlags, Limits, Sysctl, Table};

use crate::load::MAX_LIMIT;
use crate::model::{Attach, Host, JoinMode, Lab, Role};

pub(crate) fn derive(lab: &mut Lab) {
    let max_paths = lab.max_paths();
    // A full mesh joins every local address to every address of the server: room for all of
    // those subflows (on both ends: the server accepts no more joins than its own limit).
    let fullmesh = lab
        .hosts
        .iter()
        .any(|h| h.role == Role::Client && h.join == JoinMode::Fullmesh);
    // Otherwise 2N-1: laminar needs only N (one subflow per announced address), but a
    // kernel without laminar (before 6.18) gets `subflow` endpoints, whose joins go to the
    // server's first address before the announced ones are joined; with N the last
    // announcement finds no room and that server NIC stays idle (measured on 6.1 VMs).
    let wanted = if fullmesh {
        (max_paths * max_paths).saturating_sub(1)
    } else {
        (2 * max_paths).saturating_sub(1)
    };
    let endpoints_given: Vec<bool> = lab.hosts.iter().map(|h| !h.endpoints.is_empty()).collect();
    for (host, given) in lab.hosts.iter_mut().zip(endpoints_given) {
        tables(host);
        if !given {
            endpoints(host);
        }
        if host.limits.is_none() && max_paths >= 2 {
            let n = u32::try_from(wanted).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
            let accepted = u32::try_from(max_paths).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
            host.limits = Some(Limits {
                subflows: n,
                add_addr_accepted: accepted,
            });
        }
        sysctls(host);
    }
}

fn tables(host: &mut Host) {
    let paths: Vec<(String, Vec<ipnet::IpNet>, Vec<std::net::IpAddr>)> = host
        .path_interfaces()
        .filter(|i| !i.addresses.is_empty())
        .map(|i| (i.name.clone(), i.addresses.clone(), i.gateways.clone()))
        .collect();
    if paths.len() < 2 {
        return;
    }
    let mut n = 0u32;
    for (index, (dev, addresses, gateways)) in paths.into_iter().enumerate() {
        if host.tables.iter().any(|t| t.dev == dev) {
            continue;
        }
        n = n.max(u32::try_from(index).unwrap_or(0));
        let (id, name) = loop {
            n += 1;
            let (id, name) = (n * 100, format!("table{n}"));
            if !host.tables.iter().any(|t| t.id == id || t.name == name) {
                break (id, name);
            }
        };
        host.tables.push(Table {
            id,
            name,
            dev,
            addresses,
            gateways,
        });
    }
    // Keep the tables in interface order, as the guide lists them.
    let order: HashMap<String, usize> = host
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, x)| (x.name.clone(), i))
        .collect();
    host.tables
        .sort_by_key(|t| order.get(&t.dev).copied().unwrap_or(usize::MAX));
}

fn endpoints(host: &mut Host) {
    let paths: Vec<(u8, String, std::net::IpAddr)> = host
        .path_interfaces()
        .filter_map(|i| Some((i.name.clone(), i.address()?.addr())))
        .enumerate()
        .filter_map(|(n, (dev, a))| Some((u8::try_from(n + 1).ok()?, dev, a)))
        .collect();
    if paths.len() < 2 {
        return;
    }
    // Which addresses get an endpoint, and with which flags.
    let (from, bits) = match (host.role, host.join) {
        // The primary address is the one clients connect to: announce the others.
        (Role::Server, _) => (1, EndpointFlags::SIGNAL),
        (Role::Client, JoinMode::Laminar) => (0, EndpointFlags::LAMINAR),
        (Role::Client, JoinMode::Subflow) => (1, EndpointFlags::SUBFLOW),
        (Role::Client, JoinMode::Fullmesh) => (0, EndpointFlags::SUBFLOW | EndpointFlags::FULLMESH),
    };
    host.endpoints = paths[from..]
        .iter()
        .map(|(id, dev, address)| Endpoint {
            address: *address,
            id: Some(*id),
            dev: Some(dev.clone()),
            port: None,
            flags: EndpointFlags::from_bits(bits),
        })
        .collect();
}

fn sysctls(host: &mut Host) {
    let mut derived = vec![Sysctl::new("net.mptcp.enabled", "1")];
    // rp_filter and ARP are IPv4's: only interfaces with an IPv4 address count.
    let paths: Vec<_> = host
        .path_interfaces()
        .filter(|i| i.addresses.iter().any(|a| a.addr().is_ipv4()))
        .collect();
    if paths.len() >= 2 {
        derived.push(Sysctl::new("net.ipv4.conf.all.rp_filter", "2"));
    }
    // NICs of this host that share a segment with another of its NICs.
    let mut per_segment: HashMap<&str, usize> = HashMap::new();
    for i in &paths {
        if let Attach::Network(n) = &i.attach {
            *per_segment.entry(n.as_str()).or_default() += 1;
        }
    }
    for i in &paths {
        if let Attach::Network(n) = &i.attach
            && per_segment[n.as_str()] >= 2
        {
            derived.push(Sysctl::new(
                Sysctl::ipv4_conf_key(&i.name, "arp_ignore"),
                "1",
            ));
            derived.push(Sysctl::new(
                Sysctl::ipv4_conf_key(&i.name, "arp_announce"),
                "2",
            ));
        }
    }
    derived.retain(|d| !host.sysctls.iter().any(|s| s.key == d.key));
    derived.append(&mut host.sysctls);
    host.sysctls = derived;
}
