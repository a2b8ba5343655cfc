//! VM base images for the providers that run QEMU (the QEMU and libvirt plugins): lab's Debian
//! image (built offline from this machine's Debian mirror), Ubuntu cloud images (downloaded
//! against Ubuntu's signed SHA256SUMS, or a file), and Vagrant boxes packed for libvirt
//! (`box.img`); a cloud image's NoCloud seed, and the wait for cloud-init to apply it.
//!
//! One place decides what an `image` in Lab.toml means for a QEMU disk, so both plugins run
//! the same images the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use guest::{Command, Exec};
use model::Host;
use provider::Event;
use qemu::accel::Accel;

pub use qemu::cloud::{Seed, UBUNTU_CLOUD_IMAGES};

/// The image of hosts that set none: lab's Debian 12, built from this machine's Debian mirror
/// (no internet needed).
pub const DEFAULT_IMAGE: &str = "debian-12";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] qemu::image::Error),
    #[error(transparent)]
    Fetch(#[from] fetch::Error),
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error(transparent)]
    State(#[from] provider::Error),
    #[error("host `{host}`: {message}")]
    Model { host: String, message: String },
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Error::Host(Box::new(e))
    }
}

/// Where `ubuntu-XX.YY` cloud images come from: `LAB_UBUNTU_CLOUD_IMAGES` (a mirror of
/// cloud-images.ubuntu.com's layout), else [`UBUNTU_CLOUD_IMAGES`].
pub fn ubuntu_mirror() -> String {
    std::env::var("LAB_UBUNTU_CLOUD_IMAGES").unwrap_or_else(|_| UBUNTU_CLOUD_IMAGES.to_string())
}

/// Where images come from and go.
#[derive(Debug, Clone)]
pub struct Options {
    /// lab's image cache (~/.cache/lab/images; boxes in its `boxes/`).
    pub cache: PathBuf,
    /// Where `ubuntu-XX.YY` images come from ([`UBUNTU_CLOUD_IMAGES`] or a mirror of its
    /// layout).
    pub ubuntu_mirror: String,
    /// `--insecure-skip-signature`: a downloaded image is checked against SHA256SUMS's hash
    /// only, not Ubuntu's signature on it (every report says so).
    pub skip_signature: bool,
}

/// A VM's base disk, on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub path: PathBuf,
    /// `qcow2` or `raw`, as `qemu-img info` reads it.
    pub format: String,
    pub virtual_size: u64,
    /// A cloud image: each VM gets a NoCloud seed.
    pub seeded: bool,
    /// A Vagrant box: its VMs log in with Vagrant's insecure key first, and take the lab's.
    pub boxed: bool,
}

/// Whether hosts of `image` get a NoCloud seed, read from Lab.toml alone (for a dry run's
/// plan): a cloud image by name, URL or file; not lab's Debian image, not a box.
///
/// ```
/// let dir = std::path::Path::new("/srv/lab");
/// let mirror = images::UBUNTU_CLOUD_IMAGES;
/// assert!(images::seeded("ubuntu-22.04", dir, mirror));
/// assert!(!images::seeded("debian-12", dir, mirror));
/// assert!(!images::seeded("bento/ubuntu-22.04", dir, mirror));
/// ```
pub fn seeded(image: &str, dir: &Path, ubuntu_mirror: &str) -> bool {
    boxes::BoxRef::parse(image, dir).is_none()
        && qemu::cloud::source(image, ubuntu_mirror, dir).is_ok_and(|s| s.needs_seed())
}

/// A libvirt box's disk as a base image (`box.img`, qcow2, as vagrant-libvirt packs it).
fn box_base(
    h: &Host,
    dir: &Path,
    host: &dyn Exec,
    opts: &Options,
    events: &mut dyn FnMut(Event),
) -> Result<Option<Base>, Error> {
    let image = h.vm.image_or(DEFAULT_IMAGE);
    let boxes = provider::vagrant::BoxCache {
        dir,
        cache: &opts.cache.join("boxes"),
        host,
        dry_run: false,
    };
    let Some(b) = boxes.resolve(image, h.vm.checksum.as_deref(), "libvirt", events)? else {
        return Ok(None);
    };
    let path = b.dir.join("box.img");
    if !path.is_file() {
        return Err(Error::Model {
            host: h.name.clone(),
            message: format!(
                "box {} has no box.img in {} (a libvirt box keeps its disk there)",
                b.label,
                b.dir.display()
            ),
        });
    }
    let format = b.metadata.format.clone().unwrap_or_else(|| "qcow2".into());
    events(Event::Note(format!(
        "box {}: {} ({format})",
        b.label,
        path.display()
    )));
    Ok(Some(Base {
        path,
        format,
        virtual_size: b.metadata.virtual_size.unwrap_or(0) << 30,
        seeded: false,
        boxed: true,
    }))
}

/// Build, download or find the image of `h`: a box, lab's Debian image, a cloud image by
/// name or URL (downloaded once into the cache, against signed sums), or an image file. The
/// providers call this once per image for the whole lab.
pub fn resolve(
    h: &Host,
    dir: &Path,
    host: &dyn Exec,
    opts: &Options,
    accel: &Accel,
    events: &mut dyn FnMut(Event),
) -> Result<Base, Error> {
    if let Some(b) = box_base(h, dir, host, opts, events)? {
        return Ok(b);
    }
    let image = h.vm.image_or(DEFAULT_IMAGE);
    let model = |message: String| Error::Model {
        host: h.name.clone(),
        message,
    };
    let source = qemu::cloud::source(image, &opts.ubuntu_mirror, dir).map_err(model)?;
    let path = match &source {
        qemu::cloud::Source::Debian => {
            if h.vm.user != "root" {
                return Err(model(format!(
                    "lab's Debian image has the key for root only, not `{}`: leave `user` unset or use a cloud image",
                    h.vm.user
                )));
            }
            let spec = qemu::image::ImageSpec::bookworm(Path::new("/"))?;
            let built = qemu::image::build(host, &spec, &opts.cache, accel, &mut |s| {
                events(Event::Step(format!("image: {s}")));
            })?;
            if !built.cached {
                events(Event::Note(format!(
                    "built the base image {} in {:.0} s",
                    built.qcow2.display(),
                    built.seconds
                )));
            }
            built.qcow2
        }
        qemu::cloud::Source::Download { url, sums } => {
            events(Event::Step(format!(
                "image: {url} (checked against {sums})"
            )));
            let trust = qemu::cloud::ubuntu_trust(url, opts.skip_signature);
            let got = fetch::fetch(
                url,
                sums,
                &trust,
                &qemu::cloud::cache_dir(&opts.cache, url),
                &mut |done, total| events(Event::Download { done, total }),
            )?;
            match &got.signed_by {
                Some(signer) => events(Event::Note(format!("{sums}: signed by {signer}"))),
                None => events(Event::Note(format!(
                    "WARNING: {url}: the signature on {sums} was NOT checked (--insecure-skip-signature): only a hash served by the same host vouches for this image"
                ))),
            }
            if let Some(why) = &got.offline {
                events(Event::Note(format!(
                    "{sums} unreachable ({why}); using the copy lab verified before, {}",
                    got.path.display()
                )));
            } else if !got.cached {
                events(Event::Note(format!(
                    "downloaded {} (sha256 {} verified)",
                    got.path.display(),
                    &got.sha256[..16]
                )));
            }
            got.path
        }
        qemu::cloud::Source::File(p) => {
            if !p.is_file() {
                return Err(model(format!("image file {} does not exist", p.display())));
            }
            p.clone()
        }
    };
    let info = host.check(&Command::new([
        "qemu-img",
        "info",
        "-U",
        "--output=json",
        &path.display().to_string(),
    ]))?;
    let v: serde_json::Value = serde_json::from_str(&info.stdout_lossy()).unwrap_or_default();
    let format = v["format"].as_str().unwrap_or("raw").to_string();
    Ok(Base {
        path,
        format,
        virtual_size: v["virtual-size"].as_u64().unwrap_or(0),
        seeded: source.needs_seed(),
        boxed: false,
    })
}

/// Write a VM's NoCloud seed into `vmdir`: its files in `seed/` (for people to read) and the
/// ISO, `seed.iso`, whose path this returns.
pub fn write_seed(host: &dyn Exec, seed: &Seed, vmdir: &Path) -> Result<PathBuf, Error> {
    let files = vmdir.join("seed");
    host.check(&Command::new(["mkdir", "-p", &files.display().to_string()]))?;
    for (name, text) in seed.files() {
        host.put_file(
            &files.join(name),
            text.as_bytes(),
            guest::FileMode::mode(0o644),
        )?;
    }
    let iso = vmdir.join("seed.iso");
    host.check(&Command::new(qemu::cloud::seed_iso_argv(&files, &iso)))?;
    Ok(iso)
}

/// A cloud image's VM is ready when cloud-init has applied its seed: until then sshd may still
/// be restarted (password settings) and the key, hostname and network may not be in place yet.
/// `cloud-init status --wait` runs over the session lab already holds, which an sshd restart
/// does not end. An image without cloud-init is ready at once.
pub fn wait_cloud_init(ssh: &dyn Exec, host: &str, within: Duration) -> Result<(), Error> {
    let out =
        ssh.run(&Command::new(["cloud-init", "status", "--wait", "--long"]).timeout(within))?;
    match out.status {
        // 0: done; 2: done with recoverable errors (cloud-init 23.4 and later); 127: no
        // cloud-init in the image.
        guest::Status::Code(0 | 2 | 127) => Ok(()),
        _ => Err(Error::Model {
            host: host.to_string(),
            message: format!(
                "cloud-init failed to apply the seed (see /var/log/cloud-init.log in the VM):\n{}{}",
                out.stdout_lossy(),
                out.stderr_lossy()
            ),
        }),
    }
}
