//! Downloading kernel sources from a kernel.org-like HTTP server on loopback: the layout
//! (`v6.x/`, a clearsigned `sha256sums.asc`), the check, the cache. The download's failure
//! cases are the `fetch` crate's tests.

use std::collections::HashMap;

use kernel::source::{self, SourceError};
use testkit::http::{Mode, Server, sha256_hex};

/// A real .tar.xz (made with tar) and its sums file, served under /v6.x/.
fn serve() -> (Server, Vec<u8>) {
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
    let sums = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}  linux-6.3.tar.xz\n{}  linux-6.4.tar.xz\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
        "0".repeat(64),
        sha256_hex(&bytes)
    );
    let files = HashMap::from([
        ("/v6.x/sha256sums.asc".to_string(), sums.into_bytes()),
        ("/v6.x/linux-6.4.tar.xz".to_string(), bytes.clone()),
    ]);
    (Server::start(files, &[".tar.xz"]), bytes)
}

#[test]
fn download_verifies_and_caches() {
    let (server, bytes) = serve();
    let cache = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let f = source::fetch(&server.base, "6.4", cache.path(), &mut |done, total| {
        seen = done;
        assert_eq!(total, Some(bytes.len() as u64));
    })
    .unwrap();
    assert!(!f.cached && !f.replaced);
    assert_eq!(seen, bytes.len() as u64);
    assert_eq!(f.path, cache.path().join("linux-6.4.tar.xz"));
    assert_eq!(std::fs::read(&f.path).unwrap(), bytes);
    assert_eq!(server.gets("/v6.x/linux-6.4.tar.xz"), 1);

    let again = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap();
    assert!(again.cached);
    assert_eq!(server.gets("/v6.x/linux-6.4.tar.xz"), 1);
}

#[test]
fn corrupt_download_and_unlisted_version_fail() {
    let (server, _) = serve();
    let cache = tempfile::tempdir().unwrap();
    server.set_mode(Mode::Corrupt);
    let e = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, SourceError::Fetch(fetch::Error::Mismatch { .. })),
        "{e}"
    );
    server.set_mode(Mode::Good);
    let e = source::fetch(&server.base, "6.9", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, SourceError::Fetch(fetch::Error::NotListed { .. })),
        "{e}"
    );
    let e = source::fetch(&server.base, "6.x", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, SourceError::BadVersion(_)), "{e}");
}
