//! Subflows grouped into MPTCP connections, as RFC 8684 ties them: the initial subflow's
//! MP_CAPABLE carries both keys; a key's token is the most significant 32 bits of its SHA-256
//! and its IDSN the least significant 64; an MP_JOIN SYN names the connection by the token of
//! the key of the host it is sent to.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Packet;
use crate::mptcp::{MpJoin, Mptcp};

/// A key's token and IDSN (RFC 8684 section 3.2: SHA-256 of the key's 8 bytes, the most
/// significant 32 bits and the least significant 64).
///
/// ```
/// let (token, idsn) = decode::conn::token_idsn(0x0102_0304_0506_0708);
/// assert_eq!((token, idsn), (0x6684_0dda, 0xf5a1_01d3_d29d_6f72));
/// ```
pub fn token_idsn(key: u64) -> (u32, u64) {
    let h = Sha256::digest(key.to_be_bytes());
    let token = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let mut low = [0u8; 8];
    low.copy_from_slice(&h[24..32]);
    (token, u64::from_be_bytes(low))
}

/// One subflow: a TCP connection of an MPTCP connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subflow {
    /// The side that sent the SYN.
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Joined with MP_JOIN (else the initial subflow, MP_CAPABLE).
    pub join: bool,
    /// The address id the client's MP_JOIN SYN gave.
    pub addr_id: Option<u8>,
    /// The client asked for a backup subflow in its MP_JOIN SYN.
    pub backup: bool,
    /// Indices into the packets given to [`group`].
    pub packets: Vec<usize>,
}

/// One MPTCP connection seen in a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// The keys of the initial subflow's client and server (unknown when the capture missed the
    /// handshake).
    pub client_key: Option<u64>,
    pub server_key: Option<u64>,
    pub subflows: Vec<Subflow>,
}

impl Connection {
    /// The token of the client's and the server's key.
    pub fn tokens(&self) -> (Option<u32>, Option<u32>) {
        (
            self.client_key.map(|k| token_idsn(k).0),
            self.server_key.map(|k| token_idsn(k).0),
        )
    }
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// The MPTCP connections among `packets`, in the order their first SYN appears. A subflow
/// starts at a SYN carrying MP_CAPABLE (a new connection) or MP_JOIN (joining the connection
/// whose client or server key has that token); later segments of the same four-tuple belong to
/// it. Segments are taken in time order, and joins are matched once every key is known: a
/// capture of several interfaces may hold a join's SYN before the SYN/ACK that carried the key
/// it names. A join whose token matches no connection, and segments of four-tuples whose SYN
/// the capture missed, are not grouped.
pub fn group(packets: &[Packet]) -> Vec<Connection> {
    let mut order: Vec<usize> = (0..packets.len()).collect();
    order.sort_by_key(|&i| packets[i].ts_ns);
    let mut conns: Vec<Connection> = Vec::new();
    // four-tuple -> (connection, subflow)
    let mut by_tuple: HashMap<(SocketAddr, SocketAddr), (usize, usize)> = HashMap::new();
    let syn_only = |p: &Packet| p.syn() && !p.ack_flag();
    // Initial subflows and their keys.
    for &i in &order {
        let p = &packets[i];
        let key = pair(p.src, p.dst);
        if syn_only(p)
            && !by_tuple.contains_key(&key)
            && p.mptcp.iter().any(|o| matches!(o, Mptcp::MpCapable(_)))
        {
            conns.push(Connection {
                client_key: None,
                server_key: None,
                subflows: vec![Subflow {
                    client: p.src,
                    server: p.dst,
                    join: false,
                    addr_id: None,
                    backup: false,
                    packets: Vec::new(),
                }],
            });
            by_tuple.insert(key, (conns.len() - 1, 0));
            continue;
        }
        let Some(&(ci, 0)) = by_tuple.get(&key) else {
            continue;
        };
        let conn = &mut conns[ci];
        for o in &p.mptcp {
            if let Mptcp::MpCapable(c) = o {
                let from_client = p.src == conn.subflows[0].client;
                match (from_client, c.sender_key, c.receiver_key) {
                    // SYN/ACK: the server's key.
                    (false, Some(k), None) => conn.server_key = Some(k),
                    // Third ACK or first data: both.
                    (true, Some(k), Some(r)) => {
                        conn.client_key = Some(k);
                        conn.server_key.get_or_insert(r);
                    }
                    _ => {}
                }
            }
        }
    }
    // Joins, by the token of a key now known.
    let tokens: Vec<(Option<u32>, Option<u32>)> = conns.iter().map(Connection::tokens).collect();
    for &i in &order {
        let p = &packets[i];
        let key = pair(p.src, p.dst);
        if !syn_only(p) || by_tuple.contains_key(&key) {
            continue;
        }
        for o in &p.mptcp {
            if let Mptcp::MpJoin(MpJoin::Syn {
                token,
                addr_id,
                backup,
                ..
            }) = o
                && let Some(ci) = tokens
                    .iter()
                    .position(|(a, b)| *a == Some(*token) || *b == Some(*token))
            {
                conns[ci].subflows.push(Subflow {
                    client: p.src,
                    server: p.dst,
                    join: true,
                    addr_id: Some(*addr_id),
                    backup: *backup,
                    packets: Vec::new(),
                });
                by_tuple.insert(key, (ci, conns[ci].subflows.len() - 1));
            }
        }
    }
    // Every segment to its subflow, in time order.
    for &i in &order {
        let p = &packets[i];
        if let Some(&(ci, si)) = by_tuple.get(&pair(p.src, p.dst)) {
            conns[ci].subflows[si].packets.push(i);
        }
    }
    conns
}
