//! The control socket: a Unix stream socket the manager polls between its other duties
//! (never blocking it, never touching the workers).
//!
//! - Directory created 0700 if missing, socket 0600; a stale socket file (no listener)
//!   is replaced, a live one is an error ("another drlb is running").
//! - Each client is checked with `SO_PEERCRED`: root, drlb's own uid, or (with
//!   `--control-group`) a process whose effective gid is that group; the socket is then
//!   0660 and a directory drlb creates 0750, both owned by the group. (`SO_PEERCRED`
//!   carries the effective gid only, not supplementary groups: run drlbadm with
//!   `sg GROUP -c ...` or `newgrp` if the group is not the user's primary one.)
//! - One request line per connection ([`admin::MAX_REQUEST`] bytes at most), read
//!   without blocking; a client that has not sent a full line within [`DEADLINE`] gets
//!   an error and is closed. At most [`MAX_CLIENTS`] are served at once; more are
//!   answered "busy" at once. A reply is written with a short timeout.
//! - A `Watch` request keeps its connection: the manager's [`ControlServer::announce`]
//!   writes the current state to it (without blocking) at every change and every
//!   heartbeat; a watcher that is gone or cannot keep up is dropped. When drlb exits or
//!   crashes, the kernel closes these sockets: a BGP feed sees EOF at once.
use super::protocol::{self as admin, Request, Response};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(2);
pub const MAX_CLIENTS: usize = 64;
/// Connections kept open by `Watch` (BGP feeds) at most.
pub const MAX_WATCHERS: usize = 16;

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    since: Instant,
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    uid: u32,
    gid: Option<u32>,
    /// `Watch` connections, and the line they were last sent.
    watchers: Vec<UnixStream>,
    current: Option<Vec<u8>>,
    last_beat: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {0}: another drlb is listening there (stop it, or pass --control with another path)")]
    InUse(PathBuf),
    #[error("control socket {path}: {source} (is the directory writable? pass --control PATH to use another)")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The gid of a group given by name or number.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

fn chgrp(path: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))
}

/// The peer's (uid, gid) (SO_PEERCRED).
fn peer_cred(s: &UnixStream) -> Option<(u32, u32)> {
    let c = nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some((c.uid(), c.gid()))
}

impl ControlServer {
    /// Binds `path`; `gid`: the group also allowed in (see the module docs).
    pub fn bind(path: &Path, gid: Option<u32>) -> Result<Self, ServerError> {
        let io = |source| ServerError::Io { path: path.to_path_buf(), source };
        let (dir_mode, sock_mode) = if gid.is_some() { (0o750, 0o660) } else { (0o700, 0o600) };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
                    .map_err(io)?;
                if let Some(g) = gid {
                    chgrp(dir, g).map_err(io)?;
                }
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(sock_mode)).map_err(io)?;
        if let Some(g) = gid {
            chgrp(path, g).map_err(io)?;
        }
        listener.set_nonblocking(true).map_err(io)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            uid: nix::unistd::geteuid().as_raw(),
            gid,
            watchers: Vec::new(),
            current: None,
            last_beat: Instant::now(),
        })
    }

    fn line(r: &Response) -> Vec<u8> {
        let mut line = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        line
    }

    /// Sends `line` to a watcher without blocking; false when it cannot take it (gone,
    /// or so far behind that its socket buffer is full): it is then dropped.
    fn tell(w: &mut UnixStream, line: &[u8]) -> bool {
        match w.write(line) {
            Ok(n) => n == line.len(),
            Err(_) => false,
        }
    }

    /// Pushes `data` to every watcher when it differs from what they have, and again
    /// every [`admin::HEARTBEAT`]; watchers that are gone are dropped.
    pub fn announce(&mut self, data: serde_json::Value) {
        let line = Self::line(&Response::ok(Some(data)));
        let changed = self.current.as_ref() != Some(&line);
        if changed || self.last_beat.elapsed() >= admin::HEARTBEAT {
            self.watchers.retain_mut(|w| Self::tell(w, &line));
            self.last_beat = Instant::now();
        }
        self.current = Some(line);
    }

    /// Watchers connected now.
    pub fn watchers(&self) -> usize {
        self.watchers.len()
    }

    /// Turns a client that sent `Watch` into a watcher (it gets the current state now).
    fn watch(&mut self, mut stream: UnixStream) {
        if self.watchers.len() >= MAX_WATCHERS {
            let msg = format!("busy: {MAX_WATCHERS} watchers already (BGP feeds); stop one");
            Self::reply(stream, &Response::err(msg));
            return;
        }
        if let Some(l) = &self.current {
            if !Self::tell(&mut stream, l) {
                return;
            }
        }
        self.watchers.push(stream);
    }

    fn reply(mut stream: UnixStream, r: &Response) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
        let _ = stream.write_all(&Self::line(r));
    }

    /// Waits at most `timeout` for a connection or a client's next bytes (poll(2) on the
    /// listener and the clients with a request under way; a signal ends it early): the
    /// manager sleeps between its rounds and still answers a request as it arrives.
    pub fn wait(&self, timeout: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds: Vec<PollFd> = std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|c| c.stream.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let _ = poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX));
    }

    /// Accepts, reads and answers what is ready now; `handle` runs each complete request.
    pub fn poll(&mut self, mut handle: impl FnMut(Request) -> Response) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    match peer_cred(&stream) {
                        Some((u, g)) if u == 0 || u == self.uid || Some(g) == self.gid => {}
                        other => {
                            let who = other
                                .map_or("unknown peer".into(), |(u, g)| format!("uid {u} gid {g}"));
                            let allowed = match self.gid {
                                Some(g) => format!("root, uid {} or gid {g}", self.uid),
                                None => format!("root or uid {}", self.uid),
                            };
                            Self::reply(stream, &Response::err(format!("permission denied: {who} may not control drlb ({allowed} only)")));
                            continue;
                        }
                    }
                    if self.clients.len() >= MAX_CLIENTS {
                        Self::reply(
                            stream,
                            &Response::err("busy: too many control clients at once; try again"),
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream,
                            buf: Vec::new(),
                            since: Instant::now(),
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < self.clients.len() {
            let c = &mut self.clients[i];
            let mut chunk = [0u8; 4096];
            let mut done: Option<Response> = None;
            let mut watch = false;
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        done = Some(Response::err("request ended without a newline"));
                        break;
                    }
                    Ok(n) => {
                        c.buf.extend_from_slice(&chunk[..n]);
                        if let Some(pos) = c.buf.iter().position(|&b| b == b'\n') {
                            done = Some(match admin::parse_request(&c.buf[..pos]) {
                                Ok(Request::Watch {}) => {
                                    watch = true;
                                    Response::ok(None)
                                }
                                Ok(req) => handle(req),
                                Err(e) => Response::err(e),
                            });
                            break;
                        }
                        if c.buf.len() > admin::MAX_REQUEST {
                            done = Some(Response::err(format!(
                                "request too large (more than {} bytes)",
                                admin::MAX_REQUEST
                            )));
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        done = Some(Response::err("read error"));
                        break;
                    }
                }
            }
            if done.is_none() && c.since.elapsed() > DEADLINE {
                done = Some(Response::err(format!(
                    "timed out: no complete request within {} s",
                    DEADLINE.as_secs()
                )));
            }
            match done {
                Some(_) if watch => {
                    let c = self.clients.swap_remove(i);
                    self.watch(c.stream);
                }
                Some(r) => {
                    let c = self.clients.swap_remove(i);
                    Self::reply(c.stream, &r);
                }
                None => i += 1,
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wait` sleeps its timeout when nothing comes, and returns as soon as a client
    /// connects or sends its request's bytes (the manager's prompt answer).
    #[test]
    fn wait_returns_on_a_connection_and_on_bytes() {
        let dir = std::env::temp_dir().join(format!("drlb-wait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sock");
        let mut srv = ControlServer::bind(&path, None).unwrap();
        let t = Instant::now();
        srv.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(45), "returned early with nothing to read");

        let p = path.clone();
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut s = UnixStream::connect(&p).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            s.write_all(b"{\"Li").unwrap(); // part of a request, no newline yet
            std::thread::sleep(Duration::from_millis(500));
        });
        let t = Instant::now();
        srv.wait(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5), "a connection did not end the wait");
        srv.poll(|_| Response::ok(None)); // accepts it: a client with a request under way
        assert_eq!(srv.clients.len(), 1);
        let t = Instant::now();
        srv.wait(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5), "a client's bytes did not end the wait");
        client.join().unwrap();
        drop(srv);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
