//! The part of a service's configuration that a reload (SIGHUP) replaces whole. Readers take
//! the value current when their work begins and keep it until that work ends, so a TFTP
//! transfer, a DHCP decision or an HTTP connection begun before a reload finishes with the lab
//! it began with, and the next one sees the new lab.

use std::sync::{Arc, RwLock};

/// A value swapped whole, never edited in place.
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Self {
        Current(RwLock::new(Arc::new(value)))
    }

    /// The value now; later swaps do not change what this returns.
    pub fn get(&self) -> Arc<T> {
        // A writer panicking leaves a complete Arc behind: the value is still whole.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the value for every later [`get`](Current::get).
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_value_outlives_the_swap() {
        let current = Current::new(String::from("old lab"));
        let held = current.get();
        current.set(String::from("new lab"));
        assert_eq!(*held, "old lab");
        assert_eq!(*current.get(), "new lab");
    }
}
