//! A lab's `.lab/`: one owner for state files, the lab's key and known_hosts, and the lock.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use crate::Error;

/// The state directory of a lab: `<lab directory>/.lab`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let state = provider::StateDir::new(dir.path());
/// state.write("demo.qemu.json", &vec![1, 2]).unwrap();
/// let back: Vec<u32> = state.read("demo.qemu.json");
/// assert_eq!(back, [1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    lab_dir: PathBuf,
}

impl StateDir {
    /// The state of the lab whose directory (where its Lab.toml is) is `lab_dir`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// assert_eq!(state.lab_dir(), dir.path());
    /// ```
    pub fn new(lab_dir: impl Into<PathBuf>) -> Self {
        Self {
            lab_dir: lab_dir.into(),
        }
    }

    /// The lab's directory.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// assert_eq!(state.lab_dir(), dir.path());
    /// ```
    pub fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    /// `.lab/` itself.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// assert_eq!(state.path(), dir.path().join(".lab"));
    /// ```
    pub fn path(&self) -> PathBuf {
        self.lab_dir.join(".lab")
    }

    /// A file in `.lab/`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// assert_eq!(state.file("x.qemu.json"), dir.path().join(".lab/x.qemu.json"));
    /// ```
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// A JSON state file (missing or unreadable: the default).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// let none: Vec<u32> = state.read("missing.json");
    /// assert!(none.is_empty());
    /// ```
    pub fn read<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> T {
        read_json(&self.file(name))
    }

    /// Write a JSON state file atomically (a temp file beside it, then rename).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// state.write("n.json", &42u32).unwrap();
    /// assert_eq!(state.read::<u32>("n.json"), 42);
    /// ```
    pub fn write<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), Error> {
        let path = self.file(name);
        write_json(&path, value).map_err(|source| Error::File {
            what: "cannot write",
            path,
            source,
        })
    }

    /// Remove a state file (gone already: fine).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// state.write("n.json", &1u32).unwrap();
    /// state.remove("n.json").unwrap();
    /// state.remove("n.json").unwrap(); // gone already: fine
    /// assert!(!state.file("n.json").exists());
    /// ```
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let path = self.file(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::File {
                what: "cannot remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The lab-local known_hosts file.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// assert_eq!(state.known_hosts(), dir.path().join(".lab/known_hosts"));
    /// ```
    pub fn known_hosts(&self) -> PathBuf {
        self.file("known_hosts")
    }

    /// The lab's own ed25519 key (`.lab/id_ed25519`), generated on first use with ssh-keygen.
    ///
    /// ```no_run
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// let key = state.key().unwrap(); // ssh-keygen runs once; the public key is beside it
    /// assert!(key.with_extension("pub").exists());
    /// ```
    pub fn key(&self) -> Result<PathBuf, Error> {
        let key = self.file("id_ed25519");
        if !key.exists() {
            std::fs::create_dir_all(self.path()).map_err(|source| Error::File {
                what: "cannot create",
                path: self.path(),
                source,
            })?;
            guest::Exec::check(&guest::Local::new("local"), &guest::keygen(&key, "lab"))?;
        }
        Ok(key)
    }

    /// The file holding the password of the lab's VM user (`.lab/vm-password`): 24 random
    /// letters and digits from the kernel's random source, written once with mode 600 and
    /// never printed. Installers read it from the file (VBoxManage's `--password-file`), so
    /// it is not on any command line either. Every lab has its own.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// let file = state.password_file().unwrap();
    /// let password = std::fs::read_to_string(&file).unwrap();
    /// assert_eq!(password.len(), 24);
    /// assert_eq!(state.password_file().unwrap(), file); // made once, then kept
    /// assert_eq!(std::fs::read_to_string(&file).unwrap(), password);
    /// ```
    pub fn password_file(&self) -> Result<PathBuf, Error> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.file("vm-password");
        if path.exists() {
            return Ok(path);
        }
        let file_err =
            |what: &'static str, path: PathBuf| move |source| Error::File { what, path, source };
        std::fs::create_dir_all(self.path()).map_err(file_err("cannot create", self.path()))?;
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut password = String::new();
        let mut random = std::fs::File::open("/dev/urandom")
            .map_err(file_err("cannot read", "/dev/urandom".into()))?;
        let mut byte = [0u8; 1];
        while password.len() < 24 {
            random
                .read_exact(&mut byte)
                .map_err(file_err("cannot read", "/dev/urandom".into()))?;
            // Rejection sampling keeps every letter equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(byte[0]) < limit {
                password.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(file_err("cannot create", path.clone()))?;
        f.write_all(password.as_bytes())
            .map_err(file_err("cannot write", path.clone()))?;
        Ok(path)
    }

    /// Forget the host key recorded for `address:port` (a VM destroyed).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// state.forget_host_key("127.0.0.1", 2222).unwrap(); // no known_hosts yet: nothing to do
    /// ```
    pub fn forget_host_key(&self, address: &str, port: u16) -> Result<(), Error> {
        self.forget_known_host(&guest::known_hosts::pattern(address, port))
    }

    /// Forget the keys of a host known as `pattern` (an address, `[address]:port`, or a host
    /// key alias: [`guest::SshConfig::known_hosts_pattern`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// std::fs::create_dir_all(state.path()).unwrap();
    /// std::fs::write(state.known_hosts(), "vm.m1 ssh-ed25519 AAAA\n[127.0.0.1]:2222 ssh-ed25519 BBBB\n").unwrap();
    /// state.forget_known_host("vm.m1").unwrap();
    /// assert_eq!(std::fs::read_to_string(state.known_hosts()).unwrap(), "[127.0.0.1]:2222 ssh-ed25519 BBBB\n");
    /// ```
    pub fn forget_known_host(&self, pattern: &str) -> Result<(), Error> {
        let path = self.known_hosts();
        guest::known_hosts::forget(&path, pattern).map_err(|source| Error::File {
            what: "cannot rewrite",
            path,
            source,
        })
    }

    /// Take the lab's lock for `command` (e.g. `lab up`): one command changes a lab at a time.
    /// When another process holds it, `waiting` is told its PID and command and this waits
    /// (with `wait`), or fails with [`Error::Locked`] naming the holder.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = provider::StateDir::new(dir.path());
    /// let held = state.lock("lab up", false, &mut |_, _| {}).unwrap();
    /// let busy = state.lock("lab down", false, &mut |_, _| {}).unwrap_err();
    /// assert!(busy.to_string().contains("(lab up) is changing it"));
    /// drop(held);
    /// state.lock("lab down", false, &mut |_, _| {}).unwrap();
    /// ```
    pub fn lock(
        &self,
        command: &str,
        wait: bool,
        waiting: &mut dyn FnMut(u32, &str),
    ) -> Result<Lock, Error> {
        use nix::fcntl::{Flock, FlockArg};
        let path = self.file("lock");
        let file_err = |what, source| Error::File {
            what,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(self.path()).map_err(|e| file_err("cannot create", e))?;
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = open().map_err(|e| file_err("cannot open", e))?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, _)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let (pid, cmd) = holder
                    .trim()
                    .split_once(' ')
                    .map(|(p, c)| (p.parse().unwrap_or(0), c.to_string()))
                    .unwrap_or((0, "another lab command".to_string()));
                if !wait {
                    return Err(Error::Locked {
                        dir: self.lab_dir.clone(),
                        pid,
                        command: cmd,
                    });
                }
                waiting(pid, &cmd);
                tracing::info!(pid, command = %cmd, "waiting for the lab's lock");
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, e)| file_err("cannot lock", std::io::Error::from(e)))?
            }
        };
        let me = format!("{} {command}\n", std::process::id());
        let _ = locked
            .set_len(0)
            .and_then(|()| locked.rewind())
            .and_then(|()| locked.write_all(me.as_bytes()))
            .and_then(|()| locked.flush());
        Ok(Lock { _file: locked })
    }
}

/// A held lab lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// lab's cache for `kind` (`images`, `kernel`): `$XDG_CACHE_HOME/lab/<kind>`, else
/// `~/.cache/lab/<kind>`. The one place every provider and the kernel builds keep downloads.
///
/// ```
/// let images = provider::cache_dir("images");
/// assert!(images.ends_with("lab/images"));
/// ```
pub fn cache_dir(kind: &str) -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".lab/cache"))
        .join("lab")
        .join(kind)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_or_waits() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        let held = s.lock("lab up", false, &mut |_, _| {}).unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts as another process's would.
        let e = s.lock("lab down", false, &mut |_, _| {}).unwrap_err();
        match &e {
            Error::Locked { pid, command, .. } => {
                assert_eq!(*pid, std::process::id());
                assert_eq!(command, "lab up");
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("lab up"), "{e}");
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let mut told = None;
        let _second = s
            .lock("lab down", true, &mut |pid, cmd| {
                told = Some((pid, cmd.to_string()))
            })
            .unwrap();
        t.join().unwrap();
        assert_eq!(told, Some((std::process::id(), "lab up".to_string())));
    }

    #[test]
    #[cfg_attr(not(lab_has_ssh_keygen), ignore = "needs ssh-keygen")]
    fn the_lab_key_is_made_once() {
        if !testkit::require("the lab's key", testkit::tool("ssh-keygen")) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        let key = s.key().unwrap();
        assert_eq!(key, dir.path().join(".lab/id_ed25519"));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        let first = std::fs::read(&key).unwrap();
        s.key().unwrap();
        assert_eq!(
            std::fs::read(&key).unwrap(),
            first,
            "an existing key is kept"
        );
    }

    #[test]
    fn vm_passwords_are_random_per_lab_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fa = StateDir::new(a.path()).password_file().unwrap();
        let fb = StateDir::new(b.path()).password_file().unwrap();
        let (pa, pb) = (
            std::fs::read_to_string(&fa).unwrap(),
            std::fs::read_to_string(&fb).unwrap(),
        );
        assert_ne!(pa, pb);
        for (f, p) in [(&fa, &pa), (&fb, &pb)] {
            assert_eq!(p.len(), 24);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{p}");
            let mode = std::fs::metadata(f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
    }
}
