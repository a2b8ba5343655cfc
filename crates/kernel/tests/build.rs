//! A real kernel build: Debian's linux-source-6.1 with the tiny profile, `make bindeb-pkg`, and
//! the packages checked with dpkg-deb. Minutes, not seconds; needs the source package.

use std::path::Path;
use std::process::Command;

use kernel::build::{self, BuildSpec, Progress};
use kernel::config::Profile;

const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

#[test]
fn tiny_build_from_debian_linux_source_has_mptcp() {
    let have = if Path::new(SOURCE).is_file() {
        Ok(())
    } else {
        Err(format!("{SOURCE} is missing (Debian: linux-source-6.1)"))
    };
    if !testkit::require("kernel build", have) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let spec = BuildSpec {
        source: SOURCE.into(),
        profile: Profile::Tiny,
        work: work.path().join("work"),
        out: work.path().join("out"),
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        localversion: "-mptcp".into(),
        pkgversion: "1".into(),
    };
    let mut steps = Vec::new();
    let mut compiled = 0;
    let m = build::build(&guest::Local::new("local"), &spec, &mut |p| match p {
        Progress::Step(s) => steps.push(s),
        Progress::Compiled { done, .. } => compiled = done,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "built {} in {:.0} s, {compiled} objects: {:?}",
        m.release, m.seconds, m.packages
    );
    assert!(m.release.ends_with("-mptcp"), "{}", m.release);
    assert!(compiled > 100, "{compiled}");
    let image = m
        .packages
        .iter()
        .find(|p| {
            p.file
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("linux-image-")
        })
        .unwrap_or_else(|| panic!("no linux-image package: {:?}", m.packages));
    let name = image
        .file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        name,
        format!("linux-image-{}_1_amd64.deb", m.release),
        "stable package name"
    );
    assert!(
        !m.packages
            .iter()
            .any(|p| p.file.to_string_lossy().contains("-dbg")),
        "no dbg package"
    );
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&image.file)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains(&format!("./boot/vmlinuz-{}", m.release)),
        "{listing}"
    );
    let config = Command::new("sh")
        .arg("-c")
        .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xO \"./boot/config-$2\"")
        .args(["sh", &image.file.display().to_string(), &m.release])
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&config.stdout);
    assert!(
        config.lines().any(|l| l == "CONFIG_MPTCP=y"),
        "config in the package lacks MPTCP"
    );
    assert!(config.lines().any(|l| l == "CONFIG_VIRTIO_NET=y"));
    assert!(!config.lines().any(|l| l == "CONFIG_DEBUG_INFO=y"));
}
