//! Reading captures: interfaces, names, drop counts and clocks of pcapng; connections grouped
//! by token; and nothing a capture holds makes the decoder panic.

mod common;

use decode::mptcp::Mptcp;
use proptest::prelude::*;

#[test]
fn pcapng_interfaces_names_drops_and_nanoseconds() {
    let frames = common::frames();
    let cap = decode::read(&common::pcapng(&frames, [0, 3])).unwrap();
    let names: Vec<Option<&str>> = cap.interfaces.iter().map(|i| i.name.as_deref()).collect();
    assert_eq!(names, [Some("ue1:enp0s8"), Some("ue1:enp0s9")]);
    let drops: Vec<Option<u64>> = cap.interfaces.iter().map(|i| i.drops).collect();
    assert_eq!(drops, [Some(0), Some(3)]);
    assert_eq!(cap.packets[0].iface, 0);
    assert_eq!(cap.packets[1].iface, 1);
    assert_eq!(cap.packets[1].ts_ns, 1_700_000_000_001_000_007);
    let pcap = decode::read(&common::pcap(&frames)).unwrap();
    assert_eq!(pcap.packets[1].ts_ns, 1_700_000_000_001_000_000);
    assert_eq!(pcap.interfaces.len(), 1);
}

#[test]
fn subflows_are_grouped_by_token() {
    let frames = common::frames();
    let cap = decode::read(&common::pcap(&frames)).unwrap();
    let conns = cap.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    let first = &conns[0];
    assert_eq!(first.client_key, Some(common::CLIENT_KEY));
    assert_eq!(first.server_key, Some(common::SERVER_KEY));
    // The initial subflow, the IPv4 join (backup, id 2) and the IPv6 join (id 3).
    let joins: Vec<(bool, Option<u8>, bool)> = first
        .subflows
        .iter()
        .map(|s| (s.join, s.addr_id, s.backup))
        .collect();
    assert_eq!(
        joins,
        [
            (false, None, false),
            (true, Some(2), true),
            (true, Some(3), false)
        ]
    );
    assert!(first.subflows[2].client.is_ipv6());
    assert_eq!(conns[1].client_key, Some(common::CLIENT_KEY2));
    // Every segment of those four-tuples is in its subflow, in order.
    let join = &first.subflows[1];
    assert_eq!(join.packets.len(), 4, "SYN, SYN/ACK, ACK, MP_PRIO");
    assert!(join.packets.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_cut_file_keeps_what_came_before_the_cut() {
    let frames = common::frames();
    for bytes in [common::pcap(&frames), common::pcapng(&frames, [0, 0])] {
        let whole = decode::read(&bytes).unwrap();
        let cut = decode::read(&bytes[..bytes.len() * 2 / 3]).unwrap();
        assert!(cut.packets.len() < whole.packets.len());
        assert_eq!(cut.packets[..], whole.packets[..cut.packets.len()]);
        assert_eq!(cut.problem_count, 1, "{:?}", cut.problems);
        assert!(
            cut.problems[0].what.contains("cut short"),
            "{:?}",
            cut.problems
        );
    }
    assert!(decode::read(b"not a capture at all").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any option bytes: decoded or marked invalid, never a panic.
    #[test]
    fn options_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48),
                           syn in any::<bool>(), ack in any::<bool>(), rst in any::<bool>(),
                           payload in any::<bool>()) {
        let ctx = decode::mptcp::Context { syn, ack, rst, payload };
        let _ = decode::mptcp::options(&bytes, ctx);
        // An MPTCP option of every length, whatever its contents.
        let mut opt = vec![30, u8::try_from(bytes.len().clamp(2, 40)).unwrap()];
        opt.extend(bytes.iter().take(38));
        let got = decode::mptcp::options(&opt, ctx);
        prop_assert!(got.len() <= 1);
    }

    /// The golden captures with bytes changed or cut anywhere: read, never a panic.
    #[test]
    fn damaged_captures_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20),
                                    cut in any::<prop::sample::Index>(), ng in any::<bool>()) {
        let frames = common::frames();
        let mut bytes = if ng { common::pcapng(&frames, [1, 2]) } else { common::pcap(&frames) };
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let n = cut.index(bytes.len() + 1);
        if let Ok(c) = decode::read(&bytes[..n]) {
            prop_assert!(c.packets.len() as u64 <= c.frames);
            let invalid = c.packets.iter().flat_map(|p| &p.mptcp)
                .filter(|o| matches!(o, Mptcp::Invalid { .. })).count() as u64;
            prop_assert_eq!(invalid, c.invalid_options);
            let _ = c.connections();
        }
    }
}
