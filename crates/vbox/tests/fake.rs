//! The fake VBoxManage itself: it accepts what lab's builders produce, rejects what the
//! real one rejects, and keeps state like the real one (in process, no PATH games).

use std::path::Path;

use vbox::args::{self, Attachment, Control, Forward, Nic, Settings};
use vbox::fake::{self, Fault, FaultKind, World};
use vbox::{Version, parse};

fn run(dir: &Path, call: &vbox::Call) -> fake::Reply {
    fake::run(dir, &call.args)
}

fn ok(dir: &Path, call: &vbox::Call) -> String {
    let r = run(dir, call);
    assert_eq!(r.code, 0, "{call}: {}{}", r.stdout, r.stderr);
    r.stdout
}

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
                mac: Some([8, 0, 0x27, 1, 2, 3]),
            },
        ],
    }
}

fn create(dir: &Path, base: &Path, version: &str, vm: &str) {
    let q = Version::parse(version).unwrap().quirks();
    let disk = base.join(vm).join(format!("{vm}.vdi"));
    ok(dir, &args::createvm(vm, "/lab-t", "Ubuntu_64", base));
    ok(dir, &args::modifyvm(q, vm, &settings()));
    ok(dir, &args::createmedium_disk(&disk, 20480));
    ok(dir, &args::storagectl_sata(vm));
    ok(dir, &args::attach_disk(vm, &disk));
    ok(dir, &args::attach_empty_dvd(vm));
}

#[test]
fn a_vm_lives_and_dies_in_both_releases() {
    for version in ["6.1.38_Ubuntur153438", "7.0.14r161095", "7.1.4r165100"] {
        let t = tempfile::tempdir().unwrap();
        let (dir, base) = (t.path().join("world"), t.path().join("vms"));
        World::create(&dir, version).unwrap();
        create(&dir, &base, version, "vm1");
        let info = parse::showvminfo(&ok(&dir, &args::showvminfo("vm1"))).unwrap();
        assert_eq!(info.state, parse::State::PowerOff, "{version}");
        assert_eq!(info.groups, ["/lab-t"]);
        assert_eq!(info.nics[0].forwards, [Forward::ssh(42201)]);
        assert_eq!(info.nics[1].mac.as_deref(), Some("080027010203"));
        assert_eq!(info.nics[1].intnet.as_deref(), Some("ue1-ue2_v1_2"));

        ok(&dir, &args::startvm("vm1"));
        assert_eq!(parse::list(&ok(&dir, &args::list_runningvms())).len(), 1);
        // Settings cannot change while it runs: the session holds the lock.
        let q = Version::parse(version).unwrap().quirks();
        let r = run(&dir, &args::natpf_delete(q, "vm1", 1, "ssh"));
        assert_eq!(parse::error(&r.stderr).kind, parse::ErrorKind::Locked);
        let r = run(&dir, &args::unregistervm_delete("vm1"));
        assert_eq!(parse::error(&r.stderr).kind, parse::ErrorKind::Locked);
        ok(&dir, &args::controlvm("vm1", Control::PowerOff));
        ok(&dir, &args::natpf_delete(q, "vm1", 1, "ssh"));
        ok(&dir, &args::natpf_add(q, "vm1", 1, &Forward::ssh(42202)));
        ok(&dir, &args::snapshot_take("vm1", "fresh"));
        assert_eq!(
            parse::snapshots(&ok(&dir, &args::snapshot_list("vm1"))),
            ["fresh"]
        );
        ok(&dir, &args::snapshot_restore("vm1", "fresh"));
        assert!(base.join("vm1/vm1.vdi").exists());
        ok(&dir, &args::unregistervm_delete("vm1"));
        assert!(
            !base.join("vm1").exists(),
            "--delete removes the VM's files"
        );
        let r = run(&dir, &args::showvminfo("vm1"));
        assert_eq!(parse::error(&r.stderr).kind, parse::ErrorKind::NotFound);
    }
}

#[test]
fn the_grammar_is_the_releases() {
    let t = tempfile::tempdir().unwrap();
    let (dir, base) = (t.path().join("world"), t.path().join("vms"));
    World::create(&dir, "6.1.38_Ubuntur153438").unwrap();
    ok(&dir, &args::createvm("vm1", "/lab-t", "Ubuntu_64", &base));
    // 7.x spelling on 6.1: unknown option, exit 2 like RTGetOpt's syntax errors.
    let seven = Version::parse("7.0.14r161095").unwrap().quirks();
    let r = run(&dir, &args::modifyvm(seven, "vm1", &settings()));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(parse::error(&r.stderr).kind, parse::ErrorKind::Syntax);
    for bad in [
        vec!["modifyvm", "vm1", "--nic9", "nat"],
        vec!["modifyvm", "vm1", "--nic2", "wifi"],
        vec!["modifyvm", "vm1", "--memory", "lots"],
        vec!["createvm", "--name", "x", "--ostype", "Plan9", "--register"],
        vec!["startvm", "vm1", "--type", "fancy"],
        vec!["frobnicate"],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let r = fake::run(&dir, &args);
        assert_ne!(r.code, 0, "{bad:?} was accepted");
    }
}

#[test]
fn faults_and_changes_behind_labs_back() {
    let t = tempfile::tempdir().unwrap();
    let (dir, base) = (t.path().join("world"), t.path().join("vms"));
    World::create(&dir, "7.0.14r161095").unwrap();
    create(&dir, &base, "7.0.14r161095", "vm1");
    World::update(&dir, |w| {
        w.faults.push(Fault {
            subcommand: "startvm".into(),
            kind: FaultKind::Locked,
            times: 2,
        });
    })
    .unwrap();
    for _ in 0..2 {
        let r = run(&dir, &args::startvm("vm1"));
        assert_eq!(parse::error(&r.stderr).kind, parse::ErrorKind::Locked);
    }
    ok(&dir, &args::startvm("vm1"));
    World::update(&dir, |w| w.vms[0].inaccessible = true).unwrap();
    let listed = parse::list(&ok(&dir, &args::list_vms()));
    assert_eq!(listed[0].name, None);
    World::update(&dir, |w| w.vms.clear()).unwrap();
    assert!(parse::list(&ok(&dir, &args::list_vms())).is_empty());
    let calls = World::load(&dir).unwrap().calls;
    assert!(calls.iter().any(|c| c[0] == "storageattach"));
}
