//! Every lifecycle command on an ssh-only, a QEMU, a namespace and a mixed lab either does its
//! job or exits non-zero naming the provider and what it cannot do (VirtualBox's cells are in
//! virtualbox.rs, against the fake VBoxManage). Also: the lab lock, and `lab status --all`.

mod common;

use std::path::Path;

/// `lab ARGS` in `dir` with this test's own lab index: (exit code, stdout, stderr).
fn lab(dir: &Path, state_home: &Path, args: &[&str]) -> (i32, String, String) {
    common::run_with(dir, &[("XDG_STATE_HOME", state_home)], args)
}

/// A free loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn ssh_only() -> String {
    let (p1, p2) = (closed_port(), closed_port());
    format!(
        r#"
[lab]
name = "labtest-ssh"
provider = "ssh"

[networks.lan]
subnet = "10.98.0.0/24"

[hosts.ue1]
role = "client"
ssh = {{ address = "127.0.0.1", port = {p1}, user = "root" }}
interfaces = [{{ name = "eth1", network = "lan", address = "10.98.0.1/24" }}]

[hosts.ue2]
role = "server"
ssh = {{ address = "127.0.0.1", port = {p2}, user = "root" }}
interfaces = [{{ name = "eth1", network = "lan", address = "10.98.0.2/24" }}]
"#
    )
}

fn qemu_lab(name: &str) -> String {
    format!(
        r#"
[lab]
name = "{name}"
provider = "qemu"

[networks.lan]
subnet = "10.97.0.0/24"

[hosts.vm1]
role = "client"
interfaces = [
  {{ name = "enp0s3", nat = true }},
  {{ name = "enp0s8", network = "lan", address = "10.97.0.1/24" }},
]

[hosts.vm2]
role = "server"
interfaces = [
  {{ name = "enp0s3", nat = true }},
  {{ name = "enp0s8", network = "lan", address = "10.97.0.2/24" }},
]
"#
    )
}

/// A namespace pair and a QEMU pair, each on its own network.
fn mixed() -> String {
    format!(
        r#"{}
[networks.ns]
subnet = "10.96.0.0/24"

[hosts.ns1]
role = "client"
provider = "netns"
interfaces = [{{ name = "eth1", network = "ns", address = "10.96.0.1/24" }}]

[hosts.ns2]
role = "server"
provider = "netns"
interfaces = [{{ name = "eth1", network = "ns", address = "10.96.0.2/24" }}]
"#,
        qemu_lab("labtest-mixed")
    )
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("Lab.toml"), text).unwrap();
}

#[test]
fn an_ssh_only_lab_checks_reachability_and_refuses_what_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(dir.path(), &ssh_only());
    let d = dir.path();
    let s = state.path();

    let (code, _, err) = lab(d, s, &["up"]);
    assert_eq!(code, 6, "unreachable hosts have their exit status: {err}");
    let err = common::flat(&err);
    assert!(err.contains("provider \"ssh\""), "{err}");
    for h in ["ue1", "ue2"] {
        assert!(err.contains(&format!("host `{h}` is unreachable")), "{err}");
    }

    let (code, out, err) = lab(d, s, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ue1 (ssh ") && out.contains("unreachable"),
        "{out}"
    );
    let (code, out, _) = lab(d, s, &["status", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "down");
    assert_eq!(v["hosts"][0]["state"], "unreachable");
    assert_eq!(v["hosts"][0]["provider"], "ssh");

    for (args, op) in [
        (&["halt"][..], "halt"),
        (&["down"][..], "destroy"),
        (&["snapshot", "save", "s1"][..], "snapshot"),
    ] {
        let (code, out, err) = lab(d, s, args);
        assert_eq!(code, 1, "lab {args:?}: {out}{err}");
        assert!(
            err.contains(&format!("provider \"ssh\" cannot {op}")),
            "lab {args:?}: {err}"
        );
        assert!(!out.contains("saved"), "{out}");
    }
    // `lab guide` stops at its first step, and its report says which and why.
    let (code, out, err) = lab(d, s, &["guide", "--provider", "ssh", "--json"]);
    assert_ne!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pass"], false, "{out}");
    let steps = v["report"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{out}");
    assert!(
        steps[0]["name"].as_str().unwrap().starts_with("up:"),
        "{out}"
    );
    assert_eq!(steps[0]["ok"], false, "{out}");
    assert!(
        steps[0]["result"]
            .as_str()
            .unwrap()
            .contains("host `ue1` is unreachable"),
        "{out}"
    );
    assert!(
        common::flat(&err).contains("host `ue1` is unreachable"),
        "{err}"
    );

    let (code, out, _) = lab(d, s, &["up", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing is created"), "{out}");
}

#[test]
fn a_qemu_lab_that_is_not_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(dir.path(), &qemu_lab("labtest-q"));
    let (d, s) = (dir.path(), state.path());

    let (code, out, err) = lab(d, s, &["up", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("# lab `labtest-q` on provider \"qemu\""),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("vde_switch ")), "{out}");
    let vm = out
        .lines()
        .find(|l| l.starts_with("qemu-system-x86_64 ") && l.contains("lab-labtest-q-vm1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(vm.contains("hostfwd=tcp:127.0.0.1:42301-:22"), "{vm}");
    assert!(
        !d.join(".lab/labtest-q.qemu.json").exists(),
        "a dry run creates nothing"
    );

    let (code, out, err) = lab(d, s, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hosts"][1]["state"], "not created");
    assert_eq!(v["hosts"][1]["machine"], "lab-labtest-q-vm2");

    let (code, out, err) = lab(d, s, &["halt", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["halted"][0][0], "qemu");
    assert_eq!(v["halted"][0][1].as_array().unwrap().len(), 0);

    let (code, _, err) = lab(d, s, &["snapshot", "save", "s1"]);
    assert_eq!(code, 1);
    assert!(err.contains("provider \"qemu\" cannot snapshot"), "{err}");

    let (code, out, err) = lab(d, s, &["down", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["removed"][0][0], "qemu");
}

#[test]
fn namespaces_have_no_power_state_or_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let (d, s) = (dir.path(), state.path());
    let (code, out, err) = lab(d, s, &["up", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("namespace lab.mptcp.ue1"), "{out}");
    assert!(out.contains("veth enp0s8 on bridge"), "{out}");
    for (args, op) in [
        (&["halt"][..], "halt"),
        (&["snapshot", "save", "s"][..], "snapshot"),
    ] {
        let (code, _, err) = lab(d, s, args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains(&format!("provider \"netns\" cannot {op}")),
            "{err}"
        );
    }
}

#[test]
fn a_mixed_lab_runs_each_provider_and_names_what_one_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(dir.path(), &mixed());
    let (d, s) = (dir.path(), state.path());
    let (code, out, err) = lab(d, s, &["up", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("on provider \"qemu\"") && out.contains("on provider \"netns\""),
        "{out}"
    );
    let (code, out, err) = lab(d, s, &["halt", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["done"]["halted"][0][0], "qemu",
        "QEMU's part was done: {v}"
    );
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("provider \"netns\" cannot halt"),
        "{v}"
    );
    let (code, _, err) = lab(d, s, &["snapshot", "save", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("provider \"qemu\" cannot snapshot"), "{err}");
    assert!(err.contains("provider \"netns\" cannot snapshot"), "{err}");
}

#[test]
fn a_network_shared_across_providers_is_a_lab_toml_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let text = mixed().replace(r#"network = "ns""#, r#"network = "lan""#);
    write(dir.path(), &text);
    let (code, _, err) = lab(dir.path(), state.path(), &["status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("network `lan` joins `"), "{err}");
    assert!(
        err.contains("hosts of different providers cannot share a segment"),
        "{err}"
    );
    assert!(err.contains("Lab.toml:"), "file:line:col: {err}");
}

#[test]
fn an_unknown_provider_is_named_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &qemu_lab("labtest-x").replace("provider = \"qemu\"", "provider = \"docker\""),
    );
    let (code, _, err) = lab(dir.path(), state.path(), &["status"]);
    assert_ne!(code, 0);
    let err = common::flat(&err);
    assert!(
        err.contains(
            "provider \"docker\", which is not registered (known: libvirt, netns, qemu, ssh, virtualbox)"
        ),
        "{err}"
    );
}

fn root_lab(dir: &Path, name: &str) {
    let text = model::Preset::Builtin
        .source()
        .replace("name = \"mptcp\"", &format!("name = \"{name}\""));
    assert!(text.contains(name));
    write(dir, &text);
}

fn root_with_mptcp() -> Result<(), String> {
    testkit::root().and_then(|()| testkit::mptcp())
}

fn unique(tag: &str) -> String {
    format!("labtest-{tag}{}", std::process::id())
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn two_ups_at_once_do_not_interleave() {
    if !testkit::require("two `lab up` at once", root_with_mptcp()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let name = unique("lock");
    root_lab(dir.path(), &name);
    let (d, s) = (dir.path().to_path_buf(), state.path().to_path_buf());
    // The test holds the lab's lock while both start, so that they meet whatever the timing:
    // each must wait for it (and say whose it is) instead of changing the lab.
    let held = lab::StateDir::new(&d)
        .lock("the test", false, &mut |_, _| {})
        .unwrap();
    let ups: Vec<_> = (0..2)
        .map(|_| {
            let (d, s) = (d.clone(), s.clone());
            std::thread::spawn(move || lab(&d, &s, &["up"]))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        netns::topology::existing(&name).unwrap().is_empty(),
        "nothing is created while the lock is held"
    );
    drop(held);
    let results: Vec<_> = ups.into_iter().map(|t| t.join().unwrap()).collect();
    let guard = Down(d.clone(), s.clone());
    for (code, out, err) in &results {
        assert_eq!(*code, 0, "{out}{err}");
        assert!(
            err.contains(&format!("waiting for process {}", std::process::id())),
            "{err}"
        );
    }
    assert!(
        results.iter().any(|(_, out, _)| out.contains("2 adopted")),
        "{results:?}"
    );
    let (code, out, err) = lab(&d, &s, &["net", "apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_end().ends_with("\n0 changes"), "{out}");
    drop(guard);
}

/// `lab down` when dropped.
struct Down(std::path::PathBuf, std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if !self.0.is_dir() {
            return;
        }
        let _ = lab(&self.0, &self.1, &["down"]);
    }
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn status_all_lists_labs_and_prunes_gone_directories() {
    if !testkit::require("lab status --all", root_with_mptcp()) {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (na, nb) = (unique("alla"), unique("allb"));
    root_lab(a.path(), &na);
    root_lab(b.path(), &nb);
    let _down_a = Down(a.path().to_path_buf(), s.to_path_buf());
    let _down_b = Down(b.path().to_path_buf(), s.to_path_buf());
    for d in [a.path(), b.path()] {
        let (code, out, err) = lab(d, s, &["up", "--no-apply"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, _) = lab(a.path(), s, &["status", "--all"]);
    assert_eq!(code, 0);
    for (d, n) in [(a.path(), &na), (b.path(), &nb)] {
        let line = out
            .lines()
            .find(|l| l.starts_with(n.as_str()))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("netns") && line.contains(" up "), "{line}");
        assert!(
            line.contains(&std::path::absolute(d).unwrap().display().to_string()),
            "{line}"
        );
    }
    // While b's directory exists, a copy of its Lab.toml elsewhere may not take its lab over.
    let elsewhere = tempfile::tempdir().unwrap();
    root_lab(elsewhere.path(), &nb);
    assert_eq!(lab(elsewhere.path(), s, &["down"]).0, 2);
    // b's directory goes: then the copy may remove the namespaces (b stays recorded), and b
    // is listed as gone, then pruned.
    let gone = b.path().to_path_buf();
    drop(b);
    assert!(!gone.exists());
    assert_eq!(lab(elsewhere.path(), s, &["down"]).0, 0);
    let (_, out, _) = lab(a.path(), s, &["status", "--all"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(nb.as_str()))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("directory gone"), "{line}");
    let (code, out, _) = lab(a.path(), s, &["status", "--all", "--prune"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("pruned {nb}")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with(nb.as_str())), "{out}");
    assert!(out.lines().any(|l| l.starts_with(na.as_str())), "{out}");
    // `down` forgets a lab.
    assert_eq!(lab(a.path(), s, &["down"]).0, 0);
    let (_, out, _) = lab(a.path(), s, &["status", "--all"]);
    assert!(!out.contains(na.as_str()), "{out}");
}

/// A dry run changes nothing on disk either: no `.lab/` and no key for the VirtualBox
/// unattended install, which shows where the lab's key goes instead.
#[test]
fn up_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("Lab.toml"), lab::Preset::Builtin.source()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) = lab(
        d,
        state.path(),
        &["up", "--dry-run", "--provider", "virtualbox"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("made by `lab up`"), "{out}");
    assert!(!d.join(".lab").exists(), "a dry run wrote .lab/");
}
