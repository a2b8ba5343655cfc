//! A pcapng writer (the format Wireshark and tshark read natively): one section, an interface
//! description block per captured interface (its name, `host:iface`, and nanosecond time
//! resolution), an enhanced packet block per frame, and an interface statistics block per
//! interface at the end with the packets received and the kernel's drop count.
//! Pure: bytes in, bytes out.

/// A captured interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `host:iface`, Wireshark's `if_name`.
    pub name: String,
    /// Link type (1: Ethernet).
    pub linktype: u16,
    pub snaplen: u32,
    /// Packets the kernel dropped before lab read them (`isb_ifdrop`).
    pub drops: u64,
    /// Packets lab read (`isb_ifrecv`).
    pub received: u64,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Index into the interfaces.
    pub iface: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Its first bytes (up to the snap length).
    pub data: Vec<u8>,
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().next_multiple_of(4);
    let len = u32::try_from(padded + 12).unwrap_or(u32::MAX);
    out.extend(kind.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend(len.to_le_bytes());
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend(code.to_le_bytes());
    out.extend(u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The section header, with `comment` (`shb_comment`: who wrote it and what the clocks are).
pub fn header(comment: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0x1a2b_3c4du32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend((-1i64).to_le_bytes());
    option(&mut b, 1, comment.as_bytes());
    option(&mut b, 4, b"lab (https://example.invalid/lab)");
    option(&mut b, 0, &[]);
    let mut out = Vec::new();
    block(&mut out, 0x0a0d_0d0a, &b);
    out
}

/// An interface description block.
pub fn interface(i: &Interface) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(i.linktype.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend(i.snaplen.to_le_bytes());
    option(&mut b, 2, i.name.as_bytes());
    // if_tsresol: 10^-9.
    option(&mut b, 9, &[9]);
    option(&mut b, 0, &[]);
    let mut out = Vec::new();
    block(&mut out, 1, &b);
    out
}

/// An enhanced packet block.
pub fn packet(f: &Frame) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + f.data.len() + 4);
    b.extend(f.iface.to_le_bytes());
    b.extend(u32::try_from(f.ts_ns >> 32).unwrap_or(0).to_le_bytes());
    b.extend(
        u32::try_from(f.ts_ns & 0xffff_ffff)
            .unwrap_or(0)
            .to_le_bytes(),
    );
    b.extend(
        u32::try_from(f.data.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    b.extend(f.orig_len.to_le_bytes());
    b.extend(&f.data);
    b.resize(b.len().next_multiple_of(4), 0);
    let mut out = Vec::new();
    block(&mut out, 6, &b);
    out
}

/// An interface statistics block (at `ts_ns`): received and dropped.
pub fn statistics(iface: u32, ts_ns: u64, i: &Interface) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(iface.to_le_bytes());
    b.extend(u32::try_from(ts_ns >> 32).unwrap_or(0).to_le_bytes());
    b.extend(
        u32::try_from(ts_ns & 0xffff_ffff)
            .unwrap_or(0)
            .to_le_bytes(),
    );
    option(&mut b, 4, &i.received.to_le_bytes());
    option(&mut b, 5, &i.drops.to_le_bytes());
    option(&mut b, 0, &[]);
    let mut out = Vec::new();
    block(&mut out, 5, &b);
    out
}

/// A whole file: header, interfaces, frames (in the order given), statistics.
///
/// ```
/// use capture::pcapng::{file, Frame, Interface};
/// let ifaces = [Interface { name: "ue2:enp0s8".into(), linktype: 1, snaplen: 256, drops: 0, received: 1 }];
/// let frames = [Frame { iface: 0, ts_ns: 1_700_000_000_000_000_001, orig_len: 60, data: vec![0; 60] }];
/// let bytes = file("lab test", &ifaces, &frames);
/// assert_eq!(&bytes[..4], &0x0a0d_0d0au32.to_le_bytes());
/// ```
pub fn file(comment: &str, interfaces: &[Interface], frames: &[Frame]) -> Vec<u8> {
    let mut out = header(comment);
    for i in interfaces {
        out.extend(interface(i));
    }
    let mut last = 0;
    for f in frames {
        out.extend(packet(f));
        last = last.max(f.ts_ns);
    }
    for (n, i) in interfaces.iter().enumerate() {
        out.extend(statistics(u32::try_from(n).unwrap_or(u32::MAX), last, i));
    }
    out
}
