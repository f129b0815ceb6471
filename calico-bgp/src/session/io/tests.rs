use std::net::Ipv4Addr;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt;

use super::*;
use crate::packet::HEADER_LEN;

fn config() -> SessionConfig {
    SessionConfig {
        local_as: 64512,
        remote_as: 64512,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 90,
        keepalive: None,
        passive: false,
        families: vec![AfiSafi::IPV4_UNICAST],
        add_path: Vec::new(),
        graceful_restart: None,
        connect_retry_min: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(8),
    }
}

/// The reader passes on no more than its window while the credits are held, however
/// much the peer has sent, and reads the rest once they are given back.
#[tokio::test]
async fn the_reader_stops_at_its_window_until_credits_come_back() {
    const WINDOW: usize = 16 * 1024;
    const MESSAGES: usize = 20_000; // 380,000 bytes: over twenty windows
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let one = Message::Keepalive.encode(&Context::default()).unwrap();
        let all: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * MESSAGES)
            .collect();
        s.write_all(&all).await.unwrap();
        s
    });
    let (stream, _) = listener.accept().await.unwrap();
    let (read, _write) = stream.into_split();
    let passed = Arc::new(Mutex::new((0usize, Vec::new())));
    let setup = (config(), Importer::default());
    let reader = tokio::spawn(read_loop(read, setup, InboundWindow::new(WINDOW), {
        let passed = passed.clone();
        move |e| {
            if let ConnEvent::Messages(m, credit) = e {
                let mut p = passed.lock().unwrap();
                p.0 += m.len();
                p.1.push(credit);
            }
            true
        }
    }));
    let messages = || passed.lock().unwrap().0;
    // The reader fills its window (within a message of it)...
    let full = WINDOW / HEADER_LEN - 1;
    while messages() < full {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... and passes on nothing more while the credits are held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        messages() * HEADER_LEN <= WINDOW,
        "{} bytes passed on with a window of {WINDOW}",
        messages() * HEADER_LEN
    );
    // Handing the credits back as they come lets everything through.
    while messages() < MESSAGES {
        passed.lock().unwrap().1.clear();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(messages(), MESSAGES);
    reader.abort();
    drop(sender.await.unwrap());
}
