//! A small HTTP/1.1 client for the agent's own server: `GET`, `Connection: close`, a body
//! of `Content-Length` or chunked, with connect and read timeouts. Enough for talking to
//! the agent on this host; not a general client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a request to the agent failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `--agent` is not `http://host:port`.
    #[error("--agent {0:?}: expected http://HOST:PORT")]
    BadAgent(String),
    /// The agent could not be reached.
    #[error(
        "cannot reach the agent at {agent}: {reason} (is calico-agent running, with --http there?)"
    )]
    Unreachable {
        /// The address.
        agent: String,
        /// Why.
        reason: String,
    },
    /// The answer is not HTTP as the agent speaks it.
    #[error("bad answer from the agent: {0}")]
    BadResponse(String),
}

/// The agent's address, from `http://host:port` (a trailing `/` allowed).
#[derive(Clone, Debug)]
pub struct Agent {
    addr: SocketAddr,
    host: String,
}

/// Longest answer read (the matrix and flows of a busy host fit well within).
const MAX_BODY: usize = 64 << 20;

impl Agent {
    /// Parses `--agent`.
    pub fn parse(url: &str) -> Result<Agent, ClientError> {
        let bad = || ClientError::BadAgent(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let addr = host
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Agent {
            addr,
            host: host.to_string(),
        })
    }

    /// `GET path` (with its query): the status code and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), ClientError> {
        let unreachable = |e: std::io::Error| ClientError::Unreachable {
            agent: self.host.clone(),
            reason: e.to_string(),
        };
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(unreachable)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n\r\n",
            self.host
        )
        .map_err(unreachable)?;
        let mut raw = Vec::new();
        s.take(MAX_BODY as u64 + 65536)
            .read_to_end(&mut raw)
            .map_err(unreachable)?;
        parse_response(&raw)
    }
}

/// Splits a whole HTTP/1.1 response into its status and body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), ClientError> {
    let bad = |what: &str| ClientError::BadResponse(what.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    if body.len() > MAX_BODY {
        return Err(bad("body too large"));
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a chunked body; a body cut short keeps the chunks that arrived whole.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Some(out);
        };
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let start = eol + 2;
        let chunk = body.get(start..start.checked_add(size)?)?;
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_addresses_are_checked() {
        assert!(Agent::parse("http://127.0.0.1:9091/").is_ok());
        for bad in [
            "127.0.0.1:9091",
            "http://",
            "http://127.0.0.1:9091/x",
            "https://a:1",
        ] {
            let e = Agent::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--agent"), "{bad}: {e}");
        }
    }

    #[test]
    fn responses_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi").unwrap();
        assert_eq!((s, b.as_str()), (200, "hi"));
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (s, b) = parse_response(raw).unwrap();
        assert_eq!((s, b.as_str()), (404, "abcde"));
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"junk\r\n\r\n",
            b"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse_response(bad).is_err());
        }
        // A chunk size beyond the body does not panic.
        let _ = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx",
        );
    }
}
