//! The libvirt provider for real: libvirtd 9 (started by `.ci/run`, or by hand) with QEMU under
//! software emulation here. The built-in lab's two hosts come up as domains, the network is
//! applied over SSH, `lab test` passes across them; snapshots, halt, a second `up` and `destroy`
//! leave nothing in `virsh list --all`, `virsh net-list --all`, the pool or the host's devices;
//! also after `lab up` was killed with SIGKILL; and the same lab through `qemu+ssh://` to an sshd
//! on loopback in front of this machine's libvirtd. Every domain and network lab defined is
//! checked against libvirt's schemas with `virt-xml-validate`. Minutes; needs root, libvirt,
//! QEMU, debootstrap and linux-source-6.1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{run_in, run_with};

/// The tests of this file take turns: VMs under software emulation share two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn lab_toml(name: &str, uri: Option<&str>) -> String {
    let mut t = lab::Preset::Builtin
        .source()
        .replace("name = \"mptcp\"", &format!("name = \"{name}\""))
        .replace("cpus = 2", "cpus = 1")
        .replace("memory_mib = 2048", "memory_mib = 1024");
    if let Some(uri) = uri {
        t = t.replacen(
            &format!("name = \"{name}\""),
            &format!("name = \"{name}\"\nuri = \"{uri}\""),
            1,
        );
    }
    t
}

/// The UUID in a domain's XML.
fn libvirt_uuid(xml: &str) -> String {
    let start = xml.find("<uuid>").unwrap() + "<uuid>".len();
    xml[start..start + 36].to_string()
}

fn virsh(args: &[&str]) -> String {
    let out = std::process::Command::new("virsh")
        .args(["--connect", "qemu:///system"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn capabilities() -> Result<(), String> {
    testkit::root()?;
    for tool in probe::QEMU_TOOLS
        .iter()
        .chain(&["virsh", "virt-xml-validate"])
    {
        testkit::tool(tool)?;
    }
    if !Path::new(testkit::kernel::SOURCE).is_file() {
        return Err(format!(
            "{} is missing (Debian: linux-source-6.1)",
            testkit::kernel::SOURCE
        ));
    }
    let out = std::process::Command::new("virsh")
        .args(["--connect", "qemu:///system", "version"])
        .output()
        .map_err(|e| format!("virsh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "libvirtd does not answer on qemu:///system (start it: libvirtd -d): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `lab destroy` whatever happened.
struct Destroy(PathBuf, Vec<(&'static str, PathBuf)>);

impl Drop for Destroy {
    fn drop(&mut self) {
        let env: Vec<(&str, &Path)> = self.1.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let (_, out, err) = run_with(&self.0, &env, &["destroy"]);
        eprintln!("{out}{err}");
    }
}

fn step(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let t = Instant::now();
    let (code, out, err) = run_with(dir, env, args);
    eprintln!(
        "$ lab {} ({:.1} s)\n{out}{err}",
        args.join(" "),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "lab {args:?} failed:\n{out}\n{err}");
    out
}

/// What of lab `name` is left on this machine's libvirtd and in its devices.
fn leftovers(name: &str, pool: &str) -> Vec<String> {
    let prefix = format!("lab-{name}-");
    let mut left: Vec<String> = virsh(&["list", "--all", "--name"])
        .lines()
        .chain(virsh(&["net-list", "--all", "--name"]).lines())
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let vols = std::process::Command::new("virsh")
        .args(["--connect", "qemu:///system", "vol-list", "--pool", pool])
        .output()
        .unwrap();
    left.extend(
        String::from_utf8_lossy(&vols.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with(&prefix))
            .map(|l| format!("volume {}", l.trim())),
    );
    let links = std::process::Command::new("ip")
        .args(["-json", "link", "show"])
        .output()
        .unwrap();
    left.extend(
        net::devices::aliased(&String::from_utf8_lossy(&links.stdout), "lab:")
            .into_iter()
            .filter(|(_, alias)| alias.contains(&format!(":{name}:")))
            .map(|(dev, alias)| format!("device {dev} ({alias})")),
    );
    left
}

/// Every domain and network of lab `name`, as libvirt holds them, passes libvirt's schemas.
fn validate_definitions(name: &str) {
    let prefix = format!("lab-{name}-");
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (list, dump, kind) in [
        (vec!["list", "--all", "--name"], "dumpxml", "domain"),
        (
            vec!["net-list", "--all", "--name"],
            "net-dumpxml",
            "network",
        ),
    ] {
        for obj in virsh(&list).lines().filter(|l| l.starts_with(&prefix)) {
            let f = tmp.path().join(format!("{obj}.xml"));
            std::fs::write(&f, virsh(&[dump, obj])).unwrap();
            let out = std::process::Command::new("virt-xml-validate")
                .arg(&f)
                .arg(kind)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{obj}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert_eq!(n, 3, "two domains and one network of {name}");
}

fn mptcp_across_vms(dir: &Path, env: &[(&str, &Path)]) {
    let t = Instant::now();
    let (code, out, err) = run_with(dir, env, &["test", "--tool", "iperf3", "--seconds", "8"]);
    eprintln!(
        "$ lab test ({:.1} s, exit {code})\n{out}{err}",
        t.elapsed().as_secs_f64()
    );
    assert!(out.contains("[ok] MPTCP in use"), "{out}");
    for host in ["ue1", "ue2"] {
        for nic in ["enp0s8", "enp0s9", "enp0s10"] {
            assert!(
                out.contains(&format!("[ok] {host} {nic}")),
                "{host} {nic}: {out}"
            );
        }
    }
    assert_eq!(code, 0, "verdict:\n{out}\n{err}");
}

/// Cloud images and boxes on libvirt: the built-in lab with ue1 on a cloud image (served as
/// Ubuntu 22.04 by a loopback mirror; its NoCloud seed a CD-ROM volume of the pool) and ue2 on
/// a Vagrant box by URL (first logged in with Vagrant's insecure key, which gives way to the
/// lab's). Real cloud-init applies the seed, the network is applied through root and sudo,
/// and MPTCP passes over all three paths between the two; destroy leaves nothing.
#[test]
#[cfg_attr(
    not(all(lab_libvirt, lab_has_genisoimage)),
    ignore = "needs root, libvirt (libvirtd, virsh, virt-xml-validate), QEMU, genisoimage, debootstrap and Debian's linux-source-6.1"
)]
fn cloud_image_and_box_on_libvirt() {
    let caps = capabilities().and_then(|()| testkit::tool("genisoimage"));
    if !testkit::require("libvirt cloud image and box", caps) {
        return;
    }
    let _turn = turn();
    let mirror = testkit::images::cloud_mirror(&lab::provider::cache_dir("images"));
    let tmp = tempfile::tempdir().unwrap();
    let vbox = testkit::images::vagrant_box(tmp.path());
    let boxes = testkit::http::Server::start(Default::default(), &[".box"]);
    boxes.put_path("/boxes/debian-12.box", &vbox.file);

    let name = "lvimg";
    let dir = tmp.path().join("lab");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = lab_toml(name, None)
        .replacen(
            "[hosts.ue1.vm]\n",
            "[hosts.ue1.vm]\nimage = \"ubuntu-22.04\"\n",
            1,
        )
        .replacen(
            "[hosts.ue2.vm]\n",
            &format!(
                "[hosts.ue2.vm]\nimage = \"{}/boxes/debian-12.box\"\nchecksum = \"sha256:{}\"\n",
                boxes.base, vbox.sha256
            ),
            1,
        );
    std::fs::write(dir.join("Lab.toml"), &toml).unwrap();
    // Downloads land in a cache of the test's own (the servers' ports are new in every run).
    let cache = tmp.path().join("cache");
    let mirror_base = PathBuf::from(&mirror.server.base);
    let env_owned = vec![
        ("LAB_UBUNTU_CLOUD_IMAGES", mirror_base.clone()),
        ("XDG_CACHE_HOME", cache.clone()),
    ];
    let env: Vec<(&str, &Path)> = env_owned.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let guard = Destroy(dir.clone(), env_owned.clone());

    // The dry run names the seed volume, from Lab.toml alone.
    let plan = step(
        &dir,
        &env,
        &[
            "up",
            "--provider",
            "libvirt",
            "--dry-run",
            "--insecure-skip-signature",
        ],
    );
    assert!(
        plan.contains(&format!("--name lab-{name}-ue1-")) && plan.contains(".iso --capacity"),
        "ue1's seed volume: {plan}"
    );
    let (code, out, err) = run_with(
        &dir,
        &env,
        &["up", "--provider", "libvirt", "--insecure-skip-signature"],
    );
    eprintln!("$ lab up (exit {code})\n{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 hosts up"), "{out}");
    assert!(
        err.contains("NOT checked (--insecure-skip-signature)"),
        "the report says the signature was skipped: {err}"
    );
    assert!(
        err.contains("ue2: logged in with Vagrant's public insecure ed25519 key and replaced it with the lab's key"),
        "{err}"
    );
    assert_eq!(mirror.server.gets(&mirror.image_path), 1);
    assert_eq!(boxes.gets("/boxes/debian-12.box"), 1);
    validate_definitions(name);
    let vols = virsh(&["vol-list", "--pool", "lab"]);
    assert!(
        vols.lines()
            .any(|l| l.trim_start().starts_with(&format!("lab-{name}-ue1-")) && l.contains(".iso")),
        "ue1's seed volume: {vols}"
    );
    assert!(
        virsh(&["dumpxml", &format!("lab-{name}-ue1")]).contains("device='cdrom'"),
        "the seed is a CD-ROM"
    );
    // cloud-init took the seed (the image says `lab`); the box logs in as vagrant with the
    // lab's key only.
    let host = step(&dir, &env, &["exec", "ue1", "--", "hostname"]);
    assert_eq!(host.trim(), "ue1");
    let who = step(&dir, &env, &["exec", "ue2", "--", "printenv", "SUDO_USER"]);
    assert_eq!(who.trim(), "vagrant");
    let keys = step(
        &dir,
        &env,
        &[
            "exec",
            "ue2",
            "--",
            "cat",
            "/home/vagrant/.ssh/authorized_keys",
        ],
    );
    for k in &vbox.insecure_keys {
        let blob = k.split_whitespace().nth(1).unwrap();
        assert!(!keys.contains(blob), "an insecure key is left: {keys}");
    }
    mptcp_across_vms(&dir, &env);

    // ue2 given another image: its disk cannot move, so `up` refuses before fetching
    // anything, names both images, and the domains run on.
    std::fs::write(
        dir.join("Lab.toml"),
        toml.replace("/boxes/debian-12.box", "/boxes/other.box"),
    )
    .unwrap();
    let (code, out, err) = run_with(&dir, &env, &["up"]);
    assert_ne!(code, 0, "must refuse:\n{out}{err}");
    let err = common::flat(&err);
    assert!(
        err.contains("ue2") && err.contains("debian-12.box") && err.contains("other.box"),
        "{err}"
    );
    assert!(err.contains("lab destroy"), "the fix is named: {err}");
    assert_eq!(boxes.gets("/boxes/other.box"), 0, "nothing fetched");
    for h in ["ue1", "ue2"] {
        let state = virsh(&["domstate", &format!("lab-{name}-{h}")]);
        assert_eq!(state.trim(), "running", "{h}");
    }

    drop(guard);
    assert_eq!(leftovers(name, "lab"), Vec::<String>::new());
    assert!(
        !dir.join(".lab/libvirt").exists(),
        "the seeds' files are gone"
    );
}

#[test]
#[cfg_attr(
    not(lab_libvirt),
    ignore = "needs root, libvirt (libvirtd, virsh, virt-xml-validate), QEMU, debootstrap and Debian's linux-source-6.1"
)]
fn builtin_lab_on_libvirt_up_test_snapshot_halt_destroy() {
    if !testkit::require("libvirt end to end", capabilities()) {
        return;
    }
    let _turn = turn();
    let name = "lve2e";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("Lab.toml"), lab_toml(name, None)).unwrap();
    let guard = Destroy(dir.to_path_buf(), Vec::new());

    let out = step(dir, &[], &["up", "--provider", "libvirt"]);
    assert!(out.contains("2 hosts up"), "{out}");
    validate_definitions(name);
    // On this machine the overlays are backed by lab's cached image in place: no copy of it
    // in the pool.
    let vols = virsh(&["vol-list", "--pool", "lab"]);
    let vol = vols
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|v| v.starts_with(&format!("lab-{name}-ue1-")))
        .unwrap_or_else(|| panic!("no volume of ue1: {vols}"));
    let disk = virsh(&["vol-path", "--pool", "lab", "--vol", vol]);
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", disk.trim()])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(
        info["backing-filename"]
            .as_str()
            .is_some_and(|b| b.ends_with("/base.qcow2") && b.contains("/images/")),
        "{info}"
    );
    // Nothing of the lab has an address in this machine's namespace: the bridge and taps are
    // bare.
    let addrs = std::process::Command::new("ip")
        .args(["-json", "addr", "show"])
        .output()
        .unwrap();
    let addrs: serde_json::Value = serde_json::from_slice(&addrs.stdout).unwrap();
    for l in addrs.as_array().unwrap() {
        let ifname = l["ifname"].as_str().unwrap_or_default();
        if ifname.starts_with("lb") || ifname.starts_with("lt") {
            assert_eq!(
                l["addr_info"],
                serde_json::json!([]),
                "{ifname} has an address"
            );
        }
    }
    let status = step(dir, &[], &["status"]);
    assert!(
        status.contains(&format!("lab-{name}-ue1 on qemu:///system")) && status.contains("running"),
        "{status}"
    );
    mptcp_across_vms(dir, &[]);

    // Snapshots are a capability of this provider.
    step(dir, &[], &["snapshot", "save", "s1"]);
    step(dir, &[], &["exec", "ue1", "--", "touch", "/root/after-s1"]);
    step(dir, &[], &["snapshot", "restore", "s1"]);
    let (code, _, _) = run_in(dir, &["exec", "ue1", "--", "test", "-e", "/root/after-s1"]);
    assert_eq!(code, 1, "the file made after the snapshot is gone");

    // New hardware for a running domain is refused before anything changes.
    let toml = lab_toml(name, None);
    let at = toml.rfind("memory_mib = 1024").unwrap();
    let bigger = format!("{}memory_mib = 1152{}", &toml[..at], &toml[at + 17..]);
    std::fs::write(dir.join("Lab.toml"), &bigger).unwrap();
    let ue2 = format!("lab-{name}-ue2");
    let xml_before = virsh(&["dumpxml", &ue2]);
    let (code, out, err) = run_in(dir, &["up"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("ue2") && err.contains("nothing was changed") && !err.contains("ue1,"),
        "{err}"
    );
    assert_eq!(virsh(&["dumpxml", &ue2]), xml_before);

    // Halt, then up again: the stopped domains are defined again (same UUID, the new
    // hardware) and started.
    step(dir, &[], &["halt"]);
    assert!(virsh(&["domstate", &format!("lab-{name}-ue1")]).contains("shut off"));
    let out = step(dir, &[], &["up"]);
    assert!(out.contains("2 hosts up"), "{out}");
    let xml_after = virsh(&["dumpxml", &ue2]);
    assert!(
        xml_after.contains("<memory unit='KiB'>1179648</memory>"),
        "{xml_after}"
    );
    assert_eq!(
        libvirt_uuid(&xml_after),
        libvirt_uuid(&xml_before),
        "the same domain"
    );

    // A kernel installed through GRUB, as on QEMU: the tiny MPTCP kernel this target directory
    // builds once (the kernel crate's test and the QEMU test share it), then a reboot into it.
    let built = testkit::kernel::tiny().unwrap_or_else(|e| panic!("{e}"));
    let release = built.manifest.release.clone();
    let deb = built.image_deb();
    let out = step(
        dir,
        &[],
        &["kernel", "install", "ue1", "--release", &release, &deb],
    );
    assert!(
        out.contains(&format!("running {release} with MPTCP on")),
        "{out}"
    );
    let uname = step(dir, &[], &["exec", "ue1", "--", "uname", "-r"]);
    assert_eq!(uname.trim(), release);

    drop(guard);
    assert_eq!(leftovers(name, "lab"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    not(lab_libvirt),
    ignore = "needs root, libvirt (libvirtd, virsh, virt-xml-validate), QEMU, debootstrap and Debian's linux-source-6.1"
)]
fn destroy_after_kill_9_during_up_leaves_nothing() {
    if !testkit::require("libvirt kill -9", capabilities()) {
        return;
    }
    let _turn = turn();
    let name = "lvkill";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("Lab.toml"), lab_toml(name, None)).unwrap();
    let guard = Destroy(dir.to_path_buf(), Vec::new());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"))
        .current_dir(dir)
        .args(["up", "--provider", "libvirt", "--no-apply"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // As soon as the first domain runs: the second is being made, nothing waits for SSH yet.
    let t = Instant::now();
    while !virsh(&["list", "--name"]).contains(&format!("lab-{name}-ue1")) {
        assert!(t.elapsed().as_secs() < 900, "the domain never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(name, "lab").is_empty(),
        "the kill came too late to test anything"
    );
    drop(guard);
    assert_eq!(leftovers(name, "lab"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    not(all(lab_libvirt, lab_sshd)),
    ignore = "needs root, libvirt (libvirtd, virsh, virt-xml-validate), QEMU, OpenSSH (sshd), debootstrap and Debian's linux-source-6.1"
)]
fn the_same_lab_through_qemu_ssh() {
    if !testkit::require(
        "libvirt over qemu+ssh",
        capabilities().and_then(|()| guest::sshd::available()),
    ) {
        return;
    }
    let _turn = turn();
    let name = "lvssh";
    // A pool of its own, so the base image is uploaded over SSH here and removed afterwards.
    let pool = "labtest-remote";
    let sshd = guest::sshd::Sshd::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let uri = format!("qemu+ssh://root@127.0.0.1:{}/system", sshd.port);
    std::fs::write(dir.join("Lab.toml"), lab_toml(name, Some(&uri))).unwrap();
    let env_pool = PathBuf::from(pool);
    let env = [("LAB_LIBVIRT_POOL", env_pool.as_path())];

    // The hypervisor's machine is not lab's: its host key must be known first.
    std::fs::create_dir_all(dir.join(".lab")).unwrap();
    for ext in ["", ".pub"] {
        std::fs::copy(
            sshd.client_key.with_extension(ext.trim_start_matches('.')),
            dir.join(format!(".lab/id_ed25519{ext}")),
        )
        .unwrap();
    }
    let (code, _, err) = run_with(dir, &env, &["up", "--provider", "libvirt"]);
    assert_ne!(code, 0);
    assert!(err.contains("127.0.0.1"), "{err}");
    let pubkey = std::fs::read_to_string(sshd.dir.path().join("host_key.pub")).unwrap();
    let mut words = pubkey.split_whitespace();
    let (kind, key) = (words.next().unwrap(), words.next().unwrap());
    std::fs::write(
        dir.join(".lab/known_hosts"),
        format!("[127.0.0.1]:{} {kind} {key}\n", sshd.port),
    )
    .unwrap();

    let guard = Destroy(
        dir.to_path_buf(),
        vec![("LAB_LIBVIRT_POOL", env_pool.clone())],
    );
    let out = step(dir, &env, &["up", "--provider", "libvirt"]);
    assert!(out.contains("2 hosts up"), "{out}");
    assert!(out.contains(&format!("on {uri}")), "{out}");
    let vols = virsh(&["vol-list", "--pool", pool]);
    assert!(
        vols.contains("lab-base-"),
        "the base image was uploaded: {vols}"
    );
    mptcp_across_vms(dir, &env);
    drop(guard);
    assert_eq!(leftovers(name, pool), Vec::<String>::new());
    // The test's pool goes too (with the base image it received).
    for v in virsh(&["vol-list", "--pool", pool])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
    {
        virsh(&["vol-delete", "--pool", pool, "--vol", v]);
    }
    virsh(&["pool-destroy", pool]);
    virsh(&["pool-delete", pool]);
    virsh(&["pool-undefine", pool]);
}

/// A libvirt lab across two machines ([`common::machines`]: two namespaces with an underlay
/// between them, each with its own sshd and its own libvirtd): the server on m1 by name, the
/// client balanced onto m2, each a domain under its machine's libvirtd; three paths as links,
/// each joined across the underlay by a VXLAN tunnel of its own on both machines' bridges; lab
/// reaches the VMs through the machines. `lab test` passes with every path carrying its share
/// through its own tunnel; `lab destroy` leaves no domain, network, overlay, device or host key
/// on either machine.
#[test]
#[cfg_attr(
    not(all(lab_libvirt, lab_sshd)),
    ignore = "needs root, libvirt (libvirtd, virsh, virt-xml-validate), QEMU, OpenSSH (sshd), debootstrap and Debian's linux-source-6.1"
)]
fn a_libvirt_lab_across_two_machines() {
    if !testkit::require(
        "libvirt across machines",
        capabilities()
            .and_then(|()| guest::sshd::available())
            .and_then(|()| testkit::tool("libvirtd"))
            .and_then(|()| testkit::tool("virtlogd")),
    ) {
        return;
    }
    let _turn = turn();
    let name = "lvmm";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let machines = common::machines::Machines::start("lv", name, dir, true);
    let mut t = format!("[lab]\nname = \"{name}\"\n\n{}", machines.toml());
    for p in 1..=3 {
        t.push_str(&format!(
            "[[links]]\nname = \"path{p}\"\nendpoints = [\"srv:enp0s{n}\", \"cli:enp0s{n}\"]\n\n",
            n = [8, 9, 10][p - 1]
        ));
    }
    for (host, role, end) in [("srv", "server", 1), ("cli", "client", 2)] {
        t.push_str(&format!(
            "[hosts.{host}]\nrole = \"{role}\"\n{}\n[hosts.{host}.vm]\nmemory_mib = 1024\ncpus = 1\n\n\
             [[hosts.{host}.interfaces]]\nname = \"enp0s3\"\nnat = true\n\n",
            if host == "srv" { "machine = \"m1\"\n" } else { "" }
        ));
        for p in 1..=3 {
            let gateway = if host == "cli" {
                format!("gateway = \"10.10.{p}.1\"\n")
            } else {
                String::new()
            };
            t.push_str(&format!(
                "[[hosts.{host}.interfaces]]\nname = \"enp0s{}\"\naddress = \"10.10.{p}.{end}/24\"\n{gateway}\n",
                [8, 9, 10][p - 1]
            ));
        }
    }
    std::fs::write(dir.join("Lab.toml"), t).unwrap();
    machines.trust();

    // Dropping `machines` destroys the lab first, whatever happened.
    let out = step(dir, &[], &["up", "--provider", "libvirt"]);
    assert!(out.contains("2 hosts up"), "{out}");
    assert!(
        out.contains("on machine m1 (qemu+ssh://root@127.0.0.1:")
            && out.contains("on machine m2 (qemu+ssh://root@127.0.0.1:"),
        "placed by name and by balance: {out}"
    );
    let status = step(dir, &[], &["status"]);
    assert!(
        status.contains(&format!("lab-{name}-srv on machine m1"))
            && status.contains(&format!("lab-{name}-cli on machine m2")),
        "{status}"
    );
    // OpenSSH's client reaches a VM as lab does: through its machine (a ProxyCommand), the
    // VM's key under its alias.
    let (code, cfg, err) = run_with(dir, &[], &["ssh-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        cfg.contains("ProxyCommand") && cfg.contains(&format!("HostKeyAlias lab-{name}-srv.m1")),
        "{cfg}"
    );
    std::fs::write(dir.join("ssh_config"), &cfg).unwrap();
    for (host, end) in [("srv", 1), ("cli", 2)] {
        let o = std::process::Command::new("ssh")
            .arg("-F")
            .arg(dir.join("ssh_config"))
            .args([
                "-o",
                "BatchMode=yes",
                host,
                "ip",
                "-br",
                "address",
                "show",
                "enp0s8",
            ])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!("10.10.1.{end}/24")),
            "{host}: {cfg}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (_, pending, _) = run_with(dir, &[], &["net", "apply", "--dry-run"]);
    assert!(
        !status.contains("pending"),
        "up applied everything:\n{status}\n{pending}"
    );
    let (code, out, err) = run_with(dir, &[], &["test", "--tool", "iperf3", "--seconds", "8"]);
    eprintln!("$ lab test (exit {code})\n{out}{err}");
    assert!(out.contains("[ok] MPTCP in use"), "{out}");
    for host in ["srv", "cli"] {
        for nic in ["enp0s8", "enp0s9", "enp0s10"] {
            assert!(
                out.contains(&format!("[ok] {host} {nic}")),
                "{host} {nic}: {out}"
            );
        }
    }
    assert_eq!(code, 0, "verdict:\n{out}\n{err}");

    // On each machine: one VXLAN per path, its own VNI and port, each carrying its path.
    use guest::Exec as _;
    let ssh = [machines.ssh(0), machines.ssh(1)];
    let mut seen = Vec::new();
    for (i, m) in ssh.iter().enumerate() {
        let out = m
            .check(&guest::Command::new([
                "ip", "-d", "-s", "-json", "link", "show", "type", "vxlan",
            ]))
            .unwrap();
        let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut tunnels = Vec::new();
        for vx in links.as_array().unwrap() {
            let data = &vx["linkinfo"]["info_data"];
            let bytes = vx["stats64"]["tx"]["bytes"].as_u64().unwrap()
                + vx["stats64"]["rx"]["bytes"].as_u64().unwrap();
            assert!(
                bytes > 1_000_000,
                "m{}: {} carried {bytes} bytes",
                i + 1,
                vx["ifname"]
            );
            assert_eq!(vx["mtu"], 1450, "m{}: {}", i + 1, vx["ifname"]);
            assert!(
                vx["master"].as_str().is_some_and(|b| b.starts_with("lb")),
                "{vx}"
            );
            tunnels.push((data["id"].as_u64().unwrap(), data["port"].as_u64().unwrap()));
        }
        tunnels.sort_unstable();
        tunnels.dedup();
        assert_eq!(
            tunnels.len(),
            3,
            "m{}: one VNI and port per path: {links}",
            i + 1
        );
        seen.push(tunnels);
    }
    assert_eq!(seen[0], seen[1], "both ends of each tunnel agree");

    let (code, out, err) = run_with(dir, &[], &["destroy"]);
    assert_eq!(code, 0, "{out}{err}");
    for (i, m) in ssh.iter().enumerate() {
        let run = |args: &[&str]| {
            m.check(&guest::Command::new(args.iter().copied()))
                .unwrap()
                .stdout_lossy()
        };
        let mut left: Vec<String> = run(&["virsh", "list", "--all", "--name"])
            .lines()
            .chain(run(&["virsh", "net-list", "--all", "--name"]).lines())
            .chain(run(&["virsh", "vol-list", "--pool", "lab"]).lines())
            .filter(|l| l.contains(&format!("lab-{name}-")))
            .map(str::to_string)
            .collect();
        left.extend(
            net::devices::aliased(&run(&["ip", "-json", "link", "show"]), "lab:")
                .into_iter()
                .map(|(dev, alias)| format!("device {dev} ({alias})")),
        );
        assert_eq!(left, Vec::<String>::new(), "left on m{}", i + 1);
    }
    let known = std::fs::read_to_string(dir.join(".lab/known_hosts")).unwrap();
    assert!(
        !known.contains(&format!("lab-{name}-")),
        "VM keys kept: {known}"
    );
    drop(ssh);
    drop(machines);
}
