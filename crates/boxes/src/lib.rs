//! Vagrant boxes as VM images, the pure half: which box an `image =` names, where Vagrant keeps
//! it (`~/.vagrant.d/boxes/NAME/VERSION/PROVIDER/`, the newest version for the provider unless
//! `@VERSION`), what its `metadata.json` says, and the argv that unpacks a `.box` file (a tar,
//! gzipped or not). The providers run that argv through the command seam and use the box's
//! disk: QEMU a libvirt box's `box.img`, VirtualBox a virtualbox box's `box.ovf`.
//!
//! A box logs in as `vagrant` with Vagrant's insecure key ([`INSECURE_KEYS`], published by
//! HashiCorp in hashicorp/vagrant's `keys/`), which a provider replaces with the lab's key on
//! the first boot, as Vagrant does.

use std::path::{Path, PathBuf};

/// Why a box cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "box `{name}` is not in {}{}; `vagrant box add {name} --provider {provider}` fetches it",
        home.display(),
        if have.is_empty() { String::new() } else { format!(" for {provider} (there: {})", have.join(", ")) }
    )]
    NotFound {
        name: String,
        provider: String,
        home: PathBuf,
        /// `VERSION/PROVIDER` entries that are there.
        have: Vec<String>,
    },
    #[error("{}: {message}", path.display())]
    Metadata { path: PathBuf, message: String },
}

/// A box named by `image =`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxRef {
    /// `bento/ubuntu-22.04` or `bento/ubuntu-22.04@202401.31.0`: a box Vagrant keeps.
    Named {
        name: String,
        version: Option<String>,
    },
    /// A `.box` file (relative paths are the lab directory's).
    File(PathBuf),
    /// A `.box` file's `http(s)://` URL, downloaded once and checked against the SHA-256 that
    /// Lab.toml pins (`checksum = "sha256:..."`, as Vagrant's `box_download_checksum`).
    Url(String),
}

/// Whether `image` names a Vagrant box (a name, a `.box` file or a `.box` URL), without
/// resolving it.
///
/// ```
/// assert!(boxes::is_box("bento/ubuntu-22.04"));
/// assert!(boxes::is_box("https://example.org/boxes/deb.box"));
/// assert!(!boxes::is_box("ubuntu-22.04"));
/// ```
pub fn is_box(image: &str) -> bool {
    BoxRef::parse(image, Path::new("/")).is_some()
}

impl BoxRef {
    /// The box `image` names, if it names one: `ORG/NAME[@VERSION]` or a path ending in `.box`.
    ///
    /// ```
    /// use boxes::BoxRef;
    /// let dir = std::path::Path::new("/lab");
    /// assert_eq!(
    ///     BoxRef::parse("bento/ubuntu-22.04@202401.31.0", dir),
    ///     Some(BoxRef::Named { name: "bento/ubuntu-22.04".into(), version: Some("202401.31.0".into()) })
    /// );
    /// assert_eq!(BoxRef::parse("boxes/deb.box", dir), Some(BoxRef::File("/lab/boxes/deb.box".into())));
    /// assert_eq!(
    ///     BoxRef::parse("https://example.org/deb.box", dir),
    ///     Some(BoxRef::Url("https://example.org/deb.box".into()))
    /// );
    /// assert_eq!(BoxRef::parse("ubuntu-22.04", dir), None);
    /// assert_eq!(BoxRef::parse("vbox:base@clean", dir), None);
    /// ```
    pub fn parse(image: &str, dir: &Path) -> Option<BoxRef> {
        if image.starts_with("https://") || image.starts_with("http://") {
            let path = image.split(['?', '#']).next().unwrap_or(image);
            return path
                .ends_with(".box")
                .then(|| BoxRef::Url(image.to_string()));
        }
        if image.ends_with(".box") && !image.contains("://") {
            let p = Path::new(image);
            return Some(BoxRef::File(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }));
        }
        let (name, version) = match image.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (image, None),
        };
        let word = |w: &str| {
            !w.is_empty()
                && !w.starts_with('.')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        let named = match name.split_once('/') {
            Some((org, n)) => word(org) && word(n),
            None => false,
        };
        let version_ok =
            version.is_none_or(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()) && word(v));
        (named && version_ok).then(|| BoxRef::Named {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }
}

/// Vagrant's home: `VAGRANT_HOME`, else `~/.vagrant.d`.
pub fn vagrant_home() -> PathBuf {
    match std::env::var_os("VAGRANT_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".vagrant.d"),
    }
}

/// A box's directory name under `boxes/`: `/` as `-VAGRANTSLASH-`, as Vagrant writes it.
pub fn dir_name(name: &str) -> String {
    name.replace('/', "-VAGRANTSLASH-")
}

/// Version order: numeric dot-separated parts compared as numbers, others as text.
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split('.')
        .map(|p| (p.parse::<u64>().unwrap_or(0), p.to_string()))
        .collect()
}

/// A box Vagrant keeps, found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `boxes/NAME/VERSION/PROVIDER`: the unpacked box.
    pub dir: PathBuf,
    pub version: String,
}

/// The directory of box `name` for `provider` (`libvirt`, `virtualbox`) under Vagrant's `home`:
/// `version`, or the newest version that has that provider.
pub fn find(
    home: &Path,
    name: &str,
    version: Option<&str>,
    provider: &str,
) -> Result<Found, Error> {
    let root = home.join("boxes").join(dir_name(name));
    let mut have = Vec::new();
    let mut candidates = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for v in entries.flatten().filter(|e| e.path().is_dir()) {
            let ver = v.file_name().to_string_lossy().into_owned();
            if let Ok(provs) = std::fs::read_dir(v.path()) {
                for p in provs.flatten().filter(|e| e.path().is_dir()) {
                    let prov = p.file_name().to_string_lossy().into_owned();
                    have.push(format!("{ver}/{prov}"));
                    if prov == provider && version.is_none_or(|want| want == ver) {
                        candidates.push((ver.clone(), p.path()));
                    }
                }
            }
        }
    }
    candidates.sort_by_key(|(v, _)| version_key(v));
    have.sort();
    match candidates.pop() {
        Some((version, dir)) => Ok(Found { dir, version }),
        None => Err(Error::NotFound {
            name: match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            },
            provider: provider.to_string(),
            home: home.to_path_buf(),
            have,
        }),
    }
}

/// What a box's `metadata.json` says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Metadata {
    /// `libvirt`, `virtualbox`, ...
    pub provider: String,
    /// A libvirt box's disk format (`qcow2`).
    #[serde(default)]
    pub format: Option<String>,
    /// A libvirt box's disk size in GiB.
    #[serde(default)]
    pub virtual_size: Option<u64>,
}

impl Metadata {
    /// `metadata.json` in an unpacked box.
    pub fn read(dir: &Path) -> Result<Metadata, Error> {
        let path = dir.join("metadata.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Metadata {
            path: path.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Metadata {
            path,
            message: e.to_string(),
        })
    }
}

/// The argv that unpacks a `.box` file into `dest` (tar detects gzip by itself).
///
/// ```
/// let argv = boxes::unpack_argv("/b/deb.box".as_ref(), "/c/x".as_ref());
/// assert_eq!(argv, ["tar", "-xf", "/b/deb.box", "-C", "/c/x"]);
/// ```
pub fn unpack_argv(file: &Path, dest: &Path) -> Vec<String> {
    vec![
        "tar".into(),
        "-xf".into(),
        file.display().to_string(),
        "-C".into(),
        dest.display().to_string(),
    ]
}

/// Vagrant's insecure key pairs, published by HashiCorp (hashicorp/vagrant, `keys/vagrant` and
/// `keys/vagrant.key.ed25519`): `(name, private key, public key)`. Boxes authorize them for
/// `vagrant`; they are public, so a provider replaces them with the lab's key on first boot.
pub const INSECURE_KEYS: &[(&str, &str, &str)] = &[
    (
        "ed25519",
        include_str!("../keys/vagrant.key.ed25519"),
        include_str!("../keys/vagrant.pub.ed25519"),
    ),
    (
        "rsa",
        include_str!("../keys/vagrant"),
        include_str!("../keys/vagrant.pub"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn make(home: &Path, name: &str, version: &str, provider: &str) {
        let d = home
            .join("boxes")
            .join(dir_name(name))
            .join(version)
            .join(provider);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("metadata.json"),
            format!(
                "{{\"provider\": \"{provider}\", \"format\": \"qcow2\", \"virtual_size\": 64}}"
            ),
        )
        .unwrap();
    }

    #[test]
    fn newest_version_for_the_provider_or_the_one_asked() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        make(h, "bento/ubuntu-22.04", "202309.08.0", "virtualbox");
        make(h, "bento/ubuntu-22.04", "202401.31.0", "virtualbox");
        make(h, "bento/ubuntu-22.04", "202401.31.0", "libvirt");
        make(h, "bento/ubuntu-22.04", "202510.1.0", "libvirt");
        make(h, "bento/ubuntu-22.04", "9.0.0", "libvirt");
        let f = find(h, "bento/ubuntu-22.04", None, "libvirt").unwrap();
        assert_eq!(f.version, "202510.1.0");
        assert!(
            f.dir
                .ends_with("bento-VAGRANTSLASH-ubuntu-22.04/202510.1.0/libvirt")
        );
        let f = find(h, "bento/ubuntu-22.04", Some("202309.08.0"), "virtualbox").unwrap();
        assert_eq!(f.version, "202309.08.0");
        assert_eq!(
            Metadata::read(&f.dir).unwrap(),
            Metadata {
                provider: "virtualbox".into(),
                format: Some("qcow2".into()),
                virtual_size: Some(64)
            }
        );
        let e = find(h, "bento/ubuntu-22.04", Some("202309.08.0"), "libvirt").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("202309.08.0/virtualbox") && msg.contains("vagrant box add"),
            "{msg}"
        );
        assert!(find(h, "generic/debian12", None, "libvirt").is_err());
    }

    #[test]
    fn names_files_and_what_is_not_a_box() {
        let dir = Path::new("/lab");
        for not in [
            "",
            "ubuntu-22.04",
            "a/b/c",
            "/abs",
            "a/",
            "a/b@x",
            "https://h/x.img",
            "ftp://h/x.box",
            "debian-12",
        ] {
            assert_eq!(BoxRef::parse(not, dir), None, "{not}");
        }
        assert_eq!(
            BoxRef::parse("/srv/x.box", dir),
            Some(BoxRef::File("/srv/x.box".into()))
        );
    }

    #[test]
    fn the_insecure_keys_are_key_pairs() {
        for (name, private, public) in INSECURE_KEYS {
            assert!(private.contains("PRIVATE KEY-----"), "{name}");
            assert!(public.starts_with("ssh-"), "{name}");
        }
    }
}
