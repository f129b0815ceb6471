//! A small HTTP/1.1 client for the agent's own server: `GET`, `Connection: close`, a body
//! of `Content-Length` or chunked, with connect and read timeouts; or a body that follows
//! (`/flows?follow=1`), read line by line as it comes. Enough for talking to the agent on
//! this host; not a general client.

use std::io::{BufRead, BufReader, Read, Write};
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

impl Agent {
    /// `GET path` whose body follows: `on_line` gets each line of it as it comes, until the
    /// agent ends the response or `on_line` returns `false`. The status code; a status
    /// other than 200 reads no body.
    pub fn follow(
        &self,
        path: &str,
        on_line: impl FnMut(&str) -> bool,
    ) -> Result<u16, ClientError> {
        let unreachable = |e: std::io::Error| ClientError::Unreachable {
            agent: self.host.clone(),
            reason: e.to_string(),
        };
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)).map_err(unreachable)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host
        )
        .map_err(unreachable)?;
        read_following(BufReader::new(s), on_line)
    }
}

/// Reads a response whose body follows (see [`Agent::follow`]) from `r`.
pub fn read_following(
    mut r: impl BufRead,
    mut on_line: impl FnMut(&str) -> bool,
) -> Result<u16, ClientError> {
    let bad = |what: &str| ClientError::BadResponse(what.to_string());
    let io = |e: std::io::Error| ClientError::BadResponse(e.to_string());
    let mut line = String::new();
    let mut status = None;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(io)? == 0 {
            return Err(bad("no end of headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        match status {
            None => status = l.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()),
            Some(_) => {
                let l = l.to_ascii_lowercase();
                chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
            }
        }
        if status.is_none() {
            return Err(bad("no status code"));
        }
    }
    let status = status.ok_or_else(|| bad("no status code"))?;
    if status != 200 {
        return Ok(status);
    }
    let mut pending = Vec::new();
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        if chunked {
            line.clear();
            r.read_line(&mut line).map_err(io)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 || size > MAX_BODY {
                return if size == 0 {
                    Ok(status)
                } else {
                    Err(bad("chunk too large"))
                };
            }
            (&mut r)
                .take(size as u64 + 2)
                .read_to_end(&mut chunk)
                .map_err(io)?;
            chunk.truncate(size);
        } else if r.read_until(b'\n', &mut chunk).map_err(io)? == 0 {
            return Ok(status);
        }
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..=end);
            if !on_line(text.trim_end_matches('\r')) {
                return Ok(status);
            }
        }
        if pending.len() > MAX_BODY {
            return Err(bad("line too long"));
        }
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
    fn a_following_body_is_read_line_by_line_across_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab\ncd\r\n3\r\n\nef\r\n2\r\n\n\n\r\n0\r\n\r\n";
        let mut lines = vec![];
        let status = read_following(&raw[..], |l| {
            lines.push(l.to_string());
            true
        });
        assert_eq!(status.unwrap(), 200);
        assert_eq!(lines, ["ab", "cd", "ef", ""]);
        // Stops when told to; another status reads no body; junk is an error, not a panic.
        let mut n = 0;
        read_following(&raw[..], |_| {
            n += 1;
            false
        })
        .unwrap();
        assert_eq!(n, 1);
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nno\n";
        assert_eq!(read_following(&not_found[..], |_| true).unwrap(), 404);
        for bad in [
            &b"junk\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(read_following(bad, |_| true).is_err());
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
