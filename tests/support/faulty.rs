//! Receivers that misbehave, for the fault tests: one that accepts connections and never
//! answers ([`Hung`]), and one that answers every request after a delay ([`Slow`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Accepts connections and never answers; reads what each sends until the peer closes it.
pub struct Hung {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Hung {
    pub fn start() -> Hung {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, o) = (accepted.clone(), open.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                std::thread::spawn(move || {
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Hung {
            addr,
            accepted,
            open,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Answers 200 after `delay`, counting the requests it holds at once.
pub struct Slow {
    pub addr: SocketAddr,
    /// Requests held right now.
    pub now: Arc<AtomicUsize>,
    /// The most requests held at once.
    pub most: Arc<AtomicUsize>,
    /// Requests answered.
    pub served: Arc<AtomicUsize>,
}

impl Slow {
    pub fn start(delay: Duration) -> Slow {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = || Arc::new(AtomicUsize::new(0));
        let (now, most, served) = (counters(), counters(), counters());
        let (n, m, s) = (now.clone(), most.clone(), served.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let (n, m, s) = (n.clone(), m.clone(), s.clone());
                std::thread::spawn(move || {
                    if !read_request(&mut stream) {
                        return;
                    }
                    let at_once = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(at_once, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    n.fetch_sub(1, Ordering::SeqCst);
                    s.fetch_add(1, Ordering::SeqCst);
                    let reply = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                    stream.write_all(reply.as_bytes()).ok();
                });
            }
        });
        Slow {
            addr,
            now,
            most,
            served,
        }
    }
}

/// Reads one HTTP request (headers and a `content-length` body); false if the peer left.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
