//! Downloading kernel sources from a kernel.org-like HTTP server on loopback: the layout
//! (`v6.x/`, a `sha256sums.asc` clearsigned by a throwaway test key standing in for
//! kernel.org's autosigner), the check, the cache; and the pinned autosigner key itself. The
//! download's and the signature's other failure cases are the `fetch` crate's tests.

use std::collections::HashMap;

use kernel::source::{self, SourceError};
use testkit::http::{Mode, Server, sha256_hex};
use testkit::pgp::TestKey;

/// A test key as the signer lab trusts.
fn trust(key: &TestKey) -> fetch::Trust {
    fetch::Trust::Signed {
        signer: fetch::Signer {
            name: "the test autosigner".into(),
            fingerprints: vec![key.fingerprint.clone()],
            keyring: fetch::Keyring::Armored(key.armored.clone()),
            missing_hint: String::new(),
        },
        signature: fetch::Signature::Inline,
    }
}

/// A real .tar.xz (made with tar) and its sums file clearsigned by `key`, served under /v6.x/.
fn serve(key: &TestKey) -> (Server, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("linux-6.4/net/mptcp")).unwrap();
    std::fs::write(
        dir.path().join("linux-6.4/net/mptcp/Kconfig"),
        "config MPTCP\n",
    )
    .unwrap();
    let tarball = dir.path().join("linux-6.4.tar.xz");
    let ok = std::process::Command::new("tar")
        .arg("-cJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .arg("linux-6.4")
        .status()
        .unwrap();
    assert!(ok.success());
    let bytes = std::fs::read(&tarball).unwrap();
    let sums = key.clearsign(&format!(
        "{}  linux-6.3.tar.xz\n{}  linux-6.4.tar.xz\n",
        "0".repeat(64),
        sha256_hex(&bytes)
    ));
    let files = HashMap::from([
        ("/v6.x/sha256sums.asc".to_string(), sums),
        ("/v6.x/linux-6.4.tar.xz".to_string(), bytes.clone()),
    ]);
    (Server::start(files, &[".tar.xz"]), bytes)
}

fn key(test: &str, dir: &std::path::Path) -> Option<TestKey> {
    testkit::require(test, testkit::pgp::available())
        .then(|| TestKey::new(dir, "Test Autosigner <autosigner@example.invalid>"))
}

#[test]
#[cfg_attr(not(lab_gpg), ignore = "needs GnuPG (gpg, gpgv, gpgconf)")]
fn download_verifies_and_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(key) = key("download_verifies_and_caches", tmp.path()) else {
        return;
    };
    let trust = trust(&key);
    let (server, bytes) = serve(&key);
    let cache = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let f = source::fetch(
        &server.base,
        "6.4",
        &trust,
        cache.path(),
        &mut |done, total| {
            seen = done;
            assert_eq!(total, Some(bytes.len() as u64));
        },
    )
    .unwrap();
    assert!(!f.cached && !f.replaced);
    assert_eq!(
        f.signed_by.as_deref(),
        Some(format!("the test autosigner ({})", key.fingerprint).as_str())
    );
    assert_eq!(seen, bytes.len() as u64);
    assert_eq!(f.path, cache.path().join("linux-6.4.tar.xz"));
    assert_eq!(std::fs::read(&f.path).unwrap(), bytes);
    assert_eq!(server.gets("/v6.x/linux-6.4.tar.xz"), 1);

    let again = source::fetch(&server.base, "6.4", &trust, cache.path(), &mut |_, _| {}).unwrap();
    assert!(again.cached);
    assert_eq!(server.gets("/v6.x/linux-6.4.tar.xz"), 1);
}

#[test]
#[cfg_attr(not(lab_gpg), ignore = "needs GnuPG (gpg, gpgv, gpgconf)")]
fn corrupt_download_and_unlisted_version_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(key) = key("corrupt_download_and_unlisted_version_fail", tmp.path()) else {
        return;
    };
    let trust = trust(&key);
    let (server, _) = serve(&key);
    let cache = tempfile::tempdir().unwrap();
    server.set_mode(Mode::Corrupt);
    let e = source::fetch(&server.base, "6.4", &trust, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, SourceError::Fetch(fetch::Error::Mismatch { .. })),
        "{e}"
    );
    server.set_mode(Mode::Good);
    let e = source::fetch(&server.base, "6.9", &trust, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, SourceError::Fetch(fetch::Error::NotListed { .. })),
        "{e}"
    );
    let e = source::fetch(&server.base, "6.x", &trust, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, SourceError::BadVersion(_)), "{e}");
}

/// The key lab ships is kernel.org's autosigner (its fingerprint, as GnuPG reads the file), and
/// lab's default trust refuses sums signed by any other key, naming the autosigner, before the
/// tarball is fetched.
#[test]
#[cfg_attr(not(lab_gpg), ignore = "needs GnuPG (gpg, gpgv, gpgconf)")]
fn the_pinned_autosigner_key_refuses_other_signers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(key) = key(
        "the_pinned_autosigner_key_refuses_other_signers",
        tmp.path(),
    ) else {
        return;
    };
    let shown = std::process::Command::new("gpg")
        .args(["--homedir"])
        .arg(tmp.path())
        .args(["--batch", "--with-colons", "--show-keys"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/keys/kernel.org-autosigner.asc"
        ))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    let fprs: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("fpr:"))
        .filter_map(|l| l.split(':').find(|f| f.len() == 40))
        .collect();
    assert_eq!(fprs, [source::AUTOSIGNER_FINGERPRINT], "{shown}");
    assert!(shown.contains("Kernel.org checksum autosigner <autosigner@kernel.org>"));

    let (server, _) = serve(&key);
    let cache = tempfile::tempdir().unwrap();
    let e = source::fetch(
        &server.base,
        "6.4",
        &source::kernel_org(false),
        cache.path(),
        &mut |_, _| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(source::AUTOSIGNER_FINGERPRINT) && msg.contains(&key.fingerprint[24..]),
        "{msg}"
    );
    assert_eq!(server.gets("/v6.x/linux-6.4.tar.xz"), 0);
    // --insecure-skip-signature: the hash alone, and the result says it is unsigned.
    let f = source::fetch(
        &server.base,
        "6.4",
        &source::kernel_org(true),
        cache.path(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(f.signed_by, None);
}
