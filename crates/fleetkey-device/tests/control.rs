//! The downlink: commands in server→device control frames and the device's
//! acknowledgements, every refusal, the wipe that leaves a device unable to boot,
//! and parsers that never panic on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use fleetkey_device::control::{ACK_LEN, COMMAND_ID_LEN, MAX_BODY};
use fleetkey_device::frame::MAX_FRAME;
use fleetkey_device::{Ack, Command, Downlink, Error, FrameKind, Op, Status};

const CMD: [u8; COMMAND_ID_LEN] = [7; COMMAND_ID_LEN];

#[test]
fn a_command_reaches_the_device_and_its_ack_reaches_the_server() {
    let mut d = device(0);
    let mut s = boot(&mut d, 1);
    let mut r = receiver(0);
    let mut f = [0u8; MAX_FRAME];
    let n = s.start_frame(b"", &mut f).unwrap();
    r.accept(&SERVER_SCALAR, &mut f[..n]).unwrap();

    let body = br#"{"revision":2,"config":{"interval":60}}"#;
    let cmd = Command {
        op: Op::Config,
        id: CMD,
        body,
    };
    let mut down = [0u8; MAX_FRAME];
    let n = r.seal_command(5, &cmd, &mut down).unwrap();
    let mut copy = down[..n].to_vec();
    assert_eq!(s.open_down(&mut copy).unwrap(), Downlink::Command(cmd));
    // The same frame again is a replay; a lower counter too.
    assert_eq!(
        s.open_down(&mut down[..n].to_vec()).unwrap_err(),
        Error::Replay
    );
    let n4 = r.seal_command(4, &cmd, &mut down).unwrap();
    assert_eq!(
        s.open_down(&mut down[..n4].to_vec()).unwrap_err(),
        Error::Replay
    );

    // The acknowledgement is a control frame in the device's counter space.
    let mut up = [0u8; 64];
    let n = s
        .ack_frame(
            &Ack {
                id: CMD,
                status: Status::Done,
            },
            &mut up,
        )
        .unwrap();
    let o = r.accept(&SERVER_SCALAR, &mut up[..n]).unwrap();
    assert_eq!(o.header.kind, FrameKind::Control);
    assert_eq!(o.header.counter, 1);
    assert_eq!(
        Ack::parse(o.payload).unwrap(),
        Ack {
            id: CMD,
            status: Status::Done
        }
    );
    // Replayed, it is refused like any frame.
    assert_eq!(
        r.accept(&SERVER_SCALAR, &mut up[..n]).unwrap_err(),
        Error::Replay
    );
}

#[test]
fn down_frames_of_another_boot_or_tampered_are_refused() {
    let mut d = device(0);
    let mut s1 = boot(&mut d, 1);
    let mut r = receiver(0);
    let mut f = [0u8; 64];
    let n = s1.start_frame(b"", &mut f).unwrap();
    r.accept(&SERVER_SCALAR, &mut f[..n]).unwrap();
    let wipe = Command {
        op: Op::Wipe,
        id: CMD,
        body: b"",
    };
    let mut down = [0u8; 64];
    let n = r.seal_command(1, &wipe, &mut down).unwrap();
    let old_boot = down[..n].to_vec();
    // Tampered: one bit anywhere.
    for bit in 0..8 * n {
        let mut t = old_boot.clone();
        t[bit / 8] ^= 1 << (bit % 8);
        assert!(s1.open_down(&mut t).is_err(), "bit {bit}");
    }
    // After a reboot, the previous boot's commands do not open.
    let mut s2 = boot(&mut d, 9);
    assert_eq!(
        s2.open_down(&mut old_boot.clone()).unwrap_err(),
        Error::WrongDevice
    );
    // A server without a verified session cannot seal a command.
    assert_eq!(
        receiver(0).seal_command(1, &wipe, &mut down).unwrap_err(),
        Error::NoSession
    );
    // Counter 0 belongs to session starts.
    assert_eq!(
        r.seal_command(0, &wipe, &mut down).unwrap_err(),
        Error::Malformed
    );
}

#[test]
fn payloads_are_bounded_and_strict() {
    let mut out = [0u8; 2 * MAX_FRAME];
    // The largest config body fits one frame; one byte more does not.
    let big = vec![b'x'; MAX_BODY];
    let c = Command {
        op: Op::Config,
        id: CMD,
        body: &big,
    };
    let n = c.encode(&mut out).unwrap();
    assert_eq!(Command::parse(&out[..n]).unwrap(), c);
    let too_big = vec![b'x'; MAX_BODY + 1];
    let c = Command {
        op: Op::Config,
        id: CMD,
        body: &too_big,
    };
    assert_eq!(c.encode(&mut out).unwrap_err(), Error::Malformed);
    // Wipe and rekey carry nothing.
    for op in [Op::Wipe, Op::Rekey] {
        let c = Command {
            op,
            id: CMD,
            body: b"x",
        };
        assert_eq!(c.encode(&mut out).unwrap_err(), Error::Malformed);
        let mut p = vec![op.id()];
        p.extend_from_slice(&CMD);
        p.push(b'x');
        assert_eq!(Command::parse(&p).unwrap_err(), Error::Malformed);
    }
    // Unknown op, short payloads, bad acknowledgements.
    let mut p = vec![9u8];
    p.extend_from_slice(&CMD);
    assert_eq!(Command::parse(&p).unwrap_err(), Error::Malformed);
    assert_eq!(Command::parse(&p[..5]).unwrap_err(), Error::Malformed);
    let mut a = Ack {
        id: CMD,
        status: Status::Rejected,
    }
    .encode();
    assert_eq!(Ack::parse(&a).unwrap().status, Status::Rejected);
    assert_eq!(Ack::parse(&a[..ACK_LEN - 1]).unwrap_err(), Error::Malformed);
    a[ACK_LEN - 1] = 3;
    assert_eq!(Ack::parse(&a).unwrap_err(), Error::Malformed);
    a[ACK_LEN - 1] = 1;
    a[0] = 0x81;
    assert_eq!(Ack::parse(&a).unwrap_err(), Error::Malformed);
}

#[test]
fn a_wiped_device_never_boots_again() {
    let mut d = device(4);
    let before = d.public_key();
    d.erase();
    assert!(d.is_erased());
    assert_ne!(d.public_key(), before);
    assert_eq!(
        d.boot(&mut TestRng(1), &mut Flash::default()).unwrap_err(),
        Error::Erased
    );
    // The boot counter is not consumed by the refused boot.
    assert_eq!(d.boot_counter(), 4);
}

proptest::proptest! {
    #[test]
    fn control_parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..1300)) {
        if let Ok(c) = Command::parse(&data) {
            let mut out = [0u8; MAX_FRAME];
            let n = c.encode(&mut out).unwrap();
            proptest::prop_assert_eq!(&out[..n], &data[..]);
        }
        if let Ok(a) = Ack::parse(&data) {
            proptest::prop_assert_eq!(&a.encode()[..], &data[..]);
        }
    }
}
