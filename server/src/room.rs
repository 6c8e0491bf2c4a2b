//! Rooms: who receives a broadcast. The request path of a member's handshake names its room.
//!
//! A room is a list of connection keys. Each member remembers its index in that list, so that
//! leaving is a `swap_remove`: O(1), whatever the size of the room. An empty room is removed.

use std::collections::HashMap;

use slab::Slab;

/// Where a member sits: which room, and its index in the member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The room's key in [`Rooms`].
    pub room: u32,
    /// The member's index in the room's member list.
    pub index: u32,
}

#[derive(Debug)]
struct Room {
    name: Box<str>,
    /// Connection keys, as `u32` to halve the list (keys are slab indexes, far below 2^32).
    members: Vec<u32>,
}

/// Every room with at least one member.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Slab<Room>,
    by_name: HashMap<Box<str>, u32>,
}

impl Rooms {
    /// How many rooms have members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Adds `connection` to the room called `name`, creating the room if needed.
    pub fn join(&mut self, name: &str, connection: usize) -> Membership {
        let room = match self.by_name.get(name) {
            Some(&room) => room,
            None => {
                let room = self.rooms.insert(Room {
                    name: name.into(),
                    members: Vec::new(),
                }) as u32;
                self.by_name.insert(name.into(), room);
                room
            }
        };
        let members = &mut self.rooms[room as usize].members;
        members.push(connection as u32);
        Membership {
            room,
            index: (members.len() - 1) as u32,
        }
    }

    /// Removes a member. Returns the connection that moved into its index, whose membership
    /// the caller must update to `index`.
    pub fn leave(&mut self, membership: Membership) -> Option<(usize, u32)> {
        let room = &mut self.rooms[membership.room as usize];
        room.members.swap_remove(membership.index as usize);
        let moved = room
            .members
            .get(membership.index as usize)
            .map(|&moved| (moved as usize, membership.index));
        if room.members.is_empty() {
            let room = self.rooms.remove(membership.room as usize);
            self.by_name.remove(&room.name);
        }
        moved
    }

    /// The members of a room.
    pub fn members(&self, room: u32) -> &[u32] {
        self.rooms
            .get(room as usize)
            .map_or(&[], |room| room.members.as_slice())
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
        let c = Membership { index: 0, ..c };
        assert_eq!(rooms.leave(b), None);
        assert_eq!(rooms.leave(c), None);
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms.leave(other), None);
        assert_eq!(rooms.len(), 0);
    }
}
