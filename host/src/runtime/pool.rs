//! Instances of one plugin configuration side by side: a receiver delivers up to its
//! `concurrency` actions at once, each on an instance of its own, so one slow or hung
//! request does not hold up the others. Instances are made on first need and kept.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::instance::Instance;

/// The instances of one receiver and the slots that bound how many run at once.
pub struct Pool {
    /// Never called: the configuration new instances are made from.
    template: Mutex<Instance>,
    idle: Mutex<Vec<Instance>>,
    slots: Arc<Semaphore>,
    concurrency: usize,
}

impl Pool {
    /// A pool holding `first` (already configured), for `concurrency` calls at once.
    pub fn new(first: Instance, concurrency: usize) -> Pool {
        Pool {
            template: Mutex::new(first.sibling()),
            idle: Mutex::new(vec![first]),
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// How many calls may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A slot for one call, if fewer than `concurrency` run; it frees when dropped.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// An idle instance, or a new one when all are busy; hand it back with [`Pool::give`].
    pub fn take(&self) -> Instance {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        idle.unwrap_or_else(|| {
            let template = self.template.lock().unwrap_or_else(|e| e.into_inner());
            template.sibling()
        })
    }

    /// Returns an instance after its call.
    pub fn give(&self, instance: Instance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.concurrency {
            idle.push(instance);
        }
    }
}
