//! A real capture: two namespaces this test makes (a veth between them), an MPTCP connection
//! (IPPROTO_MPTCP) carrying 4 MB, captured on both ends with AF_PACKET inside each namespace,
//! written as pcapng, read by lab's decoder and by tshark alike. The namespaces are removed
//! by a guard, also when the test fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;

use guest::sshd::Sshd;
use guest::{Auth, Ssh, SshConfig};

struct Pair {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pair {
    fn new() -> Pair {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("labtest-cap{}-{n}", std::process::id());
        let p = Pair {
            a: format!("{id}a"),
            b: format!("{id}b"),
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "-n", &p.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &p.b,
        ]);
        for (ns, addr) in [(&p.a, "10.9.0.1/24"), (&p.b, "10.9.0.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

const SERVER: &str = "10.9.0.2:5201";

/// 4 MB over one MPTCP connection from namespace `a` to `b`.
fn transfer(na: &netns::Namespace, nb: &netns::Namespace) {
    // A socket that is not on the captured interface (loopback) is not captured.
    let server: SocketAddr = SERVER.parse().unwrap();
    let listener = nb
        .run(|| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::STREAM,
                Some(socket2::Protocol::MPTCP),
            )
            .unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind(&server.into()).unwrap();
            s.listen(4).unwrap();
            TcpListener::from(s)
        })
        .unwrap();
    let receiver = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    na.run(|| {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::MPTCP),
        )
        .unwrap();
        s.connect(&server.into()).unwrap();
        let mut c = TcpStream::from(s);
        let chunk = vec![0x5au8; 1 << 16];
        for _ in 0..64 {
            c.write_all(&chunk).unwrap();
        }
    })
    .unwrap();
    assert_eq!(receiver.join().unwrap(), 4 << 20);
}

#[test]
#[cfg_attr(
    not(all(lab_netns, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP and tshark"
)]
fn mptcp_transfer_captured_in_both_namespaces() {
    let caps = testkit::root()
        .and_then(|()| testkit::mptcp())
        .and_then(|()| testkit::tool("tshark"));
    if !testkit::require("AF_PACKET capture", caps) {
        return;
    }
    let pair = Pair::new();
    let (na, nb) = (
        netns::Namespace::open(&pair.a).unwrap(),
        netns::Namespace::open(&pair.b).unwrap(),
    );
    let eth0 = ["eth0".to_string()];
    let ca = capture::start(&na, "a", &eth0, capture::DEFAULT_SNAPLEN).unwrap();
    let cb = capture::start(&nb, "b", &eth0, capture::DEFAULT_SNAPLEN).unwrap();
    transfer(&na, &nb);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = capture::merge(vec![ca.stop().unwrap(), cb.stop().unwrap()]);
    let names: Vec<&str> = got.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a:eth0", "b:eth0"]);
    for i in &got.interfaces {
        assert_eq!(i.drops, 0, "{i:?}");
        assert!(i.received > 100, "{i:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.pcapng");
    std::fs::write(
        &file,
        capture::pcapng::file("test", &got.interfaces, &got.frames),
    )
    .unwrap();
    let cap = decode::read(&std::fs::read(&file).unwrap()).unwrap();
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);
    assert_eq!(cap.not_tcp, 0, "the filter keeps TCP only");
    assert_eq!(cap.frames as usize, got.frames.len());
    // Both ends saw the connection; every byte sent is in the segments of one direction.
    let conns = cap.connections();
    assert_eq!(conns.len(), 1, "{conns:#?}");
    assert!(conns[0].client_key.is_some() && conns[0].server_key.is_some());
    let server: SocketAddr = SERVER.parse().unwrap();
    let sent: u64 = cap
        .packets
        .iter()
        .filter(|p| p.iface == 0 && p.dst == server)
        .map(|p| u64::from(p.payload_len))
        .sum();
    assert!(sent >= 4 << 20, "{sent}");
    let drops: Vec<Option<u64>> = cap.interfaces.iter().map(|i| i.drops).collect();
    assert_eq!(drops, [Some(0), Some(0)]);
    // tshark reads the file as lab does.
    assert_eq!(testkit::tshark::compare(&file, &cap), cap.packets.len());
    testkit::tshark::same_connections(&file, &cap);
}

/// The same transfer captured by tcpdump on host `b`, reached over SSH (its own sshd, inside
/// its namespace): started in the background, ended by its PID, its file read back over the
/// session, its frames on this machine's clock.
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_sshd, lab_has_tcpdump, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP, OpenSSH (sshd), tcpdump and tshark"
)]
fn tcpdump_over_ssh() {
    let caps = testkit::root()
        .and_then(|()| testkit::mptcp())
        .and_then(|()| guest::sshd::available())
        .and_then(|()| testkit::tool("tcpdump"))
        .and_then(|()| testkit::tool("tshark"));
    if !testkit::require("tcpdump over SSH", caps) {
        return;
    }
    let pair = Pair::new();
    let (na, nb) = (
        netns::Namespace::open(&pair.a).unwrap(),
        netns::Namespace::open(&pair.b).unwrap(),
    );
    let sshd = Sshd::start_in_netns(&pair.b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SshConfig::new(
        "b",
        "127.0.0.1",
        sshd.port,
        "root",
        Auth::Key(sshd.client_key.clone()),
        dir.path().join("known_hosts"),
    );
    cfg.trust_on_first_use = true;
    let open = || -> Result<Box<dyn guest::Exec>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Box::new(Ssh::with_connector(
            cfg.clone(),
            netns::ns::connector(pair.b.clone()),
        )))
    };
    let running = capture::remote::start(&open, "b", &["eth0".to_string()], 256).unwrap();
    // The path managers' events: over SSH on b, as a child of this test on a.
    let ssh2 = Ssh::with_connector(cfg, netns::ns::connector(pair.b.clone()));
    let mon_b = capture::monitor::start_remote(Box::new(ssh2), "b").unwrap();
    let mon_a = capture::monitor::start_local(&pair.a, "a").unwrap();
    transfer(&na, &nb);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let got = running.stop().unwrap();
    let (ev_a, ev_b) = (mon_a.stop().unwrap(), mon_b.stop().unwrap());
    for (host, ev) in [("a", &ev_a), ("b", &ev_b)] {
        let k: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
        assert!(
            k.contains(&"CREATED") && k.contains(&"ESTABLISHED"),
            "{host}: {ev:?}"
        );
        assert!(ev.iter().all(|e| e.host == host));
    }
    // b's events are on this machine's clock: within a second of a's.
    let (ta, tb) = (i128::from(ev_a[0].ts_ns), i128::from(ev_b[0].ts_ns));
    assert!((ta - tb).abs() < 1_000_000_000, "{ta} {tb}");
    // Nothing of the monitor left on b.
    let left = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            "sh",
            "-c",
            "ls /tmp/lab-monitor.* 2>/dev/null | wc -l",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
    assert_eq!(got.interfaces.len(), 1);
    assert_eq!(got.interfaces[0].name, "b:eth0");
    assert_eq!(got.interfaces[0].drops, 0);
    assert!(got.frames.len() > 100, "{}", got.frames.len());
    // One machine, one clock: the measured offset is within its own uncertainty (plus 1 ms
    // for the two reads of the clock).
    let (host, clock) = &got.clocks[0];
    assert_eq!(host, "b");
    assert!(
        clock.offset_ns.unsigned_abs() <= clock.error_ns + 1_000_000,
        "{clock:?}"
    );
    // Nothing left on the host: tcpdump ended, its files removed.
    let left = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            "sh",
            "-c",
            "ls -d /tmp/lab-capture.* 2>/dev/null | wc -l",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
    let file = dir.path().join("ssh.pcapng");
    std::fs::write(
        &file,
        capture::pcapng::file("test", &got.interfaces, &got.frames),
    )
    .unwrap();
    let cap = decode::read(&std::fs::read(&file).unwrap()).unwrap();
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);
    assert_eq!(cap.connections().len(), 1);
    assert_eq!(testkit::tshark::compare(&file, &cap), cap.packets.len());
}
