//! The SSH executor against a real OpenSSH sshd that each test starts (temp host key, config and
//! authorized_keys, on loopback) and stops by PID.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guest::sshd::Sshd;
use guest::{Auth, Command, Error, Exec, FileMode, Ssh, SshConfig, Status, Stream};

fn ready(test: &str) -> Option<Sshd> {
    if !testkit::require(
        test,
        testkit::root().and_then(|()| guest::sshd::available()),
    ) {
        return None;
    }
    Some(Sshd::start().unwrap_or_else(|e| panic!("{test}: {e}")))
}

fn config(sshd: &Sshd) -> SshConfig {
    let mut c = SshConfig::new(
        "box",
        "127.0.0.1",
        sshd.port,
        "root",
        Auth::Key(sshd.client_key.clone()),
        known_hosts(sshd),
    );
    c.trust_on_first_use = true;
    c.connect_timeout = Duration::from_secs(5);
    c
}

fn known_hosts(sshd: &Sshd) -> PathBuf {
    sshd.dir.path().join("lab_known_hosts")
}

fn cmd(argv: &[&str]) -> Command {
    Command::new(argv.iter().copied())
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn exec_exit_codes_and_stderr() {
    let Some(sshd) = ready("ssh exec") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    let out = ssh
        .run(&cmd(&["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .unwrap();
    assert_eq!(out.status, Status::Code(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let e = ssh.check(&cmd(&["false"])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Failed {
                status: Status::Code(1),
                ..
            }
        ),
        "{e}"
    );
    let out = ssh.run(&cmd(&["sh", "-c", "kill -TERM $$"])).unwrap();
    assert_eq!(out.status, Status::Signal(15));
    // stdin reaches the command.
    let out = ssh
        .run(&cmd(&["tr", "a-z", "A-Z"]).stdin(b"hello\n".to_vec()))
        .unwrap();
    assert_eq!(out.stdout, b"HELLO\n");
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn hundred_megabytes_of_output_and_stderr_at_once() {
    let Some(sshd) = ready("ssh large output") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    // Both streams busy at once: a reader that drained only stdout would deadlock.
    let out = ssh
        .run(&cmd(&[
            "sh",
            "-c",
            "head -c 4000000 /dev/zero >&2 & head -c 104857600 /dev/zero; wait",
        ]))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 104_857_600);
    assert_eq!(out.stderr.len(), 4_000_000);
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn streaming_lines_arrive_in_order_while_the_command_runs() {
    let Some(sshd) = ready("ssh streaming") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    let start = Instant::now();
    let mut seen = Vec::new();
    let status = ssh
        .run_streaming(
            &cmd(&[
                "sh",
                "-c",
                "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.3; done; printf tail",
            ]),
            &mut |s, line| seen.push((s, line.to_string(), start.elapsed())),
        )
        .unwrap();
    assert!(status.success());
    let stdout: Vec<&str> = seen
        .iter()
        .filter(|(s, _, _)| *s == Stream::Stdout)
        .map(|(_, l, _)| l.as_str())
        .collect();
    assert_eq!(stdout, ["1", "2", "3", "tail"]);
    let stderr: Vec<&str> = seen
        .iter()
        .filter(|(s, _, _)| *s == Stream::Stderr)
        .map(|(_, l, _)| l.as_str())
        .collect();
    assert_eq!(stderr, ["e1", "e2", "e3"]);
    // The first line came long before the command ended.
    let first = seen.iter().find(|(_, l, _)| l == "1").unwrap().2;
    let last = seen.iter().find(|(_, l, _)| l == "tail").unwrap().2;
    assert!(
        last - first >= Duration::from_millis(500),
        "{first:?} {last:?}"
    );
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn upload_and_download_with_modes() {
    let Some(sshd) = ready("ssh files") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub dir").join("it's a file;$(x)");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let contents: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    ssh.put_file(&path, &contents, FileMode::mode(0o640))
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    assert_eq!(ssh.get_file(&path).unwrap(), contents);
    // Overwrite atomically with another mode and an owner.
    ssh.put_file(
        &path,
        b"v2",
        FileMode {
            mode: 0o600,
            owner: Some((1, 1)),
        },
    )
    .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1);
    assert_eq!(std::fs::read(&path).unwrap(), b"v2");
    // No temp file is left beside it.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
    let e = ssh.get_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::File { op: "read", .. }), "{e}");
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn injection_attempts_arrive_as_plain_arguments() {
    let Some(sshd) = ready("ssh quoting") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("pwned");
    let evil = [
        "two words".to_string(),
        "it's".into(),
        "\"double\"".into(),
        "a;b".into(),
        format!("$(touch {})", canary.display()),
        format!("`touch {}`", canary.display()),
        format!("; touch {}", canary.display()),
        "line1\nline2".into(),
        "*".into(),
        "$HOME".into(),
        "".into(),
        "back\\slash".into(),
        "tab\there".into(),
    ];
    let mut argv = vec!["printf".to_string(), "%s\\0".into()];
    argv.extend(evil.iter().cloned());
    let out = ssh.run(&Command::new(argv)).unwrap();
    assert!(out.success(), "{}", out.stderr_lossy());
    let got: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    assert_eq!(&got[..evil.len()], &evil[..]);
    assert!(!canary.exists(), "an argument was run by the remote shell");
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn unknown_and_changed_host_keys_are_refused() {
    let Some(mut sshd) = ready("ssh host keys") else {
        return;
    };
    // Without trust on first use, an unknown key is refused.
    let mut strict = config(&sshd);
    strict.trust_on_first_use = false;
    let e = Ssh::new(strict.clone()).connect().unwrap_err();
    assert!(matches!(e, Error::HostKeyUnknown { .. }), "{e}");
    assert!(e.to_string().contains("SHA256:"), "{e}");
    // With it (a machine the lab created), the key is recorded, then required.
    Ssh::new(config(&sshd)).connect().unwrap();
    let line = std::fs::read_to_string(known_hosts(&sshd)).unwrap();
    assert!(
        line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{line}"
    );
    Ssh::new(strict.clone()).connect().unwrap();
    // The machine's key changes: a hard error naming both fingerprints, even with TOFU on.
    sshd.kill();
    sshd.new_host_key().unwrap();
    sshd.spawn().unwrap();
    let e = Ssh::new(config(&sshd)).connect().unwrap_err();
    let Error::HostKeyChanged { known, offered, .. } = &e else {
        panic!("{e}")
    };
    assert_ne!(known, offered);
    let msg = e.to_string();
    assert!(
        msg.contains(known.as_str()) && msg.contains(offered.as_str()),
        "{msg}"
    );
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn an_unknown_client_key_is_refused() {
    let Some(sshd) = ready("ssh client key") else {
        return;
    };
    sshd.authorize_other_key().unwrap();
    let e = Ssh::new(config(&sshd)).connect().unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            Error::Connect {
                step: "authentication",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("127.0.0.1:{}", sshd.port)) && msg.contains("user root"),
        "{msg}"
    );
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn sshd_killed_mid_command_then_reconnect() {
    let Some(mut sshd) = ready("ssh dropped session") else {
        return;
    };
    let ssh = std::sync::Arc::new(Ssh::new(config(&sshd)));
    ssh.run(&cmd(&["true"])).unwrap();
    let s2 = ssh.clone();
    let running = std::thread::spawn(move || s2.run(&cmd(&["sleep", "20"])));
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    sshd.kill();
    let e = running.join().unwrap().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let msg = e.to_string();
    assert!(matches!(e, Error::SessionLost { .. }), "{msg}");
    assert!(
        msg.contains("box")
            && msg.contains(&format!("127.0.0.1:{}", sshd.port))
            && msg.contains("sleep 20"),
        "{msg}"
    );
    // sshd comes back: the next command reconnects by itself.
    sshd.spawn().unwrap();
    assert_eq!(ssh.run(&cmd(&["echo", "back"])).unwrap().stdout, b"back\n");
    // A session that died between commands: a command safe to repeat runs again on a fresh
    // session; one that is not reports the break, and the one after works.
    sshd.kill();
    sshd.spawn().unwrap();
    assert_eq!(
        ssh.run(&cmd(&["echo", "again"]).retry_safe())
            .unwrap()
            .stdout,
        b"again\n"
    );
    sshd.kill();
    sshd.spawn().unwrap();
    assert!(matches!(
        ssh.run(&cmd(&["true"])),
        Err(Error::SessionLost { .. })
    ));
    assert!(ssh.run(&cmd(&["true"])).unwrap().success());
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn connect_and_command_timeouts() {
    let Some(sshd) = ready("ssh timeouts") else {
        return;
    };
    // A server that accepts and never speaks: the handshake times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(&sshd);
    c.port = silent.local_addr().unwrap().port();
    c.connect_timeout = Duration::from_secs(1);
    let start = Instant::now();
    let e = Ssh::new(c).connect().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            e,
            Error::Connect {
                step: "SSH handshake",
                ..
            }
        ),
        "{e}"
    );
    drop(silent);

    // A command over its limit is ended, and the session stays usable.
    let ssh = Ssh::new(config(&sshd));
    let start = Instant::now();
    let e = ssh
        .run(&cmd(&["sleep", "30"]).timeout(Duration::from_secs(1)))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(ssh.run(&cmd(&["true"])).unwrap().success());
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn wait_until_reachable_across_a_restart() {
    let Some(mut sshd) = ready("ssh wait") else {
        return;
    };
    let ssh = Ssh::new(config(&sshd));
    ssh.connect().unwrap();
    sshd.kill();
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        sshd.spawn().unwrap();
        sshd
    });
    let took = ssh.wait_reachable(Duration::from_secs(20)).unwrap();
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(ssh.run(&cmd(&["true"])).unwrap().success());
    let sshd = back.join().unwrap();
    drop(sshd);
    let e = ssh.wait_reachable(Duration::from_millis(800)).unwrap_err();
    assert!(e.to_string().contains("not reachable within"), "{e}");
}

#[test]
fn commands_for_a_non_root_login_go_through_sudo() {
    let mut c = SshConfig::new("h", "192.0.2.1", 22, "lab", Auth::Agent, "/nonexistent");
    let ssh = Ssh::new(c.clone());
    let argv = vec!["ip".to_string(), "route".into(), "add".into(), "a b".into()];
    assert_eq!(ssh.command_line(&argv), "sudo -n -- ip route add 'a b'");
    c.sudo = false;
    assert_eq!(
        Ssh::new(c.clone()).command_line(&argv),
        "ip route add 'a b'"
    );
    c.sudo = true;
    c.user = "root".into();
    assert_eq!(Ssh::new(c).command_line(&argv), "ip route add 'a b'");
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn through_a_jump_host() {
    let Some(sshd) = ready("ssh through a jump host") else {
        return;
    };
    // The sshd is its own jump host: the target's address is as the jump host sees it.
    let mut c = config(&sshd);
    c.host = "behind".into();
    c.jump = Some(Box::new(config(&sshd)));
    c.host_key_alias = Some("lab-test-behind".into());
    let ssh = Ssh::new(c.clone());
    let out = ssh
        .check(&cmd(&["sh", "-c", "echo $SSH_CONNECTION"]))
        .unwrap();
    // The target sees the connection come from the jump host's sshd, not from this process.
    let from = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(from.starts_with("127.0.0.1 "), "{from}");
    // Streams both ways at volume: 20 MB out, 5 MB in through stdin.
    let out = ssh
        .run(&cmd(&["sh", "-c", "wc -c >&2; head -c 20971520 /dev/zero"]).stdin(vec![7u8; 5 << 20]))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 20 << 20);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "5242880");
    // Many sessions, one after another, each its own jump connection.
    for _ in 0..5 {
        ssh.disconnect();
        ssh.check(&cmd(&["true"])).unwrap();
    }
    // Its host key is kept under the alias.
    let kh = std::fs::read_to_string(known_hosts(&sshd)).unwrap();
    assert!(
        kh.lines().any(|l| l.starts_with("lab-test-behind ")),
        "{kh}"
    );
    // Nothing listens where the jump host is asked to connect: the error names both.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut bad = c.clone();
    bad.port = port;
    let e = Ssh::new(bad)
        .check(&cmd(&["true"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("box"), "{e}");
}

/// A loopback proxy to `port` whose connections stop carrying anything, both ways, while
/// `frozen` is set: a peer that went silent without closing (a VM that stopped answering
/// behind a jump, a cable pulled), which TCP does not report for minutes.
fn freezable_proxy(port: u16, frozen: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().map_while(Result::ok) {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            for (mut from, mut to) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)] {
                let frozen = frozen.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        while frozen.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                while frozen.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    at
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd)),
    ignore = "needs root and OpenSSH (sshd, ssh, ssh-keygen)"
)]
fn a_silent_peer_is_found_by_unanswered_keepalives() {
    let Some(sshd) = ready("ssh silent peer") else {
        return;
    };
    let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut c = config(&sshd);
    c.port = freezable_proxy(sshd.port, frozen.clone());
    c.keepalive = Some(Duration::from_secs(1));
    let ssh = Ssh::new(c);
    // A quiet command outlives several keepalives: sshd answers each.
    assert!(ssh.run(&cmd(&["sleep", "6"])).unwrap().success());
    let s = std::sync::Arc::new(ssh);
    let s2 = s.clone();
    let running = std::thread::spawn(move || s2.run(&cmd(&["sleep", "60"])));
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = running.join().unwrap().unwrap_err();
    let took = start.elapsed();
    let msg = e.to_string();
    assert!(matches!(e, Error::SessionLost { .. }), "{msg}");
    assert!(
        msg.contains("no answer to 3 keepalives") && msg.contains("sleep 60"),
        "{msg}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "found after {took:?}"
    );
    // It answers again: the next command opens a fresh session.
    frozen.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s.run(&cmd(&["echo", "back"])).unwrap().stdout, b"back\n");
}
