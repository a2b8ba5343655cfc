//! Golden argv of a lab VM, a switch and an overlay; the Debian mirror from apt's sources.

use std::path::{Path, PathBuf};

use qemu::accel::Accel;
use qemu::vm::{self, DirectBoot, SegmentNic, VmSpec};

fn spec() -> VmSpec {
    let d = PathBuf::from("/labs/x/.lab/qemu/lab-mptcp-ue1");
    let sw = PathBuf::from("/labs/x/.lab/qemu/switch/mptcp-net-ue1-ue2_v1_2");
    VmSpec {
        name: "lab-mptcp-ue1".into(),
        memory_mib: 2048,
        cpus: 2,
        accel: Accel::Tcg { why: "test".into() },
        disk: d.join("disk.qcow2"),
        disk_format: "qcow2",
        ssh_port: Some(42301),
        nat_mac: Some(vm::stable_mac("mptcp", "ue1", 3)),
        nics: [8u8, 9, 10]
            .iter()
            .map(|s| SegmentNic {
                pci_slot: *s,
                mac: vm::stable_mac("mptcp", "ue1", *s),
                switch: sw.clone(),
            })
            .collect(),
        serial_log: d.join("console.log"),
        monitor: Some(d.join("monitor.sock")),
        pidfile: Some(d.join("qemu.pid")),
        direct_boot: None,
        seed: None,
    }
}

#[test]
fn a_lab_vm() {
    insta::assert_snapshot!("vm", vm::argv(&spec()).join("\n"));
}

#[test]
fn the_image_first_boot() {
    let mut s = spec();
    s.ssh_port = None;
    s.nics.clear();
    s.monitor = None;
    s.pidfile = None;
    s.disk_format = "raw";
    s.direct_boot = Some(DirectBoot {
        kernel: "/boot/vmlinuz-6.1.0-50-amd64".into(),
        initrd: Some("/boot/initrd.img-6.1.0-50-amd64".into()),
        append: "root=/dev/vda1 rw console=ttyS0,115200n8".into(),
    });
    let a = vm::argv(&s);
    assert!(a.windows(2).any(|w| w == ["-nic", "none"]));
    assert!(a.contains(&"-no-reboot".to_string()));
    assert!(
        !a.contains(&"-daemonize".to_string()),
        "the first boot runs in the foreground"
    );
    assert!(a.iter().any(|x| x.contains("format=raw")));
}

#[test]
fn switch_overlay_and_macs() {
    assert_eq!(
        vm::switch_argv(Path::new("/s/sw"), Path::new("/s/sw.pid")).join(" "),
        "vde_switch --sock /s/sw --daemon --pidfile /s/sw.pid --mod 700"
    );
    assert_eq!(
        vm::overlay_argv(
            Path::new("/c/base.qcow2"),
            "qcow2",
            Path::new("/l/disk.qcow2"),
            None
        )
        .join(" "),
        "qemu-img create -q -f qcow2 -b /c/base.qcow2 -F qcow2 /l/disk.qcow2"
    );
    assert_eq!(
        vm::overlay_argv(
            Path::new("/c/u.img"),
            "qcow2",
            Path::new("/l/disk.qcow2"),
            Some(20)
        )
        .join(" "),
        "qemu-img create -q -f qcow2 -b /c/u.img -F qcow2 /l/disk.qcow2 20G"
    );
    let a = vm::stable_mac("mptcp", "ue1", 8);
    assert_eq!(a, vm::stable_mac("mptcp", "ue1", 8), "stable");
    assert_ne!(a, vm::stable_mac("mptcp", "ue2", 8));
    assert_ne!(a, vm::stable_mac("other", "ue1", 8));
    assert_eq!(&a[..3], &[0x52, 0x54, 0x00]);
    assert_eq!(vm::mac([0x52, 0x54, 0, 1, 0xab, 8]), "52:54:00:01:ab:08");
}

#[test]
fn the_mirror_comes_from_apt() {
    let root = tempfile::tempdir().unwrap();
    let apt = root.path().join("etc/apt/sources.list.d");
    std::fs::create_dir_all(&apt).unwrap();
    assert_eq!(qemu::image::debian_mirror(root.path(), "bookworm"), None);
    std::fs::write(
        apt.join("debian.sources"),
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
         Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\n",
    )
    .unwrap();
    assert_eq!(
        qemu::image::debian_mirror(root.path(), "bookworm").as_deref(),
        Some("http://mirror.example/debian")
    );
    std::fs::write(
        root.path().join("etc/apt/sources.list"),
        "# a comment\ndeb [arch=amd64] http://old.example/debian bookworm main\n",
    )
    .unwrap();
    assert_eq!(
        qemu::image::debian_mirror(root.path(), "bookworm").as_deref(),
        Some("http://old.example/debian"),
        "sources.list first, as apt reads it"
    );
}
