//! The install plan against the scripted fake: every command in order, the GRUB edit, and the
//! verification after the reboot. (The real reboot is tested against a VM later.)

mod common;

use common::fixture;
use std::path::{Path, PathBuf};
use std::time::Duration;

use guest::{Fake, Output};
use kernel::install::{self, InstallError};

fn debs(dir: &Path) -> Vec<PathBuf> {
    [
        "linux-libc-dev_1_amd64.deb",
        "linux-image-6.4.0-mptcp_1_amd64.deb",
    ]
    .iter()
    .map(|n| {
        let p = dir.join(n);
        std::fs::write(&p, format!("deb {n}")).unwrap();
        p
    })
    .collect()
}

/// A guest with Ubuntu's menu that expects the upload directory and `dpkg -i` of both
/// packages, image first.
fn installing(default_grub: &str) -> Fake {
    Fake::new("ue1")
        .with_file("/boot/grub/grub.cfg", fixture("ubuntu-22.04.cfg"))
        .with_file("/etc/default/grub", default_grub)
        .expect(&["mkdir", "-p", "/var/cache/lab/kernel"], Output::ok(""))
        .expect(
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "dpkg",
                "-i",
                "/var/cache/lab/kernel/linux-image-6.4.0-mptcp_1_amd64.deb",
                "/var/cache/lab/kernel/linux-libc-dev_1_amd64.deb",
            ],
            Output::ok(""),
        )
}

const BOOT_ID: &[&str] = &["cat", "/proc/sys/kernel/random/boot_id"];

fn guest(running: &str, mptcp: Output) -> Fake {
    installing("GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n")
        .expect(&["update-grub"], Output::ok(""))
        .expect(BOOT_ID, Output::ok("1111\n"))
        .expect(&["systemctl", "reboot"], Output::failed(255, ""))
        .expect(BOOT_ID, Output::ok("2222\n"))
        .expect(&["uname", "-r"], Output::ok(format!("{running}\n")))
        .expect(&["cat", "/proc/sys/net/mptcp/enabled"], mptcp)
}

#[test]
fn install_plan_in_order_with_the_grub_edit() {
    let dir = tempfile::tempdir().unwrap();
    // Right after `systemctl reboot` the old boot still answers once: lab waits again until
    // the boot id changes.
    let host = installing("GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n")
        .expect(&["update-grub"], Output::ok(""))
        .expect(BOOT_ID, Output::ok("1111\n"))
        .expect(&["systemctl", "reboot"], Output::failed(255, ""))
        .expect(BOOT_ID, Output::ok("1111\n"))
        .expect(BOOT_ID, Output::ok("2222\n"))
        .expect(&["uname", "-r"], Output::ok("6.4.0-mptcp\n"))
        .expect(&["cat", "/proc/sys/net/mptcp/enabled"], Output::ok("1\n"));
    let mut waited = 0;
    let done = install::install(&host, &debs(dir.path()), "6.4.0-mptcp", false, &mut || {
        waited += 1;
        Ok(Duration::from_secs(21))
    })
    .unwrap();
    host.finish().unwrap();
    assert_eq!(waited, 2, "the old boot answered first");
    assert!(done.boot_seconds >= 1.0, "{}", done.boot_seconds);
    assert!(
        done.grub_default
            .ends_with("gnulinux-6.4.0-mptcp-advanced-3f1c2a9e-6b1d-4c55-9a0e-2d7f8e41b6a0")
    );
    let (grub, _) = host.file(Path::new("/etc/default/grub")).unwrap();
    let grub = String::from_utf8(grub).unwrap();
    assert!(
        grub.starts_with("GRUB_DEFAULT=\"gnulinux-advanced-") && grub.ends_with("GRUB_TIMEOUT=5\n"),
        "{grub}"
    );
    assert!(
        host.file(Path::new("/etc/default/grub.lab-backup"))
            .is_some()
    );
    let (deb, mode) = host
        .file(Path::new(
            "/var/cache/lab/kernel/linux-image-6.4.0-mptcp_1_amd64.deb",
        ))
        .unwrap();
    assert_eq!(
        (deb, mode.mode),
        (b"deb linux-image-6.4.0-mptcp_1_amd64.deb".to_vec(), 0o644)
    );
}

#[test]
fn a_wrong_kernel_or_missing_mptcp_after_reboot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let host = guest("5.15.0-91-generic", Output::ok("1\n"));
    let e = install::install(&host, &debs(dir.path()), "6.4.0-mptcp", false, &mut || {
        Ok(Duration::ZERO)
    })
    .unwrap_err();
    assert!(matches!(e, InstallError::WrongKernel { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("booted 5.15.0-91-generic, not 6.4.0-mptcp")
    );

    let host = guest(
        "6.4.0-mptcp",
        Output::failed(
            1,
            "cat: /proc/sys/net/mptcp/enabled: No such file or directory",
        ),
    );
    let e = install::install(&host, &debs(dir.path()), "6.4.0-mptcp", false, &mut || {
        Ok(Duration::ZERO)
    })
    .unwrap_err();
    assert!(e.to_string().contains("net.mptcp.enabled is absent"), "{e}");
}

#[test]
fn check_reports_the_running_kernel() {
    let host = Fake::new("ue1")
        .expect(&["uname", "-r"], Output::ok("5.15.0-91-generic\n"))
        .expect(&["cat", "/proc/sys/net/mptcp/enabled"], Output::ok("1\n"));
    let c = install::check(&host).unwrap();
    host.finish().unwrap();
    assert_eq!(c.release, "5.15.0-91-generic");
    assert!(
        c.has_mptcp(),
        "Ubuntu 22.04's stock kernel has MPTCP: no build needed"
    );
}

/// The safe flow: GRUB_DEFAULT=saved, one trial boot with grub-reboot, grub-set-default only
/// after the new kernel came up with MPTCP.
#[test]
fn trial_boot_then_make_it_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let id = "gnulinux-advanced-3f1c2a9e-6b1d-4c55-9a0e-2d7f8e41b6a0>gnulinux-6.4.0-mptcp-advanced-3f1c2a9e-6b1d-4c55-9a0e-2d7f8e41b6a0";
    let host = installing("GRUB_DEFAULT=0\n")
        .expect(&["update-grub"], Output::ok(""))
        .expect(&["grub-reboot", id], Output::ok(""))
        .expect(BOOT_ID, Output::ok("1111\n"))
        .expect(&["systemctl", "reboot"], Output::failed(255, ""))
        .expect(BOOT_ID, Output::ok("2222\n"))
        .expect(&["uname", "-r"], Output::ok("6.4.0-mptcp\n"))
        .expect(&["cat", "/proc/sys/net/mptcp/enabled"], Output::ok("1\n"))
        .expect(&["grub-set-default", id], Output::ok(""));
    let done = install::install(&host, &debs(dir.path()), "6.4.0-mptcp", true, &mut || {
        Ok(Duration::ZERO)
    })
    .unwrap();
    host.finish().unwrap();
    assert_eq!(done.grub_default, id);
    let (grub, _) = host.file(Path::new("/etc/default/grub")).unwrap();
    assert_eq!(String::from_utf8(grub).unwrap(), "GRUB_DEFAULT=\"saved\"\n");
}
