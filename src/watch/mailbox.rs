//! A one-frame hand-over between the capture thread and inference.
//!
//! A camera does not wait for us: when inference is slower than the frame rate, the newest frame
//! replaces the one still waiting and the replaced one is counted as dropped. Memory stays at one
//! frame however far behind inference falls (an unbounded queue would grow until the device runs
//! out of memory, and every verdict would be about an ever older frame).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct Mailbox<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    item: Option<T>,
    closed: bool,
    dropped: u64,
}

/// What [`Mailbox::take`] found.
pub enum Take<T> {
    Item(T),
    /// Nothing arrived within the timeout (check for Ctrl-C, print stats, wait again).
    Empty,
    /// The producer finished and nothing is left.
    Closed,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                item: None,
                closed: false,
                dropped: 0,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<T> Mailbox<T> {
    /// Live mode: replaces a frame still waiting (counted as dropped).
    pub fn put_latest(&self, item: T) {
        let mut s = self.state.lock().expect("mailbox lock");
        if s.item.replace(item).is_some() {
            s.dropped += 1;
        }
        self.changed.notify_all();
    }

    /// Replay mode: waits until the previous frame was taken, so none is dropped. Returns false
    /// (and drops `item`) when the mailbox was closed meanwhile.
    pub fn put_wait(&self, item: T) -> bool {
        let mut s = self.state.lock().expect("mailbox lock");
        while s.item.is_some() && !s.closed {
            s = self.changed.wait(s).expect("mailbox lock");
        }
        if s.closed {
            return false;
        }
        s.item = Some(item);
        self.changed.notify_all();
        true
    }

    pub fn take(&self, timeout: Duration) -> Take<T> {
        let mut s = self.state.lock().expect("mailbox lock");
        if s.item.is_none() && !s.closed {
            s = self
                .changed
                .wait_timeout(s, timeout)
                .expect("mailbox lock")
                .0;
        }
        match s.item.take() {
            Some(item) => {
                self.changed.notify_all();
                Take::Item(item)
            }
            None if s.closed => Take::Closed,
            None => Take::Empty,
        }
    }

    /// No more frames will come; a frame still waiting can still be taken.
    pub fn close(&self) {
        self.state.lock().expect("mailbox lock").closed = true;
        self.changed.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.state.lock().expect("mailbox lock").dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn newest_frame_wins_and_drops_are_counted() {
        let m = Mailbox::default();
        for i in 0..5 {
            m.put_latest(i);
        }
        assert!(matches!(m.take(Duration::ZERO), Take::Item(4)));
        assert_eq!(m.dropped(), 4);
        assert!(matches!(m.take(Duration::from_millis(1)), Take::Empty));
        m.close();
        assert!(matches!(m.take(Duration::ZERO), Take::Closed));
    }

    #[test]
    fn replay_mode_loses_nothing() {
        let m = Arc::new(Mailbox::default());
        let producer = {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    assert!(m.put_wait(i));
                }
                m.close();
            })
        };
        let mut got = Vec::new();
        loop {
            match m.take(Duration::from_millis(50)) {
                Take::Item(i) => got.push(i),
                Take::Empty => {}
                Take::Closed => break,
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(m.dropped(), 0);
    }

    #[test]
    fn closing_releases_a_waiting_producer() {
        let m = Arc::new(Mailbox::default());
        m.put_latest(1);
        let producer = {
            let m = m.clone();
            std::thread::spawn(move || m.put_wait(2))
        };
        std::thread::sleep(Duration::from_millis(20));
        m.close();
        assert!(!producer.join().unwrap());
    }
}
