//! The client for user-given URLs ignores proxies from the environment: a
//! proxy resolves names itself, past the deny list's check, so
//! `HTTPS_PROXY=…` would let `http://localhost/` through. A test binary of
//! its own, because it sets the process's environment.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use bitgate_core::{config::Config, outbound};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn proxies_from_the_environment_are_not_used_for_user_given_urls() {
    // A proxy that would answer every request it is given.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = proxy.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 2048];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    });
    // The only test of this binary: nothing else reads the environment meanwhile.
    for variable in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        std::env::set_var(variable, &proxy_url);
    }

    // The default deny list refuses loopback, where localhost resolves.
    let config = Config::load(&[("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap();
    let client = outbound::client(&config).unwrap();
    let answer = client.get("http://localhost:9/latest/meta-data").send().await;
    let error = answer.expect_err("localhost is denied, proxy or not");
    let chain = format!("{error:?}");
    assert!(chain.contains("BITGATE_OUTBOUND_DENY"), "refused by the check: {chain}");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the proxy was never asked");

    // A name that is allowed goes directly too, not through the proxy.
    let open = Config::load(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap();
    let direct = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = direct.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = direct.accept().await {
            let mut buffer = [0u8; 2048];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        }
    });
    let answer = outbound::client(&open).unwrap().get(format!("http://localhost:{port}/")).send().await.unwrap();
    assert_eq!(answer.status(), 204, "answered by the server itself");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the proxy was never asked");
}
