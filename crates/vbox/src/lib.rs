//! A typed wrapper over VBoxManage: argv builders for every operation lab uses ([`args`]),
//! parsers for its machine-readable output and errors ([`parse`]), the differences between
//! releases ([`version`]), and a runner ([`VBoxManage`]) that calls it through the command
//! seam with `LC_ALL=C`, classifies failures and retries session-lock errors. The only crate
//! that knows VBoxManage syntax. `fake` (behind the feature `fake`) is a stand-in VBoxManage
//! for tests.
//!
//! VirtualBox cannot run on the machines this project is developed and tested on: everything
//! here is tested against recorded output (fixtures/vbox) and the fake, never against a real
//! VirtualBox. See README.md.

pub mod args;
#[cfg(feature = "fake")]
pub mod fake;
pub mod parse;
pub mod version;

use std::sync::OnceLock;
use std::time::Duration;

use guest::{Command, Exec};

pub use args::Call;
pub use parse::{ErrorKind, State, VmInfo};
pub use version::{Quirks, Version};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "VBoxManage was not found (`{program}`): install VirtualBox 6.1 to 7.1 (virtualbox.org or your distribution), or set LAB_VBOXMANAGE to its path"
    )]
    NotInstalled { program: String },
    #[error(
        "VirtualBox's kernel driver is not loaded, so no VM can start: run `sudo /sbin/vboxconfig` (with Secure Boot on, the vboxdrv module must be signed first). `{call}` said: {message}"
    )]
    Driver { call: String, message: String },
    #[error("`{call}`: {message} (VBOX_E_OBJECT_NOT_FOUND)")]
    NotFound { call: String, message: String },
    #[error(
        "`{call}`: the VM stayed locked by another session after {attempts} attempts: {message}. Another VirtualBox process (the GUI, a stuck VBoxHeadless) holds it"
    )]
    Locked {
        call: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "`{call}`: access denied (E_ACCESSDENIED): {message}. Check that this user owns ~/.config/VirtualBox and the VM's folder"
    )]
    AccessDenied { call: String, message: String },
    #[error("`{call}` failed with {status}: {stderr}")]
    Failed {
        call: String,
        status: guest::Status,
        code: Option<String>,
        stderr: String,
    },
    #[error("VirtualBox {0} is not supported (lab knows 6.1 to 7.1)")]
    Unsupported(Version),
    #[error("cannot read `VBoxManage --version` output: {0:?}")]
    Version(String),
    #[error("`{call}`: {source}")]
    Parse {
        call: String,
        source: parse::ParseError,
    },
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
}

impl Error {
    /// The parsed error kind, for callers that treat "not found" as an answer.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::NotFound { .. } => Some(ErrorKind::NotFound),
            Error::Locked { .. } => Some(ErrorKind::Locked),
            Error::AccessDenied { .. } => Some(ErrorKind::AccessDenied),
            Error::Driver { .. } => Some(ErrorKind::Driver),
            _ => None,
        }
    }
}

/// VBoxManage on a host, through the command seam.
pub struct VBoxManage<'a> {
    exec: &'a dyn Exec,
    program: String,
    /// Attempts for a call that meets a session lock (the first included).
    pub lock_attempts: u32,
    /// The first wait after a lock error; doubled each time.
    pub lock_backoff: Duration,
    version: OnceLock<Version>,
}

impl std::fmt::Debug for VBoxManage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VBoxManage")
            .field("host", &self.exec.host())
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl<'a> VBoxManage<'a> {
    /// `program` is `VBoxManage` (looked up on PATH) or a path.
    pub fn new(exec: &'a dyn Exec, program: impl Into<String>) -> Self {
        VBoxManage {
            exec,
            program: program.into(),
            lock_attempts: 6,
            lock_backoff: Duration::from_millis(500),
            version: OnceLock::new(),
        }
    }

    /// The program from `LAB_VBOXMANAGE`, else `VBoxManage`.
    pub fn from_env(exec: &'a dyn Exec) -> Self {
        let program = std::env::var("LAB_VBOXMANAGE").unwrap_or_else(|_| "VBoxManage".into());
        Self::new(exec, program)
    }

    /// The full argv: `env LC_ALL=C LANG=C VBoxManage ARGS` (English, parseable messages).
    pub fn argv(&self, call: &Call) -> Vec<String> {
        let mut argv = vec![
            "env".to_string(),
            "LC_ALL=C".into(),
            "LANG=C".into(),
            self.program.clone(),
        ];
        argv.extend(call.args.iter().cloned());
        argv
    }

    /// Run a call; its stdout on success. A non-zero exit, or stderr with
    /// `VBoxManage: error:`, is an error; lock errors are retried with backoff.
    pub fn run(&self, call: &Call) -> Result<String, Error> {
        let mut wait = self.lock_backoff;
        let mut attempt = 1;
        loop {
            let out = self
                .exec
                .run(&Command::new(self.argv(call)).timeout(Duration::from_secs(3600)))
                .map_err(Box::new)?;
            let stderr = out.stderr_lossy();
            let stdout = out.stdout_lossy();
            // `env` exits 127 when it cannot find the program.
            if out.status == guest::Status::Code(127) && !stderr.contains("VBoxManage: error:") {
                return Err(Error::NotInstalled {
                    program: self.program.clone(),
                });
            }
            if out.success() && !stderr.contains("VBoxManage: error:") {
                return Ok(stdout);
            }
            let e = parse::error(&format!("{stderr}\n{stdout}"));
            let shown = call.to_string();
            match e.kind {
                ErrorKind::Locked if attempt < self.lock_attempts => {
                    tracing::debug!("{shown}: locked, retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait *= 2;
                    attempt += 1;
                    continue;
                }
                ErrorKind::Locked => {
                    return Err(Error::Locked {
                        call: shown,
                        attempts: attempt,
                        message: e.message,
                    });
                }
                ErrorKind::NotFound => {
                    return Err(Error::NotFound {
                        call: shown,
                        message: e.message,
                    });
                }
                ErrorKind::AccessDenied => {
                    return Err(Error::AccessDenied {
                        call: shown,
                        message: e.message,
                    });
                }
                ErrorKind::Driver => {
                    return Err(Error::Driver {
                        call: shown,
                        message: e.message,
                    });
                }
                ErrorKind::Syntax | ErrorKind::Other => {
                    return Err(Error::Failed {
                        call: shown,
                        status: out.status,
                        code: e.code,
                        stderr: stderr.trim_end().to_string(),
                    });
                }
            }
        }
    }

    /// The installed release (asked once).
    pub fn version(&self) -> Result<Version, Error> {
        if let Some(v) = self.version.get() {
            return Ok(v.clone());
        }
        let out = self.run(&args::version())?;
        let v = Version::parse(&out).ok_or_else(|| Error::Version(out.trim().to_string()))?;
        Ok(self.version.get_or_init(|| v).clone())
    }

    /// The release's syntax differences.
    pub fn quirks(&self) -> Result<Quirks, Error> {
        Ok(self.version()?.quirks())
    }

    /// Every registered VM.
    pub fn list_vms(&self) -> Result<Vec<parse::Listed>, Error> {
        Ok(parse::list(&self.run(&args::list_vms())?))
    }

    /// A VM's settings and state; `None` when no such VM is registered.
    pub fn show(&self, vm: &str) -> Result<Option<VmInfo>, Error> {
        let call = args::showvminfo(vm);
        match self.run(&call) {
            Ok(out) => parse::showvminfo(&out)
                .map(Some)
                .map_err(|source| Error::Parse {
                    call: call.to_string(),
                    source,
                }),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The VM's snapshots, in order.
    pub fn snapshots(&self, vm: &str) -> Result<Vec<String>, Error> {
        match self.run(&args::snapshot_list(vm)) {
            Ok(out) => Ok(parse::snapshots(&out)),
            // "This machine does not have any snapshots" exits 1 without a code.
            Err(Error::Failed { stderr, .. }) if stderr.contains("does not have any snapshots") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }
}
