//! lab's decoder against tshark (Debian 12's 4.0), field by field, single pass (`-T fields`,
//! every occurrence): the golden captures the tests write (every MPTCP subtype and form, and
//! options the kernel refuses), as pcap and as pcapng. Raw DSN and data ACK are compared,
//! never tshark's relative ones.

mod common;

use decode::mptcp::Mptcp;
use testkit::tshark::{compare, same_connections};

#[test]
#[cfg_attr(not(lab_has_tshark), ignore = "needs tshark (Debian: tshark)")]
fn golden_captures_decode_as_tshark_reads_them() {
    if !testkit::require("decoder against tshark", testkit::tool("tshark")) {
        return;
    }
    let frames = common::frames();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("golden.pcap", common::pcap(&frames)),
        ("golden.pcapng", common::pcapng(&frames, [0, 3])),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let cap = decode::read(&bytes).unwrap();
        assert_eq!(cap.packets.len(), frames.len(), "{name}");
        assert!(cap.problems.is_empty(), "{name}: {:?}", cap.problems);
        // The decoder flags exactly the frames the kernel would not apply.
        for (p, f) in cap.packets.iter().zip(&frames) {
            let invalid = p.mptcp.iter().any(|o| matches!(o, Mptcp::Invalid { .. }));
            assert_eq!(invalid, f.invalid, "{name}: frame {} ({})", p.frame, f.what);
        }
        assert_eq!(
            cap.invalid_options,
            frames.iter().filter(|f| f.invalid).count() as u64
        );
        assert_eq!(compare(&file, &cap), frames.len(), "{name}");
        // The DSS checksum tshark does not show (see `ours`).
        let csum: Vec<u16> = cap
            .packets
            .iter()
            .flat_map(|p| &p.mptcp)
            .filter_map(|o| match o {
                Mptcp::Dss(d) => d.mapping.as_ref().and_then(|m| m.checksum),
                _ => None,
            })
            .collect();
        assert_eq!(csum, [0x1234], "{name}");
    }
}

#[test]
#[cfg_attr(not(lab_has_tshark), ignore = "needs tshark (Debian: tshark)")]
fn connections_group_as_tshark_groups_them() {
    if !testkit::require("decoder against tshark", testkit::tool("tshark")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("golden.pcap");
    let bytes = common::pcap(&common::frames());
    std::fs::write(&file, &bytes).unwrap();
    same_connections(&file, &decode::read(&bytes).unwrap());
}
