//! Signed sums files, served on loopback and signed by throwaway keys: Ubuntu's layout
//! (`SHA256SUMS` with a detached `SHA256SUMS.gpg`) and kernel.org's (a clearsigned
//! `sha256sums.asc`). A good signature passes; a sums file changed after signing, a signature by
//! another key, a missing signature and lines outside the signed text all stop the download
//! before the file is fetched, with an error naming the keys.

use std::collections::HashMap;

use fetch::{Error, Keyring, Signature, Signer, Trust, pgp::SigError};
use testkit::http::{Mode, Server, sha256_hex};
use testkit::pgp::TestKey;

const DIR: &str = "/releases/24.04/release";
const IMG: &str = "ubuntu-24.04-server-cloudimg-amd64.img";

fn keys(test: &str, dir: &std::path::Path) -> Option<(TestKey, TestKey)> {
    testkit::require(test, testkit::pgp::available()).then(|| {
        (
            TestKey::new(dir, "Pinned Publisher <pinned@example.invalid>"),
            TestKey::new(dir, "Someone Else <mallory@example.invalid>"),
        )
    })
}

fn signer(key: &TestKey, keyring: Keyring) -> Signer {
    Signer {
        name: "the pinned publisher".into(),
        fingerprints: vec![key.fingerprint.clone()],
        keyring,
        missing_hint: "Install the publisher's keyring package".into(),
    }
}

fn ubuntu(server: &Server, key: &TestKey) -> Trust {
    Trust::Signed {
        signer: signer(key, Keyring::File(key.keyring.clone())),
        signature: Signature::Detached(format!("{}{DIR}/SHA256SUMS.gpg", server.base)),
    }
}

fn serve(img: &[u8], sums: &[u8], sig: Option<Vec<u8>>) -> Server {
    let mut files = HashMap::from([
        (format!("{DIR}/SHA256SUMS"), sums.to_vec()),
        (format!("{DIR}/{IMG}"), img.to_vec()),
    ]);
    if let Some(sig) = sig {
        files.insert(format!("{DIR}/SHA256SUMS.gpg"), sig);
    }
    Server::start(files, &[".img"])
}

#[test]
#[cfg_attr(not(lab_gpg), ignore = "needs GnuPG (gpg, gpgv, gpgconf)")]
fn detached_signatures_ubuntu_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((pinned, other)) = keys("detached_signatures_ubuntu_layout", tmp.path()) else {
        return;
    };
    let img = b"a cloud image".repeat(1000);
    let sums = format!("{} *{IMG}\n", sha256_hex(&img)).into_bytes();
    let server = serve(&img, &sums, Some(pinned.detach_sign(&sums)));
    let url = format!("{}{DIR}/{IMG}", server.base);
    let sums_url = fetch::beside(&url, "SHA256SUMS");
    let cache = tempfile::tempdir().unwrap();

    // Good: signed by the pinned key.
    let trust = ubuntu(&server, &pinned);
    let f = fetch::fetch(&url, &sums_url, &trust, cache.path(), &mut |_, _| {}).unwrap();
    assert_eq!(
        f.signed_by.as_deref(),
        Some(format!("the pinned publisher ({})", pinned.fingerprint).as_str())
    );
    assert_eq!(std::fs::read(&f.path).unwrap(), img);
    assert_eq!(server.gets(&format!("{DIR}/{IMG}")), 1);

    // Offline, the copy verified with a signature is still good for a signed fetch.
    server.set_mode(Mode::Down);
    let offline = fetch::fetch(&url, &sums_url, &trust, cache.path(), &mut |_, _| {}).unwrap();
    assert!(offline.offline.is_some() && offline.signed_by.is_some());
    server.set_mode(Mode::Good);

    // The sums file changed after signing (a new hash for the image): BAD signature, nothing
    // downloaded, the cached copy untouched.
    let evil = b"an evil image".repeat(1000);
    server.put(&format!("{DIR}/{IMG}"), evil.clone());
    server.put(
        &format!("{DIR}/SHA256SUMS"),
        format!("{} *{IMG}\n", sha256_hex(&evil)).into_bytes(),
    );
    let fresh = tempfile::tempdir().unwrap();
    let e = fetch::fetch(&url, &sums_url, &trust, fresh.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Signature(SigError::Bad { .. })), "{e}");
    assert!(e.to_string().contains(&pinned.fingerprint[24..]), "{e}");
    assert_eq!(server.gets(&format!("{DIR}/{IMG}")), 1);

    // Re-signed by another key: refused, naming that key and the pinned one.
    let evil_sums = format!("{} *{IMG}\n", sha256_hex(&evil)).into_bytes();
    server.put(
        &format!("{DIR}/SHA256SUMS.gpg"),
        other.detach_sign(&evil_sums),
    );
    let e = fetch::fetch(&url, &sums_url, &trust, fresh.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, Error::Signature(SigError::WrongSigner { .. })),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&other.fingerprint[24..]) && msg.contains(&pinned.fingerprint),
        "{msg}"
    );
    assert_eq!(server.gets(&format!("{DIR}/{IMG}")), 1);

    // No signature at all: the .gpg is missing.
    let unsigned = serve(&img, &sums, None);
    let url2 = format!("{}{DIR}/{IMG}", unsigned.base);
    let e = fetch::fetch(
        &url2,
        &fetch::beside(&url2, "SHA256SUMS"),
        &ubuntu(&unsigned, &pinned),
        fresh.path(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("SHA256SUMS.gpg"), "{e}");
    assert_eq!(unsigned.gets(&format!("{DIR}/{IMG}")), 0);

    // The pinned key's keyring file is not on this machine: the error says what to install.
    let missing = Trust::Signed {
        signer: signer(
            &pinned,
            Keyring::File(tmp.path().join("no-such-keyring.gpg")),
        ),
        signature: Signature::Detached(format!("{}{DIR}/SHA256SUMS.gpg", server.base)),
    };
    let e = fetch::fetch(&url, &sums_url, &missing, fresh.path(), &mut |_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-keyring.gpg")
            && msg.contains("Install the publisher's keyring package")
            && msg.contains("--insecure-skip-signature"),
        "{msg}"
    );

    // --insecure-skip-signature: the hash alone, and the result says so.
    let f = fetch::fetch(
        &url,
        &sums_url,
        &Trust::SkipSignature,
        fresh.path(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(f.signed_by, None);
    assert_eq!(std::fs::read(&f.path).unwrap(), evil);
    // ... and that copy is not good enough for a signed fetch while offline.
    server.set_mode(Mode::Down);
    let e = fetch::fetch(&url, &sums_url, &trust, fresh.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::OfflineUnsigned { .. }), "{e}");
}

#[test]
#[cfg_attr(not(lab_gpg), ignore = "needs GnuPG (gpg, gpgv, gpgconf)")]
fn clearsigned_kernel_org_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((pinned, other)) = keys("clearsigned_kernel_org_layout", tmp.path()) else {
        return;
    };
    let tarball = b"linux sources".repeat(500);
    let name = "linux-6.4.tar.xz";
    let signed = pinned.clearsign(&format!(
        "{}  linux-6.3.tar.xz\n{}  {name}\n",
        "0".repeat(64),
        sha256_hex(&tarball)
    ));
    let files = HashMap::from([
        ("/v6.x/sha256sums.asc".to_string(), signed.clone()),
        (format!("/v6.x/{name}"), tarball.clone()),
        (
            "/v6.x/linux-6.5.tar.xz".to_string(),
            b"unsigned release".to_vec(),
        ),
    ]);
    let server = Server::start(files, &[".tar.xz"]);
    let url = format!("{}/v6.x/{name}", server.base);
    let sums_url = format!("{}/v6.x/sha256sums.asc", server.base);
    let trust = |key: &TestKey| Trust::Signed {
        signer: signer(key, Keyring::Armored(key.armored.clone())),
        signature: Signature::Inline,
    };
    let cache = tempfile::tempdir().unwrap();
    let f = fetch::fetch(
        &url,
        &sums_url,
        &trust(&pinned),
        cache.path(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(f.signed_by.is_some());
    assert_eq!(std::fs::read(&f.path).unwrap(), tarball);

    // A line appended after the signature lists another file: it is not signed, so not read.
    let mut appended = signed.clone();
    appended.extend(format!("{}  linux-6.5.tar.xz\n", sha256_hex(b"unsigned release")).bytes());
    server.put("/v6.x/sha256sums.asc", appended);
    let e = fetch::fetch(
        &url.replace("6.4", "6.5"),
        &sums_url,
        &trust(&pinned),
        cache.path(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotListed { .. }), "{e}");

    // A hash changed inside the signed text.
    let text = String::from_utf8(signed.clone()).unwrap();
    let tampered = text.replace(&"0".repeat(64), &"1".repeat(64));
    server.put("/v6.x/sha256sums.asc", tampered.into_bytes());
    let e = fetch::fetch(&url, &sums_url, &trust(&pinned), tmp.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Signature(SigError::Bad { .. })), "{e}");

    // Signed by the wrong key; and not signed at all.
    server.put("/v6.x/sha256sums.asc", signed);
    let e = fetch::fetch(&url, &sums_url, &trust(&other), tmp.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, Error::Signature(SigError::WrongSigner { .. })),
        "{e}"
    );
    assert!(e.to_string().contains(&other.fingerprint), "{e}");
    server.put(
        "/v6.x/sha256sums.asc",
        format!("{}  {name}\n", sha256_hex(&tarball)).into_bytes(),
    );
    let e = fetch::fetch(&url, &sums_url, &trust(&pinned), tmp.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, Error::Signature(SigError::Unsigned { .. })),
        "{e}"
    );
}
