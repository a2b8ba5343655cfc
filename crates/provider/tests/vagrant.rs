//! Vagrant boxes as images: `.box` files and URLs made here with tar, unpacked into a cache
//! once, checked for their provider; the download of a URL verified against its pinned
//! checksum and removed once unpacked.

use std::path::{Path, PathBuf};

use provider::Event;
use provider::vagrant::BoxCache;

/// A `.box` (a tar) of `files` at `path`.
fn make_box(path: &Path, files: &[(&str, &str)]) {
    let stage = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(stage.path().join(name), text).unwrap();
    }
    let mut tar = std::process::Command::new("tar");
    tar.arg("-czf").arg(path).arg("-C").arg(stage.path());
    for (name, _) in files {
        tar.arg(name);
    }
    assert!(tar.status().unwrap().success());
}

fn libvirt_box(path: &Path) {
    make_box(
        path,
        &[
            (
                "metadata.json",
                r#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 3}"#,
            ),
            ("box.img", "not really a disk"),
        ],
    );
}

#[test]
fn a_box_file_is_unpacked_once_and_must_be_for_the_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, cache) = (tmp.path().join("lab"), tmp.path().join("cache"));
    std::fs::create_dir_all(dir.join("boxes")).unwrap();
    libvirt_box(&dir.join("boxes/deb.box"));
    let local = guest::Local::new("local");
    let boxes = BoxCache {
        dir: &dir,
        cache: &cache,
        host: &local,
        dry_run: false,
    };
    let dry = BoxCache {
        dry_run: true,
        ..boxes
    };
    let mut calls: Vec<String> = Vec::new();
    let mut seen = |e: Event| {
        if let Event::Call(c) = e {
            calls.push(c);
        }
    };

    // A dry run says what it would unpack, and unpacks nothing.
    let planned = dry
        .resolve("boxes/deb.box", None, "libvirt", &mut seen)
        .unwrap()
        .unwrap();
    assert!(!planned.dir.exists());
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].starts_with("tar -xf ") && calls[0].contains("deb.box"),
        "{calls:?}"
    );

    let b = boxes
        .resolve("boxes/deb.box", None, "libvirt", &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(b.dir, planned.dir);
    assert!(b.dir.starts_with(&cache));
    assert_eq!(
        std::fs::read_to_string(b.dir.join("box.img")).unwrap(),
        "not really a disk"
    );
    assert_eq!(b.metadata.format.as_deref(), Some("qcow2"));
    assert_eq!(b.label, "deb.box");
    assert!(b.id.starts_with("deb-"), "{}", b.id);
    // No half-unpacked directory left beside it.
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries, std::slice::from_ref(&b.dir));

    // Unpacked once: a second resolve finds it (the file in it stays as it is).
    std::fs::write(b.dir.join("marker"), "kept").unwrap();
    let again = boxes
        .resolve("boxes/deb.box", None, "libvirt", &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(again, b);
    assert!(again.dir.join("marker").is_file());

    // The VirtualBox provider cannot use a libvirt box; the error says what the box is.
    let e = boxes
        .resolve("boxes/deb.box", None, "virtualbox", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is a box for libvirt") && e.contains("virtualbox boxes"),
        "{e}"
    );

    // A tar that is not a box, and a box file that is not there.
    make_box(&dir.join("boxes/other.box"), &[("README", "hello")]);
    let e = boxes
        .resolve("boxes/other.box", None, "libvirt", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Vagrant box: no metadata.json"), "{e}");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "nothing of it left"
    );
    let e = boxes
        .resolve("boxes/gone.box", None, "libvirt", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.box"), "{e}");

    // Not a box: nothing to do.
    assert!(
        boxes
            .resolve("debian-12", None, "libvirt", &mut |_| {})
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_box_url_is_downloaded_against_its_checksum_then_only_the_unpacked_box_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("deb.box");
    libvirt_box(&file);
    let bytes = std::fs::read(&file).unwrap();
    let sha = testkit::http::sha256_hex(&bytes);
    let server =
        testkit::http::Server::start([("/b/deb.box".to_string(), bytes)].into(), &[".box"]);
    let url = format!("{}/b/deb.box", server.base);
    let cache = tmp.path().join("cache");
    let local = guest::Local::new("local");
    let boxes = BoxCache {
        dir: tmp.path(),
        cache: &cache,
        host: &local,
        dry_run: false,
    };

    let wrong = "0".repeat(64);
    let e = boxes
        .resolve(&url, Some(&wrong), "libvirt", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&wrong),
        "the mismatch names the pinned hash: {e}"
    );

    let mut notes = Vec::new();
    let b = boxes
        .resolve(&url, Some(&sha), "libvirt", &mut |e| {
            if let Event::Note(n) = e {
                notes.push(n);
            }
        })
        .unwrap()
        .unwrap();
    assert!(b.dir.join("box.img").is_file());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("matches the checksum in Lab.toml")),
        "{notes:?}"
    );
    assert!(!cache.join("downloads").exists(), "the download is removed");
    assert_eq!(server.gets("/b/deb.box"), 2);

    // Unpacked: no download again, even with the server down.
    server.set_mode(testkit::http::Mode::Down);
    let again = boxes
        .resolve(&url, Some(&sha), "libvirt", &mut |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(again.dir, b.dir);
    assert_eq!(server.gets("/b/deb.box"), 2);
}
