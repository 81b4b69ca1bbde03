//! The outbound fetcher over real HTTP (review M3): timeouts, the body cap,
//! no redirects, the failure memory, and a production fetcher that
//! connects to no loopback address. Through Civitas: `outbound.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use civitas::outbound::{
    AddressClass, FetchError, Fetcher, JWKS_CAP, Limits, Policy, Reason, Refusal, Use,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn fetcher(policy: Policy, timeout: Duration, failure_ttl: Duration) -> Fetcher {
    Fetcher::new(
        policy,
        Limits {
            connect_timeout: timeout,
            timeout,
            failure_ttl,
        },
    )
    .unwrap()
}

fn development(timeout: Duration) -> Fetcher {
    fetcher(Policy::DEVELOPMENT, timeout, Duration::from_secs(30))
}

/// A loopback server that reads each request's head and hands the socket
/// to `answer`; its port and the number of requests it got.
async fn raw_server<F, Fut>(answer: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (count, answer) = (count.clone(), answer.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                answer(socket).await;
            });
        }
    });
    (port, requests)
}

async fn answer(mut socket: TcpStream, response: String) {
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn get(f: &Fetcher, url: &str) -> Result<Value, FetchError> {
    f.get_json::<Value>(url, Use::ClientJwks).await
}

#[tokio::test]
async fn a_slow_server_is_timed_out_within_the_configured_time() {
    // Accepts and reads the request, never answers.
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let (port, requests) = raw_server(move |socket| {
        let keep = keep.clone();
        async move { keep.lock().await.push(socket) }
    })
    .await;
    let timeout = Duration::from_millis(500);
    let f = development(timeout);
    let started = tokio::time::Instant::now();
    let e = get(&f, &format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.reason(), Reason::Timeout);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(
        took >= timeout && took < timeout * 6,
        "timed out after {took:?}"
    );
}

#[tokio::test]
async fn a_body_that_never_ends_slowly_is_timed_out_too() {
    let (port, _) = raw_server(|mut socket| async move {
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
            .await;
        loop {
            if socket.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let f = development(Duration::from_millis(500));
    let e = get(&f, &format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::Timeout);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_before_the_timeout() {
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let (port, _) = raw_server(move |mut socket| {
        let w = w.clone();
        async move {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
                .await;
            let chunk = vec![b' '; 16 * 1024];
            while socket.write_all(&chunk).await.is_ok() {
                w.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    })
    .await;
    // A timeout far longer than reading the cap takes: the cap ends it.
    let f = development(Duration::from_secs(20));
    let e = get(&f, &format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::TooLarge);
    assert!(
        written.load(Ordering::SeqCst) < 64 * 1024 * 1024,
        "the server could send only what the sockets buffer"
    );
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_refused_before_reading() {
    // Announces a large body and sends none: reading would time out.
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let (port, _) = raw_server(move |mut socket| {
        let keep = keep.clone();
        async move {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
                .await;
            keep.lock().await.push(socket);
        }
    })
    .await;
    let f = development(Duration::from_secs(20));
    let e = get(&f, &format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::TooLarge);
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_not() {
    // `[` + spaces + `]`: JSON of the given size, without Content-Length.
    for (size, ok) in [(JWKS_CAP, true), (JWKS_CAP + 1, false)] {
        let (port, _) = raw_server(move |socket| async move {
            let body = format!("[{}]", " ".repeat(size - 2));
            answer(
                socket,
                format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}"),
            )
            .await;
        })
        .await;
        let result = get(
            &development(Duration::from_secs(5)),
            &format!("http://127.0.0.1:{port}/"),
        )
        .await;
        match ok {
            true => assert_eq!(result.unwrap(), Value::Array(vec![]), "{size} bytes"),
            false => assert_eq!(
                result.unwrap_err().reason(),
                Reason::TooLarge,
                "{size} bytes"
            ),
        }
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (target, reached) = raw_server(|socket| async move {
        answer(
            socket,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]".into(),
        )
        .await;
    })
    .await;
    let (port, _) = raw_server(move |socket| async move {
        answer(
            socket,
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target}/jwks\r\nContent-Length: 0\r\n\r\n"
            ),
        )
        .await;
    })
    .await;
    let f = development(Duration::from_secs(5));
    let e = get(&f, &format!("http://127.0.0.1:{port}/jwks"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::Status(302));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the target was not asked"
    );
}

#[tokio::test]
async fn a_failed_get_is_remembered_for_the_failure_ttl_and_a_post_never() {
    let (port, requests) = raw_server(|socket| async move {
        answer(
            socket,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into(),
        )
        .await;
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/jwks");
    let f = fetcher(
        Policy::DEVELOPMENT,
        Duration::from_secs(5),
        Duration::from_millis(300),
    );
    let first = get(&f, &url).await.unwrap_err();
    assert_eq!(
        (first.reason(), first.was_cached()),
        (Reason::Status(500), false)
    );
    let second = get(&f, &url).await.unwrap_err();
    assert_eq!(
        (second.reason(), second.was_cached()),
        (Reason::Status(500), true)
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the second GET asked nobody"
    );
    assert_eq!(first.to_string(), second.to_string());
    assert_eq!(first.to_string(), "could not be fetched");

    // Once the failure TTL has passed, the URL is asked again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while requests.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never asked again");
        let _ = get(&f, &url).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // POSTs are not remembered: each one is sent.
    let before = requests.load(Ordering::SeqCst);
    for _ in 0..2 {
        let e = f
            .post_form(&url, &[("logout_token", "t")], Use::BackchannelLogout)
            .await
            .unwrap_err();
        assert_eq!((e.reason(), e.was_cached()), (Reason::Status(500), false));
    }
    assert_eq!(requests.load(Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn a_production_fetcher_connects_to_no_loopback_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let f = fetcher(
        Policy::PRODUCTION,
        Duration::from_secs(5),
        Duration::from_secs(30),
    );
    let loopback = Reason::Refused(Refusal::Address(AddressClass::Loopback));
    let mut cases = vec![
        (format!("https://127.0.0.1:{port}/jwks"), loopback),
        (format!("https://[::ffff:127.0.0.1]:{port}/jwks"), loopback),
        (format!("https://2130706433:{port}/jwks"), loopback),
        (format!("https://localhost:{port}/jwks"), loopback),
        (
            format!("http://127.0.0.1:{port}/jwks"),
            Reason::Refused(Refusal::NotHttps),
        ),
    ];
    // A name other than localhost that resolves to loopback is refused by
    // the resolver, on the address it resolved to: this machine's own host
    // name, where /etc/hosts maps it so.
    match loopback_host_name().await {
        Some(name) => cases.push((format!("https://{name}:{port}/jwks"), loopback)),
        None => eprintln!(
            "NOTE: this machine's host name does not resolve to loopback; the resolver's check is covered by the unit tests only"
        ),
    }
    for (url, reason) in cases {
        assert_eq!(get(&f, &url).await.unwrap_err().reason(), reason, "{url}");
        let posted = f
            .post_form(&url, &[("logout_token", "t")], Use::BackchannelLogout)
            .await
            .unwrap_err();
        assert_eq!(posted.reason(), reason, "POST {url}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing was connected to"
    );
}

/// This machine's host name, if it resolves to loopback addresses only.
async fn loopback_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .ok()?
        .collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) && name != "localhost")
        .then_some(name)
}
