//! The three kinds of check. Each returns a short description of what it saw, good or
//! bad; the caller bounds it with the check's timeout.
use super::Target;
use crate::control::config::CheckType;
use std::net::SocketAddr;
use tokio::net::{TcpSocket, TcpStream};

pub async fn run(t: &Target) -> Result<String, String> {
    match t.check.kind {
        CheckType::Tcp => connect(t).await.map(|_| "connected".to_string()),
        CheckType::Http => http(t).await,
        CheckType::Exec => exec(t).await,
    }
}

/// A TCP connection from the director IP.
async fn connect(t: &Target) -> Result<TcpStream, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::from((t.source, 0)))
        .map_err(|e| format!("bind {}: {e} (is the kernel interface up?)", t.source))?;
    sock.connect(SocketAddr::V4(t.addr)).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect refused".to_string(),
        _ => format!("connect: {e}"),
    })
}

/// `GET path` with `Host: ip[:port]`; the status must be one of `expect` (default 200).
async fn http(t: &Target) -> Result<String, String> {
    let stream = connect(t).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Empty<hyper::body::Bytes>>(io)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    // The connection task ends with the check (the caller's timeout drops this future,
    // and the task with it).
    let conn = tokio::spawn(conn);
    let host = match t.addr.port() {
        80 => t.addr.ip().to_string(),
        p => format!("{}:{p}", t.addr.ip()),
    };
    let path = t.check.path.as_deref().unwrap_or("/");
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, concat!("drlb-check/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::CONNECTION, "close")
        .body(http_body_util::Empty::new())
        .map_err(|e| format!("request: {e}"))?;
    let resp = send.send_request(req).await;
    conn.abort();
    let status = resp.map_err(|e| format!("bad HTTP response: {e}"))?.status().as_u16();
    let want = t.check.expect.as_ref().map_or(vec![200], |e| e.statuses());
    let seen = format!("HTTP {status}");
    if want.contains(&status) {
        Ok(seen)
    } else {
        Err(seen)
    }
}

/// The command (no shell; `%ip` and `%port` replaced), exit status 0 = up. Its output
/// is discarded; at the timeout the caller drops this future and the child is killed.
async fn exec(t: &Target) -> Result<String, String> {
    let line = t.check.command.as_deref().unwrap_or_default();
    let words = shell_words::split(line).map_err(|e| format!("command: {e}"))?;
    let (ip, port) = (t.addr.ip().to_string(), t.addr.port().to_string());
    let words: Vec<String> =
        words.iter().map(|w| w.replace("%ip", &ip).replace("%port", &port)).collect();
    let (prog, args) = words.split_first().ok_or("command: empty")?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let status = child.wait().await.map_err(|e| format!("{prog}: {e}"))?;
    match status.code() {
        Some(0) => Ok("exit 0".into()),
        Some(c) => Err(format!("exit {c}")),
        None => Err("killed by a signal".into()),
    }
}
