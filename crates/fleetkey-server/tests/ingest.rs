//! Constrained devices end to end on the service: a factory secret sealed to the
//! factory recipient, provisioning (and its refusals), zero-touch onboarding by
//! the first verified session start, telemetry to the sink, every frame refusal,
//! old boots refused after a restart, static-key devices only where allowed,
//! decommissioned devices refused, frames over UDP, and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_crypto::credential::DeviceKeys;
use fleetkey_crypto::ed25519::Ed25519Signer;
use fleetkey_device::{Device, Error as DevError, Rng, Storage};
use fleetkey_server::fleet::FactoryRequest;
use fleetkey_server::fleet::constrained::{Profile, seal_factory_secret};
use fleetkey_server::ingest::{FrameIngest, IngestMetrics};
use fleetkey_server::store::DeviceState;
use fleetkey_server::telemetry::JsonLinesSink;
use std::sync::Arc;

struct OsRng;
impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), DevError> {
        fleetkey_crypto::rand::fill(buf).map_err(|_| DevError::Rng)
    }
}
struct NoFlash;
impl Storage for NoFlash {
    fn store_boot_counter(&mut self, _: u32) -> Result<(), DevError> {
        Ok(())
    }
}

fn request(hw: &str, x25519: [u8; 32]) -> FactoryRequest {
    FactoryRequest {
        fleet: "sensors".into(),
        hardware_id: hw.into(),
        model: "stm32l053".into(),
        batch: "b1".into(),
        station: "jig-1".into(),
        keys: DeviceKeys {
            x25519,
            ed25519: Ed25519Signer::generate().unwrap().public_key(),
            ml_kem_768: None,
            ml_dsa_65: None,
        },
        test_results: serde_json::json!({}),
    }
}

fn id_bytes(device_id: &str) -> [u8; 8] {
    hex::decode(device_id.strip_prefix("dev_").unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

async fn ingest(s: &common::Services, dir: &std::path::Path) -> Arc<FrameIngest> {
    FrameIngest::new(
        s.fleets.clone(),
        Arc::new(JsonLinesSink::open(&dir.join("telemetry.jsonl")).unwrap()),
        IngestMetrics {
            frames: s.state.metrics.device_frames.clone(),
            downlinks: s.state.metrics.device_downlinks.clone(),
            active: s.state.metrics.constrained_active.clone(),
        },
    )
    .await
    .unwrap()
}

/// The service with fleet `sensors`, its factory recipient and static public key,
/// and a fresh device scalar and PSK (made on the device at the jig).
struct Setup {
    s: common::Services,
    recipient: fleetkey_crypto::hpke::XWingRecipient,
    server_public: [u8; 32],
    scalar: [u8; 32],
    psk: [u8; 32],
}

async fn setup(dir: &std::path::Path) -> Setup {
    let s = common::services(dir).await;
    s.fleets
        .registry
        .create_fleet("ops", &"sensors".parse().unwrap(), None)
        .await
        .unwrap();
    let recipient = fleetkey_crypto::keyfile::parse_recipient(
        &s.fleets.onboarding.factory_recipient().await.unwrap(),
    )
    .unwrap();
    let (_, server_public) = s.fleets.directory().server_static_key().await.unwrap();
    Setup {
        s,
        recipient,
        server_public,
        scalar: fleetkey_crypto::rand::array().unwrap(),
        psk: fleetkey_crypto::rand::array().unwrap(),
    }
}

#[tokio::test]
async fn constrained_devices_from_the_factory_to_refusal() {
    let dir = tempfile::TempDir::new().unwrap();
    let Setup {
        s,
        recipient,
        server_public,
        scalar,
        psk,
    } = setup(dir.path()).await;
    // The jig: keys on the device, the PSK sealed to the factory recipient.
    let public = fleetkey_device::keys::public_key(&scalar);
    let sealed = seal_factory_secret(&recipient, &psk, "uid-1").unwrap();
    // Sealed for another hardware id, or garbage: refused.
    let other = seal_factory_secret(&recipient, &psk, "uid-2").unwrap();
    for bad in [&other[..], b"not an envelope"] {
        assert!(
            s.fleets
                .onboarding
                .provision_constrained("jig", request("uid-1", public), Profile::Constrained, bad)
                .await
                .is_err()
        );
    }
    let p = s
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("uid-1", public),
            Profile::Constrained,
            &sealed,
        )
        .await
        .unwrap();
    let id = p.device.id.clone();
    assert_eq!(p.device.state, DeviceState::Manufactured);
    // Flagged in the registry.
    assert_eq!(
        s.fleets.registry.device(&id).await.unwrap().profile,
        "constrained"
    );
    // The secret is stored wrapped, never in the clear.
    let stored = s.store.device_secret(&id).await.unwrap().unwrap();
    assert!(!stored.wrapped.windows(32).any(|w| w == psk));

    let ing = ingest(&s, dir.path()).await;
    let mut dev = Device::x25519(id_bytes(&id), scalar, server_public, psk, 0);
    let mut session = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let mut buf = [0u8; 256];
    // Data before the session start, from a manufactured device: refused.
    let n = session.clone().data_frame(b"{}", &mut buf).unwrap();
    assert_eq!(
        ing.accept(&mut buf[..n]).await.unwrap_err(),
        "not_onboarded"
    );
    // The first verified session start onboards it (zero touch).
    let n = session.start_frame(b"", &mut buf).unwrap();
    let start = buf[..n].to_vec();
    let a = ing.accept(&mut start.clone()).await.unwrap();
    assert_eq!((a.device_id.as_str(), a.boot), (id.as_str(), 1));
    assert_eq!(
        s.fleets.registry.device(&id).await.unwrap().state,
        DeviceState::Active
    );
    let mut frames = Vec::new();
    for t in [21.5, 21.7] {
        let n = session
            .data_frame(format!("{{\"t\":{t}}}").as_bytes(), &mut buf)
            .unwrap();
        frames.push(buf[..n].to_vec());
    }
    for f in &frames {
        ing.accept(&mut f.clone()).await.unwrap();
    }
    // Refusals: replay, forged, replayed start, unknown device.
    assert_eq!(
        ing.accept(&mut frames[0].clone()).await.unwrap_err(),
        "replay"
    );
    let n = session.data_frame(b"{\"t\":21.9}", &mut buf).unwrap();
    let fresh = buf[..n].to_vec();
    let mut forged = fresh.clone();
    forged[n - 1] ^= 1;
    assert_eq!(ing.accept(&mut forged).await.unwrap_err(), "forged");
    // The refusal changed nothing: the genuine frame still verifies.
    ing.accept(&mut fresh.clone()).await.unwrap();
    assert_eq!(
        ing.accept(&mut start.clone()).await.unwrap_err(),
        "old_boot"
    );
    let mut stranger = Device::x25519([0xee; 8], scalar, server_public, psk, 0);
    let n = stranger
        .boot(&mut OsRng, &mut NoFlash)
        .unwrap()
        .start_frame(b"", &mut buf)
        .unwrap();
    assert_eq!(
        ing.accept(&mut buf[..n]).await.unwrap_err(),
        "unknown_device"
    );
    // A gateway scoped to another fleet hears the same as for an unknown id (no
    // oracle for which ids exist elsewhere); the metric keeps the real reason.
    let before = s
        .state
        .metrics
        .device_frames
        .with_label_values(&["forbidden"])
        .get();
    let n = session.data_frame(b"{}", &mut buf).unwrap();
    assert_eq!(
        ing.accept_scoped(&mut buf[..n], &|f| f == "other")
            .await
            .unwrap_err()
            .reason,
        "unknown_device"
    );
    assert_eq!(
        s.state
            .metrics
            .device_frames
            .with_label_values(&["forbidden"])
            .get(),
        before + 1
    );
    assert_eq!(ing.accept(&mut [1u8, 2, 3]).await.unwrap_err(), "malformed");

    // A restarted server still refuses the old boot (the boot counter is stored).
    ing.flush().await.unwrap();
    let ing2 = ingest(&s, dir.path()).await;
    assert_eq!(
        ing2.accept(&mut start.clone()).await.unwrap_err(),
        "old_boot"
    );
    // A new boot works on the restarted server.
    let mut s2 = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let n = s2.start_frame(b"", &mut buf).unwrap();
    ing2.accept(&mut buf[..n]).await.unwrap();
    let n = s2.data_frame(b"raw \xff bytes", &mut buf).unwrap();
    ing2.accept(&mut buf[..n]).await.unwrap();

    // Telemetry reached the sink, attributed; non-JSON payloads as base64.
    ing2.flush().await.unwrap();
    let t = std::fs::read_to_string(dir.path().join("telemetry.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = t
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        (
            &lines[0]["device_id"],
            &lines[0]["fleet"],
            &lines[0]["data"]["t"]
        ),
        (
            &serde_json::json!(id),
            &serde_json::json!("sensors"),
            &serde_json::json!(21.5)
        )
    );
    assert!(lines[3]["data"]["base64"].is_string());

    // Static-key devices: only where the fleet allows them.
    let lab_key: [u8; 32] = fleetkey_crypto::rand::array().unwrap();
    let lab_sealed = seal_factory_secret(&recipient, &lab_key, "lab-1").unwrap();
    let lab_public = fleetkey_device::keys::public_key(&fleetkey_crypto::rand::array().unwrap());
    assert!(
        s.fleets
            .onboarding
            .provision_constrained(
                "jig",
                request("lab-1", lab_public),
                Profile::ConstrainedStatic,
                &lab_sealed
            )
            .await
            .is_err()
    );
    s.fleets
        .onboarding
        .allow_static_key("ops", "sensors", true)
        .await
        .unwrap();
    let lab = s
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("lab-1", lab_public),
            Profile::ConstrainedStatic,
            &lab_sealed,
        )
        .await
        .unwrap();
    assert_eq!(
        s.fleets
            .registry
            .device(&lab.device.id)
            .await
            .unwrap()
            .profile,
        "constrained_static"
    );
    let mut lab_dev = Device::static_key(id_bytes(&lab.device.id), lab_key, 0);
    let lab_session = lab_dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let n = lab_session.start_frame(b"", &mut buf).unwrap();
    ing2.accept(&mut buf[..n]).await.unwrap();
    // Disallowed again: a fresh server refuses its frames.
    s.fleets
        .onboarding
        .allow_static_key("ops", "sensors", false)
        .await
        .unwrap();
    let lab_s2 = lab_dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let n = lab_s2.start_frame(b"", &mut buf).unwrap();
    assert_eq!(
        ingest(&s, dir.path())
            .await
            .accept(&mut buf[..n])
            .await
            .unwrap_err(),
        "static_key_not_allowed"
    );

    // Decommissioned: refused at once on a fresh cache; on a warm one, at once
    // when the change went through this instance (the API expires the entry),
    // otherwise within STATE_TTL.
    let ing3 = ingest(&s, dir.path()).await;
    let mut s3 = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let n = s3.start_frame(b"", &mut buf).unwrap();
    ing3.accept(&mut buf[..n]).await.unwrap();
    s.fleets
        .onboarding
        .decommission("ops", &id, "retired")
        .await
        .unwrap();
    ing3.expire(&id);
    let n = s3.data_frame(b"{}", &mut buf).unwrap();
    assert_eq!(
        ing3.accept(&mut buf[..n]).await.unwrap_err(),
        "decommissioned"
    );
    // A new boot of a decommissioning device verifies, answered with its wipe.
    let ing4 = ingest(&s, dir.path()).await;
    let s4 = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let n = s4.start_frame(b"", &mut buf).unwrap();
    assert!(ing4.accept(&mut buf[..n]).await.unwrap().downlink.is_some());

    let metrics = s.state.metrics.render(&s.state.keys, false);
    for line in [
        "fleetkey_device_frames_total{result=\"accepted\"} 9",
        "fleetkey_device_frames_total{result=\"replay\"} 1",
        "fleetkey_device_frames_total{result=\"forged\"} 1",
        "fleetkey_device_frames_total{result=\"old_boot\"} 2",
        "fleetkey_device_frames_total{result=\"decommissioned\"} 1",
        // Each ingest instance of this test counts the devices it saw (3 here).
        "fleetkey_constrained_devices_active{profile=\"constrained\"} 4",
        "fleetkey_constrained_devices_active{profile=\"constrained_static\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let entries = s.store.audit_entries(0, 1000).await.unwrap();
    let onboard = entries
        .iter()
        .find(|e| e.action == "device.onboard" && e.subject == format!("device:{id}"))
        .unwrap();
    assert!(onboard.details.contains("constrained"));
}

#[tokio::test]
async fn frames_arrive_over_udp() {
    let dir = tempfile::TempDir::new().unwrap();
    let Setup {
        s,
        recipient,
        server_public,
        scalar,
        psk,
    } = setup(dir.path()).await;
    let p = s
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("uid-udp", fleetkey_device::keys::public_key(&scalar)),
            Profile::Constrained,
            &seal_factory_secret(&recipient, &psk, "uid-udp").unwrap(),
        )
        .await
        .unwrap();
    let ing = ingest(&s, dir.path()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let run = tokio::spawn(ing.clone().run_udp(sock, std::future::pending()));
    let mut dev = Device::x25519(id_bytes(&p.device.id), scalar, server_public, psk, 0);
    let mut session = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 256];
    let n = session.start_frame(b"", &mut buf).unwrap();
    client.send_to(&buf[..n], addr).await.unwrap();
    for i in 0..5 {
        let n = session
            .data_frame(format!("{{\"i\":{i}}}").as_bytes(), &mut buf)
            .unwrap();
        client.send_to(&buf[..n], addr).await.unwrap();
        // Keep the order (one socket, loopback): give the server a moment.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let want = "fleetkey_device_frames_total{result=\"accepted\"} 6";
    let mut ok = false;
    for _ in 0..100 {
        if s.state.metrics.render(&s.state.keys, false).contains(want) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok, "{}", s.state.metrics.render(&s.state.keys, false));
    run.abort();
}

/// A change this instance did not make (another instance, without Redis) reaches a
/// warm cache within the state lifetime: the re-read happens in the background, so
/// no frame waits on the database for it.
#[tokio::test]
async fn a_change_made_elsewhere_reaches_a_warm_cache_within_the_state_lifetime() {
    let dir = tempfile::TempDir::new().unwrap();
    let Setup {
        s,
        recipient,
        server_public,
        scalar,
        psk,
    } = setup(dir.path()).await;
    let public = fleetkey_device::keys::public_key(&scalar);
    let sealed = seal_factory_secret(&recipient, &psk, "uid-warm").unwrap();
    let p = s
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("uid-warm", public),
            Profile::Constrained,
            &sealed,
        )
        .await
        .unwrap();
    let id = p.device.id.clone();
    let ing = ingest(&s, dir.path()).await;
    let mut dev = Device::x25519(id_bytes(&id), scalar, server_public, psk, 0);
    let mut session = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let mut buf = [0u8; 256];
    let n = session.start_frame(b"", &mut buf).unwrap();
    ing.accept(&mut buf[..n]).await.unwrap();
    // Decommissioned behind this ingest path's back (no expire).
    s.fleets
        .onboarding
        .decommission("ops", &id, "retired")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut refused_after = None;
    while started.elapsed() < fleetkey_server::ingest::STATE_TTL + std::time::Duration::from_secs(2)
    {
        let n = session.data_frame(b"{}", &mut buf).unwrap();
        let t = std::time::Instant::now();
        let r = ing.accept(&mut buf[..n]).await;
        // A frame never waits for the re-read.
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
        if r == Err("decommissioned") {
            refused_after = Some(started.elapsed());
            break;
        }
        r.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = refused_after.expect("refused within the state lifetime");
    assert!(after >= fleetkey_server::ingest::STATE_TTL, "{after:?}");
}

/// The downlink at the frame path: a command goes back after a verified frame
/// (not again within a second), acknowledgements that are forged, replayed, for
/// an unknown command or out of the caller's scope change nothing, a rejected
/// rekey is cancelled, a rejected wipe keeps going down, and the wipe's
/// acknowledgement finishes decommissioning.
#[tokio::test]
async fn downlink_commands_and_every_refusal_of_an_acknowledgement() {
    use fleetkey_device::{Ack, Downlink, Op, Status};
    use fleetkey_server::store::{CommandKind, CommandState};
    let dir = tempfile::TempDir::new().unwrap();
    let Setup {
        s,
        recipient,
        server_public,
        scalar,
        psk,
    } = setup(dir.path()).await;
    let p = s
        .fleets
        .onboarding
        .provision_constrained(
            "jig",
            request("uid-dl", fleetkey_device::keys::public_key(&scalar)),
            Profile::Constrained,
            &seal_factory_secret(&recipient, &psk, "uid-dl").unwrap(),
        )
        .await
        .unwrap();
    let id = p.device.id.clone();
    // No rekey before the device ever booted.
    assert!(
        s.fleets
            .commands
            .request_rotation("ops", &id, "early")
            .await
            .is_err()
    );
    let ing = ingest(&s, dir.path()).await;
    let mut dev = Device::x25519(id_bytes(&id), scalar, server_public, psk, 0);
    let mut session = dev.boot(&mut OsRng, &mut NoFlash).unwrap();
    let mut buf = [0u8; 1300];
    let n = session.start_frame(b"", &mut buf).unwrap();
    assert!(ing.accept(&mut buf[..n]).await.unwrap().downlink.is_none());

    let data = |session: &mut fleetkey_device::Session| {
        let mut b = [0u8; 64];
        let n = session.data_frame(b"{}", &mut b).unwrap();
        b[..n].to_vec()
    };
    let ack = |session: &mut fleetkey_device::Session, id: [u8; 12], status| {
        let mut b = [0u8; 64];
        let n = session.ack_frame(&Ack { id, status }, &mut b).unwrap();
        b[..n].to_vec()
    };
    let state_of = |cmd: &str| {
        let s = &s;
        let cmd = cmd.to_owned();
        async move { s.store.command(&cmd).await.unwrap().unwrap().state }
    };

    // A rekey (rotate on a constrained device) goes down after the next frame.
    let rekey = s
        .fleets
        .commands
        .request_rotation("ops", &id, "drill")
        .await
        .unwrap();
    assert_eq!(rekey.kind, CommandKind::Rekey);
    // (The service announces the change; this frame path is not wired to it.)
    ing.expire(&id);
    let down = ing
        .accept(&mut data(&mut session))
        .await
        .unwrap()
        .downlink
        .expect("the rekey goes down");
    let mut opened = down.clone();
    let Downlink::Command(c) = session.open_down(&mut opened).unwrap() else {
        panic!("not a command");
    };
    assert_eq!(c.op, Op::Rekey);
    let cmd_id = c.id;
    assert_eq!(format!("cmd_{}", hex::encode(cmd_id)), rekey.id);
    // Not again within a second; and never to a caller out of scope (no oracle).
    assert!(
        ing.accept(&mut data(&mut session))
            .await
            .unwrap()
            .downlink
            .is_none()
    );
    let r = ing
        .accept_scoped(&mut data(&mut session), &|_| false)
        .await
        .unwrap_err();
    assert_eq!((r.reason, r.downlink.is_none()), ("unknown_device", true));

    // A forged acknowledgement, and one naming another command: nothing changes.
    let mut forged = ack(&mut session, cmd_id, Status::Done);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(ing.accept(&mut forged).await.unwrap_err(), "forged");
    let mut other = ack(&mut session, [9; 12], Status::Done);
    ing.accept(&mut other).await.unwrap();
    assert_eq!(state_of(&rekey.id).await, CommandState::Pending);

    // Rejected: the rekey is cancelled; the replayed acknowledgement is refused.
    let mut rejected = ack(&mut session, cmd_id, Status::Rejected);
    let a = ing.accept(&mut rejected.clone()).await.unwrap();
    assert_eq!(a.kind, fleetkey_device::FrameKind::Control);
    assert_eq!(state_of(&rekey.id).await, CommandState::Cancelled);
    assert_eq!(ing.accept(&mut rejected).await.unwrap_err(), "replay");

    // Decommissioning: telemetry is refused, answered with the wipe.
    s.fleets
        .onboarding
        .decommission("ops", &id, "stolen")
        .await
        .unwrap();
    ing.expire(&id);
    let r = ing
        .accept_scoped(&mut data(&mut session), &|_| true)
        .await
        .unwrap_err();
    assert_eq!(r.reason, "decommissioned");
    let wipe_frame = r.downlink.expect("the wipe goes down");
    let mut opened = wipe_frame.clone();
    let Downlink::Command(w) = session.open_down(&mut opened).unwrap() else {
        panic!("not a command");
    };
    assert_eq!((w.op, w.body), (Op::Wipe, &[][..]));
    // A wipe is not optional: rejected, it is sent again (a new frame; the old
    // one is a replay to the device).
    ing.accept(&mut ack(&mut session, w.id, Status::Rejected))
        .await
        .unwrap();
    assert_eq!(
        s.fleets.registry.device(&id).await.unwrap().state,
        DeviceState::Decommissioning
    );
    tokio::time::sleep(fleetkey_server::ingest::RESEND_AFTER).await;
    let again = ing
        .accept_scoped(&mut data(&mut session), &|_| true)
        .await
        .unwrap_err()
        .downlink
        .expect("sent again");
    assert_ne!(again, wipe_frame);
    assert_eq!(
        session.open_down(&mut wipe_frame.clone()).unwrap_err(),
        DevError::Replay
    );
    let mut opened = again.clone();
    let Downlink::Command(w2) = session.open_down(&mut opened).unwrap() else {
        panic!("not a command");
    };
    assert_eq!(w2.id, w.id);
    // Done: decommissioned, the wipe confirmed by the device in the audit log.
    ing.accept(&mut ack(&mut session, w.id, Status::Done))
        .await
        .unwrap();
    dev.erase();
    assert_eq!(
        s.fleets.registry.device(&id).await.unwrap().state,
        DeviceState::Decommissioned
    );
    let audit = s.store.audit_entries(0, 1000).await.unwrap();
    let wiped = audit
        .iter()
        .find(|e| e.action == "device.wiped")
        .expect("device.wiped");
    assert_eq!(wiped.actor, format!("device:{id}"));
    assert!(
        wiped.details.contains("\"via\":\"control_frame\""),
        "{}",
        wiped.details
    );
    // Nothing more from it is accepted.
    assert!(ing.accept(&mut data(&mut session)).await.is_err());
    let m = s.state.metrics.render(&s.state.keys, false);
    for want in [
        "fleetkey_device_downlinks_total{kind=\"rekey\",result=\"rejected\"} 1",
        "fleetkey_device_downlinks_total{kind=\"wipe\",result=\"rejected\"} 1",
        "fleetkey_device_downlinks_total{kind=\"wipe\",result=\"resent\"} 1",
        "fleetkey_device_downlinks_total{kind=\"wipe\",result=\"acked\"} 1",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
}
