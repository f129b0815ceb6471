//! The HTTP server (hyper): `GET /metrics`, `/status`, `/liveness`, `/readiness`, and what
//! [`Pages::get`] adds (the API and the page, which need the query string and may wait).
//!
//! It must never cost the agent its work: connections are capped (more wait in the listen
//! backlog, so file descriptors stay bounded), a client that does not send its request
//! headers in time is dropped, every connection has a lifetime, and an accept error such
//! as running out of file descriptors backs off instead of spinning.

use std::convert::Infallible;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

/// A response: status, content type and body.
pub struct Page {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body (before the stream, if any).
    pub body: String,
    /// The rest of the body, chunk by chunk as they come, until the sender is dropped: a
    /// response that follows (`GET /flows?follow=1`). Such a connection may live
    /// [`Limits::stream_lifetime`].
    pub stream: Option<mpsc::Receiver<Bytes>>,
}

impl Page {
    /// A 200 page.
    pub fn ok(content_type: &'static str, body: String) -> Page {
        Page::with_status(StatusCode::OK, content_type, body)
    }

    /// A page with `status`.
    pub fn with_status(status: StatusCode, content_type: &'static str, body: String) -> Page {
        Page {
            status,
            content_type,
            body,
            stream: None,
        }
    }

    /// A 200 page whose body is `first`, then what `chunks` gives, as it comes.
    pub fn stream(
        content_type: &'static str,
        first: String,
        chunks: mpsc::Receiver<Bytes>,
    ) -> Page {
        Page {
            stream: Some(chunks),
            ..Page::ok(content_type, first)
        }
    }
}

/// A body sent chunk by chunk as a channel gives them; it ends when the sender is dropped.
struct ChannelBody {
    first: Option<Bytes>,
    rest: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rest
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A whole body or a channel's.
type PageBody = Either<Full<Bytes>, ChannelBody>;

/// What the server serves: a page per path.
#[async_trait::async_trait]
pub trait Pages: Send + Sync + 'static {
    /// The page at `path`, or `None` for 404.
    fn page(&self, path: &str) -> Option<Page>;

    /// The page at `path` with its query string (without the `?`; empty if none): pages that
    /// read parameters or wait for the agent. By default, [`Pages::page`].
    async fn get(&self, path: &str, query: &str) -> Option<Page> {
        let _ = query;
        self.page(path)
    }
}

/// Limits of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Longest life of a connection (keep-alive included).
    pub connection_lifetime: Duration,
    /// Longest life of a connection whose response follows ([`Page::stream`]); the client
    /// reconnects after it.
    pub stream_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            stream_lifetime: Duration::from_secs(3600),
        }
    }
}

/// Serves `pages` on `listener` until the task is dropped. `dropped` counts connections
/// closed for being slow or idle.
pub async fn serve(listener: TcpListener, pages: Arc<dyn Pages>, limits: Limits, dropped: Counter) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut accept_errors = 0u32;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                accept_errors = 0;
                stream
            }
            Err(e) => {
                // EMFILE and the like: accepting again at once would spin. Back off.
                if accept_errors == 0 {
                    warn!(error = %e, "HTTP server cannot accept connections; backing off");
                }
                accept_errors = accept_errors.saturating_add(1);
                let wait = Duration::from_millis(10 << accept_errors.min(7));
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let pages = pages.clone();
        let limits = limits.clone();
        let dropped = dropped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let streaming = Arc::new(AtomicBool::new(false));
            let streams = streaming.clone();
            let service = service_fn(move |req| {
                let (pages, streams) = (pages.clone(), streams.clone());
                async move { Ok::<_, Infallible>(respond(&*pages, &req, &streams).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = pin!(conn);
            let served = match tokio::time::timeout(limits.connection_lifetime, conn.as_mut()).await
            {
                Err(_) if streaming.load(Ordering::Relaxed) => {
                    tokio::time::timeout(limits.stream_lifetime, conn).await
                }
                done => done,
            };
            if !matches!(served, Ok(Ok(()))) {
                dropped.inc();
            }
        });
    }
}

/// The response to `req`; `streaming` is set when it follows.
async fn respond(
    pages: &dyn Pages,
    req: &Request<Incoming>,
    streaming: &AtomicBool,
) -> Response<PageBody> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let page = if req.method() != Method::GET && req.method() != Method::HEAD {
        Page::with_status(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into())
    } else {
        let uri = req.uri();
        pages
            .get(uri.path(), uri.query().unwrap_or(""))
            .await
            .unwrap_or_else(|| {
                Page::with_status(
                    StatusCode::NOT_FOUND,
                    TEXT,
                    "try /, /metrics, /status, /liveness, /readiness or /api/endpoints\n".into(),
                )
            })
    };
    let first = Bytes::from(page.body);
    let body = match page.stream {
        Some(rest) => {
            streaming.store(true, Ordering::Relaxed);
            Either::Right(ChannelBody {
                first: Some(first),
                rest,
            })
        }
        None => Either::Left(Full::new(first)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = page.status;
    if let Ok(v) = page.content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Hello;
    #[async_trait::async_trait]
    impl Pages for Hello {
        fn page(&self, path: &str) -> Option<Page> {
            match path {
                "/status" => Some(Page::ok("text/plain", "fine\n".into())),
                // "first", then "later" 400 ms on, then the end.
                "/follow" => {
                    let (tx, rx) = mpsc::channel(1);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        let _ = tx.send(Bytes::from("later\n")).await;
                    });
                    Some(Page::stream("text/plain", "first\n".into(), rx))
                }
                _ => None,
            }
        }
    }

    async fn server(limits: Limits) -> (std::net::SocketAddr, Counter) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Counter::default();
        tokio::spawn(serve(listener, Arc::new(Hello), limits, dropped.clone()));
        (addr, dropped)
    }

    async fn read_all(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_request_split_across_segments_is_served() {
        let (addr, _) = server(Limits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        for part in [
            "GET /sta",
            "tus HTTP/1.1\r\nHost: x\r\n",
            "Connection: close\r\n\r\n",
        ] {
            s.write_all(part.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let text = read_all(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("fine\n"), "{text}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_does_not_hold_the_server() {
        let limits = Limits {
            max_connections: 1,
            header_timeout: Duration::from_millis(200),
            connection_lifetime: Duration::from_secs(5),
            ..Limits::default()
        };
        let (addr, dropped) = server(limits).await;
        // Takes the only slot and sends nothing.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        // The server closes it; a real client is served after that.
        let closed = tokio::time::timeout(Duration::from_secs(3), read_all(&mut idle)).await;
        assert!(closed.is_ok(), "the idle connection was not closed");
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let text = tokio::time::timeout(Duration::from_secs(3), read_all(&mut s))
            .await
            .expect("served once the idle one is gone");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(dropped.get() >= 1);
    }

    #[tokio::test]
    async fn a_following_response_outlives_the_connection_lifetime_and_ends_with_its_stream() {
        let limits = Limits {
            connection_lifetime: Duration::from_millis(100),
            stream_lifetime: Duration::from_secs(5),
            ..Limits::default()
        };
        let (addr, dropped) = server(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /follow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let text = tokio::time::timeout(Duration::from_secs(3), read_all(&mut s))
            .await
            .expect("the stream ends when its sender is dropped");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
        let (first, later) = (text.find("first\n"), text.find("later\n"));
        assert!(first.is_some() && first < later, "{text}");
        assert_eq!(dropped.get(), 0, "ended, not cut");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let (addr, _) = server(Limits::default()).await;
        for (req, want) in [
            ("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404"),
            ("POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP/1.1 405"),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let text = read_all(&mut s).await;
            assert!(text.starts_with(want), "{req}: {text}");
        }
    }
}
