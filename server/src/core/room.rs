//! Rooms: who receives a broadcast. The request path of a member's handshake names its room.
//!
//! A room is a list of connection keys. Each member remembers its seat (room and index in that
//! list), so that leaving is a `swap_remove`: O(1), whatever the size of the room. An empty
//! room is removed, and its name (stored once, shared by the room and the index by name) with
//! it.

use std::collections::HashMap;
use std::rc::Rc;

use slab::Slab;

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

#[derive(Debug)]
struct Room {
    name: Rc<str>,
    /// Connection keys, as `u32` to halve the list (keys are slab indexes, far below 2^32).
    members: Vec<u32>,
}

/// Every room with at least one member.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Slab<Room>,
    by_name: HashMap<Rc<str>, u32>,
}

impl Rooms {
    /// How many rooms have members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room has members.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Adds `connection` to the room called `name`, creating the room if needed.
    pub fn join(&mut self, name: &str, connection: usize) -> Seat {
        let room = match self.by_name.get(name) {
            Some(&room) => room,
            None => {
                let name: Rc<str> = name.into();
                let room = self.rooms.insert(Room {
                    name: name.clone(),
                    members: Vec::new(),
                }) as u32;
                self.by_name.insert(name, room);
                room
            }
        };
        let members = &mut self.rooms[room as usize].members;
        members.push(connection as u32);
        Seat {
            room,
            index: (members.len() - 1) as u32,
        }
    }

    /// Removes a member. Returns the connection that moved into its index, whose seat the
    /// caller must update to `index`.
    pub fn leave(&mut self, seat: Seat) -> Option<(usize, u32)> {
        let room = &mut self.rooms[seat.room as usize];
        room.members.swap_remove(seat.index as usize);
        let moved = room
            .members
            .get(seat.index as usize)
            .map(|&moved| (moved as usize, seat.index));
        if room.members.is_empty() {
            let room = self.rooms.remove(seat.room as usize);
            self.by_name.remove(&room.name);
            // After a crowd of rooms has gone, give their memory back.
            if self.by_name.capacity() > 64 && self.by_name.len() < self.by_name.capacity() / 4 {
                self.by_name.shrink_to_fit();
            }
            if self.rooms.is_empty() {
                self.rooms = Slab::new();
            }
        }
        moved
    }

    /// The members of a room.
    pub fn members(&self, room: u32) -> &[u32] {
        self.rooms
            .get(room as usize)
            .map_or(&[], |room| room.members.as_slice())
    }

    /// The room called `name`, if it has members.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of a room.
    pub fn name(&self, room: u32) -> Option<&str> {
        self.rooms.get(room as usize).map(|room| &*room.name)
    }

    /// Every room's name and member count, in no particular order.
    pub fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.rooms
            .iter()
            .map(|(_, room)| (&*room.name, room.members.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_join_and_leave_in_constant_time_with_indexes_kept_right() {
        let mut rooms = Rooms::default();
        let a = rooms.join("/", 10);
        let b = rooms.join("/", 11);
        let c = rooms.join("/", 12);
        let other = rooms.join("/rust", 20);
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms.members(a.room), [10, 11, 12]);
        assert_eq!(rooms.members(other.room), [20]);
        // 10 leaves: 12 moves into index 0.
        assert_eq!(rooms.leave(a), Some((12, 0)));
        assert_eq!(rooms.members(b.room), [12, 11]);
        let c = Seat { index: 0, ..c };
        assert_eq!(rooms.leave(b), None);
        assert_eq!(rooms.leave(c), None);
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms.leave(other), None);
        assert!(rooms.is_empty());
    }

    #[test]
    fn a_room_name_is_stored_once() {
        let mut rooms = Rooms::default();
        let seat = rooms.join("/a-long-room-name", 1);
        let room = &rooms.rooms[seat.room as usize];
        assert_eq!(Rc::strong_count(&room.name), 2); // the room and the index by name
        assert_eq!(rooms.name(seat.room), Some("/a-long-room-name"));
    }

    #[test]
    fn the_index_by_name_gives_memory_back_when_rooms_empty() {
        let mut rooms = Rooms::default();
        let seats: Vec<Seat> = (0..5000).map(|i| rooms.join(&format!("/{i}"), i)).collect();
        let full = rooms.by_name.capacity();
        for seat in seats {
            rooms.leave(seat);
        }
        assert!(rooms.by_name.capacity() < full / 4);
    }

    #[test]
    fn no_seat_is_none() {
        assert_eq!(Seat::NONE.get(), None);
        let seat = Seat { room: 3, index: 1 };
        assert_eq!(seat.get(), Some(seat));
    }
}
