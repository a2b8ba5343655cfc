//! Named network namespaces, compatible with `ip netns`: a namespace is kept alive by a bind mount
//! of its nsfs file on `/run/netns/NAME`, so `ip netns exec NAME ...` and `ip -n NAME ...` work on
//! everything lab creates.
//!
//! Creation and entry happen on a short-lived thread (`unshare`/`setns` change only the calling
//! thread), so the caller's own thread never leaves the namespace it started in, and nothing is
//! ever created in the root namespace.

use std::fs::{self, File};
use std::io;
use std::net::ToSocketAddrs as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::Error;

/// Where named namespaces live (iproute2's NETNS_RUN_DIR).
pub const RUN_DIR: &str = "/run/netns";

/// An open handle on a named network namespace.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    file: File,
}

impl Namespace {
    /// Create the namespace `name` (fails if it exists).
    pub fn create(name: &str) -> Result<Self, Error> {
        Self::create_with(name, || Ok(())).map(|(ns, ())| ns)
    }

    /// Create the namespace `name` and run `init` inside it on the creating thread (saves a
    /// thread and a `setns` for the first configuration step, such as bringing `lo` up).
    pub fn create_with<T: Send>(
        name: &str,
        init: impl FnOnce() -> Result<T, Error> + Send,
    ) -> Result<(Self, T), Error> {
        check_name(name)?;
        prepare_run_dir()?;
        let path = path_of(name);
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        // On the creating thread: unshare, mount, then `init` while still inside.
        let (mounted, made) = std::thread::scope(|s| {
            s.spawn(|| -> (bool, Result<T, Error>) {
                if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
                    return (false, Err(Error::sys("unshare(CLONE_NEWNET)", e)));
                }
                if let Err(e) = mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ) {
                    let what = format!("bind-mounting the namespace on {}", path.display());
                    return (false, Err(Error::sys(what, e)));
                }
                (true, init())
            })
            .join()
            .unwrap_or((false, Err(Error::Panicked)))
        });
        match made {
            Ok(value) => Ok((Self::open(name)?, value)),
            Err(e) => {
                if mounted {
                    let _ = Self::delete(name);
                } else {
                    let _ = fs::remove_file(&path);
                }
                Err(e)
            }
        }
    }

    /// Open an existing namespace.
    pub fn open(name: &str) -> Result<Self, Error> {
        check_name(name)?;
        let path = path_of(name);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NoNamespace(name.to_string())
            } else {
                Error::io(format!("opening {}", path.display()), e)
            }
        })?;
        Ok(Self {
            name: name.to_string(),
            file,
        })
    }

    /// Delete the namespace `name`: unmount and remove its file. The kernel frees the namespace
    /// (and every interface in it) once no process or socket uses it. `Ok(false)` when there was
    /// nothing to delete.
    pub fn delete(name: &str) -> Result<bool, Error> {
        check_name(name)?;
        let path = path_of(name);
        if !path.exists() {
            return Ok(false);
        }
        // A file left by a creation that was killed before its mount is not mounted: EINVAL.
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmounting {}", path.display()), e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }

    /// Every named namespace on this machine.
    pub fn list() -> Result<Vec<String>, Error> {
        let dir = match fs::read_dir(RUN_DIR) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {RUN_DIR}"), e)),
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> Result<Self, Error> {
        Ok(Self {
            name: self.name.clone(),
            file: self
                .file
                .try_clone()
                .map_err(|e| Error::io("duplicating a namespace descriptor", e))?,
        })
    }

    /// The namespace's file descriptor (for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Run `f` on a thread inside this namespace and return its result. Sockets `f` creates
    /// belong to the namespace for their whole life, wherever they are used afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                Ok(f())
            })
            .join()
            .map_err(|_| Error::Panicked)?
        })
    }

    /// Start `f` on a thread inside this namespace (servers and samplers that run alongside).
    /// The handle yields the error instead of running `f` when the thread cannot enter.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, Error>>, Error> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("duplicating a namespace descriptor", e))?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("ns:{name}"))
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::sys(format!("entering namespace {name}"), e))?;
                Ok(f())
            })
            .map_err(|e| Error::io("starting a thread", e))
    }

    fn enter(&self) -> Result<(), Error> {
        setns(&self.file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::sys(format!("entering namespace {}", self.name), e))
    }
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(name)
}

/// Namespace names become file names under /run/netns.
fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// Make /run/netns a shared mount point, as `ip netns add` does, so namespace mounts propagate
/// into the mount namespaces `ip netns exec` creates.
fn prepare_run_dir() -> Result<(), Error> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        fs::create_dir_all(RUN_DIR).map_err(|e| format!("creating {RUN_DIR}: {e}"))?;
        let shared = || {
            mount(
                None::<&str>,
                RUN_DIR,
                Some("none"),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        match shared() {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EINVAL) => {
                mount(
                    Some(RUN_DIR),
                    RUN_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| format!("bind-mounting {RUN_DIR} on itself: {e}"))?;
                shared().map_err(|e| format!("making {RUN_DIR} a shared mount: {e}"))
            }
            Err(e) => Err(format!("making {RUN_DIR} a shared mount: {e}")),
        }
    })
    .clone()
    .map_err(Error::Setup)
}

/// A [`guest::Connector`] whose TCP connection starts inside the namespace `name`: how a lab
/// reaches an sshd that listens on a namespace host's own loopback.
pub fn connector(name: String) -> guest::Connector {
    Box::new(move |c: &guest::SshConfig| {
        let addr = (c.address.as_str(), c.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let timeout = c.connect_timeout;
        Namespace::open(&name)
            .map_err(io::Error::other)?
            .run(|| std::net::TcpStream::connect_timeout(&addr, timeout))
            .map_err(io::Error::other)?
    })
}
