//! A route-reflector client that stops reading its socket: the reflector's other clients
//! still get every route (its send queue stalls on its own, see `session/queue.rs`), and
//! once it reads again it converges on the reflector's table, withdrawals made meanwhile
//! included (`speaker/backlog.rs`). Everything runs on loopback addresses of a namespace
//! the test creates; the waits bound completion, they time nothing.

mod speaker_support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use calico_bgp::packet::{self, AfiSafi, Capability, Context, Message, Open, HEADER_LEN};
use calico_bgp::speaker::socket::{SocketFactory, SocketOpener};
use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::BgpBackend;
use calico_netns::fixtures::{privileged, Netns};
use ipnet::{IpNet, Ipv4Net};
use speaker_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AS: u32 = 64512;
const REFLECTOR: &str = "127.0.0.1";
const FEEDER: &str = "127.0.0.2";
const READER: &str = "127.0.0.3";
const STUCK: &str = "127.0.0.4";
/// Prefixes the feeder announces: far more UPDATE bytes than the stuck client's receive
/// buffer and the reflector's send queue limit hold.
const PREFIXES: usize = 20_000;

fn prefix(i: usize) -> IpNet {
    let i = i as u32;
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from((10 << 24) | ((64 << 16) + (i << 8))), 24).unwrap())
}

fn first(n: usize) -> BTreeSet<IpNet> {
    (0..n).map(prefix).collect()
}

/// The reflector's sockets: in the namespace, with small kernel send buffers (inherited
/// by accepted connections from the listener), so that a peer that does not read fills
/// the reflector's own send queue soon instead of the kernel's.
#[derive(Debug)]
struct SmallSendBuffers(Arc<dyn SocketOpener>);

impl SocketOpener for SmallSendBuffers {
    fn tcp_socket(&self, addr: &SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
        let socket = self.0.tcp_socket(addr)?;
        socket.set_send_buffer_size(4096)?;
        Ok(socket)
    }

    fn udp_socket(&self, addr: &SocketAddr) -> std::io::Result<socket2::Socket> {
        self.0.udp_socket(addr)
    }

    fn interface_of(&self, peer: IpAddr, local: SocketAddr) -> std::io::Result<Option<String>> {
        self.0.interface_of(peer, local)
    }
}

/// Opens an iBGP session (hold time 0: no KEEPALIVEs to read) from `STUCK` to the
/// reflector with a tiny receive buffer, and returns it once established, unread since.
async fn stuck_client(ns: &Netns) -> TcpStream {
    let sockets =
        SocketFactory::new(sockets_in(ns.path())).with_source(IpAddr::V4(STUCK.parse().unwrap()));
    let remote = SocketAddr::new(REFLECTOR.parse().unwrap(), 179);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        let socket = sockets.connecting_socket(&remote).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        match socket.connect(remote).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "connect: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let ctx = Context::default();
    let open = Message::Open(Open {
        my_as: AS as u16,
        hold_time: 0,
        router_id: STUCK.parse().unwrap(),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(AS),
        ],
    });
    stream.write_all(&open.encode(&ctx).unwrap()).await.unwrap();
    loop {
        match read_message(&mut stream).await {
            Message::Keepalive => break,
            Message::Open(_) => {}
            other => panic!("stuck client: {other:?} before the session was up"),
        }
    }
    let keepalive = Message::Keepalive.encode(&ctx).unwrap();
    stream.write_all(&keepalive).await.unwrap();
    stream
}

async fn read_message(stream: &mut TcpStream) -> Message {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await.unwrap();
    let len = packet::header_length(&header).unwrap();
    let mut bytes = header.to_vec();
    bytes.resize(len, 0);
    stream.read_exact(&mut bytes[HEADER_LEN..]).await.unwrap();
    packet::decode(&bytes, &Context::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_no_one_back_and_catches_up_later() {
    if !privileged("a_client_that_stops_reading_holds_no_one_back_and_catches_up_later") {
        return;
    }
    let ns = Netns::create("spbp").unwrap();
    let reflector = Speaker::with_options(SpeakerOptions {
        listen_address: REFLECTOR.parse().unwrap(),
        sockets: Arc::new(SmallSendBuffers(sockets_in(ns.path()))),
        send_queue_limit: 16 << 10,
        ..SpeakerOptions::default()
    })
    .unwrap();
    let client = |address: &str, passive: bool| {
        let mut p = peer(address, AS, 9);
        p.route_reflector_client = true;
        p.passive = passive;
        p
    };
    let mut rr = settings(
        AS,
        REFLECTOR,
        vec![
            client(FEEDER, false),
            client(READER, false),
            client(STUCK, true),
        ],
    );
    rr.cluster_id = Some("10.255.0.1".parse().unwrap());
    reflector.configure(&rr).await.unwrap();
    let feeder = speaker_at(&ns, FEEDER);
    let reader = speaker_at(&ns, READER);
    for (s, address) in [(&feeder, FEEDER), (&reader, READER)] {
        s.configure(&settings(AS, address, vec![peer(REFLECTOR, AS, 9)]))
            .await
            .unwrap();
    }
    let mut stuck = stuck_client(&ns).await;

    // The reader gets every route while the stuck client reads nothing.
    feeder.set_exports(&first(PREFIXES)).await.unwrap();
    let all_via_feeder = |n: usize| {
        move |routes: &[calico_core::dataplane::LearnedRoute]| {
            let feeder: IpAddr = FEEDER.parse().unwrap();
            routes.len() == n
                && routes
                    .iter()
                    .all(|r| r.next_hops == BTreeSet::from([feeder]))
        }
    };
    wait_routes(
        &reader,
        120,
        "every route at the reader",
        all_via_feeder(PREFIXES),
    )
    .await;
    // Half of them withdrawn, still without the stuck client reading.
    feeder.set_exports(&first(PREFIXES / 2)).await.unwrap();
    wait_routes(
        &reader,
        120,
        "half the routes at the reader",
        all_via_feeder(PREFIXES / 2),
    )
    .await;

    // Now it reads: it ends up with exactly the reflector's table.
    let want = first(PREFIXES / 2);
    let mut held = BTreeSet::new();
    let converged = async {
        while held != want {
            let Message::Update(update) = read_message(&mut stuck).await else {
                continue;
            };
            for (p, _) in update.withdrawn_paths() {
                held.remove(&p);
            }
            let next_hop = update.attributes.next_hop;
            for p in update.announced() {
                assert_eq!(next_hop, Some(FEEDER.parse().unwrap()), "{p}");
                held.insert(p);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), converged)
        .await
        .is_err()
    {
        panic!(
            "the stuck client did not converge: holds {} prefixes, {} of them wanted",
            held.len(),
            held.intersection(&want).count()
        );
    }
}
