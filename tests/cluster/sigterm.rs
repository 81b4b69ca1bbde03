//! SIGTERM under load: the instance stops accepting, finishes what it is
//! doing and exits with status 0; clients of the load balancer, which
//! retries on the other instance, see no failure at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::load::{Tally, client, machine, send};

/// How long the signalled instance may take to exit (in-flight requests take
/// milliseconds; the server's own bound is 30 s).
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_one_instance_and_clients_see_no_failure() {
    let _serial = crate::serial().await;
    let Some(mut cluster) = crate::Cluster::start(2).await else {
        return;
    };
    let lb = cluster.base();
    let http = client();
    let m = machine(&http, &lb).await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (tally, stop, m, lb) = (tally.clone(), stop.clone(), m.clone(), lb.clone());
        // A client of its own per worker: connections to nginx are kept alive.
        let http = client();
        tasks.push(tokio::spawn(async move {
            let mut access = String::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (op, result) = match (worker + n) % 3 {
                    0 => (
                        "discovery",
                        send(http.get(format!("{lb}/.well-known/openid-configuration"))).await,
                    ),
                    1 if !access.is_empty() => {
                        ("introspect", m.introspect(&http, &lb, &access).await)
                    }
                    _ => ("token", m.token(&http, &lb).await),
                };
                tally.sent();
                match result {
                    Ok(r) if r.status == 200 => {
                        if op == "token" {
                            access = r.json()["access_token"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                        }
                        if op == "introspect" && r.json()["active"] != true {
                            tally.unexpected(op, format!("inactive: {}", r.body));
                        } else {
                            tally.succeeded(op, &r);
                        }
                    }
                    Ok(r) => tally.unexpected(op, format!("{} {}", r.status, r.body)),
                    Err(e) => tally.unexpected(op, e),
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = tally.snapshot();
    assert!(
        before.succeeded > 50,
        "too little load before the signal: {before:?}"
    );
    let victim = &mut cluster.instances[1];
    let port = victim.port;
    victim.terminate();
    let signalled = Instant::now();
    let status = victim.wait_exit(EXIT_WITHIN).await;
    let took = signalled.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the instance did not exit within {EXIT_WITHIN:?} of SIGTERM:\n{}",
            victim.log()
        )
    });
    eprintln!("instance-1 exited with {status} {took:?} after SIGTERM");
    assert!(status.success(), "exit status {status}:\n{}", victim.log());
    let log = std::fs::read_to_string(victim.log_path()).unwrap();
    assert!(
        log.contains("shutting down"),
        "no graceful shutdown in the log:\n{log}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the stopped instance still accepts connections"
    );

    // The load goes on, all of it on the remaining instance.
    let at_exit = tally.snapshot().succeeded;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("load task ended")
            .expect("load task");
    }
    let end = tally.snapshot();
    eprintln!(
        "sent {}, succeeded {}, unexpected {}, slowest {:?}\n{:#?}",
        end.sent, end.succeeded, end.unexpected_count, end.slowest, end.by_status
    );
    assert!(
        end.succeeded > at_exit + 50,
        "the remaining instance did not carry the load: {end:?}"
    );
    assert_eq!(
        end.unexpected_count,
        0,
        "clients saw failures:\n{}\nnginx: {}",
        end.unexpected.join("\n"),
        cluster.lb.error_log()
    );
    assert_eq!(end.sent, end.succeeded);
    // The survivor is ready.
    let ready = send(http.get(cluster.instances[0].url("/readyz")))
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
}
