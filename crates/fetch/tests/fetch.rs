//! Downloads from an HTTP server on loopback: Ubuntu's SHA256SUMS layout, a corrupt and a
//! cut-short download (nothing left in the cache), a corrupt cached copy (replaced), a file the
//! sums file no longer lists (a new release: fetched again), and the offline fallback.

use std::collections::HashMap;

use testkit::http::{Mode, Server, sha256_hex};

/// These tests are about the hash and the cache; signatures are `signatures.rs`'s.
const SKIP: &fetch::Trust = &fetch::Trust::SkipSignature;

const DIR: &str = "/releases/22.04/release";
const IMG: &str = "ubuntu-22.04-server-cloudimg-amd64.img";

fn image(seed: u8) -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

fn sums(img: &[u8]) -> Vec<u8> {
    format!(
        "{} *ubuntu-22.04-server-cloudimg-amd64-disk-kvm.img\n{} *{IMG}\n",
        "1".repeat(64),
        sha256_hex(img)
    )
    .into_bytes()
}

fn serve(img: &[u8]) -> (Server, String, String) {
    let files = HashMap::from([
        (format!("{DIR}/SHA256SUMS"), sums(img)),
        (format!("{DIR}/{IMG}"), img.to_vec()),
    ]);
    let s = Server::start(files, &[".img"]);
    let url = format!("{}{DIR}/{IMG}", s.base);
    let sums_url = fetch::beside(&url, "SHA256SUMS");
    (s, url, sums_url)
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn verified_cached_replaced_and_offline() {
    let img = image(0);
    let (server, url, sums_url) = serve(&img);
    let cache = tempfile::tempdir().unwrap();
    let f = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap();
    assert!(!f.cached && !f.replaced && f.offline.is_none());
    assert_eq!(std::fs::read(&f.path).unwrap(), img);
    assert_eq!(f.sha256, sha256_hex(&img));
    assert_eq!(
        entries(cache.path()),
        [IMG.to_string(), format!("{IMG}.sha256")]
    );

    // Cached: the sums are read again, the image is not.
    let again = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap();
    assert!(again.cached);
    assert_eq!(server.gets(&format!("{DIR}/{IMG}")), 1);
    assert_eq!(server.gets(&format!("{DIR}/SHA256SUMS")), 2);

    // A cached copy that went bad is replaced, not trusted.
    std::fs::write(&f.path, &img[..1000]).unwrap();
    let fixed = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap();
    assert!(fixed.replaced && !fixed.cached);
    assert_eq!(std::fs::read(&fixed.path).unwrap(), img);

    // The mirror publishes a new build under the same name: the sums say so, lab fetches it.
    let newer = image(7);
    server.put(&format!("{DIR}/{IMG}"), newer.clone());
    server.put(&format!("{DIR}/SHA256SUMS"), sums(&newer));
    let updated = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap();
    assert!(updated.replaced);
    assert_eq!(std::fs::read(&updated.path).unwrap(), newer);

    // Offline: the copy verified before is used, and the caller hears why.
    server.set_mode(Mode::Down);
    let offline = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap();
    assert!(offline.cached);
    assert!(
        offline
            .offline
            .as_deref()
            .is_some_and(|m| m.contains("503")),
        "{offline:?}"
    );
    // ... but not a copy whose bytes changed since.
    std::fs::write(&f.path, b"tampered").unwrap();
    let e = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, fetch::Error::Download { .. }), "{e}");
}

#[test]
fn corrupt_and_cut_short_downloads_leave_nothing() {
    let img = image(1);
    let (server, url, sums_url) = serve(&img);
    let cache = tempfile::tempdir().unwrap();
    server.set_mode(Mode::Corrupt);
    let e = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, fetch::Error::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains(&sha256_hex(&img)), "{e}");
    assert!(entries(cache.path()).is_empty());

    server.set_mode(Mode::Truncated);
    let e = fetch::fetch(&url, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            e,
            fetch::Error::Download { .. } | fetch::Error::Mismatch { .. }
        ),
        "{e}"
    );
    assert!(entries(cache.path()).is_empty());

    // A file the sums do not list, and no sums at all.
    server.set_mode(Mode::Good);
    let other = url.replace(IMG, "ubuntu-22.04-server-cloudimg-arm64.img");
    let e = fetch::fetch(&other, &sums_url, SKIP, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, fetch::Error::NotListed { .. }), "{e}");
    let e = fetch::fetch(
        &url,
        &format!("{}/nowhere/SHA256SUMS", server.base),
        SKIP,
        cache.path(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, fetch::Error::Download { .. }), "{e}");
    assert!(entries(cache.path()).is_empty());
}

/// A box URL with the checksum Lab.toml pins: downloaded once, used from the cache without the
/// network after that, refused (nothing left) when the pin does not match, and a tampered
/// cached copy is fetched again.
#[test]
fn pinned_checksum() {
    let boxfile = image(3);
    let files = HashMap::from([("/boxes/deb.box".to_string(), boxfile.clone())]);
    let server = Server::start(files, &[".box"]);
    let url = format!("{}/boxes/deb.box", server.base);
    let cache = tempfile::tempdir().unwrap();
    let pin = sha256_hex(&boxfile);

    let wrong = "f".repeat(64);
    let e = fetch::fetch_pinned(&url, &wrong, cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, fetch::Error::Mismatch { .. }), "{e}");
    assert!(
        entries(cache.path()).is_empty(),
        "{:?}",
        entries(cache.path())
    );

    let got = fetch::fetch_pinned(&url, &pin.to_uppercase(), cache.path(), &mut |_, _| {}).unwrap();
    assert!(!got.cached && got.signed_by.is_none());
    assert_eq!(std::fs::read(&got.path).unwrap(), boxfile);
    assert_eq!(server.gets("/boxes/deb.box"), 2);

    server.set_mode(Mode::Down);
    let again = fetch::fetch_pinned(&url, &pin, cache.path(), &mut |_, _| {}).unwrap();
    assert!(again.cached);
    assert_eq!(server.gets("/boxes/deb.box"), 2);

    server.set_mode(Mode::Good);
    std::fs::write(&got.path, b"tampered").unwrap();
    let fixed = fetch::fetch_pinned(&url, &pin, cache.path(), &mut |_, _| {}).unwrap();
    assert!(fixed.replaced);
    assert_eq!(std::fs::read(&fixed.path).unwrap(), boxfile);
}
