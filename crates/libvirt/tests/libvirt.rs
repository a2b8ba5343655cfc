//! Rendering (golden files, and libvirt's own schemas through `virt-xml-validate`) and parsing
//! (output recorded from real virsh, fixtures/libvirt).

use libvirt::domain::{Domain, LabMeta, TapNic, VirtType};
use libvirt::network::Network;
use libvirt::virsh::{self, DomState};

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/libvirt")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn domain(virt: VirtType) -> Domain {
    Domain {
        name: "lab-mptcp-client".into(),
        uuid: None,
        virt_type: virt,
        memory_mib: 2048,
        cpus: 2,
        pool: "lab".into(),
        volume: "lab-mptcp-client.qcow2".into(),
        seed: None,
        console: "/var/log/libvirt/qemu/lab-mptcp-client.console.log".into(),
        nics: vec![
            TapNic {
                tap: "lt3f2a9c10".into(),
                mac: "52:54:00:12:34:08".into(),
                pci_slot: 8,
            },
            TapNic {
                tap: "lt3f2a9c11".into(),
                mac: "52:54:00:12:34:09".into(),
                pci_slot: 9,
            },
        ],
        qemu_args: vec![
            "-netdev".into(),
            "user,id=nat,hostfwd=tcp:127.0.0.1:42301-:22".into(),
            "-device".into(),
            "virtio-net-pci,netdev=nat,addr=0x3,mac=52:54:00:12:34:03".into(),
        ],
        meta: LabMeta {
            lab: "mptcp".into(),
            host: "client".into(),
            dir: "/home/me/labs/it's <here> & there".into(),
            ssh_address: "127.0.0.1".into(),
            ssh_port: 42301,
            user: "root".into(),
            hardware: None,
            image: Some("https://cloud-images.ubuntu.com/jammy/current/x.img?a=1&b='2'".into()),
        },
    }
}

/// A cloud image's domain: its NoCloud seed as a CD-ROM volume.
fn seeded() -> Domain {
    Domain {
        seed: Some("lab-mptcp-client-0a1b2c3d.iso".into()),
        ..domain(VirtType::Qemu)
    }
}

fn network() -> Network {
    Network {
        name: "lab-mptcp-path1".into(),
        bridge: "lb0f3a9c2e51d".into(),
    }
}

fn volume() -> libvirt::volume::Volume {
    libvirt::volume::Volume {
        name: "lab-mptcp-client-0a1b2c3d.qcow2".into(),
        capacity_bytes: 20 << 30,
        backing: Some((
            "/root/.cache/lab/images/debian-bookworm-751ce0f8/base.qcow2".into(),
            "qcow2".into(),
        )),
    }
}

#[test]
fn domain_and_network_xml() {
    insta::assert_snapshot!("volume", volume().xml());
    insta::assert_snapshot!("domain_tcg", domain(VirtType::Qemu).xml());
    insta::assert_snapshot!("domain_kvm", domain(VirtType::Kvm).xml());
    insta::assert_snapshot!("domain_seeded", seeded().xml());
    insta::assert_snapshot!("network", network().xml());
}

#[test]
fn metadata_reads_back_from_the_domain_xml() {
    let d = domain(VirtType::Qemu);
    let want = LabMeta {
        hardware: Some(d.fingerprint()),
        ..d.meta.clone()
    };
    assert_eq!(LabMeta::from_domain_xml(&d.xml()), Some(want.clone()));
    // libvirt prints it back with double quotes and its own indentation.
    let printed = d
        .xml()
        .replace('\'', "\"")
        .replace("\n    <lab:host", "\n  <lab:host");
    assert_eq!(LabMeta::from_domain_xml(&printed), Some(want));
    assert_eq!(
        LabMeta::from_domain_xml("<domain><metadata/></domain>"),
        None
    );
    // Another program's element of the same local name is not lab's.
    let other = "<metadata><lab:host xmlns:lab='https://example.org/other' lab='a' host='b' dir='c' ssh-address='d' ssh-port='1' user='e'/></metadata>";
    assert_eq!(LabMeta::from_domain_xml(other), None);
}

/// The fingerprint follows the hardware (a NIC, a MAC, memory, CPUs, the NAT forward) and
/// nothing else: not the UUID a redefinition keeps, not what lab's metadata records of it.
#[test]
fn the_fingerprint_follows_the_hardware_only() {
    let d = domain(VirtType::Qemu);
    let fp = d.fingerprint();
    assert_eq!(fp.len(), 16);
    let same = Domain {
        uuid: Some("8b4d3133-2581-43ca-863e-6f578a5cb6ec".into()),
        meta: LabMeta {
            hardware: Some("0000000000000000".into()),
            ..d.meta.clone()
        },
        ..d.clone()
    };
    assert_eq!(same.fingerprint(), fp);
    let changes: [fn(&mut Domain); 6] = [
        |d| d.memory_mib += 1,
        |d| d.cpus += 1,
        |d| d.nics[0].mac = "52:54:00:00:00:99".into(),
        |d| {
            d.nics.pop();
        },
        |d| d.qemu_args.push("-no-shutdown".into()),
        |d| d.seed = Some("seed.iso".into()),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut other = d.clone();
        change(&mut other);
        assert_ne!(other.fingerprint(), fp, "change {i}");
    }
}

fn validate(kind: &str, xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("doc.xml");
    std::fs::write(&f, xml).unwrap();
    let out = std::process::Command::new("virt-xml-validate")
        .arg(&f)
        .arg(kind)
        .output()
        .map_err(|e| format!("virt-xml-validate: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
#[cfg_attr(
    not(lab_has_virt_xml_validate),
    ignore = "needs virt-xml-validate (libvirt-clients)"
)]
fn every_document_passes_libvirts_schemas() {
    if !testkit::require("virt-xml-validate", testkit::tool("virt-xml-validate")) {
        return;
    }
    for d in [domain(VirtType::Qemu), domain(VirtType::Kvm)] {
        validate("domain", &d.xml()).unwrap();
    }
    let mut bare = domain(VirtType::Qemu);
    bare.nics.clear();
    bare.qemu_args.clear();
    validate("domain", &bare.xml()).unwrap();
    validate("domain", &seeded().xml()).unwrap();
    let mut again = domain(VirtType::Qemu);
    again.uuid = Some("8b4d3133-2581-43ca-863e-6f578a5cb6ec".into());
    validate("domain", &again.xml()).unwrap();
    validate("network", &network().xml()).unwrap();
    validate("storagevol", &volume().xml()).unwrap();
    // The check can fail: a domain without a name is not a domain.
    let broken = domain(VirtType::Qemu)
        .xml()
        .replace("<name>lab-mptcp-client</name>", "");
    assert!(validate("domain", &broken).is_err());
}

#[test]
fn parsers_read_recorded_virsh_output() {
    assert_eq!(
        virsh::volumes(&fixture("vol-list.txt")),
        ["base one.qcow2", "lab-x-a.qcow2"]
    );
    assert!(virsh::volumes("").is_empty());
    assert!(virsh::has_kvm(&fixture("capabilities.xml")));
    let without = fixture("capabilities.xml").replace("<domain type='kvm'/>", "");
    assert!(!virsh::has_kvm(&without));
    for f in [
        "domstate-missing.stderr",
        "net-missing.stderr",
        "vol-missing.stderr",
        "pool-missing.stderr",
    ] {
        assert!(virsh::not_found(&fixture(f)), "{f}");
    }
    assert!(!virsh::not_found("error: Failed to connect socket"));
    assert_eq!(DomState::parse("running\n\n"), DomState::Running);
    assert_eq!(
        DomState::parse("in shutdown\n"),
        DomState::Other("in shutdown".into())
    );
}

#[test]
fn argv_never_goes_through_a_shell() {
    let v = virsh::Virsh::new("qemu:///system");
    assert_eq!(
        v.vol_create_as(
            "lab",
            "a b.qcow2",
            1 << 30,
            "qcow2",
            Some(("base", "qcow2"))
        ),
        [
            "virsh",
            "--connect",
            "qemu:///system",
            "vol-create-as",
            "--pool",
            "lab",
            "--name",
            "a b.qcow2",
            "--capacity",
            "1073741824",
            "--format",
            "qcow2",
            "--backing-vol",
            "base",
            "--backing-vol-format",
            "qcow2"
        ]
    );
    assert_eq!(
        v.define(virsh::STDIN)[3..],
        ["define", "--file", "/dev/stdin"]
    );
}
