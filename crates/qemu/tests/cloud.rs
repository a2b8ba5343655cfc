//! The NoCloud seed of a cloud-image VM: golden files, its place in the VM's argv, and a real
//! ISO made with genisoimage and read back with isoinfo (volume `cidata`, the three files).

use std::path::{Path, PathBuf};

use qemu::accel::Accel;
use qemu::cloud::{self, Seed};
use qemu::vm::{self, VmSpec};

fn seed(user: &str) -> Seed {
    Seed {
        instance_id: "lab-mptcp-ue1".into(),
        hostname: "ue1".into(),
        user: user.into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlab lab-qemu-images\n".into(),
        nat_mac: "52:54:00:8c:1d:03".into(),
        nat_name: "enp0s3".into(),
    }
}

#[test]
fn seed_files() {
    for (user, name) in [("root", "seed-root"), ("lab", "seed-user")] {
        let files = seed(user).files();
        let text: String = files.iter().map(|(n, t)| format!("--- {n}\n{t}")).collect();
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn the_seed_is_a_read_only_disk_of_the_vm() {
    let s = VmSpec {
        name: "lab-mptcp-ue1".into(),
        memory_mib: 1024,
        cpus: 1,
        accel: Accel::Tcg { why: "test".into() },
        disk: "/l/disk.qcow2".into(),
        disk_format: "qcow2",
        ssh_port: Some(42301),
        nat_mac: None,
        nics: Vec::new(),
        serial_log: "/l/console.log".into(),
        monitor: None,
        pidfile: None,
        direct_boot: None,
        seed: Some("/l/seed.iso".into()),
    };
    let a = vm::argv(&s);
    let at = a
        .iter()
        .position(|x| x == "id=seed,if=none,file=/l/seed.iso,format=raw,readonly=on")
        .unwrap();
    assert_eq!(a[at + 2], "virtio-blk-pci,drive=seed,addr=0x6");
}

fn tools() -> Result<(), String> {
    testkit::tool("genisoimage")?;
    testkit::tool("isoinfo")
}

#[test]
#[cfg_attr(
    not(all(lab_has_genisoimage, lab_has_isoinfo)),
    ignore = "needs genisoimage and isoinfo"
)]
fn a_real_seed_iso() {
    if !testkit::require("NoCloud seed ISO", tools()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = seed("root");
    for (name, text) in s.files() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let iso: PathBuf = dir.path().join("seed.iso");
    let argv = cloud::seed_iso_argv(dir.path(), &iso);
    let st = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .unwrap();
    assert!(st.success(), "{argv:?}");
    let info = isoinfo(&iso, &["-d"]);
    assert!(info.contains("Volume id: cidata"), "{info}");
    for (name, text) in s.files() {
        assert_eq!(
            isoinfo(&iso, &["-J", "-x", &format!("/{name}")]),
            text,
            "{name}"
        );
    }
}

fn isoinfo(iso: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("isoinfo")
        .arg("-i")
        .arg(iso)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "isoinfo {args:?}");
    String::from_utf8(out.stdout).unwrap()
}
