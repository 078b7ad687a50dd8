//! Coordination on the machine's Redis (`FLEETKEY_TEST_REDIS_URL`, set by `.ci/run`;
//! without it these tests say so and do nothing): leases refused while held and
//! lost-lease detection, the shared GCRA limit across two coordinators, invalidations
//! from one instance reaching another, and an unreachable Redis failing fast.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_server::coord::{Coordinator, InstanceLease, Invalidation, LeaseState, OwnerToken};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn leases_are_exclusive_renewed_by_their_owner_and_loss_is_detected() {
    let url = common::redis_url();
    let p = common::unique("fktest-");
    let a = Coordinator::connect(&url, &p).await.unwrap();
    let b = Coordinator::connect(&url, &p).await.unwrap();
    let ttl = Duration::from_millis(600);
    assert!(a.acquire_lease("n1", "owner-a", ttl).await.unwrap());
    assert!(!b.acquire_lease("n1", "owner-b", ttl).await.unwrap());
    assert_eq!(
        b.renew_lease("n1", "owner-b", ttl).await.unwrap(),
        LeaseState::Lost
    );
    assert_eq!(
        a.renew_lease("n1", "owner-a", ttl).await.unwrap(),
        LeaseState::Held
    );
    // Someone else's release does nothing; the owner's frees it.
    b.release_lease("n1", "owner-b").await.unwrap();
    assert!(!b.acquire_lease("n1", "owner-b", ttl).await.unwrap());
    a.release_lease("n1", "owner-a").await.unwrap();
    assert!(b.acquire_lease("n1", "owner-b", ttl).await.unwrap());

    // An instance lease: a second instance with the same name is refused at start;
    // renewals keep it past its ttl.
    let lease = InstanceLease::acquire(&a, "instance-x", ttl).await.unwrap();
    let err = InstanceLease::acquire(&b, "instance-x", ttl)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("in use by another live instance"),
        "{err}"
    );
    tokio::time::sleep(ttl * 2).await;
    assert!(!lease.lost());
    assert!(
        !b.acquire_lease("instance-x", "intruder", ttl)
            .await
            .unwrap()
    );
    // Taken by another owner behind its back (a misconfiguration): detected.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}:lease:instance-x"))
        .arg("intruder")
        .query_async(&mut c)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !lease.lost() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lease.lost());
    lease.release().await;
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn an_instance_restarted_after_a_crash_takes_its_own_lease_back() {
    let url = common::redis_url();
    let p = common::unique("fktest-");
    let a = Coordinator::connect(&url, &p).await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let claim = || OwnerToken::claim(dir.path(), "r");
    let owner = claim().unwrap();
    let token = owner.token().to_owned();
    assert!(!format!("{owner:?}").contains(&token));
    // Claimed by one live instance at a time.
    let err = claim().unwrap_err();
    assert!(
        err.to_string().contains("in use by another live instance"),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(OwnerToken::path(dir.path(), "r"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
    let ttl = Duration::from_secs(30);
    // The process dies without releasing (drop stops renewing, nothing more).
    drop(
        InstanceLease::acquire_as(&a, "instance-r", owner, ttl)
            .await
            .unwrap(),
    );
    // The same data directory restarts at once with the same token; another
    // data directory's instance of that name is still refused.
    let owner = claim().unwrap();
    assert_eq!(owner.token(), token);
    let again = InstanceLease::acquire_as(&a, "instance-r", owner, ttl)
        .await
        .unwrap();
    let other_dir = tempfile::TempDir::new().unwrap();
    let other = OwnerToken::claim(other_dir.path(), "r").unwrap();
    assert_ne!(other.token(), token);
    let err = InstanceLease::acquire_as(&a, "instance-r", other, ttl)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in use by another live instance"));
    again.release().await;
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn the_gcra_limit_is_shared_by_every_instance() {
    let url = common::redis_url();
    let p = common::unique("fktest-");
    let a = Coordinator::connect(&url, &p).await.unwrap();
    let b = Coordinator::connect(&url, &p).await.unwrap();
    // 10 per second, bursts of 5: the burst is shared, then one per 100 ms.
    let mut allowed = 0;
    for i in 0..10 {
        let c = if i % 2 == 0 { &a } else { &b };
        let d = c.gcra("global", 10, 5).await.unwrap();
        if d.allowed {
            allowed += 1;
        } else {
            assert!(d.retry_after_ms > 0 && d.retry_after_ms <= 100, "{d:?}");
        }
    }
    assert_eq!(allowed, 5);
    tokio::time::sleep(Duration::from_millis(220)).await;
    let d = b.gcra("global", 10, 5).await.unwrap();
    assert!(d.allowed, "{d:?}");
    // Another limit is another bucket.
    assert!(a.gcra("other", 10, 5).await.unwrap().allowed);
    assert!(!a.degraded());
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn invalidations_reach_every_instance() {
    let url = common::redis_url();
    let p = common::unique("fktest-");
    let a = Coordinator::connect(&url, &p).await.unwrap();
    let b = Coordinator::connect(&url, &p).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let seen = seen.clone();
        b.subscribe(move |inv| seen.lock().unwrap().push(inv), || {})
    };
    let want = vec![
        Invalidation::Keyring { name: "pay".into() },
        Invalidation::Token { id: "tok_1".into() },
        Invalidation::Device {
            id: "dev_01".into(),
        },
    ];
    // The subscription starts in the background: publish until it is there.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        a.publish(&Invalidation::Token {
            id: "warmup".into(),
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().clear();
    let t = Instant::now();
    for w in &want {
        a.publish(w).await.unwrap();
    }
    while seen.lock().unwrap().len() < want.len() && t.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|i| {
            **i != Invalidation::Token {
                id: "warmup".into(),
            }
        })
        .cloned()
        .collect();
    assert_eq!(got, want, "within 1 s");
    task.abort();
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_and_says_so() {
    // Nothing listens on port 1.
    let t = Instant::now();
    let err = Coordinator::connect("redis://127.0.0.1:1", "x")
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(6));
    assert!(err.to_string().contains("redis"), "{err}");
    assert!(
        Coordinator::connect("not a url", "x")
            .await
            .unwrap_err()
            .to_string()
            .contains("redis URL")
    );
    // A password never reaches an error.
    let err = Coordinator::connect("redis://:hunter2@127.0.0.1:1", "x")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn gcra_takes_several_at_once_all_or_none() {
    let url = common::redis_url();
    let c = Coordinator::connect(&url, &common::unique("fktest-"))
        .await
        .unwrap();
    // 10/s with a burst of 100: 60 fit, 60 more do not, the remaining 40 do.
    assert!(c.gcra_take("g", 10, 100, 60).await.unwrap().allowed);
    let no = c.gcra_take("g", 10, 100, 60).await.unwrap();
    assert!(!no.allowed);
    assert!(no.retry_after_ms > 1000, "{no:?}");
    assert!(c.gcra_take("g", 10, 100, 40).await.unwrap().allowed);
    assert!(!c.gcra("g", 10, 100).await.unwrap().allowed);
}

#[tokio::test]
#[ignore = "needs FLEETKEY_TEST_REDIS_URL (.ci/run sets it)"]
async fn the_shared_limit_is_taken_in_batches_and_not_waited_on_while_redis_is_away() {
    use fleetkey_server::api::ratelimit::RateLimits;
    use fleetkey_server::config::RateLimitConfig;
    let url = common::redis_url();
    let config = |global_per_sec| RateLimitConfig {
        global_per_sec,
        burst_secs: 1,
        adaptive: false,
        ..RateLimitConfig::default()
    };
    // Near the limit it is exact: 10/s, one request at a time from Redis.
    let exact = Coordinator::connect(&url, &common::unique("fktest-"))
        .await
        .unwrap();
    let small = RateLimits::with_instances(config(10), 1);
    let mut ok = 0;
    for _ in 0..30 {
        ok += u32::from(small.check_shared("t", Some(&exact)).await.is_ok());
    }
    assert!((10..=11).contains(&ok), "{ok}");

    // A busy instance: 100,000/s shared by two, batches of 500 — 2,000 requests
    // are a handful of calls, not 2,000.
    let proxy =
        common::Proxy::start(url.trim_start_matches("redis://").trim_end_matches('/')).await;
    let c = Coordinator::connect(
        &format!("redis://{}", proxy.addr),
        &common::unique("fktest-"),
    )
    .await
    .unwrap();
    let limits = RateLimits::with_instances(config(100_000), 2);
    let before = c.calls();
    for _ in 0..2000 {
        limits.check_shared("t", Some(&c)).await.unwrap();
    }
    let calls = c.calls() - before;
    assert!(calls <= 8, "{calls} calls to Redis for 2,000 requests");

    // Redis away: one failed call, then requests use the local share without
    // calling it again (each would wait up to 250 ms on a silent network).
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(150)).await; // the batch expires
    let before = c.calls();
    let t = Instant::now();
    for _ in 0..200 {
        limits.check_shared("t", Some(&c)).await.unwrap();
    }
    assert!(c.degraded());
    assert!(c.calls() - before <= 2, "{}", c.calls() - before);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Back: within a retry interval requests use Redis again.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.degraded() {
        assert!(Instant::now() < deadline, "still degraded");
        limits.check_shared("t", Some(&c)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
