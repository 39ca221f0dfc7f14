//! The store's series, held densely: a series' entry sits in a slot of one vector, and a
//! map finds the slot of an id. Ids are never reused; slots are, as a removed series' slot
//! is filled by the last one. While no series comes or goes, slots stay put, so a rule's
//! match cache keeps the slots of what it matched and selecting reads them without a
//! lookup, mostly in order.

use std::ops::Index;

use hashbrown::HashMap;

/// Entries by id, in dense slots.
pub(super) struct Table<E> {
    entries: Vec<(u32, E)>,
    slots: HashMap<u32, u32>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table {
            entries: Vec::new(),
            slots: HashMap::new(),
        }
    }
}

impl<E> Table<E> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The slot of `id`, if held: valid until an entry is added or removed.
    pub fn slot(&self, id: u32) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// The entry in `slot`.
    pub fn at(&self, slot: u32) -> &E {
        &self.entries[slot as usize].1
    }

    pub fn get(&self, id: &u32) -> Option<&E> {
        self.slot(*id).map(|s| self.at(s))
    }

    pub fn get_mut(&mut self, id: &u32) -> Option<&mut E> {
        let slot = self.slot(*id)?;
        Some(&mut self.entries[slot as usize].1)
    }

    /// Adds an entry under an id not held.
    pub fn insert(&mut self, id: u32, entry: E) {
        self.slots.insert(id, self.entries.len() as u32);
        self.entries.push((id, entry));
    }

    /// Removes an entry; the last one takes its slot.
    pub fn remove(&mut self, id: &u32) -> Option<E> {
        let slot = self.slots.remove(id)?;
        let (_, entry) = self.entries.swap_remove(slot as usize);
        if let Some((moved, _)) = self.entries.get(slot as usize) {
            self.slots.insert(*moved, slot);
        }
        Some(entry)
    }

    /// Every id with its entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &E)> {
        self.entries.iter().map(|(id, e)| (id, e))
    }

    pub fn keys(&self) -> impl Iterator<Item = &u32> {
        self.entries.iter().map(|(id, _)| id)
    }

    pub fn values(&self) -> impl Iterator<Item = &E> {
        self.entries.iter().map(|(_, e)| e)
    }
}

impl<E> Index<&u32> for Table<E> {
    type Output = E;

    fn index(&self, id: &u32) -> &E {
        self.get(id).expect("a held id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_entry_is_replaced_by_the_last_and_every_id_still_finds_its_own() {
        let mut t = Table::default();
        for id in 10..15 {
            t.insert(id, id * 100);
        }
        assert_eq!(t.remove(&11), Some(1100));
        assert_eq!(t.remove(&14), Some(1400), "the last one, moved into slot 1");
        assert_eq!(t.remove(&11), None);
        assert_eq!(t.len(), 3);
        for id in [10, 12, 13] {
            assert_eq!(t[&id], id * 100);
            assert_eq!(*t.at(t.slot(id).unwrap()), id * 100);
        }
        let mut ids: Vec<u32> = t.keys().copied().collect();
        ids.sort();
        assert_eq!(ids, [10, 12, 13]);
    }
}
