//! A connection's outgoing frames: handles to shared, already framed bytes, flushed in one
//! `write_vectored` per loop turn (corking).
//!
//! A broadcast frames its message once into an `Rc<[u8]>`; every member's queue holds a clone
//! of that handle, never a copy of the bytes. The queue counts the bytes it holds so that the
//! event loop can apply its slow-consumer policy against a cap.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Linux accepts up to 1024 slices per `writev` (`IOV_MAX`).
const MAX_SLICES_PER_WRITE: usize = 1024;

/// Slices built on the stack before a flush needs a heap array.
const STACK_SLICES: usize = 32;

/// The frames waiting to be written to one socket.
#[derive(Debug, Default)]
pub struct WriteQueue {
    frames: VecDeque<Rc<[u8]>>,
    /// How much of the front frame has been written already.
    front_written: u32,
    /// Bytes queued and not yet written. `u32` keeps the struct small; the command line
    /// caps the queue and the message size at 1 GiB each, so it cannot overflow.
    queued_bytes: u32,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Bytes the kernel took.
    pub bytes: usize,
    /// System calls made (1 unless a call was interrupted or the queue is longer than 1024).
    pub write_calls: usize,
    /// Whole frames that left the queue.
    pub frames: usize,
}

impl WriteQueue {
    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes as usize
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether a frame has been partly written: it must be finished before anything else may
    /// go out on this socket, or the framing breaks.
    pub fn is_mid_frame(&self) -> bool {
        self.front_written > 0
    }

    /// Queues a handle to shared frame bytes.
    pub fn push(&mut self, frame: Rc<[u8]>) {
        self.queued_bytes += frame.len() as u32;
        self.frames.push_back(frame);
    }

    /// Drops every frame not yet started, keeping a partly written one so the stream stays
    /// well framed. Returns how many frames were dropped.
    pub fn discard_unstarted(&mut self) -> usize {
        let keep = usize::from(self.is_mid_frame());
        let dropped = self.frames.len() - keep;
        self.frames.truncate(keep);
        self.queued_bytes = self.frames.front().map_or(0, |frame| {
            (frame.len() - self.front_written as usize) as u32
        });
        dropped
    }

    /// Releases the queue's heap memory once it is empty, so an idle connection owns none.
    pub fn shrink_if_empty(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
    }

    /// Writes as much as the socket takes, all queued frames in one `write_vectored` call.
    /// Returns `Ok` with what was written when the socket would block or the queue is empty.
    pub fn flush(&mut self, socket: &mut impl Write) -> io::Result<Flushed> {
        let mut flushed = Flushed::default();
        while !self.frames.is_empty() {
            // Most flushes carry a few frames: build their slices on the stack, and only a
            // long queue pays for a heap array.
            let mut on_stack = [IoSlice::new(&[]); STACK_SLICES];
            let mut on_heap = Vec::new();
            let count = self.frames.len().min(MAX_SLICES_PER_WRITE);
            let slices: &mut [IoSlice<'_>] = if count <= STACK_SLICES {
                &mut on_stack[..count]
            } else {
                on_heap.resize(count, IoSlice::new(&[]));
                &mut on_heap
            };
            for (index, frame) in self.frames.iter().take(count).enumerate() {
                let start = if index == 0 {
                    self.front_written as usize
                } else {
                    0
                };
                slices[index] = IoSlice::new(&frame[start..]);
            }
            let written = match socket.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            };
            let offered = total_len(slices);
            drop(on_heap);
            flushed.write_calls += 1;
            flushed.bytes += written;
            self.queued_bytes -= written as u32;
            let mut left = written;
            while left > 0 {
                let front_left = self.frames[0].len() - self.front_written as usize;
                if left >= front_left {
                    left -= front_left;
                    self.frames.pop_front();
                    self.front_written = 0;
                    flushed.frames += 1;
                } else {
                    self.front_written += left as u32;
                    left = 0;
                }
            }
            if written < offered {
                // The socket buffer is full: another call now would only say WouldBlock.
                break;
            }
        }
        Ok(flushed)
    }
}

fn total_len(slices: &[IoSlice<'_>]) -> usize {
    slices.iter().map(|slice| slice.len()).sum()
}

/// Frames a payload once, header and payload in one shared allocation, for any number of
/// receivers. Server frames are never masked (RFC 6455 §5.1), so the bytes are the same for all.
pub fn frame_once(opcode: protocol::frame::OpCode, payload: &[u8]) -> Rc<[u8]> {
    let mut header = [0u8; protocol::frame::MAX_HEADER_LEN];
    let header_len =
        protocol::frame::encode_header(&mut header, true, opcode, payload.len() as u64, None);
    // A chain of two slices has an exact length: one allocation, one copy of the payload.
    header[..header_len]
        .iter()
        .chain(payload)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `capacity` bytes per call and records each call.
    struct Socket {
        capacity: usize,
        calls: Vec<usize>,
        received: Vec<u8>,
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.capacity == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for slice in slices {
                let take = slice.len().min(self.capacity - taken);
                self.received.extend_from_slice(&slice[..take]);
                taken += take;
            }
            self.capacity -= taken;
            self.calls.push(slices.len());
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(bytes: &[u8]) -> Rc<[u8]> {
        Rc::from(bytes)
    }

    #[test]
    fn all_queued_frames_leave_in_one_write_call() {
        let mut queue = WriteQueue::default();
        for index in 0..16u8 {
            queue.push(frame(&[index; 32]));
        }
        let mut socket = Socket {
            capacity: 1 << 20,
            calls: vec![],
            received: vec![],
        };
        let flushed = queue.flush(&mut socket).unwrap();
        assert_eq!(
            flushed,
            Flushed {
                bytes: 512,
                write_calls: 1,
                frames: 16
            }
        );
        assert_eq!(socket.calls, [16]);
        assert!(queue.is_empty());
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn a_partial_write_resumes_mid_frame_and_keeps_the_byte_stream_intact() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"abcdef"));
        queue.push(frame(b"ghij"));
        let mut socket = Socket {
            capacity: 4,
            calls: vec![],
            received: vec![],
        };
        queue.flush(&mut socket).unwrap();
        assert!(queue.is_mid_frame());
        assert_eq!(queue.queued_bytes(), 6);
        // The cap policy may drop unstarted frames, never the one already begun.
        assert_eq!(queue.discard_unstarted(), 1);
        socket.capacity = 100;
        queue.flush(&mut socket).unwrap();
        assert_eq!(socket.received, b"abcdef");
        assert!(queue.is_empty());
    }

    #[test]
    fn a_full_socket_leaves_the_queue_untouched() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"abc"));
        let mut socket = Socket {
            capacity: 0,
            calls: vec![],
            received: vec![],
        };
        assert_eq!(queue.flush(&mut socket).unwrap(), Flushed::default());
        assert_eq!(queue.queued_bytes(), 3);
    }

    #[test]
    fn shared_frames_are_not_copied_into_queues() {
        let shared = frame(b"broadcast");
        let mut first = WriteQueue::default();
        let mut second = WriteQueue::default();
        first.push(shared.clone());
        second.push(shared.clone());
        assert_eq!(Rc::strong_count(&shared), 3);
        assert!(std::ptr::eq(
            first.frames[0].as_ptr(),
            second.frames[0].as_ptr()
        ));
    }
}
