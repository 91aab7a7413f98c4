//! The client side of the control socket (`drlbadm`): one request, one reply.
use super::protocol::{Request, Response};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Client side: sends one request, returns the response.
pub fn call(path: &Path, req: &Request) -> Result<Response, String> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(m) = std::fs::metadata(path) {
        if !m.file_type().is_socket() {
            let what = if m.is_dir() { "a directory" } else { "not a socket" };
            return Err(format!(
                "{} is {what}: drlb's control socket is the path given to drlb --control (set --socket or $DRLB_SOCKET)",
                path.display()
            ));
        }
    }
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is drlb running? set --socket or $DRLB_SOCKET)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&out).map_err(|e| format!("bad reply from drlb: {e}"))
}
