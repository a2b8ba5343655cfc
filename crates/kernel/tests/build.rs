//! A real kernel build: Debian's linux-source-6.1 with the tiny profile, `make bindeb-pkg`, and
//! the packages checked with dpkg-deb. Minutes, not seconds; needs the source package.

use std::path::Path;
use std::process::Command;

use kernel::build::{self, BuildSpec};
use kernel::config::Profile;

const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

fn have_source(test: &str) -> bool {
    let have = if Path::new(SOURCE).is_file() {
        Ok(())
    } else {
        Err(format!("{SOURCE} is missing (Debian: linux-source-6.1)"))
    };
    testkit::require(test, have)
}

/// The tiny build, shared with the QEMU end-to-end test (testkit::kernel: built once per
/// target directory, by whichever test runs first).
#[test]
#[cfg_attr(not(lab_has_linux_source), ignore = "needs Debian's linux-source-6.1")]
fn tiny_build_from_debian_linux_source_has_mptcp() {
    if !have_source("kernel build") {
        return;
    }
    let built = testkit::kernel::tiny().unwrap_or_else(|e| panic!("{e}"));
    let m = built.manifest;
    eprintln!(
        "{} {} in {:.0} s, {} objects: {:?}",
        if built.fresh { "built" } else { "reused" },
        m.release,
        m.seconds,
        m.objects,
        m.packages
    );
    assert!(m.release.ends_with("-mptcp"), "{}", m.release);
    // From scratch (CI) that is thousands; a rebuild after lab's fragment changed compiles only
    // what the changed options touch (kbuild tracks each file's CONFIG_ dependencies).
    assert!(m.objects > 0, "{}", m.objects);
    assert_eq!(
        m.ccache,
        testkit::which("ccache").is_some(),
        "ccache when installed"
    );
    // The count is remembered: the next build of this version and profile has an estimate.
    let history_file = m
        .log
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("history.json");
    let history: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(&history_file).unwrap()).unwrap();
    let recorded = history.get(&format!("{} tiny", m.release.trim_end_matches("-mptcp")));
    if m.objects > 100 {
        assert_eq!(recorded, Some(&m.objects), "{history:?}");
    } else {
        // Incremental: the from-scratch figure stays.
        assert!(recorded.is_some_and(|r| *r > m.objects), "{history:?}");
    }
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
    assert!(
        config.lines().any(|l| l == "CONFIG_HW_RANDOM_VIRTIO=y"),
        "the VM's virtio RNG"
    );
    assert!(
        config.lines().any(|l| l == "CONFIG_INPUT_EVDEV=y"),
        "ACPI's power button for logind"
    );
    assert!(!config.lines().any(|l| l == "CONFIG_DEBUG_INFO=y"));
}

/// `running` starts from this machine's own kernel config (/boot/config-RELEASE or
/// /proc/config.gz); `localmod` trims a config to the modules an `lsmod` lists, with the real
/// streamline_config.pl. Both end with MPTCP on and the release free of the base's suffix.
#[test]
#[cfg_attr(not(lab_has_linux_source), ignore = "needs Debian's linux-source-6.1")]
fn running_and_localmod_profiles_configure_with_mptcp() {
    if !have_source("kernel config") {
        return;
    }
    let host = guest::Local::new("local");
    let running = match kernel::config::running(&host) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                testkit::require("kernel config", Err(format!("no running config: {e}"))),
                "unreachable"
            );
            return;
        }
    };
    assert!(running.text.contains("CONFIG_"), "{}", running.origin);
    let work = tempfile::tempdir().unwrap();
    let spec = |profile| {
        BuildSpec::new(
            SOURCE.into(),
            profile,
            work.path().join("work"),
            work.path().join("out"),
        )
    };
    let c = build::prepare(
        &host,
        &spec(Profile::Given {
            origin: running.origin.clone(),
            text: running.text.clone(),
        }),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.version.starts_with("6.1."), "{}", c.version);
    assert_eq!(kernel::config::check(&c.text), Ok(()));
    assert_eq!(
        kernel::config::value(&c.text, "CONFIG_LOCALVERSION"),
        Some("\"\""),
        "the base's own suffix would end up in the release"
    );

    // A base with four modules, of which lsmod lists two.
    let mut base: String = running
        .text
        .lines()
        .filter(|l| {
            !["VETH", "NET_SCH_NETEM", "DUMMY", "BONDING", "MODULES"]
                .iter()
                .any(|o| l.contains(&format!("CONFIG_{o}=")) || l.contains(&format!("CONFIG_{o} ")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    base.push_str(
        "CONFIG_MODULES=y\nCONFIG_VETH=m\nCONFIG_NET_SCH_NETEM=m\nCONFIG_DUMMY=m\nCONFIG_BONDING=m\n",
    );
    let lsmod = "Module                  Size  Used by\n\
                 veth                   40960  0\n\
                 sch_netem              20480  1\n";
    let c = build::prepare(
        &host,
        &spec(Profile::LocalMod {
            origin: "test".into(),
            base,
            lsmod: lsmod.into(),
        }),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v = |o| kernel::config::value(&c.text, o);
    assert_eq!(kernel::config::check(&c.text), Ok(()));
    assert_eq!(v("CONFIG_VETH"), Some("m"), "listed by lsmod: kept");
    assert_eq!(
        v("CONFIG_NET_SCH_NETEM"),
        Some("m"),
        "listed by lsmod: kept"
    );
    assert_eq!(v("CONFIG_DUMMY"), Some("n"), "not listed: dropped");
    assert_eq!(v("CONFIG_BONDING"), Some("n"), "not listed: dropped");
}
