//! The contacts a driver holds leases on: those leased ahead of the core's asking ("ahead"),
//! and those handed to the core, not yet placed ("given").
//!
//! A driver that leased only when its core asked waited for the store at every pacing step;
//! when the store was slow (its one SQLite writer busy with ended calls), the core's decision
//! waited with it and the calls wanted meanwhile were placed in one burst once the lease came
//! back. The hopper keeps about [`AHEAD_FOR`] of the core's recent demand leased ahead, so the
//! core's lease is answered at once and the store is refilled from beside the pacing. At a few
//! calls a second ([`MIN_AHEAD`]) nothing is leased ahead and the core asks the store itself,
//! as before: callbacks falling due and new contacts keep their order exactly.
//!
//! Sans-IO: the driver passes `now` and carries out the refills it is asked for.

use crate::dialer::campaign::ContactId;
use crate::store::contacts::Contact;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How much of the recent demand is kept leased ahead.
pub const AHEAD_FOR: Duration = Duration::from_secs(2);

/// The window the demand is measured over.
pub const DEMAND_WINDOW: Duration = Duration::from_secs(5);

/// Below this many contacts ahead nothing is leased ahead.
pub const MIN_AHEAD: u32 = 10;

/// At most this many contacts are leased ahead.
pub const MAX_AHEAD: u32 = 1000;

/// A contact held ahead longer than this is given back: its calling hours or its record may
/// have changed since it was read.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// After a refill that found fewer contacts than asked, the next one waits this long.
pub const EXHAUSTED_BACKOFF: Duration = Duration::from_secs(1);

/// The contacts a driver holds leases on, and what it should lease next.
#[derive(Debug, Default)]
pub struct Hopper {
    ahead: VecDeque<(Contact, Instant)>,
    given: HashMap<ContactId, Contact>,
    /// Contacts the core asked for, with when: the demand of the last [`DEMAND_WINDOW`].
    asked: VecDeque<(Instant, u32)>,
    /// The core waits for this many contacts ([`Hopper::take_for_core`] found none ahead).
    core_waits: Option<u32>,
    /// A refill is under way.
    refilling: bool,
    /// No refill for the demand before this (the last found the task short of contacts).
    quiet_until: Option<Instant>,
}

impl Hopper {
    /// An empty hopper.
    pub fn new() -> Self {
        Self::default()
    }

    /// The core asks for `n` contacts: those ahead (up to `n`) are handed over at once;
    /// `None` when none are ahead, the core then waits for the next refill.
    pub fn take_for_core(&mut self, n: u32, now: Instant) -> Option<Vec<ContactId>> {
        self.asked.push_back((now, n));
        self.forget_old_demand(now);
        if self.ahead.is_empty() {
            self.core_waits = Some(n);
            return None;
        }
        Some(self.hand_over(n))
    }

    /// How many contacts to lease now, if any: what the waiting core asked for plus what
    /// keeps the demand covered. The caller leases them and answers with [`Hopper::filled`].
    pub fn refill(&mut self, now: Instant) -> Option<u32> {
        if self.refilling {
            return None;
        }
        self.forget_old_demand(now);
        let waits = self.core_waits.unwrap_or(0);
        let quiet = self.quiet_until.is_some_and(|t| now < t);
        let target = if quiet { 0 } else { self.target() };
        let have = self.ahead.len() as u32;
        // Refilled at half the target, so it is not asked for a few contacts at a time.
        let low = have <= target / 2;
        let n = if low { target - have.min(target) } else { 0 } + waits;
        if n == 0 {
            return None;
        }
        self.refilling = true;
        Some(n)
    }

    /// A refill came back: the waiting core's part is handed over (maybe none, when the task
    /// has none left), the rest kept ahead. `asked` is how many the refill asked for.
    pub fn filled(
        &mut self,
        contacts: Vec<Contact>,
        asked: u32,
        now: Instant,
    ) -> Option<Vec<ContactId>> {
        self.refilling = false;
        if (contacts.len() as u32) < asked {
            self.quiet_until = Some(now + EXHAUSTED_BACKOFF);
        }
        self.ahead.extend(contacts.into_iter().map(|c| (c, now)));
        let n = self.core_waits?;
        Some(self.hand_over(n))
    }

    /// Contacts held ahead for longer than [`MAX_AGE`]: no longer held, to be given back.
    pub fn stale(&mut self, now: Instant) -> Vec<ContactId> {
        let mut out = Vec::new();
        while let Some((c, at)) = self.ahead.front() {
            if now.duration_since(*at) < MAX_AGE {
                break;
            }
            out.push(ContactId(c.id));
            self.ahead.pop_front();
        }
        out
    }

    /// Every contact held ahead, no longer held (the driver drains or stops); the core no
    /// longer waits.
    pub fn empty_ahead(&mut self) -> Vec<ContactId> {
        self.core_waits = None;
        self.ahead.drain(..).map(|(c, _)| ContactId(c.id)).collect()
    }

    /// Takes `id` out of the contacts held ahead (it called in: its lease now holds that
    /// call); true if it was there.
    pub fn withdraw(&mut self, id: ContactId) -> bool {
        let before = self.ahead.len();
        self.ahead.retain(|(c, _)| c.id != id.0);
        self.ahead.len() != before
    }

    /// Holds a contact leased for the core by other means (a particular callback).
    pub fn give(&mut self, contact: Contact) {
        self.given.insert(ContactId(contact.id), contact);
    }

    /// A contact handed to the core, to be placed: no longer the hopper's.
    pub fn place(&mut self, id: ContactId) -> Option<Contact> {
        self.given.remove(&id)
    }

    /// The core gave a contact back (not placed).
    pub fn unlease(&mut self, id: ContactId) -> Option<Contact> {
        self.given.remove(&id)
    }

    /// A contact handed to the core and not placed yet.
    pub fn given(&self, id: ContactId) -> Option<&Contact> {
        self.given.get(&id)
    }

    /// Every contact handed to the core and not placed, no longer held.
    pub fn empty_given(&mut self) -> Vec<ContactId> {
        self.given.drain().map(|(id, _)| id).collect()
    }

    /// Holds no lease.
    pub fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.given.is_empty()
    }

    /// Contacts held ahead.
    pub fn ahead(&self) -> usize {
        self.ahead.len()
    }

    /// How many to keep ahead for the recent demand: none below [`MIN_AHEAD`].
    fn target(&self) -> u32 {
        let asked: u32 = self.asked.iter().map(|(_, n)| *n).sum();
        let per_second = f64::from(asked) / DEMAND_WINDOW.as_secs_f64();
        let target = (per_second * AHEAD_FOR.as_secs_f64()).ceil() as u32;
        if target < MIN_AHEAD {
            0
        } else {
            target.min(MAX_AHEAD)
        }
    }

    fn forget_old_demand(&mut self, now: Instant) {
        while self
            .asked
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > DEMAND_WINDOW)
        {
            self.asked.pop_front();
        }
    }

    fn hand_over(&mut self, n: u32) -> Vec<ContactId> {
        self.core_waits = None;
        let k = (n as usize).min(self.ahead.len());
        self.ahead
            .drain(..k)
            .map(|(c, _)| {
                let id = ContactId(c.id);
                self.given.insert(id, c);
                id
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
