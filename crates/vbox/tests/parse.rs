//! The parsers on the recordings in fixtures/vbox (sources in its README).

use vbox::parse::{self, ErrorKind, State};
use vbox::version::Version;

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/vbox")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn versions() {
    let v = Version::parse(&fixture("version-7.0.14.txt")).unwrap();
    assert_eq!(
        (v.major, v.minor, v.patch, v.revision),
        (7, 0, 14, Some(161095))
    );
    assert!(v.supported() && v.quirks().hyphenated_options);
    assert_eq!(v.to_string(), "7.0.14r161095");

    let v = Version::parse(&fixture("version-6.1.38-ubuntu.txt")).unwrap();
    assert_eq!(v.vendor.as_deref(), Some("Ubuntu"));
    assert_eq!(v.revision, Some(153438));
    assert!(v.supported() && !v.quirks().hyphenated_options);
    assert_eq!(v.to_string(), "6.1.38_Ubuntur153438");

    // The wrapper's vboxdrv warning comes first and is skipped.
    let v = Version::parse(&fixture("version-driver-warning.txt")).unwrap();
    assert_eq!((v.major, v.minor, v.patch), (6, 1, 50));

    assert!(!Version::parse("5.2.44r139111").unwrap().supported());
    assert!(!Version::parse("7.2.0r170228").unwrap().supported());
    assert!(
        !Version::parse("7.0.0r153978")
            .unwrap()
            .quirks()
            .forwards_in_showvminfo
    );
    assert_eq!(Version::parse("WARNING: nothing else"), None);
    assert_eq!(Version::parse("7.0"), None);
}

#[test]
fn showvminfo_running_7_0() {
    let info = parse::showvminfo(&fixture("showvminfo-7.0-running.txt")).unwrap();
    assert_eq!(info.name.as_deref(), Some("lab-mptcp-ue1"));
    assert_eq!(info.state, State::Running);
    assert!(info.state.is_on());
    assert_eq!(info.groups, ["/lab-mptcp"]);
    assert_eq!((info.memory_mib, info.cpus), (Some(2048), Some(2)));
    insta::assert_debug_snapshot!("running-7.0-nics", info.nics);
    assert_eq!(
        info.media,
        [
            (
                "SATA-0-0".to_string(),
                "/home/student/mptcp/.lab/vbox/lab-mptcp-ue1/lab-mptcp-ue1.vdi".to_string()
            ),
            ("SATA-1-0".to_string(), "emptydrive".to_string()),
        ]
    );
}

#[test]
fn showvminfo_poweroff_6_1_with_a_multiline_description() {
    let info = parse::showvminfo(&fixture("showvminfo-6.1-poweroff.txt")).unwrap();
    assert_eq!(info.state, State::PowerOff);
    assert!(!info.state.is_on());
    let nat = &info.nics[0];
    assert_eq!(nat.forwards.len(), 2);
    assert_eq!(
        nat.forwards[1].to_string(),
        "iperf,tcp,,5201,10.0.2.15,5201"
    );
    assert_eq!(info.nics[2].cable_connected, Some(false));
    assert_eq!(info.nics.len(), 4, "nic5..8 are none");
    assert_eq!(info.current_snapshot.as_deref(), Some("fresh"));
    let kv = parse::machine_readable(&fixture("showvminfo-6.1-poweroff.txt"));
    let description = kv.iter().find(|(k, _)| k == "description").unwrap();
    assert_eq!(
        description.1,
        "MPTCP testbed, client.\nBuilt by \"lab up\"; see C:\\labs\\notes.txt\n"
    );
    // The key after the multi-line value is read as a key again.
    assert!(
        kv.iter()
            .any(|(k, v)| k == "GuestMemoryBalloon" && v == "0")
    );
}

#[test]
fn showvminfo_saved_aborted_inaccessible_and_7_0_0() {
    let saved = parse::showvminfo(&fixture("showvminfo-7.0-saved.txt")).unwrap();
    assert_eq!(saved.state, State::Saved);
    assert!(!saved.state.is_on());

    let aborted = parse::showvminfo(&fixture("showvminfo-7.1-aborted.txt")).unwrap();
    assert_eq!(aborted.state, State::Aborted);
    assert_eq!(aborted.groups, ["/lab-mptcp", "/teaching"]);

    let gone = parse::showvminfo(&fixture("showvminfo-inaccessible.txt")).unwrap();
    assert_eq!(gone.state, State::Inaccessible);
    assert_eq!(gone.name, None);
    assert_eq!(gone.uuid, "c0ffee00-1234-4abc-8def-001122334455");

    // 7.0.0: a line that is not key=value, and no Forwarding lines.
    let old = parse::showvminfo(&fixture("showvminfo-7.0.0-encryption.txt")).unwrap();
    assert_eq!(old.state, State::PowerOff);
    assert_eq!(old.nics.len(), 1);
    assert!(old.nics[0].forwards.is_empty());

    assert!(parse::showvminfo("garbage").is_err());
}

#[test]
fn lists() {
    let vms = parse::list(&fixture("list-vms.txt"));
    insta::assert_debug_snapshot!("list-vms", vms);
    let running = parse::list(&fixture("list-runningvms.txt"));
    assert_eq!(running.len(), 1);
    // The vboxdrv warning is not a VM.
    assert!(parse::list(&fixture("version-driver-warning.txt")).is_empty());
}

#[test]
fn snapshots_and_guest_properties() {
    assert_eq!(
        parse::snapshots(&fixture("snapshot-list.txt")),
        ["fresh", "after-kernel", "after-net"]
    );
    assert_eq!(
        parse::guestproperty(&fixture("guestproperty-get.txt")).as_deref(),
        Some("10.0.2.15")
    );
    assert_eq!(
        parse::guestproperty(&fixture("guestproperty-none.txt")),
        None
    );
}

#[test]
fn errors_are_classified() {
    let cases = [
        (
            "error-not-found.txt",
            ErrorKind::NotFound,
            Some("VBOX_E_OBJECT_NOT_FOUND"),
        ),
        (
            "error-locked-startvm.txt",
            ErrorKind::Locked,
            Some("VBOX_E_INVALID_OBJECT_STATE"),
        ),
        (
            "error-locked-unregister.txt",
            ErrorKind::Locked,
            Some("VBOX_E_INVALID_OBJECT_STATE"),
        ),
        (
            "error-access-denied.txt",
            ErrorKind::AccessDenied,
            Some("E_ACCESSDENIED"),
        ),
        (
            "error-access-denied-no-details.txt",
            ErrorKind::AccessDenied,
            Some("E_ACCESSDENIED"),
        ),
        (
            "error-driver.txt",
            ErrorKind::Driver,
            Some("NS_ERROR_FAILURE"),
        ),
        ("error-unknown-option.txt", ErrorKind::Syntax, None),
    ];
    for (file, kind, code) in cases {
        let e = parse::error(&fixture(file));
        assert_eq!(e.kind, kind, "{file}");
        assert_eq!(e.code.as_deref(), code, "{file}");
        assert!(!e.message.is_empty(), "{file}");
    }
    assert_eq!(
        parse::error(&fixture("error-not-found.txt")).message,
        "Could not find a registered machine named 'lab-mptcp-ue3'"
    );
}
