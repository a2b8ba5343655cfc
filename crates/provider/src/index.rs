//! This machine's labs, like `vagrant global-status` and `containerlab inspect --all`: every
//! lab that was brought up, by directory and name, with its providers and last known state.
//!
//! Kept in `$XDG_STATE_HOME/lab/labs.json` (else `~/.local/state/lab/labs.json`), changed
//! under a lock and written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::state::{read_json, write_json};

/// One lab of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The lab's directory (absolute).
    pub dir: PathBuf,
    /// The lab's name.
    pub name: String,
    /// The providers its hosts use.
    pub providers: Vec<String>,
    /// `up`, `halted`, ... as of the last command that changed it.
    pub state: String,
    /// Seconds since the epoch of that command.
    pub updated: u64,
    /// Whether the directory still exists (computed when listed).
    #[serde(skip_deserializing, default)]
    pub dir_exists: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    labs: Vec<Entry>,
}

/// Where the index lives.
///
/// ```
/// assert!(provider::index::path().ends_with("lab/labs.json"));
/// ```
pub fn path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lab/labs.json")
}

fn change<R>(f: impl FnOnce(&mut Vec<Entry>) -> R) -> Result<R, Error> {
    use nix::fcntl::{Flock, FlockArg};
    let path = path();
    let lock_path = path.with_extension("lock");
    let io = |what, source| Error::File {
        what,
        path: path.clone(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io("cannot create the folder of", e))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io("cannot open the lock of", e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| io("cannot lock", std::io::Error::from(e)))?;
    let mut index: Index = read_json(&path);
    let r = f(&mut index.labs);
    write_json(&path, &index).map_err(|e| io("cannot write", e))?;
    Ok(r)
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Record a lab (replacing what was known of the same directory and name).
///
/// ```no_run
/// provider::index::record("/srv/mptcp-lab".as_ref(), "guide", vec!["qemu".into()], "up").unwrap();
/// ```
pub fn record(dir: &Path, name: &str, providers: Vec<String>, state: &str) -> Result<(), Error> {
    let dir = absolute(dir);
    let updated = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    change(|labs| {
        labs.retain(|e| !(e.dir == dir && e.name == name));
        labs.push(Entry {
            dir,
            name: name.to_string(),
            providers,
            state: state.to_string(),
            updated,
            dir_exists: true,
        });
    })
}

/// Forget a lab (destroyed).
///
/// ```no_run
/// provider::index::forget("/srv/mptcp-lab".as_ref(), "guide").unwrap();
/// ```
pub fn forget(dir: &Path, name: &str) -> Result<(), Error> {
    let dir = absolute(dir);
    change(|labs| labs.retain(|e| !(e.dir == dir && e.name == name)))
}

/// Every lab known, with whether its directory still exists.
///
/// ```no_run
/// for e in provider::index::list() {
///     println!("{} {} {} {}", e.dir.display(), e.name, e.providers.join(","), e.state);
/// }
/// ```
pub fn list() -> Vec<Entry> {
    let index: Index = read_json(&path());
    index
        .labs
        .into_iter()
        .map(|mut e| {
            e.dir_exists = e.dir.is_dir();
            e
        })
        .collect()
}

/// The lab of this name that another directory (one that still exists) brought up, if any.
/// Namespaces and VMs are named after the lab, so a second directory with the same name
/// would take that lab over.
///
/// ```no_run
/// if let Some(other) = provider::index::elsewhere("/srv/b".as_ref(), "mptcp") {
///     eprintln!("`mptcp` is up in {}", other.dir.display());
/// }
/// ```
pub fn elsewhere(dir: &Path, name: &str) -> Option<Entry> {
    let dir = absolute(dir);
    list()
        .into_iter()
        .find(|e| e.name == name && e.dir != dir && e.dir_exists)
}

/// The labs recorded for `dir` (one, unless the lab was renamed while it was up).
///
/// ```no_run
/// for e in provider::index::in_dir("/srv/mptcp-lab".as_ref()) {
///     println!("{} is {}", e.name, e.state);
/// }
/// ```
pub fn in_dir(dir: &Path) -> Vec<Entry> {
    let dir = absolute(dir);
    list().into_iter().filter(|e| e.dir == dir).collect()
}

/// Drop the labs whose directory is gone; returns them.
///
/// ```no_run
/// let gone = provider::index::prune().unwrap();
/// println!("forgot {} labs whose directory is gone", gone.len());
/// ```
pub fn prune() -> Result<Vec<Entry>, Error> {
    change(|labs| {
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = labs.drain(..).partition(|e| !e.dir.is_dir());
        *labs = kept;
        gone
    })
}
