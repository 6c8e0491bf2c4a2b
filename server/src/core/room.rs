//! Rooms: who receives a broadcast, and what was said lately. The request path of a member's
//! handshake names its room.
//!
//! A room is a list of connection keys. Each member remembers its seat (room and index in that
//! list), so that leaving is a `swap_remove`: O(1), whatever the size of the room.
//!
//! With history on, a room keeps its last messages: the very frames that were broadcast (shared
//! `Rc` handles, no copy), bounded in count and bytes per room and in bytes over all rooms. A
//! room whose last member left keeps its history for [`KEEP_EMPTY`], so a reader who reconnects
//! after a blip finds what was said meanwhile; past that, or when the total is over its bound,
//! the room and its name go.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use slab::Slab;

use super::clock::Tick;

/// How long an empty room keeps its history.
pub(super) const KEEP_EMPTY: Duration = Duration::from_secs(600);

/// Where a member sits: which room, and its index in the member list. Eight bytes, with
/// [`Seat::NONE`] for a connection in no room (an `Option` would take twelve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// The room's key in [`Rooms`], `u32::MAX` for none.
    pub room: u32,
    /// The member's index in the room's member list.
    pub index: u32,
}

impl Seat {
    /// No room.
    pub const NONE: Seat = Seat {
        room: u32::MAX,
        index: 0,
    };

    /// The seat, if this is one.
    pub fn get(self) -> Option<Seat> {
        (self.room != u32::MAX).then_some(self)
    }
}

/// The bounds on history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryLimits {
    /// Messages kept per room (0: no history).
    pub messages: usize,
    /// Bytes kept per room.
    pub bytes_per_room: usize,
    /// Bytes kept over all rooms.
    pub total_bytes: usize,
}

#[derive(Debug)]
struct Room {
    name: Rc<str>,
    /// Connection keys, as `u32` to halve the list (keys are slab indexes, far below 2^32).
    members: Vec<u32>,
    history: VecDeque<Rc<[u8]>>,
    history_bytes: usize,
    /// Bumped each time the room empties, so a stale entry in the empty list is recognised.
    generation: u32,
}

/// Every room with members, and empty rooms that still keep history.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Slab<Room>,
    by_name: HashMap<Rc<str>, u32>,
    limits: HistoryLimits,
    history_bytes: usize,
    history_messages: usize,
    /// Rooms that emptied, oldest first: (room, generation, when).
    emptied: VecDeque<(u32, u32, Tick)>,
}

/// What joining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// The new member's seat.
    pub seat: Seat,
    /// The room had no members before (it was created, or kept only its history).
    pub first_member: bool,
}

/// What leaving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// The member that moved into the leaver's index, whose seat the caller must update.
    pub moved: Option<(usize, u32)>,
    /// The room has no members now.
    pub last_member: bool,
}

impl Rooms {
    /// Rooms with these history bounds.
    pub fn with_history(limits: HistoryLimits) -> Self {
        Rooms {
            limits,
            ..Rooms::default()
        }
    }

    /// How many rooms have members.
    pub fn len(&self) -> usize {
        self.rooms
            .iter()
            .filter(|(_, room)| !room.members.is_empty())
            .count()
    }

    /// Whether no room exists, with members or history.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Adds `connection` to the room called `name`, creating the room if needed.
    pub fn join(&mut self, name: &str, connection: usize) -> Joined {
        let room = match self.by_name.get(name) {
            Some(&room) => room,
            None => {
                let name: Rc<str> = name.into();
                let room = self.rooms.insert(Room {
                    name: name.clone(),
                    members: Vec::new(),
                    history: VecDeque::new(),
                    history_bytes: 0,
                    generation: 0,
                }) as u32;
                self.by_name.insert(name, room);
                room
            }
        };
        let members = &mut self.rooms[room as usize].members;
        members.push(connection as u32);
        Joined {
            seat: Seat {
                room,
                index: (members.len() - 1) as u32,
            },
            first_member: members.len() == 1,
        }
    }

    /// Removes a member. A room left empty goes at once, unless it keeps history (then it goes
    /// at [`Rooms::expire`]).
    pub fn leave(&mut self, seat: Seat, now: Tick) -> Left {
        let room = &mut self.rooms[seat.room as usize];
        room.members.swap_remove(seat.index as usize);
        let moved = room
            .members
            .get(seat.index as usize)
            .map(|&moved| (moved as usize, seat.index));
        let last_member = room.members.is_empty();
        if last_member {
            room.generation = room.generation.wrapping_add(1);
            if room.history.is_empty() || self.history_bytes > self.limits.total_bytes {
                self.remove(seat.room);
            } else {
                self.emptied.push_back((seat.room, room.generation, now));
            }
        }
        Left { moved, last_member }
    }

    /// Drops the empty rooms whose history has been kept long enough.
    pub fn expire(&mut self, now: Tick) {
        let keep = super::clock::ticks(KEEP_EMPTY);
        while let Some(&(room, generation, since)) = self.emptied.front() {
            if now.since(since) < keep {
                break;
            }
            self.emptied.pop_front();
            let still_empty = self
                .rooms
                .get(room as usize)
                .is_some_and(|entry| entry.generation == generation && entry.members.is_empty());
            if still_empty {
                self.remove(room);
            }
        }
    }

    fn remove(&mut self, room: u32) {
        let room = self.rooms.remove(room as usize);
        self.history_bytes -= room.history_bytes;
        self.history_messages -= room.history.len();
        self.by_name.remove(&room.name);
        // After a crowd of rooms has gone, give their memory back.
        if self.by_name.capacity() > 64 && self.by_name.len() < self.by_name.capacity() / 4 {
            self.by_name.shrink_to_fit();
        }
        if self.rooms.is_empty() {
            self.rooms = Slab::new();
        }
    }

    /// Keeps a broadcast frame in the room's history (when history is on), dropping the oldest
    /// past the room's bounds.
    pub fn record(&mut self, room: u32, frame: &Rc<[u8]>) {
        if self.limits.messages == 0 || frame.len() > self.limits.bytes_per_room {
            return;
        }
        let Some(entry) = self.rooms.get_mut(room as usize) else {
            return;
        };
        entry.history.push_back(frame.clone());
        entry.history_bytes += frame.len();
        self.history_bytes += frame.len();
        self.history_messages += 1;
        while entry.history.len() > self.limits.messages
            || entry.history_bytes > self.limits.bytes_per_room
            || self.history_bytes > self.limits.total_bytes && entry.history.len() > 1
        {
            let Some(oldest) = entry.history.pop_front() else {
                break;
            };
            entry.history_bytes -= oldest.len();
            self.history_bytes -= oldest.len();
            self.history_messages -= 1;
        }
    }

    /// The room's history, oldest first.
    pub fn history(&self, room: u32) -> impl Iterator<Item = &Rc<[u8]>> {
        self.rooms
            .get(room as usize)
            .into_iter()
            .flat_map(|entry| entry.history.iter())
    }

    /// Bytes and messages held in history over all rooms.
    pub fn history_size(&self) -> (usize, usize) {
        (self.history_bytes, self.history_messages)
    }

    /// The members of a room.
    pub fn members(&self, room: u32) -> &[u32] {
        self.rooms
            .get(room as usize)
            .map_or(&[], |room| room.members.as_slice())
    }

    /// The room called `name`, if it exists (it has members, or keeps history).
    pub fn find(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of a room.
    pub fn name(&self, room: u32) -> Option<&str> {
        self.rooms.get(room as usize).map(|room| &*room.name)
    }

    /// Every room with members: its name and member count, in no particular order.
    pub fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.rooms
            .iter()
            .filter(|(_, room)| !room.members.is_empty())
            .map(|(_, room)| (&*room.name, room.members.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Tick = Tick(0);

    #[test]
    fn members_join_and_leave_in_constant_time_with_indexes_kept_right() {
        let mut rooms = Rooms::default();
        let a = rooms.join("/", 10);
        assert!(a.first_member);
        let b = rooms.join("/", 11).seat;
        let c = rooms.join("/", 12).seat;
        let a = a.seat;
        let other = rooms.join("/rust", 20).seat;
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms.members(a.room), [10, 11, 12]);
        assert_eq!(rooms.members(other.room), [20]);
        // 10 leaves: 12 moves into index 0.
        let left = rooms.leave(a, NOW);
        assert_eq!(left.moved, Some((12, 0)));
        assert!(!left.last_member);
        assert_eq!(rooms.members(b.room), [12, 11]);
        let c = Seat { index: 0, ..c };
        assert_eq!(rooms.leave(b, NOW).moved, None);
        assert!(rooms.leave(c, NOW).last_member);
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms.leave(other, NOW).moved, None);
        assert!(rooms.is_empty());
    }

    #[test]
    fn a_room_name_is_stored_once() {
        let mut rooms = Rooms::default();
        let seat = rooms.join("/a-long-room-name", 1).seat;
        let room = &rooms.rooms[seat.room as usize];
        assert_eq!(Rc::strong_count(&room.name), 2); // the room and the index by name
        assert_eq!(rooms.name(seat.room), Some("/a-long-room-name"));
    }

    #[test]
    fn the_index_by_name_gives_memory_back_when_rooms_empty() {
        let mut rooms = Rooms::default();
        let seats: Vec<Seat> = (0..5000)
            .map(|i| rooms.join(&format!("/{i}"), i).seat)
            .collect();
        let full = rooms.by_name.capacity();
        for seat in seats {
            rooms.leave(seat, NOW);
        }
        assert!(rooms.by_name.capacity() < full / 4);
    }

    #[test]
    fn no_seat_is_none() {
        assert_eq!(Seat::NONE.get(), None);
        let seat = Seat { room: 3, index: 1 };
        assert_eq!(seat.get(), Some(seat));
    }

    fn frame(byte: u8, len: usize) -> Rc<[u8]> {
        vec![byte; len].into()
    }

    #[test]
    fn history_keeps_the_last_messages_within_count_and_bytes_sharing_the_frames() {
        let mut rooms = Rooms::with_history(HistoryLimits {
            messages: 3,
            bytes_per_room: 250,
            total_bytes: 10_000,
        });
        let seat = rooms.join("/", 1).seat;
        let frames: Vec<Rc<[u8]>> = (0..5).map(|i| frame(i, 50)).collect();
        for frame in &frames {
            rooms.record(seat.room, frame);
        }
        let kept: Vec<u8> = rooms.history(seat.room).map(|frame| frame[0]).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(Rc::strong_count(&frames[4]), 2, "shared, not copied");
        rooms.record(seat.room, &frame(9, 200));
        let kept: Vec<u8> = rooms.history(seat.room).map(|frame| frame[0]).collect();
        assert_eq!(kept, [4, 9], "bytes bound: 50 + 200 <= 250");
        assert_eq!(rooms.history_size(), (250, 2));
    }

    #[test]
    fn an_empty_room_keeps_its_history_for_a_while_then_goes() {
        let mut rooms = Rooms::with_history(HistoryLimits {
            messages: 10,
            bytes_per_room: 1000,
            total_bytes: 10_000,
        });
        let seat = rooms.join("/blip", 1).seat;
        rooms.record(seat.room, &frame(7, 10));
        rooms.leave(seat, Tick(0));
        // A reconnect within the window finds the history.
        let again = rooms.join("/blip", 2);
        assert!(again.first_member);
        assert_eq!(rooms.history(again.seat.room).count(), 1);
        rooms.leave(again.seat, Tick(100));
        rooms.expire(Tick(100).after(KEEP_EMPTY - Duration::from_millis(10)));
        assert_eq!(rooms.history(again.seat.room).count(), 1);
        rooms.expire(Tick(100).after(KEEP_EMPTY));
        assert!(rooms.is_empty());
        assert_eq!(rooms.history_size(), (0, 0));
    }

    #[test]
    fn the_total_history_bound_holds_over_many_rooms() {
        let mut rooms = Rooms::with_history(HistoryLimits {
            messages: 10,
            bytes_per_room: 1000,
            total_bytes: 2000,
        });
        for index in 0..50 {
            let seat = rooms.join(&format!("/{index}"), index).seat;
            for _ in 0..10 {
                rooms.record(seat.room, &frame(1, 100));
            }
            rooms.leave(seat, NOW);
        }
        // Each room keeps at least its newest message while it lives; empty rooms beyond the
        // bound are not kept.
        assert!(rooms.history_size().0 <= 2000 + 1000);
    }
}
