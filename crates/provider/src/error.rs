//! The provider interface's errors: each names the provider, and keeps its source.

use std::path::PathBuf;

use serde::Serialize;

/// Something this machine lacks to run a provider's hosts, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// What is missing, e.g. `qemu-system-x86_64`.
    pub what: String,
    /// How to get it, e.g. `apt-get install qemu-system-x86`.
    pub fix: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (fix: {})", self.what, self.fix)
    }
}

/// Errors of providers and of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider does not do this operation.
    #[error("provider \"{provider}\" cannot {operation}{}", if why.is_empty() { String::new() } else { format!(": {why}") })]
    Unsupported {
        /// The provider's name.
        provider: String,
        /// The operation, e.g. `snapshot`.
        operation: String,
        /// Why, or what to do instead (may be empty).
        why: String,
    },
    /// No provider of this name is registered.
    #[error("host `{host}` uses provider \"{provider}\", which is not registered (known: {known})")]
    UnknownProvider {
        /// The host that names it.
        host: String,
        /// The name it gives.
        provider: String,
        /// The registered providers' names.
        known: String,
    },
    /// The machine lacks what the provider needs.
    #[error("provider \"{provider}\" cannot run here: {}", missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Missing {
        /// The provider's name.
        provider: String,
        /// What it lacks, each with the fix.
        missing: Vec<Missing>,
    },
    /// Hosts that did not answer.
    #[error("provider \"{provider}\": {}", unreachable.iter().map(|(h, e)| format!("host `{h}` is unreachable: {e}")).collect::<Vec<_>>().join("; "))]
    Unreachable {
        /// The provider's name.
        provider: String,
        /// (host, why)
        unreachable: Vec<(String, String)>,
    },
    /// The host is not up (its machine does not exist or does not run).
    #[error("host `{host}` (provider \"{provider}\") is not up: run `lab up`")]
    NotUp {
        /// The provider's name.
        provider: String,
        /// The host.
        host: String,
    },
    /// No host of this name in the lab.
    #[error("no host `{0}` in this lab")]
    NoHost(String),
    /// A provider's own failure, with its source.
    #[error("provider \"{provider}\": {source}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A command failed (argv, status and stderr are in the source).
    #[error(transparent)]
    Command(#[from] Box<guest::Error>),
    /// A state file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    File {
        /// What was done, e.g. `cannot write`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A Vagrant box cannot be used as the image.
    #[error("image `{image}`: {message}")]
    Box {
        /// The image Lab.toml names.
        image: String,
        /// Why.
        message: String,
    },
    /// A named box is not in Vagrant's home, or its metadata is unreadable.
    #[error(transparent)]
    BoxLookup(#[from] boxes::Error),
    /// A box's download failed or did not match its checksum.
    #[error(transparent)]
    Download(#[from] fetch::Error),
    /// A VM made from a box accepts none of the keys lab has for it.
    #[error("host `{host}`: {message}")]
    Login {
        /// The host.
        host: String,
        /// The keys tried and what the VM said.
        message: String,
    },
    /// Another command holds the lab's lock.
    #[error("lab in {} is busy: process {pid} ({command}) is changing it", dir.display())]
    Locked {
        /// The lab's directory.
        dir: PathBuf,
        /// The holder's process id.
        pid: u32,
        /// The holder's command, e.g. `lab up`.
        command: String,
    },
}

impl Error {
    /// `provider` cannot do `operation` (`why`: the reason or the alternative, may be empty).
    ///
    /// ```
    /// let e = provider::Error::unsupported("ssh", "halt", "lab did not create these machines");
    /// assert_eq!(e.to_string(), "provider \"ssh\" cannot halt: lab did not create these machines");
    /// ```
    pub fn unsupported(provider: &str, operation: &str, why: &str) -> Self {
        Self::Unsupported {
            provider: provider.to_string(),
            operation: operation.to_string(),
            why: why.to_string(),
        }
    }

    /// A provider's own error.
    ///
    /// ```
    /// let io = std::io::Error::other("no space left");
    /// let e = provider::Error::provider("qemu", io);
    /// assert_eq!(e.to_string(), "provider \"qemu\": no space left");
    /// assert!(std::error::Error::source(&e).is_some());
    /// ```
    pub fn provider(provider: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Provider {
            provider: provider.to_string(),
            source: Box::new(e),
        }
    }
}

impl From<guest::Error> for Error {
    fn from(e: guest::Error) -> Self {
        Self::Command(Box::new(e))
    }
}
