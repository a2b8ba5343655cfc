//! Golden argv of every operation, for both spellings of modifyvm (6.1 and 7.x), and the
//! runner's error handling on recorded output through the scripted fake seam.

use std::path::Path;
use std::time::Duration;

use guest::{Fake, Output};
use vbox::args::{self, Attachment, Control, Forward, Nic, Settings, Unattended};
use vbox::{Error, VBoxManage, Version};

fn settings() -> Settings {
    Settings {
        memory_mib: 2048,
        cpus: 2,
        nics: vec![
            Nic {
                slot: 1,
                attachment: Attachment::Nat(vec![Forward::ssh(42201)]),
                mac: None,
            },
            Nic {
                slot: 2,
                attachment: Attachment::IntNet("ue1-ue2_v1_2".into()),
                mac: Some([0x08, 0x00, 0x27, 0xa0, 0xe1, 0x02]),
            },
            Nic {
                slot: 3,
                attachment: Attachment::IntNet("ue1-ue2_v1_2".into()),
                mac: None,
            },
            Nic {
                slot: 5,
                attachment: Attachment::None,
                mac: None,
            },
        ],
    }
}

fn all_calls(version: &str) -> String {
    let q = Version::parse(version).unwrap().quirks();
    let base = Path::new("/home/student/mptcp/.lab/vbox");
    let vm = "lab-mptcp-ue1";
    let disk = base.join(vm).join("lab-mptcp-ue1.vdi");
    let calls = [
        args::version(),
        args::list_vms(),
        args::list_runningvms(),
        args::showvminfo(vm),
        args::createvm(vm, "/lab-mptcp", "Ubuntu_64", base),
        args::modifyvm(q, vm, &settings()),
        args::createmedium_disk(&disk, 20480),
        args::storagectl_sata(vm),
        args::attach_disk(vm, &disk),
        args::attach_empty_dvd(vm),
        args::unattended_install(
            vm,
            &Unattended {
                iso: "/home/student/.cache/lab/images/ubuntu-22.04.5-live-server-amd64.iso".into(),
                user: "lab".into(),
                password_file: "/home/student/mptcp/.lab/vm-password".into(),
                hostname: "ue1.lab.internal".into(),
                post_install_command: "echo 'ssh-ed25519 AAAA lab' > /target/root/key".into(),
            },
        ),
        args::clonevm("ubuntu-base", Some("clean"), vm, "/lab-mptcp", base),
        args::clonevm("ubuntu-base", None, vm, "/lab-mptcp", base),
        args::import(Path::new("/srv/ubuntu 22.04.ova"), vm, "/lab-mptcp", base),
        args::natpf_delete(q, vm, 1, "ssh"),
        args::natpf_add(q, vm, 1, &Forward::ssh(42299)),
        args::startvm(vm),
        args::controlvm(vm, Control::AcpiPowerButton),
        args::controlvm(vm, Control::PowerOff),
        args::snapshot_take(vm, "fresh"),
        args::snapshot_restore(vm, "fresh"),
        args::snapshot_list(vm),
        args::guestproperty_wait(vm, args::GUEST_IP, 60_000),
        args::guestproperty_get(vm, args::GUEST_IP),
        args::unregistervm_delete(vm),
    ];
    calls
        .iter()
        .map(|c| format!("{}{c}\n", if c.mutates() { "" } else { "(read) " }))
        .collect()
}

#[test]
fn golden_argv_7x() {
    insta::assert_snapshot!("calls-7.0", all_calls("7.0.14r161095"));
}

#[test]
fn golden_argv_6_1() {
    let text = all_calls("6.1.38_Ubuntur153438");
    assert!(text.contains("--nicpromisc2 allow-all") && !text.contains("--nic-promisc"));
    insta::assert_snapshot!("calls-6.1", text);
}

#[test]
fn forward_round_trip() {
    for s in ["ssh,tcp,127.0.0.1,2222,,22", "dns,udp,,5353,10.0.2.15,53"] {
        assert_eq!(Forward::parse(s).unwrap().to_string(), s);
    }
    assert_eq!(Forward::parse("a,b,tcp,0.0.0.0,2200,,22"), None);
    assert_eq!(Forward::parse("x,sctp,,1,,2"), None);
}

fn vbm(fake: &Fake) -> VBoxManage<'_> {
    let mut v = VBoxManage::new(fake, "VBoxManage");
    v.lock_backoff = Duration::from_millis(1);
    v
}

fn argv(args: &[&str]) -> Vec<String> {
    let mut v = vec!["env", "LC_ALL=C", "LANG=C", "VBoxManage"];
    v.extend(args);
    v.into_iter().map(String::from).collect()
}

fn recorded(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/vbox")
            .join(name),
    )
    .unwrap()
}

#[test]
fn lock_errors_are_retried_then_reported() {
    let start = argv(&["startvm", "lab-mptcp-ue1", "--type", "headless"]);
    let locked = Output::failed(1, recorded("error-locked-startvm.txt"));
    let fake = Fake::new("host")
        .expect(&start, locked.clone())
        .expect(&start, locked.clone())
        .expect(
            &start,
            Output::ok("VM \"lab-mptcp-ue1\" has been successfully started.\n"),
        );
    vbm(&fake).run(&args::startvm("lab-mptcp-ue1")).unwrap();
    fake.finish().unwrap();

    let mut fake = Fake::new("host");
    for _ in 0..3 {
        fake = fake.expect(&start, locked.clone());
    }
    let mut v = vbm(&fake);
    v.lock_attempts = 3;
    let e = v.run(&args::startvm("lab-mptcp-ue1")).unwrap_err();
    assert!(matches!(e, Error::Locked { attempts: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("already locked by a session"), "{e}");
    fake.finish().unwrap();
}

#[test]
fn failures_are_typed() {
    let show = argv(&["showvminfo", "lab-mptcp-ue3", "--machinereadable"]);
    let fake = Fake::new("host").expect(&show, Output::failed(1, recorded("error-not-found.txt")));
    assert_eq!(
        vbm(&fake).show("lab-mptcp-ue3").unwrap(),
        None,
        "not found is an answer"
    );

    let start = argv(&["startvm", "lab-mptcp-ue1", "--type", "headless"]);
    let driver = recorded("error-driver.txt");
    let (warning, stderr) = driver.split_at(driver.find("Waiting").unwrap());
    let fake = Fake::new("host").expect(
        &start,
        Output {
            status: guest::Status::Code(1),
            stdout: warning.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        },
    );
    let e = vbm(&fake).run(&args::startvm("lab-mptcp-ue1")).unwrap_err();
    assert!(e.to_string().contains("sudo /sbin/vboxconfig"), "{e}");

    let fake = Fake::new("host").expect(
        &start,
        Output::failed(127, "env: 'VBoxManage': No such file or directory\n"),
    );
    assert!(matches!(
        vbm(&fake).run(&args::startvm("lab-mptcp-ue1")),
        Err(Error::NotInstalled { .. })
    ));

    // Exit 0 with an error on stderr is still a failure.
    let fake = Fake::new("host").expect(
        &start,
        Output {
            status: guest::Status::Code(0),
            stdout: Vec::new(),
            stderr: recorded("error-access-denied.txt").into_bytes(),
        },
    );
    assert!(matches!(
        vbm(&fake).run(&args::startvm("lab-mptcp-ue1")),
        Err(Error::AccessDenied { .. })
    ));

    let version = argv(&["--version"]);
    let fake =
        Fake::new("host").expect(&version, Output::ok(recorded("version-driver-warning.txt")));
    let v = vbm(&fake);
    assert_eq!(v.version().unwrap().to_string(), "6.1.50r161033");
    // Asked once.
    assert_eq!(v.version().unwrap().minor, 1);
    fake.finish().unwrap();
}
