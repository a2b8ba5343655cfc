//! Images the VM tests boot, made here from Debian (no internet): a cloud image served by a
//! loopback mirror under Ubuntu's file names, and a libvirt Vagrant box packed as
//! `vagrant package` packs one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::http::Server;

/// A mirror of Ubuntu's cloud image layout on loopback, serving lab's Debian cloud image
/// (cloud-init, no key, NoCloud only) as `ubuntu-22.04`, with a SHA256SUMS that is not signed.
#[derive(Debug)]
pub struct CloudMirror {
    pub server: Server,
    /// The image's path on the server.
    pub image_path: String,
    /// SHA256SUMS's path on the server.
    pub sums_path: String,
}

/// Build (or find in `cache`) lab's Debian cloud image and serve it as Ubuntu 22.04's.
pub fn cloud_mirror(cache: &Path) -> CloudMirror {
    let local = guest::Local::new("local");
    let spec = qemu::image::ImageSpec::bookworm_cloud(Path::new("/")).unwrap();
    let t = Instant::now();
    let image = qemu::image::build(
        &local,
        &spec,
        cache,
        &qemu::accel::probe(Path::new("/")),
        &mut |s| eprintln!("cloud image: {s}"),
    )
    .unwrap();
    eprintln!(
        "cloud image {} ({}, {:.0} s)",
        image.qcow2.display(),
        if image.cached { "cached" } else { "built" },
        t.elapsed().as_secs_f64()
    );
    let dir_url = "/releases/22.04/release";
    let name = "ubuntu-22.04-server-cloudimg-amd64.img";
    let sums = format!(
        "{} *ubuntu-22.04-server-cloudimg-arm64.img\n{} *{name}\n",
        "0".repeat(64),
        fetch::sha256_file(&image.qcow2).unwrap()
    );
    let sums_path = format!("{dir_url}/SHA256SUMS");
    let server = Server::start([(sums_path.clone(), sums.into_bytes())].into(), &[]);
    let image_path = format!("{dir_url}/{name}");
    server.put_path(&image_path, &image.qcow2);
    CloudMirror {
        server,
        image_path,
        sums_path,
    }
}

/// A libvirt box file and what Lab.toml and the checks need of it.
#[derive(Debug)]
pub struct VagrantBox {
    pub file: PathBuf,
    pub sha256: String,
    /// Vagrant's public insecure keys, authorized in the box for `vagrant`.
    pub insecure_keys: Vec<String>,
}

/// A libvirt box as `vagrant package` makes one: Debian with a `vagrant` user (sudo, Vagrant's
/// insecure keys authorized, root without a key), its disk as box.img (qcow2) beside
/// metadata.json and a Vagrantfile, in a tar at `work/debian-12.box`. Its image is built in
/// `work` and removed as soon as the box is made: only the box stays.
pub fn vagrant_box(work: &Path) -> VagrantBox {
    let local = guest::Local::new("local");
    let sh = |argv: &[&str]| {
        let st = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert!(st.success(), "{argv:?}");
    };
    let insecure: Vec<String> = boxes::INSECURE_KEYS
        .iter()
        .map(|(_, _, public)| public.trim().to_string())
        .collect();
    let spec = qemu::image::ImageSpec::bookworm_box(
        Path::new("/"),
        qemu::image::ImageUser {
            name: "vagrant".into(),
            authorized_keys: insecure.clone(),
        },
    )
    .unwrap();
    let t = Instant::now();
    let build = work.join("build");
    let built = qemu::image::build(
        &local,
        &spec,
        &build,
        &qemu::accel::probe(Path::new("/")),
        &mut |s| eprintln!("box image: {s}"),
    )
    .unwrap();
    eprintln!("box image built in {:.0} s", t.elapsed().as_secs_f64());
    let stage = work.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let img = stage.join("box.img");
    sh(&[
        "qemu-img",
        "convert",
        "-c",
        "-O",
        "qcow2",
        built.qcow2.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&build).unwrap();
    std::fs::write(
        stage.join("metadata.json"),
        "{\"provider\": \"libvirt\", \"format\": \"qcow2\", \"virtual_size\": 3}\n",
    )
    .unwrap();
    std::fs::write(
        stage.join("Vagrantfile"),
        "Vagrant.configure(\"2\") do |config|\n  config.vm.provider :libvirt do |libvirt|\n    libvirt.driver = \"kvm\"\n  end\nend\n",
    )
    .unwrap();
    let file = work.join("debian-12.box");
    sh(&[
        "tar",
        "-cf",
        file.to_str().unwrap(),
        "-C",
        stage.to_str().unwrap(),
        "metadata.json",
        "Vagrantfile",
        "box.img",
    ]);
    std::fs::remove_dir_all(&stage).unwrap();
    VagrantBox {
        sha256: fetch::sha256_file(&file).unwrap(),
        file,
        insecure_keys: insecure,
    }
}
