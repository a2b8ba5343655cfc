//! A static HTTP server on loopback for download tests: files by path, a fault mode for the
//! large ones (corrupt a byte, cut the body short), counted requests, and "down" (every
//! request refused with 503, as an unreachable mirror).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Good,
    /// One byte in the middle of every counted file flipped.
    Corrupt,
    /// Content-Length of the whole file, half of it sent.
    Truncated,
    /// 503 for everything.
    Down,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// Large files, streamed from disk as they are (no faults).
    disk: HashMap<String, std::path::PathBuf>,
    gets: HashMap<String, u32>,
}

/// The server; it runs until the test process ends.
#[derive(Debug, Clone)]
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    mode: Arc<Mutex<Mode>>,
    state: Arc<Mutex<State>>,
    faulty: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serve `files` (path -> bytes). Faults apply to paths ending in one of `faulty`.
    pub fn start(files: HashMap<String, Vec<u8>>, faulty: &[&str]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let server = Server {
            base,
            mode: Arc::new(Mutex::new(Mode::Good)),
            state: Arc::new(Mutex::new(State {
                files,
                ..State::default()
            })),
            faulty: Arc::new(Mutex::new(faulty.iter().map(|s| s.to_string()).collect())),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || s.answer(conn));
            }
        });
        server
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// Replace or add a file.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .insert(path.to_string(), bytes);
    }

    /// Serve a file from disk under `path` (a disk image: not read into memory).
    pub fn put_path(&self, path: &str, file: &std::path::Path) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .disk
            .insert(path.to_string(), file.to_path_buf());
    }

    /// How many GETs `path` had (answered or not).
    pub fn gets(&self, path: &str) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gets
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn answer(&self, mut conn: std::net::TcpStream) {
        let Ok(clone) = conn.try_clone() else { return };
        let mut reader = BufReader::new(clone);
        let mut request = String::new();
        if reader.read_line(&mut request).is_err() {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                break;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
        let mode = *self.mode.lock().unwrap_or_else(|e| e.into_inner());
        let (body, on_disk) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            *st.gets.entry(path.clone()).or_default() += 1;
            (st.files.get(&path).cloned(), st.disk.get(&path).cloned())
        };
        if mode == Mode::Down {
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        if let Some(file) = on_disk
            && let Ok(mut f) = std::fs::File::open(&file)
        {
            let length = f.metadata().map(|m| m.len()).unwrap_or(0);
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
            if conn.write_all(head.as_bytes()).is_ok() {
                let _ = std::io::copy(&mut f, &mut conn);
            }
            return;
        }
        let Some(mut body) = body else {
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let length = body.len();
        let faulty = self
            .faulty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|f| path.ends_with(f.as_str()));
        if faulty {
            match mode {
                Mode::Corrupt => {
                    let k = body.len() / 2;
                    body[k] ^= 0xff;
                }
                Mode::Truncated => body.truncate(body.len() / 2),
                Mode::Good | Mode::Down => {}
            }
        }
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
    }
}

/// Lower-case hex SHA-256, for sums files in tests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
