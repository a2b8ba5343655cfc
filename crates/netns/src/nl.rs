//! A blocking netlink connection: one request at a time, acknowledged or dumped.
//!
//! The messages are netlink-packet-route's and netlink-packet-generic's types; this module only
//! frames, sends, receives and checks sequence numbers and errors. (rtnetlink and mptcp-pm wrap
//! the same types in a tokio runtime; a lab applies a handful of messages per host and wants no
//! runtime, so the connection is synchronous.)

use std::fmt::Debug;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr};

use crate::Error;

/// A netlink socket of one protocol, bound in the namespace of the thread that opened it.
#[derive(Debug)]
pub struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Conn {
    /// Open a socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_GENERIC`) in the current thread's
    /// network namespace.
    pub fn open(protocol: isize) -> Result<Self, Error> {
        let mut sock =
            Socket::new(protocol).map_err(|e| Error::io("opening a netlink socket", e))?;
        sock.bind_auto()
            .map_err(|e| Error::io("binding a netlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io("connecting a netlink socket", e))?;
        // Errors carry the kernel's extended ack message where there is one.
        let _ = sock.set_ext_ack(true);
        Ok(Self {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Send `msg` with `flags` (plus REQUEST and ACK) and wait for the acknowledgement.
    pub fn ack<M>(&mut self, what: &str, msg: M, flags: u16) -> Result<(), Error>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.exchange(vec![(what.to_string(), msg, NLM_F_ACK | flags)])
            .map(|_| ())
    }

    /// Send a dump request and collect every message of the reply.
    pub fn dump<M>(&mut self, what: &str, msg: M) -> Result<Vec<M>, Error>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.exchange(vec![(what.to_string(), msg, NLM_F_DUMP)])
    }

    /// Send a request that answers with messages and then an acknowledgement (a `GET`).
    pub fn get<M>(&mut self, what: &str, msg: M) -> Result<Vec<M>, Error>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.exchange(vec![(what.to_string(), msg, NLM_F_ACK)])
    }

    /// Send several requests in one write (each acknowledged) and wait for every
    /// acknowledgement; the kernel handles them in order. Stops at the first error.
    pub fn batch<M>(&mut self, reqs: Vec<(String, M, u16)>) -> Result<(), Error>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        let reqs = reqs
            .into_iter()
            .map(|(what, msg, flags)| (what, msg, NLM_F_ACK | flags))
            .collect();
        self.exchange(reqs).map(|_| ())
    }

    /// Send `reqs` (what, message, flags besides REQUEST) in one write and collect the replies
    /// until each request has ended: with its acknowledgement (an error message with code 0),
    /// its end of dump, or an error, which stops everything.
    fn exchange<M>(&mut self, reqs: Vec<(String, M, u16)>) -> Result<Vec<M>, Error>
    where
        M: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        let mut whats = Vec::with_capacity(reqs.len());
        for (what, msg, flags) in reqs {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags;
            header.sequence_number = self.seq;
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
            packet.finalize();
            let at = out.len();
            out.resize(at + packet.buffer_len(), 0);
            packet.serialize(&mut out[at..]);
            whats.push(what);
        }
        self.sock
            .send(&out, 0)
            .map_err(|e| Error::io(format!("sending a netlink request ({})", whats[0]), e))?;
        let mut replies = Vec::new();
        let mut pending = whats.len();
        while pending > 0 {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| Error::io("receiving a netlink reply", e))?;
            let mut offset = 0;
            while offset < n {
                let parsed = NetlinkMessage::<M>::deserialize(&self.buf[offset..n])
                    .map_err(|e| Error::Decode(format!("{}: {e}", whats[0])))?;
                let len = parsed.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                let k = parsed.header.sequence_number.wrapping_sub(first) as usize;
                if k >= whats.len() {
                    continue; // a late reply to an earlier request
                }
                match parsed.payload {
                    NetlinkPayload::Done(_) => pending -= 1,
                    NetlinkPayload::Error(e) => match e.code {
                        None => pending -= 1,
                        Some(code) => {
                            return Err(Error::Netlink {
                                what: whats[k].clone(),
                                source: std::io::Error::from_raw_os_error(-code.get()),
                            });
                        }
                    },
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
        Ok(replies)
    }
}
