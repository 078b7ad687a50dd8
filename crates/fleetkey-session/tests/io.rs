//! The tokio adapter over real loopback TCP: an IK session end to end with large
//! messages both ways, and the refusals of the IO edge: a slow-loris handshake
//! times out, an idle session is dropped, an early close and an oversized
//! handshake frame are errors, not hangs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_session::io::handshake;
use fleetkey_session::{Builder, Error, Keypair, Limits, Pattern, Suite};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn short() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn an_ik_session_over_tcp_carries_large_messages_both_ways() {
    let server = Keypair::generate().unwrap();
    let device = Keypair::generate().unwrap();
    let server_pub = *server.public();
    let device_pub = *device.public();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
            .local(&server)
            .responder(Instant::now())
            .unwrap();
        let (mut s, got) = handshake(sock, hs, b"welcome").await.unwrap();
        assert_eq!(got, vec![b"hello".to_vec()]);
        assert_eq!(s.remote_static(), Some(device_pub));
        let m = s.recv().await.unwrap();
        s.send(&m).await.unwrap();
        s.close().await.unwrap();
    });
    let sock = TcpStream::connect(addr).await.unwrap();
    let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&device)
        .remote(server_pub)
        .initiator(Instant::now())
        .unwrap();
    let (mut s, got) = handshake(sock, hs, b"hello").await.unwrap();
    assert_eq!(got, vec![b"welcome".to_vec()]);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    s.send(&big).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), big);
    srv.await.unwrap();
    // The server closed: the next read is an error, not a hang.
    assert!(matches!(s.recv().await, Err(Error::Io(_))));
}

#[tokio::test]
async fn a_slow_loris_handshake_times_out() {
    let server = Keypair::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let (sock, _) = listener.accept().await.unwrap();
    // One byte of a length prefix, then silence.
    client.write_all(&[0]).await.unwrap();
    let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&server)
        .limits(short())
        .responder(Instant::now())
        .unwrap();
    let started = Instant::now();
    assert_eq!(handshake(sock, hs, b"").await.unwrap_err(), Error::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_idle_session_is_dropped_and_an_early_close_is_an_error() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let i = Builder::new(Pattern::NN, Suite::AesGcmSha256)
        .limits(short())
        .initiator(Instant::now())
        .unwrap();
    let r = Builder::new(Pattern::NN, Suite::AesGcmSha256)
        .limits(short())
        .responder(Instant::now())
        .unwrap();
    let (ri, rr) = tokio::join!(handshake(a, i, b""), handshake(b, r, b""));
    let (mut si, _) = ri.unwrap();
    let (_sr, _) = rr.unwrap();
    assert_eq!(si.recv().await.unwrap_err(), Error::Idle);
    // A peer that closes mid-handshake.
    let (a, b) = tokio::io::duplex(1024);
    drop(b);
    let i = Builder::new(Pattern::NN, Suite::AesGcmSha256)
        .initiator(Instant::now())
        .unwrap();
    assert!(matches!(handshake(a, i, b"").await, Err(Error::Io(_))));
}

#[tokio::test]
async fn an_oversized_handshake_frame_is_refused_before_its_body() {
    let server = Keypair::generate().unwrap();
    let (mut a, b) = tokio::io::duplex(1024);
    // Announce a 5,000-byte first message (over the 4 KiB handshake limit).
    a.write_all(&5000u16.to_be_bytes()).await.unwrap();
    let hs = Builder::new(Pattern::IK, Suite::ChaChaPolyBlake2s)
        .local(&server)
        .responder(Instant::now())
        .unwrap();
    assert!(matches!(
        handshake(b, hs, b"").await,
        Err(Error::TooLarge { len: 5000, .. })
    ));
}
