//! Vagrant boxes as VM images, the effectful half shared by the VM providers: a box named in
//! Lab.toml found in Vagrant's home, or a `.box` file (downloaded first for a URL, checked
//! against the checksum Lab.toml pins) unpacked once into lab's cache; and Vagrant's first-boot
//! key swap, which replaces the box's public insecure key with the lab's own.
//!
//! What a box is and where Vagrant keeps it is the `boxes` crate's (pure); the provider uses
//! the box's disk (QEMU a libvirt box's `box.img`, VirtualBox a virtualbox box's `box.ovf`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use boxes::{BoxRef, Metadata};
use guest::{Auth, Command, Exec, SshConfig};

use crate::{Error, Event};

/// A box, unpacked, ready for a provider.
///
/// ```
/// let tmp = tempfile::tempdir().unwrap();
/// let stage = tmp.path().join("stage");
/// std::fs::create_dir_all(&stage).unwrap();
/// std::fs::write(stage.join("metadata.json"), r#"{"provider": "libvirt", "format": "qcow2"}"#).unwrap();
/// std::fs::write(stage.join("box.img"), b"disk").unwrap();
/// let file = tmp.path().join("deb.box");
/// let tar = std::process::Command::new("tar").arg("-cf").arg(&file).arg("-C").arg(&stage)
///     .args(["metadata.json", "box.img"]).status().unwrap();
/// assert!(tar.success());
/// let local = guest::Local::new("local");
/// let cache = tmp.path().join("cache");
/// let boxes = provider::vagrant::BoxCache { dir: tmp.path(), cache: &cache, host: &local, dry_run: false };
/// let b = boxes.resolve("deb.box", None, "libvirt", &mut |_| {}).unwrap().unwrap();
/// assert_eq!(b.label, "deb.box");
/// assert_eq!(b.metadata.format.as_deref(), Some("qcow2"));
/// assert!(b.dir.join("box.img").is_file());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxImage {
    /// The unpacked box: `metadata.json` and the disk(s).
    pub dir: PathBuf,
    /// What its `metadata.json` says (in a dry run of a box not unpacked yet: the provider
    /// asked for, nothing else).
    pub metadata: Metadata,
    /// The box in messages: `bento/ubuntu-22.04 202401.31.0` or the file's name.
    pub label: String,
    /// A name for it made of letters, digits, `-`, `_` and `.`, stable while the box is the
    /// same (VirtualBox names its imported base VM after it).
    pub id: String,
}

/// FNV-1a over `parts`: a short, stable cache key.
fn fnv(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
    }
    format!("{h:016x}")
}

fn box_err(image: &str, message: impl Into<String>) -> Error {
    Error::Box {
        image: image.to_string(),
        message: message.into(),
    }
}

/// Where and how boxes are unpacked: the lab's directory (relative `.box` paths are its), the
/// cache the boxes go into, the command seam that runs tar, and whether this is a dry run.
#[derive(Clone, Copy)]
pub struct BoxCache<'a> {
    /// The lab's directory.
    pub dir: &'a Path,
    /// Where `.box` files and URLs are unpacked (`<cache>/<id>`).
    pub cache: &'a Path,
    /// Runs tar and the moves.
    pub host: &'a dyn Exec,
    /// Report what would be downloaded and unpacked, do nothing.
    pub dry_run: bool,
}

impl std::fmt::Debug for BoxCache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxCache")
            .field("dir", &self.dir)
            .field("cache", &self.cache)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl BoxCache<'_> {
    /// The box `image` names, unpacked for `provider` (`libvirt` or `virtualbox`); `None` when
    /// `image` is not a box. A named box is Vagrant's own copy (newest version for the provider
    /// unless `@VERSION`); a `.box` file or URL is unpacked once into the cache (a URL
    /// downloaded first and checked against `sha256`, which the model requires for it). A dry
    /// run changes nothing: it reports the download and the unpack it would do as
    /// [`Event::Call`]s and returns where the box would be.
    ///
    /// ```
    /// use provider::vagrant::BoxCache;
    /// let tmp = tempfile::tempdir().unwrap();
    /// let local = guest::Local::new("local");
    /// let boxes = BoxCache { dir: tmp.path(), cache: tmp.path(), host: &local, dry_run: true };
    /// assert!(boxes.resolve("debian-12", None, "libvirt", &mut |_| {}).unwrap().is_none());
    /// // A dry run of a box file not unpacked yet: where it will be, and the tar that unpacks it.
    /// std::fs::write(tmp.path().join("deb.box"), b"a tar").unwrap();
    /// let mut calls = Vec::new();
    /// let b = boxes.resolve("deb.box", None, "libvirt", &mut |e| {
    ///     if let provider::Event::Call(c) = e { calls.push(c) }
    /// }).unwrap().unwrap();
    /// assert!(b.dir.starts_with(tmp.path()));
    /// assert!(calls[0].starts_with("tar -xf"));
    /// ```
    pub fn resolve(
        &self,
        image: &str,
        sha256: Option<&str>,
        provider: &str,
        events: &mut dyn FnMut(Event),
    ) -> Result<Option<BoxImage>, Error> {
        resolve(self, image, sha256, provider, events)
    }
}

fn resolve(
    at: &BoxCache<'_>,
    image: &str,
    sha256: Option<&str>,
    provider: &str,
    events: &mut dyn FnMut(Event),
) -> Result<Option<BoxImage>, Error> {
    let (dir, cache, host, dry_run) = (at.dir, at.cache, at.host, at.dry_run);
    let Some(r) = BoxRef::parse(image, dir) else {
        return Ok(None);
    };
    let (dir, label, id) = match &r {
        BoxRef::Named { name, version } => {
            let found = boxes::find(&boxes::vagrant_home(), name, version.as_deref(), provider)?;
            let id = format!(
                "{}-{}-{provider}",
                boxes::dir_name(name).replace("-VAGRANTSLASH-", "_"),
                found.version
            );
            (found.dir, format!("{name} {}", found.version), id)
        }
        BoxRef::File(file) => {
            let meta = std::fs::metadata(file)
                .map_err(|e| box_err(image, format!("cannot read {}: {e}", file.display())))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let abs = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            let key = fnv(&[
                abs.as_os_str().as_encoded_bytes(),
                &meta.len().to_le_bytes(),
                &mtime.to_le_bytes(),
            ]);
            let name = file
                .file_name()
                .map_or_else(|| image.to_string(), |n| n.to_string_lossy().into_owned());
            let stem = name.trim_end_matches(".box").to_string();
            let id = format!("{}-{}", sanitize(&stem), &key[..12]);
            let unpacked = cache.join(&id);
            unpack(host, file, &unpacked, dry_run, events)?;
            (unpacked, name, id)
        }
        BoxRef::Url(url) => {
            let Some(pin) = sha256 else {
                return Err(box_err(
                    image,
                    "a box URL needs `checksum = \"sha256:...\"` in Lab.toml",
                ));
            };
            let name = fetch::file_name(url)?;
            let stem = name.trim_end_matches(".box").to_string();
            let id = format!("{}-{}", sanitize(&stem), &pin[..pin.len().min(12)]);
            let unpacked = cache.join(&id);
            if !unpacked.join("metadata.json").is_file() {
                let downloads = cache.join("downloads").join(pin);
                if dry_run {
                    events(Event::Call(format!(
                        "download {url} into {} (checked against the sha256 Lab.toml pins)",
                        downloads.display()
                    )));
                    unpack(host, &downloads.join(&name), &unpacked, true, events)?;
                } else {
                    events(Event::Step(format!("box: {url}")));
                    let drop_downloads = || {
                        let _ = std::fs::remove_dir_all(&downloads);
                        let _ = std::fs::remove_dir(cache.join("downloads"));
                    };
                    let got = fetch::fetch_pinned(url, pin, &downloads, &mut |done, total| {
                        events(Event::Download { done, total });
                    })
                    .inspect_err(|_| drop_downloads())?;
                    events(Event::Note(format!(
                        "{}: sha256 {} matches the checksum in Lab.toml",
                        got.path.display(),
                        &got.sha256[..16]
                    )));
                    unpack(host, &got.path, &unpacked, false, events)?;
                    // The unpacked box is what lab uses from now on; the download only took room.
                    drop_downloads();
                }
            }
            (unpacked, name, id)
        }
    };
    let metadata = if dry_run && !dir.join("metadata.json").is_file() {
        Metadata {
            provider: provider.to_string(),
            format: None,
            virtual_size: None,
        }
    } else {
        Metadata::read(&dir)?
    };
    if metadata.provider != provider {
        return Err(box_err(
            image,
            format!(
                "{label} is a box for {}, and this provider uses {provider} boxes",
                metadata.provider
            ),
        ));
    }
    Ok(Some(BoxImage {
        dir,
        metadata,
        label,
        id,
    }))
}

/// Letters, digits, `-`, `_` and `.` of `s`; the rest as `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Unpack `file` into `dest` once: into `dest.part` first, renamed when tar is done and
/// `metadata.json` is there (an interrupted unpack leaves no half box behind `dest`).
fn unpack(
    host: &dyn Exec,
    file: &Path,
    dest: &Path,
    dry_run: bool,
    events: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    if dest.join("metadata.json").is_file() {
        return Ok(());
    }
    let part = dest.with_extension("part");
    let argv = boxes::unpack_argv(file, &part);
    if dry_run {
        events(Event::Call(argv.join(" ")));
        return Ok(());
    }
    let p = |p: &Path| p.display().to_string();
    host.check(&Command::new(["rm", "-rf", &p(&part)]))?;
    host.check(&Command::new(["mkdir", "-p", &p(&part)]))?;
    events(Event::Step(format!("box: unpacking {}", file.display())));
    host.check(&Command::new(argv).cancellable())?;
    if !part.join("metadata.json").is_file() {
        let _ = std::fs::remove_dir_all(&part);
        return Err(box_err(
            &file.display().to_string(),
            "not a Vagrant box: no metadata.json in it",
        ));
    }
    host.check(&Command::new(["rm", "-rf", &p(dest)]))?;
    host.check(&Command::new(["mv", &p(&part), &p(dest)]))?;
    Ok(())
}

/// How a box's VM took the lab's key.
///
/// ```
/// use provider::vagrant::KeyLogin;
/// // The first boot of a box's VM swaps the key; later ones find the lab's key in place.
/// let first = KeyLogin::Replaced("ed25519");
/// assert_ne!(first, KeyLogin::Lab);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLogin {
    /// The lab's key was already accepted (a VM that had its key swapped before).
    Lab,
    /// Vagrant's insecure key of this kind (`ed25519`, `rsa`) logged in, and the lab's key
    /// replaced it.
    Replaced(&'static str),
}

/// `authorized_keys` with Vagrant's insecure keys taken out and `lab_key` in, as Vagrant's
/// first boot does; other keys stay.
///
/// ```
/// let insecure = boxes::INSECURE_KEYS[1].2.trim();
/// let old = format!("{insecure}\nssh-ed25519 AAAAmine me@laptop\n");
/// let new = provider::vagrant::authorized_keys(&old, "ssh-ed25519 AAAAlab lab");
/// assert_eq!(new, "ssh-ed25519 AAAAmine me@laptop\nssh-ed25519 AAAAlab lab\n");
/// ```
pub fn authorized_keys(current: &str, lab_key: &str) -> String {
    let blob = |line: &str| line.split_whitespace().nth(1).map(str::to_string);
    let insecure: Vec<String> = boxes::INSECURE_KEYS
        .iter()
        .filter_map(|(_, _, public)| blob(public))
        .collect();
    let lab_key = lab_key.trim();
    let mut out = String::new();
    for line in current.lines().filter(|l| !l.trim().is_empty()) {
        if blob(line).is_some_and(|b| insecure.contains(&b)) || blob(line) == blob(lab_key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(lab_key);
    out.push('\n');
    out
}

/// Vagrant's first boot, for a VM made from a box: wait until SSH answers with the lab's key
/// (`cfg`; a VM swapped before), or log in with Vagrant's insecure keys (written to
/// `keys_dir`, mode 600) and put the lab's public key `lab_key` in their place in the user's
/// `authorized_keys`, then check that the lab's key logs in. The box's insecure key is public:
/// after this it opens nothing.
///
/// ```no_run
/// # fn main() -> Result<(), provider::Error> {
/// let state = provider::StateDir::new("/lab");
/// let cfg = provider::vm::ssh_config(&state, "qemu", "ue1", Some(42301), "vagrant",
///     || state.key())?;
/// let lab_key = std::fs::read_to_string("/lab/.lab/id_ed25519.pub").unwrap();
/// let how = provider::vagrant::swap_insecure_key(&cfg, &lab_key, &state.path(),
///     std::time::Duration::from_secs(300))?;
/// println!("{how:?}");
/// # Ok(()) }
/// ```
pub fn swap_insecure_key(
    cfg: &SshConfig,
    lab_key: &str,
    keys_dir: &Path,
    within: Duration,
) -> Result<KeyLogin, Error> {
    let lab = guest::Ssh::new(cfg.clone());
    let refused = match lab.wait_reachable(within) {
        Ok(_) => return Ok(KeyLogin::Lab),
        Err(
            e @ guest::Error::Connect {
                step: "authentication",
                ..
            },
        ) => e,
        Err(e) => return Err(e.into()),
    };
    let mut tried = Vec::new();
    for (kind, private, _) in boxes::INSECURE_KEYS {
        let file = keys_dir.join(format!("vagrant-insecure-{kind}"));
        if !file.is_file() {
            std::fs::create_dir_all(keys_dir).map_err(|source| Error::File {
                what: "cannot create",
                path: keys_dir.to_path_buf(),
                source,
            })?;
            guest::Local::new("local").put_file(
                &file,
                private.as_bytes(),
                guest::FileMode::mode(0o600),
            )?;
        }
        let mut insecure = cfg.clone();
        insecure.auth = Auth::Key(file);
        // The user's own file, as the user: not through sudo.
        insecure.sudo = false;
        let ssh = guest::Ssh::new(insecure);
        match ssh.connect() {
            Ok(()) => {}
            Err(e @ guest::Error::Connect { .. }) => {
                tried.push(format!("{kind}: {e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let current = ssh.check(&Command::new([
            "sh",
            "-c",
            "cat \"$HOME/.ssh/authorized_keys\" 2>/dev/null || true",
        ]))?;
        let text = authorized_keys(&current.stdout_lossy(), lab_key);
        ssh.check(&Command::new([
            "sh",
            "-c",
            "umask 077 && mkdir -p \"$HOME/.ssh\" && printf '%s' \"$1\" > \"$HOME/.ssh/authorized_keys.lab\" && mv -f \"$HOME/.ssh/authorized_keys.lab\" \"$HOME/.ssh/authorized_keys\"",
            "sh",
            &text,
        ]))?;
        ssh.disconnect();
        lab.disconnect();
        lab.connect()?;
        return Ok(KeyLogin::Replaced(kind));
    }
    Err(Error::Login {
        host: cfg.host.clone(),
        message: format!(
            "user {} accepts neither the lab's key ({refused}) nor Vagrant's insecure keys ({}): a box must authorize Vagrant's insecure key for its user, as `vagrant package` boxes do",
            cfg.user,
            tried.join("; ")
        ),
    })
}
