//! `lab up|status|halt|snapshot|destroy --provider virtualbox` against the fake VBoxManage.
//!
//! This test binary is also the fake: run under the name `VBoxManage` (a symlink put first
//! on PATH), it answers as `vbox::fake` does. VirtualBox itself never runs here. Each VM the
//! fake starts gets an sshd on its forwarded loopback port that accepts the lab's key and
//! answers `true`, `uname -r` and `hostname` only, so lab's wait for SSH is real and nothing
//! can configure this machine.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use vbox::fake::{Fault, FaultKind, World};

mod common;

fn main() {
    let me = std::env::args().next().unwrap_or_default();
    if Path::new(&me)
        .file_name()
        .is_some_and(|n| n == "VBoxManage")
    {
        std::process::exit(vbox::fake::main());
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // (name, test, whether this machine can run it: sshd for the flows that log in).
    let sshd = cfg!(all(lab_sshd, lab_has_root));
    let tests: &[(&str, fn(), bool)] = &[
        (
            "dry_run_prints_the_guides_two_vms",
            dry_run_prints_the_guides_two_vms,
            true,
        ),
        (
            "up_adopt_halt_snapshot_destroy",
            up_adopt_halt_snapshot_destroy,
            sshd,
        ),
        ("virtualbox_6_1_spelling", virtualbox_6_1_spelling, sshd),
        ("failures_name_their_fix", failures_name_their_fix, true),
        (
            "box_dry_run_shows_import_snapshot_and_linked_clones",
            box_dry_run_shows_import_snapshot_and_linked_clones,
            true,
        ),
        (
            "box_imported_once_then_linked_clones",
            box_imported_once_then_linked_clones,
            sshd,
        ),
    ];
    let (mut passed, mut ignored) = (0, 0);
    let mut failed = Vec::new();
    for (name, f, runnable) in tests {
        if !filters.is_empty() && !filters.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        // As libtest reports an ignored test: not run, the reason named, not counted as passed.
        if !runnable {
            println!("test {name} ... ignored, needs root and OpenSSH (sshd, ssh, ssh-keygen)");
            ignored += 1;
            continue;
        }
        print!("test {name} ... ");
        match std::panic::catch_unwind(f) {
            Ok(()) => {
                println!("ok");
                passed += 1;
            }
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(101);
    }
}

/// A private VirtualBox: the fake's world, PATH with the fake first, a lab directory.
struct Rig {
    tmp: tempfile::TempDir,
    world: PathBuf,
    bin: PathBuf,
    lab: PathBuf,
}

impl Rig {
    fn new(version: &str, image: &str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let world = tmp.path().join("world");
        World::create(&world, version).unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        symlink(std::env::current_exe().unwrap(), bin.join("VBoxManage")).unwrap();
        let lab = tmp.path().join("lab");
        std::fs::create_dir_all(&lab).unwrap();
        // The built-in lab (the guide's two VMs), from a base VM, logging in as root.
        let toml = lab::Preset::Builtin.source().replace(
            "disk_gib = 20\n",
            &format!("disk_gib = 20\nimage = \"{image}\"\nuser = \"root\"\n"),
        );
        assert_eq!(toml.matches(image).count(), 2, "both VMs");
        std::fs::write(lab.join("Lab.toml"), toml).unwrap();
        Rig {
            tmp,
            world,
            bin,
            lab,
        }
    }

    /// A base VM with a disk and a snapshot `clean`, to clone.
    fn base_vm(&self) {
        let run = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let r = vbox::fake::run(&self.world, &args);
            assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        };
        let base = self.tmp.path().join("base");
        let disk = base.join("ubuntu-base/ubuntu-base.vdi");
        let (b, d) = (base.display().to_string(), disk.display().to_string());
        run(&[
            "createvm",
            "--name",
            "ubuntu-base",
            "--ostype",
            "Ubuntu_64",
            "--basefolder",
            &b,
            "--register",
        ]);
        run(&["createmedium", "disk", "--filename", &d, "--size", "20480"]);
        run(&[
            "storagectl",
            "ubuntu-base",
            "--name",
            "SATA",
            "--add",
            "sata",
        ]);
        run(&[
            "storageattach",
            "ubuntu-base",
            "--storagectl",
            "SATA",
            "--port",
            "0",
            "--device",
            "0",
            "--type",
            "hdd",
            "--medium",
            &d,
        ]);
        run(&["snapshot", "ubuntu-base", "take", "clean"]);
    }

    fn lab(&self, args: &[&str]) -> (i32, String, String) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut all = args.to_vec();
        let toml = self.lab.join("Lab.toml");
        let toml = toml.to_str().unwrap();
        all.extend(["--lab", toml]);
        let out = assert_cmd::Command::cargo_bin("lab")
            .unwrap()
            .current_dir(&self.lab)
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .env(vbox::fake::DIR_ENV, &self.world)
            // Each rig is a machine of its own: its own index of labs, its own cache (boxes).
            .env("XDG_STATE_HOME", self.world.join("state"))
            .env("XDG_CACHE_HOME", self.world.join("cache"))
            .env("VAGRANT_HOME", self.tmp.path().join("vagrant"))
            .env(vbox::fake::KEYS_ENV, self.lab.join(".lab/id_ed25519.pub"))
            .args(&all)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            unwrap_report(&String::from_utf8_lossy(&out.stderr)),
        )
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let (code, out, err) = self.lab(args);
        assert_eq!(code, 0, "lab {args:?}\nstdout:\n{out}\nstderr:\n{err}");
        (out, err)
    }

    fn world(&self) -> World {
        World::load(&self.world).unwrap()
    }

    fn calls(&self, sub: &str) -> usize {
        self.world().calls.iter().filter(|c| c[0] == sub).count()
    }
}

impl Drop for Rig {
    /// Whatever happened, the lab is destroyed and no stand-in sshd outlives the test (ended by
    /// the PIDs the fake recorded, which it started).
    fn drop(&mut self) {
        // Whatever the test left up (also namespaces, should a step have fallen back to the
        // default provider) goes with the rig.
        let _ = self.lab(&["destroy"]);
        if let Ok(w) = World::load(&self.world) {
            for vm in w.vms {
                if let Some(pid) = vm.sshd_pid {
                    let _ = std::process::Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                }
            }
        }
    }
}

/// miette's report, which wraps lines to the terminal, without its frame and line breaks:
/// lines joined with single spaces, and a word broken after `/` joined again.
fn unwrap_report(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let t = line
            .trim_start()
            .trim_start_matches(['│', '×', '╰', '─', '▶'])
            .trim();
        if t.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with('/') {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

fn have_sshd() -> bool {
    let have = testkit::tool("ssh-keygen").and_then(|()| {
        if Path::new("/usr/sbin/sshd").is_file() {
            Ok(())
        } else {
            Err("/usr/sbin/sshd is missing (Debian: openssh-server)".into())
        }
    });
    testkit::require(
        "VirtualBox provider flow (fake VBoxManage, real sshd)",
        have,
    )
}

fn uname_r() -> String {
    String::from_utf8(
        std::process::Command::new("uname")
            .arg("-r")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string()
}

/// The README's promise: the guide's two VMs, as VBoxManage commands, without VirtualBox.
fn dry_run_prints_the_guides_two_vms() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        common::run_in(dir.path(), &["up", "--provider", "virtualbox", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let calls: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("VBoxManage "))
        .collect();
    assert_eq!(calls.len(), 14, "{out}");
    for vm in ["lab-mptcp-ue1", "lab-mptcp-ue2"] {
        let of: Vec<&&str> = calls.iter().filter(|c| c.contains(vm)).collect();
        assert!(of[0].starts_with(&format!(
            "VBoxManage createvm --name {vm} --groups /lab-mptcp"
        )));
        let modify = of.iter().find(|c| c.contains(" modifyvm ")).unwrap();
        for want in [
            "--memory 2048",
            "--cpus 2",
            "--nic1 nat",
            "--nic2 intnet --intnet2 ue1-ue2_v1_2 --nic-promisc2 allow-all",
            "--nic3 intnet --intnet3 ue1-ue2_v1_2",
            "--nic4 intnet --intnet4 ue1-ue2_v1_2",
        ] {
            assert!(modify.contains(want), "{want} missing in {modify}");
        }
        assert!(
            of.iter()
                .any(|c| c.contains("createmedium disk") && c.contains("--size 20480"))
        );
        let install = of.last().unwrap();
        assert!(install.contains("unattended install"));
        // The VM user's password is the lab's own, read from a file, never on the command line.
        let file = dir.path().join(".lab/vm-password");
        assert!(
            install.contains(&format!("--password-file={}", file.display())),
            "{install}"
        );
        assert!(!install.contains("--password="), "{install}");
    }
    assert!(!dir.path().join(".lab/vm-password").exists());
    // Nothing was created: no state, no VM folder.
    assert!(!dir.path().join(".lab/mptcp.vbox.json").exists());
    assert!(!dir.path().join(".lab/vbox").exists());
}

fn up_adopt_halt_snapshot_destroy() {
    if !have_sshd() {
        return;
    }
    let rig = Rig::new("7.0.14r161095", "vbox:ubuntu-base@clean");
    rig.base_vm();
    // A VM that is not the lab's: it must survive everything below.
    let foreign = rig.tmp.path().join("foreign");
    let r = vbox::fake::run(
        &rig.world,
        &[
            "createvm",
            "--name",
            "student-vm",
            "--basefolder",
            foreign.to_str().unwrap(),
            "--register",
        ]
        .map(String::from),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Up: two linked clones, configured as the guide's VMs, started, reached over SSH.
    let (out, err) = rig.ok(&["up", "--provider", "virtualbox", "--no-apply"]);
    let kernel = uname_r();
    for host in ["ue1", "ue2"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{host}:")))
            .unwrap();
        assert!(
            line.contains("created") && line.contains("reachable after"),
            "{out}"
        );
        // The kernel comes from `uname -r` over SSH (here: the stand-in's host).
        assert!(line.contains(&format!("kernel {kernel}")), "{out}\n{err}");
    }
    let w = rig.world();
    for name in ["lab-mptcp-ue1", "lab-mptcp-ue2"] {
        let vm = w.vm(name).unwrap();
        assert_eq!(vm.state, "running");
        assert_eq!(vm.groups, ["/lab-mptcp"]);
        assert_eq!((vm.memory, vm.cpus), (2048, 2));
        assert_eq!(vm.nics[&1].kind, "nat");
        assert_eq!(vm.nics[&1].forwards.len(), 1);
        for slot in 2..=4 {
            assert_eq!(vm.nics[&slot].kind, "intnet");
            assert_eq!(vm.nics[&slot].intnet.as_deref(), Some("ue1-ue2_v1_2"));
            assert_eq!(vm.nics[&slot].promisc, "allow-all");
        }
        assert!(vm.folder.starts_with(rig.lab.join(".lab/vbox")));
    }
    assert_eq!(rig.calls("clonevm"), 2);

    // The NAT NIC is no MPTCP path: nothing lab applies names enp0s3.
    let (plan, _) = rig.ok(&["net", "render", "--host", "ue1"]);
    assert!(
        !plan.contains("enp0s3") || !plan.contains("mptcp endpoint add 10.0.2"),
        "{plan}"
    );
    assert!(
        plan.lines()
            .filter(|l| l.contains("mptcp endpoint add"))
            .all(|l| !l.contains("enp0s3")),
        "{plan}"
    );

    // Status.
    let (status, _) = rig.ok(&["status"]);
    assert!(
        status.contains("lab-mptcp-ue1") && status.contains("running"),
        "{status}"
    );

    // A second up adopts: nothing is created, nothing is started again.
    let (out, _) = rig.ok(&["up", "--no-apply"]);
    assert_eq!(out.matches("adopted").count(), 2, "{out}");
    assert_eq!(rig.calls("clonevm"), 2);
    assert_eq!(rig.calls("startvm"), 2);

    // Lab.toml asks for more memory while the VMs run: refused before anything changes.
    let toml = rig.lab.join("Lab.toml");
    let original = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        original.replacen("memory_mib = 2048", "memory_mib = 3072", 1),
    )
    .unwrap();
    let modifies = rig.calls("modifyvm");
    let (code, out, err) = rig.lab(&["up", "--no-apply"]);
    assert_eq!(code, 2, "{out}{err}");
    let err = common::flat(&err);
    assert!(
        err.contains("memory 2048 -> 3072 MiB")
            && err.contains("a running VM cannot take that; nothing was changed"),
        "{err}"
    );
    assert_eq!(rig.calls("modifyvm"), modifies);

    // Halt, then up again while another session holds ue1 twice: retried, not failed.
    let (out, _) = rig.ok(&["halt"]);
    assert!(out.contains("halted"), "{out}");
    assert!(rig.world().vms.iter().all(|v| v.state != "running"));
    World::update(&rig.world, |w| {
        w.faults.push(Fault {
            subcommand: "startvm".into(),
            kind: FaultKind::Locked,
            times: 2,
        })
    })
    .unwrap();
    // ue1's SSH port is taken by someone else meanwhile: the forward moves.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rig.lab.join(".lab/mptcp.vbox.json")).unwrap())
            .unwrap();
    let old_port = state["vms"]["ue1"]["ssh_port"].as_u64().unwrap() as u16;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", old_port)).unwrap();
    let (out, err) = rig.ok(&["up", "--no-apply"]);
    assert!(err.contains(&format!("port {old_port} is taken")), "{err}");
    let line = out.lines().find(|l| l.starts_with("ue1:")).unwrap();
    assert!(!line.contains(&format!(":{old_port},")), "{line}");
    assert!(line.contains("reachable after"), "{line}");
    assert_eq!(
        rig.calls("startvm"),
        2 + 2 + 2,
        "two lock errors, then both VMs"
    );
    drop(squatter);
    // The powered-off VM took the new memory before it started.
    assert!(err.contains("reconfiguring lab-mptcp-ue1"), "{err}");
    let memories: Vec<u32> = ["lab-mptcp-ue1", "lab-mptcp-ue2"]
        .iter()
        .map(|n| rig.world().vm(n).unwrap().memory)
        .collect();
    assert_eq!(memories, [3072, 2048]);

    // Snapshots.
    rig.ok(&["snapshot", "save", "fresh"]);
    assert!(
        rig.world()
            .vms
            .iter()
            .filter(|v| v.name.starts_with("lab-"))
            .all(|v| v.snapshots == ["fresh"])
    );
    let (out, _) = rig.ok(&["snapshot", "restore", "fresh"]);
    assert!(out.contains("reachable again"), "{out}");

    // ue2 deleted behind lab's back: the next up recreates it and adopts ue1.
    World::update(&rig.world, |w| {
        let i = w
            .vms
            .iter()
            .position(|v| v.name == "lab-mptcp-ue2")
            .unwrap();
        let vm = w.vms.remove(i);
        if let Some(pid) = vm.sshd_pid {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    })
    .unwrap();
    let (out, _) = rig.ok(&["up", "--no-apply"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ue2:") && l.contains("created")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ue1:") && l.contains("adopted")),
        "{out}"
    );

    // ue2 leaves Lab.toml (its tables close the file): `up` removes its VM, adopts ue1.
    let now = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, &now[..now.find("[hosts.ue2]").unwrap()]).unwrap();
    let (out, err) = rig.ok(&["up", "--no-apply"]);
    assert!(
        err.contains("ue2: no longer a VirtualBox host in Lab.toml: VM lab-mptcp-ue2 removed"),
        "{err}"
    );
    assert!(out.contains("adopted") && !out.contains("ue2:"), "{out}");
    assert!(rig.world().vm("lab-mptcp-ue2").is_none());

    // Destroy without the state file: found by group; disks and folders gone; the
    // student's VM stays.
    std::fs::remove_file(rig.lab.join(".lab/mptcp.vbox.json")).unwrap();
    let (out, _) = rig.ok(&["destroy", "--provider", "virtualbox"]);
    assert!(out.contains("lab-mptcp-ue1"), "{out}");
    let w = rig.world();
    let left: Vec<&str> = w.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(left, ["ubuntu-base", "student-vm"]);
    assert!(!rig.lab.join(".lab/vbox/lab-mptcp-ue1").exists());
    assert!(!rig.lab.join(".lab/vbox/lab-mptcp-ue2").exists());
    let (out, _) = rig.ok(&["destroy", "--provider", "virtualbox"]);
    assert!(out.contains("nothing to remove"), "{out}");
}

/// VirtualBox 6.1 knows only the old option names; the fake refuses the new ones, so this
/// passes only if lab spells modifyvm for the release it finds.
fn virtualbox_6_1_spelling() {
    if !have_sshd() {
        return;
    }
    let rig = Rig::new("6.1.38_Ubuntur153438", "vbox:ubuntu-base");
    rig.base_vm();
    let (out, _) = rig.ok(&["up", "--provider", "virtualbox", "--dry-run"]);
    assert!(
        out.contains("--nicpromisc2 allow-all") && !out.contains("--nic-promisc"),
        "{out}"
    );
    assert!(
        out.contains("clonevm ubuntu-base --name lab-mptcp-ue1"),
        "{out}"
    );
    rig.ok(&["up", "--provider", "virtualbox", "--no-apply"]);
    let modify = rig
        .world()
        .calls
        .iter()
        .filter(|c| c[0] == "modifyvm")
        .count();
    assert_eq!(modify, 2);
    rig.ok(&["destroy"]);
    assert_eq!(rig.world().vms.len(), 1);
}

fn failures_name_their_fix() {
    let rig = Rig::new("7.0.14r161095", "vbox:ubuntu-base@clean");
    rig.base_vm();
    World::update(&rig.world, |w| {
        w.faults.push(Fault {
            subcommand: "startvm".into(),
            kind: FaultKind::Driver,
            times: 1,
        })
    })
    .unwrap();
    let (code, _, err) = rig.lab(&["up", "--provider", "virtualbox", "--no-apply"]);
    assert_ne!(code, 0);
    assert!(err.contains("sudo /sbin/vboxconfig"), "{err}");
    rig.lab(&["destroy", "--provider", "virtualbox"]);

    let old = Rig::new("5.2.44r139111", "vbox:ubuntu-base");
    let (code, _, err) = old.lab(&["up", "--provider", "virtualbox", "--no-apply"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("5.2.44") && err.contains("6.1 to 7.1"),
        "{err}"
    );

    // An ISO that is not there: the message says where to put it.
    let iso = Rig::new("7.0.14r161095", "/nonexistent/ubuntu.iso");
    let (code, _, err) = iso.lab(&["up", "--provider", "virtualbox", "--no-apply"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("/nonexistent/ubuntu.iso") && err.contains("releases.ubuntu.com"),
        "{err}"
    );
    assert!(iso.world().vms.is_empty(), "nothing created");
}

/// A virtualbox box as `vagrant package` makes one (the disk is a stand-in: the fake never
/// reads it), at `path`.
fn virtualbox_box(path: &Path) {
    let stage = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("metadata.json", "{\"provider\": \"virtualbox\"}\n"),
        ("box.ovf", "<?xml version=\"1.0\"?>\n<Envelope/>\n"),
        ("box-disk001.vmdk", "stand-in disk\n"),
        ("Vagrantfile", "Vagrant.configure(\"2\") do |config|\nend\n"),
    ] {
        std::fs::write(stage.path().join(name), text).unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(path)
        .arg("-C")
        .arg(stage.path())
        .args([
            "metadata.json",
            "box.ovf",
            "box-disk001.vmdk",
            "Vagrantfile",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The issue's promise for boxes on VirtualBox, without VirtualBox: the box unpacked, its
/// box.ovf imported once as a base VM with a snapshot, a linked clone per host. Also for a box
/// in Vagrant's home (nothing to unpack).
fn box_dry_run_shows_import_snapshot_and_linked_clones() {
    let rig = Rig::new("7.0.14r161095", "boxes/deb.box");
    virtualbox_box(&rig.lab.join("boxes/deb.box"));
    let (out, _) = rig.ok(&["up", "--provider", "virtualbox", "--dry-run"]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let tar: Vec<&&str> = lines.iter().filter(|l| l.starts_with("tar -xf ")).collect();
    assert_eq!(tar.len(), 1, "unpacked once: {out}");
    assert!(tar[0].contains("boxes/deb.box"), "{out}");
    let import: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("VBoxManage import "))
        .collect();
    assert_eq!(import.len(), 1, "imported once for both hosts: {out}");
    assert!(
        import[0].contains("/box.ovf --vsys 0 --vmname lab-box-deb-")
            && import[0].contains("--group /lab-boxes"),
        "{out}"
    );
    let base = import[0]
        .split("--vmname ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        lines.contains(&format!("VBoxManage snapshot {base} take lab-base").as_str()),
        "{out}"
    );
    for vm in ["lab-mptcp-ue1", "lab-mptcp-ue2"] {
        let clone = format!(
            "VBoxManage clonevm {base} --snapshot lab-base --options link --name {vm} --groups /lab-mptcp"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(&clone)),
            "{clone}\n{out}"
        );
    }
    // Nothing was made: no state, no unpacked box, no VM.
    assert!(!rig.lab.join(".lab/mptcp.vbox.json").exists());
    assert!(!rig.world.join("cache/lab/boxes").exists());
    assert_eq!(rig.calls("import"), 0);

    // A box Vagrant keeps (the newest version for virtualbox): imported from where it is.
    let home = rig.tmp.path().join("vagrant/boxes/test-VAGRANTSLASH-deb");
    for v in ["1.0.0", "1.2.0"] {
        let d = home.join(v).join("virtualbox");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("metadata.json"), "{\"provider\": \"virtualbox\"}").unwrap();
    }
    let toml = rig.lab.join("Lab.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("boxes/deb.box", "test/deb")).unwrap();
    let (out, _) = rig.ok(&["up", "--provider", "virtualbox", "--dry-run"]);
    assert!(!out.contains("tar -xf"), "{out}");
    let want = format!(
        "VBoxManage import {} --vsys 0 --vmname lab-box-test_deb-1.2.0-virtualbox --group /lab-boxes",
        home.join("1.2.0/virtualbox/box.ovf").display()
    );
    assert!(
        out.lines().any(|l| l.trim().starts_with(&want)),
        "{want}\n{out}"
    );
    // One that is not there names the fix.
    std::fs::write(&toml, text.replace("boxes/deb.box", "test/deb@9.9")).unwrap();
    let (code, _, err) = rig.lab(&["up", "--provider", "virtualbox", "--dry-run"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("test/deb@9.9") && err.contains("vagrant box add"),
        "{err}"
    );
}

/// `up` against the fake: the box's base VM imported once (group /lab-boxes, snapshot
/// lab-base), the hosts linked clones of it, reached over SSH; `destroy` leaves the base VM
/// (as Vagrant keeps its master VM) and the next `up` clones it again without importing.
fn box_imported_once_then_linked_clones() {
    if !have_sshd() {
        return;
    }
    let rig = Rig::new("7.0.14r161095", "boxes/deb.box");
    virtualbox_box(&rig.lab.join("boxes/deb.box"));
    rig.ok(&["up", "--provider", "virtualbox", "--no-apply"]);
    let w = rig.world();
    let base = w
        .vms
        .iter()
        .find(|v| v.name.starts_with("lab-box-deb-"))
        .unwrap();
    assert_eq!(base.groups, ["/lab-boxes"]);
    assert_eq!(base.snapshots, ["lab-base"]);
    assert!(base.folder.starts_with(rig.world.join("cache/lab/boxes")));
    for name in ["lab-mptcp-ue1", "lab-mptcp-ue2"] {
        let vm = w.vm(name).unwrap();
        assert_eq!(vm.state, "running");
        assert_eq!(vm.groups, ["/lab-mptcp"]);
    }
    assert_eq!((rig.calls("import"), rig.calls("clonevm")), (1, 2));
    let clones: Vec<&Vec<String>> = w.calls.iter().filter(|c| c[0] == "clonevm").collect();
    for c in clones {
        assert_eq!(c[1], base.name);
        assert!(c.windows(2).any(|p| p == ["--options", "link"]), "{c:?}");
    }

    let (out, _) = rig.ok(&["destroy"]);
    assert!(out.contains("lab-mptcp-ue1"), "{out}");
    let w = rig.world();
    assert!(w.vm("lab-mptcp-ue1").is_none());
    assert!(w.vms.iter().any(|v| v.name.starts_with("lab-box-deb-")));
    let (out, err) = rig.ok(&["up", "--provider", "virtualbox", "--no-apply"]);
    assert_eq!(
        (rig.calls("import"), rig.calls("clonevm")),
        (1, 4),
        "{out}{err}"
    );
    rig.ok(&["destroy"]);
}
