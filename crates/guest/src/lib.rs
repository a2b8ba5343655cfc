//! The command seam every effectful crate acts through: run an argv (captured or streamed), put
//! and get files, on a host. Implementations: [`Local`] (this machine), [`Netns`] (a network
//! namespace on this machine, via `ip netns exec`), and [`Fake`] (scripted, for unit tests: any
//! command it was not told to expect is an error). The SSH implementation comes with the guests
//! issue.
//!
//! Commands are argv lists, never shell strings. A non-zero exit is not an error of [`Exec::run`]
//! (callers decide what a status means); [`Exec::check`] turns it into [`Error::Failed`], which
//! carries the host, the argv, the status and stderr.

pub mod cancel;
mod fake;
mod jump;
pub mod known_hosts;
mod local;
mod ssh;
pub mod sshd;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use fake::Fake;
pub use local::{InNetns, Local, Netns, replace_process};
pub use ssh::{Auth, Connector, Ssh, SshConfig, direct, keygen};

/// A command to run: argv, an optional timeout and optional standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub timeout: Option<Duration>,
    pub stdin: Option<Vec<u8>>,
    /// Safe to run again if the connection breaks while it runs (reads, idempotent writes).
    pub retry_safe: bool,
    /// Ended (its process group killed) when an interrupt is requested ([`cancel`]).
    pub cancellable: bool,
}

impl Command {
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: None,
            stdin: None,
            retry_safe: false,
            cancellable: false,
        }
    }

    /// End the command when an interrupt is requested ([`cancel::request`]): for traffic
    /// tools and other long runs, not for the clean-up that follows an interrupt.
    pub fn cancellable(mut self) -> Self {
        self.cancellable = true;
        self
    }

    /// Mark the command safe to repeat after a dropped connection.
    pub fn retry_safe(mut self) -> Self {
        self.retry_safe = true;
        self
    }

    pub fn timeout(mut self, after: Duration) -> Self {
        self.timeout = Some(after);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Status {
    pub fn success(self) -> bool {
        self == Status::Code(0)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Code(c) => write!(f, "exit status {c}"),
            Status::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// A finished command's status and full output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit status 0 with the given stdout and no stderr.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            status: Status::Code(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    /// A failure with the given exit code and stderr.
    pub fn failed(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            status: Status::Code(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Mode and owner of a file written by [`Exec::put_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode {
    pub mode: u32,
    /// `(uid, gid)`; `None` keeps the writer's.
    pub owner: Option<(u32, u32)>,
}

impl FileMode {
    pub fn mode(mode: u32) -> Self {
        Self { mode, owner: None }
    }
}

/// Why a command or file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{host}: `{}` failed with {status}: {}", show(argv), stderr.trim_end())]
    Failed {
        host: String,
        argv: Vec<String>,
        status: Status,
        stderr: String,
    },
    #[error("{host}: cannot start `{}`: {source}", show(argv))]
    Spawn {
        host: String,
        argv: Vec<String>,
        source: std::io::Error,
    },
    #[error(
        "{host}: `{}` did not finish within {after:?} and was killed",
        show(argv)
    )]
    Timeout {
        host: String,
        argv: Vec<String>,
        after: Duration,
    },
    #[error("{host}: `{}` was stopped: interrupted", show(argv))]
    Cancelled { host: String, argv: Vec<String> },
    #[error("{host}: cannot {op} {}: {source}", path.display())]
    File {
        host: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{host}: cannot connect to {target} ({step}): {message}")]
    Connect {
        host: String,
        target: String,
        step: &'static str,
        message: String,
    },
    #[error(
        "{host}: the host key of {target} has CHANGED: {known_hosts} has {known}, the server offers {offered}. If the machine was rebuilt, delete its line from {known_hosts}; otherwise someone may be in between",
        known_hosts = known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        target: String,
        known: String,
        offered: String,
        known_hosts: PathBuf,
    },
    #[error(
        "{host}: {target} offers host key {offered}, which is not in {known_hosts}; lab trusts a key on first use only for machines it created (add the key to that file to trust it)",
        known_hosts = known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        target: String,
        offered: String,
        known_hosts: PathBuf,
    },
    #[error(
        "{host}: the SSH session to {target} broke during `{}`: {message}",
        show(argv)
    )]
    SessionLost {
        host: String,
        target: String,
        argv: Vec<String>,
        message: String,
    },
    #[error(
        "{host}: `{}` needs a terminal, and this host cannot lend one (run it on the machine itself)",
        show(argv)
    )]
    NoTerminal { host: String, argv: Vec<String> },
    #[error("{host}: unexpected command `{}` ({expected})", show(argv))]
    Unexpected {
        host: String,
        argv: Vec<String>,
        expected: String,
    },
}

/// An argv for messages, quoted as a shell would need it.
fn show(argv: &[String]) -> String {
    net::shell::join(argv)
}

/// Acting on one host.
pub trait Exec: Send + Sync {
    /// The host's name, for messages.
    fn host(&self) -> &str;

    /// Run a command and capture its whole output. A non-zero exit is returned, not an error.
    fn run(&self, cmd: &Command) -> Result<Output, Error>;

    /// Run a command and hand each output line to `on_line` as it arrives (long builds).
    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Status, Error>;

    /// Run a command and hand its output to `sink` as bytes, as they arrive: a binary stream
    /// such as `tcpdump -w -`. The default hands the whole output over once the command ends;
    /// seams that can do better (SSH) stream it.
    fn run_bytes(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<Status, Error> {
        let out = self.run(cmd)?;
        sink(Stream::Stdout, &out.stdout);
        sink(Stream::Stderr, &out.stderr);
        Ok(out.status)
    }

    /// Write a file atomically (a temp file in the same directory, then rename).
    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error>;

    /// Read a whole file.
    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error>;

    /// Run a command on the user's terminal (stdin, stdout and stderr inherited), such as
    /// `make menuconfig`. Only a local host has a terminal to lend; the others refuse.
    fn interactive(&self, cmd: &Command) -> Result<Status, Error> {
        Err(Error::NoTerminal {
            host: self.host().to_string(),
            argv: cmd.argv.clone(),
        })
    }

    /// Run a command that must succeed: a non-zero exit becomes [`Error::Failed`].
    fn check(&self, cmd: &Command) -> Result<Output, Error> {
        let out = self.run(cmd)?;
        if out.success() {
            Ok(out)
        } else {
            Err(Error::Failed {
                host: self.host().to_string(),
                argv: cmd.argv.clone(),
                status: out.status,
                stderr: out.stderr_lossy(),
            })
        }
    }
}
