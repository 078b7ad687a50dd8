//! The constrained-device profile's parsers on arbitrary bytes: frame headers, the
//! server's receiver, the device opening downlink frames, command and
//! acknowledgement payloads. Nothing panics, nothing unauthenticated is accepted,
//! and a parsed payload encodes back to the same bytes.
#![no_main]

use fleetkey_device::frame::MAX_FRAME;
use fleetkey_device::{Ack, Command, Credentials, Device, Error, Receiver, Rng, Storage};
use libfuzzer_sys::fuzz_target;

struct Fixed;
impl Rng for Fixed {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(5);
        Ok(())
    }
}
struct Flash;
impl Storage for Flash {
    fn store_boot_counter(&mut self, _: u32) -> Result<(), Error> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let id = [1u8; 8];
    let server = [0x22u8; 32];
    let device = [0x11u8; 32];
    let mut r = Receiver::new(
        id,
        Credentials::X25519Psk {
            device_public: fleetkey_device::keys::public_key(&device),
            psk: [3; 32],
        },
        0,
    );
    let _ = fleetkey_device::Header::parse(data);
    assert!(r.accept(&server, &mut data.to_vec()).is_err(), "an unauthenticated frame was accepted");
    let mut d = Device::x25519(id, device, fleetkey_device::keys::public_key(&server), [3; 32], 0);
    let mut s = d.boot(&mut Fixed, &mut Flash).expect("boots");
    assert!(s.open_down(&mut data.to_vec()).is_err(), "an unauthenticated downlink was accepted");
    if let Ok(c) = Command::parse(data) {
        let mut out = [0u8; MAX_FRAME];
        let n = c.encode(&mut out).expect("encodes");
        assert_eq!(&out[..n], data);
    }
    if let Ok(a) = Ack::parse(data) {
        assert_eq!(&a.encode()[..], data);
    }
});
