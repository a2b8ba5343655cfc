//! Cloud images (Ubuntu's, or any image with cloud-init): where an `image =` of Lab.toml comes
//! from, and the NoCloud seed that gives each VM its name, the lab's key and DHCP on its NAT
//! NIC. Pure: the download is the `fetch` crate's, the ISO is `genisoimage`'s (the tool
//! `cloud-localds` uses), both run by the caller.

use std::path::{Path, PathBuf};

/// Where Ubuntu publishes its cloud images (`releases/22.04/release/...`); a mirror of the same
/// layout can stand in (`LAB_UBUNTU_CLOUD_IMAGES`).
pub const UBUNTU_CLOUD_IMAGES: &str = "https://cloud-images.ubuntu.com";

/// The primary key fingerprint of "UEC Image Automatic Signing Key <cdimage@ubuntu.com>",
/// which signs the `SHA256SUMS` of Ubuntu's cloud images (`SHA256SUMS.gpg`), as
/// <https://ubuntu.com/tutorials/how-to-verify-ubuntu> and Ubuntu's cloud image documentation
/// list it.
pub const UBUNTU_CLOUD_IMAGE_FINGERPRINT: &str = "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81";

/// Where Ubuntu's `ubuntu-keyring` package puts that key (and where lab looks unless
/// `LAB_UBUNTU_KEYRING` names another file holding it).
pub const UBUNTU_CLOUD_IMAGE_KEYRING: &str = "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg";

/// What a cloud image download must satisfy: `SHA256SUMS` signed (`SHA256SUMS.gpg` beside it)
/// by Ubuntu's cloud image key, pinned by fingerprint; the key itself is read from
/// [`UBUNTU_CLOUD_IMAGE_KEYRING`] or `LAB_UBUNTU_KEYRING`. With `skip_signature`
/// (`--insecure-skip-signature`) the hash only.
///
/// ```
/// let t = qemu::cloud::ubuntu_trust("https://h/r/x.img", false);
/// let fetch::Trust::Signed { signer, signature } = t else { unreachable!() };
/// assert_eq!(signer.fingerprints, [qemu::cloud::UBUNTU_CLOUD_IMAGE_FINGERPRINT]);
/// assert_eq!(signature, fetch::Signature::Detached("https://h/r/SHA256SUMS.gpg".into()));
/// ```
pub fn ubuntu_trust(image_url: &str, skip_signature: bool) -> fetch::Trust {
    if skip_signature {
        return fetch::Trust::SkipSignature;
    }
    let keyring = std::env::var_os("LAB_UBUNTU_KEYRING")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(UBUNTU_CLOUD_IMAGE_KEYRING));
    fetch::Trust::Signed {
        signer: fetch::Signer {
            name: "Ubuntu's cloud image signing key".into(),
            fingerprints: vec![UBUNTU_CLOUD_IMAGE_FINGERPRINT.into()],
            keyring: fetch::Keyring::File(keyring),
            missing_hint: "Install it with Ubuntu's `ubuntu-keyring` package, or export the key (gpg --recv-keys D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81; gpg --export) into a file and set LAB_UBUNTU_KEYRING to it".into(),
        },
        signature: fetch::Signature::Detached(fetch::beside(image_url, "SHA256SUMS.gpg")),
    }
}

/// The Ubuntu releases lab knows by name.
pub const UBUNTU_RELEASES: &[&str] = &["20.04", "22.04", "24.04"];

/// Where a VM's base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// lab's own Debian 12 image, built with debootstrap from this machine's Debian mirror
    /// (offline from the internet), the key baked in.
    Debian,
    /// A cloud image downloaded from `url`, checked against the hash `sums` lists for it.
    Download { url: String, sums: String },
    /// A cloud image file already on this machine, used as is.
    File(PathBuf),
}

impl Source {
    /// Whether the VM gets a NoCloud seed (every image but lab's Debian one).
    pub fn needs_seed(&self) -> bool {
        !matches!(self, Source::Debian)
    }
}

/// `image =` of a QEMU host: `debian-12` (or `bookworm`), `ubuntu-22.04` (also 20.04, 24.04:
/// the release's server cloud image under `ubuntu_base`), an `http(s)://` URL of a cloud image
/// (checked against the `SHA256SUMS` beside it), or a path to an image file (relative to
/// `dir`).
pub fn source(image: &str, ubuntu_base: &str, dir: &Path) -> Result<Source, String> {
    match image {
        "debian-12" | "bookworm" => return Ok(Source::Debian),
        _ => {}
    }
    if let Some(v) = image.strip_prefix("ubuntu-") {
        if !UBUNTU_RELEASES.contains(&v) {
            return Err(format!(
                "image `{image}`: lab knows Ubuntu {} by name; for another, give the cloud image's URL",
                UBUNTU_RELEASES.join(", ")
            ));
        }
        let url = format!(
            "{}/releases/{v}/release/ubuntu-{v}-server-cloudimg-amd64.img",
            ubuntu_base.trim_end_matches('/')
        );
        let sums = fetch::beside(&url, "SHA256SUMS");
        return Ok(Source::Download { url, sums });
    }
    if image.starts_with("http://") || image.starts_with("https://") {
        fetch::file_name(image).map_err(|e| e.to_string())?;
        return Ok(Source::Download {
            url: image.to_string(),
            sums: fetch::beside(image, "SHA256SUMS"),
        });
    }
    let p = Path::new(image);
    let known = [".img", ".qcow2", ".raw"]
        .iter()
        .any(|e| image.ends_with(e));
    if !known {
        return Err(format!(
            "image `{image}` has no QEMU source: use debian-12, ubuntu-22.04, a cloud image's URL, a .img/.qcow2/.raw file, or a Vagrant box (ORG/NAME[@VERSION], a .box file or URL)"
        ));
    }
    Ok(Source::File(if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }))
}

/// The cache directory of a downloaded image: one per URL, so a mirror's file never stands in
/// for another's under the same name.
pub fn cache_dir(cache: &Path, url: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    cache.join("cloud").join(format!("{h:016x}"))
}

/// What a VM's NoCloud seed says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// A new id makes cloud-init run its once-per-instance steps again.
    pub instance_id: String,
    pub hostname: String,
    /// The account lab logs in as (`root`, or a user cloud-init creates with sudo).
    pub user: String,
    pub public_key: String,
    /// The NAT NIC: matched by MAC, DHCP; its Lab.toml name labels the entry.
    pub nat_mac: String,
    pub nat_name: String,
}

/// A YAML scalar that means exactly `s` (a JSON string is a YAML double-quoted scalar).
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Seed {
    /// `meta-data`.
    pub fn meta_data(&self) -> String {
        format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            q(&self.instance_id),
            q(&self.hostname)
        )
    }

    /// `user-data`: the key for the login user, no passwords, SSH host keys of its own.
    pub fn user_data(&self) -> String {
        let key = q(self.public_key.trim());
        let mut s = String::from("#cloud-config\n# Written by lab: the lab's key, no passwords.\n");
        s.push_str(&format!("hostname: {}\n", q(&self.hostname)));
        s.push_str("ssh_pwauth: false\n");
        // Built into every glibc: nothing to generate, and tools print what lab parses.
        s.push_str("locale: C.UTF-8\n");
        if self.user == "root" {
            s.push_str("disable_root: false\n");
            s.push_str(&format!("ssh_authorized_keys:\n  - {key}\n"));
        } else {
            s.push_str("users:\n  - default\n");
            s.push_str(&format!(
                "  - name: {}\n    shell: /bin/bash\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    lock_passwd: true\n    ssh_authorized_keys:\n      - {key}\n",
                q(&self.user)
            ));
        }
        s
    }

    /// `network-config` (version 2): DHCP on the NAT NIC, found by MAC, whatever the kernel
    /// names it (no rename: cloud-init cannot rename a NIC that is already up); the lab's NICs
    /// are lab's.
    pub fn network_config(&self) -> String {
        format!(
            "version: 2\nethernets:\n  {}:\n    match:\n      macaddress: {}\n    dhcp4: true\n",
            q(&self.nat_name),
            q(&self.nat_mac),
        )
    }

    /// The seed's files, by name.
    pub fn files(&self) -> [(&'static str, String); 3] {
        [
            ("meta-data", self.meta_data()),
            ("user-data", self.user_data()),
            ("network-config", self.network_config()),
        ]
    }
}

/// `genisoimage` making the seed ISO (volume `cidata`, Joliet and Rock Ridge names) from the
/// files in `dir`: what `cloud-localds` runs.
pub fn seed_iso_argv(dir: &Path, iso: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "genisoimage",
        "-quiet",
        "-output",
        &iso.display().to_string(),
        "-volid",
        "cidata",
        "-joliet",
        "-rock",
        "-input-charset",
        "utf-8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for name in ["meta-data", "user-data", "network-config"] {
        a.push(dir.join(name).display().to_string());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let d = Path::new("/labs/x");
        assert_eq!(
            source("debian-12", UBUNTU_CLOUD_IMAGES, d),
            Ok(Source::Debian)
        );
        assert_eq!(
            source("ubuntu-22.04", "http://127.0.0.1:8/", d),
            Ok(Source::Download {
                url: "http://127.0.0.1:8/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img".into(),
                sums: "http://127.0.0.1:8/releases/22.04/release/SHA256SUMS".into(),
            })
        );
        assert_eq!(
            source("images/jammy.img", UBUNTU_CLOUD_IMAGES, d),
            Ok(Source::File("/labs/x/images/jammy.img".into()))
        );
        assert!(source("ubuntu-18.04", UBUNTU_CLOUD_IMAGES, d).is_err());
        assert!(source("fedora", UBUNTU_CLOUD_IMAGES, d).is_err());
        assert!(source("https://h/dir/", UBUNTU_CLOUD_IMAGES, d).is_err());
        assert!(!Source::Debian.needs_seed());
        assert!(Source::File("/x.img".into()).needs_seed());
    }

    #[test]
    fn mirrors_do_not_share_a_cache_entry() {
        let c = Path::new("/c");
        assert_ne!(
            cache_dir(c, "http://a/x.img"),
            cache_dir(c, "http://b/x.img")
        );
        assert_eq!(
            cache_dir(c, "http://a/x.img"),
            cache_dir(c, "http://a/x.img")
        );
    }

    #[test]
    fn quoting_keeps_yaml_meaning() {
        assert_eq!(q("a\"b\\c\n"), "\"a\\\"b\\\\c\\x0a\"");
    }
}
