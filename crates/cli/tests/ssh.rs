//! `lab exec`, `lab ssh`, `lab ssh-config` and `lab net apply --dry-run` on an existing host
//! (provider "ssh"): an sshd this test starts on loopback, reached with the lab's known_hosts.

mod common;

use guest::sshd::Sshd;

fn lab(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    common::run_in(dir, args)
}

#[test]
#[cfg_attr(
    not(all(lab_has_root, lab_sshd, lab_has_python3)),
    ignore = "needs root, OpenSSH (sshd, ssh, ssh-keygen) and python3"
)]
fn existing_host_over_ssh() {
    if !testkit::require(
        "lab exec over SSH",
        testkit::root()
            .and_then(|()| guest::sshd::available())
            .and_then(|()| testkit::tool("ssh")),
    ) {
        return;
    }
    let sshd = Sshd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A host without interfaces of its own: lab reaches it but has nothing to configure on it
    // (this machine's own network is never touched).
    std::fs::write(
        dir.path().join("Lab.toml"),
        format!(
            "[lab]\nname = \"labtest-ssh\"\n\n[hosts.box]\nrole = \"server\"\nprovider = \"ssh\"\n\n\
             [hosts.box.ssh]\naddress = \"127.0.0.1\"\nport = {}\nuser = \"root\"\nkey = \"{}\"\n",
            sshd.port,
            sshd.client_key.display()
        ),
    )
    .unwrap();

    // An existing machine's key is not trusted on first use: refused, with the fix.
    let (code, _, err) = lab(dir.path(), &["exec", "box", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not in") && err.contains("ssh-keyscan -p"),
        "{err}"
    );

    // The user records the key (here: the sshd's own public host key), then it works.
    let pubkey = std::fs::read_to_string(sshd.dir.path().join("host_key.pub")).unwrap();
    let mut words = pubkey.split_whitespace();
    let (kind, key) = (words.next().unwrap(), words.next().unwrap());
    std::fs::create_dir_all(dir.path().join(".lab")).unwrap();
    std::fs::write(
        dir.path().join(".lab/known_hosts"),
        format!("[127.0.0.1]:{} {kind} {key}\n", sshd.port),
    )
    .unwrap();
    let (code, out, err) = lab(dir.path(), &["exec", "box", "--", "ip", "-br", "addr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lo ") && out.contains("127.0.0.1/8"), "{out}");
    // Exit status and stderr pass through; arguments arrive intact.
    let (code, out, err) = lab(
        dir.path(),
        &[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "printf '%s|' \"$@\"; echo oops >&2; exit 5",
            "sh",
            "a b",
            "$(id)",
            "c;d",
        ],
    );
    assert_eq!(code, 5);
    assert_eq!(out.trim_end(), "a b|$(id)|c;d|");
    assert!(err.contains("oops"));

    // OpenSSH's client with the lab's configuration.
    let (code, out, _) = lab(dir.path(), &["ssh-config"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Host box\n") && out.contains(&format!("  Port {}\n", sshd.port)),
        "{out}"
    );
    assert!(
        out.contains("StrictHostKeyChecking yes") && out.contains(".lab/known_hosts"),
        "{out}"
    );
    let cfg = dir.path().join("ssh_config");
    std::fs::write(&cfg, &out).unwrap();
    let o = std::process::Command::new("ssh")
        .args([
            "-F",
            &cfg.display().to_string(),
            "-o",
            "BatchMode=yes",
            "box",
            "echo",
            "via-openssh",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "via-openssh",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Ansible's inventory: the settings it gives (read as Ansible reads INI, with shlex) log in.
    let (code, ini, err) = lab(dir.path(), &["inventory"]);
    assert_eq!(code, 0, "{err}");
    assert!(ini.contains("[lab_labtest_ssh]\nbox "), "{ini}");
    if testkit::require("inventory read by shlex", testkit::tool("python3")) {
        let parsed = std::process::Command::new("python3")
            .args([
                "-c",
                "import shlex, sys\nline = [l for l in sys.stdin.read().splitlines() if l.startswith('box ')][0]\nv = dict(t.split('=', 1) for t in shlex.split(line)[1:])\nprint('\\n'.join(['-p', v['ansible_port'], '-i', v['ansible_ssh_private_key_file'], *shlex.split(v['ansible_ssh_common_args']), v['ansible_user'] + '@' + v['ansible_host']]))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(ini.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(parsed.status.success());
        let args: Vec<String> = String::from_utf8_lossy(&parsed.stdout)
            .lines()
            .map(String::from)
            .collect();
        let o = std::process::Command::new("ssh")
            .args(&args)
            .args(["-o", "BatchMode=yes", "echo", "via-inventory"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "via-inventory",
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, yaml, _) = lab(dir.path(), &["inventory", "--format", "yaml"]);
    assert_eq!(code, 0);
    assert!(
        yaml.contains("lab_labtest_ssh:") && yaml.contains(&format!("ansible_port: {}", sshd.port)),
        "{yaml}"
    );

    let (code, out, err) = lab(
        dir.path(),
        &["ssh", "box", "--", "echo", "interactive-path"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "interactive-path");

    // Whether the host's kernel needs building at all.
    let (code, out, err) = lab(dir.path(), &["kernel", "check", "box"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("box: kernel ") && out.contains("MPTCP"),
        "{out}"
    );

    // Reading the host's state is harmless: nothing of the plan is missing there.
    let (code, out, err) = lab(dir.path(), &["net", "apply", "--dry-run", "--host", "box"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("box: 0 changes needed"), "{out}");
}
