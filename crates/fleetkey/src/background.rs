//! A writer that hands full buffers to a background thread, so writing to the OS
//! overlaps with sealing or opening the next segments. Memory is bounded: at most
//! `DEPTH` buffers of `BUFFER` bytes are in flight.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

const BUFFER: usize = 1 << 20;
const DEPTH: usize = 4;

pub struct BackgroundWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    pub fn new(mut inner: W) -> io::Result<Self> {
        let (full_tx, full_rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = std::thread::Builder::new()
            .name("fleetkey-writer".into())
            .spawn(move || {
                for mut chunk in full_rx {
                    inner.write_all(&chunk)?;
                    chunk.clear();
                    // The owner may be gone or have enough buffers; either is fine.
                    let _ = empty_tx.try_send(chunk);
                }
                inner.flush()?;
                Ok(inner)
            })?;
        Ok(Self {
            buf: Vec::with_capacity(BUFFER),
            full: Some(full_tx),
            empty: empty_rx,
            thread: Some(thread),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped: it failed; `finish` reports its error.
            _ => Err(self.join_error()),
        }
    }

    fn join_error(&mut self) -> io::Error {
        self.full = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("background writer stopped"),
        }
    }

    /// Writes everything still buffered, waits for the thread, and returns the
    /// inner writer or the first error it hit.
    pub fn finish(mut self) -> io::Result<W> {
        self.send()?;
        self.full = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("background writer panicked")),
        }
    }
}

impl<W: Write + Send + 'static> Write for BackgroundWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BUFFER - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BUFFER {
            self.send()?;
        }
        Ok(n)
    }

    /// Hands the partial buffer to the thread (does not wait for it).
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_in_order() {
        let mut w = BackgroundWriter::new(Vec::new()).unwrap();
        let mut expect = Vec::new();
        for i in 0..5000u32 {
            let chunk: Vec<u8> = (0..(i % 977)).map(|j| (i + j).to_le_bytes()[0]).collect();
            w.write_all(&chunk).unwrap();
            expect.extend_from_slice(&chunk);
        }
        assert_eq!(w.finish().unwrap(), expect);
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reports_the_inner_error() {
        let mut w = BackgroundWriter::new(Failing).unwrap();
        let big = vec![0u8; 8 * BUFFER];
        let r = w.write_all(&big).and_then(|()| w.finish().map(|_| ()));
        assert_eq!(r.unwrap_err().to_string(), "disk full");
    }
}
