//! Downloading kernel sources from a kernel.org-like HTTP server on loopback: a good tarball, a
//! corrupt one, a cut-short one, the cache, and a corrupt cached copy.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use kernel::source::{self, SourceError};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    Corrupt,
    Truncated,
}

struct Server {
    base: String,
    mode: Arc<Mutex<Mode>>,
    tarball_gets: Arc<Mutex<u32>>,
}

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
    let hash: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sums = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}  linux-6.3.tar.xz\n{hash}  linux-6.4.tar.xz\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
        "0".repeat(64)
    );
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    files.insert("/v6.x/sha256sums.asc".into(), sums.into_bytes());
    files.insert("/v6.x/linux-6.4.tar.xz".into(), bytes.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(Mode::Good));
    let gets = Arc::new(Mutex::new(0));
    let (m, g) = (mode.clone(), gets.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let Some(body) = files.get(&path) else {
                let _ = conn.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let mut body = body.clone();
            let mut length = body.len();
            if path.ends_with(".tar.xz") {
                *g.lock().unwrap() += 1;
                match *m.lock().unwrap() {
                    Mode::Good => {}
                    Mode::Corrupt => {
                        let k = body.len() / 2;
                        body[k] ^= 0xff;
                    }
                    Mode::Truncated => {
                        length = body.len();
                        body.truncate(body.len() / 2);
                    }
                }
            }
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    std::mem::forget(dir);
    (
        Server {
            base,
            mode,
            tarball_gets: gets,
        },
        bytes,
    )
}

#[test]
fn download_verifies_caches_and_recovers() {
    let (server, bytes) = serve();
    let cache = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let f = source::fetch(&server.base, "6.4", cache.path(), &mut |done, total| {
        seen = done;
        assert_eq!(total, Some(bytes.len() as u64));
    })
    .unwrap();
    assert!(!f.cached && !f.replaced_corrupt);
    assert_eq!(seen, bytes.len() as u64);
    assert_eq!(std::fs::read(&f.path).unwrap(), bytes);
    assert_eq!(*server.tarball_gets.lock().unwrap(), 1);

    // Again: from the cache, no download.
    let again = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap();
    assert!(again.cached);
    assert_eq!(*server.tarball_gets.lock().unwrap(), 1);

    // A cached copy that went bad (a half-written file from an older tool, a disk error) is
    // replaced, not trusted.
    std::fs::write(&f.path, &bytes[..bytes.len() / 3]).unwrap();
    let fixed = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap();
    assert!(fixed.replaced_corrupt && !fixed.cached);
    assert_eq!(std::fs::read(&fixed.path).unwrap(), bytes);
}

#[test]
fn corrupt_and_cut_short_downloads_leave_nothing() {
    let (server, _) = serve();
    let cache = tempfile::tempdir().unwrap();
    *server.mode.lock().unwrap() = Mode::Corrupt;
    let e = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, SourceError::Mismatch { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "no file, no .part"
    );

    *server.mode.lock().unwrap() = Mode::Truncated;
    let e = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::Download { .. } | SourceError::Mismatch { .. }
        ),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "no file, no .part"
    );

    // A version the sums file does not list.
    *server.mode.lock().unwrap() = Mode::Good;
    let e = source::fetch(&server.base, "6.9", cache.path(), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::Download { .. } | SourceError::NotListed { .. }
        ),
        "{e}"
    );
    let ok = source::fetch(&server.base, "6.4", cache.path(), &mut |_, _| {}).unwrap();
    assert!(!ok.cached);
}
