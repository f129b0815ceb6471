//! The HTTP server (hyper): `GET /metrics`, `/status`, `/liveness`, `/readiness`, and what
//! [`Pages::get`] adds (the API and the page, which need the query string and may wait).
//!
//! It must never cost the agent its work: connections are capped (more wait in the listen
//! backlog, so file descriptors stay bounded), a client that does not send its request
//! headers in time is dropped, every connection has a lifetime, and an accept error such
//! as running out of file descriptors backs off instead of spinning.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::warn;

/// A response: status, content type and body.
pub struct Page {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Page {
    /// A 200 page.
    pub fn ok(content_type: &'static str, body: String) -> Page {
        Page {
            status: StatusCode::OK,
            content_type,
            body,
        }
    }
}

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
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
            let service = service_fn(move |req| {
                let pages = pages.clone();
                async move { Ok::<_, Infallible>(respond(&*pages, &req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.connection_lifetime, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    dropped.inc();
                }
            };
        });
    }
}

async fn respond(pages: &dyn Pages, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let page = if req.method() != Method::GET && req.method() != Method::HEAD {
        Page {
            status: StatusCode::METHOD_NOT_ALLOWED,
            content_type: "text/plain; charset=utf-8",
            body: "only GET\n".into(),
        }
    } else {
        let uri = req.uri();
        pages
            .get(uri.path(), uri.query().unwrap_or(""))
            .await
            .unwrap_or(Page {
                status: StatusCode::NOT_FOUND,
                content_type: "text/plain; charset=utf-8",
                body: "try /, /metrics, /status, /liveness, /readiness or /api/endpoints\n".into(),
            })
    };
    let mut response = Response::new(Full::new(Bytes::from(page.body)));
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
            (path == "/status").then(|| Page::ok("text/plain", "fine\n".into()))
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
