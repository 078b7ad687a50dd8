//! Helpers shared by the device crate's tests: a deterministic RNG, a flash that
//! can fail, one device and its receiver.
#![allow(dead_code, clippy::unwrap_used)]

use fleetkey_device::keys;
use fleetkey_device::{Credentials, Device, Error, Receiver, Rng, Session, Storage};

/// A deterministic "hardware RNG" for tests: bytes from a counter.
pub struct TestRng(pub u8);
impl Rng for TestRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        for b in buf {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Flash {
    pub boot: Option<u32>,
    pub fail: bool,
}
impl Storage for Flash {
    fn store_boot_counter(&mut self, boot: u32) -> Result<(), Error> {
        if self.fail {
            return Err(Error::Storage);
        }
        self.boot = Some(boot);
        Ok(())
    }
}

pub fn arr32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

pub const ID: [u8; 8] = [0xd0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
pub const DEVICE_SCALAR: [u8; 32] = [0x11; 32];
pub const SERVER_SCALAR: [u8; 32] = [0x22; 32];
pub const PSK: [u8; 32] = [0x33; 32];

pub fn device(boot: u32) -> Device {
    Device::x25519(
        ID,
        DEVICE_SCALAR,
        keys::public_key(&SERVER_SCALAR),
        PSK,
        boot,
    )
}

pub fn receiver(last_boot: u32) -> Receiver {
    Receiver::new(
        ID,
        Credentials::X25519Psk {
            device_public: keys::public_key(&DEVICE_SCALAR),
            psk: PSK,
        },
        last_boot,
    )
}

pub fn boot(d: &mut Device, seed: u8) -> Session {
    d.boot(&mut TestRng(seed), &mut Flash::default()).unwrap()
}
