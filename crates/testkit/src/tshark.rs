//! lab's capture decoder against tshark, field by field (single pass, `-T fields`, every
//! occurrence): the helpers the decoder's golden tests and the real-capture tests share.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use decode::mptcp::{MpJoin, Mptcp};
use decode::{Capture, Packet};

/// The fields compared, as tshark names them.
pub const FIELDS: &[&str] = &[
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "tcp.options.mptcp.subtype",
    "tcp.options.mptcp.version",
    "tcp.options.mptcp.sendkey",
    "tcp.options.mptcp.recvkey",
    "tcp.options.mptcp.recvtok",
    "tcp.options.mptcp.sendrand",
    "tcp.options.mptcp.addrid",
    "tcp.options.mptcp.backup.flag",
    "tcp.options.mptcp.sendtrunchmac",
    "tcp.options.mptcp.sendhmac",
    "tcp.options.mptcp.rawdataack",
    "tcp.options.mptcp.rawdataseqno",
    "tcp.options.mptcp.subflowseqno",
    "tcp.options.mptcp.datalvllen",
    "tcp.options.mptcp.checksum",
    "tcp.options.mptcp.datafin.flag",
    "tcp.options.mptcp.echo",
    "tcp.options.mptcp.ipv4",
    "tcp.options.mptcp.ipv6",
    "tcp.options.mptcp.port",
    "tcp.options.mptcp.addaddrtrunchmac",
    "tcp.options.mptcp.rst_reason",
    "tcp.options.mptcp.flag_T.flag",
];

pub type Row = BTreeMap<&'static str, Vec<String>>;

/// The fields of one of lab's packets, formatted as tshark prints them.
pub fn ours(p: &Packet) -> Row {
    let mut r: Row = FIELDS.iter().map(|f| (*f, Vec::new())).collect();
    let mut put = |f: &'static str, v: String| r.get_mut(f).unwrap().push(v);
    put("tcp.srcport", p.src.port().to_string());
    put("tcp.dstport", p.dst.port().to_string());
    put("tcp.seq_raw", p.seq.to_string());
    put("tcp.ack_raw", p.ack.to_string());
    put("tcp.len", p.payload_len.to_string());
    for o in &p.mptcp {
        put("tcp.options.mptcp.subtype", o.subtype().to_string());
        match o {
            Mptcp::MpCapable(c) => {
                put("tcp.options.mptcp.version", c.version.to_string());
                if let Some(k) = c.sender_key {
                    put("tcp.options.mptcp.sendkey", k.to_string());
                }
                if let Some(k) = c.receiver_key {
                    put("tcp.options.mptcp.recvkey", k.to_string());
                }
                if let Some(l) = c.data_len {
                    put("tcp.options.mptcp.datalvllen", l.to_string());
                }
                if let Some(s) = c.checksum {
                    put("tcp.options.mptcp.checksum", format!("0x{s:04x}"));
                }
            }
            Mptcp::MpJoin(MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            }) => {
                put(
                    "tcp.options.mptcp.backup.flag",
                    u8::from(*backup).to_string(),
                );
                put("tcp.options.mptcp.addrid", addr_id.to_string());
                put("tcp.options.mptcp.recvtok", token.to_string());
                put("tcp.options.mptcp.sendrand", nonce.to_string());
            }
            Mptcp::MpJoin(MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            }) => {
                put(
                    "tcp.options.mptcp.backup.flag",
                    u8::from(*backup).to_string(),
                );
                put("tcp.options.mptcp.addrid", addr_id.to_string());
                put("tcp.options.mptcp.sendtrunchmac", hmac.to_string());
                put("tcp.options.mptcp.sendrand", nonce.to_string());
            }
            Mptcp::MpJoin(MpJoin::Ack { hmac }) => {
                let hex = hmac.iter().fold(String::new(), |mut s, b| {
                    let _ = write!(s, "{b:02x}");
                    s
                });
                put("tcp.options.mptcp.sendhmac", hex);
            }
            Mptcp::Dss(d) => {
                put(
                    "tcp.options.mptcp.datafin.flag",
                    u8::from(d.data_fin).to_string(),
                );
                if let Some(a) = d.data_ack {
                    put("tcp.options.mptcp.rawdataack", a.to_string());
                }
                if let Some(m) = &d.mapping {
                    put("tcp.options.mptcp.rawdataseqno", m.dsn.to_string());
                    put("tcp.options.mptcp.subflowseqno", m.ssn.to_string());
                    put("tcp.options.mptcp.datalvllen", m.len.to_string());
                    // tshark 4.0 never shows a DSS mapping's checksum: packet-tcp.c adds it
                    // only when `optlen >= offset - start_offset + 4` after the data-level
                    // length, 2 bytes more than the option has. The golden test checks lab's
                    // value against the bytes written instead.
                }
            }
            Mptcp::AddAddr(a) => {
                put("tcp.options.mptcp.echo", u8::from(a.echo).to_string());
                put("tcp.options.mptcp.addrid", a.id.to_string());
                match a.addr {
                    std::net::IpAddr::V4(v4) => put("tcp.options.mptcp.ipv4", v4.to_string()),
                    std::net::IpAddr::V6(v6) => put("tcp.options.mptcp.ipv6", v6.to_string()),
                }
                if let Some(port) = a.port {
                    put("tcp.options.mptcp.port", port.to_string());
                }
                if let Some(h) = a.hmac {
                    put("tcp.options.mptcp.addaddrtrunchmac", h.to_string());
                }
            }
            Mptcp::RmAddr { ids } => {
                for id in ids {
                    put("tcp.options.mptcp.addrid", id.to_string());
                }
            }
            Mptcp::MpPrio { backup } => {
                put(
                    "tcp.options.mptcp.backup.flag",
                    u8::from(*backup).to_string(),
                );
            }
            Mptcp::MpFail { dsn } => put("tcp.options.mptcp.rawdataseqno", dsn.to_string()),
            Mptcp::MpFastclose { key } => put("tcp.options.mptcp.recvkey", key.to_string()),
            Mptcp::MpTcpRst { flags, reason } => {
                put("tcp.options.mptcp.flag_T.flag", (flags & 1).to_string());
                put("tcp.options.mptcp.rst_reason", format!("0x{reason:02x}"));
            }
            Mptcp::Invalid { .. } => {}
        }
    }
    r
}

/// tshark's fields of every frame of `file` (frame number -> row), plus the frame's interface
/// and epoch time.
pub fn theirs(file: &Path) -> BTreeMap<u64, (Row, String, String)> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file).args([
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "separator=\t",
        "-E",
        "aggregator=,",
        "-e",
        "frame.number",
        "-e",
        "frame.interface_id",
        "-e",
        "frame.time_epoch",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let frame: u64 = cols[0].parse().unwrap();
        let row: Row = FIELDS
            .iter()
            .zip(&cols[3..])
            .map(|(f, v)| {
                let vals = if v.is_empty() {
                    Vec::new()
                } else {
                    v.split(',').map(str::to_string).collect()
                };
                (*f, vals)
            })
            .collect();
        rows.insert(frame, (row, cols[1].to_string(), cols[2].to_string()));
    }
    rows
}

/// Every frame of `file`, lab's fields against tshark's; for an option lab finds invalid only
/// the subtypes (tshark dissects by its own rules what the kernel refuses).
pub fn compare(file: &Path, cap: &Capture) -> usize {
    let t = theirs(file);
    assert_eq!(t.len() as u64, cap.frames, "frame counts");
    let mut compared = 0;
    for p in &cap.packets {
        let (row, iface, time) = &t[&p.frame];
        let mine = ours(p);
        if p.mptcp.iter().any(|o| matches!(o, Mptcp::Invalid { .. })) {
            assert_eq!(
                mine["tcp.options.mptcp.subtype"], row["tcp.options.mptcp.subtype"],
                "frame {}",
                p.frame
            );
        } else {
            for f in FIELDS {
                assert_eq!(mine[f], row[f], "frame {} field {f}", p.frame);
            }
        }
        if !iface.is_empty() {
            assert_eq!(iface, &p.iface.to_string(), "frame {}", p.frame);
        }
        let ns = format!("{}.{:09}", p.ts_ns / 1_000_000_000, p.ts_ns % 1_000_000_000);
        assert_eq!(time, &ns, "frame {} time", p.frame);
        compared += 1;
    }
    compared
}

/// Each frame's MPTCP connection as tshark's `mptcp.stream` says, against lab's grouping: the
/// same frames together, one to one.
pub fn same_connections(file: &Path, cap: &Capture) {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(["-T", "fields", "-e", "frame.number", "-e", "mptcp.stream"])
        .output()
        .unwrap();
    let mut theirs: BTreeMap<u64, String> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if let Some((f, s)) = line.split_once('\t')
            && !s.is_empty()
        {
            theirs.insert(f.parse().unwrap(), s.to_string());
        }
    }
    let mut ours: BTreeMap<u64, usize> = BTreeMap::new();
    for (ci, c) in cap.connections().iter().enumerate() {
        for s in &c.subflows {
            for &i in &s.packets {
                ours.insert(cap.packets[i].frame, ci);
            }
        }
    }
    let mut pairs: BTreeMap<String, usize> = BTreeMap::new();
    let mut back: BTreeMap<usize, String> = BTreeMap::new();
    for (frame, stream) in &theirs {
        let Some(&ci) = ours.get(frame) else {
            panic!("frame {frame}: tshark puts it in MPTCP stream {stream}, lab in none");
        };
        assert_eq!(
            *pairs.entry(stream.clone()).or_insert(ci),
            ci,
            "frame {frame}"
        );
        assert_eq!(
            back.entry(ci).or_insert(stream.clone()),
            stream,
            "frame {frame}"
        );
    }
    assert!(!pairs.is_empty());
}

/// `tcp.stream` of each TCP four-tuple, as tshark numbers the streams.
pub fn tcp_streams(file: &Path) -> BTreeMap<(std::net::SocketAddr, std::net::SocketAddr), u32> {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "tcp",
        ])
        .output()
        .unwrap();
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let (Ok(stream), Some(src), Some(dst)) = (
            c[0].parse::<u32>(),
            [c[1], c[2]].into_iter().find(|s| !s.is_empty()),
            [c[4], c[5]].into_iter().find(|s| !s.is_empty()),
        ) else {
            continue;
        };
        let a = format!("{}:{}", wrap(src), c[3]).parse().unwrap();
        let b = format!("{}:{}", wrap(dst), c[6]).parse().unwrap();
        m.insert((a, b), stream);
        m.insert((b, a), stream);
    }
    m
}

fn wrap(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// tshark's `-z io,stat,INTERVAL,"SUM(tcp.len)tcp.len && tcp.stream==N"` for each of
/// `streams`: payload bytes per interval from the file's first frame, trailing empty
/// intervals left out.
pub fn io_stat_bytes(file: &Path, interval: u32, streams: &[u32]) -> Vec<Vec<u64>> {
    let mut z = format!("io,stat,{interval}");
    for s in streams {
        z.push_str(&format!(",SUM(tcp.len)tcp.len && tcp.stream=={s}"));
    }
    let out = std::process::Command::new("tshark")
        .args(["-n", "-q", "-r"])
        .arg(file)
        .args(["-z", &z])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cols: Vec<Vec<u64>> = vec![Vec::new(); streams.len()];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // "| 0 <> 1   | 12345 | 678 |"
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 || !cells[1].contains("<>") {
            continue;
        }
        for (i, v) in cells[2..].iter().filter(|c| !c.is_empty()).enumerate() {
            if let (Some(col), Ok(n)) = (cols.get_mut(i), v.parse::<u64>()) {
                col.push(n);
            }
        }
    }
    for c in &mut cols {
        while c.last() == Some(&0) {
            c.pop();
        }
    }
    cols
}
